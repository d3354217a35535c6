//! Reading listed documents in place, from the driver's raw reply bytes: the tree's persons
//! and links are read field by field without serde (no visitor machinery, no intermediate
//! value per field), with exactly what their serde `Deserialize` reads (tests compare the
//! two on odd documents). Scalars are spelled by [`super::text::from_raw_ref`] and dates by
//! [`super::dates::from_raw_ref`], as the serde readers do.

use bson::oid::ObjectId;
use bson::{Document, RawBsonRef, RawDocument, RawDocumentBuf};
use mongodb::Collection;

use crate::db::{DbError, Gateway};

/// A document type read in place. `from_raw` must agree with the type's `Deserialize`:
/// unknown fields ignored, a field given twice refused, a missing `_id` refused.
pub trait FromRaw: Sized {
    /// Reads the document; the error says what is wrong with it.
    fn from_raw(doc: &RawDocument) -> Result<Self, String>;
}

/// Which fields a document gave, so a field given twice is refused as serde refuses it.
#[derive(Default)]
pub struct Seen(u64);

impl Seen {
    /// Marks field number `i` (below 64), named `name`: an error if it was given before.
    pub fn first(&mut self, i: u32, name: &str) -> Result<(), String> {
        let bit = 1u64 << i;
        if self.0 & bit != 0 {
            return Err(format!("duplicate field `{name}`"));
        }
        self.0 |= bit;
        Ok(())
    }
}

/// The `_id` of a document: an ObjectId, as the serde readers require.
pub fn object_id(value: RawBsonRef<'_>) -> Result<ObjectId, String> {
    match value {
        RawBsonRef::ObjectId(id) => Ok(id),
        other => Err(format!(
            "invalid type for `_id`: {:?}, expected an ObjectId",
            other.element_type()
        )),
    }
}

/// The fields of `doc`, in order, with their keys.
pub fn fields(
    doc: &RawDocument,
) -> impl Iterator<Item = Result<(&str, RawBsonRef<'_>), String>> + '_ {
    doc.iter().map(|r| r.map_err(|e| e.to_string()))
}

/// [`super::find_sorted`] for types read in place: the same query, the same gateway call
/// (`find` on `collection`, one span, one metric), each document read from the reply's
/// bytes where it lies.
pub(crate) async fn find_sorted_raw<T>(
    gw: &Gateway,
    collection: &'static str,
    filter: Document,
    sort: Document,
    limit: i64,
) -> Result<Vec<T>, DbError>
where
    T: FromRaw + Send,
{
    gw.run(
        "find",
        collection,
        |c: Collection<RawDocumentBuf>| async move {
            let mut cursor = c
                .find(filter)
                .sort(sort)
                .limit(limit)
                .batch_size(u32::try_from(limit).unwrap_or(u32::MAX))
                .await?;
            let mut out = Vec::new();
            while cursor.advance().await? {
                let item = T::from_raw(cursor.current()).map_err(|message| {
                    mongodb::error::Error::from(<bson::de::Error as serde::de::Error>::custom(
                        message,
                    ))
                })?;
                out.push(item);
            }
            Ok(out)
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use bson::{Bson, doc};

    use super::*;
    use crate::repo::links::LinkDoc;
    use crate::repo::persons::PersonDoc;

    /// Reads `d` both ways (serde from the bytes, as the driver's typed cursors do, and in
    /// place) and checks they agree: both succeed with the same value, or both refuse it.
    fn both<T: FromRaw + serde::de::DeserializeOwned + std::fmt::Debug>(
        d: &bson::Document,
    ) -> Option<String> {
        let bytes = RawDocumentBuf::from_document(d).unwrap();
        let by_serde = bson::from_slice::<T>(bytes.as_bytes()).map(|v| format!("{v:?}"));
        let in_place = T::from_raw(&bytes).map(|v| format!("{v:?}"));
        match (&by_serde, &in_place) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{d}"),
            (Err(_), Err(_)) => {}
            _ => panic!("serde {by_serde:?} but in place {in_place:?} for {d}"),
        }
        in_place.ok()
    }

    fn odd_values() -> Vec<Bson> {
        vec![
            Bson::String("Zoé \"x\"".into()),
            Bson::Null,
            Bson::Int32(-7),
            Bson::Int64(1 << 40),
            Bson::Double(1.5),
            Bson::Boolean(true),
            Bson::Boolean(false),
            Bson::ObjectId(ObjectId::from_bytes([7; 12])),
            Bson::DateTime(bson::DateTime::from_millis(1_733_786_452_325)),
            Bson::String("2024-12-09T23:20:52.325381".into()),
            Bson::String("not a date".into()),
            Bson::Timestamp(bson::Timestamp {
                time: 1,
                increment: 2,
            }),
            Bson::Document(doc! { "$oid": "not hex", "x": [1, { "y": 2 }] }),
            Bson::Array(vec![Bson::Int32(1), Bson::String("a".into())]),
            Bson::Binary(bson::Binary {
                subtype: bson::spec::BinarySubtype::Generic,
                bytes: vec![1, 2, 3],
            }),
        ]
    }

    #[test]
    fn persons_read_in_place_as_serde_reads_them() {
        let id = ObjectId::from_bytes([1; 12]);
        let fields = [
            "user_id",
            "first_name",
            "last_name",
            "gender",
            "birth_date",
            "birth_place",
            "death_date",
            "death_place",
            "photo",
            "notes",
            "geographic_branch",
            "created_at",
            "is_preview",
            "unknown_field",
        ];
        for field in fields {
            for value in odd_values() {
                let d = doc! { "_id": id, field: value, "notes": "after" };
                let read = both::<PersonDoc>(&d);
                if field != "notes" {
                    assert!(read.is_some(), "{d}");
                }
            }
        }
        let full = doc! {
            "_id": id, "user_id": "u", "first_name": "Zoé", "last_name": "d'Aïla",
            "gender": "female", "birth_date": "1901", "birth_place": "Lyon",
            "death_date": Bson::Null, "death_place": 3, "photo": "data:", "notes": "n",
            "geographic_branch": "Rhône", "created_at": bson::DateTime::from_millis(5),
            "is_preview": false, "extra": { "a": 1 },
        };
        assert!(both::<PersonDoc>(&full).is_some());
        // Refused both ways: no `_id`, an `_id` that is not an ObjectId, a field twice.
        assert!(both::<PersonDoc>(&doc! { "first_name": "x" }).is_none());
        assert!(both::<PersonDoc>(&doc! { "_id": "abc" }).is_none());
        let mut twice = RawDocumentBuf::new();
        twice.append("_id", id);
        twice.append("first_name", "a");
        twice.append("first_name", "b");
        assert!(bson::from_slice::<PersonDoc>(twice.as_bytes()).is_err());
        assert!(PersonDoc::from_raw(&twice).is_err());
    }

    #[test]
    fn links_read_in_place_as_serde_reads_them() {
        let id = ObjectId::from_bytes([2; 12]);
        for field in [
            "user_id",
            "person_id_1",
            "person_id_2",
            "link_type",
            "created_at",
            "other",
        ] {
            for value in odd_values() {
                let d = doc! { "_id": id, field: value, "link_type": "parent" };
                both::<LinkDoc>(&d);
            }
        }
        assert!(both::<LinkDoc>(&doc! { "link_type": "x" }).is_none());
        let mut twice = RawDocumentBuf::new();
        twice.append("_id", id);
        twice.append("_id", id);
        assert!(bson::from_slice::<LinkDoc>(twice.as_bytes()).is_err());
        assert!(LinkDoc::from_raw(&twice).is_err());
    }
}
