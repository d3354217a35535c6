//! The fault schedule: which fault, when, and for how long it stays in force.
//!
//! Written on the command line as a comma-separated list of `KIND[:AMOUNT]@AT[+FOR]`, times
//! relative to the start of the load:
//!
//! - `kill@8s+4s`: SIGKILL the database 8 s in, start it again 4 s later;
//! - `freeze@20s+4s`: SIGSTOP it (sockets stay open, nothing answers), SIGCONT 4 s later;
//! - `restart@32s`: stop it cleanly (SIGTERM, or `docker compose stop`) and start it again,
//!   after `+FOR` if given.
//!
//! Gray faults, put in place by Toxiproxy between the service and the database (local
//! back-end):
//!
//! - `latency:200ms@5s+8s`: every byte delayed by AMOUNT each way (default 200 ms);
//! - `timeout@5s+4s` (or `blackhole`): connections stay open, nothing gets through;
//! - `reset_peer@5s+4s`: every connection is reset (TCP RST) as soon as data flows;
//! - `bandwidth:64@5s+8s`: at most AMOUNT KB/s each way (default 256);
//! - `slicer:64@5s+8s`: answers cut into pieces of about AMOUNT bytes (default 64), 1 ms apart.
//!
//! And a load step: `burst:300@10s+15s`: AMOUNT extra connections (default 300) reading
//! `GET /api/tree` as fast as they are answered. A burst may overlap a database fault;
//! database faults may not overlap each other.
//!
//! Or generated: [`cycles`] repeats kill, freeze, restart with a gap between faults.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What is done to the database, its network, or the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// SIGKILL (`docker compose kill -s SIGKILL`), then start again.
    Kill,
    /// SIGSTOP (`docker compose pause`), then SIGCONT (`unpause`).
    Freeze,
    /// Clean stop (SIGTERM, `docker compose stop`), then start again.
    Restart,
    /// Toxiproxy `latency` both ways: AMOUNT milliseconds.
    Latency,
    /// Toxiproxy `timeout` 0 both ways: a blackhole (a partition, a hung primary).
    Timeout,
    /// Toxiproxy `reset_peer`: all connections reset.
    ResetPeer,
    /// Toxiproxy `bandwidth` both ways: AMOUNT KB/s.
    Bandwidth,
    /// Toxiproxy `slicer` on the answers: pieces of about AMOUNT bytes.
    Slicer,
    /// AMOUNT extra connections reading trees (a load step, not a fault of the database).
    Burst,
}

/// How a fault should look from outside, which decides the checks of the analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The database is unreachable: an outage the service must detect (or may, for a clean
    /// restart) and recover from.
    Outage,
    /// The database is slower but works: not an outage. No request may fail, `/readiness`
    /// stays 200 and the breaker closed.
    Degraded,
    /// More load than usual on a healthy database.
    Load,
}

