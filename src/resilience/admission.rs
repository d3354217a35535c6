//! Admission control in front of the database: an adaptive concurrency limit with a short
//! bounded queue. What does not fit is *shed* at once (the caller answers 503 with
//! `Retry-After`): overload is ours to refuse at the door, fast, while the database stays
//! healthy. A shed call is never a database failure and never feeds the breaker.
//!
//! The limit adapts to the latency the database gives (Netflix concurrency-limits'
//! Gradient2): a long-term average of operation latency is the baseline; each batch of
//! samples gives a short-term average;
//! `gradient = clamp(tolerance * long / short, 0.5, 1.0)`,
//! `new = limit * gradient + sqrt(limit)` (room to grow), smoothed, kept within
//! `[min, max]`, and never raised while less than half of it is used. When queries slow
//! down because we push too many at once, the limit falls; when they are fast, it climbs
//! back to `max` (which stays below the driver's pool size, so no operation waits for a
//! pooled connection and the supervisor's ping always finds one).
//!
//! A request is admitted once: [`request_scope`] gives each HTTP request a slot, its first
//! database call takes a permit there and every later call of the same request runs on it,
//! so a request is refused before it has cost anything, never half-way through its work
//! (three calls admitted one by one would each be a chance to be shed, and a burst would
//! waste most of what it lets through).
//!
//! The queue only holds calls that can expect a slot in time: when the expected wait of the
//! next place (`(queued + 1) * latency / limit`, with the latest latency when it is above
//! the baseline) exceeds the queue timeout, the call is shed
//! at once instead of waiting to be shed. Under a sustained burst nearly every shed answer
//! is immediate; a short spike still waits in the queue. The queue is first come, first
//! served: a new call does not take a slot while earlier ones wait for one. Once a queued
//! call has waited out the queue timeout all the same (the latency estimate was too
//! hopeful), the queue is closed until no call has been shed for a queue timeout: under a
//! sustained burst every later shed is immediate, instead of one in so many costing the
//! whole timeout.
//!
//! Crates with adaptive limiters exist (tower-acc, tower-resilience-adaptive), but they are
//! Tower layers that hold callers in `poll_ready` rather than shedding past a bounded
//! queue, and the gateway is not a Tower service; this module is the few lines needed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Limits. See the configuration table for the defaults.
#[derive(Debug, Clone)]
pub struct AdmissionConfig {
    /// Highest concurrency limit.
    pub max_in_flight: u32,
    /// Lowest concurrency limit.
    pub min_in_flight: u32,
    /// Calls that may wait for a slot beyond the limit.
    pub queue_length: u32,
    /// How long a queued call waits for a slot before it is shed.
    pub queue_timeout: Duration,
    /// Latency growth tolerated before the limit shrinks (2.0 = twice the baseline).
    pub tolerance: f64,
    /// Weight of each new limit estimate (0.0 to 1.0).
    pub smoothing: f64,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 40,
            min_in_flight: 4,
            queue_length: 64,
            queue_timeout: Duration::from_millis(50),
            tolerance: 2.0,
            smoothing: 0.2,
        }
    }
}

/// The call was shed: too many calls in flight and in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shed {
    /// How long the caller should wait before trying again.
    pub retry_after: Duration,
    /// True when it waited in the queue (false: refused at once, the queue was full).
    pub queued: bool,
}

/// A view of the limiter, for metrics and health.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdmissionSnapshot {
    /// Current concurrency limit.
    pub limit: u32,
    /// Calls running now.
    pub in_flight: u32,
    /// Calls waiting for a slot now.
    pub queued: u32,
    /// Calls shed since start.
    pub shed_total: u64,
}

