//! `gray`: network faults between the service and its database, through Toxiproxy (built
//! by `scripts/build-tools.sh toxiproxy`; `TOXIPROXY_BIN` overrides). Per run:
//!
//! - **latency**: +200 ms each way under `GET /api/persons` load: answers that were not
//!   200, latency, readiness samples not 200, breaker transitions (targets: 0, 0, 0).
//! - **blackhole** (connections stay open, nothing answers) and **reset** (every
//!   connection reset), each twice, idle and under traffic: time until `/readiness` says
//!   503 (target 3 s), then the API's refusals p99 (target 50 ms), then, once the fault is
//!   lifted, time until `/readiness` says 200 again (target 3 s).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio::time::Instant;

use aila_testkit::toxiproxy::{self, Client, Stream, Toxic};

use crate::load::{self, LoadConfig, RequestSpec};
use crate::overload::{metric_sum, metrics_text, sample_status};
use crate::procs::{DbServer, Service};
use crate::report::{Metric, ScenarioReport, Target};
use crate::scenarios::{Env, method_text, pct_ms, unique_db_name, wait_ready};
use crate::seed::{self, wait_status};
use crate::stats::percentile;

const DETECTION_LIMIT: Duration = Duration::from_secs(30);

async fn toxiproxy<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await?
        .map_err(|e| anyhow!("toxiproxy: {e}"))
}

async fn add_both_ways(client: Client, make: fn(Stream) -> Toxic) -> Result<()> {
    for stream in [Stream::Upstream, Stream::Downstream] {
        let toxic = make(stream);
        toxiproxy(move || client.add_toxic("mongo", &toxic).map(|_| ())).await?;
    }
    Ok(())
}

/// Requests on `connections` connections until `stop` (traffic during a fault's detection).
fn traffic(
    addr: SocketAddr,
    spec: Arc<RequestSpec>,
    connections: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..connections)
        .map(|_| {
            let (spec, stop) = (spec.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = tokio::time::timeout(Duration::from_secs(10), load::once(addr, &spec))
                        .await;
                }
            })
        })
        .collect()
}

/// One silent or resetting fault: detection, refusals, recovery (milliseconds).
async fn fault(
    addr: SocketAddr,
    client: Client,
    make: fn(Stream) -> Toxic,
    spec: &Arc<RequestSpec>,
    under_traffic: bool,
    refusal_load: LoadConfig,
) -> Result<[f64; 3]> {
    let stop = Arc::new(AtomicBool::new(false));
    let load = if under_traffic {
        traffic(addr, spec.clone(), refusal_load.concurrency, stop.clone())
    } else {
        Vec::new()
    };
    let put = Instant::now();
    add_both_ways(client, make).await?;
    let detected = wait_status(
        addr,
        "/readiness",
        503,
        Duration::from_millis(10),
        DETECTION_LIMIT,
    )
    .await
    .context("the fault was never noticed")?;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.abort();
    }
    // The API's answers while the database is known to be unusable.
    let refused = load::run(addr, spec.clone(), refusal_load, None, None).await;
    let not_refused = refused
        .statuses
        .iter()
        .filter(|(s, _)| **s != 503)
        .map(|(_, n)| n)
        .sum::<u64>();
    if not_refused > 0 {
        eprintln!(
            "  note: {not_refused} answers were not 503 during the fault: {:?}",
            refused.statuses
        );
    }
    let refusal_p99 = refused
        .latencies_by_status
        .get(&503)
        .and_then(|v| percentile(v, 99.0))
        .map_or(f64::NAN, |ns| ns as f64 / 1e6);
    let lifted = Instant::now();
    toxiproxy(move || client.reset()).await?;
    let back = wait_status(
        addr,
        "/readiness",
        200,
        Duration::from_millis(10),
        DETECTION_LIMIT,
    )
    .await
    .context("no recovery after the fault was lifted")?;
    Ok([
        (detected - put).as_secs_f64() * 1000.0,
        refusal_p99,
        (back - lifted).as_secs_f64() * 1000.0,
    ])
}

