//! The Jaeger web UI as a person sees it, in Debian's headless Chromium: Jaeger (with the UI
//! of `scripts/build-tools.sh jaeger`) and the real service, a few requests and a database
//! outage, then pages of the UI rendered by the browser (scripts run, API calls answered)
//! and read back from the DOM: not the placeholder page; the search for `aila-api` lists
//! traces; the start-up trace, opened from the link of the service's start-up log line,
//! draws connect, ping and index spans; a request's trace draws its HTTP span and database
//! spans; the reconnect after the outage draws the breaker's transitions.
//!
//! A screenshot of the start-up trace goes to `target/jaeger-ui/startup-trace.png`; with
//! `UPDATE_SCREENSHOTS=1` it also replaces `docs/img/jaeger-startup-trace.png` (README).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use serde_json::json;

use crate::common::{DEADLINE, Database};
use crate::jaeger::{Jaeger, Trace};
use crate::service::Service;
use crate::traces::startup_trace_link;

/// Jaeger's page when it has no UI assets.
const PLACEHOLDER: &str = "This is not the Jaeger UI you are looking for";

fn chromium() -> PathBuf {
    if let Ok(bin) = std::env::var("CHROMIUM_BIN") {
        return PathBuf::from(bin);
    }
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let bin = Path::new(dir).join(name);
            if bin.is_file() {
                return bin;
            }
        }
    }
    panic!(
        "chromium is not installed: `apt-get install chromium` (scripts/test.sh does it), or set CHROMIUM_BIN"
    );
}

/// Headless Chromium with a throw-away profile, on `url`, after its scripts and their
/// requests have run (virtual time: the page settles as fast as it can).
async fn chromium_on(url: &str, action: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(chromium());
    cmd.arg("--headless")
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .arg("--no-first-run")
        .arg("--hide-scrollbars")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--window-size=1280,1400")
        .arg("--virtual-time-budget=20000")
        .args(action)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(DEADLINE * 2, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("chromium did not finish {url} within {:?}", DEADLINE * 2))
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium on {url}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM of `url` once rendered.
async fn dom(url: &str) -> String {
    chromium_on(url, &["--dump-dom".to_string()]).await
}

/// A PNG of `url` once rendered.
async fn screenshot(url: &str, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(to);
    chromium_on(url, &[format!("--screenshot={}", to.display())]).await;
    assert!(to.exists(), "chromium wrote no screenshot of {url}");
}

/// The trace, among `traces`, with a span that satisfies `pick`.
fn trace_with(traces: &[Trace], pick: impl Fn(&crate::jaeger::Span) -> bool) -> Option<&Trace> {
    traces.iter().find(|t| t.spans.iter().any(&pick))
}

/// The successful reconnect after the outage.
fn is_recovery(s: &crate::jaeger::Span) -> bool {
    s.name == "db.reconnect" && s.str("db.connect.result") == Some("connected")
}

/// The text a person reads on the page: the DOM without styles, scripts and tags, entities
/// decoded, and without whitespace (the UI breaks long names into separate elements at
/// punctuation: `aila-` `api: ` `db.` `ping`).
fn readable(dom: &str) -> String {
    let body = dom.find("<body").map_or(dom, |i| &dom[i..]);
    let mut text = String::with_capacity(body.len() / 4);
    let mut rest = body;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        rest = &rest[open..];
        let skip_to = ["<style", "<script"]
            .iter()
            .find(|tag| rest.starts_with(*tag))
            .map(|tag| format!("</{}>", &tag[1..]));
        let end = match skip_to {
            Some(close) => rest.find(&close).map(|i| i + close.len()),
            None => rest.find('>').map(|i| i + 1),
        };
        rest = &rest[end.unwrap_or(rest.len())..];
    }
    text.push_str(rest);
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
        .split_whitespace()
        .collect()
}

/// Asserts the page `dom` shows each of `texts` (span names, trace titles).
fn shows(page: &str, dom: &str, texts: &[&str]) {
    let seen = readable(dom);
    for text in texts {
        let wanted: String = text.split_whitespace().collect();
        assert!(
            seen.contains(&wanted),
            "the UI's {page} does not show {text:?}; it shows:\n{}",
            &seen[..seen.len().min(3000)]
        );
    }
}

#[test]
fn readable_text_drops_markup_and_whitespace() {
    let dom = "<html><head><style>.a{}</style></head><body><span>aila-</span><span>api: db.</span>\
<span>ping</span><script>var x = '<b>';</script> &amp; 2&nbsp;Spans</body></html>";
    assert_eq!(readable(dom), "aila-api:db.ping&2Spans");
}

