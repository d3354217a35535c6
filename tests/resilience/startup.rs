//! Start-up without a database, and the database appearing later.

use std::time::{Duration, Instant};

use bson::Document;

use crate::capture;
use crate::common::{Database, spawn_app, spawn_app_with, wait_until};

#[tokio::test]
async fn serves_health_without_a_database_and_readiness_says_why() {
    let _captured = capture::install();
    let db = Database::unstarted();
    let app = spawn_app(&db.url()).await;

    let started = Instant::now();
    let health = app.get("/health", None).await;
    assert_eq!(health.status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "health took {:?}",
        started.elapsed()
    );
    assert_eq!(health.str("status"), "healthy");
    assert_ne!(health.str("database"), "connected");
    assert_eq!(health.headers["cache-control"], "no-store");
    assert_eq!(app.get("/api/health", None).await.status, 200);

    let ready = app.get("/readiness", None).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.body["ready"], false);
    assert!(
        !ready.body["not_ready_reasons"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The reconnect loop counts its attempts and says when the next one is due.
    wait_until("a failed reconnect attempt to be published", || async {
        let h = app.get("/health", None).await;
        h.body["reconnect"]["attempt"].as_u64().unwrap_or(0) >= 2
            && h.body["reconnect"]["last_error"].is_string()
    })
    .await;
    let root = app.get("/", None).await;
    assert_eq!(root.status, 200);
    assert_eq!(root.str("message"), "AÏLA - Arbre Généalogique API");
    for path in ["/api/", "/api"] {
        let r = app.get(path, None).await;
        assert_eq!((path, r.status), (path, 200));
        assert_eq!(r.str("message"), "AÏLA - Arbre Généalogique API");
    }
}

/// Kubernetes' readiness probe (`/serving`) keeps a pod in its Service while the database
/// is away, so clients get the service's 503 + Retry-After instead of connection refused;
/// it turns 503 once shutdown begins.
#[tokio::test]
async fn serving_stays_200_without_a_database_and_turns_503_when_shutdown_begins() {
    capture::install();
    let db = Database::unstarted();
    let mut app = spawn_app(&db.url()).await;

    let serving = app.get("/serving", None).await;
    assert_eq!(serving.status, 200, "{:?}", serving.body);
    assert_eq!(serving.str("status"), "serving");
    assert_eq!(serving.body["database_ready"], false);
    assert_eq!(serving.body["reasons"], serde_json::json!([]));
    assert_eq!(serving.headers["cache-control"], "no-store");
    // /readiness keeps its meaning.
    assert_eq!(app.get("/readiness", None).await.status, 503);

    let ctx = app.app().context().clone();
    ctx.begin_shutdown();
    let draining = app.get("/serving", None).await;
    assert_eq!(draining.status, 503, "{:?}", draining.body);
    assert_eq!(draining.str("status"), "not_serving");
    assert_eq!(
        draining.body["reasons"],
        serde_json::json!(["shutting down"])
    );
    app.stop().await;
    assert_eq!(
        aila_api::http::probes::serving_refusals(&ctx),
        ["shutting down"]
    );
}

#[tokio::test]
async fn health_answers_at_once_while_the_database_is_frozen() {
    let _captured = capture::install();
    let mut db = Database::start().await;
    let app = spawn_app(&db.url()).await;
    app.wait_ready().await;
    db.freeze();
    // Per-operation deadline in the tests is 2 s; health must not wait on anything.
    for _ in 0..20 {
        let started = Instant::now();
        let h = app.get("/health", None).await;
        assert_eq!(h.status, 200);
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "health took {:?}",
            started.elapsed()
        );
    }
    app.wait_not_ready().await;
    // Readiness may turn 503 on the ping's age a moment before the supervisor declares the
    // database lost.
    wait_until("the database to be declared lost", || async {
        app.get("/health", None).await.str("database") != "connected"
    })
    .await;
    db.thaw();
    app.wait_ready().await;
}

