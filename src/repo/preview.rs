//! The `preview_sessions` collection: a try-before-you-register tree of at most 10 persons,
//! kept 24 hours. The session token and the ids of the embedded persons and links are
//! UUID v4 strings. The TTL index on `expires_at` removes expired sessions where the server
//! supports it; FerretDB does not, so expired sessions are refused on read (and removed then)
//! and [`super::sweep`] deletes them periodically.

use std::time::Duration;

use bson::oid::ObjectId;
use bson::{Document, doc};
use mongodb::Collection;
use serde::{Deserialize, Serialize};

use super::dates::opt_date;
use super::text::{opt_text, text};
use crate::db::{DbError, Gateway};

/// Collection name.
pub const PREVIEW_SESSIONS: &str = "preview_sessions";

/// How long a session lives.
pub const SESSION_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// A person inside a session (the person body plus a UUID `id`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreviewPerson {
    /// UUID v4.
    pub id: String,
    /// First name.
    #[serde(default, deserialize_with = "text")]
    pub first_name: String,
    /// Last name.
    #[serde(default, deserialize_with = "text")]
    pub last_name: String,
    /// `male`, `female` or `unknown`.
    #[serde(default, deserialize_with = "opt_text")]
    pub gender: Option<String>,
    /// Birth date as typed.
    #[serde(default, deserialize_with = "opt_text")]
    pub birth_date: Option<String>,
    /// Birth place.
    #[serde(default, deserialize_with = "opt_text")]
    pub birth_place: Option<String>,
    /// Death date as typed.
    #[serde(default, deserialize_with = "opt_text")]
    pub death_date: Option<String>,
    /// Death place.
    #[serde(default, deserialize_with = "opt_text")]
    pub death_place: Option<String>,
    /// Photo, base64.
    #[serde(default, deserialize_with = "opt_text")]
    pub photo: Option<String>,
    /// Notes.
    #[serde(default, deserialize_with = "opt_text")]
    pub notes: Option<String>,
    /// Geographic branch.
    #[serde(default, deserialize_with = "opt_text")]
    pub geographic_branch: Option<String>,
    /// When it was added.
    #[serde(default, deserialize_with = "opt_date")]
    pub created_at: Option<bson::DateTime>,
}

/// A link inside a session, between two of its persons.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreviewLink {
    /// UUID v4.
    pub id: String,
    /// First person's UUID.
    pub person_id_1: String,
    /// Second person's UUID.
    pub person_id_2: String,
    /// One of the 16 link types.
    pub link_type: String,
    /// When it was added.
    #[serde(default, deserialize_with = "opt_date")]
    pub created_at: Option<bson::DateTime>,
}

/// A preview session document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreviewSessionDoc {
    /// Id (never shown: the token is the session's public name).
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// UUID v4.
    pub session_token: String,
    /// Embedded persons, in insertion order.
    #[serde(default)]
    pub persons: Vec<PreviewPerson>,
    /// Embedded links, in insertion order.
    #[serde(default)]
    pub links: Vec<PreviewLink>,
    /// Creation time.
    #[serde(default, deserialize_with = "opt_date")]
    pub created_at: Option<bson::DateTime>,
    /// Expiry time (creation + 24 h).
    #[serde(default, deserialize_with = "opt_date")]
    pub expires_at: Option<bson::DateTime>,
}

impl PreviewSessionDoc {
    /// A new empty session, created now, expiring in 24 hours.
    pub fn new() -> Self {
        let now = bson::DateTime::now();
        Self {
            id: ObjectId::new(),
            session_token: uuid::Uuid::new_v4().to_string(),
            persons: Vec::new(),
            links: Vec::new(),
            created_at: Some(now),
            expires_at: Some(bson::DateTime::from_millis(
                now.timestamp_millis() + SESSION_TTL.as_millis() as i64,
            )),
        }
    }

    /// The expiry time: `expires_at`, else 24 h after `created_at`; a session with neither
    /// counts as expired.
    pub fn effective_expiry(&self) -> bson::DateTime {
        self.expires_at
            .or_else(|| {
                self.created_at.map(|c| {
                    bson::DateTime::from_millis(
                        c.timestamp_millis() + SESSION_TTL.as_millis() as i64,
                    )
                })
            })
            .unwrap_or(bson::DateTime::MIN)
    }

