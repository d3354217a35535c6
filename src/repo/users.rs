//! The `users` collection, and the first-admin marker in `service_flags`.
//!
//! # Exactly one first admin
//! The contract makes the very first user of the database an admin. Counting users and then
//! inserting is a race (two simultaneous first registrations both count zero), and FerretDB
//! has no transactions. So the first admin is decided by a unique write: a registration
//! that finds no user inserts the marker document `{_id: "first_admin", user_id, claimed_at}`
//! into `service_flags` *before* inserting its user; only the one whose insert succeeds
//! becomes admin (the others get a duplicate key on `_id` and become members).
//!
//! The marker converges when things go wrong: the winner deletes it again if its user
//! insert fails, and a marker whose user does not exist and that is older than
//! [`STALE_MARKER`] (a crash between the two writes, or the first admin deleted their
//! account and the database is empty again) is taken over by the next first registration.
//! A database that already holds users (migrated from the old service) never gets a new
//! admin this way.

use std::time::Duration;

use bson::oid::ObjectId;
use bson::{Bson, Document, doc};
use futures::TryStreamExt;
use mongodb::Collection;
use serde::{Deserialize, Serialize};

use super::dates::opt_date;
use super::text::{flag, opt_text, text};
use crate::db::{DbError, Gateway};
use crate::domain::enums::Role;

/// Collection name.
pub const USERS: &str = "users";
/// Collection of the service's own flags (the first-admin marker).
pub const SERVICE_FLAGS: &str = "service_flags";
/// `_id` of the first-admin marker.
pub const FIRST_ADMIN: &str = "first_admin";
/// A first-admin marker older than this whose user does not exist may be taken over.
pub const STALE_MARKER: Duration = Duration::from_secs(60);

/// A user document, as the old service wrote it (`role` may be missing: member).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserDoc {
    /// Id.
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// Email, lower-cased (old documents may keep the case the user typed).
    #[serde(default, deserialize_with = "text")]
    pub email: String,
    /// bcrypt hash.
    #[serde(default, deserialize_with = "text")]
    pub password_hash: String,
    /// First name.
    #[serde(default, deserialize_with = "text")]
    pub first_name: String,
    /// Last name.
    #[serde(default, deserialize_with = "text")]
    pub last_name: String,
    /// GDPR consent given.
    #[serde(default, deserialize_with = "flag")]
    pub gdpr_consent: bool,
    /// When consent was given.
    #[serde(default, deserialize_with = "opt_date")]
    pub gdpr_consent_date: Option<bson::DateTime>,
    /// Creation time.
    #[serde(default, deserialize_with = "opt_date")]
    pub created_at: Option<bson::DateTime>,
    /// `admin` or `member`; missing or null means member.
    #[serde(default, deserialize_with = "opt_text")]
    pub role: Option<String>,
    /// Tokens issued at or before this instant are revoked (a logout, a password change);
    /// missing: every unexpired token is valid (the old service never wrote it).
    #[serde(
        default,
        deserialize_with = "opt_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub tokens_valid_after: Option<bson::DateTime>,
    /// The owner of the account proved they receive mail at `email` (followed a mailed
    /// link); missing (every account made before verification existed): not verified.
    #[serde(default, deserialize_with = "flag")]
    pub email_verified: bool,
    /// When the address was verified.
    #[serde(
        default,
        deserialize_with = "opt_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub email_verified_at: Option<bson::DateTime>,
    /// Raised by every write to this user's persons and links ([`super::tree_version`]);
    /// missing: 0.
    #[serde(
        default,
        deserialize_with = "super::tree_version::read",
        skip_serializing_if = "super::tree_version::is_unset"
    )]
    pub tree_version: i64,
}

impl UserDoc {
    /// The revocation cutoff, milliseconds since the epoch, if any.
    pub fn tokens_cutoff_ms(&self) -> Option<i64> {
        self.tokens_valid_after.map(|d| d.timestamp_millis())
    }

    /// True for administrators.
    pub fn is_admin(&self) -> bool {
        self.role() == Role::Admin
    }

    /// The role; missing or unknown means member.
    pub fn role(&self) -> Role {
        self.role
            .as_deref()
            .and_then(Role::parse)
            .unwrap_or(Role::Member)
    }
}

/// What registration needs to create a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Email, already validated and lower-cased.
    pub email: String,
    /// bcrypt hash of the password.
    pub password_hash: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// GDPR consent (registration refuses `false` before getting here).
    pub gdpr_consent: bool,
}

