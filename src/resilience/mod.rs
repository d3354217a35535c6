//! Resilience mechanisms that know nothing of MongoDB.
//!
//! - [`breaker`]: the circuit breaker (failsafe-rs's failure policy, wrapped with admission
//!   permits, a single half-open probe, a drop guard and a published state).
//! - [`backoff`]: millisecond, jittered exponential delays for the breaker's open periods.
//!
//! Vocabulary, used the same way in code, logs, metrics and the health JSON:
//! `closed` = calls flow; `open` = calls refused; `half_open` = one probe allowed.

pub mod backoff;
pub mod breaker;
