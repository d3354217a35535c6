//! Test harness: a real MongoDB-protocol server process the test can kill, freeze and
//! restart, and the real service started in-process on port 0 against it.
//!
//! The server is FerretDB built by `scripts/build-tools.sh ferretdb` (at `.tools/bin/ferretdb`,
//! or `FERRETDB_BIN`), or a real `mongod` when `MONGOD_BIN` points at one.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::Duration;

use aila_api::config::{ConfigSources, Settings};
use aila_api::metrics::Metrics;
use aila_api::startup::Application;
use aila_testkit::ServerBinary as ServerKind;
use serde_json::{Value, json};

/// How long any awaited condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

fn server_kind() -> ServerKind {
    ServerKind::from_env().require_built()
}

/// A free TCP port on loopback, never the same twice in one test process (a port reserved
/// for a database that starts later must not be handed to another test meanwhile).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A database server process owned by the test.
pub struct Database {
    kind: ServerKind,
    port: u16,
    data: tempfile::TempDir,
    child: Option<Child>,
    frozen: bool,
}

impl Database {
    /// Starts a server on a free port with a fresh data folder, and waits until it accepts.
    pub async fn start() -> Database {
        let mut db = Database::unstarted();
        db.restart().await;
        db
    }

    /// A server that is not running yet (its port is reserved by number only).
    pub fn unstarted() -> Database {
        Database {
            kind: server_kind(),
            port: free_port(),
            data: tempfile::tempdir().unwrap(),
            child: None,
            frozen: false,
        }
    }

    /// `mongodb://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL: the server disappears at once (connections reset).
    pub fn kill(&mut self) {
        if self.frozen {
            self.thaw();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the server keeps its sockets but answers nothing (a black hole).
    pub fn freeze(&mut self) {
        if let Some(pid) = self.pid() {
            signal(pid, "STOP");
            self.frozen = true;
        }
    }

    /// SIGCONT.
    pub fn thaw(&mut self) {
        if let Some(pid) = self.pid() {
            signal(pid, "CONT");
            self.frozen = false;
        }
    }

    /// Starts (again) on the same port and data, and waits until it accepts connections.
    pub async fn restart(&mut self) {
        self.kill();
        let child = self
            .kind
            .spawn_quiet(self.port, self.data.path())
            .expect("the database server binary could not be started");
        self.child = Some(child);
        let port = self.port;
        wait_until("the database to accept connections", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        // The port answering must be our process, not another one that took the port.
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!(
                "the database server exited at start ({status}); is port {port} taken by another process?"
            );
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        self.kill();
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// Polls `cond` every 20 ms until it holds; fails the test after [`DEADLINE`].
pub async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {DEADLINE:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Settings for a test service: port 0, fast detection, export off, a fixed JWT secret.
pub fn test_settings(mongo_url: &str, overrides: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = [
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        (
            "DB_NAME",
            &format!("aila_test_{}", uuid::Uuid::new_v4().simple()),
        ),
        ("JWT_SECRET", "test-secret-for-the-harness"),
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
        // Every test talks from loopback and registers and logs in freely: the rate limits
        // are off unless a test sets them (tests/api/rate_limits.rs).
        ("RATE_LIMIT_LOGIN_PER_ADDRESS", "off"),
        ("RATE_LIMIT_LOGIN_PER_ACCOUNT", "off"),
        ("RATE_LIMIT_REGISTER_PER_ADDRESS", "off"),
        ("RATE_LIMIT_PREVIEW_SESSION_PER_ADDRESS", "off"),
        ("RATE_LIMIT_PREVIEW_WRITE_PER_ADDRESS", "off"),
        ("RATE_LIMIT_PREVIEW_WRITE_PER_SESSION", "off"),
        ("RATE_LIMIT_INVITE_PER_ADDRESS", "off"),
        ("RATE_LIMIT_INVITE_PER_ACCOUNT", "off"),
        ("RATE_LIMIT_CONTRIBUTION_PER_ADDRESS", "off"),
        ("RATE_LIMIT_CONTRIBUTION_PER_ACCOUNT", "off"),
        ("RATE_LIMIT_VERIFY_RESEND_PER_ADDRESS", "off"),
        ("RATE_LIMIT_VERIFY_RESEND_PER_ACCOUNT", "off"),
        ("RATE_LIMIT_PASSWORD_RESET_PER_ADDRESS", "off"),
        ("RATE_LIMIT_PASSWORD_RESET_PER_ACCOUNT", "off"),
        // Tests register users concurrently on a shared, loaded machine: bcrypt slots may
        // take longer than production's 2 s to come free (tests/api/bounded.rs sets its own).
        ("HASH_QUEUE_TIMEOUT_MS", "30000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.insert("MONGO_URL".into(), mongo_url.into());
    for (k, v) in overrides {
        env.insert((*k).into(), (*v).into());
    }
    let nowhere = tempfile::tempdir().unwrap();
    let sources = ConfigSources {
        config_dir: nowhere.path().join("config"),
        dotenv_path: nowhere.path().join(".env"),
        env,
    };
    Settings::load(&sources).expect("test settings are valid")
}

/// The service running in-process, and an HTTP client for it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The HTTP client.
    pub http: reqwest::Client,
    /// The application (for shutdown and for reaching the gateway).
    pub app: Option<Application>,
    /// The database name.
    pub db_name: String,
}

/// The `/metrics` exposition of `app`.
pub async fn metrics_text(app: &TestApp) -> String {
    reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Starts the service against `mongo_url` with the test settings.
pub async fn spawn_app(mongo_url: &str) -> TestApp {
    spawn_app_with(mongo_url, &[]).await
}

/// Starts the service with extra settings.
pub async fn spawn_app_with(mongo_url: &str, overrides: &[(&str, &str)]) -> TestApp {
    let settings = test_settings(mongo_url, overrides);
    let db_name = settings.mongo.db_name.clone();
    let app = Application::start(settings, Metrics::new(), tracing::Span::none())
        .await
        .expect("the service starts");
    TestApp {
        address: format!("http://{}", app.address()),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        app: Some(app),
        db_name,
    }
}

/// A response: status, headers, JSON body (Null when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// `body[key]` as str.
    pub fn str(&self, key: &str) -> &str {
        self.body[key]
            .as_str()
            .unwrap_or_else(|| panic!("no string `{key}` in {}", self.body))
    }
    /// The `detail` of an error.
    pub fn detail(&self) -> &str {
        self.str("detail")
    }
}

impl TestApp {
    /// The application.
    pub fn app(&self) -> &Application {
        self.app.as_ref().expect("the app is running")
    }

    /// Sends a request; `token` adds `Authorization: Bearer`.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}{}", self.address, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the service answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// GET.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request("GET", path, None, token).await
    }
    /// POST JSON.
    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> Reply {
        self.request("POST", path, Some(body), token).await
    }
    /// PUT JSON (or no body).
    pub async fn put(&self, path: &str, body: Option<Value>, token: Option<&str>) -> Reply {
        self.request("PUT", path, body, token).await
    }
    /// DELETE.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.request("DELETE", path, None, token).await
    }

    /// Waits until `/readiness` answers 200.
    pub async fn wait_ready(&self) {
        let url = format!("{}/readiness", self.address);
        let http = self.http.clone();
        wait_until("readiness 200", || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.get(&url)
                    .send()
                    .await
                    .map(|r| r.status().as_u16() == 200)
                    .unwrap_or(false)
            }
        })
        .await;
    }

    /// Waits until `/readiness` answers 503.
    pub async fn wait_not_ready(&self) {
        let url = format!("{}/readiness", self.address);
        let http = self.http.clone();
        wait_until("readiness 503", || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.get(&url)
                    .send()
                    .await
                    .map(|r| r.status().as_u16() == 503)
                    .unwrap_or(false)
            }
        })
        .await;
    }

    /// Registers a user and returns (token, user JSON).
    pub async fn register(&self, email: &str) -> (String, Value) {
        let r = self
            .post(
                "/api/auth/register",
                json!({"email": email, "password": "Password123!", "first_name": "Ada", "last_name": "Lovelace", "gdpr_consent": true}),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "register {email}: {:?}", r.body);
        (r.str("access_token").to_string(), r.body["user"].clone())
    }

    /// Stops the service (readiness 503, drain, stop).
    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await.unwrap();
        }
    }
}