#[tokio::test]
async fn a_database_that_appears_later_is_used_without_any_request_traffic() {
    let _captured = capture::install();
    let mut db = Database::unstarted();
    let app = spawn_app(&db.url()).await;
    assert_eq!(app.get("/readiness", None).await.status, 503);
    db.restart().await;
    // Only probes from here on: the supervisor brings the service up by itself.
    app.wait_ready().await;
    let h = app.get("/health", None).await;
    assert_eq!(h.str("database"), "connected");
    assert_eq!(h.body["circuit_breaker"]["state"], "closed");
    assert!(h.body["last_ping_ms"].is_number());
    let ensured: Vec<&str> = h.body["indexes"]["ensured"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(ensured.contains(&"users.email_1"), "{ensured:?}");

    // The indexes really exist in the database.
    let client = mongodb::Client::with_uri_str(db.url()).await.unwrap();
    let users = client
        .database(&app.db_name)
        .collection::<Document>("users");
    let names = users.list_index_names().await.unwrap();
    assert!(names.contains(&"email_1".to_string()), "{names:?}");
    let notifications = client
        .database(&app.db_name)
        .collection::<Document>("notifications");
    assert!(
        notifications
            .list_index_names()
            .await
            .unwrap()
            .contains(&"user_id_1_read_1".to_string())
    );
}

#[tokio::test]
async fn a_refused_ttl_index_is_a_warning_not_a_failure() {
    let _captured = capture::install();
    let db = Database::start().await;
    let app = spawn_app(&db.url()).await;
    app.wait_ready().await;
    let h = app.get("/health", None).await;
    let failed = h.body["indexes"]["failed"].as_array().unwrap();
    if std::env::var("MONGOD_BIN").is_ok() {
        // A real mongod supports TTL indexes.
        assert!(failed.is_empty(), "{failed:?}");
    } else {
        // FerretDB refuses TTL indexes: shown, not required, readiness unaffected.
        // Two TTL indexes: preview sessions and idempotency keys.
        let names: Vec<&str> = failed.iter().filter_map(|f| f["index"].as_str()).collect();
        assert_eq!(
            names,
            [
                "preview_sessions.expires_at_1",
                "idempotency_keys.expires_at_1"
            ],
            "{failed:?}"
        );
        assert!(failed.iter().all(|f| f["required"] == false), "{failed:?}");
        assert!(
            h.body["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w.as_str().unwrap().contains("TTL"))
        );
    }
}

#[tokio::test]
async fn an_unusable_url_is_reported_and_retried_with_the_password_hidden() {
    let captured = capture::install();
    let app = spawn_app_with("mongodb://aila:Sup3rS3cretPw@bad host name:notaport/x", &[]).await;
    wait_until("not_configured to be published", || async {
        app.get("/health", None).await.body["database"] == "not_configured"
    })
    .await;
    let h = app.get("/health", None).await;
    let text = h.body.to_string();
    assert!(text.contains("MONGO_URL"), "{text}");
    assert!(!text.contains("Sup3rS3cretPw"), "{text}");
    assert_eq!(app.get("/readiness", None).await.status, 503);
    wait_until("the client build to be retried", || async {
        app.get("/health", None).await.body["reconnect"]["attempt"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    })
    .await;
    assert!(!captured.text().contains("Sup3rS3cretPw"));
}

#[tokio::test]
async fn the_password_of_a_reachable_url_never_appears_in_logs_spans_or_health() {
    let captured = capture::install();
    // A valid URL with credentials, to a server that is not there: errors will quote it.
    let db = Database::unstarted();
    let url = format!(
        "mongodb://aila:Pa55w0rdXyz@127.0.0.1:{}/?socketTimeoutMS=45000",
        db.port()
    );
    let app = spawn_app(&url).await;
    wait_until("a failed reconnect attempt", || async {
        app.get("/health", None).await.body["reconnect"]["attempt"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    })
    .await;
    let h = app.get("/health", None).await;
    assert!(!h.body.to_string().contains("Pa55w0rdXyz"));
    // The Motor-era option was stripped with a warning instead of failing.
    assert!(
        h.body["warnings"].to_string().contains("socketTimeoutMS"),
        "{}",
        h.body
    );
    let logs = captured.text();
    assert!(logs.contains("MongoDB client configured for database"));
    assert!(
        !logs.contains("Pa55w0rdXyz"),
        "the password leaked into the logs"
    );
}

#[tokio::test]
async fn an_ephemeral_jwt_secret_is_shown_in_health() {
    let _captured = capture::install();
    let db = Database::unstarted();
    let app = spawn_app_with(&db.url(), &[("JWT_SECRET", "")]).await;
    let h = app.get("/health", None).await;
    assert_eq!(h.str("jwt_secret"), "ephemeral");
    assert!(h.body["warnings"].to_string().contains("JWT_SECRET"));
    let configured = spawn_app(&db.url()).await;
    assert_eq!(
        configured.get("/health", None).await.str("jwt_secret"),
        "configured"
    );
}
