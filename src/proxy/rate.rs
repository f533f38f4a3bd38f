//! The first-party vendor path's rate limit: a token bucket per client IP
//! (`[limits] vendor_requests_per_second`, `vendor_burst`), kept in a map of at
//! most `vendor_rate_max_clients` addresses so a spray of source addresses
//! cannot grow it without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Per-client-IP token buckets. A bucket starts full (`burst` requests) and refills
/// at `per_second`; `per_second == 0` turns the limit off.
#[derive(Debug)]
pub struct ClientRateLimiter {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    per_second: f64,
    burst: f64,
    max_clients: usize,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl ClientRateLimiter {
    pub fn new(per_second: f64, burst: u32, max_clients: usize) -> ClientRateLimiter {
        ClientRateLimiter {
            buckets: Mutex::default(),
            per_second: if per_second.is_finite() { per_second.max(0.0) } else { 0.0 },
            burst: f64::from(burst.max(1)),
            max_clients: max_clients.max(1),
        }
    }

    /// Takes one token from `ip`'s bucket; false if it is empty.
    pub fn allow(&self, ip: IpAddr) -> bool {
        self.allow_at(ip, Instant::now())
    }

    /// [`ClientRateLimiter::allow`] at a given instant (tests drive the clock).
    pub fn allow_at(&self, ip: IpAddr, now: Instant) -> bool {
        if self.per_second <= 0.0 {
            return true;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(&ip) && buckets.len() >= self.max_clients {
            // Full: forget the client heard from longest ago. Its bucket has refilled the
            // most, so forgetting it (a fresh, full bucket next time) costs the least.
            if let Some(oldest) = buckets.iter().min_by_key(|(_, b)| b.at).map(|(ip, _)| *ip) {
                buckets.remove(&oldest);
            }
        }
        let bucket = buckets.entry(ip).or_insert(Bucket { tokens: self.burst, at: now });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How many client addresses are tracked.
    pub fn clients(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn a_client_gets_its_burst_then_is_refused_until_the_bucket_refills() {
        let limiter = ClientRateLimiter::new(2.0, 3, 10);
        let t = Instant::now();
        assert!((0..3).all(|_| limiter.allow_at(ip(1), t)));
        assert!(!limiter.allow_at(ip(1), t));
        assert!(limiter.allow_at(ip(1), t + Duration::from_millis(500)), "one token back after 1/2 s at 2/s");
        assert!(!limiter.allow_at(ip(1), t + Duration::from_millis(500)));
    }

    #[test]
    fn clients_have_their_own_buckets() {
        let limiter = ClientRateLimiter::new(1.0, 1, 10);
        let t = Instant::now();
        assert!(limiter.allow_at(ip(1), t));
        assert!(!limiter.allow_at(ip(1), t));
        assert!(limiter.allow_at(ip(2), t));
    }

    #[test]
    fn the_map_never_holds_more_than_max_clients() {
        let limiter = ClientRateLimiter::new(1.0, 1, 100);
        let t = Instant::now();
        for n in 0..10_000 {
            limiter.allow_at(ip(n), t + Duration::from_micros(u64::from(n)));
        }
        assert_eq!(limiter.clients(), 100);
    }

    #[test]
    fn zero_per_second_turns_the_limit_off() {
        let limiter = ClientRateLimiter::new(0.0, 1, 10);
        let t = Instant::now();
        assert!((0..1000).all(|_| limiter.allow_at(ip(1), t)));
        assert_eq!(limiter.clients(), 0);
    }
}
