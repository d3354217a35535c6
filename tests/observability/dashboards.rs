//! The files under `observability/` against the metrics the service really serves: every
//! metric the Grafana dashboard and the alert rules name exists in `/metrics`, with the
//! labels they filter, group and print by, so a renamed metric or label breaks this test
//! instead of silently emptying a panel or an alert.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::common::{Database, spawn_app};
use crate::exposition::{Exposition, scrape};

/// Labels Prometheus adds at scrape time (`job`, `instance`, and the static `service` of
/// `observability/prometheus.yml`), and `le` of histogram buckets.
const SCRAPE_LABELS: &[&str] = &["job", "instance", "service", "le"];

/// Families whose every series exists from the start: an exact label value filtered on
/// must be one of the values exposed.
const ENUMERATED: &[&str] = &[
    "aila_db_circuit_breaker_state",
    "aila_db_circuit_breaker_transitions_total",
    "aila_db_reconnect_attempts_total",
];

fn file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// One metric named in an expression, with its label matchers.
#[derive(Debug)]
struct MetricRef {
    name: String,
    /// (label, operator, value).
    matchers: Vec<(String, String, String)>,
}

/// What an expression names: metrics with their matchers, and labels it groups or
/// matches on (`by`, `without`, `on`, `ignoring`, `group_left`, `group_right`).
#[derive(Debug, Default)]
struct Refs {
    metrics: Vec<MetricRef>,
    grouping: Vec<String>,
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// A small PromQL scanner: enough to find metric names, matchers and grouping labels
/// (string literals and `$variables` skipped).
fn scan(expr: &str) -> Refs {
    let chars: Vec<char> = expr.chars().collect();
    let mut refs = Refs::default();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        if c == '$' || c == '[' {
            // a variable or a range: skip to its end
            let end = if c == '[' { ']' } else { ' ' };
            while i < chars.len()
                && chars[i] != end
                && (c == '[' || is_ident(chars[i]) || chars[i] == '$')
            {
                i += 1;
            }
            i += 1;
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == '_') {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_ident(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let mut j = i;
        skip_ws(&mut j);
        if [
            "by",
            "without",
            "on",
            "ignoring",
            "group_left",
            "group_right",
        ]
        .contains(&word.as_str())
            && j < chars.len()
            && chars[j] == '('
        {
            let close = (j..chars.len())
                .find(|&k| chars[k] == ')')
                .expect("unclosed (");
            let inside: String = chars[j + 1..close].iter().collect();
            refs.grouping.extend(
                inside
                    .split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string),
            );
            i = close + 1;
            continue;
        }
        if !word.starts_with("aila_") {
            continue;
        }
        let mut metric = MetricRef {
            name: word,
            matchers: Vec::new(),
        };
        if j < chars.len() && chars[j] == '{' {
            let close = (j..chars.len())
                .find(|&k| chars[k] == '}')
                .expect("unclosed {");
            let inside: String = chars[j + 1..close].iter().collect();
            for m in inside.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                let op_at = m.find(['=', '!']).expect("a matcher has an operator");
                let label = m[..op_at].trim().to_string();
                let rest = &m[op_at..];
                let op_len =
                    if rest.starts_with("=~") || rest.starts_with("!~") || rest.starts_with("!=") {
                        2
                    } else {
                        1
                    };
                let value = rest[op_len..].trim().trim_matches('"').to_string();
                metric
                    .matchers
                    .push((label, rest[..op_len].to_string(), value));
            }
            i = close + 1;
        }
        refs.metrics.push(metric);
    }
    refs
}

/// Label names and values per sample name.
fn labels_by_sample(m: &Exposition) -> BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> {
    let mut out: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for s in &m.samples {
        let entry = out.entry(s.name.as_str()).or_default();
        for (k, v) in &s.labels {
            entry.entry(k.as_str()).or_default().insert(v.as_str());
        }
    }
    out
}

/// Checks one expression against the exposition; returns the labels its result may carry.
fn check_expr(
    origin: &str,
    expr: &str,
    known: &BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>>,
) -> BTreeSet<String> {
    let refs = scan(expr);
    assert!(
        !refs.metrics.is_empty(),
        "{origin}: names no aila_ metric: {expr}"
    );
    let mut labels: BTreeSet<String> = SCRAPE_LABELS.iter().map(|s| s.to_string()).collect();
    for m in &refs.metrics {
        let Some(sample_labels) = known.get(m.name.as_str()) else {
            panic!("{origin}: metric {} is not in /metrics: {expr}", m.name)
        };
        labels.extend(sample_labels.keys().map(|k| k.to_string()));
        for (label, op, value) in &m.matchers {
            if SCRAPE_LABELS.contains(&label.as_str()) {
                continue;
            }
            let values = sample_labels
                .get(label.as_str())
                .unwrap_or_else(|| panic!("{origin}: {} has no label {label}: {expr}", m.name));
            if op == "=" && ENUMERATED.iter().any(|e| m.name.starts_with(e)) {
                assert!(
                    values.contains(value.as_str()),
                    "{origin}: {}{{{label}=\"{value}\"}} matches no series (values: {values:?})",
                    m.name
                );
            }
        }
    }
    for g in &refs.grouping {
        assert!(
            labels.contains(g),
            "{origin}: groups by {g}, which none of its metrics carries: {expr}"
        );
    }
    labels
}

