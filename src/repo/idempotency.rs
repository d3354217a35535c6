//! The `idempotency_keys` collection: one record per (caller, `Idempotency-Key`), what
//! [`crate::http::idempotency`] needs to answer a repeated request with the first answer.
//!
//! A record is claimed `in_flight` by the request that first carries the key, for a lease
//! (`lease_until`); when that request ends, the record becomes `done` with the answer's
//! status, content type and body. A request that ends without an answer worth keeping
//! (5xx, 429, ...) gives its lease back (`lease_until` in the past), so a retry takes the
//! record over, keeping `first_seen`: the ids the handlers derive from the key stay the
//! same across attempts. Every record expires (`expires_at`): the TTL index removes it
//! where the server supports one, [`super::sweep`] where it does not (FerretDB), and an
//! expired record still present is treated as absent.
//!
//! `_id` is the hash of caller and key, so the replay path is one lookup by `_id`.

use std::time::Duration;

use bson::{Binary, doc, spec::BinarySubtype};
use mongodb::Collection;
use serde::{Deserialize, Serialize};

use crate::db::{DbError, Gateway};

/// Collection name.
pub const IDEMPOTENCY_KEYS: &str = "idempotency_keys";

/// How long a key counts by default (the draft's suggestion: 24 hours).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// `state` while the first request is being processed.
pub const IN_FLIGHT: &str = "in_flight";
/// `state` once its answer is stored.
pub const DONE: &str = "done";

/// One key's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Hex SHA-256 of caller and key.
    #[serde(rename = "_id")]
    pub id: String,
    /// Who sent it: `user:<id>`, `preview:<token hash>` or `addr:<client address>`.
    pub caller: String,
    /// The `Idempotency-Key` as sent (unquoted).
    pub key: String,
    /// Hex SHA-256 of method, path and body.
    pub fingerprint: String,
    /// [`IN_FLIGHT`] or [`DONE`].
    pub state: String,
    /// The claim of the request holding the lease (a UUID).
    pub claim: String,
    /// End of the holder's lease (an in-flight record past it may be taken over).
    pub lease_until: bson::DateTime,
    /// When the key was first seen (the time part of the ids derived from the key).
    pub first_seen: bson::DateTime,
    /// When the record stops counting.
    pub expires_at: bson::DateTime,
    /// Stored answer: HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
    /// Stored answer: content type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Stored answer: body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Binary>,
}

impl KeyRecord {
    /// True once past `expires_at`.
    pub fn expired(&self, now: bson::DateTime) -> bool {
        self.expires_at <= now
    }

    /// True while the first request holds a live lease.
    pub fn in_flight(&self, now: bson::DateTime) -> bool {
        self.state == IN_FLIGHT && self.lease_until > now
    }
}

/// `now + d` as a BSON date.
pub fn after(now: bson::DateTime, d: Duration) -> bson::DateTime {
    bson::DateTime::from_millis(
        now.timestamp_millis()
            .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    )
}

/// The record with this `_id` (one lookup by `_id`).
pub async fn find(gw: &Gateway, id: &str) -> Result<Option<KeyRecord>, DbError> {
    let id = id.to_string();
    gw.run(
        "find_one",
        IDEMPOTENCY_KEYS,
        |c: Collection<KeyRecord>| async move { c.find_one(doc! { "_id": id }).await },
    )
    .await
}

/// Inserts a new in-flight record; false when a record with its `_id` exists already.
pub async fn insert(gw: &Gateway, record: &KeyRecord) -> Result<bool, DbError> {
    let record = record.clone();
    let inserted = gw
        .run(
            "insert_one",
            IDEMPOTENCY_KEYS,
            |c: Collection<KeyRecord>| async move { c.insert_one(record).await.map(|_| ()) },
        )
        .await;
    match inserted {
        Ok(()) => Ok(true),
        Err(DbError::DuplicateKey(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes the record `id` if it has expired (before a new claim of the same key).
pub async fn delete_if_expired(gw: &Gateway, id: &str, now: bson::DateTime) -> Result<(), DbError> {
    let id = id.to_string();
    gw.run(
        "delete_one",
        IDEMPOTENCY_KEYS,
        |c: Collection<KeyRecord>| async move {
            c.delete_one(doc! { "_id": id, "expires_at": { "$lte": now } })
                .await
                .map(|_| ())
        },
    )
    .await
}

/// Takes over an in-flight record whose lease has ended (its request died or gave the
/// lease back), for the same request (`fingerprint`). True when this caller holds it now.
pub async fn take_over(
    gw: &Gateway,
    id: &str,
    fingerprint: &str,
    now: bson::DateTime,
    claim: &str,
    lease_until: bson::DateTime,
) -> Result<bool, DbError> {
    let filter = doc! {
        "_id": id,
        "fingerprint": fingerprint,
        "state": IN_FLIGHT,
        "lease_until": { "$lte": now },
        "expires_at": { "$gt": now },
    };
    let update = doc! { "$set": { "claim": claim, "lease_until": lease_until } };
    gw.run(
        "update_one",
        IDEMPOTENCY_KEYS,
        |c: Collection<KeyRecord>| async move { c.update_one(filter, update).await },
    )
    .await
    .map(|r| r.matched_count == 1)
}

/// Stores the answer of the request holding `claim`; the record becomes `done`.
pub async fn complete(
    gw: &Gateway,
    id: &str,
    claim: &str,
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
) -> Result<(), DbError> {
    let filter = doc! { "_id": id, "claim": claim, "state": IN_FLIGHT };
    let mut set = doc! {
        "state": DONE,
        "status": i32::from(status),
        "body": Binary { subtype: BinarySubtype::Generic, bytes: body },
    };
    if let Some(ct) = content_type {
        set.insert("content_type", ct);
    }
    let update = doc! { "$set": set };
    gw.run(
        "update_one",
        IDEMPOTENCY_KEYS,
        |c: Collection<KeyRecord>| async move { c.update_one(filter, update).await.map(|_| ()) },
    )
    .await
}

/// Gives the lease of `claim` back (its request ended without an answer worth keeping):
/// the next attempt with the key takes the record over at once.
pub async fn release(gw: &Gateway, id: &str, claim: &str) -> Result<(), DbError> {
    let filter = doc! { "_id": id, "claim": claim, "state": IN_FLIGHT };
    let update = doc! { "$set": { "lease_until": bson::DateTime::from_millis(0) } };
    gw.run(
        "update_one",
        IDEMPOTENCY_KEYS,
        |c: Collection<KeyRecord>| async move { c.update_one(filter, update).await.map(|_| ()) },
    )
    .await
}
