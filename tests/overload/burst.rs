//! A burst against a healthy database is overload, not an outage: admission control sheds
//! what does not fit, fast, with `Retry-After`; the breaker never opens and readiness stays
//! 200. A request is admitted or shed as a whole, at its first database call. (Before
//! admission control, 300 connections on `/api/tree` opened the breaker five
//! times and turned readiness to 503 in most samples.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bson::oid::ObjectId;
use bson::{Document, doc};
use mongodb::Collection;

use crate::common::{Database, TestApp, spawn_app_with};

/// Five users, each with a stored tree of 100 persons and 150 links; their tokens.
async fn five_trees(app: &TestApp) -> Vec<String> {
    let mut tokens = Vec::new();
    for n in 0..5 {
        let (token, user) = app.register(&format!("burst{n}@example.org")).await;
        let owner = user["id"].as_str().unwrap().to_string();
        let ids: Vec<ObjectId> = (0..100).map(|_| ObjectId::new()).collect();
        let persons: Vec<Document> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                doc! { "_id": id, "user_id": &owner, "first_name": format!("P{i}"),
                "last_name": "Burst", "gender": "unknown", "created_at": bson::DateTime::now() }
            })
            .collect();
        let links: Vec<Document> = (0..150)
            .map(|i| {
                doc! { "_id": ObjectId::new(), "user_id": &owner,
                "person_id_1": ids[i % 100].to_hex(), "person_id_2": ids[(i * 7 + 1) % 100].to_hex(),
                "link_type": "sibling", "created_at": bson::DateTime::now() }
            })
            .collect();
        let gw = app.app().context().gateway.clone();
        for (collection, docs) in [("persons", persons), ("family_links", links)] {
            gw.run(
                "insert_many",
                collection,
                |c: Collection<Document>| async move { c.insert_many(docs).await.map(|_| ()) },
            )
            .await
            .expect("seeding through the gateway");
        }
        tokens.push(token);
    }
    tokens
}

type WorkerResult = (u32, Vec<Duration>, Vec<String>);