/// The limit to start from (within `[min, max]`): it climbs while latency holds, which
/// costs a healthy database little, and a burst at start-up meets a modest limit.
const INITIAL_LIMIT: u32 = 10;
/// Samples per limit update.
const BATCH: u32 = 10;
/// Attempts in one second before its shed ratio may say "overloaded".
const OVERLOAD_MIN_ATTEMPTS: u32 = 20;
/// Shed ratio of one second that says "overloaded".
const OVERLOAD_RATIO: f64 = 0.9;
/// How long "overloaded" holds after the last second that said so.
const OVERLOAD_HOLD: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: u32,
    queued: u32,
    /// Long-term latency average, seconds (0 until the first batch).
    long_rtt: f64,
    /// The last batch's latency average, seconds (0 until the first batch).
    recent_rtt: f64,
    batch_sum: f64,
    batch_count: u32,
    /// Most calls in flight seen by this batch's samples.
    batch_peak: u32,
    /// Attempts and sheds in the current one-second bucket.
    bucket_start: Instant,
    bucket_attempts: u32,
    bucket_shed: u32,
    /// A queued call waited out the queue timeout: the queue is not draining, and takes
    /// nobody until no call has been shed for a queue timeout.
    queue_closed: bool,
    /// When a call was last shed.
    last_shed: Option<Instant>,
}

struct Inner {
    config: AdmissionConfig,
    state: Mutex<State>,
    released: Notify,
    shed_total: AtomicU64,
    /// Microseconds after `epoch` until which the process counts as overloaded.
    overloaded_until: AtomicU64,
    epoch: Instant,
}

/// The limiter. Cheap to clone; clones share one limit.
#[derive(Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("snapshot", &self.snapshot())
            .finish()
    }
}

enum Entry {
    Admitted,
    Queued,
    Shed,
}

