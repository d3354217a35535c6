//! `aila-healthcheck`, the container health check: exit 0 when `/health` answers 200, 1
//! otherwise, within its 2 s deadline.

use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::common::{free_port, spawn_app};

async fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String, Duration) {
    let started = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aila-healthcheck"));
    cmd.args(args)
        .env_remove("PORT")
        .env_remove("AILA_HEALTHCHECK_URL_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn it_passes_on_a_live_service_even_without_its_database() {
    // Nothing listens on the database port: liveness must not care.
    let app = spawn_app(&format!("mongodb://127.0.0.1:{}", free_port())).await;
    let port = app.app().port().to_string();
    let (ok, err, took) = run(&[], &[("PORT", &port)]).await;
    assert!(ok, "{err}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let (ok, err, _) = run(&[&format!("127.0.0.1:{port}")], &[]).await;
    assert!(ok, "{err}");
}

#[tokio::test]
async fn it_fails_when_nothing_answers_or_the_answer_is_not_200() {
    let (ok, err, _) = run(&[], &[("PORT", &free_port().to_string())]).await;
    assert!(!ok);
    assert!(err.starts_with("aila-healthcheck: cannot connect"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    let app = spawn_app(&format!("mongodb://127.0.0.1:{}", free_port())).await;
    let port = app.app().port().to_string();
    let (ok, err, _) = run(
        &[],
        &[("PORT", &port), ("AILA_HEALTHCHECK_URL_PATH", "/readiness")],
    )
    .await;
    assert!(!ok, "readiness is 503 without a database");
    assert!(err.contains("503"), "{err}");

    let (ok, err, _) = run(&[], &[("PORT", "eighty")]).await;
    assert!(!ok && err.contains("PORT"), "{err}");
}
