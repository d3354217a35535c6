//! Criterion micro-benchmarks (`cargo bench --bench micro`): what resilience costs on the hot
//! paths, and the CPU-bound pieces of the API. Results and how to read them:
//! `docs/BENCHMARKS.md`.
//!
//! - [`breaker`]: admission on each path: closed (acquire + record), open refusal (with a
//!   check that it allocates nothing), half-open refusal under contention across threads.
//! - [`gateway`]: the gateway around a trivial operation (no I/O), its refusal when open,
//!   and a `find_one` on an empty collection through it vs on the raw driver (FerretDB).
//! - [`health`]: reading the published states, building the `/health` body, and its JSON.
//! - [`payloads`]: serialising a 500-person tree as the API does; verifying a JWT.
//!
//! The binary counts heap allocations per thread (a thin wrapper over the system
//! allocator: one thread-local increment per allocation), so a benchmark can assert that a
//! path allocates nothing.

mod breaker;
mod gateway;
mod health;
mod payloads;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use criterion::{criterion_group, criterion_main};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only
// a const-initialised thread-local without destructor (no allocation, no re-entrancy).
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Heap allocations made so far by the calling thread.
pub fn allocations() -> u64 {
    ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
}

criterion_group!(
    benches,
    breaker::benches,
    gateway::benches,
    health::benches,
    payloads::benches
);
criterion_main!(benches);
