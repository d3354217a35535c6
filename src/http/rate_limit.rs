//! Rate limits of the abuse-prone routes (governor's keyed GCRA limiters), per client
//! address and per account.
//!
//! Each [`Scope`] (login, registration, preview sessions, preview writes, invitations,
//! contributions) has up to two limiters: one keyed by the client's address
//! ([`super::client_addr`]) and one keyed by the account (the email for login, the user for
//! invitations and contributions, the session token for preview writes). A request over a
//! limit is refused before any work with 429, `Retry-After` (seconds) and a JSON `detail`.
//!
//! The state is per process: with N replicas behind a load balancer a client gets up to N
//! times the allowance (the README says so). Memory stays bounded: a background task forgets
//! every key whose allowance is full again ([`RateLimits::prune`]), and a limiter that
//! still holds `RATE_LIMIT_MAX_KEYS` keys refuses new requests of its kind until pruning
//! frees room.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, registry};
use tokio::sync::watch;

use super::error::{ApiError, ErrorBody};
use crate::config::{Rate, RateLimitSettings};
use crate::db::DbError;
use crate::metrics::{Metrics, RateLimitLabels};

/// What a limit protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `POST /api/auth/login`.
    Login,
    /// `POST /api/auth/register`.
    Register,
    /// `POST /api/preview/session`.
    PreviewSession,
    /// `POST /api/preview/{token}/person|link|convert`.
    PreviewWrite,
    /// `POST /api/collaborators/invite`.
    Invite,
    /// `POST /api/contributions`.
    Contribution,
    /// `POST /api/auth/verify-email/resend`.
    VerifyResend,
    /// `POST /api/auth/password-reset/request`.
    PasswordReset,
}

impl Scope {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Login => "login",
            Scope::Register => "register",
            Scope::PreviewSession => "preview_session",
            Scope::PreviewWrite => "preview_write",
            Scope::Invite => "invite",
            Scope::Contribution => "contribution",
            Scope::VerifyResend => "verify_resend",
            Scope::PasswordReset => "password_reset",
        }
    }
}

/// What a limiter is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    /// The client's address.
    Address,
    /// The account (email, user or preview session).
    Account,
}

impl Per {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Per::Address => "address",
            Per::Account => "account",
        }
    }
}

/// One keyed limiter.
struct Limiter {
    scope: Scope,
    per: Per,
    rate: Rate,
    inner: DefaultKeyedRateLimiter<String>,
}

/// Every limiter of the service.
pub struct RateLimits {
    limiters: Vec<Limiter>,
    max_keys: usize,
    prune_interval: Duration,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("limiters", &self.limiters.len())
            .field("max_keys", &self.max_keys)
            .finish()
    }
}

/// A governor quota: `count` at once, the whole allowance back after `period`.
fn quota(rate: Rate) -> Quota {
    let count = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
    let every = (rate.period / rate.count.max(1)).max(Duration::from_nanos(1));
    Quota::with_period(every)
        .expect("a positive period")
        .allow_burst(count)
}

impl RateLimits {
    /// The limiters of `settings` (a rate of `off` has none); their configuration is
    /// published as metrics.
    pub fn new(settings: &RateLimitSettings, metrics: Arc<Metrics>) -> Self {
        let s = settings;
        let all = [
            (Scope::Login, Per::Address, s.login_per_address),
            (Scope::Login, Per::Account, s.login_per_account),
            (Scope::Register, Per::Address, s.register_per_address),
            (
                Scope::PreviewSession,
                Per::Address,
                s.preview_session_per_address,
            ),
            (
                Scope::PreviewWrite,
                Per::Address,
                s.preview_write_per_address,
            ),
            (
                Scope::PreviewWrite,
                Per::Account,
                s.preview_write_per_session,
            ),
            (Scope::Invite, Per::Address, s.invite_per_address),
            (Scope::Invite, Per::Account, s.invite_per_account),
            (
                Scope::Contribution,
                Per::Address,
                s.contribution_per_address,
            ),
            (
                Scope::Contribution,
                Per::Account,
                s.contribution_per_account,
            ),
            (
                Scope::VerifyResend,
                Per::Address,
                s.verify_resend_per_address,
            ),
            (
                Scope::VerifyResend,
                Per::Account,
                s.verify_resend_per_account,
            ),
            (
                Scope::PasswordReset,
                Per::Address,
                s.password_reset_per_address,
            ),
            (
                Scope::PasswordReset,
                Per::Account,
                s.password_reset_per_account,
            ),
        ];
        let mut limiters = Vec::new();
        for (scope, per, rate) in all {
            let labels = RateLimitLabels {
                scope: scope.as_str(),
                per: per.as_str(),
            };
            let _ = metrics.rate_limit_refused.get_or_create(&labels);
            let _ = metrics.rate_limit_keys.get_or_create(&labels);
            let (allowed, period) = rate.map_or((0, 0), |r| (r.count, r.period.as_secs()));
            metrics
                .rate_limit_allowed
                .get_or_create(&labels)
                .set(i64::from(allowed));
            metrics
                .rate_limit_period
                .get_or_create(&labels)
                .set(period as i64);
            if let Some(rate) = rate {
                limiters.push(Limiter {
                    scope,
                    per,
                    rate,
                    inner: DefaultKeyedRateLimiter::keyed(quota(rate)),
                });
            }
        }
        Self {
            limiters,
            max_keys: s.max_keys,
            prune_interval: s.prune_interval,
            metrics,
        }
    }

