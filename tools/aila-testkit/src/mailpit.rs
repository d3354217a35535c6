//! Mailpit (built by `scripts/build-tools.sh mailpit`): a real SMTP server that keeps every
//! mail it receives and shows them through an HTTP API. [`Mailpit::start`] runs it as a
//! child process on two free loopback ports (SMTP and HTTP) and waits until both answer;
//! [`Mailpit::messages`] and [`Mailpit::message`] read the mails the way a test reads an
//! inbox; [`Mailpit::stop`] and [`Mailpit::restart`] take the mail server down and bring
//! it back on the same ports (a mail server that is down).
//!
//! SMTP accepts any user and password, over plain SMTP too (`--smtp-auth-accept-any
//! --smtp-auth-allow-insecure`): a service configured with credentials sends them as it
//! would to a real server. The HTTP client is blocking (HTTP/1.0, one short-lived
//! connection per call, as the Toxiproxy client); async callers wrap it in `spawn_blocking`.
//!
//! Mailpit keeps its mails in a SQLite file. Left to itself it makes one in the system's
//! temporary folder and deletes it only at a clean exit, which a killed server never has;
//! so each server here gets a folder of its own, emptied when it stops and removed when
//! it is dropped.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

/// How long one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long Mailpit may take to answer after it is started.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// The `mailpit` binary: `MAILPIT_BIN`, else `.tools/bin/mailpit` of the workspace. Panics
/// with the one command to run when it is missing.
pub fn binary() -> PathBuf {
    crate::workspace::tool_binary("MAILPIT_BIN", "mailpit", "mailpit", "Mailpit")
}

/// An address of a mail, as the API lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Address {
    /// Display name (may be empty).
    #[serde(rename = "Name", default)]
    pub name: String,
    /// The address.
    #[serde(rename = "Address")]
    pub address: String,
}

/// A mail in the list (no bodies).
#[derive(Debug, Clone, Deserialize)]
pub struct Summary {
    /// Mailpit's id of the mail.
    #[serde(rename = "ID")]
    pub id: String,
    /// Sender.
    #[serde(rename = "From")]
    pub from: Option<Address>,
    /// Recipients.
    #[serde(rename = "To", default)]
    pub to: Vec<Address>,
    /// Subject.
    #[serde(rename = "Subject", default)]
    pub subject: String,
}

/// One mail with its bodies.
#[derive(Debug, Clone, Deserialize)]
pub struct Mail {
    /// Mailpit's id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Sender.
    #[serde(rename = "From")]
    pub from: Option<Address>,
    /// Recipients.
    #[serde(rename = "To", default)]
    pub to: Vec<Address>,
    /// Subject.
    #[serde(rename = "Subject", default)]
    pub subject: String,
    /// The plain-text part.
    #[serde(rename = "Text", default)]
    pub text: String,
    /// The HTML part.
    #[serde(rename = "HTML", default)]
    pub html: String,
}

impl Mail {
    /// The first link of the plain-text part that starts with `prefix` (a link is a run of
    /// characters up to white space).
    pub fn link(&self, prefix: &str) -> Option<String> {
        let start = self.text.find(prefix)?;
        let rest = &self.text[start..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        Some(rest[..end].to_string())
    }
}

/// A `mailpit` child process on free loopback ports; killed when dropped, its database
/// removed with it.
pub struct Mailpit {
    binary: PathBuf,
    data: tempfile::TempDir,
    log: Option<PathBuf>,
    child: Option<Child>,
    smtp_port: u16,
    http_port: u16,
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

impl Mailpit {
    /// Starts `binary` on two free ports (output appended to `log`, or discarded) and waits
    /// until its HTTP API and its SMTP port answer.
    pub fn start(binary: &Path, log: Option<&Path>) -> Result<Mailpit, String> {
        let data = tempfile::Builder::new()
            .prefix("aila-mailpit-")
            .tempdir()
            .map_err(|e| format!("cannot make a folder for mailpit's database: {e}"))?;
        let mut m = Mailpit {
            binary: binary.to_path_buf(),
            data,
            log: log.map(Path::to_path_buf),
            child: None,
            smtp_port: free_port()?,
            http_port: free_port()?,
        };
        m.spawn()?;
        Ok(m)
    }

