//! `aila-bench`: load benchmarks of the service, rerunnable by anyone.
//!
//! ```text
//! cargo run --release --bin aila-bench -- [OPTIONS] SCENARIO... | all
//! ```
//!
//! Starts a database server (FerretDB from `.tools/bin`, or `--mongod`) and the release
//! service binary as child processes (or targets `--url`), and reports per scenario the
//! throughput, latency percentiles (p50, p99, max), the CPU used by the load generator, the
//! service and the database, and the service's memory (idle RSS, and peak RSS = `VmHWM`).
//! Each scenario runs several times (`--runs`); the table shows the median and the spread.
//! Results are written down in `docs/BENCHMARKS.md`.
//!
//! Layout: [`scenarios`] (what each one does; [`overload`] and [`gray`] are the burst and
//! the network faults), [`load`] (the generator), [`procs`]
//! (child processes and /proc), [`seed`] (data set-up through the API), [`stats`]
//! (percentiles, medians), [`report`] (table and JSON).

mod gray;
mod load;
mod overload;
mod procs;
mod report;
mod scenarios;
mod seed;
mod stats;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::load::LoadConfig;
use crate::procs::{DbKind, ServiceSpec};
use crate::report::{Machine, Report};
use crate::scenarios::{ALL, Env, External, Options};

/// Load benchmarks of the AÏLA API (see docs/BENCHMARKS.md).
/// `NAME=VALUE`.
fn name_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err(format!("`{s}`: expected NAME=VALUE")),
    }
}

