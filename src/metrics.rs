//! Prometheus metrics, served at `/metrics` in the text exposition format.
//!
//! Names follow Prometheus conventions: base units (`_seconds`), `_total` counters, and
//! low-cardinality labels only (route templates such as `/api/persons/{id}`, never raw
//! paths or ids). Readers of the resilience state (breaker, database status) update the
//! gauges from the published state; nothing here ever waits on the database.
//!
//! From metrics to traces: the HTTP and database latency histograms carry exemplars (one
//! per bucket, the latest) labelled `trace_id` with the trace of the request or operation
//! observed, so a slow bucket in Grafana or Prometheus leads to its trace in Jaeger. Only
//! sampled spans of an exporting service give exemplars (a trace id Jaeger never receives
//! would lead nowhere).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::resilience::breaker::{BreakerState, Transition};

/// Labels of HTTP request metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// HTTP method.
    pub method: String,
    /// Route template, or `unmatched`.
    pub route: String,
    /// Response status code.
    pub status: u16,
}

/// Labels of database operation metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DbOpLabels {
    /// `find`, `insert`, ...
    pub operation: &'static str,
    /// Collection name.
    pub collection: &'static str,
    /// `success`, `failure` (database trouble), `rejected` (the caller's error), `refused` (breaker), `shed` (admission control).
    pub outcome: &'static str,
}

/// Labels with one `state` value.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// A breaker state (or, for `aila_db_members`, a member state).
    pub state: &'static str,
}

/// Labels of shed calls: `when` = `at_once` (no room, or no slot to expect in time) or
/// `after_queue` (waited the queue timeout in vain).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShedLabels {
    /// When the call was shed.
    pub when: &'static str,
}

/// Labels of rate limits: what they protect and what they are keyed by.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RateLimitLabels {
    /// `login`, `register`, `preview_session`, `preview_write`, `invite`, `contribution`.
    pub scope: &'static str,
    /// `address` or `account`.
    pub per: &'static str,
}

/// Labels of outgoing mail: what the message is for.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MailLabels {
    /// `verify_email`, `invite_register`, `invite_verify`, `invite_notice`, `password_reset`.
    pub kind: &'static str,
}

/// Labels of mail that was given up: what it was for and why.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MailFailedLabels {
    /// See [`MailLabels`].
    pub kind: &'static str,
    /// `queue_full` (refused at once), `deadline` (retried until MAIL_DEADLINE_MS in vain),
    /// `rejected` (the server refused the message for good), `shutdown`.
    pub reason: &'static str,
}

/// Labels of breaker transitions.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    /// State before.
    pub from: &'static str,
    /// State after.
    pub to: &'static str,
}

/// Labels with one `outcome` value.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `success` or `failure`.
    pub outcome: &'static str,
}

/// Labels of cache lookups: `hit` or `miss`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    /// `hit` or `miss`.
    pub result: &'static str,
}

/// The exemplar of a latency sample: the trace it belongs to.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceExemplar {
    /// 32 hex digits, as Jaeger's `/trace/{id}` takes it.
    pub trace_id: String,
}

/// A latency histogram whose buckets carry [`TraceExemplar`]s.
pub type TracedHistogram = HistogramWithExemplars<TraceExemplar>;

type TracedHistogramFamily<L> = Family<L, TracedHistogram, fn() -> TracedHistogram>;

/// 100 µs .. ~26 s
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0001, 2.0, 19)
}

fn latency_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

fn traced_latency_histogram() -> TracedHistogram {
    HistogramWithExemplars::new(latency_buckets())
}