    /// The command line: SMTP and HTTP on loopback, any credentials accepted, messages kept
    /// in the SQLite file `database`.
    pub fn command(binary: &Path, database: &Path, smtp_port: u16, http_port: u16) -> Command {
        let mut c = Command::new(binary);
        c.arg("--database")
            .arg(database)
            .arg("--smtp")
            .arg(format!("127.0.0.1:{smtp_port}"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{http_port}"))
            .arg("--smtp-auth-accept-any")
            .arg("--smtp-auth-allow-insecure")
            .arg("--smtp-disable-rdns")
            .arg("--disable-version-check")
            .arg("--quiet");
        c
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Mailpit::command(
            &self.binary,
            &self.database(),
            self.smtp_port,
            self.http_port,
        );
        let (out, err) = crate::workspace::output_to(self.log.as_deref())?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().map_err(|e| {
            format!(
                "cannot start {} ({e}): run `scripts/build-tools.sh mailpit`",
                self.binary.display()
            )
        })?;
        self.child = Some(child);
        let until = Instant::now() + START_DEADLINE;
        loop {
            let smtp_up =
                TcpStream::connect_timeout(&self.smtp_addr(), Duration::from_millis(200)).is_ok();
            if smtp_up && self.call("GET", "/readyz").is_ok_and(|(s, _)| s == 200) {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(format!(
                    "mailpit exited at start ({status}); are ports {} and {} free?",
                    self.smtp_port, self.http_port
                ));
            }
            if Instant::now() > until {
                return Err(format!(
                    "mailpit did not answer on {} within {START_DEADLINE:?}",
                    self.http_url()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server: its SMTP port refuses connections until [`Mailpit::restart`].
    /// The mails it held are gone with it (its database files are deleted).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut file = self.database().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }

    /// The SQLite file Mailpit keeps its mails in, inside this server's own folder.
    fn database(&self) -> PathBuf {
        self.data.path().join("mailpit.db")
    }

    /// Starts the server again on the same ports.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.spawn()
    }

    fn smtp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.smtp_port))
    }

    /// The SMTP port.
    pub fn smtp_port(&self) -> u16 {
        self.smtp_port
    }

    /// The HTTP port (API and web UI).
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// `smtp://127.0.0.1:PORT` (no TLS), for `SMTP_URL`.
    pub fn smtp_url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.smtp_port)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn call(&self, method: &str, path: &str) -> Result<(u16, String), String> {
        crate::http10::call(self.http_port, method, path, None, CALL_TIMEOUT, "mailpit")
    }

    fn json<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, String> {
        let (status, text) = self.call("GET", path)?;
        if status != 200 {
            return Err(format!(
                "GET {}{path} answered {status}: {text}",
                self.http_url()
            ));
        }
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "GET {}{path}: unexpected answer ({e}): {text}",
                self.http_url()
            )
        })
    }

    /// Every mail held, newest first (at most 1000).
    pub fn messages(&self) -> Result<Vec<Summary>, String> {
        let v: Value = self.json("/api/v1/messages?limit=1000")?;
        serde_json::from_value(v["messages"].clone()).map_err(|e| e.to_string())
    }

    /// The mails addressed to `address`, newest first.
    pub fn messages_to(&self, address: &str) -> Result<Vec<Summary>, String> {
        Ok(self
            .messages()?
            .into_iter()
            .filter(|m| m.to.iter().any(|a| a.address.eq_ignore_ascii_case(address)))
            .collect())
    }

    /// One mail with its bodies.
    pub fn message(&self, id: &str) -> Result<Mail, String> {
        self.json(&format!("/api/v1/message/{id}"))
    }