    /// True once the session has expired.
    pub fn is_expired(&self) -> bool {
        self.effective_expiry() <= bson::DateTime::now()
    }
}

impl Default for PreviewSessionDoc {
    fn default() -> Self {
        Self::new()
    }
}

/// The size in bytes of `value` as BSON (what it weighs in a document); 0 when it cannot be
/// serialised (the write would fail anyway).
pub fn bson_size<T: Serialize>(value: &T) -> usize {
    bson::to_document(value)
        .ok()
        .and_then(|d| bson::to_vec(&d).ok())
        .map_or(0, |v| v.len())
}

/// Inserts a new session.
pub async fn insert(gw: &Gateway, session: &PreviewSessionDoc) -> Result<(), DbError> {
    gw.run(
        "insert_one",
        PREVIEW_SESSIONS,
        |c: Collection<PreviewSessionDoc>| async move { c.insert_one(session).await.map(|_| ()) },
    )
    .await
}

/// Inserts `session` unless a session with its `_id` exists (a retried creation whose id
/// came from an `Idempotency-Key`): then that session is answered instead.
pub async fn insert_or_existing(
    gw: &Gateway,
    session: PreviewSessionDoc,
) -> Result<PreviewSessionDoc, DbError> {
    match insert(gw, &session).await {
        Ok(()) => Ok(session),
        Err(DbError::DuplicateKey(key)) => {
            let id = session.id;
            let existing = gw
                .run(
                    "find_one",
                    PREVIEW_SESSIONS,
                    |c: Collection<PreviewSessionDoc>| async move {
                        c.find_one(doc! { "_id": id }).await
                    },
                )
                .await?;
            existing.ok_or(DbError::DuplicateKey(key))
        }
        Err(e) => Err(e),
    }
}

/// The session named `token`, expired or not.
pub async fn find_by_token(
    gw: &Gateway,
    token: &str,
) -> Result<Option<PreviewSessionDoc>, DbError> {
    let filter = doc! { "session_token": token };
    gw.run(
        "find_one",
        PREVIEW_SESSIONS,
        |c: Collection<PreviewSessionDoc>| async move { c.find_one(filter).await },
    )
    .await
}

/// Appends `person` to session `id` if it still holds exactly `expected` persons (so two
/// concurrent additions cannot exceed the cap). False when the session changed meanwhile
/// (or is gone): read it again and retry.
pub async fn push_person(
    gw: &Gateway,
    id: ObjectId,
    expected: usize,
    person: &PreviewPerson,
) -> Result<bool, DbError> {
    let person = bson::to_bson(person).map_err(|e| DbError::Rejected {
        kind: "bson_serialization",
        message: e.to_string(),
    })?;
    let filter = doc! { "_id": id, "persons": { "$size": expected as i64 } };
    gw.run(
        "update_one",
        PREVIEW_SESSIONS,
        |c: Collection<Document>| async move {
            c.update_one(filter, doc! { "$push": { "persons": person } })
                .await
                .map(|r| r.matched_count > 0)
        },
    )
    .await
}

/// Appends `link` to session `id` if it still holds exactly `expected` links. False when the
/// session changed meanwhile (or is gone).
pub async fn push_link(
    gw: &Gateway,
    id: ObjectId,
    expected: usize,
    link: &PreviewLink,
) -> Result<bool, DbError> {
    let link = bson::to_bson(link).map_err(|e| DbError::Rejected {
        kind: "bson_serialization",
        message: e.to_string(),
    })?;
    let filter = doc! { "_id": id, "links": { "$size": expected as i64 } };
    gw.run(
        "update_one",
        PREVIEW_SESSIONS,
        |c: Collection<Document>| async move {
            c.update_one(filter, doc! { "$push": { "links": link } })
                .await
                .map(|r| r.matched_count > 0)
        },
    )
    .await
}

/// Deletes session `id` (idempotent).
pub async fn delete(gw: &Gateway, id: ObjectId) -> Result<(), DbError> {
    gw.run(
        "delete_one",
        PREVIEW_SESSIONS,
        |c: Collection<Document>| async move { c.delete_one(doc! { "_id": id }).await.map(|_| ()) },
    )
    .await
}
