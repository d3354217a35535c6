//! The real `aila-api` binary as a subprocess: its own empty working folder (no `config/`,
//! no `.env`), the harness's fast detection settings, its logs collected line by line, and
//! SIGTERM to stop it (which flushes its traces).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{DEADLINE, free_port, wait_until};
use crate::exposition::Exposition;

/// A running service process.
pub struct Service {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The database name it uses.
    pub db_name: String,
    http: reqwest::Client,
    logs: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    _cwd: tempfile::TempDir,
}

/// A response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    /// How long the request took.
    pub took: Duration,
}

impl Reply {
    /// `body[key]` as str.
    pub fn str(&self, key: &str) -> &str {
        self.body[key]
            .as_str()
            .unwrap_or_else(|| panic!("no string `{key}` in {}", self.body))
    }
}

fn collect(
    stream: impl Read + Send + 'static,
    logs: Arc<Mutex<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut logs = logs.lock().unwrap();
            logs.push_str(&line);
            logs.push('\n');
        }
    })
}

impl Service {
    /// Starts the binary against `mongo_url` with the harness's fast settings plus `env`, and
    /// waits until its port answers.
    pub async fn start(mongo_url: &str, env: &[(&str, &str)]) -> Service {
        let port = free_port();
        let db_name = format!("aila_obs_{}", uuid::Uuid::new_v4().simple());
        let cwd = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_aila-api"));
        cmd.current_dir(cwd.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("MONGO_URL", mongo_url)
            .env("DB_NAME", &db_name)
            .env("JWT_SECRET", "observability-test-secret")
            .env("MONGO_HEARTBEAT_FREQ_MS", "500")
            .env("MONGO_PING_INTERVAL_MS", "500")
            .env("MONGO_PING_TIMEOUT_MS", "1000")
            .env("MONGO_OPERATION_TIMEOUT_MS", "2000")
            .env("MONGO_SERVER_SELECTION_TIMEOUT_MS", "2000")
            .env("MONGO_CONNECT_TIMEOUT_MS", "2000")
            .env("MONGO_MIN_POOL_SIZE", "0")
            .env("RECONNECT_MAX_MS", "500")
            .env("BREAKER_OPEN_MAX_MS", "1000")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the aila-api binary starts");
        let logs = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), logs.clone()),
            collect(child.stderr.take().unwrap(), logs.clone()),
        ];
        let service = Service {
            child: Some(child),
            address: format!("http://127.0.0.1:{port}"),
            db_name,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            logs,
            readers,
            _cwd: cwd,
        };
        let (http, url) = (service.http.clone(), service.url("/health"));
        wait_until("the service's port to answer", || {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(&url).send().await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
        service
    }

    /// `address` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Everything the process logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Sends a request with optional bearer token, JSON body and extra headers.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let started = Instant::now();
        let resp = req.send().await.expect("the service answers");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let took = started.elapsed();
        Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            took,
        }
    }

    /// GET.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send("GET", path, None, token, &[]).await
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> Reply {
        self.send("POST", path, Some(body), token, &[]).await
    }

    /// Registers a user; returns the token.
    pub async fn register(&self, email: &str) -> String {
        let r = self
            .post(
                "/api/auth/register",
                json!({"email": email, "password": "Password123!", "first_name": "Ada",
                       "last_name": "Lovelace", "gdpr_consent": true}),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "register {email}: {}", r.body);
        r.str("access_token").to_string()
    }

    /// The parsed `/metrics`.
    pub async fn metrics(&self) -> Exposition {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("/metrics answers")
            .text()
            .await
            .unwrap();
        Exposition::parse(&text)
    }

    async fn wait_readiness(&self, want: u16) {
        let (http, url) = (self.http.clone(), self.url("/readiness"));
        wait_until(&format!("readiness {want}"), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == want)
            }
        })
        .await;
    }

    /// Waits until `/readiness` answers 200.
    pub async fn wait_ready(&self) {
        self.wait_readiness(200).await;
    }

    /// Waits until `/readiness` answers 503.
    pub async fn wait_not_ready(&self) {
        self.wait_readiness(503).await;
    }

    /// SIGTERM, then waits (bounded) for the exit; returns the status and how long it took.
    pub async fn terminate(&mut self) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("the service is running");
        let started = Instant::now();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        let exit = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                panic!(
                    "the service did not exit within {DEADLINE:?} of SIGTERM; logs:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let took = started.elapsed();
        // The pipes close with the process: the readers finish with every line.
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        (exit, took)
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
