//! The circuit breaker: it judges the database's *operations*.
//!
//! `closed` means calls flow; `open` means calls are refused at once (the caller gets a
//! `retry_after`); `half_open` means a few trial calls are let through and everything else
//! is still refused.
//!
//! A closed breaker opens on any of (resilience4j's semantics, count-based window):
//! - `failure_threshold` consecutive failures;
//! - over the last `window_size` recorded calls, once at least `minimum_calls` were
//!   recorded, a failure rate at or above `failure_rate`, or a slow-call rate (calls that
//!   took `slow_call` or longer, whatever their outcome) at or above `slow_call_rate`.
//!
//! Only [`Outcome::Success`] and [`Outcome::Failure`] are recorded; [`Outcome::Ignored`]
//! (the caller's own error, a shed call, a cancelled call) never counts.
//!
//! Who opened it matters ([`Judge`]):
//! - **operations** (the window or the consecutive count): the open period must end before
//!   anyone may try; then up to `half_open_calls` trial *operations* run, and the breaker
//!   closes when that many have succeeded (one failure opens it again, for a longer
//!   period). The supervisor's ping says nothing here: a database can answer `ping` while
//!   every query times out. The supervisor may run the trials itself when the period ends,
//!   so recovery needs no user traffic.
//! - **the supervisor** ([`Breaker::trip`]: the database was lost): the supervisor's ping is
//!   the probe and may run at any time (its own backoff paces it); its success, or any
//!   trial operation's, closes the breaker.
//!
//! This wrapper owns admission through a [`Permit`] (a closed call or a trial), a drop guard
//! (a trial permit dropped without an outcome counts as a failure, so the breaker never
//! stays half-open; a dropped ordinary call counts as nothing), the published state (a
//! [`BreakerSnapshot`] in a `tokio::sync::watch` channel) and one [`Transition`] notice per
//! state change. Open periods come from [`ExponentialMillis`] and grow while the breaker
//! keeps reopening; they start over once it closes.
//!
//! Time is `tokio::time::Instant`, so tests can use `tokio::time::pause()`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
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
    /// A few trial calls are allowed; every other call is refused.
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

/// Who opened the breaker, and so who may close it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Judge {
    /// Failing or slow operations: only successful trial operations close it.
    Operations,
    /// The supervisor (database lost): its ping, or any successful trial, closes it.
    Supervisor,
}

/// Thresholds. See the configuration table for the defaults.
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker.
    pub failure_threshold: u32,
    /// Recorded calls the sliding window keeps.
    pub window_size: u32,
    /// Calls the window must hold before its rates may open the breaker.
    pub minimum_calls: u32,
    /// Failure rate (0.0 to 1.0) over the window that opens the breaker.
    pub failure_rate: f64,
    /// Slow-call rate (0.0 to 1.0) over the window that opens the breaker.
    pub slow_call_rate: f64,
    /// A call taking this long or longer is slow.
    pub slow_call: Duration,
    /// Trial operations admitted at once while half-open; that many successes close it.
    pub half_open_calls: u32,
    /// First open period.
    pub open_initial: Duration,
    /// Longest open period.
    pub open_max: Duration,
    /// Jitter of the open periods, 0.0 to 1.0 (0.2 = ±20 %).
    pub jitter: f64,
    /// After an open period ends, ordinary callers wait this much longer before one of them
    /// may become a trial, so the supervisor gets the first chance and the first user after
    /// an outage meets a closed breaker.
    pub caller_probe_grace: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            window_size: 50,
            minimum_calls: 20,
            failure_rate: 0.5,
            slow_call_rate: 0.8,
            slow_call: Duration::from_millis(2000),
            half_open_calls: 3,
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
    /// Who opened it (while open or half-open).
    pub opened_by: Option<Judge>,
    /// Wall-clock time of the last transition (or of creation).
    pub since: DateTime<Utc>,
    /// Consecutive database failures counted while closed (or that opened it).
    pub consecutive_failures: u32,
    /// Calls in the sliding window, and how many of them failed or were slow.
    pub window_calls: u32,
    /// Failed calls in the window.
    pub window_failures: u32,
    /// Slow calls in the window.
    pub window_slow: u32,
    /// When the open period ends (the supervisor may try then); `None` unless open.
    #[serde(skip)]
    pub next_probe_at: Option<Instant>,
    /// When ordinary callers may try again (the period plus the callers' grace); `None`
    /// unless open.
    #[serde(skip)]
    pub callers_retry_at: Option<Instant>,
    /// The last failure's reason, already redacted by the caller.
    pub last_failure: Option<String>,
    /// Number of transitions so far.
    pub transitions: u64,
}

