//! The real binary: start-up failures, the port before the database, SIGTERM.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Database, free_port, wait_until};

/// The service binary, run in `cwd` (an empty folder the test holds: no config/ and no .env
/// from the developer's checkout), with a clean environment.
fn binary(cwd: &tempfile::TempDir) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aila-api"));
    cmd.current_dir(cwd.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OTEL_SDK_DISABLED", "true")
        .env("JWT_SECRET", "process-test-secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn a_bad_port_stops_start_up_with_one_line_naming_key_and_value() {
    let cwd = tempfile::tempdir().unwrap();
    let out = binary(&cwd).env("PORT", "eighty").output().unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].contains("PORT") && lines[0].contains("eighty"),
        "{text}"
    );
}

/// Waits until `url` (a `/health`, or a `/readiness` when the database must be usable)
/// answers 200.
async fn wait_health_200(http: &reqwest::Client, url: &str) {
    wait_until(&format!("{url} to answer 200"), || {
        let (http, url) = (http.clone(), url.to_string());
        async move {
            http.get(&url)
                .send()
                .await
                .map(|r| r.status() == 200)
                .unwrap_or(false)
        }
    })
    .await;
}

#[tokio::test]
async fn the_port_answers_before_any_database_and_sigterm_exits_cleanly() {
    let db = Database::unstarted();
    let port = free_port();
    let started = Instant::now();
    let cwd = tempfile::tempdir().unwrap();
    let mut child = binary(&cwd)
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("MONGO_URL", db.url())
        .env("MONGO_SERVER_SELECTION_TIMEOUT_MS", "10000")
        .spawn()
        .unwrap();
    let _kill = KillIfPanicking(child.id());
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/health");
    wait_health_200(&http, &url).await;
    // Far less than the driver's 10 s server-selection timeout the old service waited for.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "port answered after {:?}",
        started.elapsed()
    );

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
    let mut logs = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("SIGTERM received"), "{logs}");
    assert!(logs.contains("No .env file found"), "{logs}");
}

#[tokio::test]
async fn json_logs_carry_trace_and_span_ids() {
    let db = Database::unstarted();
    let port = free_port();
    let cwd = tempfile::tempdir().unwrap();
    let child = binary(&cwd)
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("MONGO_URL", db.url())
        .env("LOG_FORMAT", "json")
        .spawn()
        .unwrap();
    let _kill = KillIfPanicking(child.id());
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/health");
    wait_health_200(&http, &url).await;
    // Wait for at least one failed reconnect attempt, logged inside a span.
    wait_until("a reconnect attempt", || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let Ok(r) = http.get(&url).send().await else {
                return false;
            };
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            v["reconnect"]["attempt"].as_u64().unwrap_or(0) >= 2
        }
    })
    .await;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut with_ids = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string() && v["message"].is_string(),
            "{line}"
        );
        if v["trace_id"].as_str().is_some_and(|t| t.len() == 32)
            && v["span_id"].as_str().is_some_and(|s| s.len() == 16)
        {
            with_ids += 1;
        }
    }
    assert!(with_ids > 0, "no line carried trace ids:\n{text}");
}

#[test]
fn without_the_ferretdb_build_the_tests_say_which_command_builds_it() {
    // Run one database test of this very binary with the FerretDB binary missing.
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "startup::a_refused_ttl_index_is_a_warning_not_a_failure",
            "--exact",
            "--test-threads=1",
        ])
        .env("FERRETDB_BIN", "/nonexistent/ferretdb")
        .env_remove("MONGOD_BIN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("FerretDB is not built"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("scripts/build-tools.sh ferretdb"), "{line}");
}

/// Kills the process (SIGKILL) when the test panics before stopping it: a failed assertion
/// would otherwise leave a service running after the test, holding its port.
struct KillIfPanicking(u32);

impl Drop for KillIfPanicking {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(self.0.to_string())
                .status();
        }
    }
}

/// Stops `child` with SIGTERM and returns what it printed.
async fn stop_and_read(child: std::process::Child) -> String {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

#[tokio::test]
async fn the_binary_warns_once_without_mail_and_never_prints_the_smtp_password_or_a_link_token() {
    let db = Database::start().await;
    let http = reqwest::Client::new();

    // Without SMTP_URL: one warning, the service up.
    let port = free_port();
    let cwd = tempfile::tempdir().unwrap();
    let child = binary(&cwd)
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("MONGO_URL", db.url())
        .spawn()
        .unwrap();
    let _kill = KillIfPanicking(child.id());
    wait_health_200(&http, &format!("http://127.0.0.1:{port}/health")).await;
    let logs = stop_and_read(child).await;
    let warned = logs
        .lines()
        .filter(|l| l.contains("SMTP_URL is not set"))
        .count();
    assert_eq!(warned, 1, "{logs}");

    // With SMTP_URL (credentials included) at a real Mailpit, everything logged at debug.
    let password = "Sm7pBinaryS3cret";
    let mp = aila_testkit::mailpit::Mailpit::start(&aila_testkit::mailpit::binary(), None)
        .expect("mailpit starts");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let cwd = tempfile::tempdir().unwrap();
    let child = binary(&cwd)
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("MONGO_URL", db.url())
        .env("DB_NAME", "aila_mail_process")
        .env("RUST_LOG", "debug")
        .env("PUBLIC_BASE_URL", &base)
        .env(
            "SMTP_URL",
            format!("smtp://mailer:{password}@127.0.0.1:{}", mp.smtp_port()),
        )
        .spawn()
        .unwrap();
    let _kill = KillIfPanicking(child.id());
    // Registration needs the database: /health is 200 before it is connected.
    wait_health_200(&http, &format!("{base}/readiness")).await;
    let r = http
        .post(format!("{base}/api/auth/register"))
        .json(&serde_json::json!({"email": "proc@example.org", "password": "Password123!", "first_name": "A", "last_name": "B", "gdpr_consent": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut link = None;
    wait_until("the verification mail", || {
        let found = mp
            .messages_to("proc@example.org")
            .unwrap()
            .first()
            .map(|m| mp.message(&m.id).unwrap());
        link = found.and_then(|m| m.link(&base));
        let done = link.is_some();
        async move { done }
    })
    .await;
    let link = link.unwrap();
    assert_eq!(http.get(&link).send().await.unwrap().status(), 200);
    // The sender logs "mail sent" once it has read the server's last answer, which may come
    // after Mailpit shows the mail.
    wait_until("the sent counter", || {
        let (http, url) = (http.clone(), format!("{base}/metrics"));
        async move {
            let Ok(r) = http.get(&url).send().await else {
                return false;
            };
            r.text()
                .await
                .unwrap_or_default()
                .contains(r#"aila_mail_sent_total{kind="verify_email"} 1"#)
        }
    })
    .await;
    let health = http
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let logs = stop_and_read(child).await;
    let token = link.split_once("token=").unwrap().1;
    assert!(logs.contains("mail sent"), "{logs}");
    for secret in [password, token] {
        let line = logs.lines().find(|l| l.contains(secret));
        assert!(line.is_none(), "a secret in the logs: {line:?}");
        assert!(!health.contains(secret), "a secret in /health: {health}");
    }
}
