//! deploy/kubernetes: probe paths the service really serves (asked of the real routes, the
//! service started in-process with its database unreachable), every probe 200 without the
//! database (readiness is `/serving`, not `/readiness`: a probe on the shared database
//! would empty the Service during its outage) and answered well within the probe
//! timeouts; the container port is PORT; secrets from a Secret; graceful termination
//! longer than preStop plus the drain; Service, PodDisruptionBudget and autoscaler point at
//! the Deployment.

use std::time::{Duration, Instant};

use serde_yaml_ng::Value;

use crate::common::{free_port, spawn_app};
use crate::{at, is_setting, read, setting_default, text, yaml};

fn deployment() -> Value {
    yaml("deploy/kubernetes/deployment.yaml")
}

fn container(d: &Value) -> &Value {
    let containers = at(d, &["spec", "template", "spec", "containers"])
        .as_sequence()
        .unwrap();
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn env(c: &Value) -> Vec<(String, Value)> {
    at(c, &["env"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| (text(at(e, &["name"])), e.clone()))
        .collect()
}

fn env_value(c: &Value, name: &str) -> Option<String> {
    env(c)
        .into_iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, e)| e.get("value").map(text))
}

/// The container port a probe or Service port refers to (by name or number).
fn resolve_port(c: &Value, port: &Value) -> u16 {
    let ports = at(c, &["ports"]).as_sequence().unwrap();
    match port {
        Value::Number(n) => n.as_u64().unwrap() as u16,
        Value::String(name) => ports
            .iter()
            .find(|p| p.get("name").map(text).as_deref() == Some(name.as_str()))
            .map(|p| text(at(p, &["containerPort"])).parse().unwrap())
            .unwrap_or_else(|| panic!("no container port named {name}")),
        other => panic!("bad port {other:?}"),
    }
}

struct Probe {
    kind: &'static str,
    path: String,
    port: u16,
    timeout_s: u64,
}

fn probes(c: &Value) -> Vec<Probe> {
    ["startupProbe", "livenessProbe", "readinessProbe"]
        .into_iter()
        .map(|kind| {
            let p = at(c, &[kind]);
            Probe {
                kind,
                path: text(at(p, &["httpGet", "path"])),
                port: resolve_port(c, at(p, &["httpGet", "port"])),
                timeout_s: text(at(p, &["timeoutSeconds"])).parse().unwrap(),
            }
        })
        .collect()
}

#[test]
fn the_container_listens_on_port_and_probes_use_it() {
    let d = deployment();
    let c = container(&d);
    let port = env_value(c, "PORT").unwrap_or_else(|| setting_default("PORT").to_string());
    let container_port = resolve_port(c, &Value::String("http".into()));
    assert_eq!(
        container_port.to_string(),
        port,
        "containerPort must equal PORT"
    );
    for p in probes(c) {
        assert_eq!(p.port, container_port, "{} probes port {}", p.kind, p.port);
    }
}

#[test]
fn liveness_and_startup_use_health_and_readiness_uses_serving() {
    let d = deployment();
    let paths: Vec<(&str, String)> = probes(container(&d))
        .into_iter()
        .map(|p| (p.kind, p.path))
        .collect();
    assert_eq!(
        paths,
        [
            ("startupProbe", "/health".to_string()),
            ("livenessProbe", "/health".to_string()),
            ("readinessProbe", "/serving".to_string()),
        ]
    );
}

#[tokio::test]
async fn every_probe_answers_200_without_the_database_far_within_its_timeout() {
    let d = deployment();
    let probes = probes(container(&d));
    // The database is unreachable: the worst case for a probe that would touch it.
    let app = spawn_app(&format!("mongodb://127.0.0.1:{}", free_port())).await;
    for p in &probes {
        let started = Instant::now();
        let r = app.get(&p.path, None).await;
        let took = started.elapsed();
        // No probe may follow the database: liveness would restart every pod during an
        // outage, readiness would take them all out of the Service (connection refused
        // instead of the service's 503 + Retry-After).
        assert_eq!(
            r.status, 200,
            "{} GET {} answered {} without the database",
            p.kind, p.path, r.status
        );
        let margin = Duration::from_secs(p.timeout_s) / 10;
        assert!(
            took < margin,
            "{} took {took:?}, more than a tenth of its timeout",
            p.kind
        );
    }
    // A path that does not exist is 404 here, and /readiness (the database) 503, so the
    // check above means something.
    assert_eq!(app.get("/healthz", None).await.status, 404);
    assert_eq!(app.get("/readiness", None).await.status, 503);
}

