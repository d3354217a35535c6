//! Resilience mechanisms that know nothing of MongoDB.
//!
//! - [`admission`]: the adaptive concurrency limit with a short queue; what does not fit is
//!   shed at once.
//! - [`breaker`]: the circuit breaker, judging operations over a sliding window (failure and
//!   slow-call rates) and consecutive failures, with trial calls while half-open, a drop
//!   guard and a published state.
//! - [`backoff`]: millisecond, jittered exponential delays (the breaker's open periods and
//!   the supervisor's reconnect pings).
//!
//! Vocabulary, used the same way in code, logs, metrics and the health JSON:
//! `closed` = calls flow; `open` = calls refused; `half_open` = a few trial calls allowed;
//! `shed` = refused by admission control because of overload (not a database failure).

pub mod admission;
pub mod backoff;
pub mod breaker;
