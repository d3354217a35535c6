//! `aila-chaos`: runs a mixed load against the AÏLA API while the database is killed,
//! frozen and restarted, or its network slowed, blackholed and reset, on a schedule, with
//! bursts of extra load; then proves nothing acknowledged was lost.
//!
//! # Layout
//! - [`schedule`]: the fault schedule (`kill@8s+4s,latency:200ms@20s+8s,burst:300@30s+10s`,
//!   or cycles).
//! - [`backend`]: hurting the database: local processes (FerretDB or `mongod`, started by
//!   the tool) or `docker compose`; and the service process when the tool starts it.
//! - [`network`]: gray faults through Toxiproxy between the service and the database.
//! - [`burst`]: the `burst` load step.
//! - [`load`]: virtual users (register, log in, persons, links, trees, notifications) at a
//!   shared rate; writes carry unique markers and (by default) an `Idempotency-Key` each,
//!   retried blindly (`--no-idempotency-keys`: read back before resending); the read-back
//!   verification.
//! - [`probe`]: `/health` and `/readiness` polled every ~100 ms.
//! - [`record`]: what a run records (the JSON file).
//! - [`analysis`]: phases, detection and recovery times, percentiles, fast 503s, lost-write
//!   accounting, checks.
//! - [`svg`]: the timeline picture.
//! - [`report`]: the human summary.
//!
//! Exit status: 0 when every check passes, 1 when one fails, 2 when the run could not be
//! carried out (bad arguments, no database binary, the service never became ready).

mod analysis;
mod backend;
mod burst;
mod load;
mod network;
mod probe;
mod record;
mod report;
mod schedule;
mod svg;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use analysis::Limits;
use backend::{Backend, Compose, LocalDatabase, ServerBinary, ServiceProcess};
use load::{Clock, Load, LoadConfig};
use record::{FaultRecord, ProbeKind, RunRecord, ServiceRecord};
use schedule::FaultSpec;