#[tokio::test]
async fn the_jaeger_ui_shows_start_up_requests_database_calls_and_breaker_transitions() {
    let began = Instant::now();
    let jaeger = Jaeger::start().await;
    let mut db = Database::start().await;
    let endpoint = jaeger.otlp_endpoint();
    let ui = jaeger.url("");
    let service = Service::start(
        &db.url(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("JAEGER_UI_URL", ui.as_str()),
        ],
    )
    .await;
    service.wait_ready().await;

    // A few requests, then an outage and the recovery.
    let token = service.register("watcher@example.com").await;
    let created = service
        .post(
            "/api/persons",
            json!({"first_name": "Marie", "last_name": "Curie", "gender": "female"}),
            Some(&token),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.str("id").to_string();
    let r = service
        .get(&format!("/api/persons/{id}"), Some(&token))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    db.kill();
    service.wait_not_ready().await;
    for _ in 0..3 {
        assert_eq!(service.get("/api/persons", Some(&token)).await.status, 503);
    }
    db.restart().await;
    service.wait_ready().await;

    // What the UI must draw, read from the query API first (ids and names).
    let deadline = Instant::now() + DEADLINE;
    let traces = loop {
        let traces = jaeger.traces("aila-api", 1000).await;
        let complete = trace_with(&traces, |s| s.name == "startup").is_some()
            && trace_with(&traces, |s| s.name == "GET /api/persons/{id}").is_some()
            && trace_with(&traces, is_recovery).is_some_and(|t| {
                t.spans
                    .iter()
                    .any(|s| s.name == "circuit_breaker.transition")
            });
        if complete {
            break traces;
        }
        assert!(
            Instant::now() < deadline,
            "Jaeger lacks the start-up, request or reconnect trace after {DEADLINE:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let api_ready = began.elapsed();

    // 1. The UI itself, not the placeholder.
    let home = dom(&jaeger.url("/search")).await;
    assert!(
        !home.contains(PLACEHOLDER),
        "Jaeger serves its placeholder page, not the UI"
    );
    shows("search page", &home, &["Find Traces", "Service"]);

    // 2. The search for aila-api lists traces (the most recent first: with the harness's
    // 500 ms pings, mostly pings), and the search by operation finds the start-up.
    let search = dom(&jaeger.url("/search?service=aila-api&limit=20&lookback=1h")).await;
    shows("search for aila-api", &search, &["aila-api: db.ping"]);
    let search =
        dom(&jaeger.url("/search?service=aila-api&operation=startup&limit=20&lookback=1h")).await;
    shows("search for start-up", &search, &["aila-api: startup"]);

    // 3. The start-up trace, from the link in the start-up log line.
    let (_, link) = startup_trace_link(&service.logs())
        .unwrap_or_else(|| panic!("no start-up trace link in the log:\n{}", service.logs()));
    assert!(
        link.starts_with(&ui),
        "start-up link {link} is not in the UI at {ui}"
    );
    let startup = dom(&link).await;
    let startup_trace = trace_with(&traces, |s| s.name == "startup").unwrap();
    let index_spans: Vec<&str> = startup_trace
        .spans
        .iter()
        .filter(|s| s.name.starts_with("db.index "))
        .map(|s| s.name.as_str())
        .collect();
    assert!(
        !index_spans.is_empty(),
        "the start-up trace has no index spans"
    );
    shows(
        "start-up trace",
        &startup,
        &[
            "startup",
            "config.load",
            "telemetry.init",
            "db.connect",
            "db.ping",
            "db.indexes",
        ],
    );
    shows("start-up trace", &startup, &index_spans);
    let shot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/jaeger-ui/startup-trace.png");
    screenshot(&link, &shot).await;

    // 4. A request: its HTTP span and its database spans.
    let request = trace_with(&traces, |s| s.name == "GET /api/persons/{id}").unwrap();
    let db_spans: Vec<&str> = request
        .spans
        .iter()
        .filter(|s| s.str("db.system.name").is_some())
        .map(|s| s.name.as_str())
        .collect();
    assert!(
        !db_spans.is_empty(),
        "GET /api/persons/{{id}} has no database span"
    );
    let page = dom(&jaeger.url(&format!("/trace/{}", request.trace_id))).await;
    shows("request trace", &page, &["GET /api/persons/{id}"]);
    shows("request trace", &page, &db_spans);

    // 5. The reconnect after the outage, with the breaker's transitions.
    let reconnect = trace_with(&traces, is_recovery).unwrap();
    let page = dom(&jaeger.url(&format!("/trace/{}", reconnect.trace_id))).await;
    shows(
        "reconnect trace",
        &page,
        &["db.reconnect", "circuit_breaker.transition"],
    );

    if std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let kept =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/img/jaeger-startup-trace.png");
        std::fs::create_dir_all(kept.parent().unwrap()).unwrap();
        std::fs::copy(&shot, &kept).unwrap();
    }
    eprintln!(
        "jaeger ui: traces in the query API after {api_ready:?}; every page checked after {:?}; screenshot {}",
        began.elapsed(),
        shot.display()
    );
}
