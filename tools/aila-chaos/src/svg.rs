//! The timeline picture, SVG written by hand: one shared time axis, three bands.
//!
//! 1. requests per second, stacked by status (2xx green, 503 red, other 4xx amber, other
//!    5xx purple, no answer black);
//! 2. latency of every request on a log scale (dots coloured the same way), the p50 and p99
//!    of each time bin as lines, and the 50 ms line;
//! 3. three strips from the probes: the circuit breaker state reported by `/health`
//!    (closed green, half-open amber, open red), `/readiness` (200 green, 503 red) and
//!    `/health` (200 green, anything else black).
//!
//! Each fault's outage is shaded red across all bands and labelled; its recovery (database
//! back, service not ready yet) is shaded amber. A fault that only slows the database
//! (latency, bandwidth, slicer) is shaded blue; a load burst is a blue bar with its number
//! of connections above the requests band.

use std::fmt::Write;

use crate::analysis::{Analysis, Window, is_auth, percentile, windows};
use crate::record::{ProbeKind, ProbeRecord, RunRecord};
use crate::schedule::{Effect, FaultKind};

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 24.0;
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const RPS_TOP: f64 = 92.0;
const RPS_H: f64 = 160.0;
const LAT_TOP: f64 = 292.0;
const LAT_H: f64 = 200.0;
const STRIP_TOP: f64 = 528.0;
const STRIP_H: f64 = 16.0;
const STRIP_GAP: f64 = 8.0;
const AXIS_Y: f64 = STRIP_TOP + 3.0 * (STRIP_H + STRIP_GAP) + 4.0;
const HEIGHT: f64 = AXIS_Y + 92.0;

const GREEN: &str = "#43a047";
const RED: &str = "#e53935";
const AMBER: &str = "#f9a825";
const PURPLE: &str = "#8e24aa";
const BLACK: &str = "#212121";
const GREY: &str = "#bdbdbd";
const BLUE: &str = "#1e88e5";

/// The colour of a status class.
fn status_colour(status: u16) -> &'static str {
    match status {
        200..=299 => GREEN,
        503 => RED,
        400..=499 => AMBER,
        0 => BLACK,
        _ => PURPLE,
    }
}

/// Index of a status class in the stacked bars (bottom to top).
fn class_index(status: u16) -> usize {
    match status {
        200..=299 => 0,
        503 => 1,
        400..=499 => 2,
        0 => 4,
        _ => 3,
    }
}

const CLASSES: [(&str, &str); 5] = [
    (GREEN, "2xx"),
    (RED, "503"),
    (AMBER, "other 4xx"),
    (PURPLE, "other 5xx"),
    (BLACK, "no answer"),
];

/// Escapes text for SVG.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten.
pub fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

/// Time bin width (ms) for a run: 1 s up to 5 minutes, then about 300 bins.
pub fn bin_ms(duration_ms: f64) -> f64 {
    let secs = (duration_ms / 1000.0 / 300.0).ceil().max(1.0);
    secs * 1000.0
}

struct Scale {
    duration_ms: f64,
}

impl Scale {
    fn x(&self, t_ms: f64) -> f64 {
        LEFT + (t_ms.clamp(0.0, self.duration_ms) / self.duration_ms) * PLOT_W
    }
}

/// Latency axis: log10 from `lo` to `hi` milliseconds.
struct LogAxis {
    lo: f64,
    hi: f64,
}

impl LogAxis {
    fn y(&self, ms: f64) -> f64 {
        let v = ms.clamp(self.lo, self.hi);
        let f = (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10());
        LAT_TOP + LAT_H - f * LAT_H
    }
}

