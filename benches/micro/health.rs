//! Reading the published health state, as `/health` does, with a context built the way
//! `startup.rs` builds it and a realistic connected state (12 indexes, the refused TTL
//! index, a warning).
//!
//! - the read itself: borrow the database state's watch channel and the breaker's, take the
//!   fields readiness looks at;
//! - `health_report`: the whole `/health` body (copies the states, formats timestamps);
//! - `health_report` + JSON, as poem-openapi writes it (`ToJSON` to a `Value`, then bytes).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use aila_api::auth::password::Hasher;
use aila_api::auth::token::TokenCodec;
use aila_api::config::LimitSettings;
use aila_api::db::Gateway;
use aila_api::db::state::{DbState, DbStatus, IndexFailure};
use aila_api::http::api::tree_cache::TreeCache;
use aila_api::http::context::{AppContext, AppInner, ListLimits};
use aila_api::http::probes::health_report;
use aila_api::http::rate_limit::RateLimits;
use aila_api::metrics::Metrics;
use aila_api::redact::Redactor;
use aila_api::resilience::breaker::{Breaker, BreakerConfig};
use criterion::Criterion;
use poem_openapi::types::ToJSON;
use tokio::sync::watch;
use tokio::time::Instant;

fn connected_state() -> DbState {
    // Every index the service creates, but the TTL ones FerretDB refuses (as on FerretDB).
    let indexes = aila_api::db::indexes::INDEXES
        .iter()
        .filter(|spec| spec.ttl.is_none())
        .map(|spec| spec.qualified_name());
    let ttl = "TTL index refused by the server (server error 238 (NotImplemented): Index option \
               \"expireAfterSeconds\" is not implemented yet); expired preview sessions are removed \
               by the service's own sweep instead";
    DbState {
        status: DbStatus::Connected,
        message: "Connected".into(),
        reconnect_attempt: 0,
        next_attempt_at: None,
        last_error: None,
        last_ping: Some(Duration::from_micros(5131)),
        last_ping_ok_at: Some(Instant::now()),
        connected_since: Some(chrono::Utc::now()),
        indexes_ensured: indexes.collect(),
        indexes_failed: vec![IndexFailure {
            index: "preview_sessions.expires_at_1".into(),
            error: ttl.into(),
            required: false,
        }],
        warnings: vec![ttl.into()],
        members: Vec::new(),
    }
}

/// The context as `startup.rs` builds it, with the state channel's sender.
fn context() -> (AppContext, watch::Sender<DbState>) {
    let metrics = Metrics::new();
    let (tx, rx) = watch::channel(connected_state());
    let gateway = Gateway::new(
        "aila_db".into(),
        Breaker::new(BreakerConfig::default(), |_| {}),
        Duration::from_secs(5),
        metrics.clone(),
        Redactor::default(),
        rx.clone(),
    );
    let ctx = AppContext(Arc::new(AppInner {
        gateway,
        tokens: TokenCodec::new(b"benchmark-secret"),
        metrics: metrics.clone(),
        db_state: rx,
        started: Instant::now(),
        shutting_down: AtomicBool::new(false),
        config_warnings: Vec::new(),
        jwt_ephemeral: false,
        health_show_errors: true,
        // Long enough that the ping above stays recent for the whole benchmark.
        ping_max_age: Duration::from_secs(24 * 3600),
        limits: ListLimits::default(),
        trusted_proxies: Default::default(),
        rate_limits: Arc::new(RateLimits::disabled(metrics.clone())),
        hasher: Hasher::new(Duration::from_secs(2)),
        caps: LimitSettings {
            hash_queue_timeout_ms: 2_000,
            photo_max_bytes: 4 * 1024 * 1024,
            preview_session_max_bytes: 12 * 1024 * 1024,
            persons_per_owner: 1_000,
            pending_contributions_per_contributor: 50,
            tree_cache_max_bytes: 0,
            tree_cache_ttl_ms: 0,
        },
        mailer: aila_api::mail::Mailer::disabled(metrics.clone(), "http://localhost:8001"),
        verification_ttl: Duration::from_secs(48 * 3600),
        password_reset_ttl: Duration::from_secs(1800),
        idempotency_ttl: Duration::from_secs(24 * 3600),
        tree_cache: TreeCache::new(0, Duration::ZERO, metrics.clone()),
    }));
    (ctx, tx)
}

pub fn benches(c: &mut Criterion) {
    let (ctx, _tx) = context();
    assert!(health_report(&ctx).ready, "the benchmark state is ready");
    let mut g = c.benchmark_group("health");
    g.bench_function("read published state (both watch borrows)", |b| {
        b.iter(|| {
            let db = ctx.db_state.borrow();
            let breaker = ctx.gateway.breaker().state();
            black_box((
                db.status,
                db.last_ping_ok_at,
                db.required_indexes_ok(),
                breaker,
            ))
        })
    });
    g.bench_function("breaker snapshot (clone of the published state)", |b| {
        b.iter(|| black_box(ctx.gateway.breaker().snapshot()))
    });
    g.bench_function("health_report (the /health body)", |b| {
        b.iter(|| black_box(health_report(&ctx)))
    });
    g.bench_function("health_report + JSON bytes", |b| {
        b.iter(|| {
            let report = health_report(&ctx);
            black_box(serde_json::to_vec(&report.to_json()).expect("JSON"))
        })
    });
    g.finish();
}
