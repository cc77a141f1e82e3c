//! Token-bucket rate limits: sends (per connection, and per user for REST) and searches (per
//! user).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::error::ApiError;

#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// What is limited, for the error message (`send`, `search`).
    what: &'static str,
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    pub fn new(what: &'static str, rate: f64, burst: f64) -> Self {
        Self { what, rate, burst, tokens: burst, at: Instant::now() }
    }

    /// Takes one token, or says how long until one is available.
    pub fn take(&mut self) -> Result<(), ApiError> {
        let now = Instant::now();
        self.tokens = (self.tokens + (now - self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = ((1.0 - self.tokens) / self.rate * 1000.0).ceil() as u64;
            Err(ApiError::rate_limited(self.what, wait_ms.max(1)))
        }
    }
}

/// Buckets per key (workspace/user), for callers without a connection of their own.
pub struct Limiter {
    what: &'static str,
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl Limiter {
    pub fn new(what: &'static str, rate: f64, burst: f64) -> Self {
        Self { what, rate, burst, buckets: Mutex::default() }
    }

    pub fn take(&self, key: &str) -> Result<(), ApiError> {
        let mut b = self.buckets.lock().expect("lock");
        // Full buckets carry no state worth keeping; dropping them bounds the map.
        if b.len() > 100_000 {
            b.retain(|_, v| v.tokens < v.burst);
        }
        b.entry(key.to_string()).or_insert_with(|| TokenBucket::new(self.what, self.rate, self.burst)).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_limits_with_retry_hint() {
        let mut b = TokenBucket::new("send", 10.0, 3.0);
        for _ in 0..3 {
            b.take().unwrap();
        }
        let e = b.take().unwrap_err();
        assert_eq!(e.code, crate::error::ErrorCode::RateLimited);
        assert_eq!(e.message, "send rate limit exceeded");
        let ms = e.retry_after_ms.unwrap();
        assert!((1..=100).contains(&ms), "retry hint {ms}");
    }
}
