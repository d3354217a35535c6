//! After the run: phases, detection and recovery per fault, latency percentiles per phase,
//! the share of fast 503s, lost-write accounting and the pass/fail checks. Pure functions of
//! the [`RunRecord`].
//!
//! Phases, from the faults and the `/readiness` probes:
//! - **outage**: from the injection of a fault that makes the database unreachable (kill,
//!   freeze, restart, timeout, reset_peer) until it is undone;
//! - **degraded**: while a fault that slows the database without cutting it off is in
//!   force (latency, bandwidth, slicer): not an outage, nothing may fail;
//! - **recovery**: from the database being back until `/readiness` answers 200 again (or
//!   the next fault, or the end);
//! - **healthy**: everything else.
//!
//! A request belongs to the phase in which it was sent.
//!
//! Latency percentiles per phase leave out registration and login: their time is bcrypt
//! (cost 12, by design slow and CPU-bound, far slower still in a debug build), not the
//! database; they are reported on their own line. The share of fast 503s counts every
//! route.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::record::{
    BurstRecord, ProbeKind, ProbeRecord, RequestRecord, RunRecord, WriteKind, WriteOutcome,
    WriteRecord,
};
use crate::schedule::Effect;

/// Registration and login: bcrypt-bound.
pub fn is_auth(route: &str) -> bool {
    matches!(route, "POST /api/auth/register" | "POST /api/auth/login")
}

/// Below this, a 503 counts as fast (the breaker refused without waiting on the database).
pub const FAST_503_MS: f64 = 50.0;

/// Bounds the checks use.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Limits {
    /// A kill or freeze must turn `/readiness` 503 within this.
    pub max_detection_ms: f64,
    /// After the database is back, a request must succeed within this.
    pub max_recovery_ms: f64,
    /// Fail when fewer than this share of the outage 503s are fast (0 disables).
    pub min_fast_503_share: f64,
}

/// The phase a moment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// No fault in force and the service ready.
    Healthy,
    /// A fault in force that cuts the database off.
    Outage,
    /// A fault in force that slows the database (latency, bandwidth, slicer).
    Degraded,
    /// The database back, the service not ready yet.
    Recovery,
}

impl Phase {
    /// Name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Healthy => "healthy",
            Phase::Outage => "outage",
            Phase::Degraded => "degraded",
            Phase::Recovery => "recovery",
        }
    }
}

/// One fault's window on the time axis.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Fault in place.
    pub start_ms: f64,
    /// Database back (`end of outage`); the end of the run when it never came back.
    pub back_ms: f64,
    /// `/readiness` 200 again (end of recovery).
    pub ready_ms: f64,
    /// An outage or a degraded database.
    pub effect: Effect,
}

/// Builds each fault's window: outage `[injected, back)`, recovery `[back, ready)` where
/// ready is the first `/readiness` 200 sent after the database is back, cut at the next
/// fault and at the end of the run.
pub fn windows(record: &RunRecord) -> Vec<Window> {
    let readiness: Vec<&ProbeRecord> = record
        .probes
        .iter()
        .filter(|p| p.probe == ProbeKind::Readiness)
        .collect();
    let end = record.duration_ms;
    let mut out = Vec::new();
    for (i, f) in record.faults.iter().enumerate() {
        let next = record
            .faults
            .get(i + 1)
            .map(|n| n.injected_at_ms)
            .unwrap_or(f64::INFINITY);
        let cut = next.min(end);
        let back = f.restored_at_ms.unwrap_or(end).min(cut);
        let ready = readiness
            .iter()
            .find(|p| p.t_ms >= back && p.status == 200)
            .map(|p| p.t_ms)
            .unwrap_or(cut)
            .min(cut);
        out.push(Window {
            start_ms: f.injected_at_ms,
            back_ms: back,
            ready_ms: ready.max(back),
            effect: f.kind().effect(),
        });
    }
    out
}

/// The phase of moment `t_ms`.
pub fn phase_at(windows: &[Window], t_ms: f64) -> Phase {
    for w in windows {
        if t_ms >= w.start_ms && t_ms < w.back_ms {
            return if w.effect == Effect::Degraded {
                Phase::Degraded
            } else {
                Phase::Outage
            };
        }
        if t_ms >= w.back_ms && t_ms < w.ready_ms {
            return Phase::Recovery;
        }
    }
    Phase::Healthy
}

/// Nearest-rank percentile of already sorted values (`p` in 0..=100).
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Counts of answers by class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusTally {
    /// All.
    pub total: usize,
    /// 2xx.
    pub ok: usize,
    /// 503.
    pub unavailable: usize,
    /// Other 4xx.
    pub client_errors: usize,
    /// Other 5xx (500 is a bug: the outage should be 503).
    pub server_errors: usize,
    /// No answer at all.
    pub no_answer: usize,
}

impl StatusTally {
    /// Adds one status.
    pub fn add(&mut self, status: u16) {
        self.total += 1;
        match status {
            200..=299 => self.ok += 1,
            503 => self.unavailable += 1,
            400..=499 => self.client_errors += 1,
            0 => self.no_answer += 1,
            _ => self.server_errors += 1,
        }
    }
}

/// Latency of one phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseStats {
    /// Which phase.
    pub phase: Phase,
    /// Time spent in it.
    pub duration_ms: f64,
    /// Requests sent in it, by status (every route).
    pub statuses: StatusTally,
    /// Median latency (registration and login left out).
    pub p50_ms: Option<f64>,
    /// 99th percentile latency.
    pub p99_ms: Option<f64>,
    /// Slowest.
    pub max_ms: Option<f64>,
}

/// Latency of a set of requests.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LatencyStats {
    /// How many.
    pub requests: usize,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Slowest.
    pub max_ms: Option<f64>,
}