impl BreakerSnapshot {
    /// Milliseconds until callers may try again (the open period plus the callers' grace;
    /// 0 when due now), `None` unless open.
    pub fn next_probe_in_ms(&self) -> Option<u64> {
        self.callers_retry_at
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
    /// Why, in words: `5 consecutive failures`, `trial operations succeeded`, ...
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
    /// Neither: the call's own problem (duplicate key, validation), or cancelled.
    Ignored,
}

/// Admission was refused: the breaker is open, or half-open with its trials in flight.
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
    /// The supervisor: it may try as soon as the open period ends (no grace), and at any
    /// time when it opened the breaker itself.
    Supervisor,
}

/// How the supervisor's ping is admitted ([`Breaker::admit_ping`]).
#[derive(Debug)]
pub enum PingAdmission {
    /// Not judged: the breaker is closed, or operations opened it (a ping cannot close it).
    Free,
    /// The ping is the probe of a breaker the supervisor opened.
    Probe(Permit),
}

type TransitionHook = Arc<dyn Fn(&Transition) + Send + Sync>;

#[derive(Debug, Clone, Copy)]
enum State {
    Closed,
    Open {
        until: Instant,
        by: Judge,
    },
    HalfOpen {
        by: Judge,
        /// Trial permits out now.
        in_flight: u32,
        /// Trial operations that succeeded.
        succeeded: u32,
    },
}

/// One recorded call in the window.
#[derive(Debug, Clone, Copy)]
struct Call {
    failed: bool,
    slow: bool,
}

/// The count-based sliding window.
#[derive(Debug, Default)]
struct Window {
    calls: VecDeque<Call>,
    failures: u32,
    slow: u32,
}

impl Window {
    fn push(&mut self, call: Call, size: u32) {
        self.calls.push_back(call);
        self.failures += u32::from(call.failed);
        self.slow += u32::from(call.slow);
        while self.calls.len() > size as usize {
            if let Some(old) = self.calls.pop_front() {
                self.failures -= u32::from(old.failed);
                self.slow -= u32::from(old.slow);
            }
        }
    }

    fn clear(&mut self) {
        *self = Window::default();
    }

    fn len(&self) -> u32 {
        self.calls.len() as u32
    }
}

struct Core {
    state: State,
    window: Window,
    periods: ExponentialMillis,
    consecutive_failures: u32,
    last_failure: Option<String>,
    /// Bumped at every transition: outcomes of permits from an older generation are stale.
    generation: u64,
    transitions: u64,
    since: DateTime<Utc>,
}

struct Inner {
    core: Mutex<Core>,
    config: BreakerConfig,
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

/// What a permit is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A call while closed.
    Ordinary,
    /// A trial operation while half-open.
    Trial,
    /// The supervisor's ping, probing a breaker the supervisor opened.
    Ping,
}

impl Breaker {
    /// A closed breaker. `on_transition` is called once per state change, outside the lock.
    pub fn new(
        config: BreakerConfig,
        on_transition: impl Fn(&Transition) + Send + Sync + 'static,
    ) -> Self {
        let since = Utc::now();
        let core = Core {
            state: State::Closed,
            window: Window::default(),
            periods: Self::periods(&config),
            consecutive_failures: 0,
            last_failure: None,
            generation: 0,
            transitions: 0,
            since,
        };
        let (tx, _) = watch::channel(BreakerSnapshot {
            state: BreakerState::Closed,
            opened_by: None,
            since,
            consecutive_failures: 0,
            window_calls: 0,
            window_failures: 0,
            window_slow: 0,
            next_probe_at: None,
            callers_retry_at: None,
            last_failure: None,
            transitions: 0,
        });
        Self {
            inner: Arc::new(Inner {
                core: Mutex::new(core),
                config,
                tx,
                on_transition: Arc::new(on_transition),
            }),
        }
    }

    fn periods(config: &BreakerConfig) -> ExponentialMillis {
        ExponentialMillis::new(config.open_initial, config.open_max, config.jitter)
    }

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.inner.config
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