    /// No limits at all (benchmarks).
    pub fn disabled(metrics: Arc<Metrics>) -> Self {
        Self {
            limiters: Vec::new(),
            max_keys: usize::MAX,
            prune_interval: Duration::from_secs(60),
            metrics,
        }
    }

    /// Takes one request of `scope` for `key` from the limiter keyed `per`; 429 when its
    /// allowance is spent (or the limiter is full).
    pub fn check(&self, scope: Scope, per: Per, key: &str) -> Result<(), TooManyRequests> {
        let Some(limiter) = self
            .limiters
            .iter()
            .find(|l| l.scope == scope && l.per == per)
        else {
            return Ok(());
        };
        let labels = RateLimitLabels {
            scope: scope.as_str(),
            per: per.as_str(),
        };
        if limiter.inner.len() >= self.max_keys {
            limiter.inner.retain_recent();
            if limiter.inner.len() >= self.max_keys {
                self.metrics.rate_limit_refused.get_or_create(&labels).inc();
                tracing::warn!(
                    rate_limit.scope = scope.as_str(),
                    rate_limit.per = per.as_str(),
                    "rate limiter full ({} keys): refusing new requests until pruning frees room",
                    self.max_keys
                );
                return Err(TooManyRequests::new(
                    "Too many clients at once: try again shortly",
                    self.prune_interval,
                ));
            }
        }
        match limiter.inner.check_key(&key.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                self.metrics.rate_limit_refused.get_or_create(&labels).inc();
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let what = match per {
                    Per::Address => "from your address",
                    Per::Account if matches!(scope, Scope::Login | Scope::PasswordReset) => {
                        "for this account"
                    }
                    Per::Account if scope == Scope::PreviewWrite => "for this preview session",
                    Per::Account => "for your account",
                };
                Err(TooManyRequests::new(
                    format!(
                        "Too many {} requests {what} (at most {} per {} s): retry after the delay in Retry-After",
                        scope.as_str().replace('_', " "),
                        limiter.rate.count,
                        limiter.rate.period.as_secs()
                    ),
                    wait,
                ))
            }
        }
    }

    /// Forgets every key whose allowance is full again, and publishes the key counts.
    pub fn prune(&self) {
        for l in &self.limiters {
            l.inner.retain_recent();
            l.inner.shrink_to_fit();
            self.metrics
                .rate_limit_keys
                .get_or_create(&RateLimitLabels {
                    scope: l.scope.as_str(),
                    per: l.per.as_str(),
                })
                .set(l.inner.len() as i64);
        }
    }

    /// Keys tracked now by the limiter of `scope` keyed `per` (0 when there is none).
    pub fn keys(&self, scope: Scope, per: Per) -> usize {
        self.limiters
            .iter()
            .find(|l| l.scope == scope && l.per == per)
            .map_or(0, |l| l.inner.len())
    }

    /// Prunes every `RATE_LIMIT_PRUNE_INTERVAL_MS` until shutdown.
    pub fn spawn_pruner(
        self: Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.prune_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => self.prune(),
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
        })
    }
}

/// 429 with `Retry-After` (seconds, at least 1) and `detail`.
#[derive(Debug, ApiResponse)]
pub enum TooManyRequests {
    /// Over a rate limit: retry after the given delay.
    #[oai(status = 429)]
    TooMany(
        Json<ErrorBody>,
        /// Seconds to wait.
        #[oai(header = "Retry-After")]
        String,
    ),
}

impl TooManyRequests {
    fn new(detail: impl Into<String>, wait: Duration) -> Self {
        let ms = wait.as_millis().max(1) as u64;
        TooManyRequests::TooMany(
            Json(ErrorBody {
                detail: detail.into(),
                retry_after_ms: Some(ms),
            }),
            ms.div_ceil(1000).max(1).to_string(),
        )
    }
}

