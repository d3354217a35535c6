//! [`KeyedLocks`]: one async mutex per key (a preview session token, a contribution id),
//! held while a request changes that thing, so two requests of this process never
//! interleave their read-check-write on it.
//!
//! Why: FerretDB 1.x runs an update as "query, modify, write back" without isolation, so two
//! concurrent conditional updates of one document can both pass their condition and one can
//! overwrite the other. On MongoDB a single-document update is atomic and the conditional
//! filters alone suffice; the lock adds the same guarantee on FerretDB for one instance.
//! Entries are removed when their last user leaves, so the map only holds keys in use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// One async mutex per key.
#[derive(Debug, Default)]
pub struct KeyedLocks {
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// A held lock (released, and its entry removed if nobody else waits, on drop).
pub struct KeyedGuard<'a> {
    locks: &'a KeyedLocks,
    key: String,
    mutex: Arc<tokio::sync::Mutex<()>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    /// Waits for, and takes, the lock of `key`.
    pub async fn lock(&self, key: &str) -> KeyedGuard<'_> {
        let mutex = {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.to_string()).or_default().clone()
        };
        let guard = mutex.clone().lock_owned().await;
        KeyedGuard {
            locks: self,
            key: key.to_string(),
            mutex,
            guard: Some(guard),
        }
    }

    /// How many keys are held or awaited.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when no key is held or awaited.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for KeyedGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.locks.map.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map's reference and ours are left: nobody else holds or awaits this key
        // (references are only taken under the map's lock, which we hold).
        if Arc::strong_count(&self.mutex) == 2 {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_holder_per_key_and_no_leftover_entries() {
        let locks = Arc::new(KeyedLocks::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (locks, inside, most) = (locks.clone(), inside.clone(), most.clone());
                tokio::spawn(async move {
                    let key = if i % 2 == 0 { "a" } else { "b" };
                    let _g = locks.lock(key).await;
                    let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // Two keys: at most two holders at once, and never two on one key.
        assert!(most.load(Ordering::SeqCst) <= 2);
        assert!(locks.is_empty());
    }
}
