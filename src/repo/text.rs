//! Tolerant reading of stored text fields. The old service did not validate everything it
//! stored, so a field meant to be a string may hold `null`, a number, an ObjectId or a date.
//! [`opt_text`] reads any scalar as text and anything else as missing, and [`text`] does the
//! same for required fields (missing reads as empty), so one odd document never fails a
//! whole list.

use serde::{Deserialize, Deserializer};

/// A stored scalar as text: strings as they are, ObjectIds as hex, numbers and booleans
/// spelled out, dates as ISO-8601; `null`, arrays and documents are missing.
pub fn from_bson(value: &bson::Bson) -> Option<String> {
    match value {
        bson::Bson::String(s) => Some(s.clone()),
        bson::Bson::ObjectId(id) => Some(id.to_hex()),
        bson::Bson::Int32(n) => Some(n.to_string()),
        bson::Bson::Int64(n) => Some(n.to_string()),
        bson::Bson::Double(n) => Some(n.to_string()),
        bson::Bson::Boolean(b) => Some(b.to_string()),
        bson::Bson::DateTime(d) => Some(crate::domain::time::iso(*d)),
        _ => None,
    }
}

/// serde `deserialize_with` for `Option<String>` fields (use with `#[serde(default)]`).
pub fn opt_text<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    let value = Option::<bson::Bson>::deserialize(deserializer)?;
    Ok(value.as_ref().and_then(from_bson))
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
    let value = Option::<bson::Bson>::deserialize(deserializer)?;
    Ok(matches!(value, Some(bson::Bson::Boolean(true))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;
    use bson::oid::ObjectId;

    #[derive(Debug, Deserialize)]
    struct D {
        #[serde(default, deserialize_with = "opt_text")]
        a: Option<String>,
        #[serde(default, deserialize_with = "text")]
        b: String,
        #[serde(default, deserialize_with = "flag")]
        c: bool,
    }

    fn read(d: bson::Document) -> D {
        bson::from_document::<D>(d).unwrap()
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
}
