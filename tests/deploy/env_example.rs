//! `.env.example` lists every setting of the service with its default.

use aila_api::config::SETTINGS;

use crate::read;

/// `(name, value)` of every `NAME=value` line, commented out or not (a value in double
/// quotes, as one with spaces is written, without them).
fn entries() -> Vec<(String, String)> {
    read(".env.example")
        .lines()
        .filter_map(|l| {
            let l = l.trim().trim_start_matches('#').trim();
            let (k, v) = l.split_once('=')?;
            k.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                .then(|| {
                    let v = v.trim();
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v);
                    (k.to_string(), v.to_string())
                })
        })
        .collect()
}

#[test]
fn every_setting_is_listed_once_with_its_default() {
    let entries = entries();
    for s in SETTINGS {
        let found: Vec<&(String, String)> = entries.iter().filter(|(k, _)| k == s.env).collect();
        assert_eq!(
            found.len(),
            1,
            "{} listed {} times in .env.example",
            s.env,
            found.len()
        );
        // A default in parentheses describes the unset case (`(generated, ephemeral)`): the
        // example shows a value to set instead.
        if !s.default.starts_with('(') {
            assert_eq!(found[0].1, s.default, "default of {}", s.env);
        }
    }
    for (k, _) in &entries {
        assert!(
            SETTINGS.iter().any(|s| s.env == *k),
            ".env.example lists {k}, which the service does not read"
        );
    }
}

#[test]
fn copying_it_changes_nothing_until_a_line_is_uncommented() {
    // Every assignment is commented out, so `cp .env.example .env` keeps the defaults (and
    // in docker compose, the api's MONGO_URL keeps pointing at the mongo service).
    for line in read(".env.example").lines().filter(|l| l.contains('=')) {
        assert!(line.trim_start().starts_with('#'), "uncommented: {line}");
    }
}
