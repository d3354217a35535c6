//! The workspace keeps the service lean: the tools' dependencies (command line parsing, HTTP
//! clients, load generation) are not in the service's build, and the whole workspace
//! resolves one version of its HTTP client. Read from cargo's own view of the dependency
//! graph (`cargo tree`, offline: the lock file is enough).

use std::process::Command;

use super::repo_file;

/// `cargo tree` lines (package names and versions, no tree drawing) for these arguments.
fn cargo_tree(args: &[&str]) -> Vec<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .arg("tree")
        .arg("--manifest-path")
        .arg(repo_file("Cargo.toml"))
        .args([
            "--offline",
            "--locked",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .args(args)
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "cargo tree {args:?}: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn names(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

#[test]
fn the_service_builds_none_of_the_tools_dependencies() {
    let tree = cargo_tree(&["-p", "aila-api", "-e", "normal"]);
    let tree = names(&tree);
    // Nothing of the service needs these, directly or through a library it uses.
    for tool_only in [
        "clap",
        "reqwest",
        "aila-testkit",
        "aila-chaos",
        "aila-bench",
    ] {
        assert!(
            !tree.contains(&tool_only),
            "{tool_only} is in the service's dependency tree: it belongs to a tool crate or [dev-dependencies]"
        );
    }
    // These come with poem and tonic, but the service itself must not ask for them.
    let direct = cargo_tree(&["-p", "aila-api", "-e", "normal", "--depth", "1"]);
    let direct = names(&direct);
    for tool_only in ["hyper", "hyper-util", "http-body-util", "tempfile", "libc"] {
        assert!(
            !direct.contains(&tool_only),
            "{tool_only} is a direct dependency of the service: only the tools use it"
        );
    }
}

#[test]
fn the_workspace_has_one_http_client_version() {
    let all = cargo_tree(&["--workspace", "-e", "normal,build,dev"]);
    let mut versions: Vec<&str> = all
        .iter()
        .filter(|l| l.starts_with("reqwest "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    versions.sort();
    versions.dedup();
    assert_eq!(
        versions.len(),
        1,
        "reqwest versions in the workspace: {versions:?}"
    );
}
