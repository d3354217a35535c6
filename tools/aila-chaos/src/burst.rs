//! The `burst` load step: N extra connections, each reading `GET /api/tree` of one account
//! as fast as it is answered, for the step's duration. Its answers are summed up in a
//! [`BurstRecord`]; they are not part of the mixed load's records.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::analysis::percentile;
use crate::load::Clock;
use crate::record::BurstRecord;
use crate::schedule::FaultSpec;

/// The account the bursts read with: registered once before the load starts.
pub async fn register_reader(url: &str, run_id: &str) -> Result<String, String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let r = http
        .post(format!("{url}/api/auth/register"))
        .json(&json!({
            "email": format!("burst-{run_id}@chaos.example"),
            "password": "burst-password-1",
            "first_name": "Burst",
            "last_name": "Reader",
            "gdpr_consent": true,
        }))
        .send()
        .await
        .map_err(|e| format!("registering the burst reader: {e}"))?;
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    body["access_token"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| format!("registering the burst reader answered {status}: {body}"))
}

/// Runs one burst at its time; `timeout` bounds each request.
pub async fn run(
    url: String,
    token: String,
    spec: FaultSpec,
    clock: Clock,
    timeout: Duration,
) -> BurstRecord {
    tokio::time::sleep_until(clock.t0() + spec.at).await;
    let connections = spec.amount.unwrap_or(1).max(1);
    let until = clock.t0() + spec.back_at();
    let started_at_ms = clock.now_ms();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let url = format!("{url}/api/tree");
            let token = token.clone();
            tokio::spawn(async move {
                // One client per task: its own keep-alive connection.
                let http = reqwest::Client::builder()
                    .timeout(timeout)
                    .pool_max_idle_per_host(1)
                    .build()
                    .expect("an HTTP client");
                let mut seen: Vec<(u16, f64)> = Vec::new();
                while Instant::now() < until {
                    let t = Instant::now();
                    let status = match http.get(&url).bearer_auth(&token).send().await {
                        Ok(r) => {
                            let s = r.status().as_u16();
                            let _ = r.bytes().await;
                            s
                        }
                        Err(_) => 0,
                    };
                    seen.push((status, t.elapsed().as_secs_f64() * 1000.0));
                    if status == 0 {
                        // No answer: do not spin on a refused connection.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                seen
            })
        })
        .collect();
    let mut rec = BurstRecord {
        spec: Some(spec),
        started_at_ms,
        ..BurstRecord::default()
    };
    let (mut ok_lat, mut unavailable_lat) = (Vec::new(), Vec::new());
    for t in tasks {
        for (status, ms) in t.await.unwrap_or_default() {
            match status {
                200..=299 => {
                    rec.ok += 1;
                    ok_lat.push(ms);
                }
                503 => {
                    rec.unavailable += 1;
                    unavailable_lat.push(ms);
                }
                0 => rec.failed += 1,
                _ => rec.other += 1,
            }
        }
    }
    rec.ended_at_ms = clock.now_ms();
    ok_lat.sort_by(f64::total_cmp);
    unavailable_lat.sort_by(f64::total_cmp);
    rec.ok_p50_ms = percentile(&ok_lat, 50.0);
    rec.ok_p99_ms = percentile(&ok_lat, 99.0);
    rec.unavailable_p99_ms = percentile(&unavailable_lat, 99.0);
    rec
}
