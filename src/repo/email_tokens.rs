//! The `email_tokens` collection: the single-use links the service mails (email
//! verification, password reset).
//!
//! A token is 32 random bytes written as 64 hex digits; only its SHA-256 is stored, so a
//! copy of the database opens no account. A token is used at most once: [`consume`] marks
//! it used in the same write that finds it (`used_at` null and not expired), so two
//! simultaneous uses of one link never both succeed.

use std::time::Duration;

use bson::doc;
use bson::oid::ObjectId;
use mongodb::Collection;
use mongodb::options::ReturnDocument;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::{DbError, Gateway};

/// Collection name.
pub const EMAIL_TOKENS: &str = "email_tokens";

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Verifies the address it was mailed to (and accepts the invitations addressed to it).
    VerifyEmail,
    /// Sets a new password.
    PasswordReset,
}

impl Purpose {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::PasswordReset => "password_reset",
        }
    }
}

/// A stored token (never the token itself).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmailTokenDoc {
    /// Id.
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// [`Purpose::as_str`].
    pub purpose: String,
    /// The user it belongs to.
    pub user_id: ObjectId,
    /// The address it was mailed to (lower-cased).
    pub email: String,
    /// When it was made.
    pub created_at: bson::DateTime,
    /// After this it is refused.
    pub expires_at: bson::DateTime,
    /// When it was used; null until then.
    pub used_at: Option<bson::DateTime>,
}

/// SHA-256 of `token`, hex.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random token (64 hex digits).
pub fn generate() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// True when `token` has the shape of ours (64 lower-case hex digits): anything else is
/// refused before the database is asked.
pub fn well_formed(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Stores a new token for `user_id` and `email`, valid `ttl`; returns the token to mail.
pub async fn create(
    gw: &Gateway,
    purpose: Purpose,
    user_id: ObjectId,
    email: &str,
    ttl: Duration,
) -> Result<String, DbError> {
    let token = generate();
    let now = crate::domain::time::now();
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let d = EmailTokenDoc {
        id: ObjectId::new(),
        token_hash: hash(&token),
        purpose: purpose.as_str().to_string(),
        user_id,
        email: email.trim().to_lowercase(),
        created_at: now,
        expires_at: bson::DateTime::from_millis(now.timestamp_millis().saturating_add(ttl_ms)),
        used_at: None,
    };
    // The user's used and expired tokens go first: what the collection holds per user stays
    // bounded by the rate limits and the validity, with no sweep.
    let stale = doc! {
        "user_id": user_id,
        "$or": [
            { "used_at": { "$ne": bson::Bson::Null } },
            { "expires_at": { "$lte": now } },
        ],
    };
    gw.run(
        "delete_many",
        EMAIL_TOKENS,
        |c: Collection<EmailTokenDoc>| async move { c.delete_many(stale).await.map(|_| ()) },
    )
    .await?;
    gw.run(
        "insert_one",
        EMAIL_TOKENS,
        |c: Collection<EmailTokenDoc>| async move { c.insert_one(d).await.map(|_| ()) },
    )
    .await?;
    Ok(token)
}

fn usable(purpose: Purpose, token: &str) -> bson::Document {
    doc! {
        "token_hash": hash(token),
        "purpose": purpose.as_str(),
        "used_at": bson::Bson::Null,
        "expires_at": { "$gt": crate::domain::time::now() },
    }
}

/// The token, if it is unexpired, used or not (its `used_at` says which).
pub async fn find_unexpired(
    gw: &Gateway,
    purpose: Purpose,
    token: &str,
) -> Result<Option<EmailTokenDoc>, DbError> {
    if !well_formed(token) {
        return Ok(None);
    }
    let mut filter = usable(purpose, token);
    filter.remove("used_at");
    gw.run(
        "find_one",
        EMAIL_TOKENS,
        |c: Collection<EmailTokenDoc>| async move { c.find_one(filter).await },
    )
    .await
}

/// The token, if it is unused and unexpired (not used up by this call).
pub async fn find_usable(
    gw: &Gateway,
    purpose: Purpose,
    token: &str,
) -> Result<Option<EmailTokenDoc>, DbError> {
    let found = find_unexpired(gw, purpose, token).await?;
    Ok(found.filter(|t| t.used_at.is_none()))
}

/// Uses the token up: returns it when it was unused and unexpired, and marks it used in
/// the same write. `None`: unknown, used already, or expired.
pub async fn consume(
    gw: &Gateway,
    purpose: Purpose,
    token: &str,
) -> Result<Option<EmailTokenDoc>, DbError> {
    if !well_formed(token) {
        return Ok(None);
    }
    let filter = usable(purpose, token);
    gw.run(
        "find_one_and_update",
        EMAIL_TOKENS,
        |c: Collection<EmailTokenDoc>| async move {
            c.find_one_and_update(
                filter,
                doc! { "$set": { "used_at": crate::domain::time::now() } },
            )
            .return_document(ReturnDocument::After)
            .await
        },
    )
    .await
}

/// Marks every unused token of `user_id` for `purpose` used (a password set by one reset
/// link makes the other reset links of that account useless).
pub async fn use_up_all(gw: &Gateway, purpose: Purpose, user_id: ObjectId) -> Result<u64, DbError> {
    gw.run(
        "update_many",
        EMAIL_TOKENS,
        |c: Collection<EmailTokenDoc>| async move {
            c.update_many(
                doc! { "user_id": user_id, "purpose": purpose.as_str(), "used_at": bson::Bson::Null },
                doc! { "$set": { "used_at": crate::domain::time::now() } },
            )
            .await
            .map(|r| r.modified_count)
        },
    )
    .await
}

/// Deletes every token of `user_id` (account deletion).
pub async fn delete_for_user(gw: &Gateway, user_id: ObjectId) -> Result<u64, DbError> {
    gw.run(
        "delete_many",
        EMAIL_TOKENS,
        |c: Collection<EmailTokenDoc>| async move {
            c.delete_many(doc! { "user_id": user_id })
                .await
                .map(|r| r.deleted_count)
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_stored_hashed() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(well_formed(&a), "{a}");
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), a);
        assert!(!well_formed("../etc"));
        assert!(!well_formed(&a.to_uppercase()));
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