/// Settings of the service the tool starts (local back-end) unless `--service-env` says
/// otherwise: fast failure detection, as in the test suite, so a one-minute run sees
/// several full outage and recovery cycles.
const FAST_SERVICE_ENV: &[(&str, &str)] = &[
    ("MONGO_HEARTBEAT_FREQ_MS", "500"),
    ("MONGO_PING_INTERVAL_MS", "500"),
    ("MONGO_PING_TIMEOUT_MS", "1000"),
    ("MONGO_OPERATION_TIMEOUT_MS", "2000"),
    ("MONGO_SERVER_SELECTION_TIMEOUT_MS", "2000"),
    ("MONGO_CONNECT_TIMEOUT_MS", "2000"),
    ("MONGO_MIN_POOL_SIZE", "0"),
    ("RECONNECT_MAX_MS", "500"),
    ("BREAKER_OPEN_MAX_MS", "1000"),
    ("OTEL_SDK_DISABLED", "true"),
    ("RUST_LOG", "info"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    /// Processes the tool starts itself: FerretDB (or mongod), and the service unless --url.
    Local,
    /// The `mongo` service of docker compose; the API at --url (default http://localhost:8001).
    Compose,
}

/// Chaos experiment for the AÏLA API: mixed load while the database is killed, frozen and
/// restarted; checks that no acknowledged write is lost, /health stays 200 and the
/// service never exits; reports detection and recovery times, latency per phase and the
/// share of fast 503s; writes record.json and timeline.svg.
#[derive(Debug, Parser)]
#[command(name = "aila-chaos", version)]
struct Args {
    /// Where the faults are injected.
    #[arg(long, value_enum, default_value_t = BackendKind::Local)]
    backend: BackendKind,

    /// An already-running service to test (local back-end: point its MONGO_URL at
    /// --db-port; compose: default http://localhost:8001). Without it, the local back-end
    /// starts the service itself.
    #[arg(long)]
    url: Option<String>,

    /// The service binary to start (local back-end without --url). Default: `aila-api`
    /// next to this binary.
    #[arg(long)]
    service_bin: Option<PathBuf>,

    /// Extra setting for the started service, KEY=VALUE (repeatable); overrides the fast
    /// detection settings the tool uses by default.
    #[arg(long = "service-env", value_name = "KEY=VALUE")]
    service_env: Vec<String>,

    /// FerretDB binary (local back-end). Default: $FERRETDB_BIN, else .tools/bin/ferretdb
    /// of the source tree (`scripts/build-tools.sh ferretdb` builds it).
    #[arg(long)]
    ferretdb: Option<PathBuf>,

    /// Run this mongod instead of FerretDB (local back-end).
    #[arg(long)]
    mongod: Option<PathBuf>,

    /// Port of the local database (default: a free one). Fix it to test a service you
    /// started yourself with MONGO_URL=mongodb://127.0.0.1:PORT.
    #[arg(long)]
    db_port: Option<u16>,

    /// toxiproxy-server binary, for gray faults (local back-end). Default: $TOXIPROXY_BIN,
    /// else .tools/bin/toxiproxy-server (`scripts/build-tools.sh toxiproxy` builds it).
    #[arg(long)]
    toxiproxy: Option<PathBuf>,

    /// Port of the Toxiproxy proxy in front of the database, with gray faults (default: a
    /// free one). Fix it to test a service you started yourself: its MONGO_URL then names
    /// this port.
    #[arg(long)]
    proxy_port: Option<u16>,

    /// docker compose file (compose back-end; default: docker compose's own choice).
    #[arg(long)]
    compose_file: Option<PathBuf>,

    /// docker compose project name.
    #[arg(long)]
    compose_project: Option<String>,

    /// The database service in the compose file.
    #[arg(long, default_value = "mongo")]
    compose_service: String,

    /// How long the load runs.
    #[arg(long, default_value = "60s", value_parser = schedule::parse_duration)]
    duration: Duration,

    /// Faults: KIND[:AMOUNT]@AT[+FOR],... with KIND kill, freeze, restart (the database
    /// process), latency, timeout (blackhole), reset_peer, bandwidth, slicer (its network,
    /// through Toxiproxy) or burst (extra connections), e.g.
    /// `kill@8s+4s,latency:200ms@16s+8s,timeout@28s+4s,burst:300@36s+10s`. Default: --cycles.
    #[arg(long)]
    schedule: Option<String>,

    /// Without --schedule: this many cycles of kill, freeze, restart.
    #[arg(long, default_value_t = 1)]
    cycles: u32,

    /// First fault after this much healthy load.
    #[arg(long, default_value = "8s", value_parser = schedule::parse_duration)]
    warmup: Duration,

    /// How long a generated kill or freeze keeps the database away.
    #[arg(long, default_value = "4s", value_parser = schedule::parse_duration)]
    down: Duration,

    /// Healthy load between generated faults.
    #[arg(long, default_value = "8s", value_parser = schedule::parse_duration)]
    gap: Duration,

    /// Total requests per second.
    #[arg(long, default_value_t = 40.0)]
    rate: f64,

    /// Virtual users (each sends one request at a time).
    #[arg(long, default_value_t = 8)]
    users: u32,

    /// Each user logs in again, or registers a new account (alternately), this often.
    /// Both run bcrypt (cost 12): CPU-bound by design.
    #[arg(long, default_value = "20s", value_parser = schedule::parse_duration)]
    auth_interval: Duration,

    /// Per-request timeout of the load.
    #[arg(long, default_value = "10s", value_parser = schedule::parse_duration)]
    request_timeout: Duration,

    /// How long a failed write keeps trying (send again; read back first without keys)
    /// before the client gives up on it.
    #[arg(long, default_value = "20s", value_parser = schedule::parse_duration)]
    write_patience: Duration,

    /// Writes without `Idempotency-Key`: after a failed attempt the client reads its data
    /// back and sends again only when the write is not there (the default sends every
    /// write with a key of its own and retries blindly).
    #[arg(long)]
    no_idempotency_keys: bool,

    /// Probe period.
    #[arg(long, default_value = "100ms", value_parser = schedule::parse_duration)]
    probe_interval: Duration,

    /// A probe answer slower than this counts as no answer.
    #[arg(long, default_value = "2s", value_parser = schedule::parse_duration)]
    probe_timeout: Duration,

    /// A kill or freeze must turn /readiness 503 within this.
    #[arg(long, default_value = "10s", value_parser = schedule::parse_duration)]
    max_detection: Duration,

    /// Once the database is back, a request must succeed within this.
    #[arg(long, default_value = "30s", value_parser = schedule::parse_duration)]
    max_recovery: Duration,

    /// Fail unless at least this share (0..1) of the 503s sent during outages are
    /// answered in under 50 ms. 0: report only.
    #[arg(long, default_value_t = 0.0)]
    min_fast_503_share: f64,

    /// How long to wait for the service to be ready before the load, and for the
    /// verification after it.
    #[arg(long, default_value = "60s", value_parser = schedule::parse_duration)]
    ready_timeout: Duration,

    /// Output folder: record.json, timeline.svg, service.log, database.log. The default is
    /// inside target/, which git ignores.
    #[arg(long, default_value = "target/aila-chaos")]
    out: PathBuf,

    /// Seed of the action choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Print the plan (schedule, commands) and exit.
    #[arg(long)]
    dry_run: bool,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("aila-chaos: {msg}");
    ExitCode::from(2)
}

fn source_tree() -> PathBuf {
    aila_testkit::workspace::root()
}

fn ferretdb_path(arg: Option<PathBuf>) -> PathBuf {
    arg.or_else(|| std::env::var_os("FERRETDB_BIN").map(PathBuf::from))
        .unwrap_or_else(|| source_tree().join(".tools/bin/ferretdb"))
}

fn service_bin_path(arg: Option<PathBuf>) -> PathBuf {
    arg.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("aila-api")))
            .unwrap_or_else(|| PathBuf::from("aila-api"))
    })
}

