//! End to end in a real Jaeger: the real binary exports over OTLP/gRPC to a real Jaeger,
//! serves requests (one carrying a W3C `traceparent`), lives through a database outage, is
//! stopped with SIGTERM (which flushes its spans), and Jaeger's query API must then show
//! the start-up trace (its root spanning all of it), pings, HTTP server spans, database
//! client spans and the breaker's transitions; the start-up log line names that trace.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aila_api::db::indexes::INDEXES;
use serde_json::json;

use crate::common::{DEADLINE, Database, wait_until};
use crate::jaeger::{Jaeger, Span, Trace, same_id};
use crate::service::Service;

/// A made-up caller's trace and span ids.
const CALLER_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

/// What the run must show, and what it did show (printed for the record).
#[derive(Debug, Default)]
struct Findings {
    startup_trace: String,
    traces: usize,
    spans: usize,
    ok_pings: usize,
    failed_pings: usize,
    http_spans: usize,
    outage_error_types: BTreeSet<String>,
    transitions: Vec<String>,
}

macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

fn all_spans(traces: &[Trace]) -> impl Iterator<Item = (&Trace, &Span)> {
    traces
        .iter()
        .flat_map(|t| t.spans.iter().map(move |s| (t, s)))
}

fn is_db_client(s: &Span) -> bool {
    s.str("db.system.name").is_some()
}

fn check_startup(traces: &[Trace], f: &mut Findings) -> Result<(), String> {
    let startups: Vec<(&Trace, &Span)> = all_spans(traces)
        .filter(|(_, s)| s.name == "startup" && s.is_root())
        .collect();
    ensure!(
        startups.len() == 1,
        "expected one start-up trace, found {}",
        startups.len()
    );
    let (trace, root) = startups[0];
    f.startup_trace = trace.trace_id.clone();
    // The root begins before and ends after every span of its trace: the phases that ran
    // before telemetry existed (config.load, telemetry.init) included. Jaeger rounds times
    // to microseconds independently for start and duration: 1 µs of slack at the end.
    let root_end = root.start_us + root.duration_us;
    for s in trace.spans.iter().filter(|s| !s.is_root()) {
        ensure!(
            s.start_us >= root.start_us,
            "{} starts {} µs before its start-up root span",
            s.name,
            root.start_us - s.start_us
        );
        ensure!(
            s.start_us + s.duration_us <= root_end + 1,
            "{} ends {} µs after its start-up root span",
            s.name,
            s.start_us + s.duration_us - root_end
        );
    }
    let children: Vec<&Span> = trace.children(root).collect();
    let phases = [
        "config.load",
        "telemetry.init",
        "db.client.configure",
        "db.connect",
        "db.indexes",
        "http.listen",
    ];
    let mut last_start = 0;
    for phase in phases {
        let span = children.iter().find(|s| s.name == phase).ok_or_else(|| {
            let names: Vec<&str> = children.iter().map(|s| s.name.as_str()).collect();
            format!("start-up phase {phase} missing; the start-up span has {names:?}")
        })?;
        ensure!(
            span.start_us >= last_start,
            "start-up phase {phase} started before the previous phase"
        );
        last_start = span.start_us;
    }
    let connect = children.iter().find(|s| s.name == "db.connect").unwrap();
    ensure!(
        connect.str("db.connect.result") == Some("connected"),
        "db.connect result: {:?}",
        connect.tags
    );
    ensure!(
        connect
            .num("db.ping.latency_ms")
            .is_some_and(|ms| ms >= 0.0),
        "db.connect without its ping latency: {:?}",
        connect.tags
    );
    let indexes = children.iter().find(|s| s.name == "db.indexes").unwrap();
    let index_spans: Vec<&Span> = trace
        .children(indexes)
        .filter(|s| s.name.starts_with("db.index "))
        .collect();
    ensure!(
        index_spans.len() == INDEXES.len(),
        "expected one db.index span per index ({}), found {}",
        INDEXES.len(),
        index_spans.len()
    );
    for spec in INDEXES {
        let span = index_spans
            .iter()
            .find(|s| {
                s.str("db.collection.name") == Some(spec.collection)
                    && s.str("index.name") == Some(spec.name().as_str())
            })
            .ok_or_else(|| format!("no db.index span for {}", spec.qualified_name()))?;
        ensure!(
            span.name == format!("db.index {}", spec.qualified_name()),
            "db.index span named {:?}",
            span.name
        );
        ensure!(
            span.str("index.keys").is_some(),
            "{} has no index.keys",
            span.name
        );
        let result = span
            .str("index.result")
            .ok_or_else(|| format!("{} has no index.result", span.name))?;
        if spec.required() {
            ensure!(
                result == "created",
                "required index {} has result {result}",
                span.name
            );
        } else {
            ensure!(
                ["created", "refused"].contains(&result),
                "{} has result {result}",
                span.name
            );
        }
        // The create_index call itself is a database client span below it.
        ensure!(
            trace
                .children(span)
                .any(|c| is_db_client(c) && c.str("db.operation.name") == Some("create_index")),
            "{} has no create_index client span",
            span.name
        );
    }
    Ok(())
}

