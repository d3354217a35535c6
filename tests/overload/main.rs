//! Overload against a healthy database, in a test binary of its own: the burst needs the
//! machine's CPU to itself (in the resilience binary it ran beside other tests, and the
//! service's own supervisor then starved), and cargo runs test binaries one at a time.

#[path = "../common/mod.rs"]
mod common;

mod burst;
