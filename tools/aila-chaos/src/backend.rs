//! The two ways to hurt the database, and the service process the tool may start itself.
//!
//! - [`LocalDatabase`]: a FerretDB (or `mongod`) process the tool starts on a free port
//!   with a scratch data folder; kill is SIGKILL, freeze is SIGSTOP/SIGCONT, restart is
//!   SIGTERM then start again on the same port and data. With gray faults in the schedule,
//!   Toxiproxy sits between the service and it ([`crate::network`]).
//! - [`Compose`]: the `mongo` service of `docker compose`: `kill -s SIGKILL` / `start`,
//!   `pause` / `unpause`, `stop` / `start`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::network::NetworkFaults;
use crate::schedule::{FaultKind, FaultSpec};

/// How long a database may take to accept connections after it is started.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// Sends `sig` (`KILL`, `STOP`, `CONT`, `TERM`) to `pid` with kill(1).
pub fn signal(pid: u32, sig: &str) -> Result<(), String> {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .map_err(|e| format!("kill -{sig} {pid}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -{sig} {pid} failed ({status})"))
    }
}

/// Makes `cmd`'s process die with the tool, even when the tool itself is killed (SIGKILL
/// from a test harness's timeout, say), so no database or service is left behind holding
/// its port.
pub fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// A free TCP port on loopback (bound and released; the caller binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits until something accepts TCP connections on `127.0.0.1:port`.
pub async fn wait_accepting(port: u16, deadline: Duration) -> Result<(), String> {
    let until = Instant::now() + deadline;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > until {
            return Err(format!(
                "nothing accepted connections on 127.0.0.1:{port} within {deadline:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub use aila_testkit::ServerBinary;

/// A database server process owned by the tool.
pub struct LocalDatabase {
    binary: ServerBinary,
    port: u16,
    data: tempfile::TempDir,
    log: PathBuf,
    child: Option<Child>,
    frozen: bool,
}

impl LocalDatabase {
    /// Starts the server on `port` (default: a free one) with a fresh data folder; `log`
    /// receives its output.
    pub async fn start(
        binary: ServerBinary,
        port: Option<u16>,
        log: &Path,
    ) -> Result<LocalDatabase, String> {
        let mut db = LocalDatabase {
            binary,
            port: port.unwrap_or_else(free_port),
            data: tempfile::tempdir().map_err(|e| format!("scratch folder: {e}"))?,
            log: log.to_path_buf(),
            child: None,
            frozen: false,
        };
        db.spawn().await?;
        Ok(db)
    }

    /// `mongodb://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }

    /// What runs, for the record.
    pub fn describe(&self) -> String {
        format!("{} on port {}", self.binary.describe(), self.port)
    }

    fn pid(&self) -> Result<u32, String> {
        self.child
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| "the database is not running".to_string())
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = self.binary.command(self.port, self.data.path());
        die_with_parent(&mut cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start the database ({}): {e}", self.describe()))?;
        self.child = Some(child);
        self.frozen = false;
        wait_accepting(self.port, START_DEADLINE).await?;
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            return Err(format!(
                "the database exited at start ({status}); is port {} taken?",
                self.port
            ));
        }
        Ok(())
    }

    /// Puts the fault in place; returns what was done.
    pub async fn inject(&mut self, kind: FaultKind) -> Result<Vec<String>, String> {
        let pid = self.pid()?;
        match kind {
            k if k.needs_proxy() || k == FaultKind::Burst => {
                Err(format!("a {k} is not done to the database process"))
            }
            FaultKind::Kill => {
                let mut child = self.child.take().expect("running");
                let killed = child.kill();
                let _ = child.wait();
                killed.map_err(|e| format!("SIGKILL {pid}: {e}"))?;
                Ok(vec![format!("kill -KILL {pid}")])
            }
            FaultKind::Freeze => {
                signal(pid, "STOP")?;
                self.frozen = true;
                Ok(vec![format!("kill -STOP {pid}")])
            }
            _ => {
                signal(pid, "TERM")?;
                let mut child = self.child.take().expect("running");
                let exited = wait_exit(&mut child, Duration::from_secs(10)).await;
                let mut done = vec![format!("kill -TERM {pid}")];
                if exited.is_none() {
                    let _ = child.kill();
                    let _ = child.wait();
                    done.push(format!("kill -KILL {pid} (no exit 10 s after SIGTERM)"));
                }
                Ok(done)
            }
        }
    }

    /// Undoes the fault: starts the server again (and waits until it accepts) or thaws it.
    pub async fn restore(&mut self, kind: FaultKind) -> Result<Vec<String>, String> {
        match kind {
            k if k.needs_proxy() || k == FaultKind::Burst => {
                Err(format!("a {k} is not done to the database process"))
            }
            FaultKind::Freeze => {
                let pid = self.pid()?;
                signal(pid, "CONT")?;
                self.frozen = false;
                Ok(vec![format!("kill -CONT {pid}")])
            }
            _ => {
                self.spawn().await?;
                Ok(vec![format!(
                    "start {} (pid {})",
                    self.describe(),
                    self.pid()?
                )])
            }
        }
    }

    /// Stops the server for good.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.frozen {
                let _ = signal(child.id(), "CONT");
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for LocalDatabase {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits up to `limit` for `child` to exit.
pub async fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `docker compose` back-end.
#[derive(Debug, Clone)]
pub struct Compose {
    /// `-f FILE`, when not the default `docker-compose.yml` of the current folder.
    pub file: Option<PathBuf>,
    /// `-p NAME`.
    pub project: Option<String>,
    /// The database service (`mongo`).
    pub service: String,
}

impl Compose {
    /// The `docker compose ...` arguments of one action.
    fn args(&self, action: &[&str]) -> Vec<String> {
        let mut args = vec!["compose".to_string()];
        if let Some(f) = &self.file {
            args.push("-f".into());
            args.push(f.display().to_string());
        }
        if let Some(p) = &self.project {
            args.push("-p".into());
            args.push(p.clone());
        }
        args.extend(action.iter().map(|a| a.to_string()));
        args.push(self.service.clone());
        args
    }

    /// The command lines that inject and undo `kind`.
    pub fn commands(&self, kind: FaultKind) -> (Vec<String>, Vec<String>) {
        let (inject, restore): (&[&str], &[&str]) = match kind {
            FaultKind::Kill => (&["kill", "-s", "SIGKILL"], &["start"]),
            FaultKind::Freeze => (&["pause"], &["unpause"]),
            FaultKind::Restart => (&["stop"], &["start"]),
            // Not compose's to do (refused before the run): the network faults need the
            // local back-end's Toxiproxy, a burst is load.
            _ => return (Vec::new(), Vec::new()),
        };
        (self.args(inject), self.args(restore))
    }

    async fn run(&self, args: Vec<String>) -> Result<Vec<String>, String> {
        let shown = format!("docker {}", args.join(" "));
        let out = tokio::process::Command::new("docker")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("{shown}: {e} (is docker installed?)"))?;
        if out.status.success() {
            Ok(vec![shown])
        } else {
            Err(format!(
                "{shown} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Puts the fault in place.
    pub async fn inject(&self, kind: FaultKind) -> Result<Vec<String>, String> {
        self.run(self.commands(kind).0).await
    }

    /// The command that asks the database whether it answers (exit 0 when it does).
    pub fn ping_command(&self) -> Vec<String> {
        let mut args = self.args(&["exec", "-T"]);
        args.extend(
            ["mongosh", "--quiet", "--eval", "db.adminCommand('ping').ok"]
                .iter()
                .map(|a| a.to_string()),
        );
        args
    }

    /// Undoes it. After a kill or a stop, `docker compose start` returns as soon as the
    /// container runs; the database is back only when it answers a ping, so wait for that.
    pub async fn restore(&self, kind: FaultKind) -> Result<Vec<String>, String> {
        let mut done = self.run(self.commands(kind).1).await?;
        if kind != FaultKind::Freeze {
            let until = Instant::now() + START_DEADLINE;
            let ping = self.ping_command();
            loop {
                if self.run(ping.clone()).await.is_ok() {
                    done.push(format!("docker {} (answered)", ping.join(" ")));
                    break;
                }
                if Instant::now() > until {
                    return Err(format!(
                        "{} does not answer a ping {START_DEADLINE:?} after docker compose start",
                        self.service
                    ));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(done)
    }
}

/// Either back-end.
pub enum Backend {
    /// Local processes: the database, and Toxiproxy in front of it when the schedule has
    /// gray faults.
    Local {
        /// The database process.
        db: LocalDatabase,
        /// Toxiproxy, when the service reaches the database through it.
        network: Option<NetworkFaults>,
    },
    /// docker compose.
    Compose(Compose),
}

impl Backend {
    /// `local` or `compose`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Local { .. } => "local",
            Backend::Compose(_) => "compose",
        }
    }

    fn network(network: &Option<NetworkFaults>) -> Result<&NetworkFaults, String> {
        network.as_ref().ok_or_else(|| {
            "gray faults need Toxiproxy between the service and the database (local back-end)"
                .to_string()
        })
    }

    /// Puts the fault in place.
    pub async fn inject(&mut self, spec: &FaultSpec) -> Result<Vec<String>, String> {
        match self {
            Backend::Local { network, .. } if spec.kind.needs_proxy() => {
                Self::network(network)?.inject(spec).await
            }
            Backend::Local { db, .. } => db.inject(spec.kind).await,
            Backend::Compose(_) if spec.kind.needs_proxy() => Self::network(&None).map(|_| vec![]),
            Backend::Compose(c) => c.inject(spec.kind).await,
        }
    }

    /// Undoes it.
    pub async fn restore(&mut self, spec: &FaultSpec) -> Result<Vec<String>, String> {
        match self {
            Backend::Local { network, .. } if spec.kind.needs_proxy() => {
                Self::network(network)?.restore(spec).await
            }
            Backend::Local { db, .. } => db.restore(spec.kind).await,
            Backend::Compose(_) if spec.kind.needs_proxy() => Self::network(&None).map(|_| vec![]),
            Backend::Compose(c) => c.restore(spec.kind).await,
        }
    }
}

/// The rate-limit settings of the service, all turned off for the load.
const RATE_LIMITS: [&str; 10] = [
    "RATE_LIMIT_LOGIN_PER_ADDRESS",
    "RATE_LIMIT_LOGIN_PER_ACCOUNT",
    "RATE_LIMIT_REGISTER_PER_ADDRESS",
    "RATE_LIMIT_PREVIEW_SESSION_PER_ADDRESS",
    "RATE_LIMIT_PREVIEW_WRITE_PER_ADDRESS",
    "RATE_LIMIT_PREVIEW_WRITE_PER_SESSION",
    "RATE_LIMIT_INVITE_PER_ADDRESS",
    "RATE_LIMIT_INVITE_PER_ACCOUNT",
    "RATE_LIMIT_CONTRIBUTION_PER_ADDRESS",
    "RATE_LIMIT_CONTRIBUTION_PER_ACCOUNT",
];

/// The service process the tool started.
pub struct ServiceProcess {
    child: Child,
    /// Its URL.
    pub url: String,
    /// Where its logs go.
    pub log: PathBuf,
    _cwd: tempfile::TempDir,
}

impl ServiceProcess {
    /// Starts `binary` on a free port with `env` (and nothing else but `PATH`), in an empty
    /// folder so no `config/` or `.env` of the current folder is read.
    pub fn start(binary: &Path, env: &[(String, String)], log: &Path) -> Result<Self, String> {
        let port = free_port();
        let cwd = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(binary);
        cmd.current_dir(cwd.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string());
        // The load comes from one address (loopback) and logs in again and again: the
        // service's rate limits would refuse most of it, so they are off unless `env` says
        // otherwise.
        for k in RATE_LIMITS {
            cmd.env(k, "off");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        die_with_parent(&mut cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start the service {}: {e}", binary.display()))?;
        Ok(ServiceProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
            _cwd: cwd,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then waits up to `drain` for it to exit (SIGKILL after that).
    pub async fn terminate(&mut self, drain: Duration) -> String {
        if let Some(status) = self.exited() {
            return format!("had already exited: {status}");
        }
        if let Err(e) = signal(self.pid(), "TERM") {
            return e;
        }
        match wait_exit(&mut self.child, drain).await {
            Some(status) => status.to_string(),
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                format!("no exit within {drain:?} of SIGTERM: killed")
            }
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_commands_name_the_service() {
        let c = Compose {
            file: None,
            project: None,
            service: "mongo".into(),
        };
        let (inject, restore) = c.commands(FaultKind::Kill);
        assert_eq!(inject.join(" "), "compose kill -s SIGKILL mongo");
        assert_eq!(restore.join(" "), "compose start mongo");
        let (inject, restore) = c.commands(FaultKind::Freeze);
        assert_eq!(
            (inject.join(" "), restore.join(" ")),
            ("compose pause mongo".into(), "compose unpause mongo".into())
        );
        let c = Compose {
            file: Some("deploy/x.yml".into()),
            project: Some("aila".into()),
            service: "db".into(),
        };
        let (inject, restore) = c.commands(FaultKind::Restart);
        assert_eq!(inject.join(" "), "compose -f deploy/x.yml -p aila stop db");
        assert_eq!(
            restore.join(" "),
            "compose -f deploy/x.yml -p aila start db"
        );
        assert_eq!(
            c.ping_command().join(" "),
            "compose -f deploy/x.yml -p aila exec -T db mongosh --quiet --eval db.adminCommand('ping').ok"
        );
    }
}