fn check_pings(traces: &[Trace], f: &mut Findings) -> Result<(), String> {
    for (trace, ping) in all_spans(traces).filter(|(_, s)| s.name == "db.ping") {
        match ping.str("db.ping.result") {
            Some("ok") => {
                ensure!(
                    ping.num("db.ping.latency_ms").is_some_and(|ms| ms >= 0.0),
                    "an ok ping without db.ping.latency_ms: {:?}",
                    ping.tags
                );
                ensure!(
                    trace.children(ping).any(|c| is_db_client(c)
                        && c.str("db.operation.name") == Some("ping")
                        && c.str("db.system.name") == Some("mongodb")),
                    "a db.ping span without its database client span"
                );
                f.ok_pings += 1;
            }
            Some("failed") => {
                ensure!(
                    trace
                        .children(ping)
                        .any(|c| is_db_client(c) && c.str("error.type").is_some()),
                    "a failed ping whose client span has no error.type"
                );
                f.failed_pings += 1;
            }
            other => return Err(format!("db.ping with result {other:?}")),
        }
    }
    ensure!(f.ok_pings >= 3, "only {} successful ping spans", f.ok_pings);
    ensure!(f.failed_pings >= 1, "no failed ping span from the outage");
    let reconnects: Vec<&Span> = all_spans(traces)
        .map(|(_, s)| s)
        .filter(|s| s.name == "db.reconnect")
        .collect();
    for result in ["failed", "connected"] {
        ensure!(
            reconnects
                .iter()
                .any(|s| s.str("db.connect.result") == Some(result)),
            "no db.reconnect span with result {result}"
        );
    }
    Ok(())
}

