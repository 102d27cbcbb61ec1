//! Inventory counters: what is left of each ticket type, kept in the hot
//! tier (one process) or the warm tier (Redis, shared by every node).
//!
//! Invariant: counter = capacity − Σ quantity of holds that are `active` or
//! `consumed` in the database. A reservation is one atomic step (a mutex
//! section in process, a Lua script in Redis) that takes every item or none,
//! so no interleaving can oversell. A missing counter is loaded from the
//! database once; a cache miss falls through, it never guesses.

use std::{collections::HashMap, sync::Mutex};

use kernel::{
    ApiError, Kernel,
    ids::{EventId, OrgId, TicketTypeId},
    warm::Warm,
};

use super::{
    error::{Error, Result},
    store,
};
use crate::{App, identity::Tenant};

pub struct Inventory {
    tier: Tier,
    /// Which org and event each counter this node loaded belongs to (the
    /// in-process tier's counters, for reconciliation).
    known: dashmap::DashMap<TicketTypeId, (OrgId, EventId)>,
    /// Serialises loading a counter with releasing into it, so a release
    /// cannot slip between the database read and the insert of a counter.
    load_lock: tokio::sync::Mutex<()>,
}

enum Tier {
    Memory(Mutex<HashMap<TicketTypeId, i64>>),
    Redis(Box<RedisTier>),
}

struct RedisTier {
    warm: Warm,
    reserve: redis::Script,
    release: redis::Script,
}

pub enum Reserve {
    Taken,
    SoldOut(TicketTypeId),
}

const RESERVE_LUA: &str = r#"
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if not v then return -i end
  if tonumber(v) < tonumber(ARGV[i]) then return i end
end
for i, k in ipairs(KEYS) do redis.call('DECRBY', k, ARGV[i]) end
return 0
"#;

/// Sets a counter only if it still holds what the reconciler saw.
const REPAIR_LUA: &str = r#"
local v = redis.call('GET', KEYS[1])
if v and tonumber(v) == tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"#;

const RELEASE_LUA: &str = r#"
for i, k in ipairs(KEYS) do
  if redis.call('EXISTS', k) == 1 then redis.call('INCRBY', k, ARGV[i]) end
end
return 0
"#;

fn key(org: OrgId, event: EventId, tt: TicketTypeId) -> String {
    // The {ev:..} hash tag keeps one event's counters on one cluster slot.
    format!("org:{org}:{{ev:{event}}}:inv:{tt}")
}

/// The org, event and ticket type of a counter's key.
fn parse_key(k: &str) -> Option<(OrgId, EventId, TicketTypeId)> {
    let rest = k.strip_prefix("org:")?;
    let (org, rest) = rest.split_once(":{ev:")?;
    let (event, rest) = rest.split_once("}:inv:")?;
    Some((org.parse().ok()?, event.parse().ok()?, rest.parse().ok()?))
}

/// Redis unreachable: the buyer is asked to retry (503), never told a lie.
fn redis_err(e: redis::RedisError) -> Error {
    tracing::warn!(error = %e, "warm tier unavailable for inventory");
    Error::WarmTierDown
}

fn poisoned() -> Error {
    Error::Api(ApiError::internal("inventory lock poisoned"))
}