#[test]
fn settings_come_from_known_variables_and_secrets_from_a_secret() {
    let d = deployment();
    let c = container(&d);
    for (name, e) in env(c) {
        assert!(
            is_setting(&name),
            "{name} is not a setting of src/config.rs (typo?)"
        );
        let secret = e.get("valueFrom").and_then(|v| v.get("secretKeyRef"));
        if name == "MONGO_URL" || name == "JWT_SECRET" || name == "SMTP_URL" {
            let s = secret.unwrap_or_else(|| panic!("{name} must come from a Secret"));
            assert_eq!(text(at(s, &["key"])), name);
            assert_eq!(text(at(s, &["name"])), "aila-api");
        }
    }
    assert_eq!(env_value(c, "APP_ENV").as_deref(), Some("production"));
    for name in ["MONGO_URL", "JWT_SECRET"] {
        assert!(env(c).iter().any(|(n, _)| n == name), "{name} missing");
    }
    // The Secret template has the same keys (it is not among kustomize's resources: see
    // service_budget_and_autoscaler_select_the_deployment).
    let secret = yaml("deploy/kubernetes/secret.example.yaml");
    assert_eq!(text(at(&secret, &["metadata", "name"])), "aila-api");
    for key in ["MONGO_URL", "JWT_SECRET", "SMTP_URL"] {
        at(&secret, &["stringData", key]);
    }
    // Mail is optional: a Secret without SMTP_URL still starts the pods (mail off).
    let smtp = env(c)
        .into_iter()
        .find(|(n, _)| n == "SMTP_URL")
        .expect("SMTP_URL from the Secret");
    assert_eq!(
        smtp.1["valueFrom"]["secretKeyRef"]["optional"].as_bool(),
        Some(true)
    );
}

#[test]
fn termination_outlasts_pre_stop_and_the_drain() {
    let d = deployment();
    let spec = at(&d, &["spec", "template", "spec"]);
    let grace: u64 = text(at(spec, &["terminationGracePeriodSeconds"]))
        .parse()
        .unwrap();
    let c = container(&d);
    let command: Vec<String> = at(c, &["lifecycle", "preStop", "exec", "command"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert_eq!(command[0], "sleep", "{command:?}");
    let pre_stop: u64 = command[1].parse().unwrap();
    assert!(
        pre_stop >= 3,
        "preStop {pre_stop}s: endpoints need a few seconds to be removed"
    );
    let drain_ms: u64 = env_value(c, "HTTP_SHUTDOWN_TIMEOUT_MS")
        .unwrap_or_else(|| setting_default("HTTP_SHUTDOWN_TIMEOUT_MS").to_string())
        .parse()
        .unwrap();
    // Plus a few seconds to flush traces and exit.
    assert!(
        grace * 1000 >= pre_stop * 1000 + drain_ms + 5_000,
        "terminationGracePeriodSeconds {grace} < preStop {pre_stop} s + drain {drain_ms} ms + 5 s"
    );
}

#[test]
fn resources_and_a_hardened_container() {
    let d = deployment();
    let c = container(&d);
    for path in [
        ["resources", "requests", "cpu"],
        ["resources", "requests", "memory"],
        ["resources", "limits", "memory"],
    ] {
        at(c, &path);
    }
    assert_eq!(
        text(at(c, &["securityContext", "allowPrivilegeEscalation"])),
        "false"
    );
    let pod = at(&d, &["spec", "template", "spec"]);
    assert_eq!(text(at(pod, &["securityContext", "runAsNonRoot"])), "true");
    // The image's user (Dockerfile USER 10001).
    assert_eq!(text(at(pod, &["securityContext", "runAsUser"])), "10001");
    assert!(read("Dockerfile").contains("USER 10001:10001"));
}

#[test]
fn service_budget_and_autoscaler_select_the_deployment() {
    let d = deployment();
    let labels = at(&d, &["spec", "template", "metadata", "labels"]);
    let selector = at(&d, &["spec", "selector", "matchLabels"]);
    let matches = |sel: &Value| {
        sel.as_mapping()
            .unwrap()
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    };
    assert!(matches(selector));

    let svc = yaml("deploy/kubernetes/service.yaml");
    assert!(matches(at(&svc, &["spec", "selector"])));
    let port = &at(&svc, &["spec", "ports"]).as_sequence().unwrap()[0];
    let c = container(&d);
    assert_eq!(
        resolve_port(c, at(port, &["targetPort"])),
        resolve_port(c, &Value::String("http".into()))
    );

    let pdb = yaml("deploy/kubernetes/pdb.yaml");
    assert_eq!(text(at(&pdb, &["apiVersion"])), "policy/v1");
    assert!(matches(at(&pdb, &["spec", "selector", "matchLabels"])));

    let hpa = yaml("deploy/kubernetes/hpa.yaml");
    assert_eq!(text(at(&hpa, &["apiVersion"])), "autoscaling/v2");
    let target = at(&hpa, &["spec", "scaleTargetRef"]);
    assert_eq!(text(at(target, &["kind"])), "Deployment");
    assert_eq!(
        text(at(target, &["name"])),
        text(at(&d, &["metadata", "name"]))
    );
    let min: u64 = text(at(&hpa, &["spec", "minReplicas"])).parse().unwrap();
    let pdb_min: u64 = text(at(&pdb, &["spec", "minAvailable"])).parse().unwrap();
    assert!(
        min > pdb_min,
        "minReplicas {min} must exceed the budget's minAvailable {pdb_min}, or no node can be drained"
    );

    let kustomization = yaml("deploy/kubernetes/kustomization.yaml");
    let resources: Vec<String> = at(&kustomization, &["resources"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert_eq!(
        resources,
        ["deployment.yaml", "service.yaml", "pdb.yaml", "hpa.yaml"]
    );
}