/// The result of [`create`].
#[derive(Debug, Clone)]
pub enum Created {
    /// The new user (admin if it was the first).
    User(Box<UserDoc>),
    /// A user with this email exists already.
    EmailTaken,
}

/// The spellings under which `email` may be stored: lower-cased (this service), as typed,
/// and with only the domain lower-cased (the old service's email validator).
pub fn email_variants(email: &str) -> Vec<String> {
    let typed = email.trim().to_string();
    let mut variants = vec![typed.to_lowercase()];
    if let Some((local, domain)) = typed.rsplit_once('@') {
        variants.push(format!("{local}@{}", domain.to_lowercase()));
    }
    variants.push(typed);
    variants.dedup();
    let mut unique = Vec::with_capacity(variants.len());
    for v in variants {
        if !unique.contains(&v) {
            unique.push(v);
        }
    }
    unique
}

/// The user with id `id`, if any.
pub async fn find_by_id(gateway: &Gateway, id: ObjectId) -> Result<Option<UserDoc>, DbError> {
    gateway
        .run("find_one", USERS, |c: Collection<UserDoc>| async move {
            c.find_one(doc! { "_id": id }).await
        })
        .await
}

/// The user registered under `email`, whatever the case: one indexed lookup of the usual
/// spellings ([`email_variants`]). Emails the old service stored in another case are
/// lower-cased once at start-up ([`super::email_case`]), so no per-request scan is needed.
///
/// Two users whose emails differ only by case (left so by that migration) are told apart
/// by the exact spelling: it wins over another spelling, else the oldest user does.
pub async fn find_by_email(gateway: &Gateway, email: &str) -> Result<Option<UserDoc>, DbError> {
    let variants = email_variants(email);
    let limit = variants.len() as i64;
    let typed = email.trim().to_string();
    let found: Vec<UserDoc> = gateway
        .run("find", USERS, |c: Collection<UserDoc>| async move {
            c.find(doc! { "email": { "$in": variants } })
                .sort(doc! { "_id": 1 })
                .limit(limit)
                .await?
                .try_collect()
                .await
        })
        .await?;
    let exact = found.iter().position(|u| u.email == typed);
    Ok(found.into_iter().nth(exact.unwrap_or(0)))
}

/// Every user, oldest first, at most `limit`.
pub async fn list(gateway: &Gateway, limit: i64) -> Result<Vec<UserDoc>, DbError> {
    gateway
        .run("find", USERS, |c: Collection<UserDoc>| async move {
            c.find(doc! {})
                .sort(doc! { "_id": 1 })
                .limit(limit)
                .await?
                .try_collect()
                .await
        })
        .await
}

/// Sets the role of user `id`. False when there is no such user.
pub async fn set_role(gateway: &Gateway, id: ObjectId, role: Role) -> Result<bool, DbError> {
    gateway
        .run("update_one", USERS, |c: Collection<UserDoc>| async move {
            c.update_one(
                doc! { "_id": id },
                doc! { "$set": { "role": role.as_str() } },
            )
            .await
            .map(|r| r.matched_count > 0)
        })
        .await
}

/// Revokes every token of user `id` issued at or before `at` (logout). The cutoff only
/// moves forward (`$max`), so replicas whose clocks disagree never bring a revoked token
/// back. False when there is no such user.
pub async fn revoke_tokens(
    gateway: &Gateway,
    id: ObjectId,
    at: bson::DateTime,
) -> Result<bool, DbError> {
    set_with_cutoff(gateway, id, at, Document::new()).await
}

/// Replaces the password hash of user `id` and, in the same write, revokes every token
/// issued until now. False when there is no such user.
pub async fn set_password(
    gateway: &Gateway,
    id: ObjectId,
    password_hash: String,
) -> Result<bool, DbError> {
    let now = crate::domain::time::now();
    set_with_cutoff(gateway, id, now, doc! { "password_hash": password_hash }).await
}

async fn set_with_cutoff(
    gateway: &Gateway,
    id: ObjectId,
    at: bson::DateTime,
    set: Document,
) -> Result<bool, DbError> {
    let mut update = doc! { "$max": { "tokens_valid_after": at } };
    if !set.is_empty() {
        update.insert("$set", set);
    }
    gateway
        .run("update_one", USERS, |c: Collection<UserDoc>| async move {
            c.update_one(doc! { "_id": id }, update)
                .await
                .map(|r| r.matched_count > 0)
        })
        .await
}

