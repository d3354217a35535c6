//! A small, strict parser of the Prometheus / OpenMetrics text exposition that `/metrics`
//! serves: `# HELP`, `# TYPE`, `# UNIT`, `# EOF` and samples `name{label="value",...} value`,
//! with an optional exemplar on `_bucket` and `_total` samples (` # {trace_id="..."} value
//! timestamp`). Any line it does not understand fails the test, so the exposition stays well
//! formed.

use std::collections::BTreeMap;

use crate::common::TestApp;

/// `GET /metrics` of `app`, parsed.
pub async fn scrape(app: &TestApp) -> Exposition {
    let text = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    Exposition::parse(&text)
}

/// One metric family, as declared by its `# TYPE` line.
#[derive(Debug, Clone, Default)]
pub struct Family {
    /// `counter`, `gauge`, `histogram`, ...
    pub kind: String,
    /// The `# HELP` text.
    pub help: String,
    /// The `# UNIT`, when declared.
    pub unit: Option<String>,
}

/// One sample line.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Sample name (`aila_x_total`, `aila_y_seconds_bucket`, ...).
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
    /// The exemplar, if the line has one.
    pub exemplar: Option<Exemplar>,
}

/// An OpenMetrics exemplar: the labels (`trace_id`), value and time of one observation.
#[derive(Debug, Clone)]
pub struct Exemplar {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The observed value.
    pub value: f64,
    /// Seconds since the epoch, when given.
    pub timestamp: Option<f64>,
}

/// A parsed exposition.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// Families by name.
    pub families: BTreeMap<String, Family>,
    /// Samples in order.
    pub samples: Vec<Sample>,
}

/// Suffixes a sample name may add to its family's name.
const SUFFIXES: &[&str] = &[
    "_total", "_bucket", "_sum", "_count", "_created", "_info", "",
];

impl Exposition {
    /// Parses `text`; panics with the offending line when it is not valid.
    pub fn parse(text: &str) -> Exposition {
        Self::try_parse(text).unwrap_or_else(|why| panic!("{why}"))
    }

    /// Parses `text`, or says which line is not valid.
    pub fn try_parse(text: &str) -> Result<Exposition, String> {
        let mut out = Exposition::default();
        let mut saw_eof = false;
        for (n, line) in text.lines().enumerate() {
            let bad = |why: &str| format!("/metrics line {}: {why}: {line:?}", n + 1);
            if line.is_empty() {
                continue;
            }
            if saw_eof {
                return Err(bad("content after `# EOF`"));
            }
            if let Some(rest) = line.strip_prefix("# ") {
                if rest == "EOF" {
                    saw_eof = true;
                    continue;
                }
                let mut parts = rest.splitn(3, ' ');
                let (Some(keyword), Some(name)) = (parts.next(), parts.next()) else {
                    return Err(bad("comment without a metric name"));
                };
                let value = parts.next().unwrap_or("").to_string();
                if !valid_name(name) {
                    return Err(bad("invalid metric name"));
                }
                let family = out.families.entry(name.to_string()).or_default();
                match keyword {
                    "HELP" => family.help = value,
                    "TYPE" => family.kind = value,
                    "UNIT" => family.unit = Some(value),
                    _ => return Err(bad("unknown comment keyword")),
                }
                continue;
            }
            out.samples
                .push(parse_sample(line).map_err(|why| bad(&why))?);
        }
        if let Some((name, _)) = out.families.iter().find(|(_, f)| f.kind.is_empty()) {
            return Err(format!("family {name} has no # TYPE"));
        }
        if let Some(s) = out
            .samples
            .iter()
            .find(|s| out.family_of(&s.name).is_none())
        {
            return Err(format!("sample {} belongs to no declared family", s.name));
        }
        Ok(out)
    }

    /// The family a sample name belongs to.
    pub fn family_of(&self, sample: &str) -> Option<(&str, &Family)> {
        SUFFIXES.iter().find_map(|suffix| {
            let base = sample.strip_suffix(suffix)?;
            self.families
                .get_key_value(base)
                .map(|(k, f)| (k.as_str(), f))
        })
    }

    /// Samples named `name` whose labels include every pair of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The sum of the samples [`Exposition::matching`] selects (0 when none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The single sample with exactly these labels; panics when absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .matching(name, labels)
            .filter(|s| s.labels.len() == labels.len())
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one sample {name}{labels:?}, found {found:?}"
        );
        found[0].value
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        v => v.parse().map_err(|_| format!("bad value {v:?}")),
    }
}

