//! The periodic sweep of expired documents, for servers that refuse TTL indexes (FerretDB):
//! one loop for every collection whose documents carry `expires_at` (preview sessions,
//! idempotency keys).
//!
//! Every `interval` it deletes what has expired, through the gateway, until `shutdown`
//! turns true. While the breaker is not closed, or no client is installed yet, a round is
//! skipped quietly (the sweep never becomes a probe and never adds to an outage's noise); a
//! failed round is logged at debug and retried next round.

use std::time::Duration;

use bson::{Document, doc};
use mongodb::Collection;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::{DbError, Gateway};
use crate::resilience::breaker::BreakerState;

/// Deletes the documents of `collection` whose `expires_at` has passed; returns how many.
pub async fn delete_expired(gw: &Gateway, collection: &'static str) -> Result<u64, DbError> {
    let filter = doc! { "expires_at": { "$lte": bson::DateTime::now() } };
    gw.run(
        "delete_many",
        collection,
        |c: Collection<Document>| async move { c.delete_many(filter).await.map(|r| r.deleted_count) },
    )
    .await
}

/// Starts the sweep of `collection` (`what` names its documents in the log: "expired
/// preview session(s)").
pub fn spawn(
    gateway: Gateway,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
    collection: &'static str,
    what: &'static str,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                changed = shutdown.wait_for(|stop| *stop) => {
                    let _ = changed;
                    return;
                }
            }
            if !gateway.has_client() || gateway.breaker().state() != BreakerState::Closed {
                continue;
            }
            match delete_expired(&gateway, collection).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sweep.deleted = n, "deleted {n} {what}"),
                Err(e) => tracing::debug!("sweep of {what} failed, next round retries: {e}"),
            }
        }
    })
}