/// Marks the address of user `id` verified (idempotent: a second call keeps the first
/// date). False when there is no such user.
pub async fn mark_verified(gateway: &Gateway, id: ObjectId) -> Result<bool, DbError> {
    let now = crate::domain::time::now();
    gateway
        .run("update_one", USERS, |c: Collection<UserDoc>| async move {
            c.update_one(
                doc! { "_id": id, "email_verified": { "$ne": true } },
                doc! { "$set": { "email_verified": true, "email_verified_at": now } },
            )
            .await?;
            c.count_documents(doc! { "_id": id }).await.map(|n| n > 0)
        })
        .await
}

/// The result of [`demote`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demotion {
    /// The user is a member now (or already was).
    Demoted,
    /// No such user.
    NotFound,
    /// The user was the last admin: the demotion was undone.
    LastAdmin,
}

/// Makes user `id` a member unless that leaves no admin.
///
/// FerretDB has no transactions, so the check comes after the write: the demotion is
/// applied, the admins are counted, and when none is left the demotion is undone. Two
/// admins demoting each other at once therefore never both succeed (the later count sees
/// both writes); at worst both are undone and both callers are told why.
pub async fn demote(gateway: &Gateway, id: ObjectId) -> Result<Demotion, DbError> {
    let admin = Role::Admin.as_str();
    let changed = gateway
        .run("update_one", USERS, |c: Collection<UserDoc>| async move {
            c.update_one(
                doc! { "_id": id, "role": admin },
                doc! { "$set": { "role": Role::Member.as_str() } },
            )
            .await
            .map(|r| r.modified_count > 0)
        })
        .await?;
    if !changed {
        return Ok(match find_by_id(gateway, id).await? {
            Some(_) => Demotion::Demoted,
            None => Demotion::NotFound,
        });
    }
    let admins = gateway
        .run(
            "count_documents",
            USERS,
            |c: Collection<UserDoc>| async move { c.count_documents(doc! { "role": admin }).await },
        )
        .await?;
    if admins > 0 {
        return Ok(Demotion::Demoted);
    }
    set_role(gateway, id, Role::Admin).await?;
    tracing::warn!(user.id = %id, "demotion undone: it would have left no admin");
    Ok(Demotion::LastAdmin)
}

/// Deletes user `id`. False when there was none.
pub async fn delete(gateway: &Gateway, id: ObjectId) -> Result<bool, DbError> {
    gateway
        .run("delete_one", USERS, |c: Collection<UserDoc>| async move {
            c.delete_one(doc! { "_id": id })
                .await
                .map(|r| r.deleted_count > 0)
        })
        .await
}

/// Creates a user: admin when it is the first user of the database (see the module doc),
/// member otherwise. [`Created::EmailTaken`] when the email is registered already (checked
/// first, and enforced by the unique index on `email` under concurrent registrations).
pub async fn create(gateway: &Gateway, new: NewUser) -> Result<Created, DbError> {
    create_with_id(gateway, ObjectId::new(), new).await
}

/// [`create`] with a chosen id (derived from an `Idempotency-Key`: a retried registration
/// whose first attempt did happen recognises its user by the id).
pub async fn create_with_id(
    gateway: &Gateway,
    id: ObjectId,
    new: NewUser,
) -> Result<Created, DbError> {
    if find_by_email(gateway, &new.email).await?.is_some() {
        return Ok(Created::EmailTaken);
    }
    let is_admin = claim_first_admin(gateway, id).await?;
    let now = crate::domain::time::now();
    let user = UserDoc {
        id,
        email: new.email,
        password_hash: new.password_hash,
        first_name: new.first_name,
        last_name: new.last_name,
        gdpr_consent: new.gdpr_consent,
        gdpr_consent_date: new.gdpr_consent.then_some(now),
        created_at: Some(now),
        role: Some(
            if is_admin { Role::Admin } else { Role::Member }
                .as_str()
                .to_string(),
        ),
        tokens_valid_after: None,
        email_verified: false,
        email_verified_at: None,
        tree_version: 0,
    };
    let doc = user.clone();
    let inserted = gateway
        .run("insert_one", USERS, |c: Collection<UserDoc>| async move {
            c.insert_one(doc).await.map(|_| ())
        })
        .await;
    match inserted {
        Ok(()) => Ok(Created::User(Box::new(user))),
        Err(e) => {
            if is_admin {
                // Best effort: give the marker back so the next first registration wins it
                // now rather than after STALE_MARKER.
                let _ = release_first_admin(gateway, id).await;
            }
            match e {
                DbError::DuplicateKey(_) => Ok(Created::EmailTaken),
                other => Err(other),
            }
        }
    }
}