impl Inventory {
    pub fn new(kernel: &Kernel) -> Inventory {
        let tier = match &kernel.warm {
            Some(w) => Tier::Redis(Box::new(RedisTier {
                warm: w.clone(),
                reserve: redis::Script::new(RESERVE_LUA),
                release: redis::Script::new(RELEASE_LUA),
            })),
            None => Tier::Memory(Mutex::new(HashMap::new())),
        };
        Inventory {
            tier,
            known: dashmap::DashMap::new(),
            load_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Takes every item's quantity, or nothing.
    pub async fn reserve(
        &self,
        app: &App,
        t: &Tenant,
        event: EventId,
        items: &[(TicketTypeId, i64)],
    ) -> Result<Reserve> {
        let org = t.org();
        for _ in 0..3 {
            let missing = match &self.tier {
                Tier::Memory(map) => {
                    let mut map = map.lock().map_err(|_| poisoned())?;
                    let missing: Vec<TicketTypeId> = items
                        .iter()
                        .filter(|(t, _)| !map.contains_key(t))
                        .map(|(t, _)| *t)
                        .collect();
                    if missing.is_empty() {
                        if let Some((t, _)) = items
                            .iter()
                            .find(|(t, q)| map.get(t).copied().unwrap_or(0) < *q)
                        {
                            return Ok(Reserve::SoldOut(*t));
                        }
                        for (t, q) in items {
                            if let Some(v) = map.get_mut(t) {
                                *v -= q;
                            }
                        }
                        return Ok(Reserve::Taken);
                    }
                    missing
                }
                Tier::Redis(r) => {
                    let (warm, reserve) = (&r.warm, &r.reserve);
                    let mut inv = reserve.prepare_invoke();
                    for (t, q) in items {
                        inv.key(key(org, event, *t)).arg(*q);
                    }
                    let r: i64 = inv
                        .invoke_async(&mut warm.conn())
                        .await
                        .map_err(redis_err)?;
                    match r {
                        0 => return Ok(Reserve::Taken),
                        i if i > 0 => return Ok(Reserve::SoldOut(items[(i - 1) as usize].0)),
                        i => vec![items[(-i - 1) as usize].0],
                    }
                }
            };
            self.load(app, t, event, &missing).await?;
        }
        Err(Error::WarmTierDown)
    }

    /// Gives quantities back (an expired, released or failed hold; counters
    /// of many tenants are released by the sweepers, hence the bare org).
    pub async fn release(
        &self,
        org: OrgId,
        event: EventId,
        items: &[(TicketTypeId, i64)],
    ) -> Result<()> {
        let _guard = self.load_lock.lock().await;
        self.release_locked(org, event, items).await
    }

    async fn release_locked(
        &self,
        org: OrgId,
        event: EventId,
        items: &[(TicketTypeId, i64)],
    ) -> Result<()> {
        match &self.tier {
            Tier::Memory(map) => {
                let mut map = map.lock().map_err(|_| poisoned())?;
                for (t, q) in items {
                    // A counter not loaded yet will be read from the
                    // database, which already counts this release.
                    if let Some(v) = map.get_mut(t) {
                        *v += q;
                    }
                }
                Ok(())
            }
            Tier::Redis(r) => {
                let (warm, release) = (&r.warm, &r.release);
                let mut inv = release.prepare_invoke();
                for (t, q) in items {
                    inv.key(key(org, event, *t)).arg(*q);
                }
                let _: i64 = inv
                    .invoke_async(&mut warm.conn())
                    .await
                    .map_err(redis_err)?;
                Ok(())
            }
        }
    }

    /// What is left of each ticket type, loading counters not yet warm.
    pub async fn remaining(
        &self,
        app: &App,
        t: &Tenant,
        event: EventId,
        types: &[TicketTypeId],
    ) -> Result<Vec<i64>> {
        let org = t.org();
        for _ in 0..3 {
            let found: Vec<Option<i64>> = match &self.tier {
                Tier::Memory(map) => {
                    let map = map.lock().map_err(|_| poisoned())?;
                    types.iter().map(|t| map.get(t).copied()).collect()
                }
                Tier::Redis(r) => {
                    let warm = &r.warm;
                    if types.is_empty() {
                        return Ok(Vec::new());
                    }
                    let keys: Vec<String> = types.iter().map(|t| key(org, event, *t)).collect();
                    redis::cmd("MGET")
                        .arg(&keys)
                        .query_async(&mut warm.conn())
                        .await
                        .map_err(redis_err)?
                }
            };
            let missing: Vec<TicketTypeId> = types
                .iter()
                .zip(&found)
                .filter(|(_, v)| v.is_none())
                .map(|(t, _)| *t)
                .collect();
            if missing.is_empty() {
                return Ok(found.into_iter().map(|v| v.unwrap_or(0).max(0)).collect());
            }
            self.load(app, t, event, &missing).await?;
        }
        Err(Error::WarmTierDown)
    }

    /// Loads counters from the ledger: the ticket type's capacity (from the
    /// events slice) less what active and consumed holds took.
    async fn load(
        &self,
        app: &App,
        tenant: &Tenant,
        event: EventId,
        types: &[TicketTypeId],
    ) -> Result<()> {
        let org = tenant.org();
        let catalog = crate::events::catalog(app, tenant, event)
            .await?
            .ok_or(Error::NotFound)?;
        let _guard = self.load_lock.lock().await;
        for t in types {
            self.known.insert(*t, (org, event));
            let capacity = catalog.ticket_type(*t).ok_or(Error::NotFound)?.capacity;
            let taken = store::taken_from_ledger(app.db(), tenant, *t).await?;
            let left = capacity - taken;
            match &self.tier {
                Tier::Memory(map) => {
                    let mut map = map.lock().map_err(|_| poisoned())?;
                    map.entry(*t).or_insert(left);
                }
                Tier::Redis(r) => {
                    let warm = &r.warm;
                    let _: Option<String> = redis::cmd("SET")
                        .arg(key(org, event, *t))
                        .arg(left)
                        .arg("NX")
                        .query_async(&mut warm.conn())
                        .await
                        .map_err(redis_err)?;
                }
            }
        }
        Ok(())
    }

    /// Every counter in the tier: this node's in-process ones, or every
    /// node's in Redis.
    pub async fn counters(&self) -> Result<Vec<(OrgId, EventId, TicketTypeId)>> {
        match &self.tier {
            Tier::Memory(_) => Ok(self
                .known
                .iter()
                .map(|e| (e.value().0, e.value().1, *e.key()))
                .collect()),
            Tier::Redis(r) => {
                let mut conn = r.warm.conn();
                let mut cursor: u64 = 0;
                let mut out = Vec::new();
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg("org:*:inv:*")
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut conn)
                        .await
                        .map_err(redis_err)?;
                    out.extend(keys.iter().filter_map(|k| parse_key(k)));
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                Ok(out)
            }
        }
    }

    /// A counter's value, if it is loaded.
    pub async fn read(&self, org: OrgId, event: EventId, tt: TicketTypeId) -> Result<Option<i64>> {
        match &self.tier {
            Tier::Memory(map) => Ok(map.lock().map_err(|_| poisoned())?.get(&tt).copied()),
            Tier::Redis(r) => redis::cmd("GET")
                .arg(key(org, event, tt))
                .query_async(&mut r.warm.conn())
                .await
                .map_err(redis_err),
        }
    }

    /// Sets a counter to `to` if it still holds `seen`; false if it moved.
    pub async fn repair(
        &self,
        org: OrgId,
        event: EventId,
        tt: TicketTypeId,
        seen: i64,
        to: i64,
    ) -> Result<bool> {
        match &self.tier {
            Tier::Memory(map) => {
                let mut map = map.lock().map_err(|_| poisoned())?;
                match map.get_mut(&tt) {
                    Some(v) if *v == seen => {
                        *v = to;
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            }
            Tier::Redis(r) => {
                let done: i64 = redis::Script::new(REPAIR_LUA)
                    .key(key(org, event, tt))
                    .arg(seen)
                    .arg(to)
                    .invoke_async(&mut r.warm.conn())
                    .await
                    .map_err(redis_err)?;
                Ok(done == 1)
            }
        }
    }

    /// Releases what `release` marks released in the database (only one
    /// node wins each hold or order) and gives its quantities back, with no
    /// counter load in between.
    pub async fn release_many<F, Fut>(&self, release: F) -> Result<usize>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<store::Released>>>,
    {
        let _guard = self.load_lock.lock().await;
        let released = release().await?;
        let n = released.len();
        for r in released {
            self.release_locked(r.org, r.event, &r.items).await?;
        }
        Ok(n)
    }
}
