//! The scenarios. Each starts what it needs (a database server and the service as child
//! processes, or targets `--url`), sets up its data through the API, runs, and returns its
//! figures.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::time::Instant;

use crate::load::{self, LoadConfig, LoadResult, RequestSpec};
use crate::procs::{DbKind, DbServer, Service, ServiceSpec, free_port, vm_kib, wait_accepting};
use crate::report::{Metric, ScenarioReport, Target};
use crate::seed::{self, wait_health, wait_status};
use crate::stats::percentile;

/// Every scenario, in the order `all` runs them.
pub const ALL: [&str; 11] = [
    "health-up",
    "health-down",
    "health-frozen",
    "tree",
    "create-person",
    "replay",
    "outage",
    "startup",
    "recovery",
    "overload",
    "gray",
];

/// Scenarios that work against `--url` (they need no control of the database).
pub const EXTERNAL_OK: [&str; 3] = ["health-up", "tree", "create-person"];

/// How the scenarios run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Measured runs per scenario.
    pub runs: usize,
    /// Load shape of each run.
    pub load: LoadConfig,
    /// How long the database stays down before it comes back (`recovery`).
    pub down: Duration,
    /// Other users' trees seeded before `tree` measures.
    pub other_trees: usize,
    /// Connections of the burst (`overload`).
    pub burst_connections: usize,
    /// The burst's connections honour `Retry-After` (`overload`).
    pub polite_burst: bool,
}

/// A service started elsewhere (`--url`).
#[derive(Debug, Clone, Copy)]
pub struct External {
    /// Its address.
    pub addr: SocketAddr,
    /// Its process id, for CPU and memory, when given.
    pub pid: Option<u32>,
}

/// What the scenarios need.
#[derive(Debug, Clone)]
pub struct Env {
    /// Options.
    pub opts: Options,
    /// The database server to start.
    pub db_kind: DbKind,
    /// How to start the service.
    pub service: ServiceSpec,
    /// A service to target instead of starting one.
    pub external: Option<External>,
}

/// The database and the service, ready.
pub(crate) struct Stack {
    pub(crate) db: DbServer,
    pub(crate) svc: Service,
    idle_rss_mib: Option<f64>,
}