fn check_http(traces: &[Trace], db_name: &str, f: &mut Findings) -> Result<(), String> {
    let server: Vec<(&Trace, &Span)> = all_spans(traces)
        .filter(|(_, s)| s.str("span.kind") == Some("server"))
        .collect();
    f.http_spans = server.len();
    for (_, s) in &server {
        let method = s
            .str("http.request.method")
            .ok_or_else(|| format!("{} without http.request.method", s.name))?;
        let route = s
            .str("http.route")
            .ok_or_else(|| format!("{} without http.route", s.name))?;
        ensure!(
            s.num("http.response.status_code").is_some(),
            "{} without http.response.status_code",
            s.name
        );
        ensure!(
            s.name == format!("{method} {route}"),
            "server span named {:?}, not `{method} {route}`",
            s.name
        );
    }
    let with = |name: &str, status: f64| {
        server
            .iter()
            .filter(move |(_, s)| {
                s.name == name && s.num("http.response.status_code") == Some(status)
            })
            .copied()
            .collect::<Vec<_>>()
    };
    for (name, status) in [
        ("POST /api/auth/register", 200.0),
        ("POST /api/persons", 200.0),
        ("GET /api/persons/{id}", 200.0),
        ("GET /api/persons", 200.0),
        ("GET /api/persons", 503.0),
        ("GET /readiness", 200.0),
        ("GET /readiness", 503.0),
    ] {
        ensure!(
            !with(name, status).is_empty(),
            "no server span `{name}` with status {status}"
        );
    }

    // The request that carried a traceparent joined the caller's trace.
    let (trace, joined) = server
        .iter()
        .find(|(t, s)| same_id(&t.trace_id, CALLER_TRACE_ID) && s.name == "GET /api/persons/{id}")
        .ok_or("the request with a traceparent is not in the caller's trace")?;
    let (parent_trace, parent_span) = joined
        .parent
        .as_ref()
        .ok_or("the traceparent request has no parent reference")?;
    ensure!(
        same_id(parent_trace, CALLER_TRACE_ID) && same_id(parent_span, CALLER_SPAN_ID),
        "the traceparent request's parent is {parent_trace}/{parent_span}"
    );
    ensure!(
        same_id(&joined.trace_id, CALLER_TRACE_ID),
        "the traceparent request's span is in trace {}",
        joined.trace_id
    );

    // Database client spans under it, with the OpenTelemetry database attributes.
    let db: Vec<&Span> = trace
        .descendants(joined)
        .into_iter()
        .filter(|s| is_db_client(s))
        .collect();
    let find = db
        .iter()
        .find(|s| s.str("db.collection.name") == Some("persons"))
        .ok_or("no database span on `persons` under GET /api/persons/{id}")?;
    ensure!(
        find.str("db.system.name") == Some("mongodb")
            && find.str("db.namespace") == Some(db_name)
            && find.str("db.operation.name").is_some()
            && find.str("server.address").is_some()
            && find.str("span.kind") == Some("client")
            && find.str("error.type").is_none(),
        "database span attributes: {:?}",
        find.tags
    );
    ensure!(
        find.name
            == format!(
                "{} persons",
                find.str("db.operation.name").unwrap_or_default()
            ),
        "database span named {:?}",
        find.name
    );

    // During the outage: every 503 has a failed database span, with error.type, below it.
    let outage = with("GET /api/persons", 503.0);
    for (trace, s) in &outage {
        let failed: Vec<&Span> = trace
            .descendants(s)
            .into_iter()
            .filter(|c| is_db_client(c) && c.str("error.type").is_some())
            .collect();
        ensure!(
            !failed.is_empty(),
            "a 503 server span without a failed database span below it"
        );
        for c in failed {
            ensure!(
                c.str("db.system.name") == Some("mongodb")
                    && c.str("db.collection.name").is_some()
                    && c.str("db.operation.name").is_some()
                    && c.str("otel.status_code") == Some("ERROR"),
                "failed database span attributes: {:?}",
                c.tags
            );
            f.outage_error_types
                .insert(c.str("error.type").unwrap().to_string());
        }
    }

    // Every database span anywhere carries the common attributes.
    for (_, s) in all_spans(traces).filter(|(_, s)| is_db_client(s)) {
        ensure!(
            s.str("db.system.name") == Some("mongodb")
                && s.str("db.operation.name").is_some()
                && s.str("span.kind") == Some("client"),
            "database span {} attributes: {:?}",
            s.name,
            s.tags
        );
    }
    Ok(())
}

