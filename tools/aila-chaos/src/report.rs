//! The short human summary printed at the end of a run.

use std::fmt::Write;

use crate::analysis::Analysis;
use crate::record::RunRecord;

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 1000.0 => format!("{:.2} s", v / 1000.0),
        Some(v) if v >= 10.0 => format!("{v:.0} ms"),
        Some(v) => format!("{v:.1} ms"),
        None => "-".into(),
    }
}

/// The summary: the run, each fault, latency per phase, fast 503s, writes, checks.
pub fn summary(record: &RunRecord, a: &Analysis) -> String {
    let mut s = String::new();
    let st = &a.statuses;
    let _ = writeln!(
        s,
        "aila-chaos: {:.1} s of load against {} ({} back-end): {} requests ({} 2xx, {} 503, {} other 4xx, {} other 5xx, {} no answer), {} probes",
        record.duration_ms / 1000.0,
        record.service_url,
        record.backend,
        st.total,
        st.ok,
        st.unavailable,
        st.client_errors,
        st.server_errors,
        st.no_answer,
        record.probes.len()
    );
    let _ = writeln!(
        s,
        "\nfaults (detection: fault -> /readiness 503; recovery: fault undone -> first 2xx):"
    );
    for f in &a.faults {
        let _ = writeln!(
            s,
            "  #{:<2} {:<10} at {:>6.1} s, undone after {:>6}: detected in {:>8}, recovered in {:>8}, ready again in {:>8}; outage 503s {} ({} under 50 ms){}",
            f.number,
            f.kind,
            f.injected_at_ms / 1000.0,
            ms(f.restored_at_ms.map(|r| r - f.injected_at_ms)),
            ms(f.detection_ms),
            ms(f.recovery_ms),
            ms(f.ready_again_ms),
            f.outage_statuses.unavailable,
            f.fast_503,
            f.error
                .as_deref()
                .map(|e| format!(" ERROR: {e}"))
                .unwrap_or_default()
        );
    }
    for f in a
        .faults
        .iter()
        .filter(|f| f.failed_requests + f.readiness_not_200 + f.breaker_not_closed > 0)
    {
        let _ = writeln!(
            s,
            "  #{:<2} {:<8} while in force: {} requests failed (5xx or no answer), {} /readiness not 200, {} /health with the breaker not closed",
            f.number, f.kind, f.failed_requests, f.readiness_not_200, f.breaker_not_closed
        );
    }
    if !a.bursts.is_empty() {
        let _ = writeln!(s, "\nbursts (extra connections reading GET /api/tree):");
    }
    for b in &a.bursts {
        let r = &b.record;
        let _ = writeln!(
            s,
            "  #{:<2} {} connections at {:>6.1} s for {:.1} s: {} 2xx ({:.1}/s, p50 {}, p99 {}), {} 503 (p99 {}), {} other, {} no answer; /readiness not 200 in {}/{} samples, breaker not closed in {} /health samples{}",
            b.number,
            b.connections,
            r.started_at_ms / 1000.0,
            (r.ended_at_ms - r.started_at_ms) / 1000.0,
            r.ok,
            b.ok_per_s,
            ms(r.ok_p50_ms),
            ms(r.ok_p99_ms),
            r.unavailable,
            ms(r.unavailable_p99_ms),
            r.other,
            r.failed,
            b.readiness_not_200,
            b.readiness_samples,
            b.breaker_not_closed,
            r.error
                .as_deref()
                .map(|e| format!(" ERROR: {e}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        s,
        "\nlatency by phase (registration and login left out: see auth below):"
    );
    let _ = writeln!(
        s,
        "  {:<9} {:>8} {:>8} {:>7} {:>7} {:>10} {:>10} {:>10}",
        "phase", "time", "requests", "2xx", "503", "p50", "p99", "max"
    );
    for p in &a.phases {
        let _ = writeln!(
            s,
            "  {:<9} {:>8} {:>8} {:>7} {:>7} {:>10} {:>10} {:>10}",
            p.phase.as_str(),
            format!("{:.1} s", p.duration_ms / 1000.0),
            p.statuses.total,
            p.statuses.ok,
            p.statuses.unavailable,
            ms(p.p50_ms),
            ms(p.p99_ms),
            ms(p.max_ms)
        );
    }
    let _ = writeln!(
        s,
        "  {:<9} {:>8} {:>8} {:>7} {:>7} {:>10} {:>10} {:>10}",
        "auth",
        "whole",
        a.auth.requests,
        "",
        "",
        ms(a.auth.p50_ms),
        ms(a.auth.p99_ms),
        ms(a.auth.max_ms)
    );
    let f = &a.fast_503_share;
    let _ = writeln!(
        s,
        "\n503s sent during outages answered in under 50 ms: {} ({}/{})",
        f.share
            .map(|v| format!("{:.1} %", v * 100.0))
            .unwrap_or_else(|| "n/a".into()),
        f.part,
        f.total
    );
    let w = &a.writes;
    let kinds: Vec<String> = {
        let mut k: Vec<_> = w.by_kind.iter().collect();
        k.sort();
        k.into_iter().map(|(k, n)| format!("{n} {k}")).collect()
    };
    let _ = writeln!(
        s,
        "writes: {} ({}): {} acknowledged, {} found stored after a failed attempt, {} given up ({} stored once, {} absent), {} refused; {} retried ({} retries answered by a replay); lost {}, duplicated {}",
        record.writes.len(),
        kinds.join(", "),
        w.acknowledged,
        w.found_after_error,
        w.unconfirmed,
        w.unconfirmed_stored,
        w.unconfirmed_absent,
        w.rejected,
        w.retried,
        w.replays,
        w.lost.len(),
        w.duplicated.len()
    );
    let p = &a.probes;
    let _ = writeln!(
        s,
        "probes: /health {}/{} answered 200 (max {}); /readiness {} x 200, {} x 503 (max {})",
        p.health_ok,
        p.health_total,
        ms(p.health_max_ms),
        p.readiness_ok,
        p.readiness_unavailable,
        ms(p.readiness_max_ms)
    );
    let _ = writeln!(s, "\nchecks:");
    for c in &a.checks {
        let _ = writeln!(
            s,
            "  {} {}: {}",
            if c.passed { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    let _ = writeln!(s, "\nresult: {}", if a.passed { "PASS" } else { "FAIL" });
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{Limits, analyse, fixture};

    #[test]
    fn the_summary_names_every_fault_phase_and_check() {
        let run = fixture::run();
        let a = analyse(
            &run,
            Limits {
                max_detection_ms: 5_000.0,
                max_recovery_ms: 5_000.0,
                min_fast_503_share: 0.0,
            },
        );
        let s = summary(&run, &a);
        assert!(s.contains("#1  kill"), "{s}");
        for phase in ["healthy", "outage", "recovery"] {
            assert!(s.contains(&format!("  {phase}")), "{s}");
        }
        assert!(s.contains("(16/20)"), "{s}");
        assert_eq!(s.matches("PASS ").count(), a.checks.len(), "{s}");
        assert!(s.trim_end().ends_with("result: PASS"));
    }
}
