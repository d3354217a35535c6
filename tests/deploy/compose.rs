//! docker-compose.yml: the services, ports and health checks that `aila-chaos --backend
//! compose`, the Dockerfile and the README rely on.

use std::process::Command;

use serde_yaml_ng::Value;

use crate::{at, is_setting, read, repo_file, text, yaml};

fn compose() -> Value {
    yaml("docker-compose.yml")
}

fn service<'a>(c: &'a Value, name: &str) -> &'a Value {
    at(c, &["services", name])
}

/// `"HOST:CONTAINER"` or `"IP:HOST:CONTAINER"` entries of a service's `ports`.
fn ports(svc: &Value) -> Vec<(String, String)> {
    at(svc, &["ports"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            let p = text(p);
            let parts: Vec<&str> = p.split(':').collect();
            let n = parts.len();
            assert!(n >= 2, "publish ports as HOST:CONTAINER, got {p}");
            (parts[n - 2].to_string(), parts[n - 1].to_string())
        })
        .collect()
}

fn env_of(svc: &Value) -> Vec<(String, String)> {
    at(svc, &["environment"])
        .as_mapping()
        .expect("environment as a mapping")
        .iter()
        .map(|(k, v)| (text(k), text(v)))
        .collect()
}

/// The `docker compose` commands `aila-chaos` would run, from its own `--dry-run`.
fn chaos_plan() -> String {
    let out = Command::new(aila_testkit::workspace::built_binary("aila-chaos"))
        .args(["--backend", "compose", "--dry-run", "--cycles", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_four_services_are_there() {
    let c = compose();
    let names: Vec<String> = at(&c, &["services"])
        .as_mapping()
        .unwrap()
        .keys()
        .map(text)
        .collect();
    for name in ["mongo", "api", "jaeger", "prometheus"] {
        assert!(
            names.contains(&name.to_string()),
            "{name} missing from {names:?}"
        );
    }
}

#[test]
fn the_chaos_tool_hurts_a_service_that_exists_and_reaches_the_api_where_it_is_published() {
    let c = compose();
    let plan = chaos_plan();
    let commands: Vec<&str> = plan
        .lines()
        .filter(|l| l.trim_start().starts_with("at "))
        .filter_map(|l| l.split_once("docker ").map(|(_, cmd)| cmd))
        .collect();
    assert_eq!(commands.len(), 6, "{plan}");
    for cmd in &commands {
        assert!(cmd.starts_with("compose "), "{cmd}");
        let target = cmd.split_whitespace().last().unwrap();
        assert!(
            at(&c, &["services"]).get(target).is_some(),
            "aila-chaos acts on `{target}`, which docker-compose.yml does not define"
        );
    }
    for verb in [
        "kill -s SIGKILL mongo",
        "start mongo",
        "pause mongo",
        "unpause mongo",
        "stop mongo",
    ] {
        assert!(
            commands.iter().any(|c| c.ends_with(verb)),
            "no `{verb}` in {plan}"
        );
    }
    // It waits for the database to answer through the same service.
    assert!(
        plan.contains("docker compose exec -T mongo mongosh"),
        "{plan}"
    );
    // The tool's default URL is http://localhost:8001: the api must publish 8001 there.
    assert!(plan.contains("service: http://localhost:8001"), "{plan}");
    assert!(
        ports(service(&c, "api")).contains(&("8001".into(), "8001".into())),
        "the api must publish 8001:8001"
    );
    // And the database must not come back by itself behind the tool's back.
    let restart = service(&c, "mongo")
        .get("restart")
        .map(text)
        .unwrap_or_default();
    assert!(
        restart.is_empty() || restart == "no",
        "mongo restart policy {restart:?}"
    );
}

#[test]
fn mongo_is_7_with_a_ping_healthcheck_and_a_named_volume() {
    let c = compose();
    let mongo = service(&c, "mongo");
    let image = text(at(mongo, &["image"]));
    assert!(image.starts_with("mongo:7."), "{image}");
    let test: Vec<String> = at(mongo, &["healthcheck", "test"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert!(test.iter().any(|t| t == "mongosh"), "{test:?}");
    assert!(test.iter().any(|t| t.contains("ping")), "{test:?}");
    let volumes: Vec<String> = at(mongo, &["volumes"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    let data = volumes
        .iter()
        .find(|v| v.ends_with(":/data/db"))
        .expect("a volume on /data/db");
    let name = data.split(':').next().unwrap();
    assert!(
        at(&c, &["volumes"]).get(name).is_some(),
        "{name} is not a named volume of the compose file"
    );
}

#[test]
fn jaeger_takes_otlp_and_shows_its_ui() {
    let c = compose();
    let jaeger = service(&c, "jaeger");
    // Jaeger v2, the release tools/jaeger pins (v1.75.0 = v2.12.0), listening beyond loopback.
    assert_eq!(text(at(jaeger, &["image"])), "jaegertracing/jaeger:2.12.0");
    assert!(
        read("tools/jaeger/go.mod").contains("github.com/jaegertracing/jaeger v1.75.0"),
        "tools/jaeger no longer pins v1.75.0: change the compose image with it"
    );
    assert!(env_of(jaeger).contains(&("JAEGER_LISTEN_HOST".into(), "0.0.0.0".into())));
    let published: Vec<String> = ports(jaeger).into_iter().map(|(_, c)| c).collect();
    for port in ["16686", "4317", "4318"] {
        assert!(
            published.contains(&port.to_string()),
            "{port} not published: {published:?}"
        );
    }
    // The api sends its traces there, over gRPC.
    let env = env_of(service(&c, "api"));
    let endpoint = env
        .iter()
        .find(|(k, _)| k == "OTEL_EXPORTER_OTLP_ENDPOINT")
        .unwrap();
    assert_eq!(endpoint.1, "http://jaeger:4317");
}

#[test]
fn prometheus_scrapes_the_api_metrics() {
    let c = compose();
    let prom = service(&c, "prometheus");
    assert!(text(at(prom, &["image"])).starts_with("prom/prometheus:"));
    assert!(ports(prom).iter().any(|(_, c)| c == "9090"));
    let volumes: Vec<String> = at(prom, &["volumes"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    let config = volumes
        .iter()
        .find(|v| v.contains(":/etc/prometheus/prometheus.yml"))
        .expect("prometheus.yml mounted");
    let local = config.split(':').next().unwrap().trim_start_matches("./");
    assert_eq!(local, "observability/prometheus.yml");
    let file = repo_file(local);
    assert!(file.exists(), "{} is missing", file.display());
    let scrape = read(local);
    assert!(
        scrape.contains("api:8001"),
        "prometheus.yml must scrape api:8001:\n{scrape}"
    );
    // Every rule file it names is mounted beside it (a missing bind-mount source would be
    // created as an empty folder by docker).
    let config = yaml(local);
    for rule in config
        .get("rule_files")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let name = text(rule);
        let mount = format!("./observability/{name}:/etc/prometheus/{name}:ro");
        assert!(
            volumes.contains(&mount),
            "{mount} missing from the prometheus volumes"
        );
        assert!(
            repo_file(&format!("observability/{name}")).exists(),
            "observability/{name}"
        );
    }
}

#[test]
fn the_api_is_built_here_configured_by_known_variables_and_health_checked_on_health() {
    let c = compose();
    let api = service(&c, "api");
    assert_eq!(text(at(api, &["build", "dockerfile"])), "Dockerfile");
    assert_eq!(text(at(api, &["build", "context"])), ".");
    let env = env_of(api);
    for (k, _) in &env {
        assert!(
            is_setting(k),
            "{k} is not a setting of src/config.rs (typo?)"
        );
    }
    let get = |k: &str| env.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.clone());
    assert_eq!(get("PORT").as_deref(), Some("8001"));
    assert_eq!(get("MONGO_URL").as_deref(), Some("mongodb://mongo:27017"));
    let test: Vec<String> = at(api, &["healthcheck", "test"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert_eq!(test, ["CMD", "/usr/local/bin/aila-healthcheck"]);
    // The api must not wait for a healthy database: it starts without one.
    if let Some(dep) = api.get("depends_on").and_then(|d| d.get("mongo")) {
        assert_ne!(text(at(dep, &["condition"])), "service_healthy");
    }
    // Longer than the drain time.
    let grace = text(at(api, &["stop_grace_period"]));
    let grace_s: u64 = grace.trim_end_matches('s').parse().unwrap();
    let drain_ms: u64 = crate::setting_default("HTTP_SHUTDOWN_TIMEOUT_MS")
        .parse()
        .unwrap();
    assert!(
        grace_s * 1000 > drain_ms,
        "stop_grace_period {grace} <= drain {drain_ms} ms"
    );
}

/// The override of scripts/compose-chaos.sh swaps images and nothing else: each of its
/// services exists in the base file, sets only `image`, `pull_policy` and the Dockerfile's
/// base-image build arguments, and names an image scripts/local-images.sh builds.
#[test]
fn the_local_override_only_swaps_images_for_ones_built_here() {
    let base = compose();
    let local = yaml("deploy/local-images/compose.local.yml");
    let script = read("scripts/local-images.sh");
    let dockerfile = read("Dockerfile");
    let services = at(&local, &["services"]).as_mapping().unwrap();
    assert_eq!(
        services.len(),
        at(&base, &["services"]).as_mapping().unwrap().len(),
        "every service of docker-compose.yml has its local image"
    );
    for (name, svc) in services {
        let name = text(name);
        let base_svc = service(&base, &name);
        for (key, value) in svc.as_mapping().unwrap() {
            match text(key).as_str() {
                "image" => {
                    let image = text(value);
                    if base_svc.get("build").is_none() {
                        assert!(
                            script.contains(&image),
                            "{image} ({name}) is not built by scripts/local-images.sh"
                        );
                    }
                }
                "pull_policy" => assert_eq!(text(value), "never"),
                "build" => {
                    let args = at(value, &["args"]).as_mapping().unwrap();
                    assert_eq!(
                        value.as_mapping().unwrap().len(),
                        1,
                        "{name}: only build.args"
                    );
                    for (arg, image) in args {
                        assert!(
                            dockerfile.contains(&format!("ARG {}=", text(arg))),
                            "{} is not an ARG of the Dockerfile",
                            text(arg)
                        );
                        let image = text(image);
                        let repository = image.split(':').next().unwrap();
                        assert!(script.contains(repository), "{image} is not built here");
                    }
                }
                other => panic!("{name}.{other}: the override changes more than the image"),
            }
        }
    }
    // The API's image keeps its name: the override builds the same `aila-api:local`.
    assert!(
        local
            .get("services")
            .unwrap()
            .get("api")
            .unwrap()
            .get("image")
            .is_none()
    );
    assert!(script.contains("-t aila-api:local"));
}

#[test]
fn the_readme_section_says_how_the_compose_path_is_exercised() {
    let doc = read("README.md");
    for needle in [
        "docker compose up",
        "aila-chaos --backend compose",
        "scripts/compose-chaos.sh",
        "http://localhost:16686",
        "http://localhost:9090",
        "http://localhost:8001",
    ] {
        assert!(doc.contains(needle), "README.md lacks {needle:?}");
    }
}