fn parse_env(items: &[String]) -> Result<Vec<(String, String)>, String> {
    items
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("--service-env {kv:?}: expected KEY=VALUE"))
        })
        .collect()
}

/// Time for the service to recover from the last fault before the load stops.
const SETTLE: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let faults = match &args.schedule {
        Some(text) => match schedule::parse_schedule(text) {
            Ok(f) => f,
            Err(e) => return fail(format!("--schedule: {e}")),
        },
        None => schedule::cycles(args.cycles, args.warmup, args.down, args.gap),
    };
    if let Err(e) = schedule::check_fits(&faults, args.duration, SETTLE) {
        return fail(e);
    }
    if args.backend == BackendKind::Compose && schedule::needs_proxy(&faults) {
        return fail(
            "gray faults (latency, timeout, reset_peer, bandwidth, slicer) need the local back-end: Toxiproxy sits between the service and the database it starts",
        );
    }
    if args.rate <= 0.0 || args.users == 0 {
        return fail("--rate and --users must be positive");
    }
    let service_env = match parse_env(&args.service_env) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let compose = Compose {
        file: args.compose_file.clone(),
        project: args.compose_project.clone(),
        service: args.compose_service.clone(),
    };
    if args.dry_run {
        print_plan(&args, &faults, &compose);
        return ExitCode::SUCCESS;
    }
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        return fail(format!("{}: {e}", args.out.display()));
    }
    // On Ctrl-C the run is dropped, and with it the database and service processes the
    // tool started (their Drop kills them).
    let result = tokio::select! {
        r = run(args, faults, compose, service_env) => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => fail(e),
    }
}

fn print_plan(args: &Args, faults: &[FaultSpec], compose: &Compose) {
    println!(
        "aila-chaos plan: {} back-end, {} of load at {} req/s with {} users",
        match args.backend {
            BackendKind::Local => "local",
            BackendKind::Compose => "compose",
        },
        schedule::show(args.duration),
        args.rate,
        args.users
    );
    println!("schedule: {}", schedule::to_text(faults));
    for f in faults {
        if f.kind == schedule::FaultKind::Burst {
            println!(
                "  at {:>6}: {} extra connections reading GET /api/tree until {}",
                schedule::show(f.at),
                f.amount.unwrap_or(0),
                schedule::show(f.back_at())
            );
            continue;
        }
        if f.kind.needs_proxy() {
            for t in network::toxics(f) {
                println!(
                    "  at {:>6}: toxiproxy: add {} {} {}",
                    schedule::show(f.at),
                    t.kind,
                    t.stream.as_str(),
                    t.attributes
                );
            }
            println!(
                "  at {:>6}: toxiproxy: remove them",
                schedule::show(f.back_at())
            );
            continue;
        }
        match args.backend {
            BackendKind::Compose => {
                let (inject, restore) = compose.commands(f.kind);
                println!(
                    "  at {:>6}: docker {}",
                    schedule::show(f.at),
                    inject.join(" ")
                );
                println!(
                    "  at {:>6}: docker {}",
                    schedule::show(f.back_at()),
                    restore.join(" ")
                );
            }
            BackendKind::Local => {
                let (inject, restore) = match f.kind {
                    schedule::FaultKind::Kill => {
                        ("kill -KILL <database pid>", "start the database again")
                    }
                    schedule::FaultKind::Freeze => {
                        ("kill -STOP <database pid>", "kill -CONT <database pid>")
                    }
                    _ => ("kill -TERM <database pid>", "start the database again"),
                };
                println!("  at {:>6}: {inject}", schedule::show(f.at));
                println!("  at {:>6}: {restore}", schedule::show(f.back_at()));
            }
        }
    }
    if args.backend == BackendKind::Compose {
        println!(
            "after each start: docker {} (until it answers: the database is back)",
            compose.ping_command().join(" ")
        );
    }
    let url = args.url.clone().unwrap_or_else(|| match args.backend {
        BackendKind::Compose => "http://localhost:8001".into(),
        BackendKind::Local => "(the service the tool starts)".into(),
    });
    println!("service: {url}");
}