/// `connections` clients (one connection each) asking for a tree until `stop`.
async fn burst(
    connections: usize,
    url: String,
    tokens: Arc<Vec<String>>,
    stop: Arc<AtomicBool>,
) -> Vec<WorkerResult> {
    let workers: Vec<_> = (0..connections)
        .map(|i| {
            let (stop, tokens, url) = (stop.clone(), tokens.clone(), url.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                let (mut ok, mut shed, mut other) = (0u32, Vec::new(), Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let r = http
                        .get(&url)
                        .bearer_auth(&tokens[i % tokens.len()])
                        .send()
                        .await
                        .expect("the service answers");
                    let status = r.status().as_u16();
                    let retry_after = r.headers().get("retry-after").cloned();
                    let retry_after_ms: Option<u64> = r
                        .headers()
                        .get("retry-after-ms")
                        .and_then(|v| v.to_str().ok()?.parse().ok());
                    let bytes = r.bytes().await.unwrap_or_default();
                    let took = started.elapsed();
                    match status {
                        200 => ok += 1,
                        503 if bytes.starts_with(b"{\"detail\":\"Server busy") => {
                            assert!(retry_after.is_some(), "a shed answer carries Retry-After");
                            shed.push(took);
                            // A client that does what the answer says: waits Retry-After-Ms
                            // (the hammering client is `aila-bench overload`, on a release
                            // build; here a debug build shares two cores with the burst).
                            let wait =
                                retry_after_ms.expect("a shed answer carries Retry-After-Ms");
                            tokio::time::sleep(Duration::from_millis(wait)).await;
                        }
                        _ => other.push(format!("{status} {}", String::from_utf8_lossy(&bytes))),
                    }
                }
                (ok, shed, other)
            })
        })
        .collect();
    let mut results = Vec::new();
    for w in workers {
        results.push(w.await.unwrap());
    }
    results
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_the_tree_is_shed_fast_without_opening_the_breaker_or_leaving_readiness() {
    let db = Database::start().await;
    // Production deadlines, not the harness's short ones.
    let app = spawn_app_with(
        &db.url(),
        &[
            ("MONGO_OPERATION_TIMEOUT_MS", "5000"),
            ("MONGO_PING_INTERVAL_MS", "1000"),
            ("MONGO_PING_TIMEOUT_MS", "1500"),
            ("RUST_LOG", "warn"),
        ],
    )
    .await;
    app.wait_ready().await;
    let tokens = Arc::new(five_trees(&app).await);
    let breaker = app.app().context().gateway.breaker().clone();
    let transitions_before = breaker.snapshot().transitions;

    let stop = Arc::new(AtomicBool::new(false));
    let url = format!("{}/api/tree", app.address);
    // The load runs on its own threads and runtime, as another process would: the
    // service's runtime serves, it does not also generate the burst.
    let load = {
        let (stop, tokens, url) = (stop.clone(), tokens.clone(), url.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(burst(300, url, tokens, stop))
        })
    };
    // Readiness sampled every 100 ms throughout.
    let sampler = {
        let (stop, http, url) = (
            stop.clone(),
            app.http.clone(),
            format!("{}/readiness", app.address),
        );
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let r = http.get(&url).send().await.expect("readiness answers");
                let status = r.status().as_u16();
                if status != 200 {
                    eprintln!("readiness {status}: {}", r.text().await.unwrap_or_default());
                }
                samples.push(status);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            samples
        })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let results = tokio::task::spawn_blocking(move || load.join().unwrap())
        .await
        .unwrap();
    let (mut ok, mut shed, mut other) = (0u32, Vec::new(), Vec::new());
    for (o, s, x) in results {
        ok += o;
        shed.extend(s);
        other.extend(x);
    }
    let samples = sampler.await.unwrap();
    shed.sort();
    let p99 = percentile(&shed, 0.99);
    eprintln!(
        "burst: {ok} trees served, {} shed (p50 {:?}, p99 {:?}), {} other; readiness {}/{} samples 200; admission {:?}",
        shed.len(),
        percentile(&shed, 0.5),
        p99,
        other.len(),
        samples.iter().filter(|s| **s == 200).count(),
        samples.len(),
        app.app().context().gateway.admission().snapshot(),
    );
    assert_eq!(
        breaker.snapshot().transitions,
        transitions_before,
        "the breaker moved under a burst against a healthy database: {:?}",
        breaker.snapshot()
    );
    assert!(samples.len() >= 3, "{samples:?}");
    assert!(samples.iter().all(|s| *s == 200), "readiness: {samples:?}");
    assert!(
        other.is_empty(),
        "answers neither 200 nor shed: {:?}",
        &other[..other.len().min(5)]
    );
    assert!(
        !shed.is_empty(),
        "300 connections on a 2-core machine must overload the service"
    );
    // Shed fast: a call that cannot expect a slot within the queue timeout is refused at
    // once, not after waiting in the queue to be refused (before that rule, most shed calls
    // of a sustained burst waited the whole 50 ms queue timeout first).
    let metrics = reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let shed_when = |when: &str| -> f64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("aila_db_admission_shed_calls_total{")
                    && l.contains(&format!("when=\"{when}\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no shed counter for {when}:\n{metrics}"))
    };
    // A request is admitted once, at its first database call (the token's user): once in,
    // its reads of the persons and the links are never shed half-way through its work.
    let shed_after_admission: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("aila_db_operation_duration_seconds_count{"))
        .filter(|l| l.contains("outcome=\"shed\"") && !l.contains("collection=\"users\""))
        .collect();
    assert!(
        shed_after_admission.is_empty(),
        "calls shed after their request was admitted: {shed_after_admission:?}"
    );
    // At the door: refused before any work (every slot and the queue full), most of them.
    let (at_door, at_once, after_queue) = (
        shed_when("at_door"),
        shed_when("at_once"),
        shed_when("after_queue"),
    );
    eprintln!(
        "shed at the door: {at_door}, at once: {at_once}, after waiting in the queue: {after_queue}"
    );
    // Shed late, after waiting out the queue timeout: each costs its caller the whole
    // timeout (50 ms). A first-come-first-served queue that closes once it timed a call out
    // keeps them near 1 % here (0.5 to 0.75 % in five runs, 0.9 to 1 % with one core busy
    // elsewhere); before, newcomers took the slots the queued calls were woken for, and 8 %
    // of the sheds were late.
    let all = at_door + at_once + after_queue;
    assert!(
        after_queue <= 0.03 * all,
        "shed calls waited in the queue first: {after_queue} of {all}"
    );
}
