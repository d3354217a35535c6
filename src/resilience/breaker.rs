//! The circuit breaker.
//!
//! `closed` means calls flow; `open` means calls are refused at once (the caller gets a
//! `retry_after`); `half_open` means exactly one probe is let through and everything else
//! is still refused. The probe's outcome closes the breaker or opens it again for a longer,
//! jittered period.
//!
//! failsafe-rs supplies the failure *policy* (`consecutive_failures`: how many failures
//! open the breaker and how long each open period lasts, fed by our millisecond
//! [`ExponentialMillis`]). Its `StateMachine` is not used because it has no state getter,
//! lets every call through while half-open, can stay half-open forever when a call's future
//! is dropped, and reads the std clock (so tests cannot pause time). This wrapper owns:
//! - admission through a [`Permit`] (a closed call, or the single half-open probe);
//! - a drop guard: a probe permit dropped without an outcome counts as a failure, so the
//!   breaker never stays half-open; a dropped ordinary call counts as nothing;
//! - the published state, a [`BreakerSnapshot`] in a `tokio::sync::watch` channel, which
//!   readers (health, metrics) only read;
//! - one [`Transition`] notice per state change, for logs, span events and counters.
//!
//! Time is `tokio::time::Instant`, so tests can use `tokio::time::pause()`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use failsafe::failure_policy::{ConsecutiveFailures, FailurePolicy, consecutive_failures};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::backoff::ExponentialMillis;

/// The three states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls are refused until the open period ends.
    Open,
    /// One probe is allowed; every other call is refused.
    HalfOpen,
}

impl BreakerState {
    /// All states, for metrics that emit one series per state.
    pub const ALL: [BreakerState; 3] = [
        BreakerState::Closed,
        BreakerState::Open,
        BreakerState::HalfOpen,
    ];

    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Thresholds. See the configuration table for the defaults.
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker.
    pub failure_threshold: u32,
    /// First open period.
    pub open_initial: Duration,
    /// Longest open period.
    pub open_max: Duration,
    /// Jitter of the open periods, 0.0 to 1.0 (0.2 = ±20 %).
    pub jitter: f64,
    /// After an open period ends, ordinary callers wait this much longer before one of them
    /// may become the probe, so the supervisor's ping gets the first chance and the first
    /// user after an outage meets a closed breaker.
    pub caller_probe_grace: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_initial: Duration::from_millis(250),
            open_max: Duration::from_secs(10),
            jitter: 0.2,
            caller_probe_grace: Duration::from_millis(500),
        }
    }
}

/// What the breaker publishes. Readers never change it.
#[derive(Debug, Clone, Serialize)]
pub struct BreakerSnapshot {
    /// Current state.
    pub state: BreakerState,
    /// Wall-clock time of the last transition (or of creation).
    pub since: DateTime<Utc>,
    /// Consecutive database failures counted while closed (or that opened it).
    pub consecutive_failures: u32,
    /// When the open period ends (the next probe is due); `None` unless open.
    #[serde(skip)]
    pub next_probe_at: Option<Instant>,
    /// The last failure's reason, already redacted by the caller.
    pub last_failure: Option<String>,
    /// Number of transitions so far.
    pub transitions: u64,
}

impl BreakerSnapshot {
    /// Milliseconds until the next probe is due (0 when due now), `None` unless open.
    pub fn next_probe_in_ms(&self) -> Option<u64> {
        self.next_probe_at
            .map(|t| t.saturating_duration_since(Instant::now()).as_millis() as u64)
    }
}

/// One state change, handed to the transition hook once.
#[derive(Debug, Clone)]
pub struct Transition {
    /// State before.
    pub from: BreakerState,
    /// State after.
    pub to: BreakerState,
    /// Why, in words: `5 consecutive failures`, `probe succeeded`, ...
    pub reason: String,
    /// The open period that starts, when `to` is open.
    pub open_for: Option<Duration>,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "circuit breaker {} => {} ({})",
            self.from, self.to, self.reason
        )
    }
}

/// What a guarded call's outcome means for the breaker. The breaker knows nothing of the
/// database: the gateway decides which errors are failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The dependency answered.
    Success,
    /// The dependency failed (unreachable, timed out, ...); the text is already redacted.
    Failure(String),
    /// Neither: the call's own problem (duplicate key, validation), or cancelled while closed.
    Ignored,
}

