//! The `users` collection.

use bson::oid::ObjectId;
use bson::{Document, doc};
use mongodb::Collection;
use serde::{Deserialize, Serialize};

use crate::db::{DbError, Gateway};

/// Collection name.
pub const USERS: &str = "users";

/// A user document, as the old service wrote it (`role` may be missing: member).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserDoc {
    /// Id.
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// Email, lower-cased.
    pub email: String,
    /// bcrypt hash.
    pub password_hash: String,
    /// First name.
    #[serde(default)]
    pub first_name: String,
    /// Last name.
    #[serde(default)]
    pub last_name: String,
    /// GDPR consent given.
    #[serde(default)]
    pub gdpr_consent: bool,
    /// When consent was given.
    #[serde(default)]
    pub gdpr_consent_date: Option<bson::DateTime>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<bson::DateTime>,
    /// `admin` or `member`; missing or null means member.
    #[serde(default)]
    pub role: Option<String>,
}

impl UserDoc {
    /// True for administrators.
    pub fn is_admin(&self) -> bool {
        self.role.as_deref() == Some("admin")
    }
}

/// The user with id `id`, if any.
pub async fn find_by_id(gateway: &Gateway, id: ObjectId) -> Result<Option<UserDoc>, DbError> {
    gateway
        .run("find_one", USERS, |c: Collection<UserDoc>| async move {
            c.find_one(doc! { "_id": id }).await
        })
        .await
}

/// Any document, for tests and fixtures.
pub async fn insert_raw(gateway: &Gateway, d: Document) -> Result<(), DbError> {
    gateway
        .run("insert_one", USERS, |c: Collection<Document>| async move {
            c.insert_one(d).await.map(|_| ())
        })
        .await
}
