//! The chaos experiment in CI: `aila-chaos` with the local back-end (its own FerretDB, or
//! `mongod` from `MONGOD_BIN`, and the real `aila-api` binary) through two cycles of kill,
//! freeze and restart under a mixed load, about a minute. Fails on any lost write, any
//! `/health` answer other than 200, or a service exit, as the tool's own checks do; the test
//! reads the JSON record too, so a tool that wrongly passed would still be caught. The
//! service binary is the workspace's own build (`cargo build --workspace`, as
//! `scripts/test.sh` does).

use std::process::Command;

use aila_testkit::ServerBinary;
use aila_testkit::workspace::built_binary;
use serde_json::Value;

fn database_args() -> Vec<String> {
    match ServerBinary::from_env().require_built() {
        ServerBinary::Mongod(m) => vec!["--mongod".into(), m.display().to_string()],
        ServerBinary::FerretDb(f) => vec!["--ferretdb".into(), f.display().to_string()],
    }
}

#[test]
fn a_minute_of_kills_freezes_and_restarts_loses_nothing() {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_aila-chaos"))
        .args(database_args())
        .arg("--service-bin")
        .arg(built_binary("aila-api"))
        .args(["--backend", "local", "--cycles", "2"])
        .args([
            "--warmup",
            "5s",
            "--down",
            "3s",
            "--gap",
            "6s",
            "--duration",
            "56s",
        ])
        // Modest on purpose: a loaded 2-core machine, a debug build where each bcrypt
        // (registration, login) costs seconds of CPU.
        .args(["--rate", "25", "--users", "5", "--auth-interval", "30s"])
        // Generous but meaningful: the service notices a kill in about a second and a
        // freeze in about two (ping deadline 1 s, heartbeat 500 ms, test settings).
        .args(["--max-detection", "8s", "--max-recovery", "15s"])
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("aila-chaos runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
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
    let a = &record["analysis"];
    assert_eq!(a["passed"], true, "{context}");

    // Six faults, each put in place and undone.
    let faults = record["faults"].as_array().unwrap();
    let kinds: Vec<&str> = faults
        .iter()
        .map(|f| f["spec"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["kill", "freeze", "restart", "kill", "freeze", "restart"]
    );
    assert!(
        faults
            .iter()
            .all(|f| f["restored_at_ms"].is_number() && f["error"].is_null()),
        "{context}"
    );

    // No acknowledged write lost, none stored twice, and enough of them to mean something.
    let w = &a["writes"];
    assert_eq!(w["lost"].as_array().unwrap().len(), 0, "{context}");
    assert_eq!(w["unverified"], 0, "{context}");
    assert_eq!(w["duplicated"].as_array().unwrap().len(), 0, "{context}");
    assert!(w["acknowledged"].as_u64().unwrap() >= 100, "{context}");

    // /health answered 200 to every probe, about ten a second.
    let p = &a["probes"];
    let health_total = p["health_total"].as_u64().unwrap();
    assert!(
        health_total >= 250,
        "{health_total} /health probes:\n{context}"
    );
    assert_eq!(p["health_ok"].as_u64().unwrap(), health_total, "{context}");

    // The service never exited, and shut down cleanly on SIGTERM at the end.
    assert!(
        record["service"]["exited_during_run"].is_null(),
        "{context}"
    );
    assert_eq!(record["service"]["clean_shutdown"], true, "{context}");

    // The faults were felt: readiness went 503, and the API answered 503 during outages.
    for f in a["faults"].as_array().unwrap() {
        if f["kind"] != "restart" {
            assert!(
                f["detection_ms"].is_number(),
                "fault not detected: {f}\n{context}"
            );
        }
        assert!(f["recovery_ms"].is_number(), "no recovery: {f}\n{context}");
    }
    assert!(
        a["fast_503_share"]["total"].as_u64().unwrap() > 0,
        "{context}"
    );

    // The outputs a person reads exist.
    let svg = std::fs::read_to_string(out.path().join("timeline.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains(">PASS<"));
    assert!(stdout.contains("result: PASS"), "{stdout}");
}