/// The error of a rate-limited route: any [`ApiError`], or 429. Its API description is
/// [`ApiError`]'s plus the 429, so only these routes document 429.
#[derive(Debug)]
pub enum LimitedError {
    /// The route's own errors.
    Api(ApiError),
    /// Over a rate limit.
    Limited(TooManyRequests),
}

/// The result type of rate-limited handlers.
pub type LimitedResult<T> = Result<T, LimitedError>;

impl From<ApiError> for LimitedError {
    fn from(e: ApiError) -> Self {
        LimitedError::Api(e)
    }
}

impl From<DbError> for LimitedError {
    fn from(e: DbError) -> Self {
        LimitedError::Api(e.into())
    }
}

impl From<TooManyRequests> for LimitedError {
    fn from(e: TooManyRequests) -> Self {
        LimitedError::Limited(e)
    }
}

impl poem::IntoResponse for LimitedError {
    fn into_response(self) -> poem::Response {
        match self {
            LimitedError::Api(e) => e.into_response(),
            LimitedError::Limited(e) => e.into_response(),
        }
    }
}

impl From<LimitedError> for poem::Error {
    fn from(e: LimitedError) -> Self {
        match e {
            LimitedError::Api(e) => e.into(),
            LimitedError::Limited(e) => e.into(),
        }
    }
}

impl ApiResponse for LimitedError {
    fn meta() -> registry::MetaResponses {
        let mut meta = ApiError::meta();
        meta.responses.extend(TooManyRequests::meta().responses);
        meta.responses.sort_by_key(|r| r.status);
        meta
    }

    fn register(registry: &mut registry::Registry) {
        ApiError::register(registry);
        TooManyRequests::register(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(login_per_account: &str, max_keys: usize) -> RateLimitSettings {
        let off = None;
        RateLimitSettings {
            login_per_address: off,
            login_per_account: Rate::parse(login_per_account).unwrap(),
            register_per_address: off,
            preview_session_per_address: off,
            preview_write_per_address: off,
            preview_write_per_session: off,
            invite_per_address: off,
            invite_per_account: off,
            contribution_per_address: off,
            contribution_per_account: off,
            verify_resend_per_address: off,
            verify_resend_per_account: off,
            password_reset_per_address: off,
            password_reset_per_account: off,
            max_keys,
            prune_interval: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_spent_allowance_is_refused_with_the_wait() {
        let limits = RateLimits::new(&settings("2/1h", 100), Metrics::new());
        assert!(limits.check(Scope::Login, Per::Account, "a@x.org").is_ok());
        assert!(limits.check(Scope::Login, Per::Account, "a@x.org").is_ok());
        let TooManyRequests::TooMany(body, secs) = limits
            .check(Scope::Login, Per::Account, "a@x.org")
            .unwrap_err();
        // One request comes back every 30 minutes.
        let secs: u64 = secs.parse().unwrap();
        assert!((1700..=1800).contains(&secs), "{secs}");
        assert!(body.detail.contains("for this account"), "{}", body.detail);
        // Another key, and a scope without a limit, are untouched.
        assert!(limits.check(Scope::Login, Per::Account, "b@x.org").is_ok());
        assert!(
            limits
                .check(Scope::Login, Per::Address, "203.0.113.7")
                .is_ok()
        );
    }

    #[test]
    fn keys_are_pruned_and_a_full_limiter_refuses_new_ones() {
        // A quota that refills within a millisecond: every key is prunable almost at once.
        let limits = RateLimits::new(&settings("1000/1s", 3), Metrics::new());
        for k in ["a", "b", "c"] {
            assert!(limits.check(Scope::Login, Per::Account, k).is_ok());
        }
        assert_eq!(limits.keys(Scope::Login, Per::Account), 3);
        // Full: pruning frees room, so a fourth key gets in (once the others refilled).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while limits.check(Scope::Login, Per::Account, "d").is_err() {
            assert!(std::time::Instant::now() < deadline, "no room made");
            std::thread::yield_now();
        }
        assert!(limits.keys(Scope::Login, Per::Account) <= 3);
        while limits.keys(Scope::Login, Per::Account) > 0 {
            assert!(std::time::Instant::now() < deadline, "keys never pruned");
            limits.prune();
            std::thread::yield_now();
        }

        // Keys that are still limited cannot be pruned: the fourth is refused.
        let limits = RateLimits::new(&settings("1/1h", 3), Metrics::new());
        for k in ["a", "b", "c"] {
            assert!(limits.check(Scope::Login, Per::Account, k).is_ok());
        }
        let TooManyRequests::TooMany(body, _) =
            limits.check(Scope::Login, Per::Account, "d").unwrap_err();
        assert!(body.detail.contains("Too many clients"), "{}", body.detail);
    }
}
