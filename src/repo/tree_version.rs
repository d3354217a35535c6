//! The version of a user's tree: a counter (`tree_version`) on the owner's `users`
//! document, raised by every write to the owner's persons or links, *after* that write.
//!
//! It lets a replica keep an assembled tree ([`crate::http::api::tree_cache`]) and check
//! it against the database on every request for free: authentication reads the caller's
//! user document anyway, so the version comes with it, and a write made through any
//! replica is seen by all of them on their next request. Raising it after the data write
//! means a tree read while a write is under way is kept under the old version at most,
//! which the raise then retires. A write made by something else (the old service, a
//! script) does not raise it; the cache's time limit bounds how long such a write can go
//! unseen.

use bson::{RawBsonRef, doc};
use mongodb::Collection;
use serde::{Deserialize, Deserializer};

use super::users::USERS;
use crate::db::{DbError, Gateway};

/// Field of the `users` document.
pub const FIELD: &str = "tree_version";

/// Raises the tree version of `owner` (the 24-hex user id stored in `user_id` fields).
/// An owner id that is not an ObjectId names no user (such a tree is never cached).
pub async fn bump(gw: &Gateway, owner: &str) -> Result<(), DbError> {
    let Some(id) = crate::domain::ids::parse_object_id(owner) else {
        return Ok(());
    };
    gw.run(
        "update_one",
        USERS,
        |c: Collection<bson::Document>| async move {
            c.update_one(doc! { "_id": id }, doc! { "$inc": { FIELD: 1_i64 } })
                .await
                .map(|_| ())
        },
    )
    .await
}

/// Runs `write`, a write to `owner`'s persons or links, then raises the version: the order
/// every tree write keeps (see the module doc).
pub async fn after<T>(
    gw: &Gateway,
    owner: &str,
    write: impl std::future::Future<Output = Result<T, DbError>>,
) -> Result<T, DbError> {
    let written = write.await?;
    bump(gw, owner).await?;
    Ok(written)
}

/// Deletes document `id` of `collection` (a person or a link of `owner`'s tree), then
/// raises `owner`'s version. True when the document existed.
pub async fn delete_then_raise(
    gw: &Gateway,
    collection: &'static str,
    id: bson::oid::ObjectId,
    owner: &str,
) -> Result<bool, DbError> {
    let write = gw.run(
        "delete_one",
        collection,
        |c: Collection<bson::Document>| async move {
            c.delete_one(doc! { "_id": id })
                .await
                .map(|r| r.deleted_count > 0)
        },
    );
    after(gw, owner, write).await
}

/// [`bump`] for each distinct owner of `owners`.
pub async fn bump_each(gw: &Gateway, mut owners: Vec<String>) -> Result<(), DbError> {
    owners.sort_unstable();
    owners.dedup();
    for owner in &owners {
        bump(gw, owner).await?;
    }
    Ok(())
}

/// A stored version: any integer (or integral double) as it is, anything else 0.
fn read_ref(value: RawBsonRef<'_>) -> i64 {
    match value {
        RawBsonRef::Int32(n) => i64::from(n),
        RawBsonRef::Int64(n) => n,
        RawBsonRef::Double(n) if n.fract() == 0.0 => n as i64,
        _ => 0,
    }
}

/// serde `deserialize_with` for the `tree_version` field (use with `#[serde(default)]`).
pub fn read<'de, D>(deserializer: D) -> Result<i64, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(read_ref(
        bson::RawBson::deserialize(deserializer)?.as_raw_bson_ref(),
    ))
}

/// True when no version is stored (so a new user's document does not get the field).
pub fn is_unset(version: &i64) -> bool {
    *version == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        #[serde(default, deserialize_with = "read")]
        tree_version: i64,
    }

    #[test]
    fn a_stored_version_reads_whatever_its_number_type_and_anything_else_is_zero() {
        let read = |d: bson::Document| bson::from_document::<Doc>(d).unwrap().tree_version;
        assert_eq!(read(doc! { "tree_version": 3_i32 }), 3);
        assert_eq!(read(doc! { "tree_version": 1_i64 << 40 }), 1 << 40);
        assert_eq!(read(doc! { "tree_version": 7.0 }), 7);
        assert_eq!(read(doc! { "tree_version": 7.5 }), 0);
        assert_eq!(read(doc! { "tree_version": "2" }), 0);
        assert_eq!(read(doc! { "tree_version": bson::Bson::Null }), 0);
        assert_eq!(read(doc! {}), 0);
    }
}