impl LatencyStats {
    fn of(mut lat: Vec<f64>) -> LatencyStats {
        lat.sort_by(f64::total_cmp);
        LatencyStats {
            requests: lat.len(),
            p50_ms: percentile(&lat, 50.0),
            p99_ms: percentile(&lat, 99.0),
            max_ms: lat.last().copied(),
        }
    }
}

/// One fault, measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultReport {
    /// 1-based.
    pub number: usize,
    /// `kill`, `freeze`, `restart`.
    pub kind: String,
    /// Fault in place.
    pub injected_at_ms: f64,
    /// Database back.
    pub restored_at_ms: Option<f64>,
    /// Injection to the first `/readiness` 503 (answer time).
    pub detection_ms: Option<f64>,
    /// Database back to the first 2xx of a request sent after it (answer time).
    pub recovery_ms: Option<f64>,
    /// Database back to the first `/readiness` 200.
    pub ready_again_ms: Option<f64>,
    /// Requests sent during the outage, by status.
    pub outage_statuses: StatusTally,
    /// 503s of the outage answered in under 50 ms.
    pub fast_503: usize,
    /// Requests sent while it was in force that got a 5xx or no answer.
    pub failed_requests: usize,
    /// `/readiness` probes sent while it was in force that did not answer 200.
    pub readiness_not_200: usize,
    /// `/health` probes sent while it was in force whose breaker was not closed.
    pub breaker_not_closed: usize,
    /// Injection or restore errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One burst, measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BurstReport {
    /// 1-based.
    pub number: usize,
    /// Extra connections.
    pub connections: u64,
    /// As recorded.
    pub record: BurstRecord,
    /// 2xx answers per second to the burst's connections.
    pub ok_per_s: f64,
    /// `/readiness` probes sent during it, and how many did not answer 200.
    pub readiness_samples: usize,
    /// See `readiness_samples`.
    pub readiness_not_200: usize,
    /// `/health` probes during it whose breaker was not closed.
    pub breaker_not_closed: usize,
}

fn burst_report(i: usize, b: &BurstRecord, record: &RunRecord) -> BurstReport {
    let during: Vec<&ProbeRecord> = record
        .probes
        .iter()
        .filter(|p| p.t_ms >= b.started_at_ms && p.t_ms < b.ended_at_ms)
        .collect();
    let readiness: Vec<&&ProbeRecord> = during
        .iter()
        .filter(|p| p.probe == ProbeKind::Readiness)
        .collect();
    BurstReport {
        number: i + 1,
        connections: b.spec.and_then(|s| s.amount).unwrap_or(0),
        record: b.clone(),
        ok_per_s: b.ok_per_s(),
        readiness_samples: readiness.len(),
        readiness_not_200: readiness.iter().filter(|p| p.status != 200).count(),
        breaker_not_closed: during
            .iter()
            .filter(|p| p.probe == ProbeKind::Health && p.breaker.as_deref() != Some("closed"))
            .count(),
    }
}

/// A share.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Share {
    /// Counted.
    pub part: usize,
    /// Out of.
    pub total: usize,
    /// `part / total`, `None` when there is nothing to count.
    pub share: Option<f64>,
}

impl Share {
    fn of(part: usize, total: usize) -> Share {
        Share {
            part,
            total,
            share: (total > 0).then(|| part as f64 / total as f64),
        }
    }
}

/// The probes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProbeReport {
    /// `/health` probes sent.
    pub health_total: usize,
    /// Of which 200.
    pub health_ok: usize,
    /// The first few `/health` answers that were not 200, as `t_ms status error`.
    pub health_failures: Vec<String>,
    /// Slowest `/health` answer.
    pub health_max_ms: Option<f64>,
    /// 99th percentile of `/health`.
    pub health_p99_ms: Option<f64>,
    /// `/readiness` probes sent.
    pub readiness_total: usize,
    /// Of which 200.
    pub readiness_ok: usize,
    /// Of which 503.
    pub readiness_unavailable: usize,
    /// Slowest `/readiness` answer.
    pub readiness_max_ms: Option<f64>,
    /// `uptime_s` went down between two `/health` answers: the service restarted.
    pub uptime_reset: bool,
}

/// Lost-write accounting.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WriteAccounting {
    /// Logical writes, by kind (`user`, `person`, `link`).
    pub by_kind: HashMap<String, usize>,
    /// Acknowledged (2xx).
    pub acknowledged: usize,
    /// Failed, then found stored (committed despite the error; not sent again).
    pub found_after_error: usize,
    /// Failed and given up on.
    pub unconfirmed: usize,
    /// ... of which stored once anyway.
    pub unconfirmed_stored: usize,
    /// ... of which absent.
    pub unconfirmed_absent: usize,
    /// Refused with a 4xx.
    pub rejected: usize,
    /// Writes whose first attempt failed with 503 or no answer and that were sent again.
    pub retried: usize,
    /// Retries answered by a replay (`Idempotent-Replayed: true`): the write had been
    /// applied by an earlier attempt whose answer was lost.
    #[serde(default)]
    pub replays: usize,
    /// Acknowledged (or found) writes missing afterwards: markers.
    pub lost: Vec<String>,
    /// Writes stored more than once: `marker xN`.
    pub duplicated: Vec<String>,
    /// Rejected writes that are stored anyway.
    pub stored_though_rejected: Vec<String>,
    /// Writes that could not be checked (their account unreadable).
    pub unverified: usize,
}

