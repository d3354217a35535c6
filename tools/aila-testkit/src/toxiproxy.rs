//! Toxiproxy (built by `scripts/build-tools.sh toxiproxy`): a TCP proxy that puts network
//! faults between the service and its database. [`Server`] runs `toxiproxy-server` as a
//! child process on a loopback port; [`Client`] speaks its HTTP API (proxies, toxics);
//! [`Toxic`] builds the faults the tools use: latency, timeout (blackhole), reset_peer,
//! bandwidth and slicer.
//!
//! Everything listens on 127.0.0.1: the client refuses a proxy that would listen elsewhere.
//! The client is blocking (plain HTTP/1.0 over one short-lived connection per call, a few
//! milliseconds on loopback); async callers wrap it in `spawn_blocking`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How long one API call may take before the client gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the server may take to answer its API after it is started.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// The `toxiproxy-server` binary: `TOXIPROXY_BIN`, else `.tools/bin/toxiproxy-server` of the
/// workspace. Panics with the one command to run when it is missing.
pub fn server_binary() -> PathBuf {
    crate::workspace::tool_binary(
        "TOXIPROXY_BIN",
        "toxiproxy-server",
        "toxiproxy",
        "Toxiproxy",
    )
}

/// Which direction of a connection a toxic acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// Client to server (the service's requests to the database).
    Upstream,
    /// Server to client (the database's answers).
    Downstream,
}

impl Stream {
    /// `upstream` or `downstream`, also the suffix of the toxic names the tools use.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// One toxic, as the API reads and writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Toxic {
    /// Unique within its proxy.
    pub name: String,
    /// `latency`, `timeout`, `reset_peer`, `bandwidth`, `slicer`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Direction.
    pub stream: Stream,
    /// Share of connections affected (0..=1).
    pub toxicity: f32,
    /// The type's own settings.
    pub attributes: Value,
}

impl Toxic {
    fn new(kind: &str, stream: Stream, attributes: Value) -> Toxic {
        Toxic {
            name: format!("{kind}_{}", stream.as_str()),
            kind: kind.into(),
            stream,
            toxicity: 1.0,
            attributes,
        }
    }

    /// Delays every chunk of data by `delay` (no jitter).
    pub fn latency(stream: Stream, delay: Duration) -> Toxic {
        Toxic::new(
            "latency",
            stream,
            json!({ "latency": delay.as_millis() as u64, "jitter": 0 }),
        )
    }

    /// A blackhole: connections are accepted and stay open, no data gets through, until the
    /// toxic is removed (`timeout` 0 never closes them).
    pub fn blackhole(stream: Stream) -> Toxic {
        Toxic::new("timeout", stream, json!({ "timeout": 0 }))
    }

    /// Every connection is reset (TCP RST) as soon as data flows.
    pub fn reset_peer(stream: Stream) -> Toxic {
        Toxic::new("reset_peer", stream, json!({ "timeout": 0 }))
    }

    /// At most `kb_per_s` kilobytes a second.
    pub fn bandwidth(stream: Stream, kb_per_s: u64) -> Toxic {
        Toxic::new("bandwidth", stream, json!({ "rate": kb_per_s }))
    }

    /// Data cut into pieces of about `average_bytes` (± half), `delay` apart.
    pub fn slicer(stream: Stream, average_bytes: u64, delay: Duration) -> Toxic {
        Toxic::new(
            "slicer",
            stream,
            json!({
                "average_size": average_bytes.max(1),
                "size_variation": average_bytes / 2,
                "delay": delay.as_micros() as u64,
            }),
        )
    }
}

/// One proxy, as the API describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proxy {
    /// Its name.
    pub name: String,
    /// Where it listens (the actual port when it was created with port 0).
    pub listen: String,
    /// Where it forwards to.
    pub upstream: String,
    /// Whether it accepts connections.
    pub enabled: bool,
    /// The toxics in force.
    #[serde(default)]
    pub toxics: Vec<Toxic>,
}

impl Proxy {
    /// The port it listens on.
    pub fn port(&self) -> Result<u16, String> {
        self.listen
            .parse::<SocketAddr>()
            .map(|a| a.port())
            .map_err(|e| format!("proxy {} listens on {:?}: {e}", self.name, self.listen))
    }
}

/// A client of the Toxiproxy HTTP API on `127.0.0.1:port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    port: u16,
}

impl Client {
    /// The API on `127.0.0.1:port`.
    pub fn new(port: u16) -> Client {
        Client { port }
    }

