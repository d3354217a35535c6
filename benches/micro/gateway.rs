//! The gateway's own cost: admission, deadline, classification, breaker record, metrics and
//! the client span around an operation.
//!
//! - a trivial operation (an `async { Ok(()) }`, no I/O) through `Gateway::run`: the whole
//!   overhead the gateway adds to every database call, with no subscriber (spans disabled)
//!   and with the service's subscriber stack (OpenTelemetry layer without exporter + text
//!   log layer into a sink, filter `info`), since in the service the client span is real;
//! - the refusal when the breaker is open (what a request pays during an outage);
//! - when FerretDB is built (`.tools/bin/ferretdb` or `FERRETDB_BIN`): `find_one` on an empty
//!   collection on the raw driver and through the gateway; the difference is the overhead in
//!   context, under a real round trip.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aila_api::db::Gateway;
use aila_api::db::client::BuiltClient;
use aila_api::db::state::DbState;
use aila_api::metrics::Metrics;
use aila_api::redact::Redactor;
use aila_api::resilience::breaker::{Breaker, BreakerConfig};
use bson::{Document, doc};
use criterion::Criterion;
use mongodb::{Client, Collection};
use opentelemetry::trace::TracerProvider as _;
use tokio::runtime::Runtime;
use tracing_subscriber::layer::SubscriberExt;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

fn gateway(rt: &Runtime, url: &str) -> Gateway {
    let breaker = Breaker::new(
        BreakerConfig {
            open_initial: Duration::from_secs(3600),
            open_max: Duration::from_secs(3600),
            jitter: 0.0,
            ..BreakerConfig::default()
        },
        |_| {},
    );
    let (_tx, state) = tokio::sync::watch::channel(DbState::initial());
    let gw = Gateway::new(
        "aila_bench".into(),
        breaker,
        Duration::from_secs(5),
        Metrics::new(),
        Redactor::default(),
        state,
    );
    let client = rt
        .block_on(Client::with_uri_str(url))
        .expect("a client (no connection is made yet)");
    gw.install(&BuiltClient {
        client,
        server_address: "127.0.0.1".into(),
        server_port: url.rsplit(':').next().and_then(|p| p.parse().ok()),
        warnings: Vec::new(),
    });
    gw
}

/// The service's subscriber stack (see `telemetry.rs`), with nothing exported or printed.
fn service_like_subscriber() -> impl tracing::Subscriber + Send + Sync {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let tracer = provider.tracer("aila-api");
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
}

async fn trivial(gw: &Gateway) {
    let r = gw
        .run::<(), Document, _, _>("find_one", "bench_empty", |_c| async { Ok(()) })
        .await;
    black_box(r).expect("a trivial operation succeeds");
}

/// A FerretDB process for the benchmark, killed on drop.
struct Ferret {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl Drop for Ferret {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_ferretdb() -> Option<Ferret> {
    let bin = std::env::var_os("FERRETDB_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/ferretdb"));
    if !bin.exists() {
        eprintln!(
            "gateway/find_one: skipped, FerretDB not built ({}; scripts/build-tools.sh ferretdb)",
            bin.display()
        );
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let data = tempfile::tempdir().ok()?;
    let child = Command::new(bin)
        .arg("-listen-addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-data-dir")
        .arg(data.path())
        .arg("-log-level")
        .arg("error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let ferret = Ferret {
        child,
        port,
        _data: data,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            eprintln!("gateway/find_one: skipped, FerretDB did not start");
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(ferret)
}

pub fn benches(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("gateway");

    // Nothing listens on port 9 (discard): the client exists, the trivial op never uses it.
    let gw = gateway(&rt, "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=1000");
    g.bench_function("trivial op (no I/O), no subscriber", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    trivial(&gw).await;
                }
                t.elapsed()
            })
        })
    });
    let subscriber = Arc::new(service_like_subscriber());
    g.bench_function(
        "trivial op (no I/O), service subscriber (client span built)",
        |b| {
            b.iter_custom(|iters| {
                let _guard = tracing::subscriber::set_default(subscriber.clone());
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        trivial(&gw).await;
                    }
                    t.elapsed()
                })
            })
        },
    );

    let refused = gateway(&rt, "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=1000");
    refused.breaker().trip("benchmark");
    let per_call = rt.block_on(async {
        let a0 = crate::allocations();
        for _ in 0..1000 {
            let r = refused
                .run::<(), Document, _, _>("find_one", "bench_empty", |_c| async { Ok(()) })
                .await;
            assert!(r.is_err());
        }
        (crate::allocations() - a0) as f64 / 1000.0
    });
    eprintln!("gateway/refused: {per_call:.1} heap allocations per refused call");
    g.bench_function("refused: breaker open, no subscriber", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let t = Instant::now();
                for _ in 0..iters {
                    let r = refused
                        .run::<(), Document, _, _>("find_one", "bench_empty", |_c| async { Ok(()) })
                        .await;
                    assert!(black_box(r).is_err());
                }
                t.elapsed()
            })
        })
    });

    if let Some(ferret) = start_ferretdb() {
        let url = format!("mongodb://127.0.0.1:{}", ferret.port);
        let gw = gateway(&rt, &url);
        let raw: Collection<Document> = rt
            .block_on(Client::with_uri_str(&url))
            .expect("a client")
            .database("aila_bench")
            .collection("bench_empty");
        // Connect both clients before measuring.
        rt.block_on(async {
            raw.find_one(doc! {}).await.expect("FerretDB answers");
            gw.run(
                "find_one",
                "bench_empty",
                |c: Collection<Document>| async move { c.find_one(doc! {}).await },
            )
            .await
            .expect("FerretDB answers through the gateway");
        });
        g.measurement_time(Duration::from_secs(8));
        g.bench_function("find_one on an empty collection: raw driver", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        black_box(raw.find_one(doc! {}).await.expect("answer"));
                    }
                    t.elapsed()
                })
            })
        });
        g.bench_function(
            "find_one on an empty collection: through the gateway",
            |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let t = Instant::now();
                        for _ in 0..iters {
                            let r = gw
                            .run("find_one", "bench_empty", |c: Collection<Document>| async move {
                                c.find_one(doc! {}).await
                            })
                            .await;
                            black_box(r.expect("answer"));
                        }
                        t.elapsed()
                    })
                })
            },
        );
        drop(ferret);
    }
    g.finish();
}
