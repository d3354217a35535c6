//! What the mail never shows: the SMTP password (`SMTP_URL` is a secret like `MONGO_URL`)
//! and the tokens of the links it carries are in no log line, span field, metric or
//! `/health`, while the mails themselves go out (through a real Mailpit that asks for the
//! credentials and accepts any).

use std::time::{Duration, Instant};

use aila_testkit::mailpit::{self, Mailpit};
use serde_json::json;

use crate::capture;
use crate::common::{Database, free_port, spawn_app_with};

const PASSWORD: &str = "Sm7pS3cretPw";

#[tokio::test]
async fn no_smtp_password_or_link_token_in_logs_spans_metrics_or_health() {
    let captured = capture::install_with_spans();
    let mp = Mailpit::start(&mailpit::binary(), None).expect("mailpit starts");
    let db = Database::start().await;
    let port = free_port().to_string();
    let base = format!("http://127.0.0.1:{port}");
    let smtp_url = format!("smtp://aila-mailer:{PASSWORD}@127.0.0.1:{}", mp.smtp_port());
    let app = spawn_app_with(
        &db.url(),
        &[
            ("PORT", &port),
            ("PUBLIC_BASE_URL", &base),
            ("SMTP_URL", &smtp_url),
        ],
    )
    .await;
    app.wait_ready().await;
    capture::refresh_interest();

    app.register("frank@example.org").await;
    let r = app
        .post(
            "/api/auth/password-reset/request",
            json!({"email": "frank@example.org"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let until = Instant::now() + Duration::from_secs(30);
    let mails = loop {
        let list = mp.messages_to("frank@example.org").unwrap();
        if list.len() >= 2 {
            break list;
        }
        assert!(Instant::now() < until, "the two mails did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut tokens = Vec::new();
    for summary in &mails {
        let mail = mp.message(&summary.id).unwrap();
        let link = mail
            .link(&base)
            .unwrap_or_else(|| panic!("a link in {}", mail.text));
        let token = link.split_once("token=").unwrap().1.to_string();
        assert_eq!(token.len(), 64, "{link}");
        // Follow both links (the reset link only opens its form).
        let r = app.http.get(&link).send().await.unwrap();
        assert_eq!(r.status(), 200, "{link}");
        tokens.push(token);
    }
    let health = app.get("/health", None).await;
    assert_eq!(health.body["mail"], "configured", "{}", health.body);
    // Mailpit may show a mail before the sender has read its final answer: wait for the
    // counters to catch up.
    let until = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let metrics = app
            .http
            .get(format!("{}/metrics", app.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains(r#"aila_mail_sent_total{kind="verify_email"} 1"#)
            && metrics.contains(r#"aila_mail_sent_total{kind="password_reset"} 1"#)
        {
            break metrics;
        }
        assert!(
            Instant::now() < until,
            "the sent counters never settled:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let logs = captured.text();
    assert!(
        logs.contains("mail.send"),
        "the mail spans are captured:\n{logs}"
    );
    assert!(
        logs.contains("smtp://127.0.0.1:"),
        "the server is named, redacted:\n{logs}"
    );
    for (what, secret) in [("SMTP password", PASSWORD)]
        .into_iter()
        .chain(tokens.iter().map(|t| ("link token", t.as_str())))
    {
        let line = logs.lines().find(|l| l.contains(secret));
        assert!(line.is_none(), "the {what} in the logs: {line:?}");
        assert!(!metrics.contains(secret), "the {what} in the metrics");
        assert!(
            !health.body.to_string().contains(secret),
            "the {what} in /health"
        );
    }
    // Nor the recipient's address.
    let line = logs.lines().find(|l| l.contains("frank@example.org"));
    assert!(line.is_none(), "the recipient in the logs: {line:?}");
}