/// Compares what the client was told with what is stored.
pub fn account_writes(
    writes: &[WriteRecord],
    observed: &crate::record::Observed,
) -> WriteAccounting {
    let counts: HashMap<(WriteKind, &str), usize> = observed
        .counts
        .iter()
        .map(|(k, m, c)| ((*k, m.as_str()), *c))
        .collect();
    let unreadable: std::collections::HashSet<&str> = observed
        .unreadable_owners
        .iter()
        .map(String::as_str)
        .collect();
    let mut acc = WriteAccounting::default();
    for w in writes {
        *acc.by_kind
            .entry(format!("{:?}", w.kind).to_lowercase())
            .or_default() += 1;
        if w.attempts.len() > 1 {
            acc.retried += 1;
        }
        acc.replays += w.attempts.iter().filter(|a| a.replayed).count();
        match w.outcome {
            WriteOutcome::Acknowledged => acc.acknowledged += 1,
            WriteOutcome::FoundAfterError => acc.found_after_error += 1,
            WriteOutcome::Unconfirmed => acc.unconfirmed += 1,
            WriteOutcome::Rejected => acc.rejected += 1,
        }
        if unreadable.contains(w.owner.as_str()) {
            acc.unverified += 1;
            continue;
        }
        let n = counts
            .get(&(w.kind, w.marker.as_str()))
            .copied()
            .unwrap_or(0);
        if n > 1 {
            acc.duplicated.push(format!("{} x{n}", w.marker));
        }
        match w.outcome {
            WriteOutcome::Acknowledged | WriteOutcome::FoundAfterError if n == 0 => {
                acc.lost.push(w.marker.clone())
            }
            WriteOutcome::Unconfirmed if n == 0 => acc.unconfirmed_absent += 1,
            WriteOutcome::Unconfirmed => acc.unconfirmed_stored += 1,
            WriteOutcome::Rejected if n > 0 => acc.stored_though_rejected.push(w.marker.clone()),
            _ => {}
        }
    }
    acc
}

/// One pass/fail check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The numbers behind it.
    pub detail: String,
}

/// Everything the analysis found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Analysis {
    /// All load requests by status.
    pub statuses: StatusTally,
    /// Per phase: healthy, outage, recovery, degraded (registration and login left out).
    pub phases: Vec<PhaseStats>,
    /// Registration and login over the whole run (bcrypt-bound).
    pub auth: LatencyStats,
    /// Per fault.
    pub faults: Vec<FaultReport>,
    /// Per burst.
    #[serde(default)]
    pub bursts: Vec<BurstReport>,
    /// 503s sent during outages answered in under 50 ms.
    pub fast_503_share: Share,
    /// The probes.
    pub probes: ProbeReport,
    /// Lost-write accounting.
    pub writes: WriteAccounting,
    /// The bounds used.
    pub limits: Limits,
    /// The checks.
    pub checks: Vec<Check>,
    /// Every check held.
    pub passed: bool,
}

fn probe_report(probes: &[ProbeRecord]) -> ProbeReport {
    let mut r = ProbeReport::default();
    let mut health_lat = Vec::new();
    let mut last_uptime: Option<u64> = None;
    for p in probes {
        match p.probe {
            ProbeKind::Health => {
                r.health_total += 1;
                health_lat.push(p.latency_ms);
                if p.status == 200 {
                    r.health_ok += 1;
                } else if r.health_failures.len() < 10 {
                    r.health_failures.push(format!(
                        "t={:.0}ms status={} {}",
                        p.t_ms,
                        p.status,
                        p.error.as_deref().unwrap_or("")
                    ));
                }
                if let Some(u) = p.uptime_s {
                    if last_uptime.is_some_and(|prev| u < prev) {
                        r.uptime_reset = true;
                    }
                    last_uptime = Some(u);
                }
            }
            ProbeKind::Readiness => {
                r.readiness_total += 1;
                match p.status {
                    200 => r.readiness_ok += 1,
                    503 => r.readiness_unavailable += 1,
                    _ => {}
                }
                r.readiness_max_ms = Some(r.readiness_max_ms.unwrap_or(0.0).max(p.latency_ms));
            }
        }
    }
    health_lat.sort_by(f64::total_cmp);
    r.health_max_ms = health_lat.last().copied();
    r.health_p99_ms = percentile(&health_lat, 99.0);
    r
}

/// Analyses a run.
pub fn analyse(record: &RunRecord, limits: Limits) -> Analysis {
    let wins = windows(record);
    let mut statuses = StatusTally::default();
    let mut by_phase: HashMap<Phase, (StatusTally, Vec<f64>)> = HashMap::new();
    let mut fast_503 = 0;
    let mut outage_503 = 0;
    let mut auth = Vec::new();
    for r in &record.requests {
        statuses.add(r.status);
        let phase = phase_at(&wins, r.t_ms);
        let entry = by_phase.entry(phase).or_default();
        entry.0.add(r.status);
        if is_auth(&r.route) {
            auth.push(r.latency_ms);
        } else {
            entry.1.push(r.latency_ms);
        }
        if phase == Phase::Outage && r.status == 503 {
            outage_503 += 1;
            if r.latency_ms < FAST_503_MS {
                fast_503 += 1;
            }
        }
    }
    let mut phase_time: HashMap<Phase, f64> = HashMap::new();
    for w in &wins {
        let during = if w.effect == Effect::Degraded {
            Phase::Degraded
        } else {
            Phase::Outage
        };
        *phase_time.entry(during).or_default() += w.back_ms - w.start_ms;
        *phase_time.entry(Phase::Recovery).or_default() += w.ready_ms - w.back_ms;
    }
    let faulty: f64 = phase_time.values().sum();
    phase_time.insert(Phase::Healthy, (record.duration_ms - faulty).max(0.0));
    let phases = [
        Phase::Healthy,
        Phase::Outage,
        Phase::Recovery,
        Phase::Degraded,
    ]
    .into_iter()
    .map(|phase| {
        let (tally, mut lat) = by_phase.remove(&phase).unwrap_or_default();
        lat.sort_by(f64::total_cmp);
        PhaseStats {
            phase,
            duration_ms: phase_time.get(&phase).copied().unwrap_or(0.0),
            statuses: tally,
            p50_ms: percentile(&lat, 50.0),
            p99_ms: percentile(&lat, 99.0),
            max_ms: lat.last().copied(),
        }
    })
    .collect();

    let faults: Vec<FaultReport> = record
        .faults
        .iter()
        .zip(&wins)
        .enumerate()
        .map(|(i, (f, w))| fault_report(i, f, w, record))
        .collect();
    let probes = probe_report(&record.probes);
    let writes = account_writes(&record.writes, &record.observed);
    let fast_503_share = Share::of(fast_503, outage_503);
    let bursts: Vec<BurstReport> = record
        .bursts
        .iter()
        .enumerate()
        .map(|(i, b)| burst_report(i, b, record))
        .collect();
    let checks = checks(
        record,
        &faults,
        &bursts,
        &probes,
        &writes,
        &statuses,
        &fast_503_share,
        limits,
    );
    let passed = checks.iter().all(|c| c.passed);
    Analysis {
        statuses,
        phases,
        auth: LatencyStats::of(auth),
        faults,
        bursts,
        fast_503_share,
        probes,
        writes,
        limits,
        checks,
        passed,
    }
}

