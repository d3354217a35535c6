//! Shedding at the door: while every admission slot is taken and the queue has no room, a
//! request for a database-backed route is answered 503 with `Retry-After` before any work is
//! spent on it: its token is never verified (a forged one gets the same 503, not 401), no
//! span opens for it, no database call is attempted; it is counted as shed and as an HTTP
//! request. Probes still answer, and once a slot frees the same requests are served (or
//! refused for what they are) again.

use crate::capture;
use crate::common::{Database, TestApp, spawn_app_with};

const ORIGIN: &str = "http://front.example";

async fn get_tree(app: &TestApp, token: &str, request_id: &str) -> reqwest::Response {
    app.http
        .get(format!("{}/api/tree", app.address))
        .bearer_auth(token)
        .header("x-request-id", request_id)
        .header("origin", ORIGIN)
        .send()
        .await
        .expect("the service answers")
}

/// The value of the first sample of `family` whose line contains every one of `labels`.
fn sample(text: &str, family: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.strip_prefix(family).is_some_and(|r| r.starts_with('{')))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.split(" # ").next()?.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_request_meeting_a_saturated_limiter_is_shed_before_its_token_or_its_span() {
    let captured = capture::install_with_spans();
    let db = Database::start().await;
    // One slot, no queue: holding the slot saturates the limiter.
    let app = spawn_app_with(
        &db.url(),
        &[
            ("ADMISSION_MAX_IN_FLIGHT", "1"),
            ("ADMISSION_MIN_IN_FLIGHT", "1"),
            ("ADMISSION_QUEUE_LENGTH", "0"),
        ],
    )
    .await;
    app.wait_ready().await;
    capture::refresh_interest();
    // With one slot and no queue, a background task holding the slot for a moment (an index
    // pass, a sweep) sheds these two requests: each is sent again until it is not shed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let register = serde_json::json!({
        "email": "door@example.org", "password": "Password123!",
        "first_name": "Ada", "last_name": "Lovelace", "gdpr_consent": true,
    });
    let token = loop {
        let r = app.post("/api/auth/register", register.clone(), None).await;
        if r.status == 503 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        }
        assert_eq!(r.status, 200, "register: {:?}", r.body);
        break r.str("access_token").to_string();
    };
    let served = loop {
        let r = get_tree(&app, &token, "door-served").await;
        if r.status() == 503 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        }
        break r;
    };
    assert_eq!(served.status(), 200);
    let allow_origin = served
        .headers()
        .get("access-control-allow-origin")
        .cloned()
        .expect("a cross-origin answer carries CORS headers");

    let admission = app.app().context().gateway.admission().clone();
    // The only slot (a background sweep may hold it for a moment; with no queue, a refusal
    // comes at once).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let held = loop {
        match admission.acquire().await {
            Ok(permit) => break permit,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await
            }
            Err(shed) => panic!("the only admission slot stayed taken: {shed:?}"),
        }
    };
    assert_eq!(admission.snapshot().in_flight, 1);
    let before = crate::common::metrics_text(&app).await;

    let shed = get_tree(&app, &token, "door-valid").await;
    let forged = get_tree(&app, "not.a.jwt", "door-forged").await;
    for (r, id) in [(shed, "door-valid"), (forged, "door-forged")] {
        assert_eq!(r.status(), 503, "{id}: shed, whatever its token");
        let h = r.headers().clone();
        assert_eq!(h["x-request-id"], id);
        assert_eq!(h["access-control-allow-origin"], allow_origin);
        let secs: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
        let ms: u64 = h["retry-after-ms"].to_str().unwrap().parse().unwrap();
        assert!(secs >= 1 && (100..=1500).contains(&ms), "{secs} s, {ms} ms");
        assert_eq!(
            h["content-type"].to_str().unwrap(),
            "application/json; charset=utf-8"
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "detail": "Server busy: too many requests at once, retry shortly",
                "retry_after_ms": ms,
            })
        );
    }
    // Probes need no database: never shed.
    for probe in ["/health", "/api/health", "/readiness"] {
        let r = app.get(probe, None).await;
        assert_eq!(r.status, 200, "{probe}: {}", r.body);
    }

    let after = crate::common::metrics_text(&app).await;
    let delta = |family: &str, labels: &[&str]| {
        sample(&after, family, labels) - sample(&before, family, labels)
    };
    assert_eq!(
        delta("aila_db_admission_shed_calls_total", &["when=\"at_door\""]),
        2.0,
        "counted as shed at the door:\n{after}"
    );
    assert_eq!(
        delta(
            "aila_db_operation_duration_seconds_count",
            &["collection=\"users\"", "outcome=\"shed\""]
        ),
        0.0,
        "no user lookup was attempted"
    );
    assert_eq!(
        delta(
            "aila_http_server_request_duration_seconds_count",
            &["route=\"/api/tree\"", "status=\"503\""]
        ),
        2.0,
        "counted as HTTP requests:\n{after}"
    );
    let logs = captured.text();
    for id in ["door-valid", "door-forged"] {
        assert!(
            !logs.contains(id),
            "a span or a log line for a request shed at the door ({id}):\n{logs}"
        );
    }
    assert!(
        logs.contains("door-served"),
        "the capture sees the request spans:\n{logs}"
    );

    // A free slot: the same requests are served, or refused for what they are.
    drop(held);
    assert_eq!(get_tree(&app, &token, "door-again").await.status(), 200);
    assert_eq!(
        get_tree(&app, "not.a.jwt", "door-forged-again")
            .await
            .status(),
        401
    );
}
