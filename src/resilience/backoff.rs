//! Millisecond exponential backoff with jitter, as an iterator of delays: the breaker's
//! open periods and the supervisor's reconnect pings both use it (one implementation).

use std::time::Duration;

/// Exponential delays: `initial`, doubling, capped at `max`, each multiplied by a random
/// factor in `[1 - jitter, 1 + jitter]` (still capped at `max`).
#[derive(Debug, Clone)]
pub struct ExponentialMillis {
    next: Duration,
    max: Duration,
    jitter: f64,
}

impl ExponentialMillis {
    /// Delays from `initial` doubling up to `max`, with ±`jitter` (0.0 to 1.0) randomness.
    pub fn new(initial: Duration, max: Duration, jitter: f64) -> Self {
        Self {
            next: initial.max(Duration::from_millis(1)),
            max: max.max(initial),
            jitter: jitter.clamp(0.0, 1.0),
        }
    }
}

impl Iterator for ExponentialMillis {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
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
