//! The `collaborators` collection: who may see (viewer) or propose changes to (editor) whose
//! tree. An invitation names an email; `user_id` stays null until that email belongs to a
//! user who verified it, then the invitation is accepted ([`claim_invitations`], called
//! when the address is verified and at login of a verified account, or at once when the
//! invitee's address is verified already).

use bson::oid::ObjectId;
use bson::{Bson, doc};
use mongodb::Collection;
use serde::{Deserialize, Serialize};

use super::dates::opt_date;
use super::text::{opt_text, text};
use crate::db::{DbError, Gateway};
use crate::domain::enums::{CollaboratorRole, CollaboratorStatus};

/// Collection name.
pub const COLLABORATORS: &str = "collaborators";

/// A collaborator document, as the old service wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollaboratorDoc {
    /// Id.
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// The tree owner's user id (hex).
    #[serde(default, deserialize_with = "text")]
    pub tree_owner_id: String,
    /// The invitee's user id (hex); null until the invitee registers.
    #[serde(default, deserialize_with = "opt_text")]
    pub user_id: Option<String>,
    /// The invitee's email, lower-cased.
    #[serde(default, deserialize_with = "text")]
    pub email: String,
    /// `viewer` or `editor` (anything else reads as viewer, the lesser right).
    #[serde(default = "viewer", deserialize_with = "tolerant_role")]
    pub role: CollaboratorRole,
    /// `pending`, `accepted` or `rejected` (anything else reads as pending). Access checks
    /// query the stored value, never this reading.
    #[serde(default = "pending", deserialize_with = "tolerant_status")]
    pub status: CollaboratorStatus,
    /// Random token of the invitation (UUID v4).
    #[serde(default, deserialize_with = "opt_text")]
    pub invite_token: Option<String>,
    /// When the invitation was made.
    #[serde(default, deserialize_with = "opt_date")]
    pub invited_at: Option<bson::DateTime>,
    /// When it was accepted.
    #[serde(default, deserialize_with = "opt_date")]
    pub accepted_at: Option<bson::DateTime>,
}

fn viewer() -> CollaboratorRole {
    CollaboratorRole::Viewer
}

fn pending() -> CollaboratorStatus {
    CollaboratorStatus::Pending
}

fn tolerant_role<'de, D: serde::Deserializer<'de>>(d: D) -> Result<CollaboratorRole, D::Error> {
    let text = opt_text(d)?;
    Ok(text
        .as_deref()
        .and_then(CollaboratorRole::parse)
        .unwrap_or(CollaboratorRole::Viewer))
}

fn tolerant_status<'de, D: serde::Deserializer<'de>>(d: D) -> Result<CollaboratorStatus, D::Error> {
    let text = opt_text(d)?;
    Ok(text
        .as_deref()
        .and_then(CollaboratorStatus::parse)
        .unwrap_or(CollaboratorStatus::Pending))
}

/// Accepts every pending invitation addressed to `email` (lower-cased here) that no user
/// has claimed yet: sets `user_id`, `status: accepted`, `accepted_at: now`. Returns how many.
/// Idempotent: a second call finds nothing left to claim.
pub async fn claim_invitations(gw: &Gateway, email: &str, user_id: &str) -> Result<u64, DbError> {
    let email = email.trim().to_lowercase();
    let user_id = user_id.to_string();
    gw.run(
        "update_many",
        COLLABORATORS,
        |c: Collection<CollaboratorDoc>| async move {
            c.update_many(
                doc! {
                    "email": email,
                    "status": CollaboratorStatus::Pending.as_str(),
                    "user_id": Bson::Null,
                },
                doc! { "$set": {
                    "user_id": user_id,
                    "status": CollaboratorStatus::Accepted.as_str(),
                    "accepted_at": bson::DateTime::now(),
                } },
            )
            .await
            .map(|r| r.modified_count)
        },
    )
    .await
}

/// The invitation of `email` to `owner`'s tree, whatever its status.
pub async fn find_by_owner_and_email(
    gw: &Gateway,
    owner: &str,
    email: &str,
) -> Result<Option<CollaboratorDoc>, DbError> {
    let filter = doc! { "tree_owner_id": owner, "email": email };
    gw.run(
        "find_one",
        COLLABORATORS,
        |c: Collection<CollaboratorDoc>| async move { c.find_one(filter).await },
    )
    .await
}

/// Inserts a new collaborator document.
pub async fn insert(gw: &Gateway, collaborator: &CollaboratorDoc) -> Result<(), DbError> {
    gw.run(
        "insert_one",
        COLLABORATORS,
        |c: Collection<CollaboratorDoc>| async move { c.insert_one(collaborator).await.map(|_| ()) },
    )
    .await
}

async fn find_many(
    gw: &Gateway,
    filter: bson::Document,
    limit: i64,
) -> Result<Vec<CollaboratorDoc>, DbError> {
    super::find_sorted(
        gw,
        COLLABORATORS,
        filter,
        doc! { "invited_at": 1, "_id": 1 },
        limit,
    )
    .await
}

/// The collaborators of `owner`'s tree, oldest invitation first, at most `limit`.
pub async fn list_for_owner(
    gw: &Gateway,
    owner: &str,
    limit: i64,
) -> Result<Vec<CollaboratorDoc>, DbError> {
    find_many(gw, doc! { "tree_owner_id": owner }, limit).await
}

/// The accepted collaborations of `user_id` (trees shared with that user), at most `limit`.
pub async fn list_shared_with(
    gw: &Gateway,
    user_id: &str,
    limit: i64,
) -> Result<Vec<CollaboratorDoc>, DbError> {
    find_many(
        gw,
        doc! { "user_id": user_id, "status": CollaboratorStatus::Accepted.as_str() },
        limit,
    )
    .await
}

/// The accepted collaboration of `user_id` on `owner`'s tree, if any.
pub async fn find_accepted(
    gw: &Gateway,
    owner: &str,
    user_id: &str,
) -> Result<Option<CollaboratorDoc>, DbError> {
    let filter = doc! {
        "tree_owner_id": owner,
        "user_id": user_id,
        "status": CollaboratorStatus::Accepted.as_str(),
    };
    gw.run(
        "find_one",
        COLLABORATORS,
        |c: Collection<CollaboratorDoc>| async move { c.find_one(filter).await },
    )
    .await
}

/// Deletes collaborator `id` of `owner`'s tree. False when there is none (or not theirs).
pub async fn delete_owned(gw: &Gateway, id: ObjectId, owner: &str) -> Result<bool, DbError> {
    let filter = doc! { "_id": id, "tree_owner_id": owner };
    gw.run(
        "delete_one",
        COLLABORATORS,
        |c: Collection<CollaboratorDoc>| async move {
            c.delete_one(filter).await.map(|r| r.deleted_count > 0)
        },
    )
    .await
}

/// Deletes every collaboration of a user: as tree owner, as member (`user_id`), and the
/// invitations addressed to the user's email. Returns how many.
pub async fn delete_for_user(gw: &Gateway, user_id: &str, email: &str) -> Result<u64, DbError> {
    let filter = doc! { "$or": [
        { "tree_owner_id": user_id },
        { "user_id": user_id },
        { "email": email.to_lowercase() },
    ] };
    gw.run(
        "delete_many",
        COLLABORATORS,
        |c: Collection<CollaboratorDoc>| async move {
            c.delete_many(filter).await.map(|r| r.deleted_count)
        },
    )
    .await
}
