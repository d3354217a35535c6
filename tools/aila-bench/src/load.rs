//! The load generator: a fixed number of keep-alive HTTP/1.1 connections (raw hyper, no
//! pool, no TLS), each sending one request after the other (closed loop), or at a fixed
//! rate when asked (open loop: when the server's slowness made a request late, its latency
//! counts from the time it was due, so a slow server cannot hide its queueing; when it was
//! late only because the timer woke late, Tokio's timer ticking in milliseconds, it counts
//! from when it was sent). It runs on a single-threaded Tokio runtime so it never
//! takes more than one of the machine's cores; its own CPU use is measured and reported.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use crate::procs::CpuSample;

/// One request, sent again and again.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// Method.
    pub method: Method,
    /// Path and query (`/api/tree`).
    pub path: String,
    /// Extra headers (`Authorization`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// JSON body, if any.
    pub body: Option<Bytes>,
}

impl RequestSpec {
    /// `GET path`.
    pub fn get(path: &str) -> RequestSpec {
        RequestSpec {
            method: Method::GET,
            path: path.to_string(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// Adds `Authorization: Bearer token`.
    pub fn bearer(mut self, token: &str) -> RequestSpec {
        self.headers.push((
            hyper::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("a JWT is a valid header"),
        ));
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: &'static str) -> RequestSpec {
        self.headers.push((
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ));
        self
    }

    /// `POST path` with a JSON body.
    pub fn post_json(path: &str, body: &serde_json::Value) -> RequestSpec {
        RequestSpec {
            method: Method::POST,
            path: path.to_string(),
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body: Some(Bytes::from(body.to_string())),
        }
    }

    fn build(&self, host: &HeaderValue) -> Request<Full<Bytes>> {
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(self.path.as_str())
            .header(HOST, host.clone());
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req.body(Full::new(self.body.clone().unwrap_or_default()))
            .expect("a valid request")
    }
}

/// How to load.
#[derive(Debug, Clone, Copy)]
pub struct LoadConfig {
    /// Connections, each with at most one request in flight.
    pub concurrency: usize,
    /// Load before measuring (not counted).
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
    /// Total requests per second (open loop), or `None` for as fast as answered.
    pub rate: Option<f64>,
    /// Closed loop only: after a 503 with a retry hint (`Retry-After-Ms`, else
    /// `Retry-After`), wait that long before the next request, as a polite client does.
    /// `false`: send again at once (the worst client).
    pub honour_retry_after: bool,
}

/// What one measured run saw.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Requests started and answered inside the measured window.
    pub requests: u64,
    /// Transport errors (connection refused/reset, malformed answers) in the window.
    pub errors: u64,
    /// Measured window.
    pub window: Duration,
    /// Latencies of the answered requests, nanoseconds, sorted.
    pub latencies_ns: Vec<u64>,
    /// Answers by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Latencies by status code, nanoseconds, sorted.
    pub latencies_by_status: BTreeMap<u16, Vec<u64>>,
    /// CPU, percent of one core: generator, service, database.
    pub cpu: (f64, Option<f64>, Option<f64>),
}

#[derive(Default)]
struct WorkerTally {
    latencies_ns: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
    latencies_by_status: BTreeMap<u16, Vec<u64>>,
    errors: u64,
}

/// Sends one request of `spec` on `s` and reads its whole answer: its status, and its
/// retry hint if any.
async fn send_one(
    s: &mut SendRequest<Full<Bytes>>,
    spec: &RequestSpec,
    host: &HeaderValue,
) -> Result<(u16, Option<Duration>), hyper::Error> {
    s.ready().await?;
    let resp = s.send_request(spec.build(host)).await?;
    let status = resp.status().as_u16();
    let hint = retry_hint(resp.headers());
    resp.into_body().collect().await?;
    Ok((status, hint))
}

/// `Retry-After-Ms` (milliseconds), else `Retry-After` (seconds).
fn retry_hint(headers: &hyper::HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    number("retry-after-ms")
        .map(Duration::from_millis)
        .or_else(|| number("retry-after").map(Duration::from_secs))
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends `spec` once on a fresh connection and returns the status and body (for set-up
/// checks, outside any measurement).
pub async fn once(addr: SocketAddr, spec: &RequestSpec) -> Result<(u16, Bytes)> {
    let mut sender = connect(addr).await?;
    let host = HeaderValue::from_str(&addr.to_string())?;
    let resp = sender.send_request(spec.build(&host)).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// From `from`, one request every `every` on a keep-alive connection of its own, from a thread and a
/// runtime of its own, until `stop`: the status and latency (nanoseconds) of each. What one
/// more client sees while the closed-loop workers hold the service busy, without queueing
/// behind them in the generator's own runtime (mostly asleep, it takes little CPU).
pub fn probe(
    addr: SocketAddr,
    spec: Arc<RequestSpec>,
    from: Instant,
    every: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<(u16, u64)>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the probe");
        rt.block_on(async move {
            let host = HeaderValue::from_str(&addr.to_string()).expect("a valid host");
            let mut seen = Vec::new();
            let mut sender: Option<SendRequest<Full<Bytes>>> = None;
            let mut next = from;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep_until(next).await;
                next += every;
                let Some(mut s) = (match sender.take() {
                    Some(s) => Some(s),
                    None => connect(addr).await.ok(),
                }) else {
                    continue;
                };
                let sent = Instant::now();
                let outcome = send_one(&mut s, &spec, &host).await;
                if let Ok((status, _)) = outcome {
                    seen.push((status, sent.elapsed().as_nanos() as u64));
                    sender = Some(s);
                }
            }
            seen
        })
    })
}

/// Runs one warm-up plus one measured window against `addr`. Must run on a
/// single-threaded runtime (the caller's), which the workers share.
pub async fn run(
    addr: SocketAddr,
    spec: Arc<RequestSpec>,
    config: LoadConfig,
    service_pid: Option<u32>,
    db_pid: Option<u32>,
) -> LoadResult {
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let measure_until = measure_from + config.duration;
    let host = HeaderValue::from_str(&addr.to_string()).expect("an address is a valid host");
    // Open loop: each connection sends every `concurrency / rate` seconds, staggered.
    let interval = config
        .rate
        .map(|r| Duration::from_secs_f64(config.concurrency as f64 / r.max(1e-6)));

    let mut workers = Vec::with_capacity(config.concurrency);
    for i in 0..config.concurrency {
        let spec = spec.clone();
        let host = host.clone();
        let offset = interval.map(|iv| iv.mul_f64(i as f64 / config.concurrency as f64));
        workers.push(tokio::spawn(async move {
            let mut tally = WorkerTally {
                latencies_ns: Vec::with_capacity(1 << 16),
                ..Default::default()
            };
            let mut sender: Option<SendRequest<Full<Bytes>>> = None;
            let mut due = offset.map(|o| start + o);
            loop {
                // Late because the previous answer came after this request was due: count
                // from the due time. Otherwise wait for it, and count from the real send.
                let sent = match due {
                    Some(d) if Instant::now() >= d => d,
                    Some(d) => {
                        tokio::time::sleep_until(d).await;
                        Instant::now()
                    }
                    None => Instant::now(),
                };
                let due_at = due.unwrap_or(sent);
                if due_at >= measure_until {
                    break;
                }
                let counted = due_at >= measure_from;
                let s = match sender.take() {
                    Some(s) => Some(s),
                    None => connect(addr).await.ok(),
                };
                let Some(mut s) = s else {
                    if counted {
                        tally.errors += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    advance(&mut due, interval);
                    continue;
                };
                let outcome = send_one(&mut s, &spec, &host).await;
                let done = Instant::now();
                let mut back_off = None;
                match outcome {
                    Ok((status, hint)) => {
                        if config.honour_retry_after && status == 503 {
                            back_off = hint;
                        }
                        if counted && done <= measure_until {
                            let ns = (done - sent).as_nanos() as u64;
                            tally.latencies_ns.push(ns);
                            tally
                                .latencies_by_status
                                .entry(status)
                                .or_default()
                                .push(ns);
                            *tally.statuses.entry(status).or_default() += 1;
                        }
                        sender = Some(s);
                    }
                    Err(_) => {
                        if counted {
                            tally.errors += 1;
                        }
                    }
                }
                advance(&mut due, interval);
                if let Some(wait) = back_off {
                    tokio::time::sleep(wait.min(measure_until.saturating_duration_since(done)))
                        .await;
                }
            }
            tally
        }));
    }

    tokio::time::sleep_until(measure_from).await;
    let before = CpuSample::take(service_pid, db_pid);
    tokio::time::sleep_until(measure_until).await;
    let after = CpuSample::take(service_pid, db_pid);

    let mut latencies_ns = Vec::new();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut latencies_by_status: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
    let mut errors = 0;
    for w in workers {
        if let Ok(t) = w.await {
            latencies_ns.extend(t.latencies_ns);
            for (k, v) in t.statuses {
                *statuses.entry(k).or_default() += v;
            }
            for (k, v) in t.latencies_by_status {
                latencies_by_status.entry(k).or_default().extend(v);
            }
            errors += t.errors;
        }
    }
    latencies_ns.sort_unstable();
    for v in latencies_by_status.values_mut() {
        v.sort_unstable();
    }
    LoadResult {
        requests: latencies_ns.len() as u64,
        errors,
        window: config.duration,
        latencies_ns,
        statuses,
        latencies_by_status,
        cpu: before.percent_until(&after),
    }
}

fn advance(due: &mut Option<Instant>, interval: Option<Duration>) {
    if let (Some(d), Some(iv)) = (due.as_mut(), interval) {
        *d += iv;
    }
}
