//! Polls `/health` and `/readiness` about every 100 ms and records each answer, with the
//! breaker state, the database state and the uptime from the JSON body.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::load::Clock;
use crate::record::{ProbeKind, ProbeRecord};

/// One probe loop until `stop` turns true.
pub async fn run(
    url: String,
    kind: ProbeKind,
    clock: Clock,
    period: Duration,
    timeout: Duration,
    mut stop: watch::Receiver<bool>,
) -> Vec<ProbeRecord> {
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("an HTTP client");
    let target = format!("{url}{}", kind.path());
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut out = Vec::new();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        out.push(once(&http, &target, kind, clock).await);
    }
    out
}

/// One probe.
pub async fn once(
    http: &reqwest::Client,
    target: &str,
    kind: ProbeKind,
    clock: Clock,
) -> ProbeRecord {
    let started = Instant::now();
    let result = async {
        let r = http.get(target).send().await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        Ok::<_, reqwest::Error>((status, body))
    }
    .await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let t_ms = clock.ms(started);
    match result {
        Ok((status, body)) => ProbeRecord {
            t_ms,
            probe: kind,
            status,
            latency_ms,
            breaker: body["circuit_breaker"]["state"].as_str().map(String::from),
            database: body["database"].as_str().map(String::from),
            uptime_s: body["uptime_s"].as_u64(),
            error: None,
        },
        Err(e) => ProbeRecord {
            t_ms,
            probe: kind,
            status: 0,
            latency_ms,
            breaker: None,
            database: None,
            uptime_s: None,
            error: Some(if e.is_timeout() {
                format!("timed out: {e}")
            } else if e.is_connect() {
                "connection refused or reset".to_string()
            } else {
                e.to_string()
            }),
        },
    }
}

/// Waits until `/readiness` answers 200, up to `limit`.
pub async fn wait_ready(url: &str, limit: Duration) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client");
    let until = Instant::now() + limit;
    loop {
        let last = match http.get(format!("{url}/readiness")).send().await {
            Ok(r) if r.status().as_u16() == 200 => return Ok(()),
            Ok(r) => {
                let status = r.status();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                format!("{status}: {}", body["not_ready_reasons"])
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() > until {
            return Err(format!(
                "{url}/readiness did not answer 200 within {limit:?} (last: {last})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
