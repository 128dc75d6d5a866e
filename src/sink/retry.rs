//! What a response means for the rows in it, and how long to wait before trying again.

use std::time::Duration;

/// The verdict on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted.
    Delivered,
    /// Too large (HTTP 413): send the rows in smaller requests.
    TooLarge,
    /// Refused for its content (HTTP 400): find the bad rows by splitting; a single row
    /// refused for good goes to the dead-letter queue with `error`.
    Rejected { error: String },
    /// Throttled or unavailable with a `Retry-After`: wait that long, then resend.
    RetryAfter(Duration),
    /// A transient failure (5xx, timeout, connection): back off and resend; never give up.
    Transient { reason: String },
    /// The service refused our credentials (401/403): refresh them, pause, resend.
    Unauthorized { reason: String },
    /// The route does not exist (404): configuration is wrong; stop the route loudly.
    RouteBroken { reason: String },
    /// A 404 that may also mean "too large" (the Data Collector API): split a request of
    /// several rows once; if a part is refused the same way, the route is broken.
    NotFound { reason: String },
}

/// Exponential backoff with full jitter: 0.5 s, 1 s, 2 s, ... up to `max`, each wait a
/// random fraction of the step so that many senders do not retry in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    /// The next wait.
    pub fn next_wait(&mut self) -> Duration {
        let step = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        // At least half the step, so a retry never comes right away.
        step / 2 + step.mul_f64(fastrand::f64() / 2.0)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(60))
    }
}

/// `Retry-After` as seconds or an HTTP date; capped at an hour.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<f64>() {
        Ok(secs) if secs >= 0.0 && secs.is_finite() => Duration::from_secs_f64(secs),
        Ok(_) => return None,
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
        }
    };
    Some(wait.min(Duration::from_secs(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let waits: Vec<Duration> = (0..10).map(|_| b.next_wait()).collect();
        assert!(waits[0] >= Duration::from_millis(50) && waits[0] <= Duration::from_millis(100));
        assert!(waits[3] >= Duration::from_millis(400) && waits[3] <= Duration::from_millis(800));
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(2)));
        assert!(waits[9] >= Duration::from_secs(1));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("99999"), Some(Duration::from_secs(3600)));
    }
}
