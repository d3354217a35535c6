//! End-to-end tests on a real one-node Kubernetes built on this machine
//! (`scripts/cluster.sh`): deploy/kubernetes exactly as users apply it, FerretDB as the
//! database, clients talking to the Service through kube-proxy.
//!
//! One cluster serves every case, in order (a later case builds on the state an earlier
//! one left: the database arrives in the second, the autoscaler's scale-in is checked
//! once its stabilization window has passed, before the cases that replace pods). Each case prints its figures.
//!
//!   cargo test --test cluster -- --nocapture        # every case (about 3 minutes)
//!   cargo test --test cluster -- NAME               # the cases whose name contains NAME
//!   AILA_CLUSTER_TESTS=0 scripts/test.sh            # everything else, without them
//!
//! `scripts/test.sh` and CI run them. Skipped, with a message, only where a kubelet cannot
//! run (not Linux, not root), or when `AILA_CLUSTER_TESTS=0` says so. They
//! need the binaries of `scripts/build-tools.sh kubernetes` (cluster.sh builds them when
//! missing) and Debian's containerd, runc, CNI plugins and iptables (installed when
//! missing). Logs of every process are kept in `target/cluster-test-logs`.

mod cases;
mod cluster;
mod load;

use std::process::ExitCode;
use std::time::Instant;

use cluster::{Cluster, cannot_run_kubelet};

fn main() -> ExitCode {
    if std::env::var("AILA_CLUSTER_TESTS").as_deref() == Ok("0") {
        println!(
            "cluster tests NOT RUN: AILA_CLUSTER_TESTS=0 (they start a one-node Kubernetes, about 3 minutes)"
        );
        return ExitCode::SUCCESS;
    }
    if let Some(why) = cannot_run_kubelet() {
        println!("cluster tests SKIPPED: this machine cannot run a kubelet ({why})");
        return ExitCode::SUCCESS;
    }
    // `cargo test` passes its own flags (--nocapture, --quiet, ...); the rest is a filter.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f));

    let started = Instant::now();
    let cluster = Cluster::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("cluster: starting (scripts/cluster.sh up --without-database)");
    let up = match cluster.up() {
        Ok(took) => took,
        Err(e) => {
            println!("cluster: {e}");
            cluster.down();
            return ExitCode::FAILURE;
        }
    };
    println!(
        "cluster: up in {:.0} s (binaries already built)",
        up.as_secs_f64()
    );

    let mut failed = Vec::new();
    let mut ran = 0;
    runtime.block_on(async {
        let mut state = cases::State::default();
        for (name, case) in cases::ALL {
            if !selected(name) && !cases::REQUIRED.contains(name) {
                continue;
            }
            ran += 1;
            println!("\n== {name}");
            let t = Instant::now();
            match case(&cluster, &mut state).await {
                Ok(()) => println!("== {name}: ok ({:.1} s)", t.elapsed().as_secs_f64()),
                Err(e) => {
                    println!(
                        "== {name}: FAILED ({:.1} s): {e}",
                        t.elapsed().as_secs_f64()
                    );
                    failed.push(*name);
                }
            }
        }
    });
    drop(runtime);
    cluster.down();
    println!(
        "\ncluster: {ran} cases, {} failed {:?}; {:.0} s in all (cluster start {:.0} s)",
        failed.len(),
        failed,
        started.elapsed().as_secs_f64(),
        up.as_secs_f64()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