/// Draws the timeline of `record`.
pub fn render(record: &RunRecord, analysis: &Analysis) -> String {
    let duration_ms = record.duration_ms.max(1.0);
    let sc = Scale { duration_ms };
    let wins = windows(record);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
"##
    );
    title(&mut s, record, analysis);
    shading(&mut s, &sc, &wins, record);
    requests_per_second(&mut s, &sc, record);
    latency(&mut s, &sc, record);
    strips(&mut s, &sc, record);
    time_axis(&mut s, &sc);
    legend(&mut s);
    s.push_str("</svg>\n");
    s
}

fn title(s: &mut String, record: &RunRecord, a: &Analysis) {
    let verdict = if a.passed { "PASS" } else { "FAIL" };
    let colour = if a.passed { "#2e7d32" } else { "#c62828" };
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="26" font-size="17" font-weight="bold"><tspan fill="{colour}">{verdict}</tspan> aila-chaos against {}: {} requests in {:.0} s, {} faults ({} back-end)</text>"#,
        escape(&record.service_url),
        a.statuses.total,
        record.duration_ms / 1000.0,
        record.faults.len(),
        escape(&record.backend),
    );
    let w = &a.writes;
    let lost = if w.lost.is_empty() && w.unverified == 0 {
        format!(
            "no acknowledged write lost ({} stored)",
            w.acknowledged + w.found_after_error
        )
    } else {
        format!("{} ACKNOWLEDGED WRITES LOST", w.lost.len() + w.unverified)
    };
    let fast = a
        .fast_503_share
        .share
        .map(|v| format!("{:.0} %", v * 100.0))
        .unwrap_or_else(|| "n/a".into());
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="46" fill="#424242">{} · /health 200 to {}/{} probes · outage 503s under 50 ms: {} · duplicates: {}</text>"##,
        escape(&lost),
        a.probes.health_ok,
        a.probes.health_total,
        fast,
        w.duplicated.len()
    );
    let failed: Vec<&str> = a
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(
            s,
            r##"<text x="{LEFT}" y="64" fill="#c62828">failed: {}</text>"##,
            escape(&failed.join("; "))
        );
    }
}

fn shading(s: &mut String, sc: &Scale, wins: &[Window], record: &RunRecord) {
    let top = RPS_TOP - 4.0;
    let bottom = STRIP_TOP + 3.0 * (STRIP_H + STRIP_GAP) - STRIP_GAP;
    for (w, f) in wins.iter().zip(&record.faults) {
        let x0 = sc.x(w.start_ms);
        let x1 = sc.x(w.back_ms).max(x0 + 1.5);
        let (class, colour, ink) = if w.effect == Effect::Degraded {
            ("degraded", BLUE, "#0d47a1")
        } else {
            ("fault", RED, "#b71c1c")
        };
        let _ = writeln!(
            s,
            r#"<rect class="{class}" x="{x0:.1}" y="{top}" width="{:.1}" height="{:.1}" fill="{colour}" fill-opacity="0.13"/>"#,
            x1 - x0,
            bottom - top
        );
        let r1 = sc.x(w.ready_ms);
        if r1 > x1 {
            let _ = writeln!(
                s,
                r#"<rect class="recovery" x="{x1:.1}" y="{top}" width="{:.1}" height="{:.1}" fill="{AMBER}" fill-opacity="0.16"/>"#,
                r1 - x1,
                bottom - top
            );
        }
        let down = (w.back_ms - w.start_ms) / 1000.0;
        let name = match (f.kind(), f.spec.amount) {
            (FaultKind::Latency, Some(ms)) => format!("latency +{ms} ms"),
            (FaultKind::Bandwidth, Some(kb)) => format!("bandwidth {kb} KB/s"),
            (FaultKind::Slicer, Some(b)) => format!("slicer {b} B"),
            (k, _) => k.to_string(),
        };
        let label = if down >= 0.1 {
            format!("{name} {down:.1} s")
        } else {
            name
        };
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="{ink}" font-weight="bold">{}</text>"##,
            x0 + 3.0,
            RPS_TOP + 12.0,
            escape(&label)
        );
    }
    for b in &record.bursts {
        let x0 = sc.x(b.started_at_ms);
        let x1 = sc.x(b.ended_at_ms).max(x0 + 1.5);
        let connections = b.spec.and_then(|s| s.amount).unwrap_or(0);
        let _ = writeln!(
            s,
            r##"<rect class="burst" x="{x0:.1}" y="{:.1}" width="{:.1}" height="6" fill="{BLUE}"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#0d47a1" font-weight="bold">burst {connections} conn.</text>"##,
            top - 8.0,
            x1 - x0,
            x0 + 3.0,
            top - 11.0,
        );
    }
}

