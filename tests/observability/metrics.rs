//! `/metrics` read as Prometheus reads it: every family the core issue lists exists, names
//! follow the conventions (`aila_` prefix, base units, `_total` counters, `_seconds`
//! histograms), labels stay low-cardinality (route templates from the API description,
//! never raw paths or ids), and the resilience families move as they should across a
//! database outage.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::common::{Database, spawn_app, wait_until};
use crate::exposition::{Exposition, scrape};

/// Family name, kind, label names: what the core issue promises (and what the dashboard and
/// alerts use).
const FAMILIES: &[(&str, &str, &[&str])] = &[
    (
        "aila_http_server_request_duration_seconds",
        "histogram",
        &["method", "route", "status"],
    ),
    (
        "aila_db_operation_duration_seconds",
        "histogram",
        &["operation", "collection", "outcome"],
    ),
    ("aila_db_circuit_breaker_state", "gauge", &["state"]),
    (
        "aila_db_circuit_breaker_transitions",
        "counter",
        &["from", "to"],
    ),
    ("aila_db_circuit_breaker_refused_calls", "counter", &[]),
    ("aila_db_reconnect_attempts", "counter", &["outcome"]),
    ("aila_db_ping_duration_seconds", "histogram", &[]),
    ("aila_db_up", "gauge", &[]),
    ("aila_ready", "gauge", &[]),
    ("aila_trace_export_failures", "counter", &[]),
    ("aila_trace_spans_dropped", "counter", &[]),
    (
        "aila_rate_limit_refused_requests",
        "counter",
        &["scope", "per"],
    ),
    ("aila_rate_limit_keys", "gauge", &["scope", "per"]),
    (
        "aila_rate_limit_allowed_requests",
        "gauge",
        &["scope", "per"],
    ),
    ("aila_rate_limit_period_seconds", "gauge", &["scope", "per"]),
    ("aila_mail_sent", "counter", &["kind"]),
    ("aila_mail_retries", "counter", &["kind"]),
    ("aila_mail_queued", "gauge", &[]),
];

/// True when `s` holds something that looks like an id: 24 hex digits (ObjectId), a UUID,
/// or any run of 8+ digits.
fn looks_like_an_id(s: &str) -> bool {
    let bytes = s.as_bytes();
    let run = |pred: fn(&u8) -> bool, len: usize| {
        bytes
            .windows(len)
            .any(|w| w.iter().all(pred) && w.iter().any(u8::is_ascii_digit))
    };
    run(u8::is_ascii_hexdigit, 24)
        || run(u8::is_ascii_digit, 8)
        || s.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
}

/// A histogram series: its name without `_bucket` and its labels without `le`.
type SeriesKey = (String, Vec<(String, String)>);

/// Naming and shape rules for every family; returns the label names seen per family.
fn check_naming(m: &Exposition) -> BTreeMap<String, BTreeSet<String>> {
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, family) in &m.families {
        assert!(
            name.starts_with("aila_")
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}: not snake_case under the aila_ prefix"
        );
        assert!(!family.help.is_empty(), "{name} has no HELP");
        for unit in ["_ms", "_milliseconds", "_micros", "_minutes", "_percent"] {
            assert!(!name.contains(unit), "{name}: not in base units");
        }
        match family.kind.as_str() {
            "counter" => assert!(
                !name.ends_with("_total"),
                "{name}: the family is named without _total, its samples with it"
            ),
            "histogram" => {
                assert!(
                    name.ends_with("_seconds"),
                    "{name}: histogram not in seconds"
                );
                assert_eq!(family.unit.as_deref(), Some("seconds"), "{name}: UNIT");
            }
            "gauge" => assert!(!name.ends_with("_total"), "{name}: a gauge named _total"),
            other => panic!("{name}: unexpected kind {other}"),
        }
    }
    for s in &m.samples {
        let (family, f) = m.family_of(&s.name).expect("parse checked it");
        let suffix = &s.name[family.len()..];
        match f.kind.as_str() {
            "counter" => assert_eq!(suffix, "_total", "{}: counter sample", s.name),
            "gauge" => assert_eq!(suffix, "", "{}: gauge sample", s.name),
            _ => assert!(
                ["_bucket", "_sum", "_count"].contains(&suffix),
                "{}: histogram sample",
                s.name
            ),
        }
        assert!(
            s.value.is_finite() && s.value >= 0.0,
            "{}: value {}",
            s.name,
            s.value
        );
        for (k, v) in &s.labels {
            assert!(
                k == "le" || (v.len() <= 64 && !looks_like_an_id(v)),
                "{}: label {k}={v:?} is not low-cardinality",
                s.name
            );
            if k != "le" {
                labels
                    .entry(family.to_string())
                    .or_default()
                    .insert(k.clone());
            }
        }
    }
    // Histograms: cumulative buckets, +Inf equal to the count, per series.
    let mut series: BTreeMap<SeriesKey, Vec<(f64, f64)>> = BTreeMap::new();
    for s in m.samples.iter().filter(|s| s.name.ends_with("_bucket")) {
        let le: f64 = match s.labels["le"].as_str() {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap(),
        };
        let key: Vec<(String, String)> = s
            .labels
            .iter()
            .filter(|(k, _)| *k != "le")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        series
            .entry((s.name.trim_end_matches("_bucket").to_string(), key))
            .or_default()
            .push((le, s.value));
    }
    for ((name, key), mut buckets) in series {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{name}{key:?}: buckets not cumulative"
        );
        let label_refs: Vec<(&str, &str)> =
            key.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let count = m.value(&format!("{name}_count"), &label_refs);
        assert_eq!(
            buckets.last().map(|b| (b.0, b.1)),
            Some((f64::INFINITY, count)),
            "{name}{key:?}: +Inf bucket differs from _count"
        );
    }
    labels
}

