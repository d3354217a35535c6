//! The supervisor: one background task per process that owns the database's recovery, so
//! recovery never waits for user traffic.
//!
//! - Builds the client (retrying in the background when the URL is unusable or a
//!   `mongodb+srv://` DNS lookup fails: status `not_configured`).
//! - While the database is not usable: pings with exponential backoff (100 ms doubling to
//!   `RECONNECT_MAX_MS`, jittered, unlimited), logging each failed attempt with its number,
//!   the redacted error and the next delay. Its ping is the probe of the breaker it
//!   tripped. The wait is cut short once the driver's monitor sees a member that can serve
//!   writes (one secondary answering is not enough).
//! - On success: the breaker closes, indexes are ensured, the status becomes `connected`.
//!   Indexes that could not be created are retried while connected until they exist.
//! - While connected: pings every `ping_interval` with a short deadline, recording the
//!   latency. A failed ping (unless operations kept succeeding meanwhile: a loaded database
//!   is not a silent one, nor is a set electing a primary) or what the driver's monitoring
//!   reports ([`Supervisor::judge_signal`], the one place that reads driver signals: the
//!   topology says no member can serve, [`Monitor`]; one member's failed heartbeat is a
//!   member down, not an outage): the breaker trips (calls stop waiting on the database)
//!   and the loop goes back to reconnecting.
//! - When failing operations open the breaker, the database may still answer pings: the
//!   supervisor then runs trial operations itself as soon as the open period ends, so the
//!   breaker closes without user traffic, but only on operations that succeed.
//!
//! Everything it learns goes into the published [`DbState`].

use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument;

use super::client::{DriverSignal, build_client};
use super::gateway::{DbError, Gateway, PingError};
use super::indexes::{INDEXES, ensure_indexes};
use super::state::{DbState, DbStatus};
use super::topology::{Monitor, Verdict};
use crate::config::{MongoSettings, ReconnectSettings};
use crate::metrics::Metrics;
use crate::resilience::backoff::ExponentialMillis;
use crate::resilience::breaker::{BreakerSnapshot, BreakerState, Judge};
use std::sync::Arc;

