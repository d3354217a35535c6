//! Writing persons (`persons`) and links (`family_links`) whose ids the caller chose, so a
//! multi-step write can be retried without duplicates: preview conversion derives its ids
//! from the session, an approved contribution uses the contribution's id. Each function
//! inserts only the documents not there yet (check, then insert the missing ones); a race
//! with a concurrent identical write surfaces as a duplicate key (409), and a retry then
//! finds everything in place.
//!
//! The documents are [`PersonDoc`] and [`LinkDoc`], as the person and link routes write them.
//! Unlike [`super::persons::insert_with_id`] (one call per document), this is one read and
//! one `insert_many` per batch. Like it, each batch then raises its owners' tree versions
//! ([`super::tree_version`]).

use bson::oid::ObjectId;
use bson::{Document, doc};
use futures::TryStreamExt;
use mongodb::Collection;
use serde::Serialize;

use super::links::{FAMILY_LINKS, LinkDoc};
use super::persons::{PERSONS, PersonDoc};
use super::tree_version;
use crate::db::{DbError, Gateway};

fn to_document<T: Serialize>(value: &T) -> Result<Document, DbError> {
    bson::to_document(value).map_err(|e| DbError::Rejected {
        kind: "bson_serialization",
        message: e.to_string(),
    })
}

/// The ids among `ids` that exist in `collection`.
async fn existing(
    gw: &Gateway,
    collection: &'static str,
    ids: Vec<ObjectId>,
) -> Result<Vec<ObjectId>, DbError> {
    gw.run("find", collection, |c: Collection<Document>| async move {
        let docs: Vec<Document> = c
            .find(doc! { "_id": { "$in": ids } })
            .projection(doc! { "_id": 1 })
            .await?
            .try_collect()
            .await?;
        Ok(docs
            .iter()
            .filter_map(|d| d.get_object_id("_id").ok())
            .collect())
    })
    .await
}

async fn insert_missing(
    gw: &Gateway,
    collection: &'static str,
    docs: Vec<(ObjectId, Document)>,
) -> Result<u64, DbError> {
    if docs.is_empty() {
        return Ok(0);
    }
    let present = existing(gw, collection, docs.iter().map(|(id, _)| *id).collect()).await?;
    let missing: Vec<Document> = docs
        .into_iter()
        .filter(|(id, _)| !present.contains(id))
        .map(|(_, d)| d)
        .collect();
    if missing.is_empty() {
        return Ok(0);
    }
    let n = missing.len() as u64;
    gw.run(
        "insert_many",
        collection,
        |c: Collection<Document>| async move { c.insert_many(missing).await.map(|_| n) },
    )
    .await
}

/// Inserts the persons not present yet (by id). Returns how many were inserted.
pub async fn insert_persons_missing(gw: &Gateway, persons: &[PersonDoc]) -> Result<u64, DbError> {
    let mut docs = Vec::with_capacity(persons.len());
    for p in persons {
        docs.push((p.id, to_document(p)?));
    }
    let inserted = insert_missing(gw, PERSONS, docs).await?;
    // Even when nothing was missing: a retry after a failed raise raises it.
    tree_version::bump_each(gw, persons.iter().map(|p| p.user_id.clone()).collect()).await?;
    Ok(inserted)
}

/// Inserts the links not present yet (by id). Returns how many were inserted.
pub async fn insert_links_missing(gw: &Gateway, links: &[LinkDoc]) -> Result<u64, DbError> {
    let mut docs = Vec::with_capacity(links.len());
    for l in links {
        docs.push((l.id, to_document(l)?));
    }
    let inserted = insert_missing(gw, FAMILY_LINKS, docs).await?;
    tree_version::bump_each(gw, links.iter().map(|l| l.user_id.clone()).collect()).await?;
    Ok(inserted)
}