    /// Asks to make an operation. A closed breaker admits every call; an open one refuses
    /// until its period ends (ordinary callers: plus the grace; the supervisor: at any time
    /// when it opened the breaker itself), then admits up to `half_open_calls` trials.
    pub fn try_acquire(&self, caller: Caller) -> Result<Permit, Refused> {
        let now = Instant::now();
        let mut core = self.lock();
        match core.state {
            State::Closed => Ok(Permit::new(self, core.generation, Kind::Ordinary)),
            State::HalfOpen {
                by,
                in_flight,
                succeeded,
            } => {
                if in_flight + succeeded >= self.half_open_capacity(by) {
                    return Err(Refused {
                        retry_after: self.half_open_retry_after(),
                        state: BreakerState::HalfOpen,
                    });
                }
                core.state = State::HalfOpen {
                    by,
                    in_flight: in_flight + 1,
                    succeeded,
                };
                Ok(Permit::new(self, core.generation, Kind::Trial))
            }
            State::Open { until, by } => {
                let may_try = match caller {
                    Caller::Supervisor => by == Judge::Supervisor || now >= until,
                    Caller::Ordinary => now >= until + self.inner.config.caller_probe_grace,
                };
                if !may_try {
                    return Err(Refused {
                        retry_after: self.open_retry_after(until, now),
                        state: BreakerState::Open,
                    });
                }
                let reason = match caller {
                    Caller::Supervisor => "open period over, the supervisor tries",
                    Caller::Ordinary => "open period over, a caller tries",
                };
                let t = self.transit(
                    &mut core,
                    State::HalfOpen {
                        by,
                        in_flight: 1,
                        succeeded: 0,
                    },
                    reason.to_string(),
                    None,
                );
                let permit = Permit::new(self, core.generation, Kind::Trial);
                drop(core);
                self.announce(t);
                Ok(permit)
            }
        }
    }

    /// Admits the supervisor's ping: judged (the probe) only when the supervisor opened the
    /// breaker; otherwise free, since a ping says nothing about operations.
    pub fn admit_ping(&self) -> PingAdmission {
        let mut core = self.lock();
        let by = match core.state {
            State::Open { by, .. } | State::HalfOpen { by, .. } => by,
            State::Closed => return PingAdmission::Free,
        };
        if by == Judge::Operations {
            return PingAdmission::Free;
        }
        match core.state {
            State::Open { .. } => {
                let t = self.transit(
                    &mut core,
                    State::HalfOpen {
                        by,
                        in_flight: 1,
                        succeeded: 0,
                    },
                    "the supervisor probes".to_string(),
                    None,
                );
                let permit = Permit::new(self, core.generation, Kind::Ping);
                drop(core);
                self.announce(t);
                PingAdmission::Probe(permit)
            }
            State::HalfOpen {
                by,
                in_flight,
                succeeded,
            } => {
                core.state = State::HalfOpen {
                    by,
                    in_flight: in_flight + 1,
                    succeeded,
                };
                PingAdmission::Probe(Permit::new(self, core.generation, Kind::Ping))
            }
            State::Closed => PingAdmission::Free,
        }
    }

    /// Opens the breaker now, judged by the supervisor (a closed one with the next open
    /// period; a half-open one as if its trial failed; an open one keeps its period but
    /// now closes on the supervisor's ping). For failures seen outside any call, such as
    /// the database lost: calls stop waiting on it at once.
    pub fn trip(&self, reason: &str) {
        let mut core = self.lock();
        core.last_failure = Some(reason.to_string());
        if let State::Open { until, by } = core.state {
            if by == Judge::Operations {
                core.state = State::Open {
                    until,
                    by: Judge::Supervisor,
                };
            }
            self.publish(&core);
            return;
        }
        if matches!(core.state, State::Closed) {
            core.consecutive_failures = core
                .consecutive_failures
                .max(self.inner.config.failure_threshold);
        }
        let t = self.open(&mut core, Judge::Supervisor, reason.to_string());
        drop(core);
        self.announce(t);
    }

    fn open(&self, core: &mut Core, by: Judge, reason: String) -> Transition {
        let delay = core.periods.next().unwrap_or(self.inner.config.open_max);
        core.window.clear();
        let until = Instant::now() + delay;
        self.transit(core, State::Open { until, by }, reason, Some(delay))
    }