fn fault_report(
    i: usize,
    f: &crate::record::FaultRecord,
    w: &Window,
    record: &RunRecord,
) -> FaultReport {
    let detection_ms = record
        .probes
        .iter()
        .filter(|p| p.probe == ProbeKind::Readiness && p.t_ms >= w.start_ms)
        .take_while(|p| p.t_ms < w.ready_ms.max(w.back_ms))
        .find(|p| p.status != 200)
        .map(|p| p.t_ms + p.latency_ms - w.start_ms);
    let recovery_ms = f.restored_at_ms.and_then(|back| {
        record
            .requests
            .iter()
            .filter(|r| r.t_ms >= back && r.is_success())
            .map(RequestRecord::end_ms)
            .min_by(f64::total_cmp)
            .map(|end| end - back)
    });
    let ready_again_ms = f.restored_at_ms.and_then(|back| {
        record
            .probes
            .iter()
            .find(|p| p.probe == ProbeKind::Readiness && p.t_ms >= back && p.status == 200)
            .map(|p| p.t_ms - back)
    });
    let mut outage_statuses = StatusTally::default();
    let mut fast_503 = 0;
    let mut failed_requests = 0;
    for r in record
        .requests
        .iter()
        .filter(|r| r.t_ms >= w.start_ms && r.t_ms < w.back_ms)
    {
        outage_statuses.add(r.status);
        if r.status == 503 && r.latency_ms < FAST_503_MS {
            fast_503 += 1;
        }
        if r.status == 0 || r.status >= 500 {
            failed_requests += 1;
        }
    }
    let during = |p: &&ProbeRecord| p.t_ms >= w.start_ms && p.t_ms < w.back_ms;
    let readiness_not_200 = record
        .probes
        .iter()
        .filter(during)
        .filter(|p| p.probe == ProbeKind::Readiness && p.status != 200)
        .count();
    let breaker_not_closed = record
        .probes
        .iter()
        .filter(during)
        .filter(|p| p.probe == ProbeKind::Health && p.breaker.as_deref() != Some("closed"))
        .count();
    FaultReport {
        number: i + 1,
        kind: f.kind().as_str().into(),
        injected_at_ms: f.injected_at_ms,
        restored_at_ms: f.restored_at_ms,
        detection_ms,
        recovery_ms,
        ready_again_ms,
        outage_statuses,
        fast_503,
        failed_requests,
        readiness_not_200,
        breaker_not_closed,
        error: f.error.clone(),
    }
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{:.0} ms", v))
        .unwrap_or_else(|| "never".into())
}

