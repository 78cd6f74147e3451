//! The one retry policy: how long to wait before trying again what failed for a transient
//! reason (see [`crate::PipelineError::is_transient`]), doubling from a short first wait to a
//! bound.

use std::time::Duration;

/// The first wait.
const FIRST: Duration = Duration::from_millis(200);

/// The longest wait.
const LONGEST: Duration = Duration::from_secs(10);

/// Waits that double from [`FIRST`] up to [`LONGEST`]; reset after a success.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    current: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { current: FIRST }
    }
}

impl Backoff {
    /// The wait now; the next one is twice as long (at most [`LONGEST`]).
    pub(crate) fn next(&mut self) -> Duration {
        let now = self.current;
        self.current = (self.current * 2).min(LONGEST);
        now
    }

    /// After a success: the next failure waits [`FIRST`] again.
    pub(crate) fn reset(&mut self) {
        self.current = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_bound_and_start_again_after_a_success() {
        let mut backoff = Backoff::default();
        let waits: Vec<u128> = (0..8).map(|_| backoff.next().as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
        backoff.reset();
        assert_eq!(backoff.next(), FIRST);
    }
}
