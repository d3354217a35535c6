//! The cases, in the order they run on one cluster. Each returns what went wrong, or Ok
//! after printing its figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::cluster::{APP_NS, Cluster, DB_NS, Pod, wait_for};
use crate::load::{Client, Load, Outcome, Record, Step, percentile_ms, tally};

/// What a case leaves for later ones.
#[derive(Default)]
pub struct State {
    /// A user's token (registered once the database is there).
    token: Option<String>,
    /// When the CPU load of the scale-out case stopped.
    cpu_load_ended: Option<Instant>,
}

type Case = for<'a> fn(&'a Cluster, &'a mut State) -> BoxFuture<'a, Result<(), String>>;

/// Every case, in order. The autoscaler's scale-in comes right after the cases that keep the
/// same pods (the database killed, one pod cut off): a pod replaced later (a rollout, an
/// eviction) has no CPU figure for a while, the autoscaler then counts it at 100 % for a
/// scale-in, and the manifests' 300 s stabilization window starts again.
pub const ALL: &[(&str, Case)] = &[
    ("start_without_database", |c, s| {
        start_without_database(c, s).boxed()
    }),
    ("database_arrives", |c, s| database_arrives(c, s).boxed()),
    ("autoscaler_scales_out_under_cpu_load", |c, s| {
        scale_out(c, s).boxed()
    }),
    ("database_killed_under_load", |c, s| {
        database_killed(c, s).boxed()
    }),
    ("one_pod_cut_off_from_the_database", |c, s| {
        one_pod_partitioned(c, s).boxed()
    }),
    ("autoscaler_scales_back_in", |c, s| scale_in(c, s).boxed()),
    ("rollout_restart_under_load", |c, s| {
        rollout_restart(c, s).boxed()
    }),
    ("budget_refuses_evicting_the_last_ready_pod", |c, s| {
        budget_refuses_last_eviction(c, s).boxed()
    }),
    ("malformed_mongo_url", |c, s| {
        malformed_mongo_url(c, s).boxed()
    }),
];

/// Cases that others depend on: they run whatever the filter says.
pub const REQUIRED: &[&str] = &["database_arrives"];

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what()) }
}

async fn client(c: &Cluster) -> Result<Client, String> {
    Ok(Client::new(&c.service_url().await?))
}

/// A login for an account that does not exist, a new one each time (the per-account rate
/// limit would otherwise answer 429 after a few).
fn login_body() -> Value {
    let email = format!("nobody-{}@example.com", uuid::Uuid::new_v4().simple());
    json!({"email": email, "password": "Password123!"})
}

/// The service's pods that are Running and past their startup probe, at least `n` of them.
async fn started_pods(c: &Cluster, n: usize, limit: Duration) -> Result<Vec<Pod>, String> {
    wait_for(&format!("{n} started aila-api pods"), limit, || async {
        let pods = c.app_pods().await?;
        let started: Vec<Pod> = pods
            .into_iter()
            .filter(|p| p.phase == "Running" && p.started)
            .collect();
        Ok((started.len() >= n).then_some(started))
    })
    .await
}

/// Waits until the Deployment's rollout is complete (every replica updated and ready, old
/// ones gone).
async fn rollout_complete(c: &Cluster, limit: Duration) -> Result<(), String> {
    let secs = format!("--timeout={}s", limit.as_secs());
    c.kubectl(&[
        "-n",
        APP_NS,
        "rollout",
        "status",
        "deployment/aila-api",
        &secs,
    ])
    .await
    .map(|_| ())
}