// Each argument is one finished section of the analysis the checks read.
#[allow(clippy::too_many_arguments)]
fn checks(
    record: &RunRecord,
    faults: &[FaultReport],
    bursts: &[BurstReport],
    probes: &ProbeReport,
    writes: &WriteAccounting,
    statuses: &StatusTally,
    fast: &Share,
    limits: Limits,
) -> Vec<Check> {
    let mut out = Vec::new();
    let mut check = |name: &str, passed: bool, detail: String| {
        out.push(Check {
            name: name.into(),
            passed,
            detail,
        })
    };
    check(
        "the load ran",
        statuses.ok > 0 && !record.writes.is_empty(),
        format!(
            "{} requests, {} answered 2xx, {} logical writes",
            statuses.total,
            statuses.ok,
            record.writes.len()
        ),
    );
    check(
        "no acknowledged write lost",
        writes.lost.is_empty() && writes.unverified == 0,
        if writes.lost.is_empty() && writes.unverified == 0 {
            format!(
                "{} acknowledged and {} found after an error, all stored",
                writes.acknowledged, writes.found_after_error
            )
        } else {
            format!(
                "{} lost ({}), {} unverifiable",
                writes.lost.len(),
                writes
                    .lost
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                writes.unverified
            )
        },
    );
    check(
        "no write stored twice, none stored that was refused",
        writes.duplicated.is_empty() && writes.stored_though_rejected.is_empty(),
        format!(
            "{} retried; {} given up (stored once: {}, absent: {}); duplicated: {:?}; stored though refused: {:?}",
            writes.retried,
            writes.unconfirmed,
            writes.unconfirmed_stored,
            writes.unconfirmed_absent,
            writes.duplicated.iter().take(5).collect::<Vec<_>>(),
            writes
                .stored_though_rejected
                .iter()
                .take(5)
                .collect::<Vec<_>>()
        ),
    );
    check(
        "/health answered 200 to every probe",
        probes.health_total > 0 && probes.health_ok == probes.health_total,
        format!(
            "{}/{} answered 200 (p99 {}, max {}){}",
            probes.health_ok,
            probes.health_total,
            ms(probes.health_p99_ms),
            ms(probes.health_max_ms),
            if probes.health_failures.is_empty() {
                String::new()
            } else {
                format!("; first failures: {}", probes.health_failures.join("; "))
            }
        ),
    );
    let exited = record.service.exited_during_run.clone();
    let clean = record.service.clean_shutdown.unwrap_or(true);
    check(
        "the service never exited",
        exited.is_none() && !probes.uptime_reset && clean,
        match (&exited, probes.uptime_reset) {
            (Some(how), _) => format!("the process exited during the run: {how}"),
            (None, true) => "uptime_s went down: the service restarted".into(),
            (None, false) if !clean => format!(
                "it ran throughout, but did not shut down cleanly on SIGTERM: {}",
                record.service.final_exit.as_deref().unwrap_or("?")
            ),
            (None, false) => {
                if record.service.started_by_tool {
                    format!(
                        "process alive throughout; on SIGTERM: {}",
                        record
                            .service
                            .final_exit
                            .as_deref()
                            .unwrap_or("not stopped")
                    )
                } else {
                    "uptime_s never went down and /health always answered".into()
                }
            }
        },
    );
    let fault_errors: Vec<String> = faults
        .iter()
        .filter(|f| f.error.is_some() || f.restored_at_ms.is_none())
        .map(|f| {
            format!(
                "#{} {}: {}",
                f.number,
                f.kind,
                f.error
                    .as_deref()
                    .unwrap_or("the database was not brought back")
            )
        })
        .collect();
    check(
        "every fault injected and undone as planned",
        fault_errors.is_empty(),
        if fault_errors.is_empty() {
            format!("{} faults", faults.len())
        } else {
            fault_errors.join("; ")
        },
    );
    let undetected: Vec<String> = faults
        .iter()
        .zip(&record.faults)
        .filter(|(f, r)| {
            r.kind().must_be_detected()
                && f.detection_ms.is_none_or(|d| d > limits.max_detection_ms)
        })
        .map(|(f, _)| format!("#{} {} ({})", f.number, f.kind, ms(f.detection_ms)))
        .collect();
    check(
        &format!(
            "every outage (kill, freeze, timeout, reset_peer) turned /readiness 503 within {:.0} s",
            limits.max_detection_ms / 1000.0
        ),
        undetected.is_empty(),
        if undetected.is_empty() {
            format!(
                "detection: {}",
                faults
                    .iter()
                    .zip(&record.faults)
                    .filter(|(_, r)| r.kind().effect() == Effect::Outage)
                    .map(|(f, _)| format!("{} {}", f.kind, ms(f.detection_ms)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!("too slow or never: {}", undetected.join(", "))
        },
    );
    let degraded: Vec<&FaultReport> = faults
        .iter()
        .zip(&record.faults)
        .filter(|(_, r)| r.kind().effect() == Effect::Degraded)
        .map(|(f, _)| f)
        .collect();
    if !degraded.is_empty() {
        let hurt: Vec<String> = degraded
            .iter()
            .filter(|f| f.failed_requests + f.readiness_not_200 + f.breaker_not_closed > 0)
            .map(|f| {
                format!(
                    "#{} {}: {} requests failed, {} /readiness not 200, {} breaker not closed",
                    f.number, f.kind, f.failed_requests, f.readiness_not_200, f.breaker_not_closed
                )
            })
            .collect();
        check(
            "a slow database is not an outage: no request failed, /readiness 200 and the breaker closed during every latency, bandwidth and slicer fault",
            hurt.is_empty(),
            if hurt.is_empty() {
                degraded
                    .iter()
                    .map(|f| {
                        format!(
                            "#{} {}: {} requests served",
                            f.number, f.kind, f.outage_statuses.total
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                hurt.join("; ")
            },
        );
    }
    if !bursts.is_empty() {
        let hurt: Vec<String> = bursts
            .iter()
            .filter(|b| {
                b.record.error.is_some()
                    || b.readiness_samples == 0
                    || b.readiness_not_200 + b.breaker_not_closed > 0
            })
            .map(|b| match &b.record.error {
                Some(e) => format!("#{}: {e}", b.number),
                None => format!(
                    "#{}: /readiness not 200 in {}/{} samples, breaker not closed in {} /health samples",
                    b.number, b.readiness_not_200, b.readiness_samples, b.breaker_not_closed
                ),
            })
            .collect();
        check(
            "a burst is not an outage: /readiness 200 and the breaker closed throughout",
            hurt.is_empty(),
            if hurt.is_empty() {
                bursts
                    .iter()
                    .map(|b| {
                        format!(
                            "#{} {} connections: {:.1} 2xx/s, {} 503 (p99 {})",
                            b.number,
                            b.connections,
                            b.ok_per_s,
                            b.record.unavailable,
                            ms(b.record.unavailable_p99_ms)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                hurt.join("; ")
            },
        );
    }
    let unrecovered: Vec<String> = faults
        .iter()
        .filter(|f| f.recovery_ms.is_none_or(|d| d > limits.max_recovery_ms))
        .map(|f| format!("#{} {} ({})", f.number, f.kind, ms(f.recovery_ms)))
        .collect();
    check(
        &format!(
            "requests succeeded again within {:.0} s of the database coming back",
            limits.max_recovery_ms / 1000.0
        ),
        unrecovered.is_empty(),
        if unrecovered.is_empty() {
            format!(
                "recovery: {}",
                faults
                    .iter()
                    .map(|f| format!("{} {}", f.kind, ms(f.recovery_ms)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!("too slow or never: {}", unrecovered.join(", "))
        },
    );
    if limits.min_fast_503_share > 0.0 {
        check(
            &format!(
                "at least {:.0} % of outage 503s answered in under {FAST_503_MS:.0} ms",
                limits.min_fast_503_share * 100.0
            ),
            fast.share.is_some_and(|s| s >= limits.min_fast_503_share),
            format!("{}/{}", fast.part, fast.total),
        );
    }
    out
}

#[cfg(test)]
pub(crate) mod fixture {
    //! A small recorded run for the unit tests of the analysis and the timeline.
    use super::*;
    use crate::record::{
        Attempt, FaultRecord, Observed, ProbeKind, ServiceRecord, WriteOutcome, WriteRecord,
    };
    use crate::schedule::{FaultKind, FaultSpec};
    use std::time::Duration;

    pub(crate) fn req(t: f64, status: u16, latency: f64) -> RequestRecord {
        RequestRecord {
            t_ms: t,
            route: "GET /api/tree".into(),
            status,
            latency_ms: latency,
            user: 0,
            error: None,
        }
    }

    pub(crate) fn probe(t: f64, kind: ProbeKind, status: u16) -> ProbeRecord {
        ProbeRecord {
            t_ms: t,
            probe: kind,
            status,
            latency_ms: 1.0,
            breaker: Some("closed".into()),
            database: None,
            uptime_s: Some((t / 1000.0) as u64),
            error: None,
        }
    }

    pub(crate) fn write(
        kind: WriteKind,
        marker: &str,
        outcome: WriteOutcome,
        statuses: &[u16],
    ) -> WriteRecord {
        WriteRecord {
            kind,
            marker: marker.into(),
            owner: "a@example.org".into(),
            attempts: statuses
                .iter()
                .map(|s| Attempt {
                    t_ms: 0.0,
                    status: *s,
                    replayed: false,
                })
                .collect(),
            outcome,
        }
    }

    /// A 10 s run: a kill at 2 s, database back at 4 s, ready at 4.5 s.
    pub(crate) fn run() -> RunRecord {
        let mut probes = Vec::new();
        let mut t = 0.0;
        while t < 10_000.0 {
            probes.push(probe(t, ProbeKind::Health, 200));
            let ready = !(2_300.0..4_500.0).contains(&t);
            probes.push(probe(
                t + 5.0,
                ProbeKind::Readiness,
                if ready { 200 } else { 503 },
            ));
            t += 100.0;
        }
        let mut requests = Vec::new();
        for i in 0..100 {
            let t = i as f64 * 100.0;
            let (status, lat) = if (2_000.0..4_000.0).contains(&t) {
                if t < 2_400.0 {
                    (503, 2_000.0)
                } else {
                    (503, 2.0)
                }
            } else if (4_000.0..4_500.0).contains(&t) {
                (503, 1.0)
            } else {
                (200, 10.0 + (i % 10) as f64)
            };
            requests.push(req(t, status, lat));
        }
        RunRecord {
            tool_version: "test".into(),
            started_at: "now".into(),
            service_url: "http://x".into(),
            backend: "local".into(),
            settings: serde_json::Value::Null,
            duration_ms: 10_000.0,
            faults: vec![FaultRecord {
                spec: FaultSpec::new(
                    FaultKind::Kill,
                    Duration::from_secs(2),
                    Duration::from_secs(2),
                ),
                action_started_at_ms: 2_000.0,
                injected_at_ms: 2_000.0,
                restored_at_ms: Some(4_000.0),
                actions: vec!["kill -KILL 1".into()],
                error: None,
            }],
            bursts: vec![],
            requests,
            probes,
            writes: vec![
                write(WriteKind::Person, "p1", WriteOutcome::Acknowledged, &[200]),
                write(
                    WriteKind::Person,
                    "p2",
                    WriteOutcome::FoundAfterError,
                    &[503],
                ),
                write(
                    WriteKind::Person,
                    "p3",
                    WriteOutcome::Unconfirmed,
                    &[503, 503],
                ),
                write(
                    WriteKind::Link,
                    "l1",
                    WriteOutcome::Acknowledged,
                    &[503, 200],
                ),
            ],
            observed: Observed {
                counts: vec![
                    (WriteKind::Person, "p1".into(), 1),
                    (WriteKind::Person, "p2".into(), 1),
                    (WriteKind::Link, "l1".into(), 1),
                ],
                unreadable_owners: vec![],
            },
            service: ServiceRecord {
                started_by_tool: true,
                final_exit: Some("exit status: 0".into()),
                clean_shutdown: Some(true),
                ..ServiceRecord::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::run;
    use super::*;
    use crate::record::ProbeKind;
    use crate::schedule::FaultKind;

    const LIMITS: Limits = Limits {
        max_detection_ms: 5_000.0,
        max_recovery_ms: 5_000.0,
        min_fast_503_share: 0.0,
    };

    /// The fixture's fault turned into `kind` (same window, same probes and requests).
    fn as_kind(kind: FaultKind) -> RunRecord {
        let mut r = run();
        r.faults[0].spec =
            crate::schedule::FaultSpec::new(kind, r.faults[0].spec.at, r.faults[0].spec.down);
        r
    }

    #[test]
    fn a_slow_database_is_a_degraded_phase_that_must_not_fail_anything() {
        // The fixture's fault window holds 503s and a readiness 503: as a latency fault,
        // that is a failure of the service.
        let r = as_kind(FaultKind::Latency);
        let w = windows(&r);
        assert_eq!(phase_at(&w, 2_000.0), Phase::Degraded);
        let a = analyse(&r, LIMITS);
        let f = &a.faults[0];
        assert_eq!(
            f.failed_requests, 20,
            "every request of the window got a 503"
        );
        assert!(f.readiness_not_200 > 0);
        let c = a
            .checks
            .iter()
            .find(|c| c.name.starts_with("a slow database is not an outage"))
            .expect("the degraded check");
        assert!(!c.passed, "{c:?}");
        assert!(c.detail.contains("20 requests failed"), "{}", c.detail);
        assert!(!a.passed);
        let degraded = a
            .phases
            .iter()
            .find(|p| p.phase == Phase::Degraded)
            .unwrap();
        assert_eq!(degraded.duration_ms, 2_000.0);
        // Nothing to detect: the detection check passes without it.
        assert!(
            a.checks
                .iter()
                .any(|c| c.name.starts_with("every outage") && c.passed)
        );
    }

    #[test]
    fn a_slow_database_served_without_trouble_passes() {
        let mut r = as_kind(FaultKind::Bandwidth);
        for q in &mut r.requests {
            q.status = 200;
        }
        for p in &mut r.probes {
            p.status = 200;
        }
        let a = analyse(&r, LIMITS);
        assert!(a.passed, "{:#?}", a.checks);
        assert_eq!(a.faults[0].failed_requests, 0);
    }

    #[test]
    fn a_blackhole_must_be_detected_like_a_freeze() {
        let a = analyse(&as_kind(FaultKind::Timeout), LIMITS);
        assert!(a.passed, "{:#?}", a.checks);
        let tight = Limits {
            max_detection_ms: 200.0,
            ..LIMITS
        };
        let a = analyse(&as_kind(FaultKind::ResetPeer), tight);
        let c = a
            .checks
            .iter()
            .find(|c| c.name.starts_with("every outage"))
            .unwrap();
        assert!(!c.passed && c.detail.contains("reset_peer"), "{c:?}");
    }

    #[test]
    fn a_burst_must_leave_readiness_and_the_breaker_alone() {
        let mut r = run();
        let burst = |from: f64, to: f64| crate::record::BurstRecord {
            spec: Some(crate::schedule::FaultSpec::new(
                FaultKind::Burst,
                std::time::Duration::from_millis(from as u64),
                std::time::Duration::from_millis((to - from) as u64),
            )),
            started_at_ms: from,
            ended_at_ms: to,
            ok: 100,
            unavailable: 40,
            unavailable_p99_ms: Some(3.0),
            ..Default::default()
        };
        // During the healthy end of the run: fine.
        r.bursts = vec![burst(6_000.0, 8_000.0)];
        let a = analyse(&r, LIMITS);
        assert!(a.passed, "{:#?}", a.checks);
        let b = &a.bursts[0];
        assert_eq!((b.connections, b.ok_per_s), (300, 50.0));
        assert_eq!((b.readiness_samples, b.readiness_not_200), (20, 0));
        // Over the readiness 503s: the burst check fails and says how often.
        r.bursts = vec![burst(2_000.0, 5_000.0)];
        let a = analyse(&r, LIMITS);
        let c = a
            .checks
            .iter()
            .find(|c| c.name.starts_with("a burst"))
            .unwrap();
        assert!(!c.passed && c.detail.contains("not 200 in 22/30"), "{c:?}");
        // A burst that could not run is no pass either.
        let mut broken = burst(6_000.0, 6_000.0);
        broken.error = Some("registering the burst reader answered 503".into());
        r.bursts = vec![broken];
        assert!(!analyse(&r, LIMITS).passed);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn phases_follow_the_fault_and_the_readiness_probe() {
        let r = run();
        let w = windows(&r);
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].start_ms, w[0].back_ms), (2_000.0, 4_000.0));
        assert_eq!(
            w[0].ready_ms, 4_505.0,
            "first readiness 200 sent after the database is back"
        );
        assert_eq!(phase_at(&w, 1_999.0), Phase::Healthy);
        assert_eq!(phase_at(&w, 2_000.0), Phase::Outage);
        assert_eq!(phase_at(&w, 4_000.0), Phase::Recovery);
        assert_eq!(phase_at(&w, 4_505.0), Phase::Healthy);
    }

    #[test]
    fn a_fault_that_never_recovers_is_outage_until_the_next_fault() {
        let mut r = run();
        r.faults[0].restored_at_ms = None;
        let mut second = r.faults[0].clone();
        second.injected_at_ms = 8_000.0;
        second.restored_at_ms = Some(9_000.0);
        r.faults.push(second);
        let w = windows(&r);
        assert_eq!(w[0].back_ms, 8_000.0);
        assert_eq!(w[0].ready_ms, 8_000.0);
        assert_eq!(phase_at(&w, 7_999.0), Phase::Outage);
        assert_eq!(w[1].ready_ms, 9_005.0);
    }

    #[test]
    fn detection_recovery_latency_and_fast_503s() {
        let a = analyse(&run(), LIMITS);
        let f = &a.faults[0];
        assert_eq!(f.detection_ms, Some(2_305.0 + 1.0 - 2_000.0));
        // First 2xx sent after 4000 ms: the request at 4500 ms, answered 15 ms later.
        assert_eq!(f.recovery_ms, Some(515.0));
        assert_eq!(f.ready_again_ms, Some(505.0));
        assert_eq!(f.outage_statuses.unavailable, 20);
        assert_eq!(
            f.fast_503, 16,
            "four slow 503s while the breaker counted failures"
        );
        assert_eq!((a.fast_503_share.part, a.fast_503_share.total), (16, 20));
        let healthy = &a.phases[0];
        assert_eq!(healthy.phase, Phase::Healthy);
        assert_eq!(healthy.statuses.total, 74);
        assert_eq!(healthy.p50_ms, Some(15.0));
        assert_eq!(healthy.p99_ms, Some(19.0));
        let outage = &a.phases[1];
        assert_eq!(outage.p99_ms, Some(2_000.0));
        assert_eq!(outage.duration_ms, 2_000.0);
        assert_eq!(a.phases[2].statuses.total, 6, "4000..4505 ms: recovery");
        assert!(a.passed, "{:#?}", a.checks);
    }

    #[test]
    fn registration_and_login_stay_out_of_the_phase_percentiles() {
        let mut r = run();
        for q in r.requests.iter_mut().take(10) {
            q.route = "POST /api/auth/login".into();
            q.latency_ms = 9_000.0;
        }
        let a = analyse(&r, LIMITS);
        assert_eq!(a.auth.requests, 10);
        assert_eq!(a.auth.p50_ms, Some(9_000.0));
        let healthy = &a.phases[0];
        assert_eq!(healthy.statuses.total, 74, "still counted by status");
        assert!(healthy.max_ms.unwrap() < 100.0, "{healthy:?}");
    }

    #[test]
    fn retries_answered_by_a_replay_are_counted() {
        let mut r = run();
        let mut w = super::fixture::write(
            WriteKind::Person,
            "p9",
            WriteOutcome::Acknowledged,
            &[503, 200],
        );
        w.attempts[1].replayed = true;
        r.writes.push(w);
        r.observed.counts.push((WriteKind::Person, "p9".into(), 1));
        let acc = account_writes(&r.writes, &r.observed);
        assert_eq!(acc.replays, 1);
        assert!(acc.lost.is_empty() && acc.duplicated.is_empty());
    }

    #[test]
    fn lost_and_duplicated_writes_fail_the_run() {
        let mut r = run();
        r.observed.counts.retain(|(_, m, _)| m != "p1");
        r.observed.counts.push((WriteKind::Link, "l1".into(), 1));
        r.observed.counts.push((WriteKind::Person, "p3".into(), 2));
        let acc = account_writes(&r.writes, &r.observed);
        assert_eq!(acc.lost, vec!["p1".to_string()]);
        assert_eq!(acc.duplicated, vec!["p3 x2".to_string()]);
        assert_eq!(acc.retried, 2);
        let a = analyse(&r, LIMITS);
        assert!(!a.passed);
        let failed: Vec<&str> = a
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            failed,
            [
                "no acknowledged write lost",
                "no write stored twice, none stored that was refused"
            ]
        );
    }

    #[test]
    fn a_write_given_up_on_may_be_stored_once_or_not_at_all() {
        let mut r = run();
        let acc = account_writes(&r.writes, &r.observed);
        assert_eq!(
            (
                acc.unconfirmed,
                acc.unconfirmed_absent,
                acc.unconfirmed_stored
            ),
            (1, 1, 0)
        );
        r.observed.counts.push((WriteKind::Person, "p3".into(), 1));
        let acc = account_writes(&r.writes, &r.observed);
        assert_eq!((acc.unconfirmed_absent, acc.unconfirmed_stored), (0, 1));
        assert!(acc.lost.is_empty() && acc.duplicated.is_empty());
    }

    #[test]
    fn an_unreadable_account_is_not_a_pass() {
        let mut r = run();
        r.observed.unreadable_owners.push("a@example.org".into());
        let a = analyse(&r, LIMITS);
        assert_eq!(a.writes.unverified, 4);
        assert!(!a.passed);
    }

    #[test]
    fn a_health_failure_or_a_restart_fails_the_run() {
        let mut r = run();
        r.probes[10].status = 0;
        r.probes[10].error = Some("connection refused".into());
        let a = analyse(&r, LIMITS);
        let c = a
            .checks
            .iter()
            .find(|c| c.name.starts_with("/health"))
            .unwrap();
        assert!(
            !c.passed && c.detail.contains("connection refused"),
            "{}",
            c.detail
        );

        let mut r = run();
        // uptime_s of the health probe at ~6 s drops to 0.
        let i = r
            .probes
            .iter()
            .position(|p| p.t_ms >= 6_000.0 && p.probe == ProbeKind::Health)
            .unwrap();
        r.probes[i].uptime_s = Some(0);
        let a = analyse(&r, LIMITS);
        assert!(a.probes.uptime_reset);
        assert!(!a.passed);

        let mut r = run();
        r.service.exited_during_run = Some("at 3000 ms: signal 9".into());
        assert!(!analyse(&r, LIMITS).passed);
    }

    #[test]
    fn slow_detection_or_no_recovery_fails_the_run() {
        let tight = Limits {
            max_detection_ms: 100.0,
            ..LIMITS
        };
        assert!(!analyse(&run(), tight).passed);
        let mut r = run();
        for q in r.requests.iter_mut().filter(|q| q.t_ms >= 4_000.0) {
            q.status = 503;
        }
        let a = analyse(&r, LIMITS);
        assert_eq!(a.faults[0].recovery_ms, None);
        assert!(!a.passed);
    }

    #[test]
    fn an_undetected_restart_is_fine() {
        let mut r = run();
        r.faults[0].spec.kind = FaultKind::Restart;
        for p in r.probes.iter_mut() {
            p.status = 200;
        }
        let a = analyse(&r, LIMITS);
        assert_eq!(a.faults[0].detection_ms, None);
        assert!(a.passed, "{:#?}", a.checks);
    }

    #[test]
    fn the_fast_503_share_can_be_required() {
        let strict = Limits {
            min_fast_503_share: 0.9,
            ..LIMITS
        };
        let a = analyse(&run(), strict);
        assert!(!a.passed, "16/20 = 80 % < 90 %");
    }
}
