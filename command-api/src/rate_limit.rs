//! Per-IP token buckets for the sign-in routes: a burst of attempts, then a steady trickle.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ApiError;

/// Beyond this many tracked addresses, full buckets are forgotten (they hold no information).
const MAX_TRACKED: usize = 10_000;

pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn per_minute(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one attempt for `ip`, or says how long to wait for the next.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        self.check_at(ip, Instant::now())
    }

    fn check_at(&self, ip: Option<IpAddr>, now: Instant) -> Result<(), ApiError> {
        let Some(ip) = ip else { return Ok(()) };
        let capacity = f64::from(self.per_minute);
        let refill_per_second = capacity / 60.0;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() > MAX_TRACKED {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * refill_per_second
                    < capacity
            });
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * refill_per_second).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / refill_per_second;
            Err(ApiError::RateLimited(Duration::from_secs_f64(wait.ceil())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_refills_over_a_minute() {
        let limiter = RateLimiter::per_minute(3);
        let ip = Some("203.0.113.9".parse().unwrap());
        let start = Instant::now();
        for _ in 0..3 {
            limiter.check_at(ip, start).unwrap();
        }
        let Err(ApiError::RateLimited(wait)) = limiter.check_at(ip, start) else {
            panic!("the fourth attempt is refused");
        };
        assert_eq!(wait, Duration::from_secs(20));
        limiter
            .check_at(ip, start + Duration::from_secs(20))
            .unwrap();
        // Another address has its own bucket.
        limiter
            .check_at(Some("203.0.113.10".parse().unwrap()), start)
            .unwrap();
    }
}
