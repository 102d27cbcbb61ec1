//! Rate limits: a GCRA bucket per key (client address, credential), in
//! process. Answers 429 `rate_limited` with `Retry-After`. Buckets of keys
//! not seen for a while are dropped by [`Limits::forget_idle`], so memory
//! stays bounded however many addresses come by.

use std::{fmt::Display, hash::Hash, net::IpAddr, num::NonZeroU32, sync::Arc};

use governor::{DefaultKeyedRateLimiter, Quota, clock::Clock};

use crate::{error::ApiError, warm::Warm};

/// GCRA in Redis, one bucket per key, the same for every node: the
/// theoretical arrival time is kept in milliseconds of Redis' own clock
/// (`TIME`), so nodes' clocks never disagree about it. Returns
/// `{allowed, retry_after_ms, remaining}`.
const GCRA_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_until = now + burst * interval
if new_tat > allow_until then
  return {0, new_tat - allow_until, 0}
end
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now + 1000)
return {1, 0, math.floor((allow_until - new_tat) / interval)}
"#;

/// Where a shared limiter keeps its buckets.
#[derive(Clone)]
struct Shared {
    warm: Warm,
    /// `rl:<deployment>:<limit name>:`: nodes of one deployment share it.
    prefix: String,
    script: Arc<redis::Script>,
}

#[derive(Clone)]
pub struct Limiter<K: Hash + Eq + Clone> {
    /// `None`: no limit.
    inner: Option<Arc<DefaultKeyedRateLimiter<K>>>,
    /// Redis, when configured: the limit holds across nodes. The in-process
    /// bucket stands in while Redis does not answer (per node then).
    shared: Option<Shared>,
    per_minute: u32,
}

impl<K: Hash + Eq + Clone + Display> Limiter<K> {
    /// `per_minute` requests a minute per key, in bursts of up to that many.
    /// 0: no limit at all.
    pub fn per_minute(per_minute: u32) -> Limiter<K> {
        Limiter {
            inner: NonZeroU32::new(per_minute)
                .map(|n| Arc::new(governor::RateLimiter::keyed(Quota::per_minute(n)))),
            shared: None,
            per_minute,
        }
    }

    /// The same limit, kept in Redis for every node of the deployment.
    pub fn shared(per_minute: u32, warm: &Warm, deployment: &str, name: &str) -> Limiter<K> {
        let mut l = Self::per_minute(per_minute);
        if per_minute > 0 {
            l.shared = Some(Shared {
                warm: warm.clone(),
                prefix: format!("rl:{deployment}:{name}:"),
                script: Arc::new(redis::Script::new(GCRA_LUA)),
            });
        }
        l
    }

    fn refused(&self, retry_after_ms: u64) -> ApiError {
        ApiError::RateLimited {
            retry_after_secs: retry_after_ms.div_ceil(1000).max(1),
            limit: Some(self.per_minute),
        }
    }

    pub async fn check(&self, key: &K) -> Result<(), ApiError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        if let Some(shared) = &self.shared {
            let interval = (60_000 / self.per_minute.max(1) as u64).max(1);
            let r: redis::RedisResult<(i64, i64, i64)> = shared
                .script
                .key(format!("{}{key}", shared.prefix))
                .arg(interval)
                .arg(self.per_minute)
                .invoke_async(&mut shared.warm.conn())
                .await;
            match r {
                Ok((1, _, _)) => return Ok(()),
                Ok((_, wait_ms, _)) => return Err(self.refused(wait_ms.max(0) as u64)),
                Err(e) => {
                    tracing::debug!(error = %e, "rate limit store unavailable; limiting on this node");
                }
            }
        }
        inner.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            self.refused(wait.as_millis() as u64)
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
    /// Checkouts per buyer (e-mail address, lower case), whatever address
    /// they come from.
    pub buyer: Limiter<String>,
}

impl Limits {
    /// Per-node limits (no Redis).
    pub fn new(sensitive_per_minute: u32, storefront_per_minute: u32) -> Limits {
        Limits {
            sensitive: Limiter::per_minute(sensitive_per_minute.max(1)),
            storefront: Limiter::per_minute(storefront_per_minute),
            buyer: Limiter::per_minute(0),
        }
    }

    /// The limits from the configuration: shared through Redis across the
    /// deployment's nodes when `warm` is given (`deployment` names the
    /// deployment, e.g. its database, so two deployments on one Redis do
    /// not share buckets).
    pub fn from_config(c: &crate::Config, warm: Option<&Warm>, deployment: &str) -> Limits {
        match warm {
            Some(w) => Limits {
                sensitive: Limiter::shared(
                    c.sensitive_per_minute.max(1),
                    w,
                    deployment,
                    "sensitive",
                ),
                storefront: Limiter::shared(c.storefront_per_minute, w, deployment, "storefront"),
                buyer: Limiter::shared(c.buyer_per_minute, w, deployment, "buyer"),
            },
            None => Limits {
                sensitive: Limiter::per_minute(c.sensitive_per_minute.max(1)),
                storefront: Limiter::per_minute(c.storefront_per_minute),
                buyer: Limiter::per_minute(c.buyer_per_minute),
            },
        }
    }

    pub fn forget_idle(&self) -> usize {
        self.sensitive.forget_idle() + self.storefront.forget_idle() + self.buyer.forget_idle()
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_key_past_its_quota_is_told_when_to_retry_and_others_are_not() {
        let l = super::Limiter::<u8>::per_minute(3);
        for _ in 0..3 {
            assert!(l.check(&1).await.is_ok());
        }
        match l.check(&1).await {
            Err(crate::ApiError::RateLimited {
                retry_after_secs,
                limit,
            }) => {
                assert!((1..=60).contains(&retry_after_secs));
                assert_eq!(limit, Some(3));
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
        assert!(l.check(&2).await.is_ok());
        let off = super::Limiter::<u8>::per_minute(0);
        for _ in 0..1000 {
            assert!(off.check(&1).await.is_ok());
        }
    }

    /// Two limiters sharing one Redis bucket (two nodes) allow the quota
    /// between them, not each.
    #[tokio::test]
    async fn nodes_sharing_redis_share_the_quota() {
        let Ok(url) = std::env::var("VOELGOED_TEST_REDIS_URL") else {
            if std::env::var("CI").is_ok() {
                panic!("VOELGOED_TEST_REDIS_URL is unset under CI");
            }
            eprintln!("VOELGOED_TEST_REDIS_URL unset: shared limit not tested here");
            return;
        };
        let warm = crate::warm::Warm::connect(&url).await.expect("redis");
        let deployment = uuid::Uuid::now_v7().simple().to_string();
        let a = super::Limiter::<String>::shared(5, &warm, &deployment, "test");
        let b = super::Limiter::<String>::shared(5, &warm, &deployment, "test");
        let key = "10.0.0.1".to_string();
        let mut allowed = 0;
        for i in 0..12 {
            let l = if i % 2 == 0 { &a } else { &b };
            if l.check(&key).await.is_ok() {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5);
        // Another deployment on the same Redis is not affected.
        let other = super::Limiter::<String>::shared(5, &warm, "elsewhere-x", "test");
        assert!(other.check(&uuid::Uuid::now_v7().to_string()).await.is_ok());
    }
}