impl FaultKind {
    /// Every kind, in the order of the help text.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Kill,
        FaultKind::Freeze,
        FaultKind::Restart,
        FaultKind::Latency,
        FaultKind::Timeout,
        FaultKind::ResetPeer,
        FaultKind::Bandwidth,
        FaultKind::Slicer,
        FaultKind::Burst,
    ];

    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Freeze => "freeze",
            FaultKind::Restart => "restart",
            FaultKind::Latency => "latency",
            FaultKind::Timeout => "timeout",
            FaultKind::ResetPeer => "reset_peer",
            FaultKind::Bandwidth => "bandwidth",
            FaultKind::Slicer => "slicer",
            FaultKind::Burst => "burst",
        }
    }

    /// Reads a name (`pause` for freeze and `blackhole` for timeout are accepted too).
    pub fn parse(name: &str) -> Option<FaultKind> {
        match name {
            "pause" => Some(FaultKind::Freeze),
            "blackhole" => Some(FaultKind::Timeout),
            other => FaultKind::ALL.into_iter().find(|k| k.as_str() == other),
        }
    }

    /// How long the fault stays in force when the schedule does not say.
    pub fn default_down(self) -> Duration {
        match self {
            FaultKind::Restart => Duration::ZERO,
            FaultKind::Kill | FaultKind::Freeze | FaultKind::Timeout | FaultKind::ResetPeer => {
                Duration::from_secs(3)
            }
            FaultKind::Latency | FaultKind::Bandwidth | FaultKind::Slicer | FaultKind::Burst => {
                Duration::from_secs(8)
            }
        }
    }

    /// The AMOUNT when the schedule does not give one (`None`: the kind takes none).
    pub fn default_amount(self) -> Option<u64> {
        match self {
            FaultKind::Latency => Some(200),
            FaultKind::Bandwidth => Some(256),
            FaultKind::Slicer => Some(64),
            FaultKind::Burst => Some(300),
            _ => None,
        }
    }

    /// The unit of AMOUNT, for messages.
    fn amount_unit(self) -> &'static str {
        match self {
            FaultKind::Latency => "a duration each way, e.g. latency:200ms",
            FaultKind::Bandwidth => "KB/s, e.g. bandwidth:64",
            FaultKind::Slicer => "bytes per piece, e.g. slicer:64",
            FaultKind::Burst => "connections, e.g. burst:300",
            _ => "nothing",
        }
    }

    /// What the fault looks like from outside.
    pub fn effect(self) -> Effect {
        match self {
            FaultKind::Kill
            | FaultKind::Freeze
            | FaultKind::Restart
            | FaultKind::Timeout
            | FaultKind::ResetPeer => Effect::Outage,
            FaultKind::Latency | FaultKind::Bandwidth | FaultKind::Slicer => Effect::Degraded,
            FaultKind::Burst => Effect::Load,
        }
    }

    /// Whether Toxiproxy puts it in place (so the service must reach the database through it).
    pub fn needs_proxy(self) -> bool {
        matches!(
            self,
            FaultKind::Latency
                | FaultKind::Timeout
                | FaultKind::ResetPeer
                | FaultKind::Bandwidth
                | FaultKind::Slicer
        )
    }

    /// Whether `/readiness` must turn 503 for this fault. A clean restart can be over before
    /// the service's next heartbeat, so it may go unnoticed, and that is fine; a degraded
    /// database or a burst must not be noticed at all.
    pub fn must_be_detected(self) -> bool {
        self.effect() == Effect::Outage && self != FaultKind::Restart
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One planned fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// What is done.
    pub kind: FaultKind,
    /// When, from the start of the load.
    #[serde(with = "millis")]
    pub at: Duration,
    /// How long the fault stays in force (the database killed, frozen, stopped, its network
    /// hurt, or the burst running) before it is undone.
    #[serde(with = "millis")]
    pub down: Duration,
    /// The kind's AMOUNT (latency in ms, bandwidth in KB/s, slicer bytes, burst connections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<u64>,
}

impl FaultSpec {
    /// A fault with the kind's default AMOUNT.
    pub fn new(kind: FaultKind, at: Duration, down: Duration) -> FaultSpec {
        FaultSpec {
            kind,
            at,
            down,
            amount: kind.default_amount(),
        }
    }

    /// When the fault is undone, from the start of the load.
    pub fn back_at(&self) -> Duration {
        self.at + self.down
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        match (self.kind, self.amount) {
            (FaultKind::Latency, Some(ms)) => write!(f, ":{}", show(Duration::from_millis(ms)))?,
            (_, Some(n)) => write!(f, ":{n}")?,
            (_, None) => {}
        }
        write!(f, "@{}", show(self.at))?;
        if !self.down.is_zero() {
            write!(f, "+{}", show(self.down))?;
        }
        Ok(())
    }
}

/// `1.5s`, `250ms`, `2m`.
pub fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 60_000 == 0 && ms >= 60_000 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else if ms >= 1000 {
        format!("{}s", d.as_secs_f64())
    } else {
        format!("{ms}ms")
    }
}

/// Parses `250ms`, `4s`, `1.5s`, `2m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit_ms) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        (t, 1000.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (examples: 500ms, 4s, 1.5s, 2m)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{text:?}: a duration must be zero or positive"));
    }
    Ok(Duration::from_micros(
        (value * unit_ms * 1000.0).round() as u64
    ))
}

