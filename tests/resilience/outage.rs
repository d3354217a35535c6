//! The database killed or frozen under a running service: fast 503s, recovery by itself.

use std::time::{Duration, Instant};

use bson::oid::ObjectId;

use crate::capture;
use crate::common::{Database, TestApp, spawn_app, wait_until};

/// A token for a user that does not exist: `/api/auth/me` then needs one database lookup
/// (401 `User not found` when the database answers, 503 when it does not).
fn token(app: &TestApp) -> String {
    app.app().context().tokens.issue(&ObjectId::new().to_hex())
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_killed_database_gives_fast_503s_and_the_service_recovers_by_itself() {
    let _captured = capture::install();
    let mut db = Database::start().await;
    let app = spawn_app(&db.url()).await;
    app.wait_ready().await;
    let t = token(&app);
    assert_eq!(
        app.get("/api/auth/me", Some(&t)).await.detail(),
        "User not found"
    );

    db.kill();
    app.wait_not_ready().await;
    let h = app.get("/health", None).await;
    assert_eq!(h.status, 200);
    assert_eq!(h.str("database"), "disconnected");
    assert_ne!(h.body["circuit_breaker"]["state"], "closed");

    for _ in 0..10 {
        let started = Instant::now();
        let r = app.get("/api/auth/me", Some(&t)).await;
        let took = started.elapsed();
        assert_eq!(r.status, 503, "{:?}", r.body);
        assert_eq!(r.detail(), "Database temporarily unavailable");
        let secs: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        let ms: u64 = r.headers["retry-after-ms"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        // Never an invitation to a retry storm (it was 1 ms between the open period and
        // the callers' grace), never more than the longest open period plus the grace.
        assert!((50..=1_500).contains(&ms), "{ms}");
        assert_eq!(
            secs,
            ms.div_ceil(1000),
            "Retry-After is Retry-After-Ms in seconds"
        );
        // Far below the driver's server-selection timeout (2 s here, 10 s by default).
        assert!(took < Duration::from_millis(500), "503 took {took:?}");
    }

    wait_until("a failed reconnect attempt", || async {
        app.get("/health", None).await.body["reconnect"]["attempt"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    })
    .await;
    db.restart().await;
    app.wait_ready().await;
    assert_eq!(
        app.get("/api/auth/me", Some(&t)).await.detail(),
        "User not found"
    );

    let m = app.get("/metrics", None).await;
    assert_eq!(m.status, 200);
    let text = reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metric(
            &text,
            "aila_db_circuit_breaker_transitions_total{from=\"closed\",to=\"open\"}"
        ) >= 1.0,
        "{text}"
    );
    assert!(
        metric(&text, "aila_db_circuit_breaker_refused_calls_total") >= 10.0,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "aila_db_reconnect_attempts_total{outcome=\"failure\"}"
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "aila_db_circuit_breaker_state{state=\"closed\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(metric(&text, "aila_db_up"), 1.0);
}

#[tokio::test]
async fn a_frozen_database_costs_a_caller_at_most_the_operation_deadline() {
    let _captured = capture::install();
    let mut db = Database::start().await;
    let app = spawn_app(&db.url()).await;
    app.wait_ready().await;
    let t = token(&app);
    db.freeze();
    // Whatever the breaker's state, no call waits longer than the 2 s deadline (plus slack).
    for _ in 0..6 {
        let started = Instant::now();
        let r = app.get("/api/auth/me", Some(&t)).await;
        assert!(
            started.elapsed() < Duration::from_millis(2600),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(r.status, 503, "{:?}", r.body);
    }
    app.wait_not_ready().await;
    // Once the breaker is open, refusals are immediate.
    wait_until("the breaker to open", || async {
        app.get("/health", None).await.body["circuit_breaker"]["state"] == "open"
    })
    .await;
    let started = Instant::now();
    assert_eq!(app.get("/api/auth/me", Some(&t)).await.status, 503);
    assert!(started.elapsed() < Duration::from_millis(300));
    db.thaw();
    app.wait_ready().await;
    assert_eq!(app.get("/api/auth/me", Some(&t)).await.status, 401);
}

#[tokio::test]
async fn reconnect_attempts_are_logged_with_number_error_and_delay() {
    let captured = capture::install();
    let mut db = Database::start().await;
    let app = spawn_app(&db.url()).await;
    app.wait_ready().await;
    db.kill();
    app.wait_not_ready().await;
    wait_until("two reconnect attempts", || async {
        app.get("/health", None).await.body["reconnect"]["attempt"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    })
    .await;
    let logs = captured.text();
    assert!(
        logs.contains("MongoDB reconnect attempt 1 failed"),
        "missing reconnect log"
    );
    assert!(logs.contains("next attempt in"), "missing next delay");
    assert!(
        logs.contains("circuit breaker closed => open"),
        "missing transition log"
    );
    db.restart().await;
    app.wait_ready().await;
    assert!(
        captured
            .text()
            .contains("MongoDB connection successful after")
    );
}

#[tokio::test]
async fn shutdown_turns_readiness_to_503_and_lets_in_flight_requests_finish() {
    let _captured = capture::install();
    let mut db = Database::start().await;
    let mut app = spawn_app(&db.url()).await;
    app.wait_ready().await;
    let t = token(&app);
    // A request that will wait on a frozen database (up to the 2 s operation deadline).
    db.freeze();
    let (http, url) = (app.http.clone(), format!("{}/api/auth/me", app.address));
    let in_flight = tokio::spawn(async move {
        http.get(url)
            .bearer_auth(t)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    wait_until("the request to be in flight", || async {
        let text = reqwest::get(format!("{}/metrics", app.address))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // The scrape itself is one request in flight.
        metric(&text, "aila_http_server_requests_in_flight") >= 2.0
    })
    .await;
    let ctx = app.app().context().clone();
    app.stop().await;
    let report = aila_api::http::probes::health_report(&ctx);
    assert!(!report.ready);
    assert!(
        report
            .not_ready_reasons
            .iter()
            .any(|r| r == "shutting down"),
        "{:?}",
        report.not_ready_reasons
    );
    assert_eq!(report.service, "shutting_down");
    // The in-flight request got its answer (the deadline's 503), not a reset connection.
    assert_eq!(in_flight.await.unwrap().unwrap(), 503);
    db.thaw();
}

/// Operations open the breaker while the database answers pings: the supervisor notices
/// that Open (one it did not cause, possibly while its own ping was running) and runs trial
/// operations once the open period ends, so the breaker closes with no user traffic and no
/// ping due for ten minutes. (Defect 4 of the overload issue: the supervisor marked such an
/// Open as seen and slept until its next ping, and a ping may not close a breaker that
/// operations opened.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_opened_by_operations_closes_by_itself_without_traffic_or_pings() {
    let db = Database::start().await;
    let app = crate::common::spawn_app_with(
        &db.url(),
        &[
            ("MONGO_PING_INTERVAL_MS", "600000"),
            ("BREAKER_FAILURE_THRESHOLD", "3"),
        ],
    )
    .await;
    app.wait_ready().await;
    let t = token(&app);
    let gateway = app.app().context().gateway.clone();
    for _ in 0..3 {
        gateway.inject_fault(aila_api::db::gateway::InjectedFault {
            operation: "find_one",
            collection: "users",
            skip: 0,
        });
    }
    for _ in 0..3 {
        assert_eq!(app.get("/api/auth/me", Some(&t)).await.status, 503);
    }
    let h = app.get("/health", None).await;
    assert_eq!(h.body["circuit_breaker"]["state"], "open", "{}", h.body);
    let transitions = gateway.breaker().snapshot().transitions;

    // No request from here on: only the supervisor may close it.
    wait_until(
        "the breaker closed by the supervisor's trial operations",
        || async { app.get("/health", None).await.body["circuit_breaker"]["state"] == "closed" },
    )
    .await;
    let snap = gateway.breaker().snapshot();
    assert!(snap.transitions >= transitions + 2, "{snap:?}");
    assert_eq!(
        app.get("/api/auth/me", Some(&t)).await.detail(),
        "User not found"
    );
}