/// Parses `label="value",...}` (what follows a `{`); returns the labels and the rest.
fn parse_labels(after: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut chars = after.char_indices().peekable();
    let consumed;
    loop {
        // label name
        let start = match chars.peek() {
            Some((_, '}')) => {
                consumed = chars.next().unwrap().0 + 1;
                break;
            }
            Some((i, _)) => *i,
            None => return Err("unterminated label set".into()),
        };
        let mut eq = None;
        for (i, c) in chars.by_ref() {
            if c == '=' {
                eq = Some(i);
                break;
            }
        }
        let eq = eq.ok_or("label without `=`")?;
        let key = &after[start..eq];
        if !valid_name(key) || key.contains(':') {
            return Err(format!("invalid label name {key:?}"));
        }
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err("label value must be quoted".into());
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    _ => return Err("bad escape in label value".into()),
                },
                Some((_, '"')) => break,
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        }
        if labels.insert(key.to_string(), value).is_some() {
            return Err(format!("label {key} repeated"));
        }
        match chars.next() {
            Some((_, ',')) => continue,
            Some((i, '}')) => {
                consumed = i + 1;
                break;
            }
            _ => return Err("expected `,` or `}` after a label".into()),
        }
    }
    Ok((labels, &after[consumed..]))
}

/// ` {labels} value [timestamp]`, what follows ` #` on a sample line.
fn parse_exemplar(text: &str) -> Result<Exemplar, String> {
    let after = text
        .strip_prefix('{')
        .ok_or("an exemplar starts with `{`")?;
    let (labels, rest) = parse_labels(after)?;
    let mut fields = rest.split_whitespace();
    let value = parse_value(fields.next().ok_or("an exemplar needs a value")?)?;
    let timestamp = match fields.next() {
        Some(ts) => Some(
            ts.parse::<f64>()
                .map_err(|_| format!("bad exemplar timestamp {ts:?}"))?,
        ),
        None => None,
    };
    if fields.next().is_some() {
        return Err("trailing text after the exemplar".into());
    }
    Ok(Exemplar {
        labels,
        value,
        timestamp,
    })
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| "a sample needs a value".to_string())?;
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err("invalid sample name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        (labels, rest) = parse_labels(after)?;
    }
    let exemplar = match rest.split_once(" # ") {
        Some((value, exemplar)) => {
            if !(name.ends_with("_bucket") || name.ends_with("_total")) {
                return Err("an exemplar on a sample that is not a bucket or a counter".into());
            }
            rest = value;
            Some(parse_exemplar(exemplar)?)
        }
        None => None,
    };
    let mut fields = rest.split_whitespace();
    let value = parse_value(fields.next().ok_or("a sample needs a value")?)?;
    if let Some(ts) = fields.next() {
        ts.parse::<f64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing text after the value".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
        exemplar,
    })
}

#[test]
fn the_parser_reads_families_samples_and_escapes() {
    let text = "# HELP a_seconds A histogram.\n# TYPE a_seconds histogram\n# UNIT a_seconds seconds\n\
a_seconds_bucket{route=\"/x/{id}\",le=\"0.5\"} 3 # {trace_id=\"4bf92f35\"} 0.25 1700000000.5\n\
a_seconds_bucket{route=\"/x/{id}\",le=\"+Inf\"} 4\n\
a_seconds_sum{route=\"/x/{id}\"} 1.5\na_seconds_count{route=\"/x/{id}\"} 4\n\
# TYPE b counter\nb_total{why=\"say \\\"hi\\\"\\n\"} 2 1700000000\n# TYPE c gauge\nc 1\n# EOF\n";
    let e = Exposition::parse(text);
    assert_eq!(e.families["a_seconds"].kind, "histogram");
    assert_eq!(e.families["a_seconds"].unit.as_deref(), Some("seconds"));
    assert_eq!(
        e.value("a_seconds_bucket", &[("route", "/x/{id}"), ("le", "+Inf")]),
        4.0
    );
    assert_eq!(e.value("b_total", &[("why", "say \"hi\"\n")]), 2.0);
    assert_eq!(e.family_of("b_total").unwrap().0, "b");
    assert_eq!(e.sum("c", &[]), 1.0);
    let exemplar = e
        .matching("a_seconds_bucket", &[("le", "0.5")])
        .next()
        .and_then(|s| s.exemplar.clone())
        .expect("the 0.5 bucket's exemplar");
    assert_eq!(exemplar.labels["trace_id"], "4bf92f35");
    assert_eq!(exemplar.value, 0.25);
    assert_eq!(exemplar.timestamp, Some(1700000000.5));
    for bad in [
        "x_bucket{le=\"1\"} 1 # trace_id=\"a\" 1",
        "x_bucket{le=\"1\"} 1 # {trace_id=\"a\"}",
        "x 1 # {trace_id=\"a\"} 1",
        "x{a=b} 1",
        "x{a=\"b\" 1",
        "x 1 2 3",
        "x{a=\"b\",a=\"c\"} 1",
        "# TYPE x counter\nx_total abc",
    ] {
        let text = if bad.starts_with('#') {
            bad.to_string()
        } else {
            format!("# TYPE x gauge\n{bad}")
        };
        assert!(Exposition::try_parse(&text).is_err(), "accepted {bad:?}");
    }
}
