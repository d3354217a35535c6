//! Preview-session tokens are bearer secrets carried in the URL: they never reach a log
//! line, a span field or a metric label (the route template and a masked path do).

use serde_json::json;

use crate::capture;
use crate::common::{Database, spawn_app};

#[tokio::test]
async fn preview_session_tokens_are_masked_in_logs_spans_and_metrics() {
    let captured = capture::install_with_spans();
    let db = Database::start().await;
    let app = spawn_app(&db.url()).await;
    app.wait_ready().await;
    capture::refresh_interest();
    let r = app.post("/api/preview/session", json!({}), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.str("session_token").to_string();
    let person = json!({"first_name": "Ada", "last_name": "Lovelace"});
    let r = app
        .post(&format!("/api/preview/{token}/person"), person, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        app.get(&format!("/api/preview/{token}"), None).await.status,
        200
    );
    // An unknown token is a secret too (a guess, or a real one mistyped).
    let guess = "0123456789abcdef0123456789abcdef";
    assert_eq!(
        app.get(&format!("/api/preview/{guess}"), None).await.status,
        404
    );

    let logs = captured.text();
    let metrics = reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for secret in [&token, guess] {
        let line = logs.lines().find(|l| l.contains(secret));
        assert!(line.is_none(), "a preview token in the logs: {line:?}");
        assert!(!metrics.contains(secret), "a preview token in the metrics");
    }
    // What they show instead: the masked path, the route template.
    assert!(
        logs.contains("/api/preview/****"),
        "the path is logged, masked:\n{logs}"
    );
    assert!(metrics.contains("/api/preview/{token}"), "{metrics}");
}