impl Admission {
    /// A limiter starting at 10 (within `[min_in_flight, max_in_flight]`).
    pub fn new(config: AdmissionConfig) -> Self {
        let max = config.max_in_flight.max(1);
        let config = AdmissionConfig {
            max_in_flight: max,
            min_in_flight: config.min_in_flight.clamp(1, max),
            ..config
        };
        let now = Instant::now();
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    limit: f64::from(
                        INITIAL_LIMIT.clamp(config.min_in_flight, config.max_in_flight),
                    ),
                    in_flight: 0,
                    queued: 0,
                    long_rtt: 0.0,
                    recent_rtt: 0.0,
                    batch_sum: 0.0,
                    batch_count: 0,
                    batch_peak: 0,
                    bucket_start: now,
                    bucket_attempts: 0,
                    bucket_shed: 0,
                    queue_closed: false,
                    last_shed: None,
                }),
                config,
                released: Notify::new(),
                shed_total: AtomicU64::new(0),
                overloaded_until: AtomicU64::new(0),
                epoch: now,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The configuration in force.
    pub fn config(&self) -> &AdmissionConfig {
        &self.inner.config
    }

    /// Current figures.
    pub fn snapshot(&self) -> AdmissionSnapshot {
        let st = self.lock();
        AdmissionSnapshot {
            limit: st.limit as u32,
            in_flight: st.in_flight,
            queued: st.queued,
            shed_total: self.inner.shed_total.load(Ordering::Relaxed),
        }
    }

    /// True while this process is refusing (almost) everything because of overload: in a
    /// recent second, at least 90 % of at least 20 attempts were shed. Two atomic reads; for
    /// probes that take an overloaded replica out of rotation.
    pub fn overloaded(&self) -> bool {
        let until = self.inner.overloaded_until.load(Ordering::Relaxed);
        until > self.inner.epoch.elapsed().as_micros() as u64
    }

    fn enter(&self, already_queued: bool) -> Entry {
        let now = Instant::now();
        let mut st = self.lock();
        if now.duration_since(st.bucket_start) >= Duration::from_secs(1) {
            st.bucket_start = now;
            st.bucket_attempts = 0;
            st.bucket_shed = 0;
        }
        if !already_queued {
            st.bucket_attempts += 1;
        }
        // First come, first served: a newcomer takes a free slot only when nobody waits for
        // one. Otherwise, under a burst, newcomers would take every slot a release frees
        // before the woken caller runs, and the queued calls would wait out the queue
        // timeout and be shed late.
        if st.in_flight < st.limit as u32 && (already_queued || st.queued == 0) {
            st.in_flight += 1;
            if already_queued {
                st.queued -= 1;
                // More free slots (the limit grew) and more waiters: wake the next one too.
                if st.in_flight < st.limit as u32 && st.queued > 0 {
                    self.inner.released.notify_one();
                }
            }
            return Entry::Admitted;
        }
        if already_queued {
            return Entry::Queued;
        }
        if self.queue_has_room(&mut st, now) {
            st.queued += 1;
            return Entry::Queued;
        }
        self.count_shed(&mut st, now);
        Entry::Shed
    }

    /// The door check, for a request about to start work that will need the database: shed
    /// it now, before it costs anything (parsing its body, verifying its token, its spans),
    /// when its first call would be shed at once anyway (every slot taken and no room in the
    /// queue, by length or by expected wait). Counted as an attempt and a shed, like a call
    /// shed at once; `None` (not counted) lets the request go on, to be admitted or shed at
    /// its first database call as usual. One lock, no waiting.
    pub fn shed_at_door(&self) -> Option<Shed> {
        let now = Instant::now();
        let mut st = self.lock();
        if st.in_flight < st.limit as u32 || self.queue_has_room(&mut st, now) {
            return None;
        }
        if now.duration_since(st.bucket_start) >= Duration::from_secs(1) {
            st.bucket_start = now;
            st.bucket_attempts = 0;
            st.bucket_shed = 0;
        }
        st.bucket_attempts += 1;
        self.count_shed(&mut st, now);
        Some(Shed {
            retry_after: retry_after_of(&st),
            queued: false,
        })
    }

    /// Room for one more in the queue: by its length, and by the expected wait of its next
    /// place (`(queued + 1) * latency / limit`) against the queue timeout. None while the
    /// queue is closed (a queued call was shed late, and calls are still being shed); it
    /// opens again after a queue timeout without a shed.
    fn queue_has_room(&self, st: &mut State, now: Instant) -> bool {
        let c = &self.inner.config;
        if st.queue_closed {
            let quiet = st
                .last_shed
                .is_none_or(|at| now.duration_since(at) >= c.queue_timeout);
            if !quiet {
                return false;
            }
            st.queue_closed = false;
        }
        let rtt = st.recent_rtt.max(st.long_rtt);
        let expected_wait = f64::from(st.queued + 1) * rtt / st.limit.max(1.0);
        st.queued < c.queue_length && expected_wait <= c.queue_timeout.as_secs_f64()
    }

    fn count_shed(&self, st: &mut State, now: Instant) {
        self.inner.shed_total.fetch_add(1, Ordering::Relaxed);
        st.last_shed = Some(now);
        st.bucket_shed += 1;
        if st.bucket_attempts >= OVERLOAD_MIN_ATTEMPTS
            && f64::from(st.bucket_shed) >= OVERLOAD_RATIO * f64::from(st.bucket_attempts)
        {
            let until = (now + OVERLOAD_HOLD).duration_since(self.inner.epoch);
            self.inner
                .overloaded_until
                .store(until.as_micros() as u64, Ordering::Relaxed);
        }
    }

    fn retry_after(&self) -> Duration {
        // Long enough for the calls in flight to finish; short enough that a burst's
        // callers come back soon after it passes.
        // The latest latency when it is above the baseline: under a burst, calls take longer
        // and so does the room they make.
        retry_after_of(&self.lock())
    }

    /// Waits for a slot (at most the queue timeout, and only when the queue has room).
    pub async fn acquire(&self) -> Result<AdmissionPermit, Shed> {
        match self.enter(false) {
            Entry::Admitted => return Ok(self.permit()),
            Entry::Shed => {
                return Err(Shed {
                    retry_after: self.retry_after(),
                    queued: false,
                });
            }
            Entry::Queued => {}
        }
        // Leaves the queue on every exit, cancellation included.
        let mut slot = QueueSlot {
            admission: self,
            held: true,
        };
        // A queued call tries for a slot only when a release wakes it: releases wake the
        // waiters in the order they came (`Notify::notify_one`, a wake-up a waiter drops
        // goes on to the next), and a release before this call waits is kept for it.
        let deadline = Instant::now() + self.inner.config.queue_timeout;
        loop {
            let notified = self.inner.released.notified();
            let woken = tokio::time::timeout_at(deadline, notified).await.is_ok();
            if woken && let Entry::Admitted = self.enter(true) {
                slot.held = false;
                return Ok(self.permit());
            }
            if !woken {
                drop(slot);
                let mut st = self.lock();
                st.queue_closed = true;
                self.count_shed(&mut st, Instant::now());
                drop(st);
                return Err(Shed {
                    retry_after: self.retry_after(),
                    queued: true,
                });
            }
        }
    }

    /// Admission for one database call. Inside a [`request_scope`], the request's first call
    /// takes a permit that the request holds until it ends, and later calls run on it;
    /// outside one (the supervisor, start-up work), each call takes its own.
    pub async fn admit_call(&self) -> Result<CallSlot, Shed> {
        let scope = REQUEST_SLOT.try_with(|slot| match &*slot.permit.borrow() {
            Some(p) if Arc::ptr_eq(&p.admission.inner, &self.inner) => ScopeHas::Ours,
            Some(_) => ScopeHas::Other,
            None => ScopeHas::Nothing,
        });
        match scope {
            Ok(ScopeHas::Ours) => Ok(CallSlot::Request),
            Ok(ScopeHas::Nothing) => {
                let mut permit = Some(self.acquire().await?);
                let _ = REQUEST_SLOT.try_with(|slot| {
                    let mut held = slot.permit.borrow_mut();
                    if held.is_none() {
                        *held = permit.take();
                    }
                });
                Ok(permit.map_or(CallSlot::Request, CallSlot::Own))
            }
            Ok(ScopeHas::Other) | Err(_) => Ok(CallSlot::Own(self.acquire().await?)),
        }
    }

    fn permit(&self) -> AdmissionPermit {
        AdmissionPermit {
            admission: self.clone(),
            started: Instant::now(),
            sample: true,
        }
    }

    fn release(&self, rtt: Option<Duration>) {
        let mut st = self.lock();
        if let Some(rtt) = rtt {
            self.sample(&mut st, rtt.as_secs_f64().max(1e-6));
        }
        st.in_flight = st.in_flight.saturating_sub(1);
        drop(st);
        self.inner.released.notify_one();
    }

    /// Gradient2's update, once per batch of samples.
    fn sample(&self, st: &mut State, rtt: f64) {
        st.batch_sum += rtt;
        st.batch_count += 1;
        st.batch_peak = st.batch_peak.max(st.in_flight);
        if st.batch_count < BATCH {
            return;
        }
        let short = st.batch_sum / f64::from(st.batch_count);
        st.recent_rtt = short;
        st.batch_sum = 0.0;
        st.batch_count = 0;
        let peak = std::mem::take(&mut st.batch_peak);
        let c = &self.inner.config;
        if st.long_rtt == 0.0 {
            st.long_rtt = short;
        } else {
            // About 60 batches of memory.
            st.long_rtt += (short - st.long_rtt) / 60.0;
            // A baseline far above today's latency is stale: let it fall faster.
            if st.long_rtt > 2.0 * short {
                st.long_rtt *= 0.95;
            }
        }
        let gradient = (c.tolerance * st.long_rtt / short).clamp(0.5, 1.0);
        let room = st.limit.sqrt();
        let mut next = st.limit * gradient + room;
        if next > st.limit && f64::from(peak) < st.limit / 2.0 {
            // Not using what we have: no evidence that more would work.
            next = st.limit;
        }
        let next = st.limit * (1.0 - c.smoothing) + next * c.smoothing;
        st.limit = next.clamp(f64::from(c.min_in_flight), f64::from(c.max_in_flight));
    }
}

