//! Rate limits: a GCRA bucket per key (client address, credential), in
//! process. Answers 429 `rate_limited` with `Retry-After`. Buckets of keys
//! not seen for a while are dropped by [`Limits::forget_idle`], so memory
//! stays bounded however many addresses come by.

use std::{hash::Hash, net::IpAddr, num::NonZeroU32, sync::Arc};

use governor::{DefaultKeyedRateLimiter, Quota, clock::Clock};

use crate::error::ApiError;

#[derive(Clone)]
pub struct Limiter<K: Hash + Eq + Clone> {
    /// `None`: no limit.
    inner: Option<Arc<DefaultKeyedRateLimiter<K>>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// `per_minute` requests a minute per key, in bursts of up to that many.
    /// 0: no limit at all.
    pub fn per_minute(per_minute: u32) -> Limiter<K> {
        Limiter {
            inner: NonZeroU32::new(per_minute)
                .map(|n| Arc::new(governor::RateLimiter::keyed(Quota::per_minute(n)))),
        }
    }

    pub fn check(&self, key: &K) -> Result<(), ApiError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        inner.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            }
        })
    }
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// Drops the buckets of keys that are back to full.
    pub fn forget_idle(&self) -> usize {
        match &self.inner {
            Some(l) => {
                let before = l.len();
                l.retain_recent();
                l.shrink_to_fit();
                before.saturating_sub(l.len())
            }
            None => 0,
        }
    }

    pub fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The limits every node keeps.
#[derive(Clone)]
pub struct Limits {
    /// Sign-up, login and device pairing, per client address: what a guesser
    /// of passwords or pairing codes would hammer.
    pub sensitive: Limiter<IpAddr>,
    /// Storefront holds and checkouts, per client address: so one client
    /// cannot drain an event.
    pub storefront: Limiter<IpAddr>,
}

impl Limits {
    pub fn new(sensitive_per_minute: u32, storefront_per_minute: u32) -> Limits {
        Limits {
            sensitive: Limiter::per_minute(sensitive_per_minute.max(1)),
            storefront: Limiter::per_minute(storefront_per_minute),
        }
    }

    pub fn forget_idle(&self) -> usize {
        self.sensitive.forget_idle() + self.storefront.forget_idle()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_key_past_its_quota_is_told_when_to_retry_and_others_are_not() {
        let l = super::Limiter::<u8>::per_minute(3);
        for _ in 0..3 {
            assert!(l.check(&1).is_ok());
        }
        match l.check(&1) {
            Err(crate::ApiError::RateLimited { retry_after_secs }) => {
                assert!((1..=60).contains(&retry_after_secs))
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
        assert!(l.check(&2).is_ok());
        let off = super::Limiter::<u8>::per_minute(0);
        for _ in 0..1000 {
            assert!(off.check(&1).is_ok());
        }
    }
}
