//! Repositories: one module per collection, each function one or a few gateway calls.
//! Documents are typed with serde; ids are ObjectIds in `_id`; dates are BSON dates.
//! Nothing here touches a collection except through [`crate::db::Gateway::run`].

pub mod collaborators;
pub mod contributions;
pub mod dates;
pub mod email_case;
pub mod email_tokens;
pub mod idempotency;
pub mod links;
pub mod notifications;
pub mod persons;
pub mod preview;
pub mod raw;
pub mod sweep;
pub mod text;
pub mod tree_import;
pub mod tree_version;
pub mod users;

use bson::Document;
use futures::TryStreamExt;
use mongodb::Collection;
use serde::de::DeserializeOwned;

use crate::db::{DbError, Gateway};

/// The documents of `collection` matching `filter`, ordered by `sort`, at most `limit`:
/// the one list query every repository uses. The first batch holds the whole list (the
/// server's default is 101 documents), so a list costs one round trip, not two or more.
pub(crate) async fn find_sorted<T>(
    gw: &Gateway,
    collection: &'static str,
    filter: Document,
    sort: Document,
    limit: i64,
) -> Result<Vec<T>, DbError>
where
    T: DeserializeOwned + Send + Sync + Unpin,
{
    gw.run("find", collection, |c: Collection<T>| async move {
        c.find(filter)
            .sort(sort)
            .limit(limit)
            .batch_size(u32::try_from(limit).unwrap_or(u32::MAX))
            .await?
            .try_collect()
            .await
    })
    .await
}

/// One page of `collection` in `_id` order: the documents matching `filter` whose `_id`
/// comes after `after` (from the start when `None`), at most `page`. Walking a collection
/// page by page keeps one page in memory and each gateway call bounded, whatever its size.
pub(crate) async fn find_page<T>(
    gw: &Gateway,
    collection: &'static str,
    mut filter: Document,
    after: Option<bson::oid::ObjectId>,
    page: i64,
) -> Result<Vec<T>, DbError>
where
    T: DeserializeOwned + Send + Sync + Unpin,
{
    if let Some(after) = after {
        filter.insert("_id", bson::doc! { "$gt": after });
    }
    find_sorted(gw, collection, filter, bson::doc! { "_id": 1 }, page).await
}
