//! The one-time lower-casing of stored emails (the old service kept some as typed).
//!
//! Run once per process through the gateway, after the database is connected and its
//! required indexes exist (the unique index on `users.email` must be there first, so a
//! lower-cased email can never duplicate another). Idempotent: a second run finds nothing
//! to change. Two stored emails that differ only by case cannot both be lower-cased: the
//! unique index refuses the second, which is left as it is and logged (its owner still
//! logs in with the exact spelling, and an operator merges the two accounts). Start-up
//! never waits for it and never stops because of it: a database outage postpones it.

use std::time::Duration;

use bson::oid::ObjectId;
use bson::{Document, doc};
use futures::TryStreamExt;
use mongodb::Collection;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::users::USERS;
use crate::db::{DbError, DbState, DbStatus, Gateway};

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailCaseReport {
    /// Users whose email was lower-cased.
    pub lowered: u64,
    /// Users left alone because another user holds the lower-cased spelling.
    pub conflicts: Vec<ObjectId>,
}

/// Lower-cases every stored email that has an upper-case letter (one query for them, one
/// conditional update each), each call under `deadline`.
pub async fn lowercase_emails(
    gateway: &Gateway,
    deadline: Duration,
) -> Result<EmailCaseReport, DbError> {
    let upper: Vec<Document> = gateway
        .run_with_deadline(
            "find",
            USERS,
            deadline,
            |c: Collection<Document>| async move {
                c.find(doc! { "email": { "$regex": "\\p{Lu}" } })
                    .projection(doc! { "_id": 1, "email": 1 })
                    .await?
                    .try_collect()
                    .await
            },
        )
        .await?;
    let mut report = EmailCaseReport::default();
    for user in upper {
        let (Ok(id), Ok(email)) = (user.get_object_id("_id"), user.get_str("email")) else {
            continue;
        };
        let lower = email.to_lowercase();
        if lower == email {
            continue;
        }
        let typed = email.to_string();
        let updated = gateway
            .run_with_deadline(
                "update_one",
                USERS,
                deadline,
                |c: Collection<Document>| async move {
                    c.update_one(
                        doc! { "_id": id, "email": typed },
                        doc! { "$set": { "email": lower } },
                    )
                    .await
                },
            )
            .await;
        match updated {
            Ok(r) => report.lowered += r.modified_count,
            Err(DbError::DuplicateKey(_)) => report.conflicts.push(id),
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

/// Runs [`lowercase_emails`] once the database is connected with its required indexes,
/// again after an outage interrupted it, and logs the outcome (user ids, never emails).
pub fn spawn_once(
    gateway: Gateway,
    mut state: watch::Receiver<DbState>,
    deadline: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let usable = |s: &DbState| s.status == DbStatus::Connected && s.required_indexes_ok();
            tokio::select! {
                changed = state.wait_for(usable) => if changed.is_err() { return },
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            match lowercase_emails(&gateway, deadline).await {
                Ok(report) => {
                    for id in &report.conflicts {
                        tracing::warn!(
                            user.id = %id,
                            "email not lower-cased: another user has the same email in another case; \
                             this user logs in with the exact spelling until an operator merges the two accounts"
                        );
                    }
                    tracing::info!(
                        lowered = report.lowered,
                        conflicts = report.conflicts.len(),
                        "stored emails lower-cased"
                    );
                    return;
                }
                Err(e) if !e.is_unavailable() => {
                    tracing::warn!(
                        "stored emails not lower-cased: {e}; users whose email has upper-case letters log in with the exact spelling until the next start"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(
                        "lower-casing stored emails postponed: {e}; retrying once the database is usable"
                    );
                    // Wait for the next change of state (an outage, then a reconnection).
                    tokio::select! {
                        _ = state.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                }
            }
        }
    })
}
