//! What the chaos tests share: run `aila-chaos` with the local back-end against the
//! workspace's own `aila-api` build and the local database (FerretDB, or `mongod` from
//! `MONGOD_BIN`), fail with the tool's output and the service log's tail when it fails,
//! and hand back its JSON record for the test's own checks.
// Each test file includes this module and uses part of it.
#![allow(dead_code)]

use std::process::Command;

use aila_testkit::ServerBinary;
use aila_testkit::workspace::built_binary;
use serde_json::Value;

/// The finished run: its JSON record, its output folder, and its output for assertion
/// messages.
pub struct Run {
    /// The `--out` folder (record.json, timeline.svg, logs), removed when the run is dropped.
    pub out: tempfile::TempDir,
    /// `record.json`.
    pub record: Value,
    /// What the tool printed (its summary and checks).
    pub stdout: String,
    /// stdout, stderr and the last 40 lines of the service's log.
    pub context: String,
}

/// Runs `aila-chaos --backend local` with `args` added (schedule, load, limits) and asserts
/// that the tool itself passed.
pub fn run_chaos(args: &[String]) -> Run {
    let out = tempfile::tempdir().unwrap();
    let database = match ServerBinary::from_env().require_built() {
        ServerBinary::Mongod(m) => ["--mongod".to_string(), m.display().to_string()],
        ServerBinary::FerretDb(f) => ["--ferretdb".to_string(), f.display().to_string()],
    };
    let output = Command::new(env!("CARGO_BIN_EXE_aila-chaos"))
        .args(database)
        .arg("--service-bin")
        .arg(built_binary("aila-api"))
        .args(["--backend", "local"])
        .args(args)
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("aila-chaos runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let service_log = std::fs::read_to_string(out.path().join("service.log")).unwrap_or_default();
    let tail: String = {
        let lines: Vec<&str> = service_log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    let context =
        format!("--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- service.log (tail)\n{tail}");
    assert!(
        output.status.success(),
        "aila-chaos failed ({}):\n{context}",
        output.status
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("record.json")).unwrap()).unwrap();
    assert_eq!(record["analysis"]["passed"], true, "{context}");
    Run {
        out,
        record,
        stdout,
        context,
    }
}
