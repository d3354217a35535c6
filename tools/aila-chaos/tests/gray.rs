//! Gray faults in CI: `aila-chaos` with the local back-end and Toxiproxy between the real
//! `aila-api` and its database (FerretDB, or `mongod` from `MONGOD_BIN`), through a
//! schedule of +200 ms latency each way, a blackhole (connections open, nothing answers)
//! and all connections reset, under a modest mixed load: about 40 s.
//!
//! The targets checked: no acknowledged write lost; `/health` 200 to every probe; a slow
//! database is not an outage (no request failed, `/readiness` 200 and the breaker closed
//! throughout the latency); the blackhole and the resets turn `/readiness` 503 within 3 s
//! and the service recovers once they are lifted. The test reads the JSON record itself,
//! so a tool that wrongly passed would still be caught.

use std::process::Command;

use aila_testkit::ServerBinary;
use aila_testkit::toxiproxy::server_binary;
use aila_testkit::workspace::built_binary;
use serde_json::Value;

fn database_args() -> Vec<String> {
    match ServerBinary::from_env().require_built() {
        ServerBinary::Mongod(m) => vec!["--mongod".into(), m.display().to_string()],
        ServerBinary::FerretDb(f) => vec!["--ferretdb".into(), f.display().to_string()],
    }
}

#[test]
fn latency_is_served_blackhole_and_resets_are_detected_nothing_is_lost() {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_aila-chaos"))
        .args(database_args())
        .arg("--toxiproxy")
        .arg(server_binary())
        .arg("--service-bin")
        .arg(built_binary("aila-api"))
        .args(["--backend", "local"])
        .args([
            "--schedule",
            "latency:200ms@5s+8s,timeout@17s+4s,reset_peer@27s+4s",
            "--duration",
            "40s",
        ])
        // Modest on purpose: a loaded 2-core machine, a debug build where each bcrypt
        // (registration, login) costs seconds of CPU.
        .args(["--rate", "15", "--users", "4", "--auth-interval", "30s"])
        // The target: a silent database is noticed within 3 s.
        .args(["--max-detection", "3s", "--max-recovery", "15s"])
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

    // Three faults, each put in place through Toxiproxy and lifted.
    let faults = record["faults"].as_array().unwrap();
    let kinds: Vec<&str> = faults
        .iter()
        .map(|f| f["spec"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["latency", "timeout", "reset_peer"]);
    for f in faults {
        assert!(
            f["restored_at_ms"].is_number() && f["error"].is_null(),
            "{f}\n{context}"
        );
        assert!(
            f["actions"][0]
                .as_str()
                .is_some_and(|a| a.starts_with("toxiproxy: add")),
            "{f}"
        );
    }

    // No acknowledged write lost, none stored twice, and enough of them to mean something.
    let w = &a["writes"];
    assert_eq!(w["lost"].as_array().unwrap().len(), 0, "{context}");
    assert_eq!(w["unverified"], 0, "{context}");
    assert_eq!(w["duplicated"].as_array().unwrap().len(), 0, "{context}");
    assert!(w["acknowledged"].as_u64().unwrap() >= 50, "{context}");

    // /health answered 200 to every probe, about ten a second.
    let p = &a["probes"];
    let health_total = p["health_total"].as_u64().unwrap();
    assert!(health_total >= 150, "{health_total} probes:\n{context}");
    assert_eq!(p["health_ok"].as_u64().unwrap(), health_total, "{context}");

    // +200 ms each way: every call served, readiness 200, breaker closed, and the calls
    // were felt to be slower.
    let reports = a["faults"].as_array().unwrap();
    let latency = &reports[0];
    assert!(
        latency["outage_statuses"]["total"].as_u64().unwrap() >= 20,
        "{latency}"
    );
    assert_eq!(latency["failed_requests"], 0, "{latency}\n{context}");
    assert_eq!(latency["readiness_not_200"], 0, "{latency}\n{context}");
    assert_eq!(latency["breaker_not_closed"], 0, "{latency}\n{context}");
    let degraded = a["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == "degraded")
        .unwrap();
    assert!(
        degraded["p50_ms"].as_f64().unwrap() >= 400.0,
        "a round trip through +200 ms each way takes 400 ms at least: {degraded}"
    );

    // Blackhole and resets: noticed within 3 s, served again after.
    for f in &reports[1..] {
        let detected = f["detection_ms"].as_f64();
        assert!(
            detected.is_some_and(|d| d <= 3_000.0),
            "not detected within 3 s: {f}\n{context}"
        );
        assert!(f["recovery_ms"].is_number(), "no recovery: {f}\n{context}");
    }

    // The service never exited, and shut down cleanly on SIGTERM at the end.
    assert!(
        record["service"]["exited_during_run"].is_null(),
        "{context}"
    );
    assert_eq!(record["service"]["clean_shutdown"], true, "{context}");

    let svg = std::fs::read_to_string(out.path().join("timeline.svg")).unwrap();
    assert!(svg.contains("class=\"degraded\"") && svg.contains(">PASS<"));
}
