//! The local cluster the tests run on: `scripts/cluster.sh up|down` in a folder of its own
//! under `target/`, kubectl with that cluster's kubeconfig, and the few questions the
//! cases ask it (pods, restarts, the autoscaler, evictions).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::Command;

/// Namespace of the service (deploy/kubernetes applied through deploy/local-cluster).
pub const APP_NS: &str = "aila";
/// Namespace of the database (deploy/local-cluster/ferretdb).
pub const DB_NS: &str = "aila-db";
/// Label selector of the service's pods.
pub const APP_PODS: &str = "app.kubernetes.io/name=aila-api";

/// A running cluster (or one being started).
pub struct Cluster {
    repo: PathBuf,
    dir: PathBuf,
    kubectl: PathBuf,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Why this machine cannot run a kubelet, if it cannot (the only reason to skip).
pub fn cannot_run_kubelet() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some("not Linux".into());
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective_uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("unknown");
    if effective_uid != "0" {
        return Some(
            "not root: containerd and the kubelet need root (cgroups, mounts, network namespaces, iptables)"
                .into(),
        );
    }
    if !Path::new("/sys/fs/cgroup").is_dir() {
        return Some("no cgroup file system at /sys/fs/cgroup".into());
    }
    None
}

impl Cluster {
    /// The cluster of the tests: `target/cluster-test`.
    pub fn new() -> Cluster {
        let repo = repo();
        Cluster {
            dir: repo.join("target/cluster-test"),
            kubectl: repo.join(".tools/k8s/bin/kubectl"),
            repo,
        }
    }

    fn script(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(self.repo.join("scripts/cluster.sh"));
        c.args(args)
            .env("CLUSTER_DIR", &self.dir)
            .env("AILA_API_BIN", env!("CARGO_BIN_EXE_aila-api"));
        c
    }

    /// `cluster.sh up --without-database` (the database comes later, in a case). Returns
    /// the seconds the script itself reported for the start (binaries already built).
    pub fn up(&self) -> Result<Duration, String> {
        let started = Instant::now();
        let out = self
            .script(&["up", "--without-database"])
            .output()
            .map_err(|e| format!("cannot run scripts/cluster.sh: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprint!("{stderr}");
        if !out.status.success() {
            return Err(format!(
                "scripts/cluster.sh up failed ({}); logs in {}/logs",
                out.status,
                self.dir.display()
            ));
        }
        // "cluster: up in 41s: ..."
        let reported = stderr
            .lines()
            .find_map(|l| l.strip_prefix("cluster: up in "))
            .and_then(|l| l.split('s').next())
            .and_then(|s| s.parse::<u64>().ok())
            .map(Duration::from_secs)
            .unwrap_or_else(|| started.elapsed());
        Ok(reported)
    }

    /// Keeps the logs in `target/cluster-test-logs`, then `cluster.sh down`.
    pub fn down(&self) {
        let keep = self.repo.join("target/cluster-test-logs");
        let _ = std::fs::remove_dir_all(&keep);
        let _ = std::process::Command::new("cp")
            .arg("-r")
            .arg(self.dir.join("logs"))
            .arg(&keep)
            .status();
        let _ = std::process::Command::new("cp")
            .arg("-r")
            .arg(self.dir.join("pod-logs"))
            .arg(keep.join("pods"))
            .status();
        match self.script(&["down"]).status() {
            Ok(s) if s.success() => {}
            other => eprintln!("cluster: down failed ({other:?}); run scripts/cluster.sh down"),
        }
    }

    /// kubectl with the cluster's kubeconfig; stdout, or stderr as the error.
    pub async fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(self.dir.join("kubeconfig"))
            .args(args)
            .output()
            .await
            .map_err(|e| format!("kubectl: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// kubectl ... -o json, parsed.
    pub async fn json(&self, args: &[&str]) -> Result<Value, String> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let text = self.kubectl(&all).await?;
        serde_json::from_str(&text).map_err(|e| format!("kubectl {}: {e}", args.join(" ")))
    }

    /// The Service's address, `http://CLUSTER-IP:8001`.
    pub async fn service_url(&self) -> Result<String, String> {
        let ip = self
            .kubectl(&[
                "-n",
                APP_NS,
                "get",
                "service",
                "aila-api",
                "-o",
                "jsonpath={.spec.clusterIP}",
            ])
            .await?;
        Ok(format!("http://{}:8001", ip.trim()))
    }

    /// The service's pods (not yet deleted).
    pub async fn app_pods(&self) -> Result<Vec<Pod>, String> {
        let list = self
            .json(&["-n", APP_NS, "get", "pods", "-l", APP_PODS])
            .await?;
        Ok(list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(Pod::from_json)
            .collect())
    }

    /// Container restarts summed over the service's pods that exist now.
    pub async fn app_restarts(&self) -> Result<u64, String> {
        let list = self
            .json(&["-n", APP_NS, "get", "pods", "-l", APP_PODS])
            .await?;
        Ok(list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|p| Pod::from_json(p).restarts)
            .sum())
    }

    /// The autoscaler's status.
    pub async fn hpa(&self) -> Result<Value, String> {
        self.json(&["-n", APP_NS, "get", "hpa", "aila-api"]).await
    }

    /// Asks the API to evict a pod (what `kubectl drain` does). Ok(true) when evicted,
    /// Ok(false) when the disruption budget refused (429).
    pub async fn evict(&self, pod: &str) -> Result<bool, String> {
        let body = serde_json::json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod, "namespace": APP_NS},
        });
        let file = self.dir.join(format!("eviction-{pod}.json"));
        std::fs::write(&file, body.to_string()).map_err(|e| e.to_string())?;
        let path = format!("/api/v1/namespaces/{APP_NS}/pods/{pod}/eviction");
        let file = file.to_string_lossy().into_owned();
        match self.kubectl(&["create", "--raw", &path, "-f", &file]).await {
            Ok(_) => Ok(true),
            Err(e) if e.contains("disruption budget") || e.contains("TooManyRequests") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The log lines of a pod's container (current instance).
    pub async fn logs(&self, pod: &str) -> Result<String, String> {
        self.kubectl(&["-n", APP_NS, "logs", pod]).await
    }

    /// The repository (for `kubectl apply -k`).
    pub fn repo_path(&self, relative: &str) -> String {
        self.repo.join(relative).to_string_lossy().into_owned()
    }
}

/// What the cases need to know about a pod.
#[derive(Debug, Clone)]
pub struct Pod {
    /// Name.
    pub name: String,
    /// `Running`, `Pending`, ...
    pub phase: String,
    /// The container has passed its startup probe.
    pub started: bool,
    /// The Ready condition.
    pub ready: bool,
    /// Container restarts.
    pub restarts: u64,
}

impl Pod {
    fn from_json(p: &Value) -> Pod {
        let status = &p["status"];
        let container = &status["containerStatuses"][0];
        Pod {
            name: p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            phase: status["phase"].as_str().unwrap_or_default().to_string(),
            started: container["started"].as_bool().unwrap_or(false),
            ready: status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True"),
            restarts: container["restartCount"].as_u64().unwrap_or(0),
        }
    }
}

/// Polls `check` every 250 ms until it gives a value, or fails after `limit` with the last
/// thing it said.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, String>>,
{
    let deadline = Instant::now() + limit;
    let mut last = String::from("no answer yet");
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = e,
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "timed out after {limit:?} waiting for {what} ({last})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
