//! Tolerant reading of stored text fields. The old service did not validate everything it
//! stored, so a field meant to be a string may hold `null`, a number, an ObjectId or a date.
//! [`opt_text`] reads any scalar as text and anything else as missing, and [`text`] does the
//! same for required fields (missing reads as empty), so one odd document never fails a
//! whole list.
//!
//! The readers take each value as a [`RawBson`]: read from a driver's document bytes, a
//! string costs one allocation and an embedded document is copied, never parsed, where a
//! [`bson::Bson`] would build every nested value (and fail a whole list on a stored
//! document that merely looks like extended JSON).

use bson::{RawBson, RawBsonRef};
use serde::{Deserialize, Deserializer};

/// A stored scalar as text: strings as they are, ObjectIds as hex, numbers and booleans
/// spelled out, dates as ISO-8601; `null`, arrays, documents and the other BSON types are
/// missing. The one spelling of stored scalars, for values read in place (the raw readers
/// of [`super::raw`]) and, through [`from_raw`], for values serde took out.
pub fn from_raw_ref(value: RawBsonRef<'_>) -> Option<String> {
    match value {
        RawBsonRef::String(s) => Some(s.to_string()),
        RawBsonRef::ObjectId(id) => Some(id.to_hex()),
        RawBsonRef::Int32(n) => Some(n.to_string()),
        RawBsonRef::Int64(n) => Some(n.to_string()),
        RawBsonRef::Double(n) => Some(n.to_string()),
        RawBsonRef::Boolean(b) => Some(b.to_string()),
        RawBsonRef::DateTime(d) => Some(crate::domain::time::iso(d)),
        _ => None,
    }
}

/// [`from_raw_ref`] for a value serde took out (a string is moved, not copied).
fn from_raw(value: RawBson) -> Option<String> {
    match value {
        RawBson::String(s) => Some(s),
        other => from_raw_ref(other.as_raw_bson_ref()),
    }
}

/// [`flag`]'s reading of a value read in place: only `true` is true.
pub fn flag_ref(value: RawBsonRef<'_>) -> bool {
    matches!(value, RawBsonRef::Boolean(true))
}

/// serde `deserialize_with` for `Option<String>` fields (use with `#[serde(default)]`).
pub fn opt_text<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(from_raw(RawBson::deserialize(deserializer)?))
}

/// serde `deserialize_with` for `String` fields (use with `#[serde(default)]`): anything that
/// is not a scalar reads as empty.
pub fn text<'de, D>(deserializer: D) -> Result<String, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(opt_text(deserializer)?.unwrap_or_default())
}

/// serde `deserialize_with` for `bool` fields (use with `#[serde(default)]`): `null` and
/// anything that is not a boolean read as false.
pub fn flag<'de, D>(deserializer: D) -> Result<bool, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(flag_ref(
        RawBson::deserialize(deserializer)?.as_raw_bson_ref(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;
    use bson::oid::ObjectId;

    #[derive(Debug, PartialEq, Deserialize)]
    struct D {
        #[serde(default, deserialize_with = "opt_text")]
        a: Option<String>,
        #[serde(default, deserialize_with = "text")]
        b: String,
        #[serde(default, deserialize_with = "flag")]
        c: bool,
    }

    /// Reads `d` both ways serde meets a document: from a `Document` (tests, `$set` echoes)
    /// and from raw bytes (what the driver's cursors do), and checks they agree.
    fn read(d: bson::Document) -> D {
        let from_document = bson::from_document::<D>(d.clone()).unwrap();
        let from_bytes = bson::from_slice::<D>(&bson::to_vec(&d).unwrap()).unwrap();
        assert_eq!(from_document, from_bytes, "{d}");
        from_bytes
    }

    #[test]
    fn scalars_read_as_text_and_the_rest_as_missing() {
        let id = ObjectId::new();
        let d = read(doc! { "a": id, "b": 12, "c": true });
        assert_eq!(d.a.as_deref(), Some(id.to_hex().as_str()));
        assert_eq!(d.b, "12");
        assert!(d.c);
        let d = read(doc! { "a": bson::Bson::Null, "b": [1, 2], "c": bson::Bson::Null });
        assert_eq!(d.a, None);
        assert_eq!(d.b, "");
        assert!(!d.c);
        let d = read(doc! {});
        assert_eq!((d.a, d.b.as_str(), d.c), (None, "", false));
        assert_eq!(read(doc! { "a": "x" }).a.as_deref(), Some("x"));
    }

    #[test]
    fn every_scalar_kind_reads_as_text_and_the_rest_as_missing() {
        let date = bson::DateTime::from_millis(1_733_786_452_325);
        let cases: Vec<(bson::Bson, Option<&str>)> = vec![
            (bson::Bson::String("Zoé".into()), Some("Zoé")),
            (bson::Bson::Int32(-7), Some("-7")),
            (bson::Bson::Int64(1 << 40), Some("1099511627776")),
            (bson::Bson::Double(1.5), Some("1.5")),
            (bson::Bson::Boolean(false), Some("false")),
            (
                bson::Bson::DateTime(date),
                Some("2024-12-09T23:20:52.325000Z"),
            ),
            (bson::Bson::Null, None),
            (
                bson::Bson::Document(doc! { "x": 1, "y": [1, { "z": 2 }] }),
                None,
            ),
            (
                bson::Bson::Array(vec![doc! { "x": "y" }.into(), 3.into()]),
                None,
            ),
            (
                bson::Bson::Binary(bson::Binary {
                    subtype: bson::spec::BinarySubtype::Generic,
                    bytes: vec![1, 2, 3],
                }),
                None,
            ),
            (
                bson::Bson::Timestamp(bson::Timestamp {
                    time: 1,
                    increment: 2,
                }),
                None,
            ),
        ];
        for (value, expected) in cases {
            // The field after the odd one is still read: nothing was left unconsumed.
            let d = read(doc! { "a": value.clone(), "b": "next" });
            assert_eq!(d.a.as_deref(), expected, "{value:?}");
            assert_eq!(d.b, "next", "{value:?}");
        }
        // Through the driver's raw bytes a stored document that looks like extended JSON is
        // still just a document: missing, and the rest of the document reads.
        let d = doc! { "a": { "$oid": "not hex", "x": 1 }, "b": "next" };
        let d = bson::from_slice::<D>(&bson::to_vec(&d).unwrap()).unwrap();
        assert_eq!((d.a, d.b.as_str()), (None, "next"));
    }
}