/// True when `user_id` is now the first admin: the database holds no user and this call
/// inserted the first-admin marker (or took over a stale one).
pub async fn claim_first_admin(gateway: &Gateway, user_id: ObjectId) -> Result<bool, DbError> {
    let any_user = gateway
        .run("find_one", USERS, |c: Collection<Document>| async move {
            c.find_one(doc! {}).projection(doc! { "_id": 1 }).await
        })
        .await?;
    if any_user.is_some() {
        return Ok(false);
    }
    if insert_marker(gateway, user_id).await? {
        return Ok(true);
    }
    // Someone holds the marker. Take it over only when it is stale: its user does not exist
    // and it is older than any registration in flight could be.
    let marker = gateway
        .run(
            "find_one",
            SERVICE_FLAGS,
            |c: Collection<Document>| async move { c.find_one(doc! { "_id": FIRST_ADMIN }).await },
        )
        .await?;
    let Some(marker) = marker else {
        return insert_marker(gateway, user_id).await;
    };
    let holder = marker.get("user_id").cloned().unwrap_or(Bson::Null);
    let claimed_at = marker.get("claimed_at").and_then(super::dates::from_bson);
    let fresh = claimed_at.is_none_or(|at| {
        let age = crate::domain::time::now().timestamp_millis() - at.timestamp_millis();
        age < STALE_MARKER.as_millis() as i64
    });
    if fresh {
        return Ok(false);
    }
    if let Bson::ObjectId(holder_id) = holder {
        if find_by_id(gateway, holder_id).await?.is_some() {
            return Ok(false);
        }
    }
    let removed = gateway
        .run(
            "delete_one",
            SERVICE_FLAGS,
            |c: Collection<Document>| async move {
                c.delete_one(doc! { "_id": FIRST_ADMIN, "user_id": holder })
                    .await
                    .map(|r| r.deleted_count > 0)
            },
        )
        .await?;
    if !removed {
        return Ok(false);
    }
    insert_marker(gateway, user_id).await
}

/// Inserts the marker; false when it exists already.
async fn insert_marker(gateway: &Gateway, user_id: ObjectId) -> Result<bool, DbError> {
    let marker = doc! {
        "_id": FIRST_ADMIN,
        "user_id": user_id,
        "claimed_at": crate::domain::time::now(),
    };
    let inserted = gateway
        .run(
            "insert_one",
            SERVICE_FLAGS,
            |c: Collection<Document>| async move { c.insert_one(marker).await.map(|_| ()) },
        )
        .await;
    match inserted {
        Ok(()) => Ok(true),
        Err(DbError::DuplicateKey(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes the marker if `user_id` holds it.
async fn release_first_admin(gateway: &Gateway, user_id: ObjectId) -> Result<(), DbError> {
    gateway
        .run(
            "delete_one",
            SERVICE_FLAGS,
            |c: Collection<Document>| async move {
                c.delete_one(doc! { "_id": FIRST_ADMIN, "user_id": user_id })
                    .await
                    .map(|_| ())
            },
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_variants_cover_old_spellings() {
        assert_eq!(
            email_variants(" Ada@Example.COM "),
            vec!["ada@example.com", "Ada@example.com", "Ada@Example.COM"]
        );
        assert_eq!(email_variants("ada@example.com"), vec!["ada@example.com"]);
    }

    #[test]
    fn an_old_document_reads_with_defaults() {
        let d = doc! {
            "_id": ObjectId::new(),
            "email": "a@b.c",
            "password_hash": "$2b$12$x",
            "first_name": Bson::Null,
            "gdpr_consent_date": "2024-01-02T03:04:05.123456",
            "created_at": bson::DateTime::from_millis(0),
        };
        let u: UserDoc = bson::from_document(d).unwrap();
        assert_eq!(u.role(), Role::Member);
        assert!(!u.is_admin());
        assert_eq!(u.first_name, "");
        assert!(u.gdpr_consent_date.is_some());
        assert!(
            !u.email_verified,
            "a document without the field is not verified"
        );
    }
}
