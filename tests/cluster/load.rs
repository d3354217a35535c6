//! Clients of the Service: one request on a fresh connection each (so every request goes
//! through kube-proxy's choice of endpoint, as many independent clients would), each
//! outcome classified (status and `Retry-After`, connection refused, timeout, other error),
//! and background load of a few concurrent clients with its tally.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// What one request got.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// An HTTP answer.
    Answer {
        /// Status code.
        status: u16,
        /// The `Retry-After` header, if any.
        retry_after: Option<String>,
        /// The body (JSON when it parses).
        body: Value,
    },
    /// Connection refused: no endpoint behind the Service (kube-proxy's REJECT rule).
    Refused,
    /// No answer within the client's deadline.
    Timeout,
    /// Anything else (reset, closed early, ...).
    Error(String),
}

impl Outcome {
    /// The status, for answers.
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Answer { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A 503 carrying `Retry-After`: the service's own answer to an outage.
    pub fn is_unavailable_with_retry_after(&self) -> bool {
        matches!(
            self,
            Outcome::Answer {
                status: 503,
                retry_after: Some(_),
                ..
            }
        )
    }
}

/// A client of the Service.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of `base` (`http://CLUSTER-IP:8001`): no connection reuse, 2 s to connect,
    /// 10 s per request.
    pub fn new(base: &str) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
        }
    }

    /// One request; the outcome and how long it took.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> (Outcome, Duration) {
        let started = Instant::now();
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            // As behind an ingress (the manifests trust the private ranges as proxies): each
            // request from its own client address (IPv6 documentation prefix, one /64 each),
            // so the per-address rate limits see many clients, as in production.
            .header("x-forwarded-for", client_address());
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let outcome = match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let retry_after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                match r.bytes().await {
                    Ok(bytes) => Outcome::Answer {
                        status,
                        retry_after,
                        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    },
                    Err(e) => Outcome::Error(format!("body: {e}")),
                }
            }
            Err(e) => classify(&e),
        };
        (outcome, started.elapsed())
    }

    /// GET.
    pub async fn get(&self, path: &str, token: Option<&str>) -> (Outcome, Duration) {
        self.send(reqwest::Method::GET, path, None, token).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> (Outcome, Duration) {
        self.send(reqwest::Method::POST, path, Some(body), token)
            .await
    }

    /// Registers a user; its token.
    pub async fn register(&self, email: &str) -> Result<String, String> {
        let body = json!({"email": email, "password": "Password123!", "first_name": "Ada",
            "last_name": "Lovelace", "gdpr_consent": true});
        match self.post("/api/auth/register", &body, None).await.0 {
            Outcome::Answer {
                status: 200, body, ..
            } => body["access_token"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("register: no token in {body}")),
            other => Err(format!("register {email}: {other:?}")),
        }
    }
}

/// A client address of the documentation prefix 2001:db8::/32, in a /64 of its own.
fn client_address() -> String {
    let r = uuid::Uuid::new_v4().as_u128();
    format!("2001:db8:{:x}:{:x}::1", (r >> 16) as u16, r as u16)
}

fn classify(e: &reqwest::Error) -> Outcome {
    if e.is_timeout() {
        return Outcome::Timeout;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return Outcome::Refused;
        }
        source = s.source();
    }
    Outcome::Error(format!("{e:?}"))
}

/// One request of a load run.
#[derive(Debug, Clone)]
pub struct Record {
    /// When it was sent, since the load started.
    pub at: Duration,
    /// Which kind of request (`read`, `write`, `login`, ...).
    pub kind: &'static str,
    /// What it got.
    pub outcome: Outcome,
    /// How long it took.
    pub took: Duration,
}

/// What a client of the load does once: the kind and the outcome.
pub type Step = Arc<
    dyn Fn(Client, usize) -> futures::future::BoxFuture<'static, (&'static str, Outcome, Duration)>
        + Send
        + Sync,
>;

/// Background load: `clients` tasks, each running `step` then pausing `pause`, until
/// stopped.
pub struct Load {
    started: Instant,
    stop: Arc<AtomicBool>,
    records: Arc<Mutex<Vec<Record>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts the load.
    pub fn start(client: &Client, clients: usize, pause: Duration, step: Step) -> Load {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let records = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..clients)
            .map(|i| {
                let (client, stop, records, step) =
                    (client.clone(), stop.clone(), records.clone(), step.clone());
                tokio::spawn(async move {
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let at = started.elapsed();
                        let (kind, outcome, took) = step(client.clone(), i * 1_000_000 + n).await;
                        records.lock().await.push(Record {
                            at,
                            kind,
                            outcome,
                            took,
                        });
                        n += 1;
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Load {
            started,
            stop,
            records,
            tasks,
        }
    }

    /// Time since the load started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops the clients (each finishes its request) and returns every record.
    pub async fn stop(self) -> Vec<Record> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        std::mem::take(&mut *self.records.lock().await)
    }
}

/// Percentile (0..=100) of durations, in milliseconds.
pub fn percentile_ms(mut xs: Vec<Duration>, p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort();
    let i = ((p / 100.0) * (xs.len() - 1) as f64).round() as usize;
    xs[i].as_secs_f64() * 1000.0
}

/// Counts of outcomes: `200: 812, 503+Retry-After: 97, refused: 0, ...`.
pub fn tally(records: &[Record]) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for r in records {
        let key = match &r.outcome {
            Outcome::Answer {
                status: 503,
                retry_after: Some(_),
                ..
            } => "503+Retry-After".to_string(),
            Outcome::Answer { status, .. } => status.to_string(),
            Outcome::Refused => "refused".into(),
            Outcome::Timeout => "timeout".into(),
            Outcome::Error(e) => format!("error {}", e.chars().take(60).collect::<String>()),
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