/// Parses `kill@8s+4s, latency:200ms@20s+8s, burst:300@40s+10s, restart@32s` and checks
/// that the database faults do not overlap (each one starts after the previous one is
/// undone), nor do the bursts; a burst may overlap a database fault.
pub fn parse_schedule(text: &str) -> Result<Vec<FaultSpec>, String> {
    let mut faults = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (head, rest) = item.split_once('@').ok_or_else(|| {
            format!(
                "{item:?}: expected KIND[:AMOUNT]@AT[+FOR], e.g. kill@8s+4s or latency:200ms@5s+8s"
            )
        })?;
        let (name, amount) = match head.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (head.trim(), None),
        };
        let kind = FaultKind::parse(name).ok_or_else(|| {
            format!(
                "{item:?}: unknown fault {name:?} ({})",
                FaultKind::ALL.map(FaultKind::as_str).join(", ")
            )
        })?;
        let amount = match (amount, kind.default_amount()) {
            (None, default) => default,
            (Some(a), None) => {
                return Err(format!("{item:?}: a {kind} takes no amount (:{a})"));
            }
            (Some(a), Some(_)) => {
                let n = if kind == FaultKind::Latency {
                    parse_duration(a).map(|d| d.as_millis() as u64)
                } else {
                    a.parse::<u64>()
                        .map_err(|_| format!("{a:?} is not a whole number"))
                }
                .map_err(|e| format!("{item:?}: {e}; the amount is {}", kind.amount_unit()))?;
                if n == 0 {
                    return Err(format!(
                        "{item:?}: the amount must be positive ({})",
                        kind.amount_unit()
                    ));
                }
                Some(n)
            }
        };
        let (at, down) = match rest.split_once('+') {
            Some((at, down)) => (parse_duration(at)?, parse_duration(down)?),
            None => (parse_duration(rest)?, kind.default_down()),
        };
        if kind != FaultKind::Restart && down.is_zero() {
            return Err(format!(
                "{item:?}: a {kind} needs a positive duration (+FOR)"
            ));
        }
        faults.push(FaultSpec {
            kind,
            at,
            down,
            amount,
        });
    }
    if faults.is_empty() {
        return Err("the schedule names no fault".into());
    }
    faults.sort_by_key(|f| f.at);
    for load in [false, true] {
        let same: Vec<&FaultSpec> = faults
            .iter()
            .filter(|f| (f.kind.effect() == Effect::Load) == load)
            .collect();
        for pair in same.windows(2) {
            if pair[1].at <= pair[0].back_at() {
                return Err(format!("{} starts before {} is over", pair[1], pair[0]));
            }
        }
    }
    Ok(faults)
}

/// Whether any fault of the schedule needs Toxiproxy between the service and the database.
pub fn needs_proxy(faults: &[FaultSpec]) -> bool {
    faults.iter().any(|f| f.kind.needs_proxy())
}

/// `n` cycles of kill, freeze, restart: the first fault at `warmup`, each lasting `down`
/// (a restart lasts zero), and `gap` of healthy traffic after each.
pub fn cycles(n: u32, warmup: Duration, down: Duration, gap: Duration) -> Vec<FaultSpec> {
    let mut at = warmup;
    let mut faults = Vec::new();
    for _ in 0..n {
        for kind in [FaultKind::Kill, FaultKind::Freeze, FaultKind::Restart] {
            let down = if kind == FaultKind::Restart {
                Duration::ZERO
            } else {
                down
            };
            faults.push(FaultSpec::new(kind, at, down));
            at += down + gap;
        }
    }
    faults
}

/// Checks that the run lasts long enough to see the service recover from the last fault.
pub fn check_fits(
    faults: &[FaultSpec],
    duration: Duration,
    settle: Duration,
) -> Result<(), String> {
    if let Some(last) = faults.iter().map(FaultSpec::back_at).max() {
        if last + settle > duration {
            return Err(format!(
                "the run ends at {} but the last fault ends at {}: allow at least {} after it to see the recovery (use --duration {} or more)",
                show(duration),
                show(last),
                show(settle),
                show(last + settle)
            ));
        }
    }
    Ok(())
}