/// How long a shed caller should wait: twice the call latency (the recent one when it is
/// above the baseline), between 100 ms and 1 s, then lengthened at random by up to
/// [`RETRY_SPREAD`] of itself. Without the spread, the callers shed in the same moment are
/// told the same wait and come back in the same moment, a burst again.
fn retry_after_of(st: &State) -> Duration {
    let base = (st.recent_rtt.max(st.long_rtt) * 2.0).clamp(0.1, 1.0);
    Duration::from_secs_f64(base * (1.0 + RETRY_SPREAD * rand::random::<f64>()))
}

/// The random share [`retry_after_of`] adds to a shed caller's wait, at most.
const RETRY_SPREAD: f64 = 0.5;

struct QueueSlot<'a> {
    admission: &'a Admission,
    held: bool,
}

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        if self.held {
            let mut st = self.admission.lock();
            st.queued = st.queued.saturating_sub(1);
        }
    }
}

tokio::task_local! {
    static REQUEST_SLOT: RequestSlot;
}

/// The admission a request holds once its first database call was admitted.
#[derive(Default)]
struct RequestSlot {
    permit: std::cell::RefCell<Option<AdmissionPermit>>,
}

enum ScopeHas {
    Ours,
    Other,
    Nothing,
}

/// Runs one request with its own admission slot (see the module's documentation); the
/// permit its first database call took is released when the request ends.
pub async fn request_scope<F: std::future::Future>(request: F) -> F::Output {
    REQUEST_SLOT.scope(RequestSlot::default(), request).await
}

