//! The local database server of the development tools (`aila-bench`, `aila-chaos`) and the
//! test harness: FerretDB (built by `scripts/build-tools.sh ferretdb`) or a real `mongod`,
//! a child process on a loopback port with a data folder of its own. Which binary (from
//! `MONGOD_BIN`, `FERRETDB_BIN` or the workspace's `.tools/bin/ferretdb`) and its command
//! line live here; each caller owns the process (output, waiting, kill, freeze) its own way.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Which database server binary runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerBinary {
    /// FerretDB (MongoDB wire protocol on SQLite), as built by `scripts/build-tools.sh`.
    FerretDb(PathBuf),
    /// A real `mongod`.
    Mongod(PathBuf),
}

impl ServerBinary {
    /// The server the tests and tools use by default: a real `mongod` when `MONGOD_BIN`
    /// names one, otherwise FerretDB from `FERRETDB_BIN` or `.tools/bin/ferretdb` of the
    /// workspace. The FerretDB binary may not exist yet: see [`Self::require_built`].
    pub fn from_env() -> ServerBinary {
        if let Some(bin) = std::env::var_os("MONGOD_BIN").filter(|b| !b.is_empty()) {
            return ServerBinary::Mongod(PathBuf::from(bin));
        }
        ServerBinary::FerretDb(
            std::env::var_os("FERRETDB_BIN")
                .filter(|b| !b.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| crate::workspace::root().join(".tools/bin/ferretdb")),
        )
    }

    /// Panics with the one command to run when the binary is missing.
    pub fn require_built(self) -> ServerBinary {
        match &self {
            ServerBinary::FerretDb(p) => assert!(
                p.exists(),
                "FerretDB is not built ({} missing): run `scripts/build-tools.sh ferretdb` once, or set MONGOD_BIN to a mongod binary",
                p.display()
            ),
            ServerBinary::Mongod(p) => assert!(
                p.exists(),
                "MONGOD_BIN names {}, which does not exist: point it at a mongod binary, or unset it to use FerretDB",
                p.display()
            ),
        }
        self
    }

    /// The command that serves `127.0.0.1:port` with its data in `data_dir` (logging
    /// warnings and errors only); the caller sets its output and spawns it.
    pub fn command(&self, port: u16, data_dir: &Path) -> Command {
        match self {
            ServerBinary::FerretDb(bin) => {
                let mut c = Command::new(bin);
                c.arg("-listen-addr")
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("-data-dir")
                    .arg(data_dir)
                    .arg("-log-level")
                    .arg("warn");
                c
            }
            ServerBinary::Mongod(bin) => {
                let mut c = Command::new(bin);
                c.arg("--port")
                    .arg(port.to_string())
                    .arg("--bind_ip")
                    .arg("127.0.0.1")
                    .arg("--dbpath")
                    .arg(data_dir)
                    .arg("--quiet");
                c
            }
        }
    }

    /// Starts [`Self::command`] with its output discarded.
    pub fn spawn_quiet(&self, port: u16, data_dir: &Path) -> std::io::Result<Child> {
        self.command(port, data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }

    /// `FerretDB (PATH)` or `mongod (PATH)`, for reports and errors.
    pub fn describe(&self) -> String {
        match self {
            ServerBinary::FerretDb(p) => format!("FerretDB ({})", p.display()),
            ServerBinary::Mongod(p) => format!("mongod ({})", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(c: &Command) -> Vec<String> {
        c.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn each_server_listens_on_loopback_with_its_own_data() {
        let data = Path::new("/tmp/aila-data");
        let ferret = ServerBinary::FerretDb("/opt/ferretdb".into()).command(27018, data);
        assert_eq!(ferret.get_program(), "/opt/ferretdb");
        assert_eq!(
            args(&ferret),
            [
                "-listen-addr",
                "127.0.0.1:27018",
                "-data-dir",
                "/tmp/aila-data",
                "-log-level",
                "warn"
            ]
        );
        let mongod = ServerBinary::Mongod("/usr/bin/mongod".into()).command(27019, data);
        assert_eq!(
            args(&mongod),
            [
                "--port",
                "27019",
                "--bind_ip",
                "127.0.0.1",
                "--dbpath",
                "/tmp/aila-data",
                "--quiet"
            ]
        );
        assert_eq!(
            ServerBinary::Mongod("/usr/bin/mongod".into()).describe(),
            "mongod (/usr/bin/mongod)"
        );
    }
}
