//! Retry as a policy object: exponential backoff with full jitter, used for in-process
//! retries of throttled API calls (queue-level retries use visibility timeouts instead).

use crate::error::{ErrorClass, PortError};
use std::future::Future;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_interval: Duration,
    pub max_interval: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial_interval: Duration::from_millis(200),
            max_interval: Duration::from_secs(5),
        }
    }
}

/// The one backoff formula: `base` doubled per attempt after the first, capped at `max`
/// (attempt counts from 1). Callers add their jitter.
pub fn exponential_ceiling(base: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

impl RetryPolicy {
    /// Upper bound of the wait before attempt `attempt + 1` (attempt counts from 1).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        exponential_ceiling(self.initial_interval, self.max_interval, attempt)
    }

    /// Full jitter: uniformly random in `[0, ceiling]`, which spreads synchronized retries best.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt).as_millis() as u64;
        Duration::from_millis(fastrand::u64(0..=ceiling))
    }

    /// Runs `call` until it succeeds, fails permanently, or attempts run out.
    /// Returns the result and how many attempts were made.
    pub async fn run<T, F, Fut>(&self, mut call: F) -> (Result<T, PortError>, u32)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PortError>>,
    {
        let mut attempt = 1;
        loop {
            let result = call().await;
            if let Err(err) = &result {
                crate::metrics::observe_port_error(err);
            }
            match result {
                Err(err) if err.class() == ErrorClass::Retryable && attempt < self.max_attempts => {
                    tracing::debug!(attempt, error = %err, "retrying after retryable failure");
                    tokio::time::sleep(self.delay(attempt)).await;
                    attempt += 1;
                }
                other => return (other, attempt),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::PortErrorKind;
    use std::cell::Cell;

    #[test]
    fn ceilings_double_and_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.ceiling(1), Duration::from_millis(200));
        assert_eq!(policy.ceiling(2), Duration::from_millis(400));
        assert_eq!(policy.ceiling(10), Duration::from_secs(5));
        assert_eq!(policy.ceiling(100), Duration::from_secs(5));
        for attempt in 1..8 {
            assert!(policy.delay(attempt) <= policy.ceiling(attempt));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_retryable_until_success_but_not_permanent() {
        let policy = RetryPolicy::default();
        let calls = Cell::new(0);
        let (result, attempts) = policy
            .run(|| {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n < 3 {
                        Err(PortError::new(PortErrorKind::Throttled, "t", "op"))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!((result, attempts), (Ok(3), 3));

        let (result, attempts) = policy
            .run(|| async {
                Err::<(), _>(PortError::new(PortErrorKind::InvalidRequest, "t", "op"))
            })
            .await;
        assert_eq!(result.unwrap_err().kind, PortErrorKind::InvalidRequest);
        assert_eq!(attempts, 1);

        let (result, attempts) = policy
            .run(|| async { Err::<(), _>(PortError::new(PortErrorKind::Unavailable, "t", "op")) })
            .await;
        assert!(result.is_err());
        assert_eq!(attempts, policy.max_attempts);
    }
}
