//! The `contributions` collection: changes proposed by an editor to someone's tree, applied
//! only when the owner approves them. `entity_data` is stored as parsed at submission (only
//! person or link fields); documents written by the old service may hold anything there,
//! so it is parsed again when applied.

use bson::oid::ObjectId;
use bson::{Bson, Document, doc};
use mongodb::Collection;
use serde::{Deserialize, Serialize};

use super::dates::opt_date;
use super::text::{opt_text, text};
use crate::db::{DbError, Gateway};
use crate::domain::enums::ContributionStatus;

/// Collection name.
pub const CONTRIBUTIONS: &str = "contributions";

/// A contribution document. Enumerated fields are kept as stored text (the old service did
/// not validate them); the routes parse them where it matters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContributionDoc {
    /// Id.
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// The tree owner's user id (hex).
    #[serde(default, deserialize_with = "text")]
    pub tree_owner_id: String,
    /// The contributor's user id (hex).
    #[serde(default, deserialize_with = "text")]
    pub contributor_id: String,
    /// The contributor's name when the contribution was made.
    #[serde(default, deserialize_with = "text")]
    pub contributor_name: String,
    /// `add`, `edit` or `delete`.
    #[serde(default, deserialize_with = "text")]
    pub action: String,
    /// `person` or `link`.
    #[serde(default, deserialize_with = "text")]
    pub entity_type: String,
    /// The person or link concerned (edit, delete), hex.
    #[serde(default, deserialize_with = "opt_text")]
    pub entity_id: Option<String>,
    /// The proposed fields (add, edit).
    #[serde(default)]
    pub entity_data: Bson,
    /// `pending`, `approved` or `rejected`.
    #[serde(default, deserialize_with = "text")]
    pub status: String,
    /// Submission time.
    #[serde(default, deserialize_with = "opt_date")]
    pub created_at: Option<bson::DateTime>,
    /// Review time.
    #[serde(default, deserialize_with = "opt_date")]
    pub reviewed_at: Option<bson::DateTime>,
    /// The reviewer's note.
    #[serde(default, deserialize_with = "opt_text")]
    pub review_note: Option<String>,
}

/// Inserts a contribution.
pub async fn insert(gw: &Gateway, contribution: &ContributionDoc) -> Result<(), DbError> {
    gw.run(
        "insert_one",
        CONTRIBUTIONS,
        |c: Collection<ContributionDoc>| async move {
            c.insert_one(contribution).await.map(|_| ())
        },
    )
    .await
}

/// The contribution with this id.
pub async fn find_by_id(gw: &Gateway, id: ObjectId) -> Result<Option<ContributionDoc>, DbError> {
    gw.run(
        "find_one",
        CONTRIBUTIONS,
        |c: Collection<ContributionDoc>| async move { c.find_one(doc! { "_id": id }).await },
    )
    .await
}

async fn find_many(
    gw: &Gateway,
    filter: Document,
    limit: i64,
) -> Result<Vec<ContributionDoc>, DbError> {
    super::find_sorted(
        gw,
        CONTRIBUTIONS,
        filter,
        doc! { "created_at": -1, "_id": -1 },
        limit,
    )
    .await
}

/// The pending contributions to `owner`'s tree, newest first, at most `limit`.
pub async fn list_pending_for_owner(
    gw: &Gateway,
    owner: &str,
    limit: i64,
) -> Result<Vec<ContributionDoc>, DbError> {
    let filter = doc! { "tree_owner_id": owner, "status": ContributionStatus::Pending.as_str() };
    find_many(gw, filter, limit).await
}

/// How many contributions of `contributor` wait for review.
pub async fn count_pending_by_contributor(gw: &Gateway, contributor: &str) -> Result<u64, DbError> {
    let filter =
        doc! { "contributor_id": contributor, "status": ContributionStatus::Pending.as_str() };
    gw.run(
        "count_documents",
        CONTRIBUTIONS,
        |c: Collection<ContributionDoc>| async move { c.count_documents(filter).await },
    )
    .await
}

/// The contributions made by `contributor`, newest first, at most `limit`.
pub async fn list_by_contributor(
    gw: &Gateway,
    contributor: &str,
    limit: i64,
) -> Result<Vec<ContributionDoc>, DbError> {
    find_many(gw, doc! { "contributor_id": contributor }, limit).await
}

/// Contribution `id`, if it is pending and addressed to `owner`.
pub async fn find_pending_for_owner(
    gw: &Gateway,
    id: ObjectId,
    owner: &str,
) -> Result<Option<ContributionDoc>, DbError> {
    let filter = doc! {
        "_id": id,
        "tree_owner_id": owner,
        "status": ContributionStatus::Pending.as_str(),
    };
    gw.run(
        "find_one",
        CONTRIBUTIONS,
        |c: Collection<ContributionDoc>| async move { c.find_one(filter).await },
    )
    .await
}

/// Records the review of pending contribution `id` of `owner`. False when it is no longer
/// pending (reviewed meanwhile) or not theirs.
pub async fn mark_reviewed(
    gw: &Gateway,
    id: ObjectId,
    owner: &str,
    status: ContributionStatus,
    note: Option<String>,
) -> Result<bool, DbError> {
    let filter = doc! {
        "_id": id,
        "tree_owner_id": owner,
        "status": ContributionStatus::Pending.as_str(),
    };
    let update = doc! { "$set": {
        "status": status.as_str(),
        "reviewed_at": bson::DateTime::now(),
        "review_note": note,
    } };
    gw.run(
        "update_one",
        CONTRIBUTIONS,
        |c: Collection<Document>| async move {
            c.update_one(filter, update)
                .await
                .map(|r| r.matched_count > 0)
        },
    )
    .await
}

/// Deletes every contribution to `user_id`'s tree or made by `user_id`. Returns how many.
pub async fn delete_for_user(gw: &Gateway, user_id: &str) -> Result<u64, DbError> {
    let filter = doc! { "$or": [ { "tree_owner_id": user_id }, { "contributor_id": user_id } ] };
    gw.run(
        "delete_many",
        CONTRIBUTIONS,
        |c: Collection<Document>| async move { c.delete_many(filter).await.map(|r| r.deleted_count) },
    )
    .await
}