/// The `expr:` values of a Prometheus rules file (plain or folded `>-` scalars).
fn rule_exprs(yaml: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut alert = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            alert = name.trim().to_string();
        }
        if let Some(value) = trimmed.strip_prefix("expr:") {
            let value = value.trim();
            let indent = line.len() - trimmed.len();
            let expr = if value.starts_with('>') || value.starts_with('|') {
                let mut parts = Vec::new();
                while i + 1 < lines.len() {
                    let next = lines[i + 1];
                    let next_indent = next.len() - next.trim_start().len();
                    if next.trim().is_empty() || next_indent <= indent {
                        break;
                    }
                    parts.push(next.trim());
                    i += 1;
                }
                parts.join(" ")
            } else {
                value.to_string()
            };
            out.push((alert.clone(), expr));
        }
        i += 1;
    }
    out
}

/// Every target `expr` of the dashboard (and of its annotations), with its panel title and
/// legend.
fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = panels.pop() {
        if let Some(inner) = p["panels"].as_array() {
            panels.extend(inner);
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap_or_default().to_string(),
                t["expr"]
                    .as_str()
                    .expect("a target has an expr")
                    .to_string(),
                t["legendFormat"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    for a in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(expr) = a["expr"].as_str() {
            out.push((
                format!("annotation {}", a["name"]),
                expr.to_string(),
                a["titleFormat"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    out
}

fn placeholders(template: &str) -> Vec<String> {
    template
        .split("{{")
        .skip(1)
        .filter_map(|rest| rest.split_once("}}"))
        .map(|(name, _)| {
            name.trim()
                .trim_start_matches('.')
                .trim_start_matches("$labels.")
                .to_string()
        })
        .collect()
}

#[test]
fn the_scanner_finds_metrics_matchers_and_grouping() {
    let r = scan(
        r#"histogram_quantile(0.95, sum by (route, le) (rate(aila_x_bucket{status=~"5..",instance=~"$instance"}[$__rate_interval]))) / ignoring(state) aila_y{state="open"}"#,
    );
    let names: Vec<&str> = r.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["aila_x_bucket", "aila_y"]);
    assert_eq!(
        r.metrics[0].matchers[0],
        ("status".into(), "=~".into(), "5..".into())
    );
    assert_eq!(
        r.metrics[1].matchers[0],
        ("state".into(), "=".into(), "open".into())
    );
    assert_eq!(r.grouping, ["route", "le", "state"]);
    assert_eq!(placeholders("{{method}} {{ route }}"), ["method", "route"]);
    let rules = rule_exprs(
        "- alert: A\n  expr: >-\n    x\n    / y\n  for: 5m\n- alert: B\n  expr: z == 0\n",
    );
    assert_eq!(
        rules,
        [("A".into(), "x / y".into()), ("B".into(), "z == 0".into())]
    );
}

/// The histograms whose buckets carry trace exemplars, and the exemplar's label.
const WITH_EXEMPLARS: &[&str] = &[
    "aila_http_server_request_duration_seconds_bucket",
    "aila_db_operation_duration_seconds_bucket",
];
const EXEMPLAR_LABEL: &str = "trace_id";

#[test]
fn the_latency_panels_show_exemplars_that_link_to_jaeger() {
    let dashboard: Value = serde_json::from_str(&file("observability/grafana/aila-dashboard.json"))
        .expect("the dashboard is JSON");
    let mut latency_panels = 0;
    for p in dashboard["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_default();
            if expr.contains("histogram_quantile")
                && WITH_EXEMPLARS.iter().any(|m| expr.contains(m))
            {
                latency_panels += 1;
                assert_eq!(
                    t["exemplar"],
                    json!(true),
                    "latency panel {} does not ask for exemplars: {expr}",
                    p["title"]
                );
            }
        }
    }
    assert!(latency_panels >= 3, "only {latency_panels} latency queries");

    // The data sources: Prometheus links the exemplar label to the Jaeger data source.
    let provisioning: Value =
        serde_yaml_ng::from_str(&file("observability/grafana/datasources.yml")).unwrap();
    let sources = provisioning["datasources"].as_array().expect("datasources");
    let of_type = |kind: &str| {
        sources
            .iter()
            .find(|d| d["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} data source in datasources.yml"))
    };
    let (prometheus, jaeger) = (of_type("prometheus"), of_type("jaeger"));
    let links = prometheus["jsonData"]["exemplarTraceIdDestinations"]
        .as_array()
        .expect("the Prometheus data source has exemplarTraceIdDestinations");
    assert!(
        links
            .iter()
            .any(|l| l["name"] == EXEMPLAR_LABEL && l["datasourceUid"] == jaeger["uid"]),
        "no exemplar link from label {EXEMPLAR_LABEL} to the Jaeger data source {}: {links:?}",
        jaeger["uid"]
    );
    assert_eq!(jaeger["url"], json!("http://jaeger:16686"));
    assert_eq!(prometheus["url"], json!("http://prometheus:9090"));
}

#[tokio::test]
async fn every_metric_in_the_dashboard_and_alert_rules_exists_in_metrics() {
    let db = Database::start().await;
    let app = spawn_app(&db.url()).await;
    app.wait_ready().await;
    // One request that reaches the database, so every histogram has its series.
    let (token, _) = app.register("dashboards@example.com").await;
    assert_eq!(app.get("/api/persons", Some(&token)).await.status, 200);
    let exposition = scrape(&app).await;
    let known = labels_by_sample(&exposition);

    // The dashboard.
    let dashboard: Value = serde_json::from_str(&file("observability/grafana/aila-dashboard.json"))
        .expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], json!("aila-api"));
    let mut ids = BTreeSet::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(p["id"].as_u64().expect("a panel id")),
            "panel ids are unique"
        );
        assert!(
            p["title"].as_str().is_some_and(|t| !t.is_empty()),
            "a panel without a title"
        );
        if p["type"] != "row" {
            assert!(
                p["targets"].as_array().is_some_and(|t| !t.is_empty()),
                "panel {} has no query",
                p["title"]
            );
        }
    }
    let exprs = dashboard_exprs(&dashboard);
    let mut used = BTreeSet::new();
    for (title, expr, legend) in &exprs {
        let origin = format!("dashboard panel {title:?}");
        let mut labels = check_expr(&origin, expr, &known);
        // After an aggregation only its `by` labels are left.
        if ["sum", "max", "min", "avg", "count"]
            .iter()
            .any(|a| expr.contains(&format!("{a}(")) || expr.contains(&format!("{a} by (")))
        {
            labels = scan(expr).grouping.into_iter().collect();
        }
        for p in placeholders(legend) {
            assert!(
                labels.contains(&p),
                "{origin}: legend {{{{{p}}}}} is no label of {expr}"
            );
        }
        used.extend(scan(expr).metrics.into_iter().map(|m| m.name));
    }
    // What the issue asks the dashboard to show.
    for (topic, metric) in [
        (
            "request rate by route",
            "aila_http_server_request_duration_seconds_count",
        ),
        (
            "latency by route",
            "aila_http_server_request_duration_seconds_bucket",
        ),
        (
            "database operation latency",
            "aila_db_operation_duration_seconds_bucket",
        ),
        ("breaker state over time", "aila_db_circuit_breaker_state"),
        ("reconnect attempts", "aila_db_reconnect_attempts_total"),
        ("ping latency", "aila_db_ping_duration_seconds_bucket"),
        ("readiness", "aila_ready"),
    ] {
        assert!(
            used.contains(metric),
            "the dashboard shows no {topic} ({metric})"
        );
    }

    // The alert rules.
    let alerts = file("observability/alerts.yml");
    let rules = rule_exprs(&alerts);
    assert!(rules.len() >= 3, "{rules:?}");
    for (alert, expr) in &rules {
        check_expr(&format!("alert {alert}"), expr, &known);
    }
    for block in alerts.split("- alert:").skip(1) {
        let name = block.lines().next().unwrap_or_default().trim();
        for key in ["expr:", "for:", "severity:", "summary:"] {
            assert!(block.contains(key), "alert {name} has no {key}");
        }
        for p in placeholders(block) {
            assert!(
                SCRAPE_LABELS.contains(&p.as_str()),
                "alert {name}: {{{{ $labels.{p} }}}} is not a label its expression keeps"
            );
        }
    }
    let names: Vec<&str> = rules.iter().map(|(a, _)| a.as_str()).collect();
    for (what, metric) in [
        ("breaker open", "aila_db_circuit_breaker_state"),
        ("readiness failing", "aila_ready"),
        ("trace export failing", "aila_trace_export_failures_total"),
    ] {
        assert!(
            rules.iter().any(|(_, e)| e.contains(metric)),
            "no alert for {what} ({metric}) among {names:?}"
        );
    }
    // Any metric named anywhere in the rules file (descriptions included) exists.
    for word in alerts
        .split(|c: char| !is_ident(c))
        .filter(|w| w.starts_with("aila_"))
    {
        assert!(
            known.contains_key(word),
            "alerts.yml names {word}, which /metrics lacks"
        );
    }

    // The scrape configuration: the compose service `api` on the service's port.
    let prometheus = file("observability/prometheus.yml");
    assert!(prometheus.contains("job_name: aila-api"), "{prometheus}");
    assert!(prometheus.contains("\"api:8001\""), "{prometheus}");
    assert!(
        prometheus.contains("metrics_path: /metrics"),
        "{prometheus}"
    );
    assert!(prometheus.contains("- alerts.yml"), "{prometheus}");
}
