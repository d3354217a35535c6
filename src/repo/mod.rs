//! Repositories: one module per collection, each function one or a few gateway calls.
//! Documents are typed with serde; ids are ObjectIds in `_id`; dates are BSON dates.
//! Nothing here touches a collection except through [`crate::db::Gateway::run`].

pub mod collaborators;
pub mod contributions;
pub mod dates;
pub mod email_case;
pub mod idempotency;
pub mod links;
pub mod notifications;
pub mod persons;
pub mod preview;
pub mod raw;
pub mod text;
pub mod tree_import;
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
