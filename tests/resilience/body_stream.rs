//! The body limit on the stream, for every protocol, against the real binary: a 64 MiB body
//! streamed without `Content-Length` (HTTP/2 with prior knowledge, and chunked HTTP/1.1) is
//! read only up to the limit, answered 413, and the process's peak memory (`VmHWM`) does
//! not grow by anything near the body's size.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{Database, free_port, wait_until};

const LIMIT: u64 = 1024 * 1024;
const STREAMED: usize = 64 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// The process's peak resident memory (`VmHWM`), bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// 64 MiB of zeros, chunk by chunk, with no length known in advance.
fn zeros() -> reqwest::Body {
    let chunks = (0..STREAMED / CHUNK).map(|_| Ok::<_, std::io::Error>(vec![0u8; CHUNK]));
    reqwest::Body::wrap_stream(futures::stream::iter(chunks))
}

/// The service process, killed when dropped, and its working folder, removed after it.
struct Service {
    child: Child,
    _cwd: tempfile::TempDir,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(db: &Database) -> (Service, String) {
    let port = free_port();
    // An empty folder (no config/ and no .env of the checkout), removed with the service.
    let cwd = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_aila-api"))
        .current_dir(cwd.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OTEL_SDK_DISABLED", "true")
        .env("JWT_SECRET", "body-stream-test-secret-of-32-bytes!")
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("MONGO_URL", db.url())
        .env("HTTP_BODY_LIMIT_BYTES", LIMIT.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let url = format!("{base}/health");
    wait_until("the port to answer", || {
        let (http, url) = (http.clone(), url.clone());
        async move { http.get(&url).send().await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    (Service { child, _cwd: cwd }, base)
}

/// Streams 64 MiB to the login route; the answer's status and `detail`, or `None` when
/// the connection was closed while the client was still writing (see below).
async fn stream_to_login(http: &reqwest::Client, base: &str) -> Option<(u16, String)> {
    let sent = http
        .post(format!("{base}/api/auth/login"))
        .header("content-type", "application/json")
        .body(zeros())
        .send()
        .await;
    let r = match sent {
        Ok(r) => r,
        // HTTP/1.1 has no way to refuse the rest of a body but to close the connection
        // after the 413: a client still writing may see the broken pipe before it reads
        // the answer. HTTP/2 resets the stream instead, and the answer always arrives.
        Err(e) if e.is_request() && format!("{e:?}").contains("BodyWrite") => return None,
        Err(e) => panic!("the service did not answer: {e:?}"),
    };
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    Some((
        status,
        body["detail"].as_str().unwrap_or_default().to_string(),
    ))
}

#[tokio::test]
async fn a_64_mib_body_streamed_over_h2c_or_chunked_gets_413_and_memory_stays_flat() {
    // No database needed: the limit applies before any handler.
    let db = Database::unstarted();
    let (service, base) = start(&db).await;
    let pid = service.child.id();
    let h2c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let h1 = reqwest::Client::builder()
        .http1_only()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    // Warm both connections up so their buffers are in the baseline.
    for http in [&h2c, &h1] {
        let r = http.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let before = peak_rss(pid);
    for (protocol, http) in [("h2c", &h2c), ("chunked HTTP/1.1", &h1)] {
        match stream_to_login(http, &base).await {
            Some((status, detail)) => {
                assert_eq!(status, 413, "{protocol}: {detail}");
                assert!(detail.contains("too large"), "{protocol}: {detail}");
            }
            None => {
                assert_eq!(protocol, "chunked HTTP/1.1", "h2c always gets its answer");
                eprintln!("{protocol}: the connection closed while the client still wrote");
            }
        }
    }
    let grew = peak_rss(pid).saturating_sub(before);
    eprintln!(
        "peak memory grew by {} KiB for 2 x 64 MiB streamed",
        grew / 1024
    );
    assert!(
        grew < 16 * 1024 * 1024,
        "peak memory grew by {} MiB while 64 MiB bodies were streamed (limit 1 MiB)",
        grew / (1024 * 1024)
    );
    // The service still answers on the same h2c connection.
    assert_eq!(
        h2c.get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