/// The scenario.
pub async fn gray(env: &Env) -> Result<ScenarioReport> {
    let binary = std::panic::catch_unwind(toxiproxy::server_binary)
        .map_err(|_| anyhow!("Toxiproxy is not built: run `scripts/build-tools.sh toxiproxy`"))?;
    let mut db = DbServer::new(env.db_kind.clone())?;
    db.start().await?;
    let upstream = db.addr().to_string();
    let server =
        tokio::task::spawn_blocking(move || toxiproxy::Server::start(&binary, None, |_| {}))
            .await?
            .map_err(|e| anyhow!(e))?;
    let client = server.client();
    let proxy = toxiproxy(move || client.create_proxy("mongo", "127.0.0.1:0", &upstream)).await?;
    let proxy_url = format!(
        "mongodb://127.0.0.1:{}",
        proxy.port().map_err(|e| anyhow!(e))?
    );
    let (mut svc, _) = Service::spawn(&env.service, &proxy_url, &unique_db_name())?;
    let addr = svc.addr;
    wait_ready(&mut svc).await?;
    let token = seed::register(addr).await?;
    seed::seed_tree(addr, &token, 10, 0).await?;
    let spec = Arc::new(RequestSpec::get("/api/persons").bearer(&token));
    let load_cfg = env.opts.load;
    let refusal_load = LoadConfig {
        warmup: Duration::ZERO,
        duration: Duration::from_secs(2),
        rate: None,
        ..load_cfg
    };

    let mut rows: Vec<[f64; 13]> = Vec::new();
    for i in 0..env.opts.runs {
        // +200 ms each way.
        add_both_ways(client, |s| Toxic::latency(s, Duration::from_millis(200))).await?;
        let before = metrics_text(addr).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = sample_status(addr, "/readiness", stop.clone());
        let slow = load::run(addr, spec.clone(), load_cfg, svc.pid(), None).await;
        stop.store(true, Ordering::Relaxed);
        let samples = sampler.await?;
        let after = metrics_text(addr).await?;
        toxiproxy(move || client.reset()).await?;
        let family = "aila_db_circuit_breaker_transitions_total";
        let transitions = metric_sum(&after, family) - metric_sum(&before, family);
        let not_200 = slow
            .statuses
            .iter()
            .filter(|(s, _)| **s != 200)
            .map(|(_, n)| *n)
            .sum::<u64>()
            + slow.errors;
        let not_ready = samples.iter().filter(|s| **s != 200).count();
        let mut row = [f64::NAN; 13];
        row[0] = not_200 as f64;
        row[1] = pct_ms(&slow, 50.0);
        row[2] = pct_ms(&slow, 99.0);
        row[3] = not_ready as f64;
        row[4] = transitions;
        let mut col = 5;
        for (name, make) in [
            ("blackhole", Toxic::blackhole as fn(Stream) -> Toxic),
            ("reset", Toxic::reset_peer as fn(Stream) -> Toxic),
        ] {
            for under_traffic in [false, true] {
                let [detect, refusal, recover] =
                    fault(addr, client, make, &spec, under_traffic, refusal_load).await?;
                eprintln!(
                    "  gray run {}/{}: {name} ({}): noticed in {detect:.0} ms, refusals p99 {refusal:.2} ms, \
                     ready again {recover:.0} ms after it was lifted",
                    i + 1,
                    env.opts.runs,
                    if under_traffic {
                        "under traffic"
                    } else {
                        "idle"
                    },
                );
                if under_traffic {
                    row[col] = detect;
                    row[col + 1] = refusal;
                    row[col + 2] = recover;
                    col += 3;
                } else {
                    row[col] = detect;
                    col += 1;
                }
            }
        }
        // Blackhole: [5] idle detection, [6..9] traffic; reset: [9] idle, [10..13] traffic.
        eprintln!(
            "  gray run {}/{}: latency +200 ms each way: {not_200} answers not 200, p50 {:.0} ms, \
             p99 {:.0} ms, readiness not 200 in {not_ready} of {} samples, {transitions} breaker transitions",
            i + 1,
            env.opts.runs,
            row[1],
            row[2],
            samples.len()
        );
        rows.push(row);
    }
    svc.check_alive()?;
    svc.stop();
    drop(server);
    let col = |i: usize| rows.iter().map(|r| r[i]).collect::<Vec<f64>>();
    let zero = Some(Target::Below(1.0));
    let three_s = Some(Target::Below(3000.0));
    let fifty_ms = Some(Target::Below(50.0));
    let mut metrics = vec![
        Metric::new("latency +200 ms: answers not 200", "count", col(0), zero),
        Metric::new("latency +200 ms: p50", "ms", col(1), None),
        Metric::new("latency +200 ms: p99", "ms", col(2), None),
        Metric::new(
            "latency +200 ms: readiness not 200",
            "samples",
            col(3),
            zero,
        ),
        Metric::new(
            "latency +200 ms: breaker transitions",
            "count",
            col(4),
            zero,
        ),
    ];
    for (name, base) in [("blackhole", 5), ("reset", 9)] {
        metrics.extend([
            Metric::new(&format!("{name}: noticed, idle"), "ms", col(base), three_s),
            Metric::new(
                &format!("{name}: noticed, under traffic"),
                "ms",
                col(base + 1),
                three_s,
            ),
            Metric::new(
                &format!("{name}: refusals p99"),
                "ms",
                col(base + 2),
                fifty_ms,
            ),
            Metric::new(
                &format!("{name}: ready again after it is lifted"),
                "ms",
                col(base + 3),
                three_s,
            ),
        ]);
    }
    if rows.is_empty() {
        bail!("no run");
    }
    Ok(ScenarioReport {
        name: "gray".into(),
        what: format!(
            "Toxiproxy between the service and the database; GET /api/persons (10 persons) at {} \
             connections: +200 ms each way, then a blackhole and resets of every connection, each \
             idle and under traffic",
            load_cfg.concurrency
        ),
        method: method_text(&env.opts),
        metrics,
        statuses: Default::default(),
        transport_errors: 0,
        notes: vec![
            "noticed = from the fault put in place until /readiness answers 503 (polled every \
             10 ms); refusals = the API's 503 answers during the 2 s after that; ready again = \
             from the fault lifted until /readiness answers 200"
                .into(),
        ],
    })
}