/// Admission was refused: the breaker is open, or half-open with its probe in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// How long the caller should wait before trying again.
    pub retry_after: Duration,
    /// The state that refused.
    pub state: BreakerState,
}

/// Who asks for admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// An ordinary call (a request's database operation).
    Ordinary,
    /// The supervisor's ping: it may become the probe whenever the breaker is open.
    Supervisor,
}

type TransitionHook = Arc<dyn Fn(&Transition) + Send + Sync>;

#[derive(Debug, Clone, Copy)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

struct Core {
    state: State,
    policy: ConsecutiveFailures<RecordingBackoff>,
    consecutive_failures: u32,
    last_failure: Option<String>,
    /// Bumped at every transition: outcomes of permits from an older generation are stale.
    generation: u64,
    transitions: u64,
    since: DateTime<Utc>,
}

/// The open-period iterator given to failsafe, which also remembers its last delay so the
/// wrapper knows how long the period it just started lasts.
#[derive(Clone)]
struct RecordingBackoff {
    inner: ExponentialMillis,
    last: Arc<AtomicU64>,
}

impl Iterator for RecordingBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let d = self.inner.next()?;
        self.last.store(d.as_micros() as u64, Ordering::Relaxed);
        Some(d)
    }
}

struct Inner {
    core: Mutex<Core>,
    config: BreakerConfig,
    last_delay: Arc<AtomicU64>,
    tx: watch::Sender<BreakerSnapshot>,
    on_transition: TransitionHook,
}

/// The circuit breaker. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct Breaker {
    inner: Arc<Inner>,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("state", &self.inner.tx.borrow().state)
            .finish()
    }
}

impl Breaker {
    /// A closed breaker. `on_transition` is called once per state change, outside the lock.
    pub fn new(
        config: BreakerConfig,
        on_transition: impl Fn(&Transition) + Send + Sync + 'static,
    ) -> Self {
        let last_delay = Arc::new(AtomicU64::new(config.open_initial.as_micros() as u64));
        let backoff = RecordingBackoff {
            inner: ExponentialMillis::new(config.open_initial, config.open_max, config.jitter),
            last: last_delay.clone(),
        };
        let since = Utc::now();
        let core = Core {
            state: State::Closed,
            policy: consecutive_failures(config.failure_threshold, backoff),
            consecutive_failures: 0,
            last_failure: None,
            generation: 0,
            transitions: 0,
            since,
        };
        let (tx, _) = watch::channel(BreakerSnapshot {
            state: BreakerState::Closed,
            since,
            consecutive_failures: 0,
            next_probe_at: None,
            last_failure: None,
            transitions: 0,
        });
        Self {
            inner: Arc::new(Inner {
                core: Mutex::new(core),
                config,
                last_delay,
                tx,
                on_transition: Arc::new(on_transition),
            }),
        }
    }

    /// A receiver of the published state.
    pub fn subscribe(&self) -> watch::Receiver<BreakerSnapshot> {
        self.inner.tx.subscribe()
    }

    /// The current published state.
    pub fn snapshot(&self) -> BreakerSnapshot {
        self.inner.tx.borrow().clone()
    }

    /// The current state, without cloning the snapshot.
    pub fn state(&self) -> BreakerState {
        self.inner.tx.borrow().state
    }

    /// Asks to make a call. A closed breaker admits every call; an open one refuses until
    /// its period ends, then admits exactly one probe (half-open) and refuses the rest.
    pub fn try_acquire(&self, caller: Caller) -> Result<Permit, Refused> {
        let now = Instant::now();
        let mut core = self.lock();
        match core.state {
            State::Closed => Ok(Permit::new(self, core.generation, false)),
            State::HalfOpen => Err(Refused {
                retry_after: self.half_open_retry_after(),
                state: BreakerState::HalfOpen,
            }),
            State::Open { until } => {
                // The supervisor's ping may probe at any time (its own backoff paces it, and a
                // heartbeat from the driver may say the server is back before the period ends);
                // ordinary callers wait for the period plus a grace.
                if caller == Caller::Ordinary && now < until + self.inner.config.caller_probe_grace
                {
                    return Err(Refused {
                        retry_after: until
                            .saturating_duration_since(now)
                            .max(Duration::from_millis(1)),
                        state: BreakerState::Open,
                    });
                }
                let reason = match caller {
                    Caller::Supervisor => "open period over, supervisor probes",
                    Caller::Ordinary => "open period over, a caller probes",
                };
                let t = self.transit(&mut core, State::HalfOpen, reason.to_string(), None);
                let permit = Permit::new(self, core.generation, true);
                drop(core);
                self.announce(t);
                Ok(permit)
            }
        }
    }

