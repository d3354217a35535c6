//! A real Prometheus (Debian's `prometheus` package, or `PROMETHEUS_BIN`) scraping one target
//! on loopback every 500 ms with exemplar storage on, and a reader of its exemplar API
//! (`/api/v1/query_exemplars`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common::{free_port, wait_until};

/// The Prometheus process and its scratch folder (configuration, TSDB).
pub struct Prometheus {
    child: Child,
    port: u16,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// One exemplar as the API returns it.
#[derive(Debug, Clone)]
pub struct StoredExemplar {
    /// The labels of the series it belongs to (`__name__`, `route`, `le`, ...).
    pub series: serde_json::Map<String, Value>,
    /// Its `trace_id` label.
    pub trace_id: String,
    /// The observed value.
    pub value: f64,
}

fn binary() -> PathBuf {
    if let Ok(bin) = std::env::var("PROMETHEUS_BIN") {
        return PathBuf::from(bin);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let bin = PathBuf::from(dir).join("prometheus");
        if bin.is_file() {
            return bin;
        }
    }
    panic!(
        "prometheus is not installed: `apt-get install prometheus` (scripts/test.sh does it), or set PROMETHEUS_BIN"
    );
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`127.0.0.1:PORT`) and waits until it is ready.
    pub async fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\n\
                 scrape_configs:\n  - job_name: aila-api\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--enable-feature=exemplar-storage")
            .arg("--log.level=error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the prometheus binary starts");
        let mut prometheus = Prometheus {
            child,
            port,
            http: reqwest::Client::new(),
            _dir: dir,
        };
        let (http, url) = (prometheus.http.clone(), prometheus.url("/-/ready"));
        wait_until("Prometheus to be ready", || {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(&url).send().await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
        if let Some(status) = prometheus.child.try_wait().unwrap() {
            panic!("prometheus exited at start ({status})");
        }
        prometheus
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// The exemplars Prometheus stored for the series `selector` selects, over the last hour.
    pub async fn exemplars(&self, selector: &str) -> Vec<StoredExemplar> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let url = url::Url::parse_with_params(
            &self.url("/api/v1/query_exemplars"),
            &[
                ("query", selector.to_string()),
                ("start", format!("{:.3}", now - 3600.0)),
                ("end", format!("{:.3}", now + 60.0)),
            ],
        )
        .expect("a valid URL");
        let response = self.http.get(url.as_str()).send().await;
        let body: Value = match response {
            Ok(r) if r.status() == 200 => r.json().await.unwrap_or(Value::Null),
            _ => return Vec::new(),
        };
        let mut out = Vec::new();
        for series in body["data"].as_array().into_iter().flatten() {
            let labels = series["seriesLabels"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for e in series["exemplars"].as_array().into_iter().flatten() {
                out.push(StoredExemplar {
                    series: labels.clone(),
                    trace_id: e["labels"]["trace_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    value: e["value"]
                        .as_str()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(f64::NAN),
                });
            }
        }
        out
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