fn y_axis_label(s: &mut String, top: f64, height: f64, label: &str) {
    let cy = top + height / 2.0;
    let _ = writeln!(
        s,
        r##"<text transform="translate(16,{cy:.1}) rotate(-90)" text-anchor="middle" fill="#424242">{}</text>"##,
        escape(label)
    );
}

fn requests_per_second(s: &mut String, sc: &Scale, record: &RunRecord) {
    let bin = bin_ms(sc.duration_ms);
    let n = (sc.duration_ms / bin).ceil() as usize;
    let mut counts = vec![[0usize; 5]; n.max(1)];
    for r in &record.requests {
        let i = ((r.t_ms / bin) as usize).min(counts.len() - 1);
        counts[i][class_index(r.status)] += 1;
    }
    let per_sec = |c: usize| c as f64 / (bin / 1000.0);
    let max = counts
        .iter()
        .map(|c| per_sec(c.iter().sum()))
        .fold(0.0, f64::max);
    let top_val = nice_ceiling(max);
    let y = |v: f64| RPS_TOP + RPS_H - v / top_val * RPS_H;
    // Grid and ticks.
    for k in 0..=4 {
        let v = top_val * k as f64 / 4.0;
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#616161">{}</text>"##,
            LEFT + PLOT_W,
            LEFT - 6.0,
            yy + 4.0,
            trim_number(v)
        );
    }
    y_axis_label(s, RPS_TOP, RPS_H, "requests/s");
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{:.1}" fill="#424242" font-size="12" font-weight="bold">Requests sent per {} s, by status</text>"##,
        RPS_TOP - 8.0,
        bin / 1000.0
    );
    s.push_str("<g class=\"rps\">\n");
    let bw = PLOT_W * bin / sc.duration_ms;
    for (i, c) in counts.iter().enumerate() {
        let x = sc.x(i as f64 * bin);
        let mut acc = 0.0;
        for (k, count) in c.iter().enumerate() {
            if *count == 0 {
                continue;
            }
            let v = per_sec(*count);
            let y1 = y(acc + v);
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{y1:.1}" width="{:.2}" height="{:.2}" fill="{}"/>"#,
                (bw - 0.6).max(0.4),
                y(acc) - y1,
                CLASSES[k].0
            );
            acc += v;
        }
    }
    s.push_str("</g>\n");
    frame(s, RPS_TOP, RPS_H);
}

