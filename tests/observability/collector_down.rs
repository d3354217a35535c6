//! The trace collector down (nothing listens) or hanging (accepts, never answers): the
//! service serves as usual, failed exports and their spans are counted in `/metrics`, the
//! warning is logged once for the whole episode (not per span or per batch), and SIGTERM
//! still exits promptly.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{DEADLINE, Database, free_port, wait_until};
use crate::service::Service;

/// Serves `rounds` authenticated requests that reach the database; returns the slowest.
async fn traffic(service: &Service, token: &str, rounds: usize) -> Duration {
    let mut slowest = Duration::ZERO;
    for _ in 0..rounds {
        let r = service.get("/api/persons", Some(token)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        slowest = slowest.max(r.took);
    }
    slowest
}

/// Waits until `/metrics` shows at least `failures` failed exports and some dropped spans;
/// keeps traffic flowing meanwhile so there is always something to export.
async fn wait_for_export_failures(service: &Service, token: &str, failures: f64) -> Duration {
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    loop {
        let m = service.metrics().await;
        if m.sum("aila_trace_export_failures_total", &[]) >= failures
            && m.sum("aila_trace_spans_dropped_total", &[]) > 0.0
        {
            return slowest;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "after {DEADLINE:?}: {} failed exports, {} dropped spans",
            m.sum("aila_trace_export_failures_total", &[]),
            m.sum("aila_trace_spans_dropped_total", &[])
        );
        slowest = slowest.max(traffic(service, token, 5).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn export_warnings(logs: &str) -> usize {
    logs.lines()
        .filter(|l| l.contains("trace export to") && l.contains("failed"))
        .count()
}

/// A fast request stays well under this whatever the exporter does (its export timeout is
/// 3 s: a request that waited on an export would take at least that).
const FAST: Duration = Duration::from_millis(1000);

#[tokio::test]
async fn with_the_collector_down_the_service_serves_and_counts_what_it_drops() {
    let db = Database::start().await;
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let mut service = Service::start(
        &db.url(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", nowhere.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    )
    .await;
    service.wait_ready().await;
    let token = service.register("no-collector@example.com").await;

    let started = Instant::now();
    let mut slowest = traffic(&service, &token, 20).await;
    slowest = slowest.max(wait_for_export_failures(&service, &token, 2.0).await);
    let counted_after = started.elapsed();
    assert!(
        slowest < FAST,
        "a request took {slowest:?} with the collector down"
    );

    let (exit, stop_took) = service.terminate().await;
    let logs = service.logs();
    assert!(exit.success(), "exit {exit:?}; logs:\n{logs}");
    assert_eq!(
        export_warnings(&logs),
        1,
        "the export warning must appear once per episode; logs:\n{logs}"
    );
    assert!(
        logs.contains("aila_trace_spans_dropped_total"),
        "the warning names the counter"
    );
    eprintln!(
        "collector down: slowest request {slowest:?}; 2 failed exports counted {counted_after:?} \
         after traffic began; SIGTERM to exit {stop_took:?}"
    );
}

/// A collector that accepts connections and never answers (a hung process, a black hole).
struct Hanging {
    port: u16,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Hanging {
    async fn start() -> Hanging {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        Hanging {
            port,
            accepted,
            task,
        }
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn with_a_hanging_collector_requests_never_wait_for_the_export() {
    let db = Database::start().await;
    let collector = Hanging::start().await;
    let endpoint = format!("http://127.0.0.1:{}", collector.port);
    let mut service = Service::start(
        &db.url(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    )
    .await;
    service.wait_ready().await;
    let token = service.register("hanging-collector@example.com").await;

    // An export is now stuck on the hanging connection (until the exporter's 3 s timeout).
    wait_until(
        "the exporter to connect to the hanging collector",
        || async { collector.accepted.load(Ordering::SeqCst) > 0 },
    )
    .await;
    let mut slowest = traffic(&service, &token, 30).await;
    slowest = slowest.max(wait_for_export_failures(&service, &token, 1.0).await);
    assert!(
        slowest < FAST,
        "a request took {slowest:?} while an export hung"
    );

    let (exit, stop_took) = service.terminate().await;
    let logs = service.logs();
    assert!(exit.success(), "exit {exit:?}; logs:\n{logs}");
    assert_eq!(export_warnings(&logs), 1, "logs:\n{logs}");
    // The flush at shutdown is bounded: the provider's shutdown waits at most 5 s (an
    // export in progress, then the final one, each up to the exporter's 3 s timeout).
    assert!(
        stop_took < Duration::from_secs(8),
        "SIGTERM took {stop_took:?} to exit with a hanging collector"
    );
    eprintln!("hanging collector: slowest request {slowest:?}; SIGTERM to exit {stop_took:?}");
}
