//! A real Jaeger (v1.75.0, built by `scripts/build-tools.sh jaeger` at `.tools/bin/jaeger`,
//! or `JAEGER_BIN`) on free ports with in-memory storage and its web UI (`.tools/jaeger-ui`,
//! or `JAEGER_UI_ASSETS`), and a reader of its query API (`/api/traces?service=...`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::common::{free_port, wait_until};

/// The Jaeger process.
pub struct Jaeger {
    child: Child,
    /// OTLP/gRPC receiver port.
    pub otlp_port: u16,
    /// Query HTTP API port.
    pub query_port: u16,
    http: reqwest::Client,
}

fn binary() -> PathBuf {
    let bin = std::env::var("JAEGER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/jaeger"));
    if !bin.exists() {
        panic!(
            "Jaeger is not built ({} missing): run `scripts/build-tools.sh jaeger` once",
            bin.display()
        );
    }
    bin
}

/// The Jaeger UI folder `scripts/build-tools.sh jaeger` lays out.
pub fn ui_assets() -> PathBuf {
    let dir = std::env::var("JAEGER_UI_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/jaeger-ui"));
    if !dir.join("index.html").exists() {
        panic!(
            "the Jaeger UI is not laid out ({} missing): run `scripts/build-tools.sh jaeger` once",
            dir.join("index.html").display()
        );
    }
    dir
}

impl Jaeger {
    /// Starts Jaeger and waits until both its OTLP receiver and its query API answer.
    pub async fn start() -> Jaeger {
        let otlp_port = free_port();
        let query_port = free_port();
        let config =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/jaeger/config.template.yaml");
        let child = Command::new(binary())
            .arg("--config")
            .arg(config)
            .env("JAEGER_LISTEN_HOST", "127.0.0.1")
            .env("JAEGER_OTLP_GRPC_PORT", otlp_port.to_string())
            .env("JAEGER_QUERY_HTTP_PORT", query_port.to_string())
            .env("JAEGER_OTLP_HTTP_PORT", "0")
            .env("JAEGER_QUERY_GRPC_PORT", "0")
            .env("JAEGER_LOG_LEVEL", "error")
            .env("JAEGER_UI_ASSETS", ui_assets())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the jaeger binary starts");
        let mut jaeger = Jaeger {
            child,
            otlp_port,
            query_port,
            http: reqwest::Client::new(),
        };
        // Receivers start after the query extension: wait for the OTLP port too.
        let (http, url) = (jaeger.http.clone(), jaeger.url("/api/services"));
        wait_until("Jaeger's OTLP receiver and query API", || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                tokio::net::TcpStream::connect(("127.0.0.1", otlp_port))
                    .await
                    .is_ok()
                    && http.get(&url).send().await.is_ok_and(|r| r.status() == 200)
            }
        })
        .await;
        if let Some(status) = jaeger.child.try_wait().unwrap() {
            panic!("jaeger exited at start ({status}); are its ports taken?");
        }
        jaeger
    }

    /// `http://127.0.0.1:OTLP_PORT`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn otlp_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.otlp_port)
    }

    /// `http://127.0.0.1:QUERY_PORT` + `path`: the UI and the query API.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.query_port, path)
    }

    /// Every trace of `service` Jaeger holds (up to `limit`).
    pub async fn traces(&self, service: &str, limit: usize) -> Vec<Trace> {
        let url = self.url(&format!(
            "/api/traces?service={service}&limit={limit}&lookback=1h"
        ));
        let body: Value = match self.http.get(&url).send().await {
            Ok(r) if r.status() == 200 => r.json().await.unwrap_or(Value::Null),
            _ => return Vec::new(),
        };
        body["data"]
            .as_array()
            .map(|traces| traces.iter().map(Trace::from_json).collect())
            .unwrap_or_default()
    }

    /// One trace by id, if Jaeger has it.
    pub async fn trace(&self, trace_id: &str) -> Option<Trace> {
        let r = self
            .http
            .get(self.url(&format!("/api/traces/{trace_id}")))
            .send()
            .await
            .ok()?;
        if r.status() != 200 {
            return None;
        }
        let body: Value = r.json().await.ok()?;
        body["data"].as_array()?.first().map(Trace::from_json)
    }
}

impl Drop for Jaeger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One trace from the query API.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Hex trace id as Jaeger prints it.
    pub trace_id: String,
    /// Its spans.
    pub spans: Vec<Span>,
}

/// A span event (Jaeger "log").
#[derive(Debug, Clone)]
pub struct Event {
    /// Its fields (`event` holds the message).
    pub fields: BTreeMap<String, Value>,
}

/// One span from the query API.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    /// The span name.
    pub name: String,
    /// `CHILD_OF` reference: (trace id, span id).
    pub parent: Option<(String, String)>,
    /// Start, microseconds since the epoch.
    pub start_us: u64,
    /// Duration, microseconds.
    pub duration_us: u64,
    /// Attributes (and `span.kind`, `otel.status_code`, ...).
    pub tags: BTreeMap<String, Value>,
    /// Span events.
    pub events: Vec<Event>,
}

fn kv_map(list: &Value) -> BTreeMap<String, Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|kv| Some((kv["key"].as_str()?.to_string(), kv["value"].clone())))
        .collect()
}

impl Trace {
    fn from_json(v: &Value) -> Trace {
        let spans = v["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| Span {
                trace_id: s["traceID"].as_str().unwrap_or_default().to_string(),
                span_id: s["spanID"].as_str().unwrap_or_default().to_string(),
                name: s["operationName"].as_str().unwrap_or_default().to_string(),
                parent: s["references"].as_array().and_then(|refs| {
                    refs.iter().find(|r| r["refType"] == "CHILD_OF").map(|r| {
                        (
                            r["traceID"].as_str().unwrap_or_default().to_string(),
                            r["spanID"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                }),
                start_us: s["startTime"].as_u64().unwrap_or_default(),
                duration_us: s["duration"].as_u64().unwrap_or_default(),
                tags: kv_map(&s["tags"]),
                events: s["logs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| Event {
                        fields: kv_map(&l["fields"]),
                    })
                    .collect(),
            })
            .collect();
        Trace {
            trace_id: v["traceID"].as_str().unwrap_or_default().to_string(),
            spans,
        }
    }

    /// The direct children of `parent`.
    pub fn children<'a>(&'a self, parent: &'a Span) -> impl Iterator<Item = &'a Span> + 'a {
        self.spans.iter().filter(move |s| {
            s.parent
                .as_ref()
                .is_some_and(|(_, id)| *id == parent.span_id)
        })
    }

    /// Every span below `ancestor`.
    pub fn descendants<'a>(&'a self, ancestor: &'a Span) -> Vec<&'a Span> {
        let mut out = Vec::new();
        let mut frontier = vec![ancestor];
        while let Some(s) = frontier.pop() {
            for c in self.children(s) {
                out.push(c);
                frontier.push(c);
            }
        }
        out
    }
}

impl Span {
    /// A string attribute.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.tags.get(key).and_then(Value::as_str)
    }

    /// A numeric attribute.
    pub fn num(&self, key: &str) -> Option<f64> {
        self.tags.get(key).and_then(Value::as_f64)
    }

    /// True for a span without a parent.
    pub fn is_root(&self) -> bool {
        self.parent.is_none()
    }
}

/// Jaeger prints ids without leading zeros at times: compare as numbers.
pub fn same_id(a: &str, b: &str) -> bool {
    match (u128::from_str_radix(a, 16), u128::from_str_radix(b, 16)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}