fn latency(s: &mut String, sc: &Scale, record: &RunRecord) {
    let max = record
        .requests
        .iter()
        .map(|r| r.latency_ms)
        .fold(1.0, f64::max);
    let axis = LogAxis {
        lo: 0.1,
        hi: 10f64.powf((max / 1.05).log10().ceil()).max(100.0),
    };
    let mut decade = axis.lo;
    while decade <= axis.hi * 1.0001 {
        let yy = axis.y(decade);
        let label = if decade >= 1000.0 {
            format!("{} s", trim_number(decade / 1000.0))
        } else {
            format!("{} ms", trim_number(decade))
        };
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#616161">{label}</text>"##,
            LEFT + PLOT_W,
            LEFT - 6.0,
            yy + 4.0
        );
        decade *= 10.0;
    }
    let y50 = axis.y(50.0);
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" x2="{:.1}" y1="{y50:.1}" y2="{y50:.1}" stroke="#1565c0" stroke-dasharray="5,4"/><text x="{:.1}" y="{:.1}" fill="#1565c0" font-size="11">50 ms</text>"##,
        LEFT + PLOT_W,
        LEFT + 4.0,
        y50 - 3.0
    );
    y_axis_label(s, LAT_TOP, LAT_H, "latency (log)");
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{:.1}" fill="#424242" font-size="12"><tspan font-weight="bold">Latency</tspan>: a dot per request, coloured by status (rings: registration and login, bcrypt-bound); p50 (grey) and p99 (black) of the other requests per bin</text>"##,
        LAT_TOP - 8.0
    );
    // Dots, unless there are too many to draw usefully.
    if record.requests.len() <= 20_000 {
        s.push_str("<g class=\"dots\" fill-opacity=\"0.5\">\n");
        for r in &record.requests {
            let (cx, cy, c) = (
                sc.x(r.t_ms),
                axis.y(r.latency_ms.max(axis.lo)),
                status_colour(r.status),
            );
            if is_auth(&r.route) {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="3" fill="none" stroke="{c}" stroke-width="1.3" stroke-opacity="0.9"/>"#
                );
            } else {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="1.7" fill="{c}"/>"#
                );
            }
        }
        s.push_str("</g>\n");
    }
    // p50 and p99 per bin.
    let bin = bin_ms(sc.duration_ms);
    let n = (sc.duration_ms / bin).ceil() as usize;
    let mut bins: Vec<Vec<f64>> = vec![Vec::new(); n.max(1)];
    for r in record.requests.iter().filter(|r| !is_auth(&r.route)) {
        let i = ((r.t_ms / bin) as usize).min(bins.len() - 1);
        bins[i].push(r.latency_ms);
    }
    for (p, colour, width) in [(50.0, "#757575", 1.5), (99.0, BLACK, 1.5)] {
        let mut points = String::new();
        for (i, b) in bins.iter_mut().enumerate() {
            b.sort_by(f64::total_cmp);
            if let Some(v) = percentile(b, p) {
                let _ = write!(
                    points,
                    "{:.1},{:.1} ",
                    sc.x((i as f64 + 0.5) * bin),
                    axis.y(v.max(axis.lo))
                );
            }
        }
        let _ = writeln!(
            s,
            r#"<polyline class="p{p}" points="{}" fill="none" stroke="{colour}" stroke-width="{width}"/>"#,
            points.trim_end()
        );
    }
    frame(s, LAT_TOP, LAT_H);
}

/// Consecutive probes of one kind as coloured segments, merged when the colour repeats.
fn strip(
    s: &mut String,
    sc: &Scale,
    probes: &[&ProbeRecord],
    top: f64,
    label: &str,
    colour: impl Fn(&ProbeRecord) -> &'static str,
) {
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#424242">{}</text>"##,
        LEFT - 6.0,
        top + STRIP_H - 4.0,
        escape(label)
    );
    let _ = writeln!(
        s,
        r#"<rect x="{LEFT}" y="{top}" width="{PLOT_W}" height="{STRIP_H}" fill="{GREY}" fill-opacity="0.35"/>"#
    );
    let mut i = 0;
    while i < probes.len() {
        let c = colour(probes[i]);
        let start = probes[i].t_ms;
        let mut j = i + 1;
        while j < probes.len() && colour(probes[j]) == c {
            j += 1;
        }
        let end = probes
            .get(j)
            .map(|p| p.t_ms)
            .unwrap_or(probes[j - 1].t_ms + 100.0);
        let x0 = sc.x(start);
        let x1 = sc.x(end).max(x0 + 1.0);
        let _ = writeln!(
            s,
            r#"<rect x="{x0:.1}" y="{top}" width="{:.1}" height="{STRIP_H}" fill="{c}"/>"#,
            x1 - x0
        );
        i = j;
    }
}

