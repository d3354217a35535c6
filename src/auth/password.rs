//! bcrypt password hashing as the old service did it (`$2b$`, cost 12), run on Tokio's
//! blocking pool and limited to fewer concurrent hashes than cores, so a burst of logins
//! leaves CPU for the runtime (probes keep answering).

use std::sync::LazyLock;

use tokio::sync::Semaphore;

/// bcrypt cost of new hashes (the old service's).
pub const COST: u32 = 12;

static HASHING: LazyLock<Semaphore> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    Semaphore::new(cores.saturating_sub(1).max(1))
});

/// Hashes `password` with bcrypt `$2b$`, cost [`COST`].
pub async fn hash(password: String) -> Result<String, String> {
    hash_with_cost(password, COST).await
}

/// Hashes with an explicit cost (tests use a low one).
pub async fn hash_with_cost(password: String, cost: u32) -> Result<String, String> {
    let _permit = HASHING.acquire().await.map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(move || {
        bcrypt::hash_with_result(password, cost)
            .map(|h| h.format_for_version(bcrypt::Version::TwoB))
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// True when `password` matches `hash` (any bcrypt version: `$2a$`, `$2b$`, `$2y$`).
/// A malformed stored hash never matches.
pub async fn verify(password: String, hash: String) -> bool {
    let Ok(_permit) = HASHING.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made by Python's `bcrypt` package: `bcrypt.hashpw(b"Motdepasse123!", bcrypt.gensalt(12))` (bcrypt 5.0.0).
    const PYTHON_HASH: &str = "$2b$12$ubWrbP9Hl8mCt5JJPD4pIuoQJ9vEq9yzx6.ixtzyGPnWWME9RtCbG";

    #[tokio::test]
    async fn hashes_are_2b_and_verify() {
        let h = hash_with_cost("pw".into(), 4).await.unwrap();
        assert!(h.starts_with("$2b$04$"), "{h}");
        assert!(verify("pw".into(), h.clone()).await);
        assert!(!verify("other".into(), h).await);
        assert!(!verify("pw".into(), "garbage".into()).await);
    }

    #[tokio::test]
    async fn a_hash_made_by_python_bcrypt_verifies() {
        assert!(verify("Motdepasse123!".into(), PYTHON_HASH.into()).await);
        assert!(!verify("motdepasse123!".into(), PYTHON_HASH.into()).await);
    }
}