    /// `http://127.0.0.1:PORT`, for messages.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One call: `method path` with an optional JSON body; the answer's status and body.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String), String> {
        let body = body.map(Value::to_string);
        let server = "toxiproxy-server";
        crate::http10::call(
            self.port,
            method,
            path,
            body.as_deref(),
            CALL_TIMEOUT,
            server,
        )
    }

    /// A call that must answer 2xx with JSON of type `T`.
    fn json<T: for<'de> Deserialize<'de>>(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, String> {
        let (status, text) = self.call(method, path, body)?;
        if !(200..300).contains(&status) {
            return Err(format!(
                "{method} {}{path} answered {status}: {}",
                self.url(),
                text.trim()
            ));
        }
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "{method} {}{path}: unexpected answer ({e}): {text}",
                self.url()
            )
        })
    }

    /// A call that must answer 2xx (any body).
    fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(), String> {
        let (status, text) = self.call(method, path, body)?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!(
                "{method} {}{path} answered {status}: {}",
                self.url(),
                text.trim()
            ))
        }
    }

    /// The server's version (`2.12.0`): also the "is it up" call.
    pub fn version(&self) -> Result<String, String> {
        let (status, text) = self.call("GET", "/version", None)?;
        if status != 200 {
            return Err(format!("GET {}/version answered {status}", self.url()));
        }
        // 2.12 answers {"version": "..."}; older servers a bare string.
        Ok(serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["version"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string()))
    }

    /// Creates proxy `name` listening on `listen` (a loopback address; port 0 picks a free
    /// one, see [`Proxy::port`]) and forwarding to `upstream`.
    pub fn create_proxy(&self, name: &str, listen: &str, upstream: &str) -> Result<Proxy, String> {
        let addr: SocketAddr = listen
            .parse()
            .map_err(|e| format!("proxy listen address {listen:?}: {e}"))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "proxy listen address {listen}: only loopback addresses (127.0.0.1:PORT) are allowed"
            ));
        }
        self.json(
            "POST",
            "/proxies",
            Some(&json!({ "name": name, "listen": listen, "upstream": upstream, "enabled": true })),
        )
    }

    /// The proxy named `name`, with its toxics.
    pub fn proxy(&self, name: &str) -> Result<Proxy, String> {
        self.json("GET", &format!("/proxies/{name}"), None)
    }

    /// Enables or disables a proxy. Disabling closes every connection and refuses new ones.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<Proxy, String> {
        self.json(
            "POST",
            &format!("/proxies/{name}"),
            Some(&json!({ "enabled": enabled })),
        )
    }

    /// Puts `toxic` on proxy `proxy`.
    pub fn add_toxic(&self, proxy: &str, toxic: &Toxic) -> Result<Toxic, String> {
        let body = serde_json::to_value(toxic).map_err(|e| e.to_string())?;
        self.json("POST", &format!("/proxies/{proxy}/toxics"), Some(&body))
    }

    /// Removes toxic `name` from proxy `proxy`.
    pub fn remove_toxic(&self, proxy: &str, name: &str) -> Result<(), String> {
        self.ok("DELETE", &format!("/proxies/{proxy}/toxics/{name}"), None)
    }

    /// Removes every toxic of every proxy and enables them all.
    pub fn reset(&self) -> Result<(), String> {
        self.ok("POST", "/reset", None)
    }
}

/// A `toxiproxy-server` child process on a free loopback port; killed when dropped.
pub struct Server {
    child: Child,
    client: Client,
}

impl Server {
    /// The command that serves the API on `127.0.0.1:port` (warnings and errors logged only).
    pub fn command(binary: &Path, port: u16) -> Command {
        let mut c = Command::new(binary);
        c.arg("-host")
            .arg("127.0.0.1")
            .arg("-port")
            .arg(port.to_string())
            .env("LOG_LEVEL", "warn");
        c
    }