/// How a database call was admitted.
#[derive(Debug)]
pub enum CallSlot {
    /// Its own permit, released when the call ends.
    Own(AdmissionPermit),
    /// On its request's permit, released when the request ends.
    Request,
}

impl CallSlot {
    /// The call never reached the database: its duration says nothing about its latency.
    pub fn no_sample(&mut self) {
        match self {
            CallSlot::Own(p) => p.no_sample(),
            CallSlot::Request => {
                let _ = REQUEST_SLOT.try_with(|slot| {
                    if let Some(p) = slot.permit.borrow_mut().as_mut() {
                        p.no_sample();
                    }
                });
            }
        }
    }
}

/// A slot for one call; released when dropped. Its duration feeds the limit unless
/// [`AdmissionPermit::no_sample`] was called (a call refused without reaching the database).
#[must_use = "hold the permit while the call runs"]
pub struct AdmissionPermit {
    admission: Admission,
    started: Instant,
    sample: bool,
}

impl std::fmt::Debug for AdmissionPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmissionPermit").finish()
    }
}

impl AdmissionPermit {
    /// The call never reached the database: its duration says nothing about its latency.
    pub fn no_sample(&mut self) {
        self.sample = false;
    }
}

impl Drop for AdmissionPermit {
    fn drop(&mut self) {
        let rtt = self.sample.then(|| self.started.elapsed());
        self.admission.release(rtt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max: u32, queue: u32) -> Admission {
        Admission::new(AdmissionConfig {
            max_in_flight: max,
            min_in_flight: 2,
            queue_length: queue,
            queue_timeout: Duration::from_millis(50),
            ..AdmissionConfig::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn beyond_the_limit_and_the_queue_calls_are_shed_at_once() {
        let a = admission(2, 1);
        let p1 = a.acquire().await.unwrap();
        let _p2 = a.acquire().await.unwrap();
        let a2 = a.clone();
        let queued = tokio::spawn(async move { a2.acquire().await.map(|_| ()) });
        tokio::task::yield_now().await;
        assert_eq!(a.snapshot().queued, 1);
        let started = Instant::now();
        let shed = a.acquire().await.unwrap_err();
        assert!(!shed.queued);
        assert_eq!(started.elapsed(), Duration::ZERO, "shed without waiting");
        assert!(shed.retry_after >= Duration::from_millis(100));
        drop(p1);
        queued
            .await
            .unwrap()
            .expect("a released slot goes to the queue");
        assert_eq!(a.snapshot().shed_total, 1);
    }

    /// Callers shed together are told different waits, none shorter than the latency
    /// estimate nor longer than half again of it: they come back spread out, not together.
    #[tokio::test(start_paused = true)]
    async fn callers_shed_together_are_told_spread_out_waits() {
        let a = admission(2, 0);
        let _held = (a.acquire().await.unwrap(), a.acquire().await.unwrap());
        let waits: Vec<u128> = (0..40)
            .map(|_| {
                a.shed_at_door()
                    .expect("slot taken, no queue")
                    .retry_after
                    .as_millis()
            })
            .collect();
        let base = 100; // no latency measured yet: the 100 ms floor
        assert!(
            waits.iter().all(|w| (base..=base * 3 / 2).contains(w)),
            "{waits:?}"
        );
        let mut distinct = waits.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(
            distinct.len() >= 10,
            "40 callers shed at once were told only {} different waits: {waits:?}",
            distinct.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_door_sheds_only_what_a_first_call_would_shed_at_once() {
        let a = admission(1, 1);
        assert_eq!(a.shed_at_door(), None, "a free slot");
        let p = a.acquire().await.unwrap();
        assert_eq!(a.shed_at_door(), None, "room in the queue");
        let a2 = a.clone();
        let queued = tokio::spawn(async move { a2.acquire().await.map(|_| ()) });
        tokio::task::yield_now().await;
        assert_eq!(a.snapshot().queued, 1);
        let shed = a.shed_at_door().expect("slot and queue full");
        assert!(!shed.queued);
        assert!(shed.retry_after >= Duration::from_millis(100));
        assert_eq!(a.snapshot().shed_total, 1, "counted as shed");
        assert_eq!(a.snapshot().queued, 1, "the door never queues");
        drop(p);
        queued
            .await
            .unwrap()
            .expect("the queued call gets the slot");
        assert_eq!(a.shed_at_door(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_call_is_shed_after_the_queue_timeout() {
        let a = admission(1, 4);
        let _p = a.acquire().await.unwrap();
        let started = Instant::now();
        let shed = a.acquire().await.unwrap_err();
        assert!(shed.queued);
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        assert_eq!(a.snapshot().queued, 0);
    }

    /// A slot freed while a call waits goes to that call, not to a newcomer that arrives
    /// before the woken caller runs (under a burst, newcomers always arrive first).
    #[tokio::test(start_paused = true)]
    async fn a_freed_slot_goes_to_the_queued_call_not_to_a_newcomer() {
        let a = admission(2, 4);
        let p1 = a.acquire().await.unwrap();
        let _p2 = a.acquire().await.unwrap();
        let waiter = tokio::spawn({
            let a = a.clone();
            async move { a.acquire().await.map(|p| (p, Instant::now())) }
        });
        while a.snapshot().queued == 0 {
            tokio::task::yield_now().await;
        }
        let freed_at = Instant::now();
        drop(p1);
        // The newcomer arrives before the woken waiter has run.
        let newcomer = a.acquire();
        tokio::pin!(newcomer);
        assert!(
            futures::poll!(newcomer.as_mut()).is_pending(),
            "the newcomer queues behind the waiter instead of taking its slot"
        );
        let (_p3, admitted_at) = waiter
            .await
            .unwrap()
            .expect("the waiter gets the freed slot");
        assert_eq!(
            admitted_at, freed_at,
            "at once, not after the queue timeout"
        );
        // The newcomer waits its turn (no slot frees up here: shed after the timeout).
        assert!(newcomer.await.unwrap_err().queued);
    }

    /// After a queued call waited out the timeout, calls that find no slot are shed at once
    /// while sheds go on; once none was shed for a queue timeout, the queue takes calls
    /// again.
    #[tokio::test(start_paused = true)]
    async fn a_queue_that_timed_a_call_out_closes_until_the_sheds_stop() {
        let a = admission(1, 4);
        let _p = a.acquire().await.unwrap();
        assert!(a.acquire().await.unwrap_err().queued, "waited, then shed");
        for _ in 0..3 {
            let started = Instant::now();
            let shed = a.acquire().await.unwrap_err();
            assert!(!shed.queued, "shed at once while the queue is closed");
            assert_eq!(started.elapsed(), Duration::ZERO);
            tokio::time::advance(Duration::from_millis(30)).await;
        }
        // 30 ms since the last shed: still closed.
        assert!(!a.acquire().await.unwrap_err().queued);
        tokio::time::advance(Duration::from_millis(50)).await;
        // Quiet for a queue timeout: this one is queued again (and shed after waiting).
        assert!(a.acquire().await.unwrap_err().queued);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_leaves_the_queue() {
        let a = admission(1, 1);
        let _p = a.acquire().await.unwrap();
        let r = tokio::time::timeout(Duration::from_millis(10), a.acquire()).await;
        assert!(r.is_err());
        assert_eq!(a.snapshot().queued, 0);
        // The queue has room again: this one waits (and is shed after the timeout).
        assert!(a.acquire().await.unwrap_err().queued);
    }

    #[tokio::test(start_paused = true)]
    async fn the_limit_falls_when_latency_grows_and_climbs_back_when_it_recovers() {
        let a = admission(40, 0);
        let run = |ms: u64, n: usize| {
            let a = a.clone();
            async move {
                for _ in 0..n {
                    // Keep the limit in use so it may grow.
                    let permits: Vec<_> =
                        futures::future::join_all((0..a.snapshot().limit).map(|_| a.acquire()))
                            .await;
                    tokio::time::advance(Duration::from_millis(ms)).await;
                    drop(permits);
                }
            }
        };
        run(10, 60).await;
        assert_eq!(a.snapshot().limit, 40, "climbs from 10 to the maximum");
        run(100, 3).await;
        let low = a.snapshot().limit;
        // Gradient2 halves at most per update, smoothed, and slowly takes a lasting latency
        // as the new baseline: the limit falls well below the maximum, not to the floor.
        assert!(low <= 30, "limit {low} after latency grew tenfold");
        run(10, 60).await;
        assert!(a.snapshot().limit > low, "the limit climbs back");
    }

    #[tokio::test(start_paused = true)]
    async fn overloaded_says_so_only_while_almost_everything_is_shed() {
        let a = admission(1, 0);
        let _p = a.acquire().await.unwrap();
        assert!(!a.overloaded());
        for _ in 0..30 {
            let _ = a.acquire().await;
        }
        assert!(a.overloaded());
        tokio::time::advance(Duration::from_millis(1100)).await;
        assert!(!a.overloaded(), "the flag expires without traffic");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn contending_callers_never_exceed_the_limit() {
        let a = admission(8, 8);
        let peak = Arc::new(AtomicU64::new(0));
        let now = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (a, peak, now) = (a.clone(), peak.clone(), now.clone());
                tokio::spawn(async move {
                    let mut shed = 0;
                    for _ in 0..50 {
                        match a.acquire().await {
                            Ok(p) => {
                                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                                peak.fetch_max(n, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_micros(200)).await;
                                now.fetch_sub(1, Ordering::SeqCst);
                                drop(p);
                            }
                            Err(_) => shed += 1,
                        }
                    }
                    shed
                })
            })
            .collect();
        let mut shed = 0;
        for t in tasks {
            shed += t.await.unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 8);
        assert!(shed > 0);
        let s = a.snapshot();
        assert_eq!((s.in_flight, s.queued), (0, 0));
        assert_eq!(s.shed_total, shed);
    }
}