fn strips(s: &mut String, sc: &Scale, record: &RunRecord) {
    let health: Vec<&ProbeRecord> = record
        .probes
        .iter()
        .filter(|p| p.probe == ProbeKind::Health)
        .collect();
    let readiness: Vec<&ProbeRecord> = record
        .probes
        .iter()
        .filter(|p| p.probe == ProbeKind::Readiness)
        .collect();
    s.push_str("<g class=\"strips\">\n");
    strip(s, sc, &health, STRIP_TOP, "breaker", |p| {
        match p.breaker.as_deref() {
            Some("closed") => GREEN,
            Some("half_open") => AMBER,
            Some("open") => RED,
            _ => GREY,
        }
    });
    strip(
        s,
        sc,
        &readiness,
        STRIP_TOP + STRIP_H + STRIP_GAP,
        "/readiness",
        |p| match p.status {
            200 => GREEN,
            503 => RED,
            _ => BLACK,
        },
    );
    strip(
        s,
        sc,
        &health,
        STRIP_TOP + 2.0 * (STRIP_H + STRIP_GAP),
        "/health",
        |p| if p.status == 200 { GREEN } else { BLACK },
    );
    s.push_str("</g>\n");
}

fn frame(s: &mut String, top: f64, height: f64) {
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{top}" width="{PLOT_W}" height="{height}" fill="none" stroke="#9e9e9e"/>"##
    );
}

fn time_axis(s: &mut String, sc: &Scale) {
    let secs = sc.duration_ms / 1000.0;
    let step = [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|st| secs / st <= 16.0)
        .unwrap_or(1200.0);
    let mut t = 0.0;
    while t <= secs + 1e-9 {
        let x = sc.x(t * 1000.0);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="#9e9e9e"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#616161">{} s</text>"##,
            AXIS_Y - 4.0,
            AXIS_Y + 2.0,
            AXIS_Y + 16.0,
            trim_number(t)
        );
        t += step;
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#424242">time since the load started</text>"##,
        LEFT + PLOT_W / 2.0,
        AXIS_Y + 34.0
    );
}

fn legend(s: &mut String) {
    let item = |s: &mut String, x: &mut f64, y: f64, colour: &str, opacity: f64, label: &str| {
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="12" height="12" fill="{colour}" fill-opacity="{opacity}" stroke="#9e9e9e" stroke-width="0.5"/><text x="{:.1}" y="{y:.1}" fill="#424242">{}</text>"##,
            *x,
            y - 10.0,
            *x + 16.0,
            escape(label)
        );
        *x += 26.0 + 6.8 * label.chars().count() as f64;
    };
    let text = |s: &mut String, x: &mut f64, y: f64, label: &str| {
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{y:.1}" fill="#212121" font-weight="bold">{}</text>"##,
            *x,
            escape(label)
        );
        *x += 10.0 + 7.2 * label.chars().count() as f64;
    };
    let y1 = HEIGHT - 34.0;
    let mut x = LEFT;
    text(s, &mut x, y1, "status:");
    for (colour, label) in CLASSES {
        item(s, &mut x, y1, colour, 1.0, label);
    }
    x += 20.0;
    text(s, &mut x, y1, "shading:");
    item(s, &mut x, y1, RED, 0.25, "outage (fault in force)");
    item(
        s,
        &mut x,
        y1,
        AMBER,
        0.3,
        "recovery (database back, not ready)",
    );
    item(s, &mut x, y1, BLUE, 0.25, "degraded (slow database)");
    let y2 = HEIGHT - 12.0;
    let mut x = LEFT;
    text(s, &mut x, y2, "breaker:");
    item(s, &mut x, y2, GREEN, 1.0, "closed");
    item(s, &mut x, y2, AMBER, 1.0, "half-open");
    item(s, &mut x, y2, RED, 1.0, "open");
    x += 20.0;
    text(s, &mut x, y2, "probes:");
    item(s, &mut x, y2, GREEN, 1.0, "200");
    item(s, &mut x, y2, RED, 1.0, "503");
    item(s, &mut x, y2, BLACK, 1.0, "no answer / other");
}

