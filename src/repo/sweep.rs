//! The periodic sweep of expired documents, for servers that refuse TTL indexes (FerretDB):
//! one loop for every collection that needs one (preview sessions, idempotency keys).
//!
//! Every `interval` it deletes what has expired, through the gateway, until `shutdown`
//! turns true. While the breaker is not closed, or no client is installed yet, a round is
//! skipped quietly (the sweep never becomes a probe and never adds to an outage's noise); a
//! failed round is logged at debug and retried next round.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::{DbError, Gateway};
use crate::resilience::breaker::BreakerState;

/// Starts the sweep of `what` (for the log: "expired preview sessions"), each round one
/// call of `delete_expired`, which answers how many documents it deleted.
pub fn spawn<F, Fut>(
    gateway: Gateway,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
    what: &'static str,
    delete_expired: F,
) -> JoinHandle<()>
where
    F: Fn(Gateway) -> Fut + Send + 'static,
    Fut: Future<Output = Result<u64, DbError>> + Send,
{
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
            match delete_expired(gateway.clone()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(sweep.deleted = n, "deleted {n} {what}"),
                Err(e) => tracing::debug!("sweep of {what} failed, next round retries: {e}"),
            }
        }
    })
}