pub(crate) const READY_LIMIT: Duration = Duration::from_secs(60);

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub(crate) fn unique_db_name() -> String {
    format!(
        "aila_bench_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Waits until the service's `/readiness` says 200; fails with its log's place (or its
/// last lines, when it exited) otherwise.
pub(crate) async fn wait_ready(svc: &mut Service) -> Result<()> {
    if let Err(e) = wait_status(
        svc.addr,
        "/readiness",
        200,
        Duration::from_millis(20),
        READY_LIMIT,
    )
    .await
    {
        svc.check_alive()?;
        return Err(e.context(format!(
            "the service never got ready (log: {})",
            svc.log.display()
        )));
    }
    Ok(())
}

pub(crate) async fn start_stack(env: &Env) -> Result<Stack> {
    start_stack_with(env, &[]).await
}

/// [`start_stack`] with more settings for the service, before `--service-env`'s (which
/// win).
async fn start_stack_with(env: &Env, settings: &[(&str, &str)]) -> Result<Stack> {
    let mut service = env.service.clone();
    let given = std::mem::take(&mut service.env);
    service.env = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(given)
        .collect();
    let mut db = DbServer::new(env.db_kind.clone())?;
    db.start().await?;
    let (mut svc, _) = Service::spawn(&service, &db.url(), &unique_db_name())?;
    wait_ready(&mut svc).await?;
    // Idle: ready, no traffic for a second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_mib = svc.pid().and_then(|p| vm_kib(p, "VmRSS").ok()).map(mib);
    Ok(Stack {
        db,
        svc,
        idle_rss_mib,
    })
}

pub(crate) fn method_text(opts: &Options) -> String {
    let shape = match opts.load.rate {
        Some(r) => format!("open loop at {r} req/s in total"),
        None => "closed loop".to_string(),
    };
    format!(
        "{} runs x {:.1} s measured, each after {:.1} s warm-up; {} keep-alive connections ({shape}); \
         load generator on one thread",
        opts.runs,
        opts.load.duration.as_secs_f64(),
        opts.load.warmup.as_secs_f64(),
        opts.load.concurrency,
    )
}

/// Runs `spec` `opts.runs` times.
async fn measure(
    env: &Env,
    name: &str,
    addr: SocketAddr,
    spec: RequestSpec,
    svc_pid: Option<u32>,
    db_pid: Option<u32>,
) -> Vec<LoadResult> {
    let spec = Arc::new(spec);
    let mut out = Vec::with_capacity(env.opts.runs);
    for i in 0..env.opts.runs {
        let r = load::run(addr, spec.clone(), env.opts.load, svc_pid, db_pid).await;
        eprintln!(
            "  {name} run {}/{}: {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms, statuses {:?}, errors {}",
            i + 1,
            env.opts.runs,
            r.requests as f64 / r.window.as_secs_f64(),
            pct_ms(&r, 50.0),
            pct_ms(&r, 99.0),
            pct_ms(&r, 100.0),
            r.statuses,
            r.errors
        );
        out.push(r);
    }
    out
}

/// Measures `spec` on the stack's service (the database's CPU counted when `count_db`) and
/// makes the scenario's report, with the service's idle and peak memory.
async fn measured_report(
    env: &Env,
    stack: &Stack,
    name: &str,
    spec: RequestSpec,
    count_db: bool,
    what: String,
    targets: LoadTargets,
) -> (Vec<LoadResult>, ScenarioReport) {
    let db_pid = if count_db { stack.db.pid() } else { None };
    let results = measure(env, name, stack.svc.addr, spec, stack.svc.pid(), db_pid).await;
    let peak = stack
        .svc
        .pid()
        .and_then(|p| vm_kib(p, "VmHWM").ok())
        .map(mib);
    let report = load_report(
        name,
        what,
        &env.opts,
        &results,
        targets,
        stack.idle_rss_mib,
        peak,
    );
    (results, report)
}

pub(crate) fn pct_ms(r: &LoadResult, p: f64) -> f64 {
    percentile(&r.latencies_ns, p).map_or(f64::NAN, |ns| ns as f64 / 1e6)
}

struct LoadTargets {
    p99_ms: Option<f64>,
    rps: Option<f64>,
    /// Service CPU per request, milliseconds.
    cpu_ms: Option<f64>,
}

/// The figures of a load scenario.
fn load_report(
    name: &str,
    what: String,
    opts: &Options,
    results: &[LoadResult],
    targets: LoadTargets,
    idle_rss_mib: Option<f64>,
    peak_mib: Option<f64>,
) -> ScenarioReport {
    let col = |f: &dyn Fn(&LoadResult) -> f64| results.iter().map(f).collect::<Vec<f64>>();
    let mut metrics = vec![
        Metric::new(
            "throughput",
            "req/s",
            col(&|r| r.requests as f64 / r.window.as_secs_f64()),
            targets.rps.map(Target::Above),
        ),
        Metric::new("latency p50", "ms", col(&|r| pct_ms(r, 50.0)), None),
        Metric::new(
            "latency p99",
            "ms",
            col(&|r| pct_ms(r, 99.0)),
            targets.p99_ms.map(Target::Below),
        ),
        Metric::new("latency max", "ms", col(&|r| pct_ms(r, 100.0)), None),
        Metric::new("load generator CPU", "% of a core", col(&|r| r.cpu.0), None),
    ];
    if results.iter().any(|r| r.cpu.1.is_some()) {
        metrics.push(Metric::new(
            "service CPU",
            "% of a core",
            col(&|r| r.cpu.1.unwrap_or(f64::NAN)),
            None,
        ));
    }
    if results.iter().any(|r| r.cpu.1.is_some()) {
        // CPU seconds per answer: what sizes a fleet when the database is not the limit.
        let per_request = |r: &LoadResult| match r.cpu.1 {
            Some(pct) if r.requests > 0 => {
                pct / 100.0 * r.window.as_secs_f64() / r.requests as f64 * 1e3
            }
            _ => f64::NAN,
        };
        metrics.push(Metric::new(
            "service CPU per request",
            "ms",
            col(&per_request),
            targets.cpu_ms.map(Target::Below),
        ));
    }
    if results.iter().any(|r| r.cpu.2.is_some()) {
        metrics.push(Metric::new(
            "database CPU",
            "% of a core",
            col(&|r| r.cpu.2.unwrap_or(f64::NAN)),
            None,
        ));
    }
    if let Some(idle) = idle_rss_mib {
        metrics.push(Metric::new(
            "service RSS idle (before load)",
            "MiB",
            vec![idle],
            Some(Target::Below(30.0)),
        ));
    }
    if let Some(peak) = peak_mib {
        metrics.push(Metric::new(
            "service peak RSS (VmHWM, all runs)",
            "MiB",
            vec![peak],
            None,
        ));
    }
    let mut statuses = BTreeMap::new();
    let mut transport_errors = 0;
    for r in results {
        for (k, v) in &r.statuses {
            *statuses.entry(k.to_string()).or_default() += v;
        }
        transport_errors += r.errors;
    }
    ScenarioReport {
        name: name.to_string(),
        what,
        method: method_text(opts),
        metrics,
        statuses,
        transport_errors,
        notes: Vec::new(),
    }
}

/// Runs one scenario.
pub async fn run(env: &Env, name: &str) -> Result<ScenarioReport> {
    if let Some(ext) = env.external {
        if !EXTERNAL_OK.contains(&name) {
            bail!(
                "`{name}` needs a database the benchmark controls; with --url only {} run",
                EXTERNAL_OK.join(", ")
            );
        }
        return external(env, ext, name).await;
    }
    match name {
        "health-up" => health(env, name, DbMode::Up).await,
        "health-down" => health(env, name, DbMode::Killed).await,
        "health-frozen" => health(env, name, DbMode::Frozen).await,
        "tree" => tree(env).await,
        "create-person" => create_person(env).await,
        "replay" => replay(env).await,
        "outage" => outage(env).await,
        "startup" => startup(env).await,
        "recovery" => recovery(env).await,
        "overload" => crate::overload::overload(env).await,
        "gray" => crate::gray::gray(env).await,
        other => bail!(
            "unknown scenario `{other}` (one of: {}, all)",
            ALL.join(", ")
        ),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum DbMode {
    Up,
    Killed,
    Frozen,
}

async fn health(env: &Env, name: &str, mode: DbMode) -> Result<ScenarioReport> {
    let mut stack = start_stack(env).await?;
    let addr = stack.svc.addr;
    let what = match mode {
        DbMode::Up => "GET /health, database up",
        DbMode::Killed => "GET /health, database killed (SIGKILL) and reconnect loop running",
        DbMode::Frozen => {
            "GET /health, database frozen (SIGSTOP: sockets open, no answers), from the moment it froze"
        }
    };
    let mut notes = Vec::new();
    match mode {
        DbMode::Up => {}
        DbMode::Killed => {
            stack.db.kill();
            let v = wait_health(addr, "the database not connected", READY_LIMIT, |v| {
                v["database"] != "connected"
            })
            .await?;
            notes.push(format!(
                "when measuring began: database {}, breaker {}",
                v["database"], v["circuit_breaker"]["state"]
            ));
        }
        DbMode::Frozen => {
            stack.db.freeze()?;
        }
    }
    let targets = LoadTargets {
        p99_ms: Some(1.0),
        rps: None,
        cpu_ms: None,
    };
    let spec = RequestSpec::get("/health");
    let (_, mut report) = measured_report(
        env,
        &stack,
        name,
        spec,
        mode == DbMode::Up,
        what.into(),
        targets,
    )
    .await;
    if mode != DbMode::Up {
        if let Ok((_, v)) = seed::call(addr, &RequestSpec::get("/health")).await {
            notes.push(format!(
                "after the last run: database {}, breaker {}, reconnect attempt {}",
                v["database"], v["circuit_breaker"]["state"], v["reconnect"]["attempt"]
            ));
        }
    }
    stack.db.thaw();
    report.notes = notes;
    stack.svc.stop();
    Ok(report)
}

/// Seeds `others` users' trees, then the measured user's (100 persons and 150 links each,
/// through the API); the measured user's token.
pub(crate) async fn seed_trees(addr: SocketAddr, others: usize) -> Result<String> {
    for _ in 0..others {
        let other = seed::register(addr).await?;
        seed::seed_tree(addr, &other, 100, 150).await?;
    }
    let token = seed::register(addr).await?;
    seed::seed_tree(addr, &token, 100, 150).await?;
    Ok(token)
}

/// What the `tree` scenario measures, for its report.
fn tree_what(others: usize, how: &str) -> String {
    match others {
        0 => format!("GET /api/tree, a user with 100 persons and 150 links ({how})"),
        n => format!(
            "GET /api/tree, a user with 100 persons and 150 links among {n} other users with as \
             many ({how})"
        ),
    }
}

fn tree_check(v: &Value, persons: usize, links: usize) -> Result<()> {
    let p = v["persons"].as_array().map_or(0, Vec::len);
    let l = v["links"].as_array().map_or(0, Vec::len);
    if p != persons || l != links {
        bail!("GET /api/tree gave {p} persons and {l} links, expected {persons} and {links}");
    }
    Ok(())
}

async fn tree(env: &Env) -> Result<ScenarioReport> {
    let mut stack = start_stack(env).await?;
    let addr = stack.svc.addr;
    let token = seed_trees(addr, env.opts.other_trees).await?;
    let spec = RequestSpec::get("/api/tree").bearer(&token);
    let (status, v) = seed::call(addr, &spec).await?;
    if status != 200 {
        bail!("GET /api/tree answered {status}: {v}");
    }
    tree_check(&v, 100, 150)?;
    let body_kib = v.to_string().len() as f64 / 1024.0;
    let what = tree_what(env.opts.other_trees, "seeded through the API");
    let targets = LoadTargets {
        p99_ms: None,
        rps: Some(3000.0),
        cpu_ms: Some(0.2),
    };
    let (_, mut report) = measured_report(env, &stack, "tree", spec, true, what, targets).await;
    report.notes.push(format!(
        "each answer is {body_kib:.1} KiB of JSON; each request verifies the JWT and reads the user; the persons \
         and links (2 more reads) only when no answer is kept at the tree's version (first request; always with \
         --service-env TREE_CACHE_MAX_BYTES=0)"
    ));
    stack.svc.stop();
    Ok(report)
}

/// Persons one account may hold in the service `create-person` starts: every request
/// creates one, so the default cap (1,000) would turn the run into 400s within a second.
const CREATE_PERSON_CAP: &str = "1000000000";

async fn create_person(env: &Env) -> Result<ScenarioReport> {
    let mut stack = start_stack_with(env, &[("MAX_PERSONS_PER_OWNER", CREATE_PERSON_CAP)]).await?;
    let addr = stack.svc.addr;
    let token = seed::register(addr).await?;
    let spec = RequestSpec::post_json("/api/persons", &seed::person_body(1)).bearer(&token);
    let (status, v) = seed::call(addr, &spec).await?;
    if status != 200 {
        bail!("POST /api/persons answered {status}: {v}");
    }
    let what = "POST /api/persons (one new person per request)".to_string();
    let targets = LoadTargets {
        p99_ms: None,
        rps: None,
        cpu_ms: None,
    };
    let (_, mut report) =
        measured_report(env, &stack, "create-person", spec, true, what, targets).await;
    report
        .notes
        .push("each request verifies the JWT, reads the user and inserts one document".into());
    stack.svc.stop();
    Ok(report)
}

/// `POST /api/persons` repeated with one `Idempotency-Key`: the first request creates the
/// person, every measured one is answered from the stored record (the replay path).
async fn replay(env: &Env) -> Result<ScenarioReport> {
    let mut stack = start_stack(env).await?;
    let addr = stack.svc.addr;
    let token = seed::register(addr).await?;
    let spec = RequestSpec::post_json("/api/persons", &seed::person_body(1))
        .bearer(&token)
        .header("idempotency-key", "aila-bench-replay");
    let (status, v) = seed::call(addr, &spec).await?;
    if status != 200 {
        bail!("POST /api/persons with a key answered {status}: {v}");
    }
    let (status, again) = seed::call(addr, &spec).await?;
    if status != 200 || again != v {
        bail!("the repeat answered {status}: {again}, not the first answer {v}");
    }
    let what =
        "POST /api/persons repeated with one Idempotency-Key (every measured request a replay)"
            .to_string();
    let targets = LoadTargets {
        p99_ms: None,
        rps: None,
        cpu_ms: None,
    };
    let (_, mut report) = measured_report(env, &stack, "replay", spec, true, what, targets).await;
    report.notes.push(
        "each request verifies the JWT (no database read), hashes the body and makes one \
         find_one by _id in idempotency_keys; the stored answer goes back with \
         Idempotent-Replayed: true, nothing is written"
            .into(),
    );
    stack.svc.stop();
    Ok(report)
}

async fn outage(env: &Env) -> Result<ScenarioReport> {
    let mut stack = start_stack(env).await?;
    let addr = stack.svc.addr;
    let token = seed::register(addr).await?;
    let spec = RequestSpec::get("/api/persons").bearer(&token);
    stack.db.kill();
    // The driver's heartbeat sees the database gone and trips the breaker.
    let v = wait_health(addr, "the breaker open", READY_LIMIT, |v| {
        v["circuit_breaker"]["state"] == "open"
    })
    .await?;
    let (status, _) = seed::call(addr, &spec).await?;
    if status != 503 {
        bail!("GET /api/persons answered {status} during the outage, expected 503");
    }
    let what = "GET /api/persons (a database-backed route) while the database is killed: the \
                fail-fast 503 path"
        .to_string();
    let targets = LoadTargets {
        p99_ms: Some(5.0),
        rps: None,
        cpu_ms: None,
    };
    let (results, mut report) =
        measured_report(env, &stack, "outage", spec, false, what, targets).await;
    let share_503: Vec<f64> = results
        .iter()
        .map(|r| {
            100.0 * r.statuses.get(&503).copied().unwrap_or(0) as f64 / r.requests.max(1) as f64
        })
        .collect();
    report
        .metrics
        .insert(4, Metric::new("answers that are 503", "%", share_503, None));
    report.notes.push(format!(
        "when measuring began: database {}, breaker {}; each request verifies the JWT, then the \
         gateway refuses the user lookup",
        v["database"], v["circuit_breaker"]["state"]
    ));
    stack.svc.stop();
    Ok(report)
}

async fn startup(env: &Env) -> Result<ScenarioReport> {
    let mut db = DbServer::new(env.db_kind.clone())?;
    db.start().await?;
    let absent_url = format!("mongodb://127.0.0.1:{}", free_port()?);
    let mut port_up = Vec::new();
    let mut health_up = Vec::new();
    let mut ready_up = Vec::new();
    let mut rss_up = Vec::new();
    let mut stop_up = Vec::new();
    let mut port_absent = Vec::new();
    let mut health_absent = Vec::new();
    let mut rss_absent = Vec::new();
    for i in 0..env.opts.runs {
        for with_db in [true, false] {
            let url = if with_db {
                db.url()
            } else {
                absent_url.clone()
            };
            let (mut svc, spawned) = Service::spawn(&env.service, &url, &unique_db_name())?;
            let port =
                wait_accepting(svc.addr, Duration::from_millis(1), Duration::from_secs(30)).await;
            let port = match port {
                Ok(t) => t,
                Err(e) => {
                    svc.check_alive()?;
                    return Err(e);
                }
            };
            let health = wait_status(
                svc.addr,
                "/health",
                200,
                Duration::from_millis(1),
                Duration::from_secs(30),
            )
            .await?;
            let ms = |t: Instant| t.duration_since(spawned).as_secs_f64() * 1000.0;
            if with_db {
                let ready = wait_status(
                    svc.addr,
                    "/readiness",
                    200,
                    Duration::from_millis(5),
                    READY_LIMIT,
                )
                .await?;
                ready_up.push(ms(ready));
                port_up.push(ms(port));
                health_up.push(ms(health));
            } else {
                port_absent.push(ms(port));
                health_absent.push(ms(health));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let rss = svc.pid().and_then(|p| vm_kib(p, "VmRSS").ok()).map(mib);
            if let Some(rss) = rss {
                if with_db {
                    &mut rss_up
                } else {
                    &mut rss_absent
                }
                .push(rss);
            }
            let stopped = svc.stop();
            if with_db {
                stop_up.push(stopped.as_secs_f64() * 1000.0);
            }
            eprintln!(
                "  startup run {}/{} ({}): port {:.1} ms, /health {:.1} ms",
                i + 1,
                env.opts.runs,
                if with_db {
                    "database up"
                } else {
                    "no database"
                },
                ms(port),
                ms(health)
            );
        }
    }
    Ok(ScenarioReport {
        name: "startup".into(),
        what: "process start (spawn of target/release/aila-api) to the port answering, with the \
               database up and with it absent"
            .into(),
        method: format!(
            "{} runs each, fresh process per run; port polled every 1 ms (TCP connect), /health every \
             1 ms, /readiness every 5 ms; RSS read 1 s after start-up",
            env.opts.runs
        ),
        metrics: vec![
            Metric::new(
                "no database: start -> port answering",
                "ms",
                port_absent,
                Some(Target::Below(100.0)),
            ),
            Metric::new(
                "no database: start -> /health 200",
                "ms",
                health_absent,
                None,
            ),
            Metric::new(
                "no database: RSS idle",
                "MiB",
                rss_absent,
                Some(Target::Below(30.0)),
            ),
            Metric::new("database up: start -> port answering", "ms", port_up, None),
            Metric::new("database up: start -> /health 200", "ms", health_up, None),
            Metric::new("database up: start -> /readiness 200", "ms", ready_up, None),
            Metric::new(
                "database up: RSS idle",
                "MiB",
                rss_up,
                Some(Target::Below(30.0)),
            ),
            Metric::new("database up: SIGTERM -> exit", "ms", stop_up, None),
        ],
        statuses: BTreeMap::new(),
        transport_errors: 0,
        notes: Vec::new(),
    })
}

async fn recovery(env: &Env) -> Result<ScenarioReport> {
    let mut stack = start_stack(env).await?;
    let addr = stack.svc.addr;
    let mut back_to_ready = Vec::new();
    let mut spawn_to_ready = Vec::new();
    let mut spawn_to_accept = Vec::new();
    for i in 0..env.opts.runs {
        stack.db.kill();
        wait_status(
            addr,
            "/readiness",
            503,
            Duration::from_millis(20),
            READY_LIMIT,
        )
        .await?;
        tokio::time::sleep(env.opts.down).await;
        let (spawned, accepted) = stack.db.start().await?;
        let ready = wait_status(
            addr,
            "/readiness",
            200,
            Duration::from_millis(5),
            READY_LIMIT,
        )
        .await
        .with_context(|| format!("readiness after the database came back (run {})", i + 1))?;
        let ms = |a: Instant, b: Instant| b.duration_since(a).as_secs_f64() * 1000.0;
        back_to_ready.push(ms(accepted, ready));
        spawn_to_ready.push(ms(spawned, ready));
        spawn_to_accept.push(ms(spawned, accepted));
        eprintln!(
            "  recovery run {}/{}: database accepting -> readiness 200 in {:.0} ms",
            i + 1,
            env.opts.runs,
            ms(accepted, ready)
        );
    }
    stack.svc.stop();
    Ok(ScenarioReport {
        name: "recovery".into(),
        what:
            "database back (killed, then restarted on the same port and data) to /readiness 200, \
               with no request traffic"
                .into(),
        method: format!(
            "{} runs; each: SIGKILL the database, wait for /readiness 503, keep it down {:.1} s, \
             restart it; /readiness polled every 5 ms; service on its default settings \
             (heartbeat 1 s, reconnect backoff 100 ms doubling to 5 s)",
            env.opts.runs,
            env.opts.down.as_secs_f64()
        ),
        metrics: vec![
            Metric::new(
                "database accepting -> /readiness 200",
                "ms",
                back_to_ready,
                Some(Target::Below(1000.0)),
            ),
            Metric::new(
                "database spawn -> /readiness 200",
                "ms",
                spawn_to_ready,
                None,
            ),
            Metric::new("database spawn -> accepting", "ms", spawn_to_accept, None),
        ],
        statuses: BTreeMap::new(),
        transport_errors: 0,
        notes: Vec::new(),
    })
}

async fn external(env: &Env, ext: External, name: &str) -> Result<ScenarioReport> {
    let addr = ext.addr;
    let idle = ext.pid.and_then(|p| vm_kib(p, "VmRSS").ok()).map(mib);
    let (spec, what, targets) = match name {
        "health-up" => (
            RequestSpec::get("/health"),
            "GET /health (service at --url)".to_string(),
            LoadTargets {
                p99_ms: Some(1.0),
                rps: None,
                cpu_ms: None,
            },
        ),
        "tree" => {
            let token = seed_trees(addr, env.opts.other_trees).await?;
            (
                RequestSpec::get("/api/tree").bearer(&token),
                tree_what(env.opts.other_trees, "service at --url"),
                LoadTargets {
                    p99_ms: None,
                    rps: Some(3000.0),
                    cpu_ms: Some(0.2),
                },
            )
        }
        _ => {
            let token = seed::register(addr).await?;
            (
                RequestSpec::post_json("/api/persons", &seed::person_body(1)).bearer(&token),
                "POST /api/persons (service at --url)".to_string(),
                LoadTargets {
                    p99_ms: None,
                    rps: None,
                    cpu_ms: None,
                },
            )
        }
    };
    let results = measure(env, name, addr, spec, ext.pid, None).await;
    let peak = ext.pid.and_then(|p| vm_kib(p, "VmHWM").ok()).map(mib);
    let mut report = load_report(name, what, &env.opts, &results, targets, idle, peak);
    if name == "create-person" {
        report.notes.push(
            "one account creates every person: past the service's MAX_PERSONS_PER_OWNER (1,000 by default) \
             the answers are 400; start that service with a higher cap to measure creation only"
                .into(),
        );
    }
    Ok(report)
}