fn check_families(m: &Exposition, labels: &BTreeMap<String, BTreeSet<String>>) {
    for (name, kind, want) in FAMILIES {
        let family = m
            .families
            .get(*name)
            .unwrap_or_else(|| panic!("family {name} missing from /metrics"));
        assert_eq!(&family.kind, kind, "{name}");
        let seen = labels.get(*name).cloned().unwrap_or_default();
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(seen, want, "{name}: label names");
    }
    let states: BTreeSet<&str> = m
        .matching("aila_db_circuit_breaker_state", &[])
        .map(|s| s.labels["state"].as_str())
        .collect();
    assert_eq!(states, BTreeSet::from(["closed", "open", "half_open"]));
    assert_eq!(
        m.sum("aila_db_circuit_breaker_state", &[]),
        1.0,
        "exactly one breaker state is current"
    );
}

/// The route label of every HTTP series is a path of the API description (or `unmatched`,
/// or a documentation mount), never a raw path.
fn check_routes(m: &Exposition, api_paths: &BTreeSet<String>) -> BTreeSet<String> {
    let routes: BTreeSet<String> = m
        .matching("aila_http_server_request_duration_seconds_count", &[])
        .map(|s| s.labels["route"].clone())
        .collect();
    for route in &routes {
        assert!(
            api_paths.contains(route)
                || ["unmatched", "/docs", "/openapi.json"].contains(&route.as_str()),
            "route label {route:?} is not a route template of the API description"
        );
    }
    for s in m.matching("aila_http_server_request_duration_seconds_count", &[]) {
        let status = &s.labels["status"];
        assert!(
            status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()),
            "status label {status:?}"
        );
        assert!(
            ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
                .contains(&s.labels["method"].as_str()),
            "method label {:?}",
            s.labels["method"]
        );
    }
    let outcomes: BTreeSet<&str> = m
        .matching("aila_db_operation_duration_seconds_count", &[])
        .map(|s| s.labels["outcome"].as_str())
        .collect();
    for o in &outcomes {
        assert!(
            ["success", "failure", "rejected", "refused"].contains(o),
            "db outcome label {o:?}"
        );
    }
    routes
}

/// Every counter sample of `after` is at least its value in `before`.
fn counters_never_go_down(before: &Exposition, after: &Exposition) {
    for s in before.samples.iter().filter(|s| s.name.ends_with("_total")) {
        let labels: Vec<(&str, &str)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert!(
            after.value(&s.name, &labels) >= s.value,
            "{}{labels:?} went down",
            s.name
        );
    }
}

fn transitions(m: &Exposition, from: &str, to: &str) -> f64 {
    m.sum(
        "aila_db_circuit_breaker_transitions_total",
        &[("from", from), ("to", to)],
    )
}

fn http_count(m: &Exposition, method: &str, route: &str, status: &str) -> f64 {
    m.sum(
        "aila_http_server_request_duration_seconds_count",
        &[("method", method), ("route", route), ("status", status)],
    )
}

