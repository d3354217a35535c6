//! What every handler shares: the gateway, the token codec, the metrics and the published
//! states. Built once by `startup`; cheap to clone.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::api::tree_cache::TreeCache;
use super::client_addr::TrustedProxies;
use super::rate_limit::RateLimits;
use crate::auth::password::Hasher;
use crate::auth::token::TokenCodec;
use crate::config::LimitSettings;
use crate::db::{DbState, Gateway};
use crate::mail::Mailer;
use crate::metrics::Metrics;

/// Shared state of the HTTP layer.
#[derive(Debug)]
pub struct AppInner {
    /// The database gateway (the only way to the database).
    pub gateway: Gateway,
    /// JWT signing and verification.
    pub tokens: TokenCodec,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// The supervisor's published database state.
    pub db_state: watch::Receiver<DbState>,
    /// When the process started.
    pub started: Instant,
    /// Set when shutdown begins: readiness answers 503 from then on.
    pub shutting_down: AtomicBool,
    /// Warnings from configuration (ephemeral JWT secret, default MONGO_URL).
    pub config_warnings: Vec<String>,
    /// True when the JWT secret was generated at start-up.
    pub jwt_ephemeral: bool,
    /// `/health` and `/readiness` show the database's error text.
    pub health_show_errors: bool,
    /// A ping older than this makes readiness fail.
    pub ping_max_age: Duration,
    /// Default and maximum list sizes.
    pub limits: ListLimits,
    /// The proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// Rate limits of the abuse-prone routes.
    pub rate_limits: Arc<RateLimits>,
    /// bcrypt slots (bounded concurrency, bounded wait).
    pub hasher: Hasher,
    /// Caps on photos, preview sessions, persons and pending contributions.
    pub caps: LimitSettings,
    /// Outgoing mail (queue only: never waits on the mail server).
    pub mailer: Mailer,
    /// Validity of an email verification link.
    pub verification_ttl: Duration,
    /// Validity of a password-reset link.
    pub password_reset_ttl: Duration,
    /// How long an `Idempotency-Key` counts.
    pub idempotency_ttl: Duration,
    /// This replica's kept `GET /api/tree` answers.
    pub tree_cache: TreeCache,
}

/// Caps on list sizes (the old service's, now documented in the API description).
#[derive(Debug, Clone, Copy)]
pub struct ListLimits {
    /// Persons, links, users, collaborators, contributions: 500.
    pub items: i64,
    /// Notifications: 50 newest.
    pub notifications: i64,
}

impl Default for ListLimits {
    fn default() -> Self {
        Self {
            items: 500,
            notifications: 50,
        }
    }
}

/// Handle to the shared state.
#[derive(Debug, Clone)]
pub struct AppContext(pub Arc<AppInner>);

impl Deref for AppContext {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl AppInner {
    /// 422 when `photo` is longer than `PHOTO_MAX_BYTES`.
    pub fn check_photo(&self, photo: Option<&str>) -> Result<(), super::error::ApiError> {
        let max = self.caps.photo_max_bytes;
        match photo {
            Some(p) if p.len() > max => Err(super::error::ApiError::unprocessable(format!(
                "photo: at most {max} bytes of base64 (this one has {}): send a smaller or more compressed image",
                p.len()
            ))),
            _ => Ok(()),
        }
    }

    /// 400 unless `owner`'s tree has room for `adding` more persons (`MAX_PERSONS_PER_OWNER`):
    /// the cap of every way persons enter a tree besides `POST /api/persons` (a preview
    /// converted, an addition approved). Counted before the write: simultaneous additions
    /// may pass the cap by as many.
    pub async fn check_room_for_persons(
        &self,
        owner: &str,
        adding: u64,
    ) -> Result<(), super::error::ApiError> {
        if adding == 0 {
            return Ok(());
        }
        let max = self.caps.persons_per_owner;
        let held = crate::repo::persons::count_for_owner(&self.gateway, owner).await?;
        if held + adding > max {
            return Err(super::error::ApiError::bad_request(format!(
                "Your tree holds at most {max} persons ({held} now, {adding} to add): delete some before adding more"
            )));
        }
        Ok(())
    }

    /// The client address of `req`, as a rate-limit key.
    pub fn client_key(&self, req: &poem::Request) -> String {
        self.trusted_proxies.client_key(req)
    }

    /// True once shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Marks shutdown as begun.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }
}
