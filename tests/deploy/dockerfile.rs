//! The Dockerfile builds the binaries the tests run, copies every source folder Cargo needs
//! (the service's targets and the workspace's member crates),
//! runs as a non-root user and checks `/health` with our own health-check binary.

use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Toml};
use serde::Deserialize;

use crate::{read, setting_default};

/// Instructions, with `\` continuations joined.
fn instructions() -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in read("Dockerfile").lines() {
        let l = line.trim();
        if l.starts_with('#') && current.is_empty() || l.is_empty() && current.is_empty() {
            continue;
        }
        if let Some(cont) = l.strip_suffix('\\') {
            current.push_str(cont);
            current.push(' ');
        } else {
            current.push_str(l);
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

fn binary_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn it_builds_and_runs_the_binaries_the_tests_use() {
    let api = binary_name(env!("CARGO_BIN_EXE_aila-api"));
    let health = binary_name(env!("CARGO_BIN_EXE_aila-healthcheck"));
    let ins = instructions();
    let build = ins
        .iter()
        .find(|i| i.contains("cargo build"))
        .expect("a cargo build step");
    for flag in [
        "--profile \"$CARGO_PROFILE\"",
        "--locked",
        &format!("--bin {api}"),
        &format!("--bin {health}"),
    ] {
        assert!(build.contains(flag), "`{flag}` missing from: {build}");
    }
    assert!(build.contains(&format!("\"$out_dir/{api}\"")), "{build}");
    // The image users build is the release profile's; only a build argument changes it.
    assert!(
        ins.iter().any(|i| i == "ARG CARGO_PROFILE=release"),
        "the Dockerfile's CARGO_PROFILE must default to release"
    );
    let entry = ins
        .iter()
        .find(|i| i.starts_with("ENTRYPOINT"))
        .expect("ENTRYPOINT");
    assert!(
        entry.contains(&format!("\"/usr/local/bin/{api}\"")),
        "{entry}"
    );
    let check = ins
        .iter()
        .find(|i| i.starts_with("HEALTHCHECK"))
        .expect("HEALTHCHECK");
    assert!(
        check.contains(&format!("\"/usr/local/bin/{health}\"")),
        "{check}"
    );
    let copy = ins
        .iter()
        .find(|i| i.starts_with("COPY --from=builder"))
        .expect("binaries copied from the builder");
    assert!(copy.contains(&api) && copy.contains(&health), "{copy}");
}

#[test]
fn it_is_multi_stage_small_and_not_root() {
    let ins = instructions();
    let froms: Vec<&String> = ins.iter().filter(|i| i.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    // The base images are build arguments (scripts/local-images.sh gives local ones) whose
    // defaults are the public images.
    let default_of = |arg: &str| {
        ins.iter()
            .find_map(|i| i.strip_prefix(&format!("ARG {arg}=")))
            .unwrap_or_else(|| panic!("ARG {arg}=... missing"))
            .to_string()
    };
    assert_eq!(froms[0], "FROM ${BUILDER_IMAGE} AS builder");
    assert!(default_of("BUILDER_IMAGE").starts_with("rust:"));
    assert_eq!(froms[1], "FROM ${RUNTIME_IMAGE} AS runtime");
    let runtime = default_of("RUNTIME_IMAGE");
    assert!(
        runtime.contains("-slim") || runtime.contains("distroless"),
        "small runtime image: {runtime}"
    );
    // No `# syntax=` line: it pulls the Dockerfile frontend from a registry.
    assert!(
        !read("Dockerfile")
            .lines()
            .any(|l| l.starts_with("# syntax="))
    );
    let user = ins
        .iter()
        .rev()
        .find(|i| i.starts_with("USER "))
        .expect("USER");
    let who = user
        .trim_start_matches("USER ")
        .split(':')
        .next()
        .unwrap()
        .trim();
    assert!(who != "root" && who != "0", "{user}");
    // config/*.toml are read from the working folder at run time.
    assert!(
        ins.iter().any(|i| i == "COPY config ./config"),
        "config/ not copied"
    );
}

#[test]
fn the_port_is_the_service_default() {
    let ins = instructions();
    let port = setting_default("PORT");
    assert!(
        ins.iter().any(|i| i == &format!("EXPOSE {port}")),
        "EXPOSE {port}"
    );
    assert!(
        ins.iter()
            .any(|i| i.starts_with("ENV ") && i.contains(&format!("PORT={port}"))),
        "ENV PORT={port}"
    );
}

#[derive(Deserialize)]
struct Target {
    path: Option<String>,
}

#[derive(Deserialize)]
struct Workspace {
    #[serde(default)]
    members: Vec<String>,
}

#[derive(Deserialize)]
struct Manifest {
    workspace: Option<Workspace>,
    lib: Option<Target>,
    #[serde(default)]
    bin: Vec<Target>,
    #[serde(default)]
    bench: Vec<Target>,
    #[serde(default)]
    test: Vec<Target>,
    #[serde(default)]
    example: Vec<Target>,
}

#[test]
fn every_target_cargo_needs_is_copied_into_the_builder() {
    // Cargo refuses to build anything when a target declared in Cargo.toml is missing, so
    // the builder stage needs each declared target's folder, not just src/.
    let manifest: Manifest = Figment::from(Toml::file(crate::repo_file("Cargo.toml")))
        .extract()
        .expect("Cargo.toml");
    let builder: Vec<String> = instructions()
        .into_iter()
        .skip_while(|i| !i.ends_with("AS builder"))
        .take_while(|i| !i.starts_with("FROM ") || i.ends_with("AS builder"))
        .filter(|i| i.starts_with("COPY ") && !i.starts_with("COPY --from"))
        .collect();
    let copied: Vec<String> = builder
        .iter()
        .flat_map(|c| {
            let parts: Vec<&str> = c.split_whitespace().skip(1).collect();
            parts[..parts.len() - 1]
                .iter()
                .map(|p| p.trim_end_matches('/').to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    for needed in ["Cargo.toml", "Cargo.lock", "src"] {
        assert!(
            copied.iter().any(|c| c == needed),
            "{needed} not copied: {copied:?}"
        );
    }
    // Cargo reads every workspace member's manifest, even to build one package.
    for member in manifest.workspace.iter().flat_map(|w| &w.members) {
        let top = member.split('/').next().unwrap().to_string();
        assert!(
            top == "." || copied.contains(&top),
            "the workspace member {member} is not copied into the builder (copied: {copied:?})"
        );
    }
    let targets = manifest
        .lib
        .into_iter()
        .chain(manifest.bin)
        .chain(manifest.bench)
        .chain(manifest.test)
        .chain(manifest.example);
    for t in targets {
        let Some(path) = t.path else { continue };
        let top = path.split('/').next().unwrap().to_string();
        assert!(
            copied.contains(&top),
            "Cargo.toml declares a target at {path}, but the Dockerfile's builder does not copy {top}/ (copied: {copied:?})"
        );
    }
    // And .dockerignore must not hide them.
    let ignore = read(".dockerignore");
    for c in &copied {
        assert!(
            !ignore.lines().any(|l| l.trim().trim_end_matches('/') == c),
            ".dockerignore excludes {c}"
        );
    }
}
