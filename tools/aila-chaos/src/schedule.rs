//! The fault schedule: which fault, when, and for how long the database stays down.
//!
//! Written on the command line as a comma-separated list of `KIND@AT[+DOWN]`, times relative
//! to the start of the load:
//!
//! - `kill@8s+4s`: SIGKILL the database 8 s in, start it again 4 s later;
//! - `freeze@20s+4s`: SIGSTOP it (a black hole: sockets stay open, nothing answers), SIGCONT
//!   4 s later;
//! - `restart@32s`: stop it cleanly (SIGTERM, or `docker compose stop`) and start it again,
//!   after `+DOWN` if given.
//!
//! Or generated: [`cycles`] repeats kill, freeze, restart with a gap between faults.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What is done to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// SIGKILL (`docker compose kill -s SIGKILL`), then start again.
    Kill,
    /// SIGSTOP (`docker compose pause`), then SIGCONT (`unpause`).
    Freeze,
    /// Clean stop (SIGTERM, `docker compose stop`), then start again.
    Restart,
}

impl FaultKind {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Freeze => "freeze",
            FaultKind::Restart => "restart",
        }
    }

    /// How long the database stays down when the schedule does not say.
    pub fn default_down(self) -> Duration {
        match self {
            FaultKind::Kill | FaultKind::Freeze => Duration::from_secs(3),
            FaultKind::Restart => Duration::ZERO,
        }
    }

    /// Whether `/readiness` must turn 503 for this fault. A clean restart can be over before
    /// the service's next heartbeat, so it may go unnoticed, and that is fine.
    pub fn must_be_detected(self) -> bool {
        !matches!(self, FaultKind::Restart)
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
    /// How long the database stays down (killed, frozen, stopped) before it is brought back.
    #[serde(with = "millis")]
    pub down: Duration,
}

impl FaultSpec {
    /// When the database is brought back, from the start of the load.
    pub fn back_at(&self) -> Duration {
        self.at + self.down
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.kind, show(self.at))?;
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

/// Parses `kill@8s+4s, freeze@20s+4s, restart@32s` and checks that the faults do not
/// overlap (each one starts after the previous database is back).
pub fn parse_schedule(text: &str) -> Result<Vec<FaultSpec>, String> {
    let mut faults = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (kind, rest) = item
            .split_once('@')
            .ok_or_else(|| format!("{item:?}: expected KIND@AT[+DOWN], e.g. kill@8s+4s"))?;
        let kind = match kind.trim() {
            "kill" => FaultKind::Kill,
            "freeze" | "pause" => FaultKind::Freeze,
            "restart" => FaultKind::Restart,
            other => {
                return Err(format!(
                    "{item:?}: unknown fault {other:?} (kill, freeze or restart)"
                ));
            }
        };
        let (at, down) = match rest.split_once('+') {
            Some((at, down)) => (parse_duration(at)?, parse_duration(down)?),
            None => (parse_duration(rest)?, kind.default_down()),
        };
        if kind != FaultKind::Restart && down.is_zero() {
            return Err(format!(
                "{item:?}: a {kind} needs a positive down time (+DOWN)"
            ));
        }
        faults.push(FaultSpec { kind, at, down });
    }
    if faults.is_empty() {
        return Err("the schedule names no fault".into());
    }
    faults.sort_by_key(|f| f.at);
    for pair in faults.windows(2) {
        if pair[1].at <= pair[0].back_at() {
            return Err(format!(
                "{} starts before the database is back from {}",
                pair[1], pair[0]
            ));
        }
    }
    Ok(faults)
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
            faults.push(FaultSpec { kind, at, down });
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
                FaultSpec {
                    kind: FaultKind::Kill,
                    at: s(8.0),
                    down: s(4.0)
                },
                FaultSpec {
                    kind: FaultKind::Freeze,
                    at: s(20.0),
                    down: s(4.0)
                },
                FaultSpec {
                    kind: FaultKind::Restart,
                    at: s(32.0),
                    down: Duration::ZERO
                },
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
        assert!(parse_schedule("kill 1s").unwrap_err().contains("KIND@AT"));
        assert!(
            parse_schedule("kill@1s+0s")
                .unwrap_err()
                .contains("positive down")
        );
        let overlap = parse_schedule("kill@5s+4s,freeze@8s+1s").unwrap_err();
        assert!(overlap.contains("before the database is back"), "{overlap}");
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