    /// Opens the breaker now (a closed one with the policy's next open period; a half-open
    /// one as if its probe failed). For failures seen outside any call, such as the driver
    /// reporting the server gone: calls stop waiting on it at once.
    pub fn trip(&self, reason: &str) {
        let mut core = self.lock();
        core.last_failure = Some(reason.to_string());
        let delay = match core.state {
            State::Open { .. } => {
                drop(core);
                return;
            }
            State::Closed => {
                // Feed the policy until it declares the dependency dead (at most the threshold).
                let mut delay = None;
                for _ in 0..=self.inner.config.failure_threshold {
                    core.consecutive_failures += 1;
                    if let Some(d) = core.policy.mark_dead_on_failure() {
                        delay = Some(d);
                        break;
                    }
                }
                delay.unwrap_or(self.inner.config.open_initial)
            }
            State::HalfOpen => core
                .policy
                .mark_dead_on_failure()
                .unwrap_or_else(|| self.last_delay()),
        };
        let until = Instant::now() + delay;
        let t = self.transit(
            &mut core,
            State::Open { until },
            reason.to_string(),
            Some(delay),
        );
        drop(core);
        self.announce(t);
    }

    fn record(&self, generation: u64, probe: bool, outcome: Outcome) {
        let mut core = self.lock();
        if generation != core.generation {
            // Admitted before the last transition: its outcome says nothing about now.
            return;
        }
        let transition = match (core.state, outcome) {
            (_, Outcome::Ignored) => None,
            (State::Closed, Outcome::Success) => {
                core.policy.record_success();
                if core.consecutive_failures != 0 {
                    core.consecutive_failures = 0;
                    self.publish(&core);
                }
                None
            }
            (State::Closed, Outcome::Failure(reason)) => {
                core.consecutive_failures += 1;
                core.last_failure = Some(reason);
                match core.policy.mark_dead_on_failure() {
                    Some(delay) => {
                        let until = Instant::now() + delay;
                        let why = format!("{} consecutive failures", core.consecutive_failures);
                        Some(self.transit(&mut core, State::Open { until }, why, Some(delay)))
                    }
                    None => {
                        self.publish(&core);
                        None
                    }
                }
            }
            (State::HalfOpen, Outcome::Success) if probe => {
                core.policy.record_success();
                core.policy.revived();
                core.consecutive_failures = 0;
                Some(self.transit(&mut core, State::Closed, "probe succeeded".into(), None))
            }
            (State::HalfOpen, Outcome::Failure(reason)) if probe => {
                let delay = core
                    .policy
                    .mark_dead_on_failure()
                    .unwrap_or_else(|| self.last_delay());
                let until = Instant::now() + delay;
                let why = format!("probe failed: {reason}");
                core.last_failure = Some(reason);
                Some(self.transit(&mut core, State::Open { until }, why, Some(delay)))
            }
            _ => None,
        };
        drop(core);
        if let Some(t) = transition {
            self.announce(t);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Core> {
        // A panic while holding the lock cannot leave Core inconsistent (every update is a
        // few assignments), so a poisoned lock is still usable.
        self.inner.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn last_delay(&self) -> Duration {
        Duration::from_micros(self.inner.last_delay.load(Ordering::Relaxed))
    }

    fn half_open_retry_after(&self) -> Duration {
        self.inner.config.open_initial
    }

    fn transit(
        &self,
        core: &mut Core,
        to: State,
        reason: String,
        open_for: Option<Duration>,
    ) -> Transition {
        let from = public(core.state);
        core.state = to;
        core.generation += 1;
        core.transitions += 1;
        core.since = Utc::now();
        self.publish(core);
        Transition {
            from,
            to: public(to),
            reason,
            open_for,
        }
    }

    fn publish(&self, core: &Core) {
        let next_probe_at = match core.state {
            State::Open { until } => Some(until),
            _ => None,
        };
        self.inner.tx.send_replace(BreakerSnapshot {
            state: public(core.state),
            since: core.since,
            consecutive_failures: core.consecutive_failures,
            next_probe_at,
            last_failure: core.last_failure.clone(),
            transitions: core.transitions,
        });
    }

    fn announce(&self, t: Transition) {
        (self.inner.on_transition)(&t);
    }
}

fn public(state: State) -> BreakerState {
    match state {
        State::Closed => BreakerState::Closed,
        State::Open { .. } => BreakerState::Open,
        State::HalfOpen => BreakerState::HalfOpen,
    }
}

/// Permission to make one call. Record its outcome with [`Permit::record`]; dropping it
/// unrecorded counts as a failure for the half-open probe (the breaker opens again, never
/// stays half-open) and as nothing for an ordinary call.
#[must_use = "record the call's outcome"]
pub struct Permit {
    breaker: Breaker,
    generation: u64,
    probe: bool,
    recorded: bool,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("probe", &self.probe)
            .field("generation", &self.generation)
            .finish()
    }
}

impl Permit {
    fn new(breaker: &Breaker, generation: u64, probe: bool) -> Self {
        Self {
            breaker: breaker.clone(),
            generation,
            probe,
            recorded: false,
        }
    }

    /// True for the single half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Records the call's outcome.
    pub fn record(mut self, outcome: Outcome) {
        self.recorded = true;
        self.breaker.record(self.generation, self.probe, outcome);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.recorded && self.probe {
            self.breaker.record(
                self.generation,
                true,
                Outcome::Failure("probe cancelled before it finished".into()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    fn config() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 3,
            open_initial: Duration::from_millis(250),
            open_max: Duration::from_secs(10),
            jitter: 0.0,
            caller_probe_grace: Duration::from_millis(100),
        }
    }

    fn breaker() -> (Breaker, Arc<StdMutex<Vec<String>>>) {
        let log = Arc::new(StdMutex::new(Vec::new()));
        let sink = log.clone();
        let b = Breaker::new(config(), move |t| sink.lock().unwrap().push(t.to_string()));
        (b, log)
    }

    fn fail(b: &Breaker) {
        b.try_acquire(Caller::Ordinary)
            .unwrap()
            .record(Outcome::Failure("boom".into()));
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_then_probes_and_closes() {
        let (b, log) = breaker();
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.snapshot().consecutive_failures, 2);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        let refused = b.try_acquire(Caller::Ordinary).unwrap_err();
        assert_eq!(refused.state, BreakerState::Open);
        assert_eq!(refused.retry_after, Duration::from_millis(250));
        assert_eq!(b.snapshot().next_probe_in_ms(), Some(250));

        tokio::time::advance(Duration::from_millis(260)).await;
        // The period is over, but ordinary callers wait the grace: the supervisor goes first.
        assert!(b.try_acquire(Caller::Ordinary).is_err());
        let probe = b.try_acquire(Caller::Supervisor).unwrap();
        assert!(probe.is_probe());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(
            b.try_acquire(Caller::Ordinary).unwrap_err().state,
            BreakerState::HalfOpen
        );
        probe.record(Outcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.snapshot().consecutive_failures, 0);
        assert_eq!(
            *log.lock().unwrap(),
            [
                "circuit breaker closed => open (3 consecutive failures)",
                "circuit breaker open => half_open (open period over, supervisor probes)",
                "circuit breaker half_open => closed (probe succeeded)",
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_for_a_doubled_period() {
        let (b, _) = breaker();
        for _ in 0..3 {
            fail(&b);
        }
        tokio::time::advance(Duration::from_millis(400)).await;
        let probe = b.try_acquire(Caller::Ordinary).unwrap();
        probe.record(Outcome::Failure("still down".into()));
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.snapshot().next_probe_in_ms(), Some(500));
        assert_eq!(b.snapshot().last_failure.as_deref(), Some("still down"));
    }

    #[tokio::test(start_paused = true)]
    async fn ordinary_callers_probe_after_the_grace_when_no_supervisor_does() {
        let (b, _) = breaker();
        b.trip("down");
        tokio::time::advance(Duration::from_millis(351)).await;
        let probe = b.try_acquire(Caller::Ordinary).unwrap();
        assert!(probe.is_probe());
        probe.record(Outcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn the_supervisor_may_probe_before_the_period_ends() {
        let (b, _) = breaker();
        b.trip("down");
        assert!(b.try_acquire(Caller::Ordinary).is_err());
        let probe = b.try_acquire(Caller::Supervisor).unwrap();
        assert!(probe.is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn success_resets_the_failure_count() {
        let (b, _) = breaker();
        fail(&b);
        fail(&b);
        b.try_acquire(Caller::Ordinary)
            .unwrap()
            .record(Outcome::Success);
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn ignored_outcomes_never_open_the_breaker() {
        let (b, _) = breaker();
        for _ in 0..100 {
            b.try_acquire(Caller::Ordinary)
                .unwrap()
                .record(Outcome::Ignored);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.snapshot().consecutive_failures, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_probe_counts_as_failure_and_never_sticks_half_open() {
        let (b, log) = breaker();
        b.trip("server gone");
        tokio::time::advance(Duration::from_millis(300)).await;
        {
            let _probe = b.try_acquire(Caller::Supervisor).unwrap();
            assert_eq!(b.state(), BreakerState::HalfOpen);
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert!(
            log.lock()
                .unwrap()
                .last()
                .unwrap()
                .contains("probe cancelled")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_future_holding_the_probe_reopens_the_breaker() {
        let (b, _) = breaker();
        b.trip("server gone");
        tokio::time::advance(Duration::from_millis(300)).await;
        let b2 = b.clone();
        let call = async move {
            let permit = b2.try_acquire(Caller::Supervisor).unwrap();
            std::future::pending::<()>().await;
            permit.record(Outcome::Success);
        };
        let r = tokio::time::timeout(Duration::from_millis(50), call).await;
        assert!(r.is_err());
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_ordinary_call_counts_as_nothing() {
        let (b, _) = breaker();
        for _ in 0..10 {
            drop(b.try_acquire(Caller::Ordinary).unwrap());
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.snapshot().consecutive_failures, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn stale_outcomes_from_before_a_transition_are_ignored() {
        let (b, _) = breaker();
        let old = b.try_acquire(Caller::Ordinary).unwrap();
        b.trip("gone");
        tokio::time::advance(Duration::from_millis(300)).await;
        let probe = b.try_acquire(Caller::Supervisor).unwrap();
        old.record(Outcome::Success); // admitted while closed, before the trip
        assert_eq!(b.state(), BreakerState::HalfOpen);
        probe.record(Outcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn exactly_one_probe_under_many_concurrent_callers() {
        // Supervisor-callers may probe at once, so the race needs no clock.
        let (b, _) = breaker();
        b.trip("down");
        let admitted = Arc::new(AtomicU64::new(0));
        let barrier = Arc::new(std::sync::Barrier::new(16));
        let mut permits = Vec::new();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    let (b, admitted, barrier) = (b.clone(), admitted.clone(), barrier.clone());
                    s.spawn(move || {
                        barrier.wait();
                        let mut mine = Vec::new();
                        for _ in 0..1000 {
                            if let Ok(p) = b.try_acquire(Caller::Supervisor) {
                                admitted.fetch_add(1, Ordering::SeqCst);
                                mine.push(p);
                            }
                        }
                        mine
                    })
                })
                .collect();
            for h in handles {
                permits.extend(h.join().unwrap());
            }
        });
        assert_eq!(admitted.load(Ordering::SeqCst), 1);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        permits.pop().unwrap().record(Outcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn publishes_every_transition() {
        let (b, _) = breaker();
        let mut rx = b.subscribe();
        b.trip("gone");
        assert!(rx.has_changed().unwrap());
        let snap = rx.borrow_and_update().clone();
        assert_eq!(snap.state, BreakerState::Open);
        assert_eq!(snap.last_failure.as_deref(), Some("gone"));
        assert_eq!(snap.transitions, 1);
    }
}
