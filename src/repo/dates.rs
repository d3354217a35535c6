//! Tolerant reading of stored dates. The old service wrote BSON dates, but older documents
//! may hold naive ISO strings (`2024-12-09T23:20:52.325381`, meaning UTC), offset strings,
//! epoch milliseconds or `null`. [`opt_date`] reads any of these; anything else reads as
//! missing rather than failing the whole document.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer};

/// Parses an ISO-8601 string, with or without an offset (naive means UTC).
pub fn parse_iso(s: &str) -> Option<bson::DateTime> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(bson::DateTime::from_chrono(dt.with_timezone(&Utc)));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(bson::DateTime::from_chrono(n.and_utc()));
        }
    }
    None
}

/// Converts a stored value into a date, if it is one.
pub fn from_bson(value: &bson::Bson) -> Option<bson::DateTime> {
    match value {
        bson::Bson::DateTime(d) => Some(*d),
        bson::Bson::String(s) => parse_iso(s),
        bson::Bson::Int64(ms) => Some(bson::DateTime::from_millis(*ms)),
        bson::Bson::Timestamp(t) => Some(bson::DateTime::from_millis(i64::from(t.time) * 1000)),
        _ => None,
    }
}

/// serde `deserialize_with` for `Option<bson::DateTime>` fields (use with `#[serde(default)]`).
pub fn opt_date<'de, D>(deserializer: D) -> Result<Option<bson::DateTime>, D::Error>
where
    D: Deserializer<'de>,
{
    let value = Option::<bson::Bson>::deserialize(deserializer)?;
    Ok(value.as_ref().and_then(from_bson))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[derive(Debug, Deserialize)]
    struct D {
        #[serde(default, deserialize_with = "opt_date")]
        at: Option<bson::DateTime>,
    }

    fn read(d: bson::Document) -> Option<bson::DateTime> {
        bson::from_document::<D>(d).unwrap().at
    }

    #[test]
    fn reads_dates_strings_nulls_and_missing() {
        let ms = 1_733_786_452_325;
        let date = bson::DateTime::from_millis(ms);
        assert_eq!(read(doc! { "at": date }), Some(date));
        assert_eq!(
            read(doc! { "at": "2024-12-09T23:20:52.325381" }),
            Some(date)
        );
        assert_eq!(
            read(doc! { "at": "2024-12-09T23:20:52.325+00:00" }),
            Some(date)
        );
        assert_eq!(read(doc! { "at": "2024-12-09T23:20:52.325Z" }), Some(date));
        assert_eq!(read(doc! { "at": bson::Bson::Null }), None);
        assert_eq!(read(doc! {}), None);
        assert_eq!(read(doc! { "at": "yesterday" }), None);
        assert_eq!(read(doc! { "at": ms }), Some(date));
    }
}
