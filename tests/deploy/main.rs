//! The deployment files, checked without Docker or Kubernetes (neither runs in CI): the
//! compose file, the Dockerfile, `.env.example` and the Kubernetes manifests must name the
//! services, ports, binaries, settings and probe paths the service and `aila-chaos` really
//! have. Probe paths are checked against the real routes of the service started in-process.
//! The workspace itself: the service's dependency tree holds none of the tools' needs.

#[path = "../common/mod.rs"]
mod common;

mod compose;
mod dockerfile;
mod env_example;
mod healthcheck;
mod kubernetes;
mod workspace;

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

/// A file of the repository.
pub fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Reads a repository file.
pub fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_file(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Parses a YAML file of the repository.
pub fn yaml(relative: &str) -> Value {
    serde_yaml_ng::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// `value[a][b]...`, panicking with the path when missing.
pub fn at<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    let mut v = value;
    for key in path {
        v = v
            .get(*key)
            .unwrap_or_else(|| panic!("missing {} in {value:?}", path.join(".")));
    }
    v
}

/// A scalar as text (YAML numbers and strings alike).
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// The service's settings: environment variable and default.
pub fn setting_default(env: &str) -> &'static str {
    aila_api::config::SETTINGS
        .iter()
        .find(|s| s.env == env)
        .unwrap_or_else(|| panic!("{env} is not a setting of src/config.rs"))
        .default
}

/// Whether `env` is a setting the service reads.
pub fn is_setting(env: &str) -> bool {
    aila_api::config::SETTINGS.iter().any(|s| s.env == env)
}