fn check_breaker(traces: &[Trace], f: &mut Findings) -> Result<(), String> {
    let mut transitions: Vec<&Span> = all_spans(traces)
        .map(|(_, s)| s)
        .filter(|s| s.name == "circuit_breaker.transition")
        .collect();
    transitions.sort_by_key(|s| s.start_us);
    f.transitions.clear();
    for s in &transitions {
        let (from, to, reason) = (
            s.str("breaker.from").unwrap_or_default(),
            s.str("breaker.to").unwrap_or_default(),
            s.str("breaker.reason").unwrap_or_default(),
        );
        ensure!(
            !from.is_empty() && !to.is_empty() && !reason.is_empty(),
            "a transition span without from/to/reason: {:?}",
            s.tags
        );
        let message = format!("circuit breaker {from} => {to} ({reason})");
        ensure!(
            s.events.iter().any(|e| e
                .fields
                .values()
                .any(|v| v.as_str() == Some(message.as_str()))),
            "the transition span has no event `{message}`: {:?}",
            s.events
        );
        f.transitions.push(format!("{from} => {to} ({reason})"));
    }
    // closed => open, then open => half_open, then half_open => closed, in that order.
    let mut want = [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    .into_iter()
    .peekable();
    for s in &transitions {
        if let Some((from, to)) = want.peek() {
            if s.str("breaker.from") == Some(from) && s.str("breaker.to") == Some(to) {
                want.next();
            }
        }
    }
    ensure!(
        want.peek().is_none(),
        "breaker transitions seen {:?}; missing {:?} onwards",
        f.transitions,
        want.peek()
    );
    Ok(())
}

fn check(traces: &[Trace], db_name: &str) -> Result<Findings, String> {
    let mut f = Findings {
        traces: traces.len(),
        spans: traces.iter().map(|t| t.spans.len()).sum(),
        ..Findings::default()
    };
    check_startup(traces, &mut f)?;
    check_pings(traces, &mut f)?;
    check_http(traces, db_name, &mut f)?;
    check_breaker(traces, &mut f)?;
    Ok(f)
}

/// The trace id and link of the start-up line (`...; start-up trace ID: LINK`).
pub fn startup_trace_link(logs: &str) -> Option<(String, String)> {
    let line = logs
        .lines()
        .find(|l| l.contains("Application startup complete"))?;
    let rest = line.split("; start-up trace ").nth(1)?;
    let (id, link) = rest.split_once(": ")?;
    let link = link.split_whitespace().next()?;
    Some((id.to_string(), link.to_string()))
}

#[tokio::test]
async fn jaeger_shows_start_up_requests_database_calls_pings_and_breaker_transitions() {
    let jaeger = Jaeger::start().await;
    let mut db = Database::start().await;
    let endpoint = jaeger.otlp_endpoint();
    let ui = jaeger.url("");
    let mut service = Service::start(
        &db.url(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("JAEGER_UI_URL", ui.as_str()),
        ],
    )
    .await;
    service.wait_ready().await;

    let token = service.register("observed@example.com").await;
    let created = service
        .post(
            "/api/persons",
            json!({"first_name": "Marie", "last_name": "Curie", "gender": "female"}),
            Some(&token),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.str("id").to_string();
    let traceparent = format!("00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01");
    let sent = Instant::now();
    let r = service
        .send(
            "GET",
            &format!("/api/persons/{id}"),
            None,
            Some(&token),
            &[("traceparent", traceparent.as_str())],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(service.get("/api/persons", Some(&token)).await.status, 200);

    // How long a span takes to be queryable in Jaeger while the service runs.
    let visible_after = loop {
        let seen = jaeger.trace(CALLER_TRACE_ID).await;
        if seen
            .as_ref()
            .is_some_and(|t| t.spans.iter().any(|s| s.name == "GET /api/persons/{id}"))
        {
            break sent.elapsed();
        }
        assert!(
            sent.elapsed() < DEADLINE,
            "the traceparent request's span is not in Jaeger after {DEADLINE:?}: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // The outage: the database dies, requests fail fast, it comes back, the service recovers.
    db.kill();
    service.wait_not_ready().await;
    for _ in 0..3 {
        let r = service.get("/api/persons", Some(&token)).await;
        assert_eq!(r.status, 503, "{}", r.body);
    }
    wait_until("a failed reconnect attempt", || async {
        service.get("/health", None).await.body["reconnect"]["attempt"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    })
    .await;
    db.restart().await;
    service.wait_ready().await;
    assert_eq!(service.get("/api/persons", Some(&token)).await.status, 200);
    // The checks below want at least three successful ping spans: on a loaded machine the
    // steps above can take less than three ping periods, so wait for them.
    wait_until("three successful pings", || async {
        service
            .metrics()
            .await
            .sum("aila_db_ping_duration_seconds_count", &[])
            >= 3.0
    })
    .await;

    let (exit, stop_took) = service.terminate().await;
    assert!(exit.success(), "exit {exit:?}; logs:\n{}", service.logs());

    // SIGTERM flushed the spans; Jaeger stores them within its own batch delay.
    let stopped = Instant::now();
    let findings = loop {
        let traces = jaeger.traces("aila-api", 5000).await;
        match check(&traces, &service.db_name) {
            Ok(f) => break f,
            Err(why) if stopped.elapsed() > DEADLINE => {
                panic!("Jaeger does not show what it should after {DEADLINE:?}: {why}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    // The start-up line names that trace and links it in the UI.
    let (logged_id, link) = startup_trace_link(&service.logs())
        .unwrap_or_else(|| panic!("no start-up trace in the log:\n{}", service.logs()));
    assert!(
        same_id(&logged_id, &findings.startup_trace),
        "the start-up line names trace {logged_id}, Jaeger's start-up trace is {}",
        findings.startup_trace
    );
    assert_eq!(link, format!("{ui}/trace/{logged_id}"));
    eprintln!(
        "jaeger: span visible {visible_after:?} after its request; SIGTERM to exit {stop_took:?}; \
         all assertions held {:?} after exit; {} traces, {} spans; {findings:#?}",
        stopped.elapsed(),
        findings.traces,
        findings.spans
    );
}
