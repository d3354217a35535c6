//! Breaker admission on each path.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use aila_api::resilience::breaker::{Breaker, BreakerConfig, BreakerState, Caller, Outcome};
use criterion::Criterion;

use crate::allocations;

/// A breaker whose open period outlasts any benchmark (so an open one stays open).
fn breaker() -> Breaker {
    Breaker::new(
        BreakerConfig {
            open_initial: Duration::from_secs(3600),
            open_max: Duration::from_secs(3600),
            jitter: 0.0,
            ..BreakerConfig::default()
        },
        |_| {},
    )
}

/// Runs `per_thread(iters)` on `threads` threads released together; returns the longest
/// thread time, so the figure is the time of one call while `threads` threads contend.
fn contended(threads: usize, iters: u64, per_thread: &(dyn Fn(u64) + Sync)) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let t = Instant::now();
                    per_thread(iters);
                    t.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a benchmark thread panicked"))
            .max()
            .unwrap_or_default()
    })
}

pub fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("breaker");

    // Closed: every database call pays this (acquire a permit, record a success).
    let closed = breaker();
    g.bench_function("closed: try_acquire + record(Success)", |b| {
        b.iter(|| {
            let permit = closed
                .try_acquire(black_box(Caller::Ordinary))
                .expect("closed");
            permit.record(Outcome::Success);
        })
    });

    // Open: the refusal a request meets during an outage. Must not allocate.
    let open = breaker();
    open.trip("benchmark");
    assert_eq!(open.state(), BreakerState::Open);
    let before = allocations();
    for _ in 0..10_000 {
        let refused = open.try_acquire(black_box(Caller::Ordinary));
        assert!(black_box(refused).is_err());
    }
    let allocated = allocations() - before;
    assert_eq!(allocated, 0, "the open refusal path allocated");
    eprintln!("breaker/open refusal: 0 heap allocations in 10,000 refusals (checked)");
    g.bench_function("open: try_acquire refused (0 allocations, asserted)", |b| {
        b.iter_custom(|iters| {
            let a0 = allocations();
            let t = Instant::now();
            for _ in 0..iters {
                let _ = black_box(open.try_acquire(black_box(Caller::Ordinary)));
            }
            let took = t.elapsed();
            assert_eq!(allocations(), a0, "the open refusal path allocated");
            took
        })
    });

    // Half-open, probe in flight: everyone else is refused; threads contend on the lock.
    let half = breaker();
    half.trip("benchmark");
    let probe = half
        .try_acquire(Caller::Supervisor)
        .expect("the supervisor may probe an open breaker");
    assert_eq!(half.state(), BreakerState::HalfOpen);
    for threads in [1usize, 2, 4] {
        g.bench_function(
            format!("half-open: refused while the probe is in flight, {threads} thread(s)"),
            |b| {
                b.iter_custom(|iters| {
                    contended(threads, iters, &|n| {
                        for _ in 0..n {
                            let _ = black_box(half.try_acquire(black_box(Caller::Ordinary)));
                        }
                    })
                })
            },
        );
    }
    probe.record(Outcome::Success);
    assert_eq!(half.state(), BreakerState::Closed);

    // Closed under contention: two threads making database calls at once.
    for threads in [2usize, 4] {
        g.bench_function(
            format!("closed: try_acquire + record(Success), {threads} threads"),
            |b| {
                b.iter_custom(|iters| {
                    contended(threads, iters, &|n| {
                        for _ in 0..n {
                            let permit = closed
                                .try_acquire(black_box(Caller::Ordinary))
                                .expect("closed");
                            permit.record(Outcome::Success);
                        }
                    })
                })
            },
        );
    }
    g.finish();
}
