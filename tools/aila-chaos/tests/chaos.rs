//! The chaos experiment in CI: `aila-chaos` with the local back-end (its own FerretDB, or
//! `mongod` from `MONGOD_BIN`, and the real `aila-api` binary) through two cycles of kill,
//! freeze and restart under a mixed load, about a minute. Fails on any lost write, any
//! `/health` answer other than 200, or a service exit, as the tool's own checks do; the test
//! reads the JSON record too, so a tool that wrongly passed would still be caught. The
//! service binary is the workspace's own build (`cargo build --workspace`, as
//! `scripts/test.sh` does).

mod support;

use support::run_chaos;

#[test]
fn a_minute_of_kills_freezes_and_restarts_loses_nothing() {
    let args: Vec<String> = [
        "--cycles",
        "2",
        "--warmup",
        "5s",
        "--down",
        "3s",
        "--gap",
        "6s",
        "--duration",
        "56s",
        // Modest on purpose: a loaded 2-core machine, a debug build where each bcrypt
        // (registration, login) costs seconds of CPU.
        "--rate",
        "25",
        "--users",
        "5",
        "--auth-interval",
        "30s",
        // Generous but meaningful: the service notices a kill in about a second and a
        // freeze in about two (ping deadline 1 s, heartbeat 500 ms, test settings).
        "--max-detection",
        "8s",
        "--max-recovery",
        "15s",
    ]
    .map(String::from)
    .to_vec();
    let run = run_chaos(&args);
    let (record, context) = (&run.record, &run.context);
    let a = &record["analysis"];

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
    // Blind retries with an Idempotency-Key by default; the replays are counted.
    assert_eq!(record["settings"]["idempotency_keys"], true, "{context}");
    assert!(w["replays"].is_u64(), "{context}");
    assert!(
        run.stdout.contains("answered by a replay"),
        "{}",
        run.stdout
    );

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
    let svg = std::fs::read_to_string(run.out.path().join("timeline.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains(">PASS<"));
    assert!(run.stdout.contains("result: PASS"), "{}", run.stdout);
}