    /// Deletes every mail held.
    pub fn clear(&self) -> Result<(), String> {
        let (status, text) = self.call("DELETE", "/api/v1/messages")?;
        if status == 200 {
            Ok(())
        } else {
            Err(format!("DELETE /api/v1/messages answered {status}: {text}"))
        }
    }
}

impl Drop for Mailpit {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn links_are_read_from_the_text_part() {
        let m = Mail {
            id: "x".into(),
            from: None,
            to: vec![],
            subject: String::new(),
            text: "Bonjour,\n\nhttp://h:1/verify-email?token=abc\n\nfin".into(),
            html: String::new(),
        };
        assert_eq!(
            m.link("http://h:1/verify-email").as_deref(),
            Some("http://h:1/verify-email?token=abc")
        );
        assert_eq!(m.link("http://other"), None);
    }

    /// The real server: a mail sent over SMTP by hand shows in the API; a stopped server
    /// refuses connections, a restarted one answers on the same port.
    #[test]
    fn a_mail_sent_over_smtp_is_read_through_the_api() {
        let mut mp = Mailpit::start(&binary(), None).unwrap();
        let mut smtp = TcpStream::connect(mp.smtp_addr()).unwrap();
        smtp.set_read_timeout(Some(CALL_TIMEOUT)).unwrap();
        let mut buf = [0u8; 512];
        let mut expect = |smtp: &mut TcpStream, code: &str| {
            let n = smtp.read(&mut buf).unwrap();
            let line = String::from_utf8_lossy(&buf[..n]).to_string();
            assert!(line.starts_with(code), "expected {code}: {line}");
        };
        expect(&mut smtp, "220");
        for (cmd, code) in [
            ("EHLO test\r\n", "250"),
            ("MAIL FROM:<a@example.org>\r\n", "250"),
            ("RCPT TO:<b@example.org>\r\n", "250"),
            ("DATA\r\n", "354"),
            (
                "Subject: Bonjour\r\nFrom: a@example.org\r\nTo: b@example.org\r\n\r\nhttp://x/y?token=1\r\n.\r\n",
                "250",
            ),
        ] {
            smtp.write_all(cmd.as_bytes()).unwrap();
            expect(&mut smtp, code);
        }
        let _ = smtp.write_all(b"QUIT\r\n");
        let until = Instant::now() + START_DEADLINE;
        let list = loop {
            let list = mp.messages_to("b@example.org").unwrap();
            if !list.is_empty() || Instant::now() > until {
                break list;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0].subject, "Bonjour");
        let mail = mp.message(&list[0].id).unwrap();
        assert_eq!(
            mail.link("http://x/").as_deref(),
            Some("http://x/y?token=1")
        );
        mp.clear().unwrap();
        assert!(mp.messages().unwrap().is_empty());

        mp.stop();
        assert!(TcpStream::connect_timeout(&mp.smtp_addr(), Duration::from_millis(500)).is_err());
        mp.restart().unwrap();
        assert!(TcpStream::connect(mp.smtp_addr()).is_ok());
    }

    /// The files Mailpit `pid` holds open whose name ends in `.db` (its SQLite database).
    #[cfg(target_os = "linux")]
    fn open_databases(pid: u32) -> Vec<PathBuf> {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| {
                fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                    .filter(|p| p.extension().is_some_and(|e| e == "db"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A server the tests kill (every test does: `stop`, `restart`, drop) leaves no
    /// database behind. Mailpit's own temporary database is deleted only at a clean exit,
    /// and a file was left in the temporary folder for every server a test run started.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_killed_server_leaves_no_database_behind() {
        let mut mp = Mailpit::start(&binary(), None).unwrap();
        let pid = mp.pid().unwrap();
        let first = open_databases(pid);
        assert_eq!(
            first.len(),
            1,
            "mailpit {pid} should hold one database open: {first:?}"
        );
        assert!(first[0].exists());

        mp.stop();
        assert!(
            !first[0].exists(),
            "{} outlived its server",
            first[0].display()
        );
        mp.restart().unwrap();
        let second = open_databases(mp.pid().unwrap());
        assert_eq!(second.len(), 1, "{second:?}");

        drop(mp);
        assert!(
            !second[0].exists(),
            "{} outlived its server",
            second[0].display()
        );
        let folder = second[0].parent().unwrap();
        assert!(!folder.exists(), "{} outlived its server", folder.display());
    }
}