#[tokio::test]
async fn metrics_follow_prometheus_naming_and_move_across_an_outage() {
    let mut db = Database::start().await;
    let app = spawn_app(&db.url()).await;
    app.wait_ready().await;
    let api: Value = app
        .http
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_paths: BTreeSet<String> = api["paths"]
        .as_object()
        .expect("the API description has paths")
        .keys()
        .cloned()
        .collect();
    assert!(api_paths.contains("/api/persons/{id}"), "{api_paths:?}");

    // Traffic that would explode the label set if raw paths or ids leaked into it.
    let (token, _) = app.register("metrics@example.com").await;
    let person = app
        .post(
            "/api/persons",
            json!({"first_name": "Ada", "last_name": "Byron"}),
            Some(&token),
        )
        .await;
    assert_eq!(person.status, 200, "{:?}", person.body);
    let id = person.str("id").to_string();
    assert_eq!(
        app.get(&format!("/api/persons/{id}"), Some(&token))
            .await
            .status,
        200
    );
    for missing in [
        "0123456789abcdef01234567",
        "not-an-id",
        "fedcba9876543210fedcba98",
    ] {
        assert_eq!(
            app.get(&format!("/api/persons/{missing}"), Some(&token))
                .await
                .status,
            404
        );
    }
    for path in ["/no/such/path/12345678", "/api/nope", "/api/persons/1/2/3"] {
        assert_eq!(app.get(path, None).await.status, 404, "{path}");
    }
    assert_eq!(app.get("/readiness", None).await.status, 200);

    let before = scrape(&app).await;
    let labels = check_naming(&before);
    check_families(&before, &labels);
    let routes = check_routes(&before, &api_paths);
    assert!(
        routes.contains("/api/persons/{id}") && routes.contains("unmatched"),
        "{routes:?}"
    );
    assert_eq!(http_count(&before, "GET", "/api/persons/{id}", "200"), 1.0);
    assert_eq!(http_count(&before, "GET", "/api/persons/{id}", "404"), 3.0);
    assert_eq!(
        before.value("aila_db_circuit_breaker_state", &[("state", "closed")]),
        1.0
    );
    assert_eq!(before.value("aila_db_up", &[]), 1.0);
    assert_eq!(before.value("aila_ready", &[]), 1.0);
    assert!(
        before.sum(
            "aila_db_operation_duration_seconds_count",
            &[("collection", "persons"), ("outcome", "success")]
        ) >= 2.0
    );
    assert!(before.sum("aila_db_ping_duration_seconds_count", &[]) >= 1.0);
    assert_eq!(transitions(&before, "closed", "open"), 0.0);

    // The outage.
    db.kill();
    app.wait_not_ready().await;
    for _ in 0..5 {
        assert_eq!(app.get("/api/persons", Some(&token)).await.status, 503);
    }
    let failures_before = before.sum(
        "aila_db_reconnect_attempts_total",
        &[("outcome", "failure")],
    );
    wait_until("a failed reconnect attempt in /metrics", || async {
        scrape(&app).await.sum(
            "aila_db_reconnect_attempts_total",
            &[("outcome", "failure")],
        ) > failures_before
    })
    .await;
    let during = scrape(&app).await;
    check_naming(&during);
    check_routes(&during, &api_paths);
    counters_never_go_down(&before, &during);
    assert_eq!(
        during.value("aila_db_circuit_breaker_state", &[("state", "closed")]),
        0.0,
        "the breaker is not closed during the outage"
    );
    assert_eq!(
        during.value("aila_db_circuit_breaker_state", &[("state", "open")])
            + during.value("aila_db_circuit_breaker_state", &[("state", "half_open")]),
        1.0
    );
    assert_eq!(during.value("aila_db_up", &[]), 0.0);
    assert_eq!(during.value("aila_ready", &[]), 0.0);
    assert!(transitions(&during, "closed", "open") >= 1.0);
    assert!(
        during.value("aila_db_circuit_breaker_refused_calls_total", &[])
            >= before.value("aila_db_circuit_breaker_refused_calls_total", &[]) + 5.0,
        "each 503 was a refused call"
    );
    assert_eq!(http_count(&during, "GET", "/api/persons", "503"), 5.0);
    assert!(
        during.sum(
            "aila_db_operation_duration_seconds_count",
            &[("outcome", "refused")]
        ) >= 5.0
    );

    // Recovery.
    db.restart().await;
    app.wait_ready().await;
    assert_eq!(app.get("/api/persons", Some(&token)).await.status, 200);
    let after = scrape(&app).await;
    check_naming(&after);
    check_routes(&after, &api_paths);
    counters_never_go_down(&during, &after);
    for (state, want) in [("closed", 1.0), ("open", 0.0), ("half_open", 0.0)] {
        assert_eq!(
            after.value("aila_db_circuit_breaker_state", &[("state", state)]),
            want,
            "{state} after recovery"
        );
    }
    assert_eq!(after.value("aila_db_up", &[]), 1.0);
    assert_eq!(after.value("aila_ready", &[]), 1.0);
    assert!(transitions(&after, "open", "half_open") >= 1.0);
    assert!(transitions(&after, "half_open", "closed") >= 1.0);
    assert!(
        after.value(
            "aila_db_reconnect_attempts_total",
            &[("outcome", "success")]
        ) > during.value(
            "aila_db_reconnect_attempts_total",
            &[("outcome", "success")]
        )
    );
    assert!(
        after.sum("aila_db_ping_duration_seconds_count", &[])
            > during.sum("aila_db_ping_duration_seconds_count", &[])
    );
    assert_eq!(http_count(&after, "GET", "/api/persons", "200"), 1.0);
}

#[test]
fn ids_are_recognised() {
    assert!(looks_like_an_id("/api/persons/0123456789abcdef01234567"));
    assert!(looks_like_an_id("f47ac10b-58cc-4372-a567-0e02b2c3d479"));
    assert!(looks_like_an_id("/no/such/path/12345678"));
    assert!(!looks_like_an_id("/api/persons/{id}"));
    assert!(!looks_like_an_id("aila_db_operation_duration_seconds"));
    assert!(!looks_like_an_id("0.00512"));
}
