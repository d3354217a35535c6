//! The `notifications` collection: messages to one user (`collaboration_invite`,
//! `new_contribution`, `contribution_reviewed`), read or unread.

use bson::oid::ObjectId;
use bson::{Bson, Document, doc};
use mongodb::Collection;
use serde::{Deserialize, Serialize};

use super::dates::opt_date;
use super::text::{flag, text};
use crate::db::{DbError, Gateway};

/// Collection name.
pub const NOTIFICATIONS: &str = "notifications";

/// A collaborator was added to someone's tree (sent to the invitee).
pub const COLLABORATION_INVITE: &str = "collaboration_invite";
/// An editor proposed a change (sent to the tree owner).
pub const NEW_CONTRIBUTION: &str = "new_contribution";
/// A contribution was approved or rejected (sent to the contributor).
pub const CONTRIBUTION_REVIEWED: &str = "contribution_reviewed";

/// A notification document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotificationDoc {
    /// Id.
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// Recipient's user id (hex).
    #[serde(default, deserialize_with = "text")]
    pub user_id: String,
    /// Kind (`collaboration_invite`, ...).
    #[serde(rename = "type", default, deserialize_with = "text")]
    pub kind: String,
    /// Short title.
    #[serde(default, deserialize_with = "text")]
    pub title: String,
    /// One sentence.
    #[serde(default, deserialize_with = "text")]
    pub message: String,
    /// Ids the front end links to (a sub-document, or null).
    #[serde(default)]
    pub data: Bson,
    /// Read by the recipient (missing or null: unread).
    #[serde(default, deserialize_with = "flag")]
    pub read: bool,
    /// Creation time.
    #[serde(default, deserialize_with = "opt_date")]
    pub created_at: Option<bson::DateTime>,
}

impl NotificationDoc {
    /// A new unread notification, created now.
    pub fn new(user_id: &str, kind: &str, title: &str, message: String, data: Document) -> Self {
        Self {
            id: ObjectId::new(),
            user_id: user_id.to_string(),
            kind: kind.to_string(),
            title: title.to_string(),
            message,
            data: Bson::Document(data),
            read: false,
            created_at: Some(bson::DateTime::now()),
        }
    }
}

/// Inserts a notification.
pub async fn insert(gw: &Gateway, notification: &NotificationDoc) -> Result<(), DbError> {
    gw.run(
        "insert_one",
        NOTIFICATIONS,
        |c: Collection<NotificationDoc>| async move {
            c.insert_one(notification).await.map(|_| ())
        },
    )
    .await
}

/// Inserts a notification whose id may exist already (a retried request whose ids come
/// from an `Idempotency-Key`): a duplicate id is the same notification, already there.
pub async fn insert_once(gw: &Gateway, notification: &NotificationDoc) -> Result<(), DbError> {
    match insert(gw, notification).await {
        Err(DbError::DuplicateKey(_)) => Ok(()),
        other => other,
    }
}

/// The `limit` newest notifications of `user_id` (ties broken by id, newest first).
pub async fn list_for_user(
    gw: &Gateway,
    user_id: &str,
    limit: i64,
) -> Result<Vec<NotificationDoc>, DbError> {
    let filter = doc! { "user_id": user_id };
    super::find_sorted(
        gw,
        NOTIFICATIONS,
        filter,
        doc! { "created_at": -1, "_id": -1 },
        limit,
    )
    .await
}

/// How many unread notifications `user_id` has (a document without `read` is unread, as
/// the list shows it).
pub async fn count_unread(gw: &Gateway, user_id: &str) -> Result<u64, DbError> {
    let filter = doc! { "user_id": user_id, "read": { "$ne": true } };
    gw.run(
        "count_documents",
        NOTIFICATIONS,
        |c: Collection<Document>| async move { c.count_documents(filter).await },
    )
    .await
}

/// Marks notification `id` of `user_id` read. False when there is none (or not theirs).
pub async fn mark_read(gw: &Gateway, id: ObjectId, user_id: &str) -> Result<bool, DbError> {
    let filter = doc! { "_id": id, "user_id": user_id };
    gw.run(
        "update_one",
        NOTIFICATIONS,
        |c: Collection<Document>| async move {
            c.update_one(filter, doc! { "$set": { "read": true } })
                .await
                .map(|r| r.matched_count > 0)
        },
    )
    .await
}

/// Marks every notification of `user_id` read. Returns how many changed.
pub async fn mark_all_read(gw: &Gateway, user_id: &str) -> Result<u64, DbError> {
    let filter = doc! { "user_id": user_id, "read": { "$ne": true } };
    gw.run(
        "update_many",
        NOTIFICATIONS,
        |c: Collection<Document>| async move {
            c.update_many(filter, doc! { "$set": { "read": true } })
                .await
                .map(|r| r.modified_count)
        },
    )
    .await
}

/// Deletes every notification of `user_id`. Returns how many.
pub async fn delete_for_user(gw: &Gateway, user_id: &str) -> Result<u64, DbError> {
    let filter = doc! { "user_id": user_id };
    gw.run(
        "delete_many",
        NOTIFICATIONS,
        |c: Collection<Document>| async move { c.delete_many(filter).await.map(|r| r.deleted_count) },
    )
    .await
}

/// What a notification about a deleted account says instead of the sender's words.
pub const SENDER_DELETED: &str =
    "This notification was about an account that has since been deleted.";

/// Removes a deleted account from other users' notifications: every notification whose
/// data names `user_id` as its sender (`contributor_id` of a contribution, `tree_owner_id`
/// of an invitation or a review) loses that id and its message (which holds the sender's
/// name, or the review note they wrote), keeps its type, title and ids of other things, and
/// says the account was deleted. Returns how many were changed.
pub async fn forget_sender(gw: &Gateway, user_id: &str) -> Result<u64, DbError> {
    let filter = doc! { "$or": [
        { "data.contributor_id": user_id },
        { "data.tree_owner_id": user_id },
    ] };
    let update = doc! {
        "$set": { "message": SENDER_DELETED, "data.sender_deleted": true },
        "$unset": { "data.contributor_id": "", "data.tree_owner_id": "" },
    };
    gw.run(
        "update_many",
        NOTIFICATIONS,
        |c: Collection<Document>| async move {
            c.update_many(filter, update)
                .await
                .map(|r| r.modified_count)
        },
    )
    .await
}
