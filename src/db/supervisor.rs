//! The supervisor: one background task per process that owns the database's recovery, so
//! recovery never waits for user traffic.
//!
//! - Builds the client (retrying in the background when the URL is unusable or a
//!   `mongodb+srv://` DNS lookup fails: status `not_configured`).
//! - While the database is not usable: pings with exponential backoff (backon; 100 ms
//!   doubling to 5 s, jittered, unlimited), logging each failed attempt with its number, the
//!   redacted error and the next delay. Its ping is the breaker's half-open probe. A driver
//!   heartbeat that succeeds cuts the wait short.
//! - On success: the breaker closes, indexes are ensured (first time, or again after a
//!   failure), the status becomes `connected`.
//! - While connected: pings every `ping_interval` with a short deadline, recording the
//!   latency. A failed ping, a failed driver heartbeat, the driver marking the server
//!   unknown, or the breaker opening under traffic: the breaker trips (calls stop waiting
//!   on the database) and the loop goes back to reconnecting.
//!
//! Everything it learns goes into the published [`DbState`].

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument;

use super::client::{DriverSignal, build_client};
use super::gateway::Gateway;
use super::indexes::{INDEXES, ensure_indexes};
use super::state::{DbState, DbStatus};
use crate::config::{MongoSettings, ReconnectSettings};
use crate::metrics::Metrics;
use crate::resilience::breaker::BreakerState;
use std::sync::Arc;

/// The recovery task and its inputs.
pub struct Supervisor {
    gateway: Gateway,
    mongo: MongoSettings,
    reconnect: ReconnectSettings,
    state: watch::Sender<DbState>,
    signals_tx: mpsc::Sender<DriverSignal>,
    signals: mpsc::Receiver<DriverSignal>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    ttl_warned: bool,
    attempt: u32,
}

enum Mode {
    Connected,
    Reconnecting,
}

