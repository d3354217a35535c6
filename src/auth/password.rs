//! bcrypt password hashing as the old service did it (`$2b$`, cost 12), run on Tokio's
//! blocking pool and limited to fewer concurrent hashes than cores, so a burst of logins
//! leaves CPU for the runtime (probes keep answering).
//!
//! The wait for a hashing slot is bounded too ([`Hasher::queue_timeout`],
//! `HASH_QUEUE_TIMEOUT_MS`): when ~20 logins arrive at once, those that cannot start hashing
//! in time get [`Busy`] (503 + `Retry-After`) instead of queueing behind seconds of bcrypt.

use std::time::Duration;

use tokio::sync::Semaphore;

/// bcrypt cost of new hashes (the old service's).
pub const COST: u32 = 12;

/// No hashing slot came free within the queue timeout: try again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    /// How long the caller waited (the suggested retry delay).
    pub waited: Duration,
}

/// The bcrypt slots of one service.
#[derive(Debug)]
pub struct Hasher {
    permits: Semaphore,
    queue_timeout: Duration,
}

impl Hasher {
    /// `cores - 1` concurrent hashes (at least one), each waiting at most `queue_timeout`
    /// for its slot.
    pub fn new(queue_timeout: Duration) -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self {
            permits: Semaphore::new(cores.saturating_sub(1).max(1)),
            queue_timeout,
        }
    }

    /// The longest wait for a slot.
    pub fn queue_timeout(&self) -> Duration {
        self.queue_timeout
    }

    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Busy> {
        let busy = Busy {
            waited: self.queue_timeout,
        };
        match tokio::time::timeout(self.queue_timeout, self.permits.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(busy),
        }
    }

    /// Hashes `password` with bcrypt `$2b$`, cost [`COST`].
    pub async fn hash(&self, password: String) -> Result<Result<String, String>, Busy> {
        self.hash_with_cost(password, COST).await
    }

    /// Hashes with an explicit cost (tests use a low one).
    pub async fn hash_with_cost(
        &self,
        password: String,
        cost: u32,
    ) -> Result<Result<String, String>, Busy> {
        let _permit = self.slot().await?;
        Ok(tokio::task::spawn_blocking(move || {
            bcrypt::hash_with_result(password, cost)
                .map(|h| h.format_for_version(bcrypt::Version::TwoB))
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r))
    }

    /// True when `password` matches `hash` (any bcrypt version: `$2a$`, `$2b$`, `$2y$`).
    /// A malformed stored hash never matches.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, Busy> {
        let _permit = self.slot().await?;
        Ok(
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made by Python's `bcrypt` package: `bcrypt.hashpw(b"Motdepasse123!", bcrypt.gensalt(12))` (bcrypt 5.0.0).
    const PYTHON_HASH: &str = "$2b$12$ubWrbP9Hl8mCt5JJPD4pIuoQJ9vEq9yzx6.ixtzyGPnWWME9RtCbG";

    fn hasher() -> Hasher {
        Hasher::new(Duration::from_secs(30))
    }

    #[tokio::test]
    async fn hashes_are_2b_and_verify() {
        let h = hasher();
        let hash = h.hash_with_cost("pw".into(), 4).await.unwrap().unwrap();
        assert!(hash.starts_with("$2b$04$"), "{hash}");
        assert!(h.verify("pw".into(), hash.clone()).await.unwrap());
        assert!(!h.verify("other".into(), hash).await.unwrap());
        assert!(!h.verify("pw".into(), "garbage".into()).await.unwrap());
    }

    #[tokio::test]
    async fn a_hash_made_by_python_bcrypt_verifies() {
        let h = hasher();
        assert!(
            h.verify("Motdepasse123!".into(), PYTHON_HASH.into())
                .await
                .unwrap()
        );
        assert!(
            !h.verify("motdepasse123!".into(), PYTHON_HASH.into())
                .await
                .unwrap()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_that_finds_no_slot_in_time_is_told_busy() {
        let h = Hasher::new(Duration::from_millis(300));
        let held: Vec<_> = (0..h.permits.available_permits())
            .map(|_| h.permits.try_acquire().unwrap())
            .collect();
        let busy = h.verify("pw".into(), PYTHON_HASH.into()).await.unwrap_err();
        assert_eq!(busy.waited, Duration::from_millis(300));
        drop(held);
        assert!(h.verify("pw".into(), "garbage".into()).await.is_ok());
    }
}