/// Start-up with no database: the pods run, never restart, and a client of the Service
/// gets the service's own 503 + Retry-After, not connection refused.
async fn start_without_database(c: &Cluster, _: &mut State) -> Result<(), String> {
    let pods = started_pods(c, 2, Duration::from_secs(120)).await?;
    let since_started = Instant::now();
    let client = client(c).await?;
    // The Service answers once a pod is in its endpoints. Connection refused all along
    // means no pod ever was: a readiness probe that follows the database.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut refused = 0;
    let first = loop {
        match client.post("/api/auth/login", &login_body(), None).await {
            (Outcome::Refused, _) => refused += 1,
            (o @ Outcome::Answer { .. }, took) => break (o, took),
            (other, _) => return Err(format!("the Service gave {other:?}")),
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "connection refused through the Service for 40 s ({refused} attempts) while {} pods were Running: no pod is in the Service's endpoints without the database",
                pods.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "pods Running: {}; the Service answered {:.1} s after they started ({refused} refused before), first answer {:?}",
        pods.len(),
        since_started.elapsed().as_secs_f64(),
        first.0.status()
    );
    // Now a steady sample: every client gets 503 + Retry-After, fast.
    let mut took = Vec::new();
    let mut records = Vec::new();
    for _ in 0..60 {
        let (o, t) = client.post("/api/auth/login", &login_body(), None).await;
        took.push(t);
        records.push(Record {
            at: Duration::ZERO,
            kind: "login",
            outcome: o,
            took: t,
        });
    }
    println!(
        "60 logins through the Service: {}; p50 {:.1} ms, p99 {:.1} ms",
        tally(&records),
        percentile_ms(took.clone(), 50.0),
        percentile_ms(took, 99.0)
    );
    ensure(
        records
            .iter()
            .all(|r| r.outcome.is_unavailable_with_retry_after()),
        || {
            format!(
                "not every answer was 503 + Retry-After: {}",
                tally(&records)
            )
        },
    )?;
    let (health, _) = client.get("/health", None).await;
    let (readiness, _) = client.get("/readiness", None).await;
    println!(
        "through the Service: /health {:?}, /readiness {:?}",
        health.status(),
        readiness.status()
    );
    ensure(health.status() == Some(200), || {
        format!("/health: {health:?}")
    })?;
    ensure(readiness.status() == Some(503), || {
        format!("/readiness keeps its meaning (503 without the database): {readiness:?}")
    })?;
    let restarts = c.app_restarts().await?;
    println!("restarts: {restarts}");
    ensure(restarts == 0, || format!("{restarts} restarts"))
}

/// The database appears (FerretDB's StatefulSet applied): every pod's /readiness turns 200
/// without any intervention, and a user can register.
async fn database_arrives(c: &Cluster, state: &mut State) -> Result<(), String> {
    c.kubectl(&["apply", "-k", &c.repo_path("deploy/local-cluster/ferretdb")])
        .await?;
    let applied = Instant::now();
    c.kubectl(&[
        "-n",
        DB_NS,
        "wait",
        "--for=create",
        "pod/ferretdb-0",
        "--timeout=60s",
    ])
    .await?;
    c.kubectl(&[
        "-n",
        DB_NS,
        "wait",
        "--for=condition=Ready",
        "pod/ferretdb-0",
        "--timeout=90s",
    ])
    .await?;
    let db_ready = Instant::now();
    println!(
        "database pod ready {:.1} s after the apply",
        (db_ready - applied).as_secs_f64()
    );
    let client = client(c).await?;
    let pods = c.app_pods().await?;
    for pod in &pods {
        let ip = pod_ip(c, &pod.name).await?;
        let direct = Client::new(&format!("http://{ip}:8001"));
        wait_for(
            &format!("/readiness 200 on {}", pod.name),
            Duration::from_secs(60),
            || async {
                Ok((direct.get("/readiness", None).await.0.status() == Some(200)).then_some(()))
            },
        )
        .await?;
    }
    println!(
        "every pod's /readiness 200 {:.1} s after the database was ready ({} pods)",
        db_ready.elapsed().as_secs_f64(),
        pods.len()
    );
    let token = client.register("cluster@example.com").await?;
    state.token = Some(token);
    Ok(())
}

async fn pod_ip(c: &Cluster, pod: &str) -> Result<String, String> {
    let ip = c
        .kubectl(&[
            "-n",
            APP_NS,
            "get",
            "pod",
            pod,
            "-o",
            "jsonpath={.status.podIP}",
        ])
        .await?;
    Ok(ip.trim().to_string())
}

fn token(state: &State) -> Result<Arc<String>, String> {
    state
        .token
        .clone()
        .map(Arc::new)
        .ok_or_else(|| "no user token: database_arrives failed".to_string())
}

/// CPU load (bcrypt, through login) makes the autoscaler add replicas, which become ready.
async fn scale_out(c: &Cluster, state: &mut State) -> Result<(), String> {
    let client = client(c).await?;
    let step: Step = Arc::new(|client: Client, _| {
        async move {
            let (o, t) = client.post("/api/auth/login", &login_body(), None).await;
            ("login", o, t)
        }
        .boxed()
    });
    let load = Load::start(&client, 3, Duration::ZERO, step);
    let decided = wait_for(
        "the autoscaler to want more than 2 replicas",
        Duration::from_secs(180),
        || async {
            let hpa = c.hpa().await?;
            let desired = hpa["status"]["desiredReplicas"].as_u64().unwrap_or(0);
            let cpu =
                hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"]
                    .as_u64();
            Ok((desired > 2).then_some((desired, cpu)))
        },
    )
    .await;
    let decided_after = load.elapsed();
    let ready = match &decided {
        Ok(_) => wait_for(
            "the added replicas to be ready",
            Duration::from_secs(90),
            || async {
                let pods = c.app_pods().await?;
                let ready = pods.iter().filter(|p| p.ready).count();
                Ok((ready > 2).then_some(ready))
            },
        )
        .await
        .map(Some),
        Err(_) => Ok(None),
    };
    let records = load.stop().await;
    state.cpu_load_ended = Some(Instant::now());
    let (desired, cpu) = decided?;
    let ready = ready?.unwrap_or(0);
    println!(
        "3 clients logging in (bcrypt): {} requests ({}); CPU {}% of the request, autoscaler wanted {desired} replicas after {:.1} s; {ready} ready after {:.1} s",
        records.len(),
        tally(&records),
        cpu.map(|c| c.to_string()).unwrap_or("?".into()),
        decided_after.as_secs_f64(),
        (records.last().map(|r| r.at).unwrap_or_default()).as_secs_f64()
    );
    Ok(())
}

/// Reads and writes of one user, half and half: the load of the rollout and outage cases.
fn crud_step(token: Arc<String>) -> Step {
    Arc::new(move |client: Client, n| {
        let token = token.clone();
        async move {
            if n % 2 == 0 {
                let body = json!({"first_name": format!("P{n}"), "last_name": "Load"});
                let (o, t) = client.post("/api/persons", &body, Some(&token)).await;
                ("write", o, t)
            } else {
                let (o, t) = client.get("/api/persons", Some(&token)).await;
                ("read", o, t)
            }
        }
        .boxed()
    })
}

fn failures(records: &[Record]) -> Vec<&Record> {
    records
        .iter()
        .filter(|r| !matches!(r.outcome.status(), Some(200..=299)))
        .collect()
}

/// `kubectl rollout restart` while clients read and write: not one request fails
/// (preStop keeps the old pod serving while it leaves the endpoints, then SIGTERM,
/// /serving 503, drain).
async fn rollout_restart(c: &Cluster, state: &mut State) -> Result<(), String> {
    let client = client(c).await?;
    let token = token(state)?;
    let before = c.app_pods().await?.len();
    let load = Load::start(&client, 4, Duration::from_millis(20), crud_step(token));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let result = async {
        c.kubectl(&["-n", APP_NS, "rollout", "restart", "deployment/aila-api"])
            .await?;
        rollout_complete(c, Duration::from_secs(240)).await
    }
    .await;
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let records = load.stop().await;
    result?;
    let failed = failures(&records);
    let latencies: Vec<Duration> = records.iter().map(|r| r.took).collect();
    println!(
        "rollout of {before} pods in {:.1} s under load: {} requests ({}), {} failed; p50 {:.1} ms, p99 {:.1} ms",
        took.as_secs_f64(),
        records.len(),
        tally(&records),
        failed.len(),
        percentile_ms(latencies.clone(), 50.0),
        percentile_ms(latencies, 99.0)
    );
    ensure(failed.is_empty(), || {
        format!(
            "{} failed requests, first: {:?}",
            failed.len(),
            failed.first()
        )
    })
}

/// The database pod killed while clients read and write through the Service: no API pod
/// restarts, no connection refused, fast 503 + Retry-After while it is away, writes again
/// as soon as it is back (nobody touches the API pods), and every acknowledged write is
/// there afterwards.
async fn database_killed(c: &Cluster, state: &mut State) -> Result<(), String> {
    let client = client(c).await?;
    let token = token(state)?;
    let restarts_before = c.app_restarts().await?;
    let pods_before: Vec<String> = c.app_pods().await?.into_iter().map(|p| p.name).collect();
    let load = Load::start(
        &client,
        4,
        Duration::from_millis(20),
        crud_step(token.clone()),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed_at = load.elapsed();
    let outage = async {
        // Killed, and kept away 10 s (a pod the StatefulSet replaces at once comes back
        // within about a second, which the driver's retry absorbs): then brought back on
        // the same volume.
        c.kubectl(&[
            "-n",
            DB_NS,
            "scale",
            "statefulset",
            "ferretdb",
            "--replicas=0",
        ])
        .await?;
        c.kubectl(&[
            "-n",
            DB_NS,
            "delete",
            "pod",
            "ferretdb-0",
            "--grace-period=0",
            "--force",
        ])
        .await?;
        tokio::time::sleep(Duration::from_secs(10)).await;
        c.kubectl(&[
            "-n",
            DB_NS,
            "scale",
            "statefulset",
            "ferretdb",
            "--replicas=1",
        ])
        .await?;
        wait_for(
            "a new database pod to be ready",
            Duration::from_secs(90),
            || async {
                let p = c.json(&["-n", DB_NS, "get", "pod", "ferretdb-0"]).await?;
                let fresh = p["status"]["containerStatuses"][0]["ready"] == true
                    && p["metadata"]["deletionTimestamp"].is_null();
                Ok(fresh.then_some(()))
            },
        )
        .await?;
        let back_at = load.elapsed();
        let body = json!({"first_name": "Probe", "last_name": "Recovery"});
        wait_for(
            "a write to succeed again",
            Duration::from_secs(60),
            || async {
                let (o, _) = client.post("/api/persons", &body, Some(&token)).await;
                Ok(matches!(o.status(), Some(200..=299)).then_some(()))
            },
        )
        .await?;
        Ok::<_, String>((back_at, load.elapsed()))
    }
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let records = load.stop().await;
    let (back_at, recovered_at) = outage?;

    let during: Vec<Record> = records
        .iter()
        .filter(|r| r.at >= killed_at && r.at <= recovered_at)
        .cloned()
        .collect();
    let unavailable: Vec<Duration> = during
        .iter()
        .filter(|r| r.outcome.is_unavailable_with_retry_after())
        .map(|r| r.took)
        .collect();
    let bad: Vec<&Record> = records
        .iter()
        .filter(|r| {
            !matches!(r.outcome.status(), Some(200..=299))
                && !r.outcome.is_unavailable_with_retry_after()
        })
        .collect();
    println!(
        "database killed {:.1} s into the load, back (pod ready) {:.1} s later, writes succeed {:.1} s after that",
        killed_at.as_secs_f64(),
        (back_at - killed_at).as_secs_f64(),
        (recovered_at - back_at).as_secs_f64()
    );
    println!(
        "{} requests in all ({}); during the outage {} ({}); 503s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        records.len(),
        tally(&records),
        during.len(),
        tally(&during),
        percentile_ms(unavailable.clone(), 50.0),
        percentile_ms(unavailable.clone(), 99.0),
        percentile_ms(unavailable.clone(), 100.0)
    );
    ensure(bad.is_empty(), || {
        format!(
            "{} answers were neither 2xx nor 503 + Retry-After (refused, timeouts, errors), first: {:?}",
            bad.len(),
            bad.first()
        )
    })?;
    ensure(!unavailable.is_empty(), || {
        "no 503 during the outage: was the database really gone?".into()
    })?;
    ensure(percentile_ms(unavailable, 50.0) < 100.0, || {
        "the median 503 took 100 ms or more".into()
    })?;

    // Every acknowledged write is there.
    let acknowledged: Vec<String> = records
        .iter()
        .filter(|r| r.kind == "write")
        .filter_map(|r| match &r.outcome {
            Outcome::Answer {
                status: 200..=299,
                body,
                ..
            } => body["id"].as_str().map(str::to_string),
            _ => None,
        })
        .collect();
    let mut lost = Vec::new();
    for id in &acknowledged {
        let (o, _) = client
            .get(&format!("/api/persons/{id}"), Some(&token))
            .await;
        if o.status() != Some(200) {
            lost.push((id.clone(), o));
        }
    }
    let restarts = c.app_restarts().await? - restarts_before;
    let pods_after: Vec<String> = c.app_pods().await?.into_iter().map(|p| p.name).collect();
    // No pod was replaced (a pod killed for failing its liveness probe comes back under
    // another name). The autoscaler may still add pods: the previous case's CPU load can
    // reach its average only now.
    let replaced: Vec<&String> = pods_before
        .iter()
        .filter(|p| !pods_after.contains(p))
        .collect();
    println!(
        "acknowledged writes: {}, lost: {}; API pod restarts: {restarts}; pods replaced: {}; pods added: {}",
        acknowledged.len(),
        lost.len(),
        replaced.len(),
        pods_after.len() + replaced.len() - pods_before.len()
    );
    ensure(lost.is_empty(), || {
        format!("lost acknowledged writes: {lost:?}")
    })?;
    ensure(restarts == 0, || format!("{restarts} API pod restarts"))?;
    ensure(replaced.is_empty(), || {
        format!("pods replaced: {pods_before:?} -> {pods_after:?}")
    })
}

/// The iptables rule that cuts one pod off from the database (inserted first in FORWARD,
/// where pod-to-pod traffic passes), removed by `Drop`.
struct Partition {
    rule: Vec<String>,
}

impl Partition {
    fn cut(from: &str, to: &str) -> Result<Partition, String> {
        let rule: Vec<String> = [
            "FORWARD",
            "-s",
            from,
            "-d",
            to,
            "-p",
            "tcp",
            "-m",
            "comment",
            "--comment",
            "aila cluster test partition",
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let status = std::process::Command::new("iptables")
            .arg("-I")
            .args(&rule)
            .status()
            .map_err(|e| format!("iptables: {e}"))?;
        ensure(status.success(), || {
            format!("iptables -I {rule:?}: {status}")
        })?;
        Ok(Partition { rule })
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        let _ = std::process::Command::new("iptables")
            .arg("-D")
            .args(&self.rule)
            .status();
    }
}

/// One pod cut off from the database while the others reach it: the pod stays in the
/// Service (its /serving is 200, its /readiness 503), clients get 200 from the others and
/// a fast 503 + Retry-After from it, never connection refused; it recovers by itself.
async fn one_pod_partitioned(c: &Cluster, state: &mut State) -> Result<(), String> {
    let token = token(state)?;
    let client = client(c).await?;
    let pods: Vec<Pod> = c
        .app_pods()
        .await?
        .into_iter()
        .filter(|p| p.ready)
        .collect();
    ensure(pods.len() >= 2, || {
        format!("{} ready pods, need 2", pods.len())
    })?;
    let victim = &pods[0].name;
    let victim_ip = pod_ip(c, victim).await?;
    let db_ip = c
        .kubectl(&[
            "-n",
            DB_NS,
            "get",
            "pod",
            "ferretdb-0",
            "-o",
            "jsonpath={.status.podIP}",
        ])
        .await?;
    let direct = Client::new(&format!("http://{victim_ip}:8001"));
    let cut_at = Instant::now();
    let partition = Partition::cut(&victim_ip, db_ip.trim())?;
    wait_for(
        &format!("/readiness 503 on {victim}"),
        Duration::from_secs(60),
        || async {
            Ok((direct.get("/readiness", None).await.0.status() == Some(503)).then_some(()))
        },
    )
    .await?;
    let detected = cut_at.elapsed();
    let (serving, _) = direct.get("/serving", None).await;
    let mut records = Vec::new();
    for _ in 0..200 {
        let (o, t) = client.get("/api/persons", Some(&token)).await;
        records.push(Record {
            at: Duration::ZERO,
            kind: "read",
            outcome: o,
            took: t,
        });
    }
    let healed_at = Instant::now();
    drop(partition);
    wait_for(
        &format!("/readiness 200 on {victim} again"),
        Duration::from_secs(60),
        || async {
            Ok((direct.get("/readiness", None).await.0.status() == Some(200)).then_some(()))
        },
    )
    .await?;
    let unavailable: Vec<Duration> = records
        .iter()
        .filter(|r| r.outcome.is_unavailable_with_retry_after())
        .map(|r| r.took)
        .collect();
    println!(
        "{victim} of {} pods cut off: its /readiness 503 after {:.1} s, its /serving {:?}; 200 reads through the Service: {}; 503 p50 {:.1} ms, p99 {:.1} ms; back 200 {:.1} s after the cut ended",
        pods.len(),
        detected.as_secs_f64(),
        serving.status(),
        tally(&records),
        percentile_ms(unavailable.clone(), 50.0),
        percentile_ms(unavailable.clone(), 99.0),
        healed_at.elapsed().as_secs_f64()
    );
    ensure(serving.status() == Some(200), || {
        format!("{victim} /serving: {serving:?}")
    })?;
    let bad: Vec<&Record> = records
        .iter()
        .filter(|r| r.outcome.status() != Some(200) && !r.outcome.is_unavailable_with_retry_after())
        .collect();
    ensure(bad.is_empty(), || {
        format!("{} bad answers, first {:?}", bad.len(), bad[0])
    })?;
    ensure(
        records.iter().any(|r| r.outcome.status() == Some(200)),
        || "no read succeeded: the other pods did not serve".into(),
    )
}

/// The PodDisruptionBudget (minAvailable 1) lets evictions through while another ready pod
/// remains, and refuses the one that would leave none.
async fn budget_refuses_last_eviction(c: &Cluster, _: &mut State) -> Result<(), String> {
    let ready: Vec<Pod> = c
        .app_pods()
        .await?
        .into_iter()
        .filter(|p| p.ready)
        .collect();
    ensure(ready.len() >= 2, || {
        format!("{} ready pods, need 2", ready.len())
    })?;
    let pdb = c.json(&["-n", APP_NS, "get", "pdb", "aila-api"]).await?;
    println!(
        "{} ready pods; budget: currentHealthy {}, disruptionsAllowed {}",
        ready.len(),
        pdb["status"]["currentHealthy"],
        pdb["status"]["disruptionsAllowed"]
    );
    let mut evicted = Vec::new();
    let mut refused = None;
    for pod in &ready {
        if c.evict(&pod.name).await? {
            evicted.push(pod.name.clone());
        } else {
            refused = Some(pod.name.clone());
            break;
        }
    }
    println!(
        "evicted {} of {} ready pods, then refused: {:?}",
        evicted.len(),
        ready.len(),
        refused
    );
    ensure(refused.is_some(), || {
        "every ready pod was evicted: the budget let the Service lose all its pods".into()
    })?;
    ensure(evicted.len() == ready.len() - 1, || {
        format!(
            "the budget refused with {} pods still ready (should be 1)",
            ready.len() - evicted.len()
        )
    })?;
    // Replacements come up by themselves.
    rollout_complete(c, Duration::from_secs(120)).await?;
    wait_for(
        "the evicted pods to be gone",
        Duration::from_secs(60),
        || async {
            let pods = c.app_pods().await?;
            Ok((!pods.iter().any(|p| evicted.contains(&p.name))).then_some(()))
        },
    )
    .await
}

/// A malformed MONGO_URL in the Secret: pods start, say why in their log (without the
/// password), never restart, and answer clients with a 503 + Retry-After JSON error.
async fn malformed_mongo_url(c: &Cluster, _: &mut State) -> Result<(), String> {
    let secret = c.json(&["-n", APP_NS, "get", "secret", "aila-api"]).await?;
    let good = secret["data"]["MONGO_URL"]
        .as_str()
        .ok_or("no MONGO_URL in the Secret")?
        .to_string();
    let bad = "mongodb://aila:S3cretPw@ferretdb.aila-db.svc.cluster.local:notaport/";
    let patch = |data: Value| json!({ "data": data }).to_string();
    let set_bad = patch(json!({"MONGO_URL": b64(bad)}));
    c.kubectl(&[
        "-n", APP_NS, "patch", "secret", "aila-api", "--type", "merge", "-p", &set_bad,
    ])
    .await?;
    let result = async {
        c.kubectl(&["-n", APP_NS, "rollout", "restart", "deployment/aila-api"])
            .await?;
        let started = Instant::now();
        rollout_complete(c, Duration::from_secs(180)).await?;
        println!(
            "rollout with the malformed MONGO_URL complete in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let client = client(c).await?;
        // The old pods keep serving through their preStop drain after the rollout is
        // complete (that is the drain working): wait until the Service answers from the new
        // ones only, which say why they cannot use the database.
        wait_for(
            "/readiness through the Service naming the unusable URL",
            Duration::from_secs(90),
            || async {
                let (readiness, _) = client.get("/readiness", None).await;
                Ok(match &readiness {
                    Outcome::Answer { body, .. }
                        if body["not_ready_reasons"]
                            .to_string()
                            .contains("not_configured") =>
                    {
                        Some(())
                    }
                    _ => None,
                })
            },
        )
        .await?;
        // A draining old pod (database reachable) would answer 401; the new ones 503.
        let (login, took) = wait_for(
            "a login through the Service answered 503 + Retry-After",
            Duration::from_secs(60),
            || async {
                let (login, took) = client.post("/api/auth/login", &login_body(), None).await;
                Ok(login
                    .is_unavailable_with_retry_after()
                    .then_some((login, took)))
            },
        )
        .await?;
        println!(
            "login through the Service: {login:?} in {:.1} ms",
            took.as_secs_f64() * 1000.0,
        );
        if let Outcome::Answer { body, .. } = &login {
            ensure(body["detail"].is_string(), || format!("no detail: {body}"))?;
        }
        let pods = c.app_pods().await?;
        for pod in &pods {
            let logs = c.logs(&pod.name).await?;
            let line = logs
                .lines()
                .find(|l| l.contains("not configured"))
                .ok_or_else(|| {
                    format!("{}: no line says why the database is not used", pod.name)
                })?;
            println!(
                "{}: {}",
                pod.name,
                line.chars().take(300).collect::<String>()
            );
            ensure(!logs.contains("S3cretPw"), || {
                format!("{} logged the MONGO_URL password", pod.name)
            })?;
        }
        // A liveness probe that failed would restart a pod within 30 s (3 x 10 s).
        let watched = Instant::now();
        tokio::time::sleep(Duration::from_secs(32)).await;
        let restarts = c.app_restarts().await?;
        println!(
            "restarts after {:.0} s: {restarts}",
            watched.elapsed().as_secs_f64()
        );
        ensure(restarts == 0, || format!("{restarts} restarts"))
    }
    .await;
    // The good address back, whatever happened.
    let set_good = patch(json!({ "MONGO_URL": good }));
    c.kubectl(&[
        "-n", APP_NS, "patch", "secret", "aila-api", "--type", "merge", "-p", &set_good,
    ])
    .await?;
    c.kubectl(&["-n", APP_NS, "rollout", "restart", "deployment/aila-api"])
        .await?;
    rollout_complete(c, Duration::from_secs(180)).await?;
    result
}

fn b64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The autoscaler scales back to 2 replicas once the CPU load has stopped and the
/// scale-down stabilization window has passed. The manifests' window is 300 s (the live
/// object is checked against deploy/kubernetes/hpa.yaml): waiting it out would add five
/// idle minutes to every run, so the case sets the window to [`SHORT_WINDOW`] for the
/// wait, then puts the manifests' value back for the cases after it. What is tested is the
/// scale-in itself: metrics-server reporting the idle pods and the autoscaler acting on it
/// through the window.
async fn scale_in(c: &Cluster, state: &mut State) -> Result<(), String> {
    let ended = state
        .cpu_load_ended
        .ok_or("the scale-out case did not run")?;
    let window = scale_down_window(c).await?;
    let manifest = manifest_scale_down_window()?;
    ensure(window == manifest, || {
        format!(
            "the autoscaler's scale-down window is {window} s, deploy/kubernetes/hpa.yaml says {manifest} s"
        )
    })?;
    set_scale_down_window(c, SHORT_WINDOW).await?;
    let replicas = c.hpa().await?["status"]["currentReplicas"].clone();
    let limit = Duration::from_secs(SHORT_WINDOW + 120);
    println!(
        "{replicas} replicas {:.0} s after the CPU load ended; scale-down window set to {SHORT_WINDOW} s (manifests: {window} s); waiting up to {:.0} s",
        ended.elapsed().as_secs_f64(),
        limit.as_secs_f64()
    );
    let waited = wait_for("the autoscaler to scale back to 2", limit, || async {
        let hpa = c.hpa().await?;
        let current = hpa["status"]["currentReplicas"].as_u64().unwrap_or(0);
        let pods = c.app_pods().await?.len();
        Ok((current == 2 && pods == 2).then_some(()))
    })
    .await;
    let waited = match waited {
        Ok(()) => Ok(()),
        Err(e) => {
            let status = c
                .hpa()
                .await
                .map(|h| h["status"].to_string())
                .unwrap_or_default();
            Err(format!("{e}; the autoscaler's status: {status}"))
        }
    };
    // The manifests' window back, whatever happened: the later cases replace pods, and a
    // short window would let the autoscaler act on their missing CPU figures.
    set_scale_down_window(c, window).await?;
    waited?;
    println!(
        "back to 2 replicas {:.0} s after the CPU load ended (scale-down window {SHORT_WINDOW} s, then {window} s again)",
        ended.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The scale-down window while `autoscaler_scales_back_in` waits.
const SHORT_WINDOW: u64 = 30;

/// deploy/kubernetes/hpa.yaml's `spec.behavior.scaleDown.stabilizationWindowSeconds`.
fn manifest_scale_down_window() -> Result<u64, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes/hpa.yaml");
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let hpa: Value = serde_yaml_ng::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"]
        .as_u64()
        .ok_or_else(|| format!("{path} sets no scale-down stabilization window"))
}

/// The live autoscaler's scale-down stabilization window, in seconds.
async fn scale_down_window(c: &Cluster) -> Result<u64, String> {
    c.hpa().await?["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"]
        .as_u64()
        .ok_or_else(|| "the autoscaler has no scale-down stabilization window".to_string())
}

/// Patches the live autoscaler's scale-down stabilization window.
async fn set_scale_down_window(c: &Cluster, seconds: u64) -> Result<(), String> {
    let patch =
        json!({"spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": seconds}}}});
    c.kubectl(&[
        "-n",
        APP_NS,
        "patch",
        "hpa",
        "aila-api",
        "--type=merge",
        "-p",
        &patch.to_string(),
    ])
    .await
    .map(|_| ())
}
