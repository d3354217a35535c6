//! The database gateway: the only owner of the `mongodb::Client`. Every database operation
//! of the service goes through [`Gateway::run`], which
//! 1. asks admission control for a slot, once per HTTP request (none within the short
//!    queue: [`DbError::Shed`] at once, counted as shed, never as a database failure);
//! 2. asks the breaker for admission (refused: [`DbError::Unavailable`] at once);
//! 3. runs the operation under the per-operation deadline (the driver has no socket timeout);
//! 4. classifies the outcome ([`classify`]) and settles it through one table
//!    ([`Gateway::settle`]): breaker outcome, metric label, span error and the caller's error,
//!    inside a client span `{operation} {collection}` carrying the OpenTelemetry database
//!    attributes.
//!
//! The supervisor's ping ([`Gateway::ping`]) skips admission (the limit stays below the
//! driver's pool size, so the ping never queues behind a burst for a pooled connection)
//! and is judged by the breaker only when the supervisor itself opened it.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bson::{Document, doc};
use mongodb::{Collection, Database};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{Instrument, field::Empty};

use super::classify::{ErrorClass, classify, describe};
use super::client::BuiltClient;
use super::state::DbState;
use crate::metrics::Metrics;
use crate::redact::Redactor;
use crate::resilience::admission::{Admission, AdmissionConfig};
use crate::resilience::breaker::{Breaker, BreakerState, Caller, Outcome, PingAdmission};

/// A failed database call, as handlers see it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// Refused without trying: the breaker is open (or half-open with its trials in flight),
    /// or no client could be built yet.
    #[error("database temporarily unavailable (retry after {retry_after:?})")]
    Unavailable {
        /// When to try again.
        retry_after: Duration,
    },
    /// Shed by admission control: too many database calls at once (overload, not a
    /// database failure).
    #[error("too many database calls at once (retry after {retry_after:?})")]
    Shed {
        /// When to try again.
        retry_after: Duration,
    },
    /// The database failed during the call (timeout, connection lost, not primary, ...).
    #[error("database failure ({kind}): {message}")]
    Failed {
        /// OpenTelemetry `error.type`: `timeout`, `io`, `server_selection`, ...
        kind: &'static str,
        /// Redacted error text.
        message: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// A unique index refused the write.
    #[error("duplicate key: {0}")]
    DuplicateKey(String),
    /// The server refused the operation for a reason that is not the database's health.
    #[error("database rejected the operation ({kind}): {message}")]
    Rejected {
        /// Short kind.
        kind: &'static str,
        /// Redacted error text.
        message: String,
    },
}

impl DbError {
    /// True for the errors that mean "try again later" (HTTP 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DbError::Unavailable { .. } | DbError::Failed { .. } | DbError::Shed { .. }
        )
    }
}

/// Why the supervisor's ping did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingError {
    /// The breaker refused it (its trials are all in flight): says nothing about the
    /// database, try again later.
    Refused,
    /// The database did not answer in time.
    TimedOut(String),
    /// The database answered with a failure, or no client exists yet.
    Failed(String),
}

impl std::fmt::Display for PingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PingError::Refused => f.write_str("refused by the circuit breaker (trials in flight)"),
            PingError::TimedOut(m) | PingError::Failed(m) => f.write_str(m),
        }
    }
}

/// A failure planted by a test: the `skip`+1-th matching operation fails as if the database
/// had dropped the connection, without running. Only with the `fault-injection` feature
/// (the test targets enable it; the service's own build never contains it).
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone)]
pub struct InjectedFault {
    /// Operation name to match (`insert_one`, ...).
    pub operation: &'static str,
    /// Collection to match.
    pub collection: &'static str,
    /// Matching operations to let through first.
    pub skip: u32,
}

/// Connection facts for spans.
#[derive(Debug, Clone, Default)]
struct Target {
    db: Option<Database>,
    server_address: String,
    server_port: Option<u16>,
}

struct Inner {
    target: RwLock<Arc<Target>>,
    db_name: String,
    breaker: Breaker,
    admission: Admission,
    operation_timeout: Duration,
    metrics: Arc<Metrics>,
    redactor: Redactor,
    state: watch::Receiver<DbState>,
    /// Microseconds after `epoch` of the last operation that succeeded (0: none yet).
    last_success: AtomicU64,
    epoch: Instant,
    #[cfg(feature = "fault-injection")]
    faults: std::sync::Mutex<Vec<InjectedFault>>,
    #[cfg(feature = "fault-injection")]
    lost_replies: std::sync::Mutex<Vec<InjectedFault>>,
}

