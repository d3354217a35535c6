//! `overload`: a burst on a healthy database is overload, not an outage. Five trees of 100
//! persons and 150 links are stored; `GET /api/tree` is measured at `--concurrency`
//! connections (the unloaded figure), then at `--burst-connections` (300) while
//! `/readiness` is sampled every 100 ms. Reported: trees served per second in both, their
//! ratio, how fast shed answers come back, readiness samples that were not 200 and breaker
//! transitions during the burst (read from `/metrics`).
//!
//! The burst's own latencies obey Little's law: 300 closed-loop connections answered at X
//! per second wait 300 / X seconds on average, wherever the queue forms (the service's
//! sockets or the generator's run queue). So a separate client on its own thread, one tree
//! request every 20 ms during the measured window, also reports what one more user sees:
//! how fast the service answers while the burst holds it busy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};

use crate::load::{self, LoadConfig, LoadResult, RequestSpec};
use crate::report::{Metric, ScenarioReport, Target};
use crate::scenarios::{Env, method_text, seed_trees, start_stack};
use crate::seed;
use crate::stats::percentile;

/// The service's `/metrics` text.
pub(crate) async fn metrics_text(addr: SocketAddr) -> Result<String> {
    let (status, body) = load::once(addr, &RequestSpec::get("/metrics")).await?;
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The sum of every sample of `family` (all label sets) in a Prometheus text exposition.
pub(crate) fn metric_sum(text: &str, family: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Samples `path` every 100 ms until `stop`: the statuses seen (0 for no answer).
pub(crate) fn sample_status(
    addr: SocketAddr,
    path: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<u16>> {
    tokio::spawn(async move {
        let spec = RequestSpec::get(path);
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let status =
                match tokio::time::timeout(Duration::from_secs(2), load::once(addr, &spec)).await {
                    Ok(Ok((s, _))) => s,
                    _ => 0,
                };
            seen.push(status);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seen
    })
}

fn per_second(r: &LoadResult, status: u16) -> f64 {
    r.statuses.get(&status).copied().unwrap_or(0) as f64 / r.window.as_secs_f64()
}

fn status_pct_ms(r: &LoadResult, status: u16, p: f64) -> f64 {
    r.latencies_by_status
        .get(&status)
        .and_then(|v| percentile(v, p))
        .map_or(f64::NAN, |ns| ns as f64 / 1e6)
}

/// The scenario.
pub async fn overload(env: &Env) -> Result<ScenarioReport> {
    let mut stack = start_stack(env).await?;
    let addr = stack.svc.addr;
    eprintln!("  seeding five trees of 100 persons and 150 links through the API ...");
    let token = seed_trees(addr, 4).await?;
    let spec = Arc::new(RequestSpec::get("/api/tree").bearer(&token));
    let (status, v) = seed::call(addr, &spec).await?;
    if status != 200 {
        bail!("GET /api/tree answered {status}: {v}");
    }
    let unloaded_cfg = env.opts.load;
    let burst_cfg = LoadConfig {
        concurrency: env.opts.burst_connections,
        honour_retry_after: env.opts.polite_burst,
        ..env.opts.load
    };
    let (svc_pid, db_pid) = (stack.svc.pid(), stack.db.pid());
    let mut rows: Vec<[f64; 12]> = Vec::new();
    let mut statuses = std::collections::BTreeMap::<String, u64>::new();
    let mut errors = 0;
    for i in 0..env.opts.runs {
        let unloaded = load::run(addr, spec.clone(), unloaded_cfg, svc_pid, db_pid).await;
        let before = metrics_text(addr).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = sample_status(addr, "/readiness", stop.clone());
        let probe = load::probe(
            addr,
            spec.clone(),
            tokio::time::Instant::now() + burst_cfg.warmup,
            Duration::from_millis(20),
            stop.clone(),
        );
        let burst = load::run(addr, spec.clone(), burst_cfg, svc_pid, db_pid).await;
        stop.store(true, Ordering::Relaxed);
        let samples = sampler.await?;
        let probed = tokio::task::spawn_blocking(move || probe.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the probe thread panicked"))?;
        let mut probe_shed: Vec<u64> = probed
            .iter()
            .filter(|(s, _)| *s == 503)
            .map(|(_, ns)| *ns)
            .collect();
        probe_shed.sort_unstable();
        let probe_ms = |p: f64| percentile(&probe_shed, p).map_or(f64::NAN, |ns| ns as f64 / 1e6);
        let after = metrics_text(addr).await?;
        let family = "aila_db_circuit_breaker_transitions_total";
        let transitions = metric_sum(&after, family) - metric_sum(&before, family);
        let not_ready = samples.iter().filter(|s| **s != 200).count() as f64;
        let (ok0, ok1) = (per_second(&unloaded, 200), per_second(&burst, 200));
        let row = [
            ok0,
            ok1,
            ok1 / ok0.max(1e-9),
            per_second(&burst, 503),
            status_pct_ms(&burst, 503, 50.0),
            status_pct_ms(&burst, 503, 99.0),
            not_ready,
            transitions,
            burst.cpu.1.unwrap_or(f64::NAN),
            burst.cpu.2.unwrap_or(f64::NAN),
            probe_ms(50.0),
            probe_ms(99.0),
        ];
        eprintln!(
            "  overload run {}/{}: unloaded {:.1} trees/s; burst {:.1} trees/s ({:.2}x), {:.0} shed/s \
             (p50 {:.2} ms, p99 {:.2} ms; a separate client: {} of {} shed, p50 {:.2} ms, \
             p99 {:.2} ms); readiness not 200 in {not_ready} of {} samples; \
             {transitions} breaker transitions; service CPU {:.0} %, database CPU {:.0} %, \
             generator CPU {:.0} %; statuses {:?}, errors {}",
            i + 1,
            env.opts.runs,
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            probe_shed.len(),
            probed.len(),
            row[10],
            row[11],
            samples.len(),
            row[8],
            row[9],
            burst.cpu.0,
            burst.statuses,
            burst.errors
        );
        for (k, v) in &burst.statuses {
            *statuses.entry(k.to_string()).or_default() += v;
        }
        errors += burst.errors;
        rows.push(row);
    }
    let col = |i: usize| rows.iter().map(|r| r[i]).collect::<Vec<f64>>();
    let metrics = vec![
        Metric::new(
            &format!(
                "trees/s unloaded ({} connections)",
                unloaded_cfg.concurrency
            ),
            "req/s",
            col(0),
            None,
        ),
        Metric::new(
            &format!(
                "trees/s during the burst ({} connections)",
                burst_cfg.concurrency
            ),
            "req/s",
            col(1),
            None,
        ),
        Metric::new(
            "burst / unloaded trees/s",
            "x",
            col(2),
            Some(Target::Above(0.8)),
        ),
        Metric::new("shed answers (503)", "req/s", col(3), None),
        Metric::new("shed answer p50", "ms", col(4), None),
        Metric::new("shed answer p99", "ms", col(5), Some(Target::Below(5.0))),
        Metric::new(
            "readiness samples not 200",
            "samples",
            col(6),
            Some(Target::Below(1.0)),
        ),
        Metric::new(
            "breaker transitions",
            "count",
            col(7),
            Some(Target::Below(1.0)),
        ),
        Metric::new(
            "shed answer p50, a separate client (one request every 20 ms)",
            "ms",
            col(10),
            None,
        ),
        Metric::new(
            "shed answer p99, a separate client (one request every 20 ms)",
            "ms",
            col(11),
            None,
        ),
        Metric::new("service CPU (burst)", "% of a core", col(8), None),
        Metric::new("database CPU (burst)", "% of a core", col(9), None),
    ];
    stack.svc.stop();
    Ok(ScenarioReport {
        name: "overload".into(),
        what: format!(
            "GET /api/tree (a user with 100 persons and 150 links among 4 other users with as many): \
             {} connections, then a burst of {} on the same healthy database",
            unloaded_cfg.concurrency, burst_cfg.concurrency
        ),
        method: method_text(&env.opts),
        metrics,
        statuses,
        transport_errors: errors,
        notes: vec![
            "statuses and errors are the burst's; shed answers are 503 with Retry-After; the load \
             generator (one thread) shares the machine with the service and the database"
                .into(),
            if burst_cfg.honour_retry_after {
                "--polite-burst: each burst connection waits out a 503's Retry-After-Ms before \
                 sending again"
            } else {
                "each burst connection sends again as soon as it is answered, 503 or not \
                 (the worst client; --polite-burst waits out Retry-After)"
            }
            .into(),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sum_adds_every_label_set_of_one_family_only() {
        let text = "# TYPE x counter\n\
                    aila_x_total{a=\"1\"} 2\n\
                    aila_x_total{a=\"2\"} 3.5\n\
                    aila_x_total_other 100\n\
                    aila_y_total 7\n";
        assert_eq!(metric_sum(text, "aila_x_total"), 5.5);
        assert_eq!(metric_sum(text, "aila_y_total"), 7.0);
        assert_eq!(metric_sum(text, "aila_z_total"), 0.0);
    }
}