/// The recovery task and its inputs.
pub struct Supervisor {
    gateway: Gateway,
    mongo: MongoSettings,
    reconnect: ReconnectSettings,
    state: watch::Sender<DbState>,
    monitor: Monitor,
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
        let monitor = Monitor::new(
            state.clone(),
            metrics.clone(),
            gateway.redactor().clone(),
            signals_tx,
        );
        Self {
            gateway,
            mongo,
            reconnect,
            state,
            monitor,
            signals,
            metrics,
            shutdown,
            ttl_warned: false,
            attempt: 0,
        }
    }

    fn backoff(&self) -> ExponentialMillis {
        ExponentialMillis::new(
            Duration::from_millis(self.reconnect.initial_ms),
            Duration::from_millis(self.reconnect.max_ms),
            0.2,
        )
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
        let connected = matches!(
            self.try_connect().instrument(span).await,
            Attempt::Connected
        );
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
            build_client(&self.mongo, self.gateway.redactor(), self.monitor.clone()),
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
    async fn try_connect(&mut self) -> Attempt {
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
                Attempt::Connected
            }
            // Trial calls fill the half-open breaker: nothing learnt about the database.
            Err(PingError::Refused) => {
                span.record("db.connect.result", "refused");
                Attempt::Refused
            }
            Err(e) => {
                span.record("db.connect.result", "failed");
                self.metrics
                    .reconnect_attempts
                    .get_or_create(&crate::metrics::OutcomeLabels { outcome: "failure" })
                    .inc();
                self.lost(e.to_string());
                Attempt::Failed
            }
        }
    }

    /// A ping in its own `db.ping` span, with the latency recorded.
    async fn ping(&self) -> Result<Duration, PingError> {
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
                span.record(
                    "db.ping.result",
                    if e == PingError::Refused {
                        "refused"
                    } else {
                        "failed"
                    },
                );
                Err(e)
            }
        }
    }

    /// The ping while connected. `Some(reason)` when the database is lost: the ping failed,
    /// or timed out while nothing else showed the database alive (a silent database). A
    /// loaded one keeps answering operations or the driver's heartbeats (on the driver's
    /// own monitoring connections, not the request pool), and that counts as an answer.
    async fn connected_ping(&mut self) -> Option<String> {
        let started = Instant::now();
        match self.ping().await {
            Ok(_) | Err(PingError::Refused) => None,
            Err(PingError::TimedOut(e)) if self.gateway.succeeded_since(started) => {
                tracing::debug!(
                    "ping timed out ({e}) while operations succeed: loaded, not silent"
                );
                self.update(|s| s.last_ping_ok_at = Some(Instant::now()));
                None
            }
            Err(e) if self.electing() => {
                tracing::debug!("ping failed ({e}) while the replica set elects a primary");
                None
            }
            Err(e) => Some(format!("ping failed: {e}")),
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

    /// What a driver signal means for the supervisor: `Some(reason)` when the database is
    /// lost. The one place that reads the driver's monitoring: the topology decides, never
    /// one member's heartbeat. No member answers, or members answer but none has been
    /// primary for longer than an election: lost. A member down while a primary serves:
    /// not lost (the monitor logs it and publishes it in `/health` and `/metrics`).
    fn judge_signal(&self, signal: &DriverSignal) -> Option<String> {
        let DriverSignal::TopologyChanged = signal;
        match self.monitor.verdict() {
            Verdict::Unreachable => Some(format!(
                "no member of the database answers: {}",
                self.monitor.describe_down()
            )),
            Verdict::NoPrimary(since) if since.elapsed() > self.election_grace() => Some(format!(
                "no primary for {} ms: {}",
                since.elapsed().as_millis(),
                self.monitor.describe_down()
            )),
            _ => None,
        }
    }

    /// True when the topology has a member that serves writes again (cuts a reconnect
    /// wait; one member's successful heartbeat is not enough without a primary).
    fn signal_says_back(&self, signal: &DriverSignal) -> bool {
        let DriverSignal::TopologyChanged = signal;
        self.monitor.verdict() == Verdict::Serving
    }

    /// How long members may answer with no primary before it is an outage: the time the
    /// driver itself waits for a primary (`server_selection_timeout`).
    fn election_grace(&self) -> Duration {
        self.mongo.server_selection_timeout
    }

    /// True while members answer and a primary is expected within the election grace.
    fn electing(&self) -> bool {
        matches!(self.monitor.verdict(), Verdict::NoPrimary(since) if since.elapsed() <= self.election_grace())
    }

    /// Ensures the indexes not known to exist yet (all of them the first time), each under
    /// the index deadline, and publishes what exists.
    async fn ensure_indexes(&mut self) {
        let pending: Vec<_> = {
            let s = self.state.borrow();
            INDEXES
                .iter()
                .filter(|i| !s.indexes_ensured.contains(&i.qualified_name()))
                .filter(|i| !(self.ttl_warned && i.ttl.is_some()))
                .cloned()
                .collect()
        };
        if pending.is_empty() {
            return;
        }
        let report = ensure_indexes(&self.gateway, &pending, self.mongo.index_timeout).await;
        for f in &report.failed {
            let ttl = f.index.ends_with("expires_at_1");
            if ttl && !self.ttl_warned {
                self.ttl_warned = true;
                tracing::warn!(index = %f.index, "{}", f.error);
            } else if !ttl {
                tracing::warn!(index = %f.index, "index not created: {}; retrying while connected", f.error);
            }
        }
        let ttl_warnings: Vec<String> = report
            .failed
            .iter()
            .filter(|f| f.index.ends_with("expires_at_1"))
            .map(|f| f.error.clone())
            .collect();
        self.update(|s| {
            for name in &report.ensured {
                if !s.indexes_ensured.contains(name) {
                    s.indexes_ensured.push(name.clone());
                }
            }
            s.indexes_failed.retain(|f| {
                !report.ensured.contains(&f.index)
                    && !report.failed.iter().any(|n| n.index == f.index)
            });
            s.indexes_failed.extend(report.failed.iter().cloned());
            for w in ttl_warnings {
                if !s.warnings.contains(&w) {
                    s.warnings.push(w);
                }
            }
        });
        if self.state.borrow().required_indexes_ok() && !report.interrupted {
            tracing::info!(
                created = report.ensured.len(),
                failed = report.failed.len(),
                "Database indexes created"
            );
        }
    }

    fn indexes_need_work(&self) -> bool {
        let s = self.state.borrow();
        !s.required_indexes_ok()
            || s.indexes_failed
                .iter()
                .any(|f| !f.index.ends_with("expires_at_1"))
    }

    /// When the supervisor should run a trial operation: operations opened the breaker and
    /// its period is over (or it is half-open with room for another trial).
    fn trial_due(snap: &BreakerSnapshot, refused_until: Option<Instant>) -> Option<Instant> {
        if snap.opened_by != Some(Judge::Operations) {
            return None;
        }
        match snap.state {
            BreakerState::Open => snap.next_probe_at,
            BreakerState::HalfOpen => Some(refused_until.unwrap_or_else(Instant::now)),
            BreakerState::Closed => None,
        }
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
        // While every half-open trial slot is taken by callers: when to look again.
        let mut trial_refused_until: Option<Instant> = None;
        loop {
            if self.shutting_down() {
                return;
            }
            match mode {
                Mode::Connected => {
                    // The breaker as it is now, including a change made during our own ping,
                    // trial or index pass (marking it seen must not hide it).
                    let snap = breaker.borrow_and_update().clone();
                    if snap.opened_by == Some(Judge::Supervisor) {
                        let why = snap
                            .last_failure
                            .unwrap_or_else(|| "circuit breaker tripped".into());
                        self.lost(why);
                        mode = Mode::Reconnecting;
                        delays = self.backoff();
                        continue;
                    }
                    let trial_at = Self::trial_due(&snap, trial_refused_until);
                    tokio::select! {
                        _ = tokio::time::sleep_until(next_ping) => {
                            next_ping = Instant::now() + self.mongo.ping_interval;
                            if let Some(why) = self.connected_ping().await {
                                self.lost(why);
                                mode = Mode::Reconnecting;
                            } else if self.indexes_need_work() {
                                self.ensure_indexes().await;
                            }
                        }
                        _ = tokio::time::sleep_until(trial_at.unwrap_or(next_ping)), if trial_at.is_some() => {
                            trial_refused_until = None;
                            let span = tracing::info_span!("db.trial");
                            match self.gateway.trial_operation().instrument(span).await {
                                Err(DbError::Unavailable { retry_after }) => {
                                    trial_refused_until = Some(Instant::now() + retry_after.min(Duration::from_millis(100)));
                                }
                                Err(e) => tracing::info!("trial operation failed: {e}; the breaker stays open"),
                                Ok(()) => {}
                            }
                        }
                        Some(signal) = self.signals.recv() => {
                            if let Some(why) = self.judge_signal(&signal) {
                                self.lost(why);
                                mode = Mode::Reconnecting;
                            }
                        }
                        Ok(()) = breaker.changed() => {}
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
                    let delay = match self.try_connect().instrument(span).await {
                        Attempt::Connected => {
                            if self.indexes_need_work() {
                                self.ensure_indexes().await;
                            }
                            // Signals queued during the outage describe the past.
                            while self.signals.try_recv().is_ok() {}
                            next_ping = Instant::now() + self.mongo.ping_interval;
                            trial_refused_until = None;
                            mode = Mode::Connected;
                            continue;
                        }
                        Attempt::Refused => {
                            // Not a failed attempt: trials are in flight; look again shortly.
                            self.attempt -= 1;
                            Duration::from_millis(self.reconnect.initial_ms)
                        }
                        Attempt::Failed => {
                            let delay = delays
                                .next()
                                .unwrap_or(Duration::from_millis(self.reconnect.max_ms));
                            let last_error =
                                self.state.borrow().last_error.clone().unwrap_or_default();
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
                            delay
                        }
                    };
                    // Wait for the delay, or less if the driver sees the server answer again,
                    // or the breaker closes (trial operations succeeded meanwhile).
                    let deadline = tokio::time::sleep(delay);
                    tokio::pin!(deadline);
                    loop {
                        tokio::select! {
                            _ = &mut deadline => break,
                            Some(signal) = self.signals.recv() => {
                                if self.signal_says_back(&signal) {
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

/// What one reconnect attempt came to.
enum Attempt {
    Connected,
    Failed,
    Refused,
}