/// Handle to the gateway. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("db_name", &self.inner.db_name)
            .finish()
    }
}

/// How one call ended, before its effects are settled.
enum Verdict {
    Success,
    Shed {
        retry_after: Duration,
        queued: bool,
    },
    Refused {
        retry_after: Duration,
        why: &'static str,
    },
    NoClient,
    TimedOut {
        after: Duration,
    },
    Driver(mongodb::error::Error),
    #[cfg(feature = "fault-injection")]
    Injected,
}

/// `{operation} {collection}` (just the operation for a database command): the span's name.
fn span_name(operation: &'static str, collection: &'static str) -> String {
    if collection.is_empty() {
        operation.to_string()
    } else {
        format!("{operation} {collection}")
    }
}

/// Who calls and how: an ordinary operation goes through admission control.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lane {
    Operation,
    SupervisorTrial,
    Ping,
}

impl Gateway {
    /// A gateway with no client yet (the supervisor installs one), with the default
    /// admission limits.
    pub fn new(
        db_name: String,
        breaker: Breaker,
        operation_timeout: Duration,
        metrics: Arc<Metrics>,
        redactor: Redactor,
        state: watch::Receiver<DbState>,
    ) -> Self {
        Self::with_admission(
            db_name,
            breaker,
            Admission::new(AdmissionConfig::default()),
            operation_timeout,
            metrics,
            redactor,
            state,
        )
    }