    fn record(&self, generation: u64, kind: Kind, took: Duration, outcome: Outcome) {
        let mut core = self.lock();
        if generation != core.generation {
            // Admitted before the last transition: its outcome says nothing about now.
            return;
        }
        let config = &self.inner.config;
        let slow = took >= config.slow_call;
        let transition = match (core.state, kind) {
            (State::Closed, Kind::Ordinary) => match outcome {
                Outcome::Ignored => None,
                Outcome::Success => {
                    core.consecutive_failures = 0;
                    core.window.push(
                        Call {
                            failed: false,
                            slow,
                        },
                        config.window_size,
                    );
                    self.judge_window(&mut core)
                }
                Outcome::Failure(reason) => {
                    core.consecutive_failures += 1;
                    core.last_failure = Some(reason);
                    core.window
                        .push(Call { failed: true, slow }, config.window_size);
                    if core.consecutive_failures >= config.failure_threshold {
                        let why = format!("{} consecutive failures", core.consecutive_failures);
                        Some(self.open(&mut core, Judge::Operations, why))
                    } else {
                        self.judge_window(&mut core)
                    }
                }
            },
            (
                State::HalfOpen {
                    by,
                    in_flight,
                    succeeded,
                },
                Kind::Trial | Kind::Ping,
            ) => {
                let in_flight = in_flight.saturating_sub(1);
                match outcome {
                    // Says nothing about the database: the slot is free for another trial.
                    Outcome::Ignored => {
                        core.state = State::HalfOpen {
                            by,
                            in_flight,
                            succeeded,
                        };
                        None
                    }
                    Outcome::Success if slow => {
                        let why = format!("trial call slow ({} ms)", took.as_millis());
                        core.last_failure = Some(why.clone());
                        Some(self.open(&mut core, by, why))
                    }
                    Outcome::Success => {
                        let succeeded = succeeded + u32::from(kind == Kind::Trial);
                        // A breaker the supervisor tripped closes on its probe (ping or a
                        // trial call); one that operations opened needs enough trials.
                        let closes = (matches!(kind, Kind::Ping | Kind::Trial)
                            && by == Judge::Supervisor)
                            || succeeded >= config.half_open_calls;
                        if closes {
                            core.consecutive_failures = 0;
                            core.periods = Self::periods(config);
                            let why = match kind {
                                Kind::Ping => "the supervisor's ping succeeded".to_string(),
                                _ if by == Judge::Supervisor => {
                                    "a trial operation succeeded".to_string()
                                }
                                _ => format!("{succeeded} trial operations succeeded"),
                            };
                            Some(self.transit(&mut core, State::Closed, why, None))
                        } else {
                            core.state = State::HalfOpen {
                                by,
                                in_flight,
                                succeeded,
                            };
                            None
                        }
                    }
                    Outcome::Failure(reason) => {
                        let why = match kind {
                            Kind::Ping => format!("the supervisor's probe failed: {reason}"),
                            _ => format!("trial operation failed: {reason}"),
                        };
                        core.last_failure = Some(reason);
                        Some(self.open(&mut core, by, why))
                    }
                }
            }
            _ => None,
        };
        if transition.is_none() {
            self.publish(&core);
        }
        drop(core);
        if let Some(t) = transition {
            self.announce(t);
        }
    }