#[derive(Debug, Parser)]
#[command(name = "aila-bench", version)]
struct Cli {
    /// Scenarios: health-up, health-down, health-frozen, tree, create-person, replay,
    /// outage, startup, recovery, overload, gray, or all.
    #[arg(required = true)]
    scenarios: Vec<String>,
    /// Target a running service instead of starting one (health-up, tree and create-person
    /// only: the others need a database the benchmark controls).
    #[arg(long)]
    url: Option<String>,
    /// Process id of the --url service, to report its CPU and memory.
    #[arg(long, requires = "url")]
    service_pid: Option<u32>,
    /// Run this mongod instead of FerretDB.
    #[arg(long)]
    mongod: Option<PathBuf>,
    /// FerretDB binary [default: .tools/bin/ferretdb, or FERRETDB_BIN].
    #[arg(long)]
    ferretdb: Option<PathBuf>,
    /// Service binary [default: aila-api next to this binary, built first with cargo].
    #[arg(long)]
    service_bin: Option<PathBuf>,
    /// Measured runs per scenario.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Warm-up seconds before each measured run.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Keep-alive connections, each with one request in flight.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Total request rate (open loop); unset: each connection sends as soon as answered.
    #[arg(long)]
    rate: Option<f64>,
    /// `tree`: first seed this many other users' trees of the same size, so the
    /// collections hold more than the measured tree (what a shared database looks like).
    #[arg(long, default_value_t = 0)]
    other_trees: usize,
    /// `overload`: connections of the burst (the unloaded figure uses --concurrency).
    #[arg(long, default_value_t = 300)]
    burst_connections: usize,
    /// `overload`: the burst's connections wait out each 503's `Retry-After-Ms` before
    /// sending again (polite clients); without it they send again at once (the worst).
    #[arg(long)]
    polite_burst: bool,
    /// Seconds the database stays down in `recovery`.
    #[arg(long, default_value_t = 3.0)]
    down: f64,
    /// RUST_LOG for the service.
    #[arg(long, default_value = "info")]
    service_log: String,
    /// A setting for the service, `NAME=VALUE` (repeatable): for example
    /// `TREE_CACHE_MAX_BYTES=0` (no kept trees) or `LOG_FORMAT=json` (production's logs).
    #[arg(long = "service-env", value_parser = name_value)]
    service_env: Vec<(String, String)>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn parse_url(url: &str) -> Result<SocketAddr> {
    let u = url::Url::parse(url).with_context(|| format!("--url {url}"))?;
    if u.scheme() != "http" {
        bail!("--url must be http:// (the generator speaks plain HTTP/1.1)");
    }
    let host = u.host_str().context("--url has no host")?;
    let port = u.port_or_known_default().unwrap_or(80);
    (host, port)
        .to_socket_addrs()?
        .next()
        .with_context(|| format!("--url {url}: host not found"))
}

fn secs(v: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(v).map_err(|_| anyhow::anyhow!("--{what} {v} is not a duration"))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // Before anything of ours runs: the load says whether the machine was quiet.
    let machine = Machine::read();
    let manifest_dir = aila_testkit::workspace::root();
    let mut names = Vec::new();
    for s in &cli.scenarios {
        if s == "all" {
            names.extend(ALL.iter().map(|s| s.to_string()));
        } else if ALL.contains(&s.as_str()) {
            names.push(s.clone());
        } else {
            bail!("unknown scenario `{s}` (one of: {}, all)", ALL.join(", "));
        }
    }
    if cli.runs == 0 || cli.concurrency == 0 {
        bail!("--runs and --concurrency must be at least 1");
    }

    let external = match &cli.url {
        Some(u) => Some(External {
            addr: parse_url(u)?,
            pid: cli.service_pid,
        }),
        None => None,
    };
    if external.is_some() {
        if let Some(n) = names
            .iter()
            .find(|n| !scenarios::EXTERNAL_OK.contains(&n.as_str()))
        {
            bail!(
                "`{n}` needs a database the benchmark controls; with --url only {} run",
                scenarios::EXTERNAL_OK.join(", ")
            );
        }
    }
    let db_kind = match &cli.mongod {
        Some(p) => DbKind::Mongod(
            std::fs::canonicalize(p).with_context(|| format!("--mongod {}", p.display()))?,
        ),
        None => {
            let p = cli
                .ferretdb
                .clone()
                .or_else(|| std::env::var_os("FERRETDB_BIN").map(PathBuf::from))
                .unwrap_or_else(|| manifest_dir.join(".tools/bin/ferretdb"));
            if external.is_none() && !p.exists() {
                bail!(
                    "FerretDB is not built ({} missing): run `scripts/build-tools.sh ferretdb`, or pass --mongod PATH",
                    p.display()
                );
            }
            DbKind::FerretDb(std::fs::canonicalize(&p).unwrap_or(p))
        }
    };
    let service_bin = match &cli.service_bin {
        Some(p) => {
            std::fs::canonicalize(p).with_context(|| format!("--service-bin {}", p.display()))?
        }
        None if external.is_none() => {
            eprintln!("building aila-api ...");
            procs::build_service(&manifest_dir)?;
            procs::sibling_binary("aila-api")?
        }
        None => PathBuf::new(),
    };
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: aila-bench is a debug build; use `cargo run --release --bin aila-bench` for figures worth writing down"
        );
    }
    let workdir = tempfile::Builder::new().prefix("aila-bench").tempdir()?;
    let env = Env {
        opts: Options {
            runs: cli.runs,
            load: LoadConfig {
                concurrency: cli.concurrency,
                warmup: secs(cli.warmup, "warmup")?,
                duration: secs(cli.duration, "duration")?,
                rate: cli.rate,
                honour_retry_after: false,
            },
            down: secs(cli.down, "down")?,
            other_trees: cli.other_trees,
            burst_connections: cli.burst_connections,
            polite_burst: cli.polite_burst,
        },
        db_kind: db_kind.clone(),
        service: ServiceSpec {
            bin: service_bin,
            workdir: workdir.path().to_path_buf(),
            log_filter: cli.service_log.clone(),
            env: cli.service_env.clone(),
        },
        external,
    };

    let mut report = Report {
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine,
        database: match (&cli.url, &db_kind) {
            (Some(u), _) => format!("whatever the service at {u} uses"),
            (None, k) => k.describe(),
        },
        scenarios: Vec::new(),
    };
    // One thread: the generator never takes more than one of the machine's cores.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for name in &names {
        eprintln!("scenario {name} ...");
        let r = rt
            .block_on(scenarios::run(&env, name))
            .with_context(|| format!("scenario {name}"))?;
        report.scenarios.push(r);
    }
    report.machine.loadavg_end = report::loadavg();

    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &cli.out {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    if cli.json {
        println!("{json}");
    } else {
        print!("{}", report::table(&report));
    }
    Ok(())
}
