//! Tolerant reading of stored dates. The old service wrote BSON dates, but older documents
//! may hold naive ISO strings (`2024-12-09T23:20:52.325381`, meaning UTC), offset strings,
//! epoch milliseconds or `null`. [`opt_date`] reads any of these; anything else reads as
//! missing rather than failing the whole document.

use bson::{RawBson, RawBsonRef};
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
/// The value is taken as a [`RawBson`] (no intermediate `Bson`, embedded documents never
/// parsed), then read as [`from_bson`] would.
pub fn opt_date<'de, D>(deserializer: D) -> Result<Option<bson::DateTime>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(from_raw_ref(
        RawBson::deserialize(deserializer)?.as_raw_bson_ref(),
    ))
}

/// A stored value read in place as a date, if it is one (as [`from_bson`] reads it).
pub fn from_raw_ref(value: RawBsonRef<'_>) -> Option<bson::DateTime> {
    match value {
        RawBsonRef::DateTime(d) => Some(d),
        RawBsonRef::String(s) => parse_iso(s),
        RawBsonRef::Int64(ms) => Some(bson::DateTime::from_millis(ms)),
        RawBsonRef::Timestamp(t) => Some(bson::DateTime::from_millis(i64::from(t.time) * 1000)),
        _ => None,
    }
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

    /// Reads `d` from a `Document` and from raw bytes (as the driver does); both must agree.
    fn read(d: bson::Document) -> Option<bson::DateTime> {
        let from_document = bson::from_document::<D>(d.clone()).unwrap().at;
        let from_bytes = bson::from_slice::<D>(&bson::to_vec(&d).unwrap())
            .unwrap()
            .at;
        assert_eq!(from_document, from_bytes, "{d}");
        from_bytes
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
        let ts = bson::Timestamp {
            time: 1_733_786_452,
            increment: 3,
        };
        assert_eq!(
            read(doc! { "at": ts }),
            Some(bson::DateTime::from_millis(1_733_786_452_000))
        );
    }

    #[test]
    fn odd_values_read_as_missing_and_the_next_field_still_reads() {
        #[derive(Debug, Deserialize)]
        struct Two {
            #[serde(default, deserialize_with = "opt_date")]
            at: Option<bson::DateTime>,
            #[serde(default, deserialize_with = "opt_date")]
            then: Option<bson::DateTime>,
        }
        let then = bson::DateTime::from_millis(1_000);
        for odd in [
            bson::Bson::Int32(5),
            bson::Bson::Double(2.5),
            bson::Bson::Boolean(true),
            bson::Bson::Document(doc! { "x": [1], "y": { "z": null } }),
            bson::Bson::Array(vec![1.into(), doc! { "a": 1 }.into()]),
        ] {
            let d = doc! { "at": odd.clone(), "then": then };
            let bytes = bson::to_vec(&d).unwrap();
            for two in [
                bson::from_document::<Two>(d).unwrap(),
                bson::from_slice::<Two>(&bytes).unwrap(),
            ] {
                assert_eq!((two.at, two.then), (None, Some(then)), "{odd:?}");
            }
        }
        // A stored document that merely looks like extended JSON is just a document to the
        // driver's raw bytes (serde over a `Document` cannot tell it from a date).
        let d = doc! { "at": { "$date": "soon" }, "then": then };
        let two = bson::from_slice::<Two>(&bson::to_vec(&d).unwrap()).unwrap();
        assert_eq!((two.at, two.then), (None, Some(then)));
    }
}