/// `5`, `2.5`, `0.1`.
fn trim_number(v: f64) -> String {
    let t = format!("{v:.2}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{Limits, analyse, fixture};

    const LIMITS: Limits = Limits {
        max_detection_ms: 5_000.0,
        max_recovery_ms: 5_000.0,
        min_fast_503_share: 0.0,
    };

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(41.0), 50.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
    }

    #[test]
    fn bins_stay_near_three_hundred() {
        assert_eq!(bin_ms(60_000.0), 1000.0);
        assert_eq!(bin_ms(300_000.0), 1000.0);
        assert_eq!(bin_ms(3_600_000.0), 12_000.0);
    }

    #[test]
    fn the_timeline_shows_faults_bands_and_verdict() {
        let run = fixture::run();
        let a = analyse(&run, LIMITS);
        let svg = render(&run, &a);
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<g").count(), svg.matches("</g>").count());
        assert_eq!(svg.matches("class=\"fault\"").count(), 1);
        assert_eq!(svg.matches("class=\"recovery\"").count(), 1);
        assert!(svg.contains(">kill 2.0 s<"), "fault label");
        assert!(svg.contains(">Latency<"));
        assert!(svg.contains(">PASS<"));
        assert!(svg.contains("requests/s") && svg.contains("latency (log)"));
        assert!(svg.contains(">breaker<") && svg.contains(">/readiness<"));
        assert_eq!(svg.matches("<circle").count(), run.requests.len());
        assert!(
            !svg.contains("NaN") && !svg.contains("inf"),
            "no broken numbers"
        );
        // The outage's 503s are drawn red.
        assert!(svg.contains(&format!("fill=\"{RED}\"")));
    }

    #[test]
    fn gray_faults_are_shaded_blue_and_bursts_drawn_with_their_size() {
        let mut run = fixture::run();
        run.faults[0].spec = crate::schedule::parse_schedule("latency:200ms@2s+2s").unwrap()[0];
        run.bursts = vec![crate::record::BurstRecord {
            spec: Some(crate::schedule::parse_schedule("burst:300@6s+2s").unwrap()[0]),
            started_at_ms: 6_000.0,
            ended_at_ms: 8_000.0,
            ..Default::default()
        }];
        let svg = render(&run, &analyse(&run, LIMITS));
        assert_eq!(svg.matches("class=\"degraded\"").count(), 1);
        assert_eq!(svg.matches("class=\"fault\"").count(), 0);
        assert!(svg.contains(">latency +200 ms 2.0 s<"), "fault label");
        assert_eq!(svg.matches("class=\"burst\"").count(), 1);
        assert!(svg.contains(">burst 300 conn.<"));
        assert!(svg.contains("degraded (slow database)"), "legend");
    }

    #[test]
    fn a_failed_run_says_so_and_what_failed() {
        let mut run = fixture::run();
        run.observed.counts.clear();
        let a = analyse(&run, LIMITS);
        let svg = render(&run, &a);
        assert!(svg.contains(">FAIL<"));
        assert!(svg.contains("ACKNOWLEDGED WRITES LOST"));
        assert!(svg.contains("failed: no acknowledged write lost"));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a<b & \"c\">"), "a&lt;b &amp; &quot;c&quot;&gt;");
        let mut run = fixture::run();
        run.service_url = "http://x/?a=1&b=<2>".into();
        let svg = render(&run, &analyse(&run, LIMITS));
        assert!(svg.contains("http://x/?a=1&amp;b=&lt;2&gt;"));
    }

    #[test]
    fn an_empty_run_still_draws() {
        let mut run = fixture::run();
        run.requests.clear();
        run.probes.clear();
        run.faults.clear();
        let svg = render(&run, &analyse(&run, LIMITS));
        assert!(svg.trim_end().ends_with("</svg>") && !svg.contains("NaN"));
    }
}