    /// Opens a closed breaker whose window says so; publishes the counts otherwise.
    fn judge_window(&self, core: &mut Core) -> Option<Transition> {
        let config = &self.inner.config;
        let n = core.window.len();
        if n < config.minimum_calls.max(1) {
            return None;
        }
        let failure_rate = f64::from(core.window.failures) / f64::from(n);
        let slow_rate = f64::from(core.window.slow) / f64::from(n);
        let why = if failure_rate >= config.failure_rate {
            format!(
                "failure rate {:.0}% over the last {n} calls",
                failure_rate * 100.0
            )
        } else if slow_rate >= config.slow_call_rate {
            format!(
                "slow-call rate {:.0}% over the last {n} calls (slow: {} ms or more)",
                slow_rate * 100.0,
                config.slow_call.as_millis()
            )
        } else {
            return None;
        };
        Some(self.open(core, Judge::Operations, why))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Core> {
        // A panic while holding the lock cannot leave Core inconsistent (every update is a
        // few assignments), so a poisoned lock is still usable.
        self.inner.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Trials at once while half-open: a breaker the supervisor tripped is probed by one
    /// call at a time (during an outage, callers must not pile up behind the probe).
    fn half_open_capacity(&self, by: Judge) -> u32 {
        match by {
            Judge::Supervisor => 1,
            Judge::Operations => self.inner.config.half_open_calls,
        }
    }

    fn half_open_retry_after(&self) -> Duration {
        self.inner.config.open_initial
    }

    /// Until ordinary callers may try: the rest of the period plus the grace, never less
    /// than 50 ms (a shorter hint invites a retry storm).
    fn open_retry_after(&self, until: Instant, now: Instant) -> Duration {
        (until + self.inner.config.caller_probe_grace)
            .saturating_duration_since(now)
            .max(Duration::from_millis(50))
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
        let (next_probe_at, opened_by) = match core.state {
            State::Open { until, by } => (Some(until), Some(by)),
            State::HalfOpen { by, .. } => (None, Some(by)),
            State::Closed => (None, None),
        };
        let grace = self.inner.config.caller_probe_grace;
        self.inner.tx.send_if_modified(|snap| {
            let next = BreakerSnapshot {
                state: public(core.state),
                opened_by,
                since: core.since,
                consecutive_failures: core.consecutive_failures,
                window_calls: core.window.len(),
                window_failures: core.window.failures,
                window_slow: core.window.slow,
                next_probe_at,
                callers_retry_at: next_probe_at.map(|t| t + grace),
                last_failure: core.last_failure.clone(),
                transitions: core.transitions,
            };
            // Counting a success in a healthy window changes nothing worth waking readers.
            let changed = snap.state != next.state
                || snap.transitions != next.transitions
                || snap.opened_by != next.opened_by
                || snap.consecutive_failures != next.consecutive_failures
                || snap.last_failure != next.last_failure
                || snap.window_failures != next.window_failures
                || snap.window_slow != next.window_slow;
            if changed {
                *snap = next;
            } else {
                snap.window_calls = next.window_calls;
            }
            changed
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
        State::HalfOpen { .. } => BreakerState::HalfOpen,
    }
}

/// Permission to make one call. Record its outcome with [`Permit::record`]; dropping it
/// unrecorded counts as a failure for a trial (the breaker opens again, never stays
/// half-open) and as nothing for an ordinary call. The call's duration (from admission to
/// the record) decides whether it was slow.
#[must_use = "record the call's outcome"]
pub struct Permit {
    breaker: Breaker,
    generation: u64,
    kind: Kind,
    started: Instant,
    recorded: bool,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("kind", &self.kind)
            .field("generation", &self.generation)
            .finish()
    }
}

impl Permit {
    fn new(breaker: &Breaker, generation: u64, kind: Kind) -> Self {
        Self {
            breaker: breaker.clone(),
            generation,
            kind,
            started: Instant::now(),
            recorded: false,
        }
    }

    /// True for a half-open trial or the supervisor's probe.
    pub fn is_probe(&self) -> bool {
        self.kind != Kind::Ordinary
    }

    /// Records the call's outcome.
    pub fn record(mut self, outcome: Outcome) {
        self.recorded = true;
        self.breaker
            .record(self.generation, self.kind, self.started.elapsed(), outcome);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.recorded && self.kind != Kind::Ordinary {
            self.breaker.record(
                self.generation,
                self.kind,
                self.started.elapsed(),
                Outcome::Failure("probe cancelled before it finished".into()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn config() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 3,
            window_size: 10,
            minimum_calls: 5,
            failure_rate: 0.5,
            slow_call_rate: 0.8,
            slow_call: Duration::from_millis(500),
            half_open_calls: 2,
            open_initial: Duration::from_millis(250),
            open_max: Duration::from_secs(10),
            jitter: 0.0,
            caller_probe_grace: Duration::from_millis(100),
        }
    }

    fn breaker_with(config: BreakerConfig) -> (Breaker, Arc<StdMutex<Vec<String>>>) {
        let log = Arc::new(StdMutex::new(Vec::new()));
        let sink = log.clone();
        let b = Breaker::new(config, move |t| sink.lock().unwrap().push(t.to_string()));
        (b, log)
    }

    fn breaker() -> (Breaker, Arc<StdMutex<Vec<String>>>) {
        breaker_with(config())
    }

    fn call(b: &Breaker, outcome: Outcome) {
        b.try_acquire(Caller::Ordinary).unwrap().record(outcome);
    }

    fn fail(b: &Breaker) {
        call(b, Outcome::Failure("boom".into()));
    }

    fn ok(b: &Breaker) {
        call(b, Outcome::Success);
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_open_then_trial_operations_close() {
        let (b, log) = breaker();
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.snapshot().consecutive_failures, 2);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.snapshot().opened_by, Some(Judge::Operations));
        let refused = b.try_acquire(Caller::Ordinary).unwrap_err();
        assert_eq!(refused.state, BreakerState::Open);
        // The period (250 ms) plus the callers' grace (100 ms).
        assert_eq!(refused.retry_after, Duration::from_millis(350));
        assert_eq!(b.snapshot().next_probe_in_ms(), Some(350));

        tokio::time::advance(Duration::from_millis(260)).await;
        // The period is over, but ordinary callers wait the grace: the supervisor goes first.
        assert!(b.try_acquire(Caller::Ordinary).is_err());
        let first = b.try_acquire(Caller::Supervisor).unwrap();
        assert!(first.is_probe());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let second = b.try_acquire(Caller::Ordinary).unwrap();
        assert_eq!(
            b.try_acquire(Caller::Ordinary).unwrap_err().state,
            BreakerState::HalfOpen,
            "two trials at most"
        );
        first.record(Outcome::Success);
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen,
            "one success is not enough"
        );
        second.record(Outcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.snapshot().consecutive_failures, 0);
        assert_eq!(
            *log.lock().unwrap(),
            [
                "circuit breaker closed => open (3 consecutive failures)",
                "circuit breaker open => half_open (open period over, the supervisor tries)",
                "circuit breaker half_open => closed (2 trial operations succeeded)",
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_reopens_for_a_doubled_period() {
        let (b, _) = breaker();
        for _ in 0..3 {
            fail(&b);
        }
        tokio::time::advance(Duration::from_millis(400)).await;
        let probe = b.try_acquire(Caller::Ordinary).unwrap();
        probe.record(Outcome::Failure("still down".into()));
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.snapshot().next_probe_in_ms(), Some(600));
        assert_eq!(b.snapshot().last_failure.as_deref(), Some("still down"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_failure_rate_over_the_window_opens_it_once_enough_calls_are_seen() {
        let (b, log) = breaker();
        // Alternating failures never reach 3 in a row; 4 calls are below the minimum of 5.
        fail(&b);
        ok(&b);
        fail(&b);
        ok(&b);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b); // 3 of 5 failed: 60 %
        assert_eq!(b.state(), BreakerState::Open);
        assert!(log.lock().unwrap()[0].contains("failure rate 60% over the last 5 calls"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_slow_call_rate_opens_it_although_every_call_succeeds() {
        let (b, log) = breaker();
        for i in 0..5 {
            let p = b.try_acquire(Caller::Ordinary).unwrap();
            tokio::time::advance(Duration::from_millis(if i == 0 { 10 } else { 600 })).await;
            p.record(Outcome::Success);
        }
        assert_eq!(b.state(), BreakerState::Open, "4 of 5 slow: 80 %");
        assert!(log.lock().unwrap()[0].contains("slow-call rate 80%"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_healthy_window_slides_and_keeps_it_closed() {
        let (b, _) = breaker();
        for i in 0..100 {
            if i % 5 == 0 {
                fail(&b);
            } else {
                ok(&b);
            }
        }
        assert_eq!(b.state(), BreakerState::Closed);
        let s = b.snapshot();
        assert_eq!(s.window_calls, 10);
        assert_eq!(s.window_failures, 2);
    }

    /// Defect 1: a trial ending in an Ignored outcome (duplicate key, rejected command,
    /// no client) used to leave the breaker half-open, refusing everyone.
    #[tokio::test(start_paused = true)]
    async fn an_ignored_trial_frees_its_slot_and_never_sticks_half_open() {
        let (b, _) = breaker_with(BreakerConfig {
            half_open_calls: 1,
            ..config()
        });
        for _ in 0..3 {
            fail(&b);
        }
        tokio::time::advance(Duration::from_millis(400)).await;
        b.try_acquire(Caller::Ordinary)
            .unwrap()
            .record(Outcome::Ignored);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let next = b
            .try_acquire(Caller::Ordinary)
            .expect("the ignored trial's slot is free again");
        next.record(Outcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    /// Defect 2: a database that answers `ping` but fails operations used to flap
    /// open/closed at every ping. A ping cannot close a breaker operations opened, and the
    /// supervisor cannot try before the period ends; failing trials make the period grow.
    #[tokio::test(start_paused = true)]
    async fn pings_never_close_a_breaker_that_operations_opened() {
        let (b, _) = breaker();
        for _ in 0..3 {
            fail(&b);
        }
        assert!(matches!(b.admit_ping(), PingAdmission::Free));
        assert_eq!(b.state(), BreakerState::Open);
        assert!(
            b.try_acquire(Caller::Supervisor).is_err(),
            "period not over"
        );
        let mut periods = Vec::new();
        for _ in 0..4 {
            let wait = b.snapshot().next_probe_at.unwrap() - Instant::now();
            periods.push(wait.as_millis());
            tokio::time::advance(wait).await;
            b.try_acquire(Caller::Supervisor)
                .unwrap()
                .record(Outcome::Failure("query timed out".into()));
            assert!(matches!(b.admit_ping(), PingAdmission::Free));
        }
        assert_eq!(periods, [250, 500, 1000, 2000]);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn the_supervisor_probes_a_breaker_it_tripped_at_any_time_and_its_ping_closes_it() {
        let (b, log) = breaker();
        b.trip("server gone");
        assert_eq!(b.snapshot().opened_by, Some(Judge::Supervisor));
        assert!(b.try_acquire(Caller::Ordinary).is_err());
        let PingAdmission::Probe(p) = b.admit_ping() else {
            panic!("the ping is the probe")
        };
        p.record(Outcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(log.lock().unwrap()[2].contains("the supervisor's ping succeeded"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_tripped_breaker_lets_one_call_probe_at_a_time() {
        let (b, _) = breaker();
        b.trip("server gone");
        let PingAdmission::Probe(ping) = b.admit_ping() else {
            panic!("probe")
        };
        tokio::time::advance(Duration::from_millis(400)).await;
        assert_eq!(
            b.try_acquire(Caller::Ordinary).unwrap_err().state,
            BreakerState::HalfOpen,
            "callers must not pile up behind the probe during an outage"
        );
        ping.record(Outcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    /// Defect 3: while half-open with a caller's trial in flight, the supervisor's ping was
    /// refused, and the supervisor read its own refusal as a lost database: it tripped,
    /// threw away the healthy trial and doubled the open period. The ping is never refused
    /// now: it joins the trials, and the caller's trial still settles the breaker.
    #[tokio::test(start_paused = true)]
    async fn the_supervisor_ping_joins_a_half_open_trial_instead_of_being_refused() {
        let (b, log) = breaker();
        b.trip("server gone");
        tokio::time::advance(Duration::from_millis(400)).await;
        let trial = b
            .try_acquire(Caller::Ordinary)
            .expect("after the open period and the grace a caller may try");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let PingAdmission::Probe(ping) = b.admit_ping() else {
            panic!("the ping must be admitted while a caller's trial is in flight")
        };
        let transitions = b.snapshot().transitions;
        ping.record(Outcome::Success);
        assert_eq!(b.state(), BreakerState::Closed, "{:?}", log.lock().unwrap());
        trial.record(Outcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(
            b.snapshot().transitions,
            transitions + 1,
            "no trip in between"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_trip_hands_an_open_breaker_to_the_supervisor() {
        let (b, _) = breaker();
        for _ in 0..3 {
            fail(&b);
        }
        b.trip("driver lost the server");
        assert_eq!(b.snapshot().opened_by, Some(Judge::Supervisor));
        assert!(matches!(b.admit_ping(), PingAdmission::Probe(_)));
    }

    /// Defect 6: between the end of the open period and the end of the grace, the hint
    /// used to be 1 ms.
    #[tokio::test(start_paused = true)]
    async fn retry_after_covers_the_grace() {
        let (b, _) = breaker();
        b.trip("down");
        tokio::time::advance(Duration::from_millis(260)).await;
        let refused = b.try_acquire(Caller::Ordinary).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_millis(90));
        assert_eq!(b.snapshot().next_probe_in_ms(), Some(90));
        tokio::time::advance(Duration::from_millis(70)).await;
        let refused = b.try_acquire(Caller::Ordinary).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_millis(50), "floored");
    }

    #[tokio::test(start_paused = true)]
    async fn ordinary_callers_try_after_the_grace_when_no_supervisor_does() {
        let (b, _) = breaker();
        b.trip("down");
        tokio::time::advance(Duration::from_millis(351)).await;
        let probe = b.try_acquire(Caller::Ordinary).unwrap();
        assert!(probe.is_probe());
        probe.record(Outcome::Success);
        assert_eq!(b.state(), BreakerState::Closed, "one success closes a trip");
    }

    #[tokio::test(start_paused = true)]
    async fn ignored_outcomes_never_open_the_breaker() {
        let (b, _) = breaker();
        for _ in 0..100 {
            call(&b, Outcome::Ignored);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.snapshot().window_calls, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_probe_counts_as_failure_and_never_sticks_half_open() {
        let (b, log) = breaker();
        b.trip("server gone");
        {
            let _probe = b.admit_ping();
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
    async fn a_cancelled_future_holding_a_trial_reopens_the_breaker() {
        let (b, _) = breaker();
        b.trip("server gone");
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
        let PingAdmission::Probe(probe) = b.admit_ping() else {
            panic!("probe")
        };
        old.record(Outcome::Success); // admitted while closed, before the trip
        assert_eq!(b.state(), BreakerState::HalfOpen);
        probe.record(Outcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn at_most_half_open_calls_trials_under_many_concurrent_callers() {
        let (b, _) = breaker_with(BreakerConfig {
            open_initial: Duration::from_millis(1),
            ..config()
        });
        for _ in 0..3 {
            fail(&b);
        }
        std::thread::sleep(Duration::from_millis(5));
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
        assert_eq!(admitted.load(Ordering::SeqCst), 2);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        permits.pop().unwrap().record(Outcome::Success);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        permits.pop().unwrap().record(Outcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    /// Defect 10: contending callers on a multi-threaded runtime, an outage in the middle:
    /// the breaker opens, recovers through trials, and never ends half-open or open.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn contending_callers_on_a_multi_threaded_runtime_open_and_recover_it() {
        let (b, log) = breaker_with(BreakerConfig {
            open_initial: Duration::from_millis(20),
            open_max: Duration::from_millis(40),
            caller_probe_grace: Duration::from_millis(5),
            ..config()
        });
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refused = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (b, down, refused) = (b.clone(), down.clone(), refused.clone());
                tokio::spawn(async move {
                    for n in 0..400u32 {
                        match b.try_acquire(Caller::Ordinary) {
                            Ok(p) => {
                                tokio::task::yield_now().await;
                                let outcome = if down.load(Ordering::SeqCst) {
                                    Outcome::Failure("down".into())
                                } else if (n + i) % 7 == 0 {
                                    Outcome::Ignored
                                } else {
                                    Outcome::Success
                                };
                                p.record(outcome);
                            }
                            Err(_) => {
                                refused.fetch_add(1, Ordering::Relaxed);
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(5)).await;
        down.store(true, Ordering::SeqCst);
        let mut rx = b.subscribe();
        tokio::time::timeout(
            Duration::from_secs(10),
            rx.wait_for(|s| s.state == BreakerState::Open),
        )
        .await
        .expect("the outage opens the breaker")
        .unwrap();
        down.store(false, Ordering::SeqCst);
        for t in tasks {
            t.await.unwrap();
        }
        // Whatever the interleaving, callers that keep coming close it again.
        let mut n = 0;
        while b.state() != BreakerState::Closed && n < 1000 {
            if let Ok(p) = b.try_acquire(Caller::Ordinary) {
                p.record(Outcome::Success);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            n += 1;
        }
        assert_eq!(b.state(), BreakerState::Closed, "{:?}", log.lock().unwrap());
        assert!(refused.load(Ordering::Relaxed) > 0);
        let log = log.lock().unwrap();
        assert!(log.iter().any(|l| l.contains("closed => open")), "{log:?}");
        assert!(log.last().unwrap().contains("=> closed"), "{log:?}");
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
