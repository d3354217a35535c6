//! A replica set under a steady write load through the API: one member away is not an
//! outage, a primary step-down costs at most the writes in flight, all members away is.
//!
//! The set is the `aila-testkit` stand-in (three members answering `hello` in front of one
//! FerretDB), or a real one from `MONGO_REPLSET_URL` (these tests then do nothing: they need
//! to take members down).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{ReplicaSetDb, TestApp, spawn_app, wait_until};

/// Concurrent writers: at most this many writes are in flight at any moment.
const WRITERS: u64 = 2;

/// What the load saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    readiness_samples: AtomicU64,
    readiness_not_200: AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
}

/// `WRITERS` clients creating persons back to back, and one sampling `/readiness`.
struct Load {
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(app: &TestApp, token: &str) -> Load {
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (http, url, token) = (
                app.http.clone(),
                format!("{}/api/persons", app.address),
                token.to_string(),
            );
            let (tally, stop) = (tally.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let r = http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"first_name": format!("W{w}"), "last_name": format!("N{n}")}))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => {
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let body = r.text().await.unwrap_or_default();
                            tally.failed.fetch_add(1, Ordering::Relaxed);
                            tally
                                .failures
                                .lock()
                                .unwrap()
                                .push(format!("{status} {body}"));
                        }
                        Err(e) => {
                            tally.failed.fetch_add(1, Ordering::Relaxed);
                            tally.failures.lock().unwrap().push(e.to_string());
                        }
                    }
                }
            }));
        }
        let (http, url) = (app.http.clone(), format!("{}/readiness", app.address));
        let (t, s) = (tally.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                let status = http.get(&url).send().await.map(|r| r.status().as_u16());
                t.readiness_samples.fetch_add(1, Ordering::Relaxed);
                if status.ok() != Some(200) {
                    t.readiness_not_200.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
        Load { tally, stop, tasks }
    }

    fn ok(&self) -> u64 {
        self.tally.ok.load(Ordering::Relaxed)
    }

    fn failed(&self) -> u64 {
        self.tally.failed.load(Ordering::Relaxed)
    }

    /// Waits until `more` further writes have succeeded.
    async fn wait_more_ok(&self, more: u64) {
        let target = self.ok() + more;
        wait_until(&format!("{target} successful writes"), || async {
            self.ok() >= target
        })
        .await;
    }

    /// Stops the writers and the sampler; returns (ok, failed, readiness samples, not 200).
    async fn stop(self) -> (u64, u64, u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let t = &self.tally;
        (
            t.ok.load(Ordering::Relaxed),
            t.failed.load(Ordering::Relaxed),
            t.readiness_samples.load(Ordering::Relaxed),
            t.readiness_not_200.load(Ordering::Relaxed),
            t.failures.lock().unwrap().clone(),
        )
    }
}

