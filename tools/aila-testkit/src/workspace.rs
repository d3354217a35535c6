//! Where things are: the workspace root (for `.tools/bin/…` and the checked-in config
//! files) and the binaries cargo built into the same target folder as the running program.

use std::path::{Path, PathBuf};

/// The workspace root: the folder that holds the service's `Cargo.toml`, `.tools/` and
/// `config/`.
pub fn root() -> PathBuf {
    // This crate lives at `tools/aila-testkit` below the root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tools/aila-testkit sits two folders below the workspace root")
        .to_path_buf()
}

/// The path of a binary of the workspace built in the same profile as the running program
/// (`target/debug/aila-api` beside `target/debug/aila-chaos`, or beside
/// `target/debug/deps/<test>` for an integration test).
///
/// Panics with what to run when it is not built: tests of one crate cannot ask cargo to
/// build another crate's binary, `scripts/test.sh` builds the whole workspace first.
pub fn built_binary(name: &str) -> PathBuf {
    let me = std::env::current_exe().expect("the running program has a path");
    let mut dir = me
        .parent()
        .expect("a binary sits in a folder")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace` (scripts/test.sh does) and try again",
        path.display()
    );
    path
}

/// A server binary built by `scripts/build-tools.sh TOOL`: the path in the environment
/// variable `env` when set, else `.tools/bin/NAME` of the workspace. Panics with the one
/// command to run when it is missing (`what` names the server in that message).
pub fn tool_binary(env: &str, name: &str, tool: &str, what: &str) -> PathBuf {
    let bin = std::env::var_os(env)
        .filter(|b| !b.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".tools/bin").join(name));
    assert!(
        bin.exists(),
        "{what} ({}) is missing: run `scripts/build-tools.sh {tool}` once, or set {env}",
        bin.display()
    );
    bin
}

/// Where a spawned server's output goes: appended to `log` (stdout and stderr both), or
/// discarded.
pub fn output_to(log: Option<&Path>) -> Result<(std::process::Stdio, std::process::Stdio), String> {
    use std::process::Stdio;
    match log {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let e = f.try_clone().map_err(|e| e.to_string())?;
            Ok((Stdio::from(f), Stdio::from(e)))
        }
        None => Ok((Stdio::null(), Stdio::null())),
    }
}
