//! The processes a benchmark runs and measures: the database server (FerretDB or `mongod`),
//! the service (`target/release/aila-api`), and what `/proc` says about them and about the
//! load generator itself (CPU time, resident and peak memory).

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::time::Instant;

pub use aila_testkit::ServerBinary as DbKind;

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// True when something accepts TCP connections on `addr`.
pub async fn accepts(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_ok()
}

/// Polls `accepts(addr)` every `every` until it holds; the instant it first held.
pub async fn wait_accepting(addr: SocketAddr, every: Duration, limit: Duration) -> Result<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        if accepts(addr).await {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("nothing accepted connections on {addr} within {limit:?}");
        }
        tokio::time::sleep(every).await;
    }
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: libc::c_int) -> Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions; pid is a child we started.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    if rc != 0 {
        bail!(
            "kill({pid}, {sig}) failed: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// A database server process owned by the benchmark: started, killed (SIGKILL), frozen
/// (SIGSTOP), thawed and restarted on the same port and data.
pub struct DbServer {
    kind: DbKind,
    port: u16,
    data: tempfile::TempDir,
    child: Option<Child>,
    frozen: bool,
}

impl DbServer {
    /// A server on a free port with a fresh data folder, not started yet.
    pub fn new(kind: DbKind) -> Result<DbServer> {
        Ok(DbServer {
            kind,
            port: free_port()?,
            data: tempfile::Builder::new().prefix("aila-bench-db").tempdir()?,
            child: None,
            frozen: false,
        })
    }

    /// `mongodb://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts (again, on the same port and data) and waits until it accepts connections.
    /// Returns when it was spawned and when it first accepted.
    pub async fn start(&mut self) -> Result<(Instant, Instant)> {
        self.kill();
        let spawned = Instant::now();
        let child = self
            .kind
            .spawn_quiet(self.port, self.data.path())
            .with_context(|| format!("starting {}", self.kind.describe()))?;
        self.child = Some(child);
        let accepted = wait_accepting(
            self.addr(),
            Duration::from_millis(2),
            Duration::from_secs(30),
        )
        .await?;
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            bail!(
                "the database exited at start ({status}); is port {} taken?",
                self.port
            );
        }
        Ok((spawned, accepted))
    }

    /// SIGKILL: gone at once, connections reset.
    pub fn kill(&mut self) {
        if self.frozen {
            self.thaw();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: keeps its sockets, answers nothing.
    pub fn freeze(&mut self) -> Result<()> {
        if let Some(pid) = self.pid() {
            signal(pid, libc::SIGSTOP)?;
            self.frozen = true;
        }
        Ok(())
    }

    /// SIGCONT.
    pub fn thaw(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = signal(pid, libc::SIGCONT);
            self.frozen = false;
        }
    }
}

impl Drop for DbServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The service as a child process (the release binary), with its log in a file.
pub struct Service {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its log (stdout and stderr).
    pub log: PathBuf,
}

/// How to start the service.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// The `aila-api` binary.
    pub bin: PathBuf,
    /// Working directory (empty: no `config/` files and no `.env`, so built-in defaults).
    pub workdir: PathBuf,
    /// `RUST_LOG` for the service.
    pub log_filter: String,
    /// More settings (`--service-env`), after the ones below.
    pub env: Vec<(String, String)>,
}

impl Service {
    /// Spawns the service on a free port against `mongo_url` and database `db_name`, with
    /// the built-in defaults except: loopback only, a fixed JWT secret, trace export off.
    /// Returns at once (it does not wait for the port), with the instant just before the
    /// spawn.
    pub fn spawn(spec: &ServiceSpec, mongo_url: &str, db_name: &str) -> Result<(Service, Instant)> {
        let port = free_port()?;
        let log = spec.workdir.join(format!("aila-api-{port}.log"));
        let out = File::create(&log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(&spec.bin);
        cmd.current_dir(&spec.workdir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("MONGO_URL", mongo_url)
            .env("DB_NAME", db_name)
            .env("JWT_SECRET", "aila-bench-secret-not-for-production")
            .env("OTEL_SDK_DISABLED", "true")
            .env("RUST_LOG", &spec.log_filter)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let started = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", spec.bin.display()))?;
        Ok((
            Service {
                child: Some(child),
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                log,
            },
            started,
        ))
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Fails with the end of the log if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            bail!(
                "the service exited ({status}); last log lines:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 15 s). Returns how long it took.
    pub fn stop(&mut self) -> Duration {
        let started = std::time::Instant::now();
        if let Some(mut child) = self.child.take() {
            let _ = signal(child.id(), libc::SIGTERM);
            let deadline = started + Duration::from_secs(15);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if std::time::Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        }
        started.elapsed()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// CPU time (user + system) used so far by process `pid`, or by this process for `None`.
pub fn cpu_time(pid: Option<u32>) -> Result<Duration> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may contain spaces: fields are counted after its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let ticks: u64 = fields
        .get(11)
        .zip(fields.get(12))
        .and_then(|(u, s)| Some(u.parse::<u64>().ok()? + s.parse::<u64>().ok()?))
        .context("no utime/stime in stat")?;
    Ok(Duration::from_secs_f64(
        ticks as f64 / clock_ticks_per_sec(),
    ))
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// A `Vm*` line of `/proc/PID/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn vm_kib(pid: u32, key: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| {
            let v = l.strip_prefix(key)?.strip_prefix(':')?;
            v.split_whitespace().next()?.parse().ok()
        })
        .with_context(|| format!("no {key} in {path}"))
}

/// CPU time of several processes at once.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    /// When.
    pub at: Instant,
    /// This process (the load generator).
    pub generator: Duration,
    /// The service, when it is ours.
    pub service: Option<Duration>,
    /// The database, when it is ours and running.
    pub database: Option<Duration>,
}

impl CpuSample {
    /// Samples now.
    pub fn take(service: Option<u32>, database: Option<u32>) -> CpuSample {
        CpuSample {
            at: Instant::now(),
            generator: cpu_time(None).unwrap_or_default(),
            service: service.and_then(|p| cpu_time(Some(p)).ok()),
            database: database.and_then(|p| cpu_time(Some(p)).ok()),
        }
    }

    /// Percent of one core used by each between `self` and `later`:
    /// (generator, service, database).
    pub fn percent_until(&self, later: &CpuSample) -> (f64, Option<f64>, Option<f64>) {
        let wall = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let pct = |a: Duration, b: Duration| 100.0 * b.saturating_sub(a).as_secs_f64() / wall;
        (
            pct(self.generator, later.generator),
            self.service.zip(later.service).map(|(a, b)| pct(a, b)),
            self.database.zip(later.database).map(|(a, b)| pct(a, b)),
        )
    }
}

/// The path of a sibling binary of this one (`target/release/aila-api` next to
/// `target/release/aila-bench`).
pub fn sibling_binary(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let dir = me.parent().context("the benchmark binary has no folder")?;
    Ok(dir.join(name))
}

/// Builds `aila-api` in the same profile as this binary with the cargo that ran us.
pub fn build_service(manifest_dir: &Path) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(manifest_dir.join("Cargo.toml"))
        .arg("--bin")
        .arg("aila-api");
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --bin aila-api failed ({status})");
    }
    Ok(())
}
