//! [`ClientConfig`] and [`RetryPolicy`].

use std::time::Duration;

use fieldline_client_core::sync::DEFAULT_MAX_UPLOAD_BYTES;

/// How to reach the server and how hard to try.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The server's address, e.g. `https://crm.example.com`. A path prefix is kept
    /// (`https://example.com/fieldline` → `https://example.com/fieldline/v1/sync`).
    pub base_url: String,
    /// Limit for establishing a connection (TCP and TLS). Default 10 s.
    pub connect_timeout: Duration,
    /// Limit for one whole request, answer included (for the WebSocket: for the upgrade,
    /// and for the reply to one round). Default 60 s.
    pub request_timeout: Duration,
    /// Upload at most this many bytes of changes per round (always at least one change);
    /// the rest goes in the following rounds. Default 2 MiB.
    pub max_upload_bytes: usize,
    pub retry: RetryPolicy,
    /// Stop a sync after this many rounds even if the server keeps saying `more`
    /// (the summary then says it is not complete). Default 1,000.
    pub max_rounds: u32,
    /// A live session pings the server this often when idle, and gives up on a connection
    /// that stayed silent for two intervals. Default 25 s (below common NAT timeouts).
    pub ping_interval: Duration,
    /// Sent as `User-Agent`.
    pub user_agent: String,
}

impl ClientConfig {
    /// The defaults, for the server at `base_url`.
    pub fn new(base_url: impl Into<String>) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            retry: RetryPolicy::default(),
            max_rounds: 1_000,
            ping_interval: Duration::from_secs(25),
            user_agent: concat!("fieldline-client/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// How one round is retried after a retryable failure (network error, timeout, 5xx, 429).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per round, the first included (1 = never retry). Default 5.
    pub max_attempts: u32,
    /// Upper bound of the first backoff. Default 500 ms.
    pub initial_backoff: Duration,
    /// Upper bound of any backoff. Default 30 s.
    pub max_backoff: Duration,
    /// Honour a 429's `Retry-After` up to this long; a longer wait is returned to the caller
    /// as [`TransportError::RateLimited`](crate::TransportError) instead of blocking the sync.
    /// Default 2 min.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// A single attempt, no retries.
    pub fn no_retries() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The delay before retry number `retry` (0 for the first retry): exponential backoff
    /// with full jitter, uniform in `[0, min(max_backoff, initial_backoff · 2^retry)]`.
    /// The randomness spreads out the many phones that come back online together after an
    /// outage, instead of having them retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(31));
        let cap = self
            .initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_grows() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(1),
        };
        for retry in 0..40 {
            let cap = Duration::from_millis(100 * 2u64.pow(retry.min(20))).min(p.max_backoff);
            for _ in 0..50 {
                assert!(p.backoff(retry) <= cap);
            }
        }
        // Full jitter: later retries may wait longer than the first one ever can.
        assert!((0..200).any(|_| p.backoff(5) > Duration::from_millis(100)));
    }
}
