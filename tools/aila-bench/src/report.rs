//! What a benchmark reports: per scenario, figures with their value in every run, their
//! median and spread, and the target they are held to; printed as a table or as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::stats::Summary;

/// A target a figure is held to.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", content = "limit", rename_all = "snake_case")]
pub enum Target {
    /// The figure must be below the limit.
    Below(f64),
    /// The figure must be above the limit.
    Above(f64),
}

impl Target {
    fn holds(&self, v: f64) -> bool {
        match *self {
            Target::Below(l) => v < l,
            Target::Above(l) => v > l,
        }
    }

    fn text(&self, unit: &str) -> String {
        match *self {
            Target::Below(l) => format!("< {} {unit}", trim(l)),
            Target::Above(l) => format!("> {} {unit}", trim(l)),
        }
    }
}

/// One figure of a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    /// What it is (`p99`, `throughput`, ...).
    pub name: String,
    /// Unit (`ms`, `req/s`, `%`, `MiB`).
    pub unit: &'static str,
    /// One value per run.
    pub values: Vec<f64>,
    /// Median and spread of `values`.
    pub summary: Option<Summary>,
    /// The target, if any.
    pub target: Option<Target>,
    /// Whether the median meets the target.
    pub met: Option<bool>,
    /// Whether every run meets the target.
    pub met_every_run: Option<bool>,
}

impl Metric {
    /// A figure from its per-run values.
    pub fn new(name: &str, unit: &'static str, values: Vec<f64>, target: Option<Target>) -> Metric {
        let summary = Summary::of(&values);
        let met = target.zip(summary).map(|(t, s)| t.holds(s.median));
        let met_every_run =
            target.map(|t| !values.is_empty() && values.iter().all(|v| t.holds(*v)));
        Metric {
            name: name.to_string(),
            unit,
            values,
            summary,
            target,
            met,
            met_every_run,
        }
    }
}

/// One scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// Scenario name (`health-up`).
    pub name: String,
    /// What is measured, in words.
    pub what: String,
    /// How (runs, durations, concurrency).
    pub method: String,
    /// The figures.
    pub metrics: Vec<Metric>,
    /// Answers by HTTP status over every measured run (load scenarios).
    pub statuses: BTreeMap<String, u64>,
    /// Transport errors over every measured run.
    pub transport_errors: u64,
    /// Anything worth knowing about this run.
    pub notes: Vec<String>,
}

/// The machine, for the record.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub nproc: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// Total memory, MiB.
    pub memory_mib: u64,
    /// 1-, 5-, 15-minute load when the benchmark started.
    pub loadavg_start: String,
    /// The same when it ended.
    pub loadavg_end: String,
}

impl Machine {
    /// Reads /proc.
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|x| x.1))
            .unwrap_or("unknown")
            .trim()
            .to_string();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_mib = meminfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("MemTotal:")?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
            / 1024;
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel: read_trim("/proc/sys/kernel/osrelease"),
            memory_mib,
            loadavg_start: loadavg(),
            loadavg_end: String::new(),
        }
    }
}

/// The first three fields of /proc/loadavg.
pub fn loadavg() -> String {
    read_trim("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Everything one invocation measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When it started (UTC, ISO-8601).
    pub date: String,
    /// The command line.
    pub command: String,
    /// The machine.
    pub machine: Machine,
    /// The database server used.
    pub database: String,
    /// The scenarios, in the order run.
    pub scenarios: Vec<ScenarioReport>,
}

fn trim(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e12 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// A number with a precision that suits its size.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The human table.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let m = &report.machine;
    let _ = writeln!(
        out,
        "aila-bench {} | {} CPUs ({}) | {} MiB | kernel {} | load {} -> {} | database: {}",
        report.date,
        m.nproc,
        m.cpu_model,
        m.memory_mib,
        m.kernel,
        m.loadavg_start,
        m.loadavg_end,
        report.database
    );
    for s in &report.scenarios {
        let _ = writeln!(out, "\n== {}: {} ==", s.name, s.what);
        let _ = writeln!(out, "   {}", s.method);
        let _ = writeln!(
            out,
            "   {:<40} {:>10} {:>23}   target",
            "figure", "median", "spread (min .. max)"
        );
        for metric in &s.metrics {
            let (median, spread) = match metric.summary {
                Some(x) => (
                    fmt_num(x.median),
                    format!("{} .. {}", fmt_num(x.min), fmt_num(x.max)),
                ),
                None => ("-".into(), "-".into()),
            };
            let target = match (metric.target, metric.met, metric.met_every_run) {
                (Some(t), Some(met), every) => format!(
                    "{} {}{}",
                    t.text(metric.unit),
                    if met { "met" } else { "MISSED" },
                    match (met, every) {
                        (true, Some(false)) => " (not in every run)",
                        _ => "",
                    }
                ),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "   {:<40} {:>10} {:>23}   {}",
                format!("{} ({})", metric.name, metric.unit),
                median,
                spread,
                target
            );
        }
        if !s.statuses.is_empty() || s.transport_errors > 0 {
            let statuses: Vec<String> = s
                .statuses
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(
                out,
                "   answers by status: {}; transport errors: {}",
                statuses.join(", "),
                s.transport_errors
            );
        }
        for n in &s.notes {
            let _ = writeln!(out, "   note: {n}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_on_median_and_every_run() {
        let m = Metric::new("p99", "ms", vec![0.5, 0.7, 1.2], Some(Target::Below(1.0)));
        assert_eq!(m.met, Some(true));
        assert_eq!(m.met_every_run, Some(false));
        let m = Metric::new(
            "rps",
            "req/s",
            vec![2900.0, 3100.0],
            Some(Target::Above(3000.0)),
        );
        assert_eq!(m.met, Some(false)); // median 3000 is not above 3000
        let m = Metric::new("x", "ms", vec![], Some(Target::Below(1.0)));
        assert_eq!((m.met, m.met_every_run), (None, Some(false)));
    }
}