impl Supervisor {
    /// A supervisor for `gateway`, publishing into `state`.
    pub fn new(
        gateway: Gateway,
        mongo: MongoSettings,
        reconnect: ReconnectSettings,
        state: watch::Sender<DbState>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let (signals_tx, signals) = mpsc::channel(64);
        Self {
            gateway,
            mongo,
            reconnect,
            state,
            signals_tx,
            signals,
            metrics,
            shutdown,
            ttl_warned: false,
            attempt: 0,
        }
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.reconnect.initial_ms))
            .with_max_delay(Duration::from_millis(self.reconnect.max_ms))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
    }

    fn update(&self, f: impl FnOnce(&mut DbState)) {
        self.state.send_modify(f);
        let connected = self.state.borrow().status == DbStatus::Connected;
        self.metrics.db_up.set(i64::from(connected));
    }

    fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Start-up's share of the work, inside the start-up trace: build the client
    /// (`db.client.configure`), ping once (`db.connect`), ensure indexes (`db.indexes`).
    /// Never fails: what is not done here, [`Supervisor::run`] keeps trying.
    pub async fn start(&mut self) -> bool {
        let span = tracing::info_span!("db.client.configure", db.namespace = %self.mongo.db_name);
        let configured = self.configure_once().instrument(span).await;
        if !configured {
            return false;
        }
        let span = tracing::info_span!(
            "db.connect",
            db.ping.latency_ms = tracing::field::Empty,
            db.connect.result = tracing::field::Empty
        );
        let connected = self.try_connect().instrument(span).await;
        if connected {
            self.ensure_indexes().await;
        }
        connected
    }

    async fn configure_once(&mut self) -> bool {
        if self.gateway.has_client() {
            return true;
        }
        let built = tokio::time::timeout(
            self.mongo.connect_timeout,
            build_client(
                &self.mongo,
                self.gateway.redactor(),
                self.signals_tx.clone(),
            ),
        )
        .await;
        match built {
            Ok(Ok(built)) => {
                for w in &built.warnings {
                    tracing::warn!("{w}");
                }
                self.gateway.install(&built);
                let warnings = built.warnings.clone();
                self.update(|s| {
                    s.status = DbStatus::Connecting;
                    s.message = "Connection pending".into();
                    s.warnings.extend(warnings);
                });
                tracing::info!(url = %self.mongo.url, "MongoDB client configured for database: {}", self.mongo.db_name);
                true
            }
            Ok(Err(e)) => {
                self.not_configured(e.to_string());
                false
            }
            Err(_) => {
                self.not_configured(format!(
                    "MONGO_URL {} could not be resolved within {} ms",
                    self.mongo.url,
                    self.mongo.connect_timeout.as_millis()
                ));
                false
            }
        }
    }

    fn not_configured(&self, why: String) {
        tracing::warn!("MongoDB client not configured: {why}; retrying in the background");
        self.update(|s| {
            s.status = DbStatus::NotConfigured;
            s.message = why.clone();
            s.last_error = Some(why);
        });
    }

    /// One ping; on success the database is marked connected.
    async fn try_connect(&mut self) -> bool {
        let span = tracing::Span::current();
        match self.ping().await {
            Ok(latency) => {
                span.record("db.ping.latency_ms", latency.as_secs_f64() * 1000.0);
                span.record("db.connect.result", "connected");
                self.metrics
                    .reconnect_attempts
                    .get_or_create(&crate::metrics::OutcomeLabels { outcome: "success" })
                    .inc();
                let attempts = self.attempt;
                self.attempt = 0;
                self.update(|s| {
                    s.status = DbStatus::Connected;
                    s.message = "Connected".into();
                    s.reconnect_attempt = 0;
                    s.next_attempt_at = None;
                    s.connected_since = Some(Utc::now());
                });
                if attempts > 0 {
                    tracing::info!(
                        attempts,
                        latency_ms = latency.as_millis() as u64,
                        "MongoDB connection successful after {attempts} reconnect attempts"
                    );
                } else {
                    tracing::info!(
                        latency_ms = latency.as_millis() as u64,
                        "MongoDB connection successful"
                    );
                }
                true
            }
            Err(e) => {
                span.record("db.connect.result", "failed");
                self.metrics
                    .reconnect_attempts
                    .get_or_create(&crate::metrics::OutcomeLabels { outcome: "failure" })
                    .inc();
                self.lost(e);
                false
            }
        }
    }

    /// A ping in its own `db.ping` span, with the latency recorded.
    async fn ping(&self) -> Result<Duration, String> {
        let span = tracing::info_span!(
            "db.ping",
            db.ping.latency_ms = tracing::field::Empty,
            db.ping.result = tracing::field::Empty
        );
        let result = self
            .gateway
            .ping(self.mongo.ping_timeout)
            .instrument(span.clone())
            .await;
        match result {
            Ok(latency) => {
                span.record("db.ping.latency_ms", latency.as_secs_f64() * 1000.0);
                span.record("db.ping.result", "ok");
                self.metrics.ping_duration.observe(latency.as_secs_f64());
                self.update(|s| {
                    s.last_ping = Some(latency);
                    s.last_ping_ok_at = Some(Instant::now());
                    s.last_error = None;
                });
                Ok(latency)
            }
            Err(e) => {
                span.record("db.ping.result", "failed");
                Err(e.to_string())
            }
        }
    }

    /// The database is not usable: trip the breaker and publish why.
    fn lost(&self, why: String) {
        self.gateway.breaker().trip(&why);
        let was = self.state.borrow().status;
        self.update(|s| {
            s.status = match was {
                DbStatus::Connected | DbStatus::Disconnected => DbStatus::Disconnected,
                _ => DbStatus::Connecting,
            };
            s.message = "Connection pending".into();
            s.last_error = Some(why.clone());
            s.connected_since = None;
        });
        if was == DbStatus::Connected {
            tracing::warn!("MongoDB connection lost: {why}");
        }
    }

    async fn ensure_indexes(&mut self) {
        let report = ensure_indexes(&self.gateway, INDEXES).await;
        for f in &report.failed {
            let ttl = f.index.ends_with("expires_at_1");
            if ttl && !self.ttl_warned {
                self.ttl_warned = true;
                tracing::warn!(index = %f.index, "{}", f.error);
            } else if !ttl {
                tracing::warn!(index = %f.index, "index not created: {}", f.error);
            }
        }
        if report.failed.iter().all(|f| !f.required) && !report.interrupted {
            tracing::info!(
                created = report.ensured.len(),
                failed = report.failed.len(),
                "Database indexes created"
            );
        }
        let ttl_warning = report
            .failed
            .iter()
            .find(|f| f.index.ends_with("expires_at_1"))
            .map(|f| f.error.clone());
        self.update(|s| {
            s.indexes_ensured = report.ensured.clone();
            s.indexes_failed = report.failed.clone();
            if let Some(w) = ttl_warning {
                if !s.warnings.contains(&w) {
                    s.warnings.push(w);
                }
            }
        });
    }

    fn indexes_need_work(&self) -> bool {
        let s = self.state.borrow();
        s.indexes_ensured.is_empty()
            || s.indexes_failed
                .iter()
                .any(|f| !f.index.ends_with("expires_at_1"))
    }

    /// The loop, until shutdown.
    pub async fn run(mut self) {
        // The client first: retried with backoff while the URL is unusable.
        let mut delays = self.backoff();
        while !self.gateway.has_client() {
            self.attempt += 1;
            let delay = delays
                .next()
                .unwrap_or(Duration::from_millis(self.reconnect.max_ms));
            self.update(|s| {
                s.reconnect_attempt = self.attempt;
                s.next_attempt_at = Some(Instant::now() + delay);
            });
            if self.sleep_or_shutdown(delay).await {
                return;
            }
            let span =
                tracing::info_span!("db.client.configure", attempt = i64::from(self.attempt));
            self.configure_once().instrument(span).await;
        }
        let mut breaker = self.gateway.breaker().subscribe();
        let mut mode = if self.state.borrow().status == DbStatus::Connected {
            Mode::Connected
        } else {
            Mode::Reconnecting
        };
        let mut delays = self.backoff();
        let mut next_ping = Instant::now() + self.mongo.ping_interval;
        loop {
            if self.shutting_down() {
                return;
            }
            match mode {
                Mode::Connected => {
                    breaker.borrow_and_update();
                    tokio::select! {
                        _ = tokio::time::sleep_until(next_ping) => {
                            next_ping = Instant::now() + self.mongo.ping_interval;
                            if let Err(e) = self.ping().await {
                                self.lost(format!("ping failed: {e}"));
                                mode = Mode::Reconnecting;
                            }
                        }
                        Some(signal) = self.signals.recv() => match signal {
                            DriverSignal::HeartbeatFailed(e) => {
                                self.lost(format!("driver heartbeat failed: {e}"));
                                mode = Mode::Reconnecting;
                            }
                            DriverSignal::ServerLost => {
                                self.lost("the driver marked the server unknown".into());
                                mode = Mode::Reconnecting;
                            }
                            DriverSignal::HeartbeatSucceeded => {}
                        },
                        Ok(()) = breaker.changed() => {
                            let snap = breaker.borrow_and_update().clone();
                            if snap.state == BreakerState::Open {
                                let why = snap.last_failure.unwrap_or_else(|| "circuit breaker opened".into());
                                self.lost(format!("circuit breaker opened: {why}"));
                                mode = Mode::Reconnecting;
                            }
                        }
                        _ = self.shutdown.changed() => return,
                    }
                    if matches!(mode, Mode::Reconnecting) {
                        delays = self.backoff();
                    }
                }
                Mode::Reconnecting => {
                    self.attempt += 1;
                    let attempt = self.attempt;
                    let span = tracing::info_span!(
                        "db.reconnect",
                        attempt = i64::from(attempt),
                        db.ping.latency_ms = tracing::field::Empty,
                        db.connect.result = tracing::field::Empty
                    );
                    let ok = self.try_connect().instrument(span).await;
                    if ok {
                        if self.indexes_need_work() {
                            self.ensure_indexes().await;
                        }
                        // Signals queued during the outage describe the past.
                        while self.signals.try_recv().is_ok() {}
                        next_ping = Instant::now() + self.mongo.ping_interval;
                        mode = Mode::Connected;
                        continue;
                    }
                    let delay = delays
                        .next()
                        .unwrap_or(Duration::from_millis(self.reconnect.max_ms));
                    let last_error = self.state.borrow().last_error.clone().unwrap_or_default();
                    tracing::warn!(
                        attempt,
                        next_attempt_in_ms = delay.as_millis() as u64,
                        "MongoDB reconnect attempt {attempt} failed: {last_error}; next attempt in {} ms",
                        delay.as_millis()
                    );
                    self.update(|s| {
                        s.reconnect_attempt = attempt;
                        s.next_attempt_at = Some(Instant::now() + delay);
                    });
                    // Wait for the delay, or less if the driver sees the server answer again.
                    let deadline = tokio::time::sleep(delay);
                    tokio::pin!(deadline);
                    loop {
                        tokio::select! {
                            _ = &mut deadline => break,
                            Some(signal) = self.signals.recv() => {
                                if signal == DriverSignal::HeartbeatSucceeded {
                                    break;
                                }
                            }
                            _ = self.shutdown.changed() => return,
                        }
                    }
                }
            }
        }
    }

    async fn sleep_or_shutdown(&mut self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => false,
            _ = self.shutdown.changed() => true,
        }
    }
}