    /// A gateway with its admission control.
    pub fn with_admission(
        db_name: String,
        breaker: Breaker,
        admission: Admission,
        operation_timeout: Duration,
        metrics: Arc<Metrics>,
        redactor: Redactor,
        state: watch::Receiver<DbState>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                target: RwLock::new(Arc::new(Target::default())),
                db_name,
                breaker,
                admission,
                operation_timeout,
                metrics,
                redactor,
                state,
                last_success: AtomicU64::new(0),
                epoch: Instant::now(),
                #[cfg(feature = "fault-injection")]
                faults: std::sync::Mutex::new(Vec::new()),
                #[cfg(feature = "fault-injection")]
                lost_replies: std::sync::Mutex::new(Vec::new()),
            }),
        }
    }

    /// Installs the client built by the supervisor.
    pub fn install(&self, built: &BuiltClient) {
        let target = Target {
            db: Some(built.client.database(&self.inner.db_name)),
            server_address: built.server_address.clone(),
            server_port: built.server_port,
        };
        *self.inner.target.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(target);
    }

    /// True once a client is installed.
    pub fn has_client(&self) -> bool {
        self.target().db.is_some()
    }

    /// The breaker guarding the database.
    pub fn breaker(&self) -> &Breaker {
        &self.inner.breaker
    }

    /// Admission control in front of the database. Its [`Admission::overloaded`] says
    /// whether this process is refusing (almost) everything because of overload.
    pub fn admission(&self) -> &Admission {
        &self.inner.admission
    }

    /// The database name.
    pub fn db_name(&self) -> &str {
        &self.inner.db_name
    }

    /// The redactor for this database's credentials.
    pub fn redactor(&self) -> &Redactor {
        &self.inner.redactor
    }

    /// The per-operation deadline.
    pub fn operation_timeout(&self) -> Duration {
        self.inner.operation_timeout
    }

    /// True when an operation succeeded at or after `since` (the database is answering,
    /// whatever a ping says).
    pub fn succeeded_since(&self, since: Instant) -> bool {
        let last = self.inner.last_success.load(Ordering::Relaxed);
        last != 0
            && last
                >= since
                    .saturating_duration_since(self.inner.epoch)
                    .as_micros() as u64
    }

    /// Plants a failure (test targets only: the `fault-injection` feature).
    #[cfg(feature = "fault-injection")]
    pub fn inject_fault(&self, fault: InjectedFault) {
        self.inner
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fault);
    }

    /// Plants a lost reply (test targets only): the `skip`+1-th matching operation runs
    /// and succeeds in the database, then fails as if the connection had dropped before
    /// its answer came back (the ambiguous write: applied, but the caller cannot know).
    #[cfg(feature = "fault-injection")]
    pub fn inject_lost_reply(&self, fault: InjectedFault) {
        self.inner
            .lost_replies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fault);
    }

    fn target(&self) -> Arc<Target> {
        self.inner
            .target
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    #[cfg(feature = "fault-injection")]
    fn take_fault(&self, operation: &str, collection: &str) -> bool {
        Self::take_from(&self.inner.faults, operation, collection)
    }

    #[cfg(feature = "fault-injection")]
    fn take_from(
        faults: &std::sync::Mutex<Vec<InjectedFault>>,
        operation: &str,
        collection: &str,
    ) -> bool {
        let mut faults = faults.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = faults
            .iter()
            .position(|f| f.operation == operation && f.collection == collection)
        {
            if faults[i].skip == 0 {
                faults.remove(i);
                return true;
            }
            faults[i].skip -= 1;
        }
        false
    }

    fn no_client_retry_after(&self) -> Duration {
        let state = self.inner.state.borrow();
        state
            .next_attempt_in_ms()
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(100))
    }

    /// Runs `op` on collection `collection` through admission control and the breaker,
    /// under the deadline.
    ///
    /// `operation` is the OpenTelemetry `db.operation.name` (`find`, `insert_one`, ...).
    pub async fn run<T, D, F, Fut>(
        &self,
        operation: &'static str,
        collection: &'static str,
        op: F,
    ) -> Result<T, DbError>
    where
        D: Send + Sync,
        F: FnOnce(Collection<D>) -> Fut,
        Fut: Future<Output = mongodb::error::Result<T>>,
    {
        self.run_with_deadline(operation, collection, self.inner.operation_timeout, op)
            .await
    }

    /// Like [`Gateway::run`] with its own deadline (index creation may take longer than a
    /// request's operation).
    pub async fn run_with_deadline<T, D, F, Fut>(
        &self,
        operation: &'static str,
        collection: &'static str,
        deadline: Duration,
        op: F,
    ) -> Result<T, DbError>
    where
        D: Send + Sync,
        F: FnOnce(Collection<D>) -> Fut,
        Fut: Future<Output = mongodb::error::Result<T>>,
    {
        self.guarded(
            Lane::Operation,
            operation,
            collection,
            deadline,
            |db: Database| op(db.collection::<D>(collection)),
        )
        .await
    }

    /// Runs a command against the database (not a collection) through the breaker.
    pub async fn run_command(
        &self,
        operation: &'static str,
        command: Document,
    ) -> Result<Document, DbError> {
        self.guarded(
            Lane::Operation,
            operation,
            "",
            self.inner.operation_timeout,
            |db: Database| async move { db.run_command(command).await },
        )
        .await
    }

    /// The supervisor's trial operation while operations hold the breaker open: a real
    /// query (a `users` lookup by an id that does not exist), judged like any operation.
    pub async fn trial_operation(&self) -> Result<(), DbError> {
        let id = bson::oid::ObjectId::new();
        self.guarded(
            Lane::SupervisorTrial,
            "find_one",
            "users",
            self.inner.operation_timeout,
            |db: Database| async move {
                db.collection::<Document>("users")
                    .find_one(doc! { "_id": id })
                    .await
                    .map(|_| ())
            },
        )
        .await
    }

    /// The supervisor's ping: the breaker's probe when the supervisor opened it, otherwise
    /// not judged. Returns its latency.
    pub async fn ping(&self, deadline: Duration) -> Result<Duration, PingError> {
        let started = Instant::now();
        let result = self
            .guarded(
                Lane::Ping,
                "ping",
                "",
                deadline,
                |db: Database| async move { db.run_command(doc! { "ping": 1 }).await },
            )
            .await;
        match result {
            Ok(_) => Ok(started.elapsed()),
            Err(DbError::Unavailable { .. }) if self.has_client() => Err(PingError::Refused),
            Err(DbError::Failed {
                kind: "timeout",
                message,
                ..
            }) => Err(PingError::TimedOut(message)),
            Err(e) => Err(PingError::Failed(e.to_string())),
        }
    }

    async fn guarded<T, F, Fut>(
        &self,
        lane: Lane,
        operation: &'static str,
        collection: &'static str,
        deadline: Duration,
        op: F,
    ) -> Result<T, DbError>
    where
        F: FnOnce(Database) -> Fut,
        Fut: Future<Output = mongodb::error::Result<T>>,
    {
        let target = self.target();
        let span = tracing::info_span!(
            "db.operation",
            otel.name = span_name(operation, collection),
            otel.kind = "client",
            otel.status_code = Empty,
            db.system.name = "mongodb",
            db.namespace = %self.inner.db_name,
            db.collection.name = Empty,
            db.operation.name = operation,
            server.address = %target.server_address,
            server.port = Empty,
            error.type = Empty,
            db.response.status_code = Empty,
        );
        if !collection.is_empty() {
            span.record("db.collection.name", collection);
        }
        if let Some(port) = target.server_port {
            span.record("server.port", i64::from(port));
        }
        let started = Instant::now();

        // 1. Admission control (ordinary operations only).
        let mut slot = None;
        if lane == Lane::Operation {
            match self.inner.admission.admit_call().await {
                Ok(s) => slot = Some(s),
                Err(shed) => {
                    let verdict = Verdict::Shed {
                        retry_after: shed.retry_after,
                        queued: shed.queued,
                    };
                    return Err(self.refuse(&span, operation, collection, started, None, verdict));
                }
            }
        }
        // 2. The breaker.
        let permit = match lane {
            Lane::Ping => match self.inner.breaker.admit_ping() {
                PingAdmission::Free => None,
                PingAdmission::Probe(p) => Some(p),
            },
            Lane::Operation | Lane::SupervisorTrial => {
                let caller = match lane {
                    Lane::SupervisorTrial => Caller::Supervisor,
                    _ => Caller::Ordinary,
                };
                match self.inner.breaker.try_acquire(caller) {
                    Ok(p) => Some(p),
                    Err(refused) => {
                        if let Some(s) = slot.as_mut() {
                            s.no_sample();
                        }
                        let why = match refused.state {
                            BreakerState::HalfOpen => "circuit_half_open",
                            _ => "circuit_open",
                        };
                        let verdict = Verdict::Refused {
                            retry_after: refused.retry_after,
                            why,
                        };
                        return Err(
                            self.refuse(&span, operation, collection, started, None, verdict)
                        );
                    }
                }
            }
        };
        let Some(db) = target.db.clone() else {
            if let Some(s) = slot.as_mut() {
                s.no_sample();
            }
            let verdict = Verdict::NoClient;
            return Err(self.refuse(&span, operation, collection, started, permit, verdict));
        };
        // 3. The call, under its deadline.
        #[cfg(feature = "fault-injection")]
        if self.take_fault(operation, collection) {
            let verdict = Verdict::Injected;
            return Err(self.refuse(&span, operation, collection, started, permit, verdict));
        }
        let (verdict, value) =
            match tokio::time::timeout(deadline, op(db).instrument(span.clone())).await {
                Ok(Ok(v)) => (Verdict::Success, Some(v)),
                Ok(Err(e)) => (Verdict::Driver(e), None),
                Err(_) => (Verdict::TimedOut { after: deadline }, None),
            };
        drop(slot);
        #[cfg(feature = "fault-injection")]
        let verdict = match verdict {
            Verdict::Success
                if Self::take_from(&self.inner.lost_replies, operation, collection) =>
            {
                Verdict::Injected
            }
            other => other,
        };
        // 4. One table for every outcome.
        self.settle(&span, operation, collection, started, permit, verdict)?;
        Ok(value.expect("a success carries its value"))
    }

    /// [`Gateway::settle`] for a call that cannot succeed.
    fn refuse(
        &self,
        span: &tracing::Span,
        operation: &'static str,
        collection: &'static str,
        started: Instant,
        permit: Option<crate::resilience::breaker::Permit>,
        verdict: Verdict,
    ) -> DbError {
        match self.settle(span, operation, collection, started, permit, verdict) {
            Err(e) => e,
            Ok(()) => unreachable!("only a success settles to Ok"),
        }
    }

    /// The outcome table: what each way a call can end means for the breaker, the metrics,
    /// the span and the caller.
    fn settle(
        &self,
        span: &tracing::Span,
        operation: &'static str,
        collection: &'static str,
        started: Instant,
        permit: Option<crate::resilience::breaker::Permit>,
        verdict: Verdict,
    ) -> Result<(), DbError> {
        let took = started.elapsed();
        if let Verdict::Driver(e) = &verdict {
            if let mongodb::error::ErrorKind::Command(c) = e.kind.as_ref() {
                span.record("db.response.status_code", c.code.to_string());
            }
        }
        //  breaker outcome,  metric label, span error.type, error for the caller
        let (outcome, label, error_type, result): (
            Outcome,
            &'static str,
            Option<&'static str>,
            Result<(), DbError>,
        ) = match verdict {
            Verdict::Success => (Outcome::Success, "success", None, Ok(())),
            Verdict::Shed {
                retry_after,
                queued,
            } => {
                let when = if queued { "after_queue" } else { "at_once" };
                self.inner
                    .metrics
                    .admission_shed
                    .get_or_create(&crate::metrics::ShedLabels { when })
                    .inc();
                (
                    Outcome::Ignored,
                    "shed",
                    Some("shed"),
                    Err(DbError::Shed { retry_after }),
                )
            }
            Verdict::Refused { retry_after, why } => (
                Outcome::Ignored,
                "refused",
                Some(why),
                Err(DbError::Unavailable { retry_after }),
            ),
            Verdict::NoClient => (
                Outcome::Ignored,
                "refused",
                Some("no_client"),
                Err(DbError::Unavailable {
                    retry_after: self.no_client_retry_after(),
                }),
            ),
            Verdict::TimedOut { after } => {
                let message = format!("no answer within {} ms", after.as_millis());
                (
                    Outcome::Failure(format!("{}: {message}", span_name(operation, collection))),
                    "failure",
                    Some("timeout"),
                    Err(DbError::Failed {
                        kind: "timeout",
                        message,
                        retry_after: Duration::ZERO,
                    }),
                )
            }
            #[cfg(feature = "fault-injection")]
            Verdict::Injected => (
                Outcome::Failure("injected failure".into()),
                "failure",
                Some("injected"),
                Err(DbError::Failed {
                    kind: "injected",
                    message: "injected failure".into(),
                    retry_after: Duration::ZERO,
                }),
            ),
            Verdict::Driver(e) => {
                let message = self.inner.redactor.scrub(&describe(&e));
                match classify(&e) {
                    ErrorClass::DatabaseFailure(kind) => {
                        tracing::warn!(parent: span, error.type = kind, "database failure: {message}");
                        (
                            Outcome::Failure(format!("{kind}: {message}")),
                            "failure",
                            Some(kind),
                            Err(DbError::Failed {
                                kind,
                                message,
                                retry_after: Duration::ZERO,
                            }),
                        )
                    }
                    ErrorClass::DuplicateKey => (
                        Outcome::Ignored,
                        "rejected",
                        Some("duplicate_key"),
                        Err(DbError::DuplicateKey(message)),
                    ),
                    ErrorClass::Rejected(kind) => (
                        Outcome::Ignored,
                        "rejected",
                        Some(kind),
                        Err(DbError::Rejected { kind, message }),
                    ),
                }
            }
        };
        if let Some(permit) = permit {
            permit.record(outcome);
        }
        let metric_collection = if collection.is_empty() {
            "(database)"
        } else {
            collection
        };
        self.inner
            .metrics
            .db_operation(operation, metric_collection, label, took, span);
        match label {
            "success" => {
                let at = Instant::now().saturating_duration_since(self.inner.epoch);
                self.inner
                    .last_success
                    .store((at.as_micros() as u64).max(1), Ordering::Relaxed);
            }
            "refused" => {
                self.inner.metrics.breaker_refused_calls.inc();
            }
            _ => {}
        }
        if let Some(kind) = error_type {
            span.record("error.type", kind);
            // The caller's own conflict is not an error of the call.
            if kind != "duplicate_key" {
                span.record("otel.status_code", "ERROR");
            }
        }
        match result {
            Ok(()) => Ok(()),
            // A database failure's hint comes from the breaker as it is after recording it.
            Err(DbError::Failed { kind, message, .. }) => Err(DbError::Failed {
                kind,
                message,
                retry_after: self.retry_after_hint(),
            }),
            Err(e) => Err(e),
        }
    }

    fn retry_after_hint(&self) -> Duration {
        self.inner
            .breaker
            .snapshot()
            .next_probe_in_ms()
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(100))
    }
}