/// Every breaker transition so far, whatever its direction.
async fn breaker_transitions(app: &TestApp) -> f64 {
    crate::common::metrics_text(app)
        .await
        .lines()
        .filter(|l| l.starts_with("aila_db_circuit_breaker_transitions_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn gauge(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The member `host` as `/health` reports it (Null when not listed).
async fn member(app: &TestApp, host: &str) -> Value {
    let h = app.get("/health", None).await;
    h.body["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["address"] == host).cloned())
        .unwrap_or(Value::Null)
}

async fn started(rs: &ReplicaSetDb) -> (TestApp, String) {
    let app = spawn_app(&rs.url()).await;
    app.wait_ready().await;
    let (token, _) = app
        .register(&format!("rs-{}@example.org", uuid::Uuid::new_v4().simple()))
        .await;
    (app, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_down_is_a_gauge_and_a_log_line_not_an_outage() {
    let mut rs = ReplicaSetDb::start().await;
    let (app, token) = started(&rs).await;
    let Some((set, _)) = rs.stand_in() else {
        return;
    };
    let secondary = set.hosts()[2].clone();
    let transitions = breaker_transitions(&app).await;
    let load = Load::start(&app, &token);
    load.wait_more_ok(20).await;

    set.member_down(2).await;
    // Down for several heartbeats (500 ms each here) as the service sees it; stop early, and
    // fail below with the figures, if the service treats it as an outage.
    wait_until(
        "the service to see the secondary fail 6 heartbeats",
        || async {
            member(&app, &secondary).await["failed_heartbeats"]
                .as_u64()
                .unwrap_or(0)
                >= 6
                || load.failed() > 0
                || breaker_transitions(&app).await > transitions
        },
    )
    .await;
    assert_eq!(
        (load.failed(), breaker_transitions(&app).await - transitions),
        (0, 0.0),
        "failed writes and breaker transitions while a secondary is down"
    );
    let down = member(&app, &secondary).await;
    let text = crate::common::metrics_text(&app).await;
    load.wait_more_ok(20).await;
    set.member_up(2).unwrap();
    wait_until("the service to see the secondary back", || async {
        member(&app, &secondary).await["type"] == "secondary"
    })
    .await;
    load.wait_more_ok(20).await;
    let (ok, failed, samples, not_ready, failures) = load.stop().await;

    assert_eq!(failed, 0, "failed writes: {failures:?}");
    assert_eq!(
        breaker_transitions(&app).await,
        transitions,
        "the breaker moved"
    );
    assert_eq!(
        not_ready, 0,
        "/readiness not 200 in {not_ready} of {samples}"
    );
    assert!(ok >= 60);
    assert_eq!(down["state"], "down", "{down}");
    assert_eq!(down["type"], "unknown", "{down}");
    assert!(
        down["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{down}"
    );
    assert_eq!(
        gauge(&text, "aila_db_members{state=\"down\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        gauge(&text, "aila_db_members{state=\"primary\"}"),
        Some(1.0),
        "{text}"
    );
    eprintln!(
        "secondary down: {ok} writes ok, {failed} failed, readiness {samples} samples all 200, breaker transitions 0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_step_down_costs_at_most_the_writes_in_flight() {
    let mut rs = ReplicaSetDb::start().await;
    let (app, token) = started(&rs).await;
    let Some((set, _)) = rs.stand_in() else {
        return;
    };
    let new_primary = set.hosts()[1].clone();
    let transitions = breaker_transitions(&app).await;
    let load = Load::start(&app, &token);
    load.wait_more_ok(20).await;

    let stepped_down = Instant::now();
    set.step_down(Some(1));
    load.wait_more_ok(1).await;
    let first_write_after = stepped_down.elapsed();
    wait_until("the service to name the new primary", || async {
        member(&app, &new_primary).await["type"] == "primary"
    })
    .await;
    let named_after = stepped_down.elapsed();
    load.wait_more_ok(30).await;
    let (ok, failed, samples, not_ready, failures) = load.stop().await;

    assert!(
        failed <= WRITERS,
        "{failed} writes failed, more than the {WRITERS} in flight: {failures:?}"
    );
    assert_eq!(
        not_ready, 0,
        "/readiness not 200 in {not_ready} of {samples}"
    );
    assert_eq!(
        breaker_transitions(&app).await,
        transitions,
        "the breaker moved"
    );
    // Within a heartbeat (500 ms here) and the retried write's server selection.
    assert!(
        first_write_after < Duration::from_millis(1500),
        "writes resumed after {first_write_after:?}"
    );
    eprintln!(
        "step-down: {ok} writes ok, {failed} failed, first write after {first_write_after:?}, new primary named after {named_after:?}, readiness {samples} samples all 200"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_members_down_is_an_outage_and_the_set_recovers() {
    let mut rs = ReplicaSetDb::start().await;
    let (app, token) = started(&rs).await;
    let Some((set, _)) = rs.stand_in() else {
        return;
    };
    for i in 0..3 {
        set.member_down(i).await;
    }
    app.wait_not_ready().await;
    for _ in 0..5 {
        let took = Instant::now();
        let r = app
            .post(
                "/api/persons",
                json!({"first_name": "A", "last_name": "B"}),
                Some(&token),
            )
            .await;
        let took = took.elapsed();
        assert_eq!(r.status, 503, "{:?}", r.body);
        assert!(r.headers.contains_key("retry-after"));
        // Far below the 2 s server-selection timeout each write would otherwise wait.
        assert!(took < Duration::from_millis(500), "503 took {took:?}");
    }
    let h = app.get("/health", None).await;
    assert_eq!(h.str("database"), "disconnected");
    let members = h.body["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), 3, "{}", h.body);
    assert!(members.iter().all(|m| m["state"] == "down"), "{}", h.body);
    assert_eq!(
        gauge(
            &crate::common::metrics_text(&app).await,
            "aila_db_members{state=\"down\"}"
        ),
        Some(3.0)
    );

    for i in 0..3 {
        set.member_up(i).unwrap();
    }
    app.wait_ready().await;
    let r = app
        .post(
            "/api/persons",
            json!({"first_name": "A", "last_name": "B"}),
            Some(&token),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}