    /// Starts `binary` on a free port (output appended to `log`, or discarded), lets `prepare`
    /// adjust the command (a parent-death signal, say), and waits until the API answers.
    pub fn start(
        binary: &Path,
        log: Option<&Path>,
        prepare: impl FnOnce(&mut Command),
    ) -> Result<Server, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free loopback port: {e}"))?;
        let mut cmd = Server::command(binary, port);
        let (out, err) = crate::workspace::output_to(log)?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        prepare(&mut cmd);
        let child = cmd.spawn().map_err(|e| {
            format!(
                "cannot start {} ({e}): run `scripts/build-tools.sh toxiproxy`",
                binary.display()
            )
        })?;
        let mut server = Server {
            child,
            client: Client::new(port),
        };
        let until = Instant::now() + START_DEADLINE;
        loop {
            if server.client.version().is_ok() {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!(
                    "toxiproxy-server exited at start ({status}); is port {port} taken?"
                ));
            }
            if Instant::now() > until {
                return Err(format!(
                    "toxiproxy-server did not answer on {} within {START_DEADLINE:?}",
                    server.client.url()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its API.
    pub fn client(&self) -> Client {
        self.client
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    /// An echo server on a free loopback port (one thread per connection).
    fn echo_server() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 || conn.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    /// Sends `msg` through `port` and reads it back: the round trip or the error.
    fn round_trip(port: u16, msg: &[u8], timeout: Duration) -> Result<Duration, std::io::Error> {
        let started = Instant::now();
        let mut c = TcpStream::connect(("127.0.0.1", port))?;
        c.set_read_timeout(Some(timeout))?;
        c.write_all(msg)?;
        let mut got = vec![0u8; msg.len()];
        c.read_exact(&mut got)?;
        assert_eq!(got, msg);
        Ok(started.elapsed())
    }

    #[test]
    fn toxics_serialise_as_the_api_reads_them() {
        let t = Toxic::latency(Stream::Downstream, Duration::from_millis(200));
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            json!({"name": "latency_downstream", "type": "latency", "stream": "downstream",
                   "toxicity": 1.0, "attributes": {"latency": 200, "jitter": 0}})
        );
        assert_eq!(
            Toxic::blackhole(Stream::Upstream).attributes,
            json!({"timeout": 0})
        );
        assert_eq!(Toxic::reset_peer(Stream::Upstream).kind, "reset_peer");
        assert_eq!(
            Toxic::bandwidth(Stream::Downstream, 64).attributes,
            json!({"rate": 64})
        );
        assert_eq!(
            Toxic::slicer(Stream::Downstream, 64, Duration::from_millis(1)).attributes,
            json!({"average_size": 64, "size_variation": 32, "delay": 1000})
        );
    }

    #[test]
    fn a_proxy_listens_on_loopback_only() {
        let err = Client::new(1)
            .create_proxy("db", "0.0.0.0:0", "127.0.0.1:2")
            .unwrap_err();
        assert!(err.contains("only loopback"), "{err}");
    }

    /// The real server: a proxy in front of an echo server, each fault felt by a client.
    #[test]
    fn latency_blackhole_and_reset_are_felt_through_the_proxy() {
        let server = Server::start(&server_binary(), None, |_| {}).unwrap();
        let api = server.client();
        assert!(
            api.version().unwrap().starts_with("2."),
            "{:?}",
            api.version()
        );
        let upstream = format!("127.0.0.1:{}", echo_server());
        let proxy = api.create_proxy("echo", "127.0.0.1:0", &upstream).unwrap();
        let port = proxy.port().unwrap();
        assert_ne!(port, 0);
        let patient = Duration::from_secs(10);
        round_trip(port, b"hello", patient).expect("a clean proxy forwards");

        // +150 ms each way: a round trip takes at least 300 ms.
        for stream in [Stream::Upstream, Stream::Downstream] {
            api.add_toxic("echo", &Toxic::latency(stream, Duration::from_millis(150)))
                .unwrap();
        }
        assert_eq!(api.proxy("echo").unwrap().toxics.len(), 2);
        let slow = round_trip(port, b"slow", patient).unwrap();
        assert!(slow >= Duration::from_millis(300), "{slow:?}");
        api.reset().unwrap();

        // Blackhole: the connection opens, nothing comes back.
        api.add_toxic("echo", &Toxic::blackhole(Stream::Upstream))
            .unwrap();
        let err = round_trip(port, b"void", Duration::from_millis(500)).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{err:?}"
        );
        api.remove_toxic("echo", "timeout_upstream").unwrap();
        round_trip(port, b"back", patient).expect("forwards again once removed");

        // Reset: the connection is torn down.
        api.add_toxic("echo", &Toxic::reset_peer(Stream::Upstream))
            .unwrap();
        let err = round_trip(port, b"reset", patient).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
            ),
            "{err:?}"
        );
        api.reset().unwrap();
        round_trip(port, b"again", patient).expect("forwards after a reset");
    }
}
