//! Millisecond exponential backoff with jitter, as an iterator of delays: the breaker's
//! open periods and the supervisor's reconnect pings both use it (one implementation).
//!
//! The schedule (first delay, doubling, cap, unlimited) is backon's `ExponentialBuilder`;
//! backon's own jitter only ever lengthens a delay (up to twice), so the symmetric
//! `±jitter` spread around each delay is applied here, still capped at the maximum.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Exponential delays: `initial`, doubling, capped at `max`, each multiplied by a random
/// factor in `[1 - jitter, 1 + jitter]` (still capped at `max`).
#[derive(Debug)]
pub struct ExponentialMillis {
    schedule: ExponentialBackoff,
    max: Duration,
    jitter: f64,
}

impl ExponentialMillis {
    /// Delays from `initial` doubling up to `max`, with ±`jitter` (0.0 to 1.0) randomness.
    pub fn new(initial: Duration, max: Duration, jitter: f64) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        let max = max.max(initial);
        Self {
            schedule: ExponentialBuilder::default()
                .with_min_delay(initial)
                .with_max_delay(max)
                .with_factor(2.0)
                .without_max_times()
                .build(),
            max,
            jitter: jitter.clamp(0.0, 1.0),
        }
    }
}

impl Iterator for ExponentialMillis {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let base = self.schedule.next()?;
        let factor = if self.jitter > 0.0 {
            1.0 + self.jitter * (2.0 * rand::random::<f64>() - 1.0)
        } else {
            1.0
        };
        Some(base.mul_f64(factor).min(self.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_without_jitter() {
        let got: Vec<u128> =
            ExponentialMillis::new(Duration::from_millis(250), Duration::from_secs(10), 0.0)
                .take(8)
                .map(|d| d.as_millis())
                .collect();
        assert_eq!(got, [250, 500, 1000, 2000, 4000, 8000, 10000, 10000]);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        for d in ExponentialMillis::new(Duration::from_millis(100), Duration::from_millis(400), 0.2)
            .take(50)
        {
            assert!(
                d >= Duration::from_millis(80) && d <= Duration::from_millis(400),
                "{d:?}"
            );
        }
    }
}