async fn run(
    args: Args,
    faults: Vec<FaultSpec>,
    compose: Compose,
    service_env: Vec<(String, String)>,
) -> Result<bool, String> {
    let out = args.out.clone();
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();

    // The database (local) and the service.
    let mut backend = match args.backend {
        BackendKind::Compose => Backend::Compose(compose),
        BackendKind::Local => {
            let binary = match &args.mongod {
                Some(m) => ServerBinary::Mongod(m.clone()),
                None => {
                    let f = ferretdb_path(args.ferretdb.clone());
                    if !f.exists() {
                        return Err(format!(
                            "FerretDB is not built ({} missing): run `scripts/build-tools.sh ferretdb`, or pass --mongod PATH",
                            f.display()
                        ));
                    }
                    ServerBinary::FerretDb(f)
                }
            };
            let db = LocalDatabase::start(binary, args.db_port, &out.join("database.log")).await?;
            eprintln!("aila-chaos: database: {}", db.describe());
            let network = if schedule::needs_proxy(&faults) {
                let bin = args
                    .toxiproxy
                    .clone()
                    .or_else(|| std::env::var_os("TOXIPROXY_BIN").map(PathBuf::from))
                    .unwrap_or_else(|| source_tree().join(".tools/bin/toxiproxy-server"));
                if !bin.exists() {
                    return Err(format!(
                        "Toxiproxy is not built ({} missing): run `scripts/build-tools.sh toxiproxy`, or pass --toxiproxy PATH",
                        bin.display()
                    ));
                }
                let upstream = db.url().trim_start_matches("mongodb://").to_string();
                let n = network::NetworkFaults::start(
                    &bin,
                    &upstream,
                    args.proxy_port.unwrap_or(0),
                    &out.join("toxiproxy.log"),
                )?;
                eprintln!("aila-chaos: network: {}", n.describe());
                Some(n)
            } else {
                None
            };
            Backend::Local { db, network }
        }
    };
    let mut service: Option<ServiceProcess> = None;
    let url = match (&args.url, &backend) {
        (Some(u), _) => u.trim_end_matches('/').to_string(),
        (None, Backend::Compose(_)) => "http://localhost:8001".to_string(),
        (None, Backend::Local { db, network }) => {
            // Absolute: the service runs in an empty scratch folder.
            let bin = service_bin_path(args.service_bin.clone());
            let bin = std::fs::canonicalize(&bin).map_err(|e| {
                format!(
                    "the service binary {} cannot be used ({e}): build it with `cargo build --bin aila-api`, or pass --service-bin",
                    bin.display()
                )
            })?;
            let mut env: Vec<(String, String)> = FAST_SERVICE_ENV
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let db_url = network.as_ref().map_or_else(|| db.url(), |n| n.url());
            env.push(("MONGO_URL".into(), db_url));
            env.push(("DB_NAME".into(), format!("aila_chaos_{run_id}")));
            env.push(("JWT_SECRET".into(), format!("chaos-secret-{run_id}")));
            for (k, v) in &service_env {
                env.retain(|(ek, _)| ek != k);
                env.push((k.clone(), v.clone()));
            }
            let s = ServiceProcess::start(&bin, &env, &out.join("service.log"))?;
            eprintln!(
                "aila-chaos: service: {} (pid {}), logs in {}",
                s.url,
                s.pid(),
                s.log.display()
            );
            let url = s.url.clone();
            service = Some(s);
            url
        }
    };
    probe::wait_ready(&url, args.ready_timeout).await?;
    let burst_reader = if faults.iter().any(|f| f.kind == schedule::FaultKind::Burst) {
        burst::register_reader(&url, &run_id).await
    } else {
        Err("no burst".to_string())
    };
    eprintln!(
        "aila-chaos: ready; {} of load at {} req/s, {} users; faults: {}",
        schedule::show(args.duration),
        args.rate,
        args.users,
        schedule::to_text(&faults)
    );

    // The load, the probes and the process watch.
    let clock = Clock::start();
    let started_at = chrono::Utc::now().to_rfc3339();
    let (stop_load_tx, stop_load) = watch::channel(false);
    let (stop_probes_tx, stop_probes) = watch::channel(false);
    let probes: Vec<_> = [ProbeKind::Health, ProbeKind::Readiness]
        .into_iter()
        .map(|kind| {
            tokio::spawn(probe::run(
                url.clone(),
                kind,
                clock,
                args.probe_interval,
                args.probe_timeout,
                stop_probes.clone(),
            ))
        })
        .collect();
    let service = service.map(|s| Arc::new(Mutex::new(s)));
    let exited: Arc<Mutex<Option<String>>> = Arc::default();
    let watcher = service.clone().map(|s| {
        let exited = exited.clone();
        let mut stop = stop_probes.clone();
        tokio::spawn(async move {
            loop {
                if let Some(status) = s.lock().expect("service lock").exited() {
                    *exited.lock().expect("exit lock") =
                        Some(format!("at {:.0} ms: {status}", clock.now_ms()));
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        })
    });
    let load = Load::new(
        LoadConfig {
            url: url.clone(),
            rate: args.rate,
            run_id: run_id.clone(),
            request_timeout: args.request_timeout,
            write_patience: args.write_patience,
            seed: args.seed,
            auth_interval: args.auth_interval.max(Duration::from_millis(100)),
            idempotency_keys: !args.no_idempotency_keys,
        },
        clock,
        stop_load,
    );
    let users: Vec<_> = (0..args.users)
        .map(|u| tokio::spawn(load.clone().run_user(u)))
        .collect();

    // The bursts, each on its own clock.
    let bursts: Vec<_> = faults
        .iter()
        .filter(|f| f.kind == schedule::FaultKind::Burst)
        .map(|spec| {
            let spec = *spec;
            let url = url.clone();
            let reader = burst_reader.clone();
            let timeout = args.request_timeout;
            tokio::spawn(async move {
                match reader {
                    Ok(token) => burst::run(url, token, spec, clock, timeout).await,
                    Err(e) => record::BurstRecord {
                        spec: Some(spec),
                        error: Some(e),
                        ..Default::default()
                    },
                }
            })
        })
        .collect();

    // The faults, on schedule.
    let mut fault_records = Vec::new();
    for spec in faults
        .iter()
        .filter(|f| f.kind != schedule::FaultKind::Burst)
    {
        tokio::time::sleep_until(clock.t0() + spec.at).await;
        let mut rec = FaultRecord {
            spec: *spec,
            action_started_at_ms: clock.now_ms(),
            injected_at_ms: 0.0,
            restored_at_ms: None,
            actions: Vec::new(),
            error: None,
        };
        match backend.inject(spec).await {
            Ok(done) => rec.actions.extend(done),
            Err(e) => rec.error = Some(format!("inject: {e}")),
        }
        // The fault is surely in place once the signal is sent or the command returned.
        rec.injected_at_ms = clock.now_ms();
        eprintln!(
            "aila-chaos: {:>7.1} s  {} ({})",
            rec.injected_at_ms / 1000.0,
            spec.kind,
            rec.actions.join("; ")
        );
        tokio::time::sleep_until(clock.t0() + spec.back_at()).await;
        match backend.restore(spec).await {
            Ok(done) => {
                rec.restored_at_ms = Some(clock.now_ms());
                rec.actions.extend(done);
            }
            Err(e) => {
                let e = format!("restore: {e}");
                rec.error = Some(match rec.error.take() {
                    Some(prev) => format!("{prev}; {e}"),
                    None => e,
                });
            }
        }
        eprintln!(
            "aila-chaos: {:>7.1} s  {} undone{}",
            clock.now_ms() / 1000.0,
            spec.kind,
            rec.error
                .as_deref()
                .map(|e| format!(" FAILED: {e}"))
                .unwrap_or_default()
        );
        fault_records.push(rec);
    }
    let mut burst_records = Vec::new();
    for b in bursts {
        burst_records.push(b.await.map_err(|e| format!("a burst panicked: {e}"))?);
    }
    tokio::time::sleep_until(clock.t0() + args.duration).await;
    let _ = stop_load_tx.send(true);
    let duration_ms = clock.now_ms();
    let mut requests = Vec::new();
    let mut writes = Vec::new();
    let mut accounts = Vec::new();
    for u in users {
        let log = u
            .await
            .map_err(|e| format!("a virtual user panicked: {e}"))?;
        requests.extend(log.requests);
        writes.extend(log.writes);
        accounts.extend(log.accounts);
    }
    requests.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    eprintln!(
        "aila-chaos: load stopped; reading back {} accounts",
        accounts.len()
    );

    // Read everything back once the service is ready (probes still running).
    let verify_deadline = Instant::now() + args.ready_timeout;
    let ready = probe::wait_ready(&url, args.ready_timeout).await;
    let observed = load::verify(&url, &run_id, &accounts, &writes, verify_deadline).await;
    let _ = stop_probes_tx.send(true);
    let mut probe_records = Vec::new();
    for p in probes {
        probe_records.extend(p.await.map_err(|e| format!("a probe panicked: {e}"))?);
    }
    probe_records.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    if let Some(w) = watcher {
        let _ = w.await;
    }

    // Stop what the tool started.
    let mut service_record = ServiceRecord {
        started_by_tool: service.is_some(),
        exited_during_run: exited.lock().expect("exit lock").clone(),
        ..ServiceRecord::default()
    };
    if let Some(s) = service {
        let mut s = Arc::try_unwrap(s)
            .map_err(|_| "the service process is still shared".to_string())?
            .into_inner()
            .expect("service lock");
        if service_record.exited_during_run.is_none() {
            let how = s.terminate(Duration::from_secs(30)).await;
            service_record.clean_shutdown = Some(how == "exit status: 0");
            service_record.final_exit = Some(how);
        }
    }
    if let Backend::Local { db, .. } = &mut backend {
        db.stop();
    }

    let record = RunRecord {
        tool_version: env!("CARGO_PKG_VERSION").into(),
        started_at,
        service_url: url,
        backend: backend.name().into(),
        settings: json!({
            "schedule": schedule::to_text(&faults),
            "duration_ms": args.duration.as_millis() as u64,
            "rate": args.rate,
            "users": args.users,
            "request_timeout_ms": args.request_timeout.as_millis() as u64,
            "write_patience_ms": args.write_patience.as_millis() as u64,
            "probe_interval_ms": args.probe_interval.as_millis() as u64,
            "probe_timeout_ms": args.probe_timeout.as_millis() as u64,
            "seed": args.seed,
            "auth_interval_ms": args.auth_interval.as_millis() as u64,
            "idempotency_keys": !args.no_idempotency_keys,
            "run_id": run_id,
            "service_env": args.service_env,
            "ready_after_run": ready.as_ref().err(),
        }),
        duration_ms,
        faults: fault_records,
        bursts: burst_records,
        requests,
        probes: probe_records,
        writes,
        observed,
        service: service_record,
    };
    let limits = Limits {
        max_detection_ms: args.max_detection.as_secs_f64() * 1000.0,
        max_recovery_ms: args.max_recovery.as_secs_f64() * 1000.0,
        min_fast_503_share: args.min_fast_503_share,
    };
    let analysis = analysis::analyse(&record, limits);
    write_outputs(&out, &record, &analysis)?;
    print!("{}", report::summary(&record, &analysis));
    println!(
        "record: {}\ntimeline: {}",
        out.join("record.json").display(),
        out.join("timeline.svg").display()
    );
    Ok(analysis.passed)
}

fn write_outputs(
    out: &Path,
    record: &RunRecord,
    analysis: &analysis::Analysis,
) -> Result<(), String> {
    let mut value = serde_json::to_value(record).map_err(|e| e.to_string())?;
    value["analysis"] = serde_json::to_value(analysis).map_err(|e| e.to_string())?;
    let json = serde_json::to_vec_pretty(&value).map_err(|e| e.to_string())?;
    std::fs::write(out.join("record.json"), json)
        .map_err(|e| format!("{}: {e}", out.join("record.json").display()))?;
    std::fs::write(out.join("timeline.svg"), svg::render(record, analysis))
        .map_err(|e| format!("{}: {e}", out.join("timeline.svg").display()))?;
    Ok(())
}