/// Every metric of the service.
pub struct Metrics {
    registry: Registry,
    /// HTTP request duration by method, route and status (exemplars: trace ids).
    pub http_request_duration: TracedHistogramFamily<HttpLabels>,
    /// Database operation duration by operation, collection and outcome (exemplars: trace ids).
    pub db_operation_duration: TracedHistogramFamily<DbOpLabels>,
    /// Whether samples get trace exemplars: true while traces are exported.
    exemplars: AtomicBool,
    /// One series per breaker state, 1 for the current one.
    pub breaker_state: Family<StateLabels, Gauge>,
    /// Breaker transitions by from/to.
    pub breaker_transitions: Family<TransitionLabels, Counter>,
    /// Calls refused by the breaker (or because no client could be built).
    pub breaker_refused_calls: Counter,
    /// Database calls shed by admission control (overload; not database failures).
    pub admission_shed: Family<ShedLabels, Counter>,
    /// Admission control's current concurrency limit.
    pub admission_limit: Gauge,
    /// Database calls admitted and running now.
    pub admission_in_flight: Gauge,
    /// Reconnect attempts by outcome.
    pub reconnect_attempts: Family<OutcomeLabels, Counter>,
    /// Ping latency.
    pub ping_duration: Histogram,
    /// 1 while the database is connected.
    pub db_up: Gauge,
    /// Members of the deployment by state (`primary`, `secondary`, `other`, `down`,
    /// `unknown`), as the driver's monitor sees them.
    pub db_members: Family<StateLabels, Gauge>,
    /// 1 while `/readiness` answers 200.
    pub ready: Gauge,
    /// HTTP requests being served now.
    pub http_requests_in_flight: Gauge,
    /// Trace exports that failed (spans dropped).
    pub trace_export_failures: Counter,
    /// Spans dropped by the exporter's queue.
    pub spans_dropped: Counter<u64, AtomicU64>,
    /// Requests refused by a rate limit (429).
    pub rate_limit_refused: Family<RateLimitLabels, Counter>,
    /// Addresses or accounts a rate limiter tracks (after the last pruning).
    pub rate_limit_keys: Family<RateLimitLabels, Gauge>,
    /// Configured allowance of each rate limit (requests at once; 0: no limit).
    pub rate_limit_allowed: Family<RateLimitLabels, Gauge>,
    /// Configured period of each rate limit (the time to refill the whole allowance).
    pub rate_limit_period: Family<RateLimitLabels, Gauge>,
    /// Mail handed to the mail server, by kind.
    pub mail_sent: Family<MailLabels, Counter>,
    /// Mail given up, by kind and reason.
    pub mail_failed: Family<MailFailedLabels, Counter>,
    /// Failed delivery attempts that will be retried, by kind.
    pub mail_retries: Family<MailLabels, Counter>,
    /// Mail waiting in the queue or being sent now.
    pub mail_queued: Gauge,
    /// `GET /api/tree` answers looked up in this replica's tree cache, by result.
    pub tree_cache_lookups: Family<LookupLabels, Counter>,
    /// Bytes of answers the tree cache holds.
    pub tree_cache_bytes: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// All families, registered under the `aila_` prefix.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("aila");
        let http_request_duration = TracedHistogramFamily::<HttpLabels>::new_with_constructor(
            traced_latency_histogram as fn() -> TracedHistogram,
        );
        let db_operation_duration = TracedHistogramFamily::<DbOpLabels>::new_with_constructor(
            traced_latency_histogram as fn() -> TracedHistogram,
        );
        let breaker_state = Family::<StateLabels, Gauge>::default();
        let breaker_transitions = Family::<TransitionLabels, Counter>::default();
        let breaker_refused_calls = Counter::default();
        let reconnect_attempts = Family::<OutcomeLabels, Counter>::default();
        let admission_shed = Family::<ShedLabels, Counter>::default();
        for when in ["at_door", "at_once", "after_queue"] {
            let _ = admission_shed.get_or_create(&ShedLabels { when });
        }
        let admission_limit = Gauge::default();
        let admission_in_flight = Gauge::default();
        let ping_duration = latency_histogram();
        let db_up = Gauge::default();
        let db_members = Family::<StateLabels, Gauge>::default();
        let ready = Gauge::default();
        let http_requests_in_flight = Gauge::default();
        let trace_export_failures = Counter::default();
        let spans_dropped = Counter::default();
        let rate_limit_refused = Family::<RateLimitLabels, Counter>::default();
        let rate_limit_keys = Family::<RateLimitLabels, Gauge>::default();
        let rate_limit_allowed = Family::<RateLimitLabels, Gauge>::default();
        let rate_limit_period = Family::<RateLimitLabels, Gauge>::default();
        let mail_sent = Family::<MailLabels, Counter>::default();
        let mail_failed = Family::<MailFailedLabels, Counter>::default();
        let mail_retries = Family::<MailLabels, Counter>::default();
        let mail_queued = Gauge::default();
        let tree_cache_lookups = Family::<LookupLabels, Counter>::default();
        for result in ["hit", "miss"] {
            let _ = tree_cache_lookups.get_or_create(&LookupLabels { result });
        }
        let tree_cache_bytes = Gauge::default();
        registry.register(
            "tree_cache_lookups",
            "GET /api/tree answers looked up in this replica's cache of assembled trees, by result (hit: served without reading persons and links)",
            tree_cache_lookups.clone(),
        );
        registry.register_with_unit(
            "tree_cache",
            "Size of the assembled trees this replica keeps",
            prometheus_client::registry::Unit::Bytes,
            tree_cache_bytes.clone(),
        );
        registry.register(
            "mail_sent",
            "Mail accepted by the mail server, by kind",
            mail_sent.clone(),
        );
        registry.register(
            "mail_failed",
            "Mail given up, by kind and reason (queue_full, deadline, rejected, shutdown)",
            mail_failed.clone(),
        );
        registry.register(
            "mail_retries",
            "Failed delivery attempts that are retried, by kind",
            mail_retries.clone(),
        );
        registry.register(
            "mail_queued",
            "Mail waiting in the queue or being sent now",
            mail_queued.clone(),
        );
        registry.register(
            "rate_limit_refused_requests",
            "Requests refused with 429 by a rate limit, by scope and key (address or account)",
            rate_limit_refused.clone(),
        );
        registry.register(
            "rate_limit_keys",
            "Addresses or accounts a rate limiter tracks (per process; pruned periodically)",
            rate_limit_keys.clone(),
        );
        registry.register(
            "rate_limit_allowed_requests",
            "Configured allowance of a rate limit: requests at once, refilled over the period (0: no limit)",
            rate_limit_allowed.clone(),
        );
        registry.register_with_unit(
            "rate_limit_period",
            "Configured period of a rate limit: the time to refill its whole allowance",
            prometheus_client::registry::Unit::Seconds,
            rate_limit_period.clone(),
        );
        registry.register_with_unit(
            "http_server_request_duration",
            "Duration of HTTP requests by method, route template and status",
            prometheus_client::registry::Unit::Seconds,
            http_request_duration.clone(),
        );
        registry.register_with_unit(
            "db_operation_duration",
            "Duration of database operations by operation, collection and outcome",
            prometheus_client::registry::Unit::Seconds,
            db_operation_duration.clone(),
        );
        registry.register(
            "db_circuit_breaker_state",
            "Circuit breaker state: 1 for the current state",
            breaker_state.clone(),
        );
        registry.register(
            "db_circuit_breaker_transitions",
            "Circuit breaker state changes",
            breaker_transitions.clone(),
        );
        registry.register(
            "db_circuit_breaker_refused_calls",
            "Database calls refused without trying",
            breaker_refused_calls.clone(),
        );
        registry.register(
            "db_admission_shed_calls",
            "Database calls shed by admission control because of overload (not database failures), by when: at_door (a request refused before its work started, every slot and the queue being full), at_once or after_queue (at its first database call)",
            admission_shed.clone(),
        );
        registry.register(
            "db_admission_limit",
            "Admission control's current concurrency limit on database calls",
            admission_limit.clone(),
        );
        registry.register(
            "db_admission_in_flight",
            "Database calls admitted and running now",
            admission_in_flight.clone(),
        );
        registry.register(
            "db_reconnect_attempts",
            "Reconnect pings by outcome",
            reconnect_attempts.clone(),
        );
        registry.register_with_unit(
            "db_ping_duration",
            "Latency of the supervisor's pings",
            prometheus_client::registry::Unit::Seconds,
            ping_duration.clone(),
        );
        registry.register("db_up", "1 while the database is connected", db_up.clone());
        registry.register(
            "db_members",
            "Members of the deployment by state, as the driver's monitor sees them (a member down is not an outage while a primary serves)",
            db_members.clone(),
        );
        for state in ["primary", "secondary", "other", "down", "unknown"] {
            let _ = db_members.get_or_create(&StateLabels { state });
        }
        registry.register("ready", "1 while /readiness answers 200", ready.clone());
        registry.register(
            "http_server_requests_in_flight",
            "HTTP requests being served now",
            http_requests_in_flight.clone(),
        );
        registry.register(
            "trace_export_failures",
            "Failed trace exports (their spans are dropped)",
            trace_export_failures.clone(),
        );
        registry.register(
            "trace_spans_dropped",
            "Spans dropped before export",
            spans_dropped.clone(),
        );
        for s in BreakerState::ALL {
            breaker_state
                .get_or_create(&StateLabels { state: s.as_str() })
                .set(i64::from(s == BreakerState::Closed));
        }
        for outcome in ["success", "failure"] {
            let _ = reconnect_attempts.get_or_create(&OutcomeLabels { outcome });
        }
        // Every transition the breaker can make, at 0 from the start: the family is then
        // always exposed, and Prometheus's increase() sees the first transition (a series
        // that appears already at 1 counts as no increase).
        for (from, to) in [
            (BreakerState::Closed, BreakerState::Open),
            (BreakerState::Open, BreakerState::HalfOpen),
            (BreakerState::HalfOpen, BreakerState::Closed),
            (BreakerState::HalfOpen, BreakerState::Open),
        ] {
            let _ = breaker_transitions.get_or_create(&TransitionLabels {
                from: from.as_str(),
                to: to.as_str(),
            });
        }
        Arc::new(Self {
            registry,
            http_request_duration,
            db_operation_duration,
            exemplars: AtomicBool::new(true),
            breaker_state,
            breaker_transitions,
            breaker_refused_calls,
            admission_shed,
            admission_limit,
            admission_in_flight,
            reconnect_attempts,
            ping_duration,
            db_up,
            db_members,
            ready,
            http_requests_in_flight,
            trace_export_failures,
            spans_dropped,
            rate_limit_refused,
            rate_limit_keys,
            rate_limit_allowed,
            rate_limit_period,
            mail_sent,
            mail_failed,
            mail_retries,
            mail_queued,
            tree_cache_lookups,
            tree_cache_bytes,
        })
    }

    /// Records one breaker transition.
    pub fn breaker_transition(&self, t: &Transition) {
        self.breaker_transitions
            .get_or_create(&TransitionLabels {
                from: t.from.as_str(),
                to: t.to.as_str(),
            })
            .inc();
        for s in BreakerState::ALL {
            self.breaker_state
                .get_or_create(&StateLabels { state: s.as_str() })
                .set(i64::from(s == t.to));
        }
    }

    /// Turns trace exemplars on or off (telemetry turns them off when traces go nowhere).
    pub fn set_exemplars(&self, on: bool) {
        self.exemplars.store(on, Ordering::Relaxed);
    }

    /// The exemplar for a sample observed in `span`: its trace, when sampled and exported.
    fn exemplar(&self, span: &tracing::Span) -> Option<TraceExemplar> {
        if !self.exemplars.load(Ordering::Relaxed) {
            return None;
        }
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        (sc.is_valid() && sc.is_sampled()).then(|| TraceExemplar {
            trace_id: sc.trace_id().to_string(),
        })
    }

    /// Records one HTTP request, served in `span`.
    pub fn http_request(&self, labels: &HttpLabels, took: Duration, span: &tracing::Span) {
        self.http_request_duration.get_or_create(labels).observe(
            took.as_secs_f64(),
            self.exemplar(span),
            Some(SystemTime::now()),
        );
    }

    /// Records one HTTP request answered without a span (shed at the door).
    pub fn http_request_untraced(&self, labels: &HttpLabels, took: Duration) {
        self.http_request_duration
            .get_or_create(labels)
            .observe(took.as_secs_f64(), None, None);
    }

    /// Records one database operation, run in `span`.
    pub fn db_operation(
        &self,
        operation: &'static str,
        collection: &'static str,
        outcome: &'static str,
        took: Duration,
        span: &tracing::Span,
    ) {
        self.db_operation_duration
            .get_or_create(&DbOpLabels {
                operation,
                collection,
                outcome,
            })
            .observe(
                took.as_secs_f64(),
                self.exemplar(span),
                Some(SystemTime::now()),
            );
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