/// The schedule written back in the command-line syntax.
pub fn to_text(faults: &[FaultSpec]) -> String {
    faults
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Serialises a [`Duration`] as integer milliseconds.
pub mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes milliseconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    /// Reads milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("250ms").unwrap(), s(0.25));
        assert_eq!(parse_duration("4s").unwrap(), s(4.0));
        assert_eq!(parse_duration("1.5s").unwrap(), s(1.5));
        assert_eq!(parse_duration("2m").unwrap(), s(120.0));
        assert_eq!(parse_duration("3").unwrap(), s(3.0));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn a_schedule_with_defaults_and_explicit_down_times() {
        let f = parse_schedule("freeze@20s+4s, kill@8s+4s ,restart@32s").unwrap();
        assert_eq!(
            f,
            vec![
                FaultSpec::new(FaultKind::Kill, s(8.0), s(4.0)),
                FaultSpec::new(FaultKind::Freeze, s(20.0), s(4.0)),
                FaultSpec::new(FaultKind::Restart, s(32.0), Duration::ZERO),
            ],
            "sorted by time"
        );
        assert_eq!(to_text(&f), "kill@8s+4s,freeze@20s+4s,restart@32s");
        assert_eq!(parse_schedule(&to_text(&f)).unwrap(), f, "round trip");
        let d = parse_schedule("kill@1s").unwrap();
        assert_eq!(d[0].down, FaultKind::Kill.default_down());
    }

    #[test]
    fn bad_schedules_say_why() {
        assert!(parse_schedule("").unwrap_err().contains("no fault"));
        assert!(
            parse_schedule("explode@1s")
                .unwrap_err()
                .contains("unknown fault")
        );
        assert!(
            parse_schedule("kill 1s")
                .unwrap_err()
                .contains("KIND[:AMOUNT]@AT")
        );
        assert!(
            parse_schedule("kill@1s+0s")
                .unwrap_err()
                .contains("positive duration")
        );
        let overlap = parse_schedule("kill@5s+4s,freeze@8s+1s").unwrap_err();
        assert!(overlap.contains("before kill@5s+4s is over"), "{overlap}");
    }

    #[test]
    fn gray_faults_and_bursts_with_their_amounts() {
        let f = parse_schedule(
            "latency:150ms@2s+5s, blackhole@10s+3s, reset_peer@16s, bandwidth:64@20s+4s, slicer@26s+2s, burst:50@3s+10s",
        )
        .unwrap();
        let shown: Vec<String> = f.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "latency:150ms@2s+5s",
                "burst:50@3s+10s",
                "timeout@10s+3s",
                "reset_peer@16s+3s",
                "bandwidth:64@20s+4s",
                "slicer:64@26s+2s",
            ]
        );
        assert_eq!(f[0].amount, Some(150), "latency in milliseconds");
        assert_eq!(parse_schedule(&to_text(&f)).unwrap(), f, "round trip");
        let d = parse_schedule("latency@1s,burst@20s").unwrap();
        assert_eq!((d[0].amount, d[0].down), (Some(200), s(8.0)));
        assert_eq!((d[1].amount, d[1].down), (Some(300), s(8.0)));
        assert!(needs_proxy(&f));
        assert!(!needs_proxy(&parse_schedule("kill@1s,burst@5s").unwrap()));
    }

    #[test]
    fn each_kind_has_its_effect() {
        use FaultKind::*;
        for k in FaultKind::ALL {
            assert_eq!(FaultKind::parse(k.as_str()), Some(k), "{k}");
        }
        let detected: Vec<_> = FaultKind::ALL
            .into_iter()
            .filter(|k| k.must_be_detected())
            .collect();
        assert_eq!(detected, [Kill, Freeze, Timeout, ResetPeer]);
        assert_eq!(Latency.effect(), Effect::Degraded);
        assert_eq!(Bandwidth.effect(), Effect::Degraded);
        assert_eq!(Slicer.effect(), Effect::Degraded);
        assert_eq!(Burst.effect(), Effect::Load);
        assert!(!Burst.needs_proxy() && !Kill.needs_proxy() && Timeout.needs_proxy());
    }

    #[test]
    fn bad_amounts_and_overlaps_say_why() {
        let e = parse_schedule("kill:3@1s").unwrap_err();
        assert!(e.contains("takes no amount"), "{e}");
        let e = parse_schedule("bandwidth:fast@1s").unwrap_err();
        assert!(e.contains("KB/s"), "{e}");
        let e = parse_schedule("latency:soon@1s").unwrap_err();
        assert!(e.contains("a duration each way"), "{e}");
        let e = parse_schedule("burst:0@1s").unwrap_err();
        assert!(e.contains("positive"), "{e}");
        // A burst over a fault is the point; two database faults at once are not.
        assert!(parse_schedule("timeout@5s+3s,burst:20@4s+6s").is_ok());
        let e = parse_schedule("latency@5s+8s,timeout@8s+2s").unwrap_err();
        assert!(e.contains("before latency:200ms@5s+8s is over"), "{e}");
        let e = parse_schedule("burst@5s+8s,burst@8s+2s").unwrap_err();
        assert!(e.contains("before burst:300@5s+8s is over"), "{e}");
    }

    #[test]
    fn cycles_alternate_kill_freeze_restart() {
        let f = cycles(2, s(5.0), s(3.0), s(6.0));
        let kinds: Vec<_> = f.iter().map(|f| f.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["kill", "freeze", "restart", "kill", "freeze", "restart"]
        );
        assert_eq!(
            to_text(&f),
            "kill@5s+3s,freeze@14s+3s,restart@23s,kill@29s+3s,freeze@38s+3s,restart@47s"
        );
        // What cycles produce is a valid schedule.
        assert_eq!(parse_schedule(&to_text(&f)).unwrap(), f);
    }

    #[test]
    fn the_run_must_outlast_the_last_fault() {
        let f = parse_schedule("kill@5s+3s").unwrap();
        assert!(check_fits(&f, s(13.0), s(5.0)).is_ok());
        let err = check_fits(&f, s(10.0), s(5.0)).unwrap_err();
        assert!(err.contains("--duration 13s"), "{err}");
    }

    #[test]
    fn durations_print_compactly() {
        assert_eq!(show(s(0.25)), "250ms");
        assert_eq!(show(s(4.0)), "4s");
        assert_eq!(show(s(1.5)), "1.5s");
        assert_eq!(show(s(120.0)), "2m");
    }
}
