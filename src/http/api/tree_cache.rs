//! This replica's cache of `GET /api/tree` answers: the JSON of each owner's assembled tree,
//! kept with the tree version it was read under ([`crate::repo::tree_version`]).
//!
//! A request's authentication reads the caller's user document, and with it the current
//! version; an answer kept under that same version is served as it is, without reading the
//! persons and links or writing the JSON again. Any other version (a write through any
//! replica raised it) is a miss, and the answer read then replaces the old one. An entry
//! also expires after a time limit, which bounds how long a write that did not raise the
//! version (the old service, a script) can go unseen. The cache is bounded in bytes
//! (least recently and least frequently used answers go first); a zero bound turns it off.

use std::sync::Arc;
use std::time::Duration;

use bson::oid::ObjectId;
use bytes::Bytes;
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use tokio::time::Instant;

use crate::metrics::{LookupLabels, Metrics};

/// One kept answer.
#[derive(Clone)]
struct Entry {
    version: i64,
    stored: Instant,
    body: Bytes,
}

#[derive(Clone)]
struct ByBodySize;

impl Weighter<ObjectId, Entry> for ByBodySize {
    fn weight(&self, _owner: &ObjectId, entry: &Entry) -> u64 {
        // Never 0 (a zero-weight entry is never evicted): the body and the key's share.
        entry.body.len() as u64 + 64
    }
}

/// The answers kept by this replica. Cheap to clone.
#[derive(Clone)]
pub struct TreeCache {
    entries: Option<Arc<Cache<ObjectId, Entry, ByBodySize>>>,
    ttl: Duration,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for TreeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeCache")
            .field("enabled", &self.entries.is_some())
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// A 100-person tree's answer is about 70 KB: the item estimate the cache sizes its
/// tables by.
const TYPICAL_ANSWER_BYTES: u64 = 64 * 1024;

impl TreeCache {
    /// A cache holding at most `max_bytes` of answers (0: none, every lookup misses), each
    /// for at most `ttl`.
    pub fn new(max_bytes: u64, ttl: Duration, metrics: Arc<Metrics>) -> Self {
        let entries = (max_bytes > 0 && !ttl.is_zero()).then(|| {
            let items = (max_bytes / TYPICAL_ANSWER_BYTES).clamp(16, 100_000) as usize;
            Arc::new(Cache::with_weighter(items, max_bytes, ByBodySize))
        });
        Self {
            entries,
            ttl,
            metrics,
        }
    }

    /// The answer kept for `owner`'s tree at `version`, if any and not expired.
    pub fn get(&self, owner: ObjectId, version: i64) -> Option<Bytes> {
        let found = self.entries.as_ref().and_then(|entries| {
            entries
                .get(&owner)
                .filter(|e| e.version == version && e.stored.elapsed() < self.ttl)
        });
        let result = if found.is_some() { "hit" } else { "miss" };
        self.metrics
            .tree_cache_lookups
            .get_or_create(&LookupLabels { result })
            .inc();
        found.map(|e| e.body)
    }

    /// Keeps `body`, the answer for `owner`'s tree read at `version`.
    pub fn put(&self, owner: ObjectId, version: i64, body: Bytes) {
        if let Some(entries) = &self.entries {
            entries.insert(
                owner,
                Entry {
                    version,
                    stored: Instant::now(),
                    body,
                },
            );
            self.metrics
                .tree_cache_bytes
                .set(i64::try_from(entries.weight()).unwrap_or(i64::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(max_bytes: u64, ttl: Duration) -> TreeCache {
        TreeCache::new(max_bytes, ttl, Metrics::new())
    }

    #[test]
    fn an_answer_is_served_only_at_the_version_it_was_read_under() {
        let c = cache(1 << 20, Duration::from_secs(60));
        let owner = ObjectId::new();
        assert_eq!(c.get(owner, 0), None);
        c.put(owner, 0, Bytes::from_static(b"{\"persons\":[]}"));
        assert_eq!(c.get(owner, 0).as_deref(), Some(&b"{\"persons\":[]}"[..]));
        assert_eq!(c.get(owner, 1), None, "a raised version misses");
        assert_eq!(c.get(ObjectId::new(), 0), None, "another owner misses");
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_expires_after_its_time_limit() {
        let c = cache(1 << 20, Duration::from_secs(30));
        let owner = ObjectId::new();
        c.put(owner, 3, Bytes::from_static(b"{}"));
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(c.get(owner, 3).is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(c.get(owner, 3), None);
    }

    #[test]
    fn a_zero_bound_keeps_nothing_and_the_bound_holds() {
        let off = cache(0, Duration::from_secs(60));
        let owner = ObjectId::new();
        off.put(owner, 0, Bytes::from_static(b"{}"));
        assert_eq!(off.get(owner, 0), None);

        let small = cache(10 * 1024, Duration::from_secs(60));
        for _ in 0..50 {
            small.put(ObjectId::new(), 0, Bytes::from(vec![b' '; 1024]));
        }
        let kept = small.entries.as_ref().unwrap().weight();
        assert!(kept <= 10 * 1024, "{kept} bytes kept");
        let text = small.metrics.tree_cache_bytes.get();
        assert_eq!(text, kept as i64);
    }
}
