//! The one retry policy: how long to wait before trying again what failed for a transient
//! reason (see [`crate::PipelineError::is_transient`]), doubling from a short first wait to a
//! bound.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::PipelineError;

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

/// A session that streamed at least this long ends a run of failures.
const STEADY: Duration = Duration::from_secs(30);

/// Whether to start the pipeline again after a failure: transient ones, with [`Backoff`]
/// waits, for as long as failures have lasted at most `timeout` in a row.
#[derive(Debug)]
pub(crate) struct Restarts {
    timeout: Duration,
    backoff: Backoff,
    failing_since: Option<Instant>,
}

impl Restarts {
    pub(crate) fn new(timeout: Duration) -> Self {
        Restarts {
            timeout,
            backoff: Backoff::default(),
            failing_since: None,
        }
    }

    /// A session that streamed for `streamed` ended in a failure.
    pub(crate) fn session_failed(&mut self, streamed: Duration) {
        if streamed >= STEADY {
            self.failing_since = None;
            self.backoff.reset();
        }
    }

    /// The wait before starting again after `err`; `None`: give up (a definite error, or
    /// failures for longer than the timeout).
    pub(crate) fn wait_after(&mut self, err: &PipelineError) -> Option<Duration> {
        if !err.is_transient() || self.timeout.is_zero() {
            return None;
        }
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        (since.elapsed() < self.timeout).then(|| self.backoff.next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outage() -> PipelineError {
        PipelineError::PostgresUnavailable("connection lost".to_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_they_last_longer_than_the_timeout() {
        let mut restarts = Restarts::new(Duration::from_secs(5));
        let mut waited = Duration::ZERO;
        while let Some(wait) = restarts.wait_after(&outage()) {
            tokio::time::sleep(wait).await;
            waited += wait;
        }
        // 0.2 + 0.4 + 0.8 + 1.6 + 3.2: the last try came 6.2 s after the first failure.
        assert_eq!(waited, Duration::from_millis(6200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_definite_error_or_a_zero_timeout_is_never_retried() {
        let definite = PipelineError::Postgres("password authentication failed".to_owned());
        assert_eq!(
            Restarts::new(Duration::from_secs(60)).wait_after(&definite),
            None
        );
        assert_eq!(Restarts::new(Duration::ZERO).wait_after(&outage()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_that_streamed_for_a_while_starts_a_new_run_of_failures() {
        let mut restarts = Restarts::new(Duration::from_secs(5));
        assert_eq!(restarts.wait_after(&outage()), Some(FIRST));
        tokio::time::sleep(Duration::from_secs(4)).await;
        // Short sessions do not count: the run goes on and gives up after the timeout.
        restarts.session_failed(Duration::from_secs(1));
        assert_eq!(restarts.wait_after(&outage()), Some(FIRST * 2));
        tokio::time::sleep(Duration::from_secs(2)).await;
        restarts.session_failed(Duration::from_secs(1));
        assert_eq!(restarts.wait_after(&outage()), None);
        // One that streamed longer ends it.
        restarts.session_failed(STEADY);
        assert_eq!(restarts.wait_after(&outage()), Some(FIRST));
    }

    #[test]
    fn waits_double_up_to_the_bound_and_start_again_after_a_success() {
        let mut backoff = Backoff::default();
        let waits: Vec<u128> = (0..8).map(|_| backoff.next().as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
        backoff.reset();
        assert_eq!(backoff.next(), FIRST);
    }
}