/// A replica set for the tests: by default the stand-in of `aila-testkit` (three members
/// answering `hello` in front of one local database process, which the test can take down
/// one by one or make step down); a real replica set when `MONGO_REPLSET_URL` names one
/// (`mongodb://h1,h2,h3/?replicaSet=rs0`), on which only what needs no process control runs.
pub enum ReplicaSetDb {
    /// The stand-in and the server behind it.
    StandIn {
        /// The three members.
        set: aila_testkit::ReplicaSet,
        /// The one server process behind them.
        server: Database,
    },
    /// A real replica set, from `MONGO_REPLSET_URL`.
    Real(String),
}

impl ReplicaSetDb {
    /// A real set from `MONGO_REPLSET_URL`, or the stand-in over a fresh server process.
    pub async fn start() -> ReplicaSetDb {
        if let Some(url) = std::env::var("MONGO_REPLSET_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            return ReplicaSetDb::Real(url);
        }
        let server = Database::start().await;
        let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], server.port()));
        let set = aila_testkit::ReplicaSet::start(upstream, "rs0")
            .await
            .expect("the replica-set stand-in opens three loopback ports");
        ReplicaSetDb::StandIn { set, server }
    }

    /// The URL the service uses.
    pub fn url(&self) -> String {
        match self {
            ReplicaSetDb::StandIn { set, .. } => set.url(),
            ReplicaSetDb::Real(url) => url.clone(),
        }
    }

    /// The stand-in, for the tests that take members down or make them step down (`None`
    /// on a real set: such a test says so and does nothing).
    pub fn stand_in(&mut self) -> Option<(&aila_testkit::ReplicaSet, &mut Database)> {
        match self {
            ReplicaSetDb::StandIn { set, server } => Some((set, server)),
            ReplicaSetDb::Real(_) => {
                eprintln!(
                    "MONGO_REPLSET_URL names a real replica set: this test needs the stand-in's member control and does nothing"
                );
                None
            }
        }
    }
}
