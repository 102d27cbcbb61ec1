//! Inventory counters: what is left of each ticket type, kept in the hot
//! tier (one process) or the warm tier (Redis, shared by every node), with
//! the ledger (the holds table) as the arbiter when Redis is away.
//!
//! Counters are kept per ticket type and per quota (a capacity several
//! ticket types share, owned by the events slice): a hold of a ticket type
//! draws on its type's counter and on the counter of every quota the type
//! belongs to, all in one atomic step.
//!
//! Invariant: counter = capacity − Σ quantity of holds that are `active` or
//! `consumed` in the database (of the ticket type, or of the quota's types). A reservation is one atomic step (a mutex
//! section in process, a Lua script in Redis) that takes every item or none,
//! so no interleaving can oversell. A missing counter is loaded from the
//! database once; a cache miss falls through, it never guesses.
//!
//! Redis counters belong to an epoch (docs/decisions.md, "Losing Redis
//! mid-sale"): a hold reserved against them is written only while the
//! deployment's epoch (a row in the database) still stands, share-locking it
//! in the write's transaction. With Redis unreachable a hold is taken from
//! the ledger instead, in a transaction that locks that row exclusively and
//! moves the epoch on: holds reserved in Redis before and written after are
//! refused (and retried), and Redis' counters are never trusted again — the
//! next epoch's are loaded from the ledger, once Redis answers.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use kernel::{
    ApiError, Kernel, Tx,
    ids::{EventId, OrgId, QuotaId, TicketTypeId, VoucherId},
    warm::Warm,
};

use super::{
    error::{Error, Result},
    store,
};
use crate::{
    App,
    events::Catalog,
    identity::{self, Tenant},
};

/// What a counter counts down: a ticket type's own capacity, a quota's, or
/// a voucher's uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counter {
    Type(TicketTypeId),
    Quota(QuotaId),
    Voucher(VoucherId),
}

/// A voucher a hold spends, and how many uses (tickets it discounts).
pub type VoucherUse = Option<(VoucherId, i64)>;

impl std::fmt::Display for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Counter::Type(tt) => write!(f, "{tt}"),
            Counter::Quota(q) => write!(f, "q:{q}"),
            Counter::Voucher(v) => write!(f, "v:{v}"),
        }
    }
}

/// The counters items take from (or give back to): each item's ticket
/// type, each quota with some of them (as `catalog` has them), and the
/// voucher's uses — except that items of the type `reserved` (the
/// voucher's reservation, which the type and its quotas gave when the
/// voucher was made) count only against the voucher's uses.
fn counters_reserving(
    catalog: Option<&Catalog>,
    items: &[(TicketTypeId, i64)],
    voucher: VoucherUse,
    reserved: Option<TicketTypeId>,
) -> Vec<(Counter, i64)> {
    let items: Vec<(TicketTypeId, i64)> = items
        .iter()
        .filter(|(tt, _)| Some(*tt) != reserved)
        .copied()
        .collect();
    let mut out: Vec<(Counter, i64)> = items
        .iter()
        .map(|(tt, q)| (Counter::Type(*tt), *q))
        .collect();
    if let Some(catalog) = catalog {
        for quota in &catalog.quotas {
            let q: i64 = items
                .iter()
                .filter(|(tt, _)| quota.ticket_type_ids.contains(tt))
                .map(|(_, q)| *q)
                .sum();
            if q > 0 {
                out.push((Counter::Quota(quota.id), q));
            }
        }
    }
    if let Some((v, uses)) = voucher
        && uses > 0
    {
        out.push((Counter::Voucher(v), uses));
    }
    out
}

/// The ticket type to name when `counter` ran out for `items`.
fn sold_out_type(
    catalog: &Catalog,
    items: &[(TicketTypeId, i64)],
    counter: Counter,
) -> TicketTypeId {
    match counter {
        Counter::Type(tt) => tt,
        Counter::Quota(q) => items
            .iter()
            .find(|(tt, _)| {
                catalog
                    .quota(q)
                    .is_some_and(|q| q.ticket_type_ids.contains(tt))
            })
            .map(|(tt, _)| *tt)
            .unwrap_or(items[0].0),
        Counter::Voucher(_) => items[0].0,
    }
}

pub struct Inventory {
    tier: Tier,
    /// Which org and event each counter this node loaded belongs to (the
    /// in-process tier's counters, for reconciliation).
    known: dashmap::DashMap<Counter, (OrgId, EventId)>,
    /// Serialises loading a counter with releasing into it, so a release
    /// cannot slip between the database read and the insert of a counter.
    load_lock: tokio::sync::Mutex<()>,
    /// One hold from the ledger at a time on this node: they are serialised
    /// by the database anyway, and each waiting there would hold a pooled
    /// connection other requests (checkouts) need.
    ledger_turn: tokio::sync::Mutex<()>,
}

enum Tier {
    Memory(Mutex<HashMap<Counter, i64>>),
    Redis(Box<RedisTier>),
}

struct RedisTier {
    warm: Warm,
    reserve: redis::Script,
    release: redis::Script,
    load: redis::Script,
    epoch_script: redis::Script,
    /// The epoch this node reserves in; 0 until learnt.
    epoch: AtomicI64,
    /// Where Redis keeps its epoch (see [`epoch_key`]).
    epoch_key: tokio::sync::OnceCell<String>,
    /// One node learns a new epoch at a time.
    sync: tokio::sync::Mutex<()>,
    /// Until when (ms after `started`) Redis is taken as away: holds go to
    /// the ledger without waiting on it.
    down_until: AtomicI64,
    started: Instant,
}

/// What a reservation did.
pub enum Reserve {
    /// Taken from the counters of this Redis epoch (`None`: the process's
    /// own counters, or the ledger). A hold reserved in an epoch must be
    /// written under [`store::epoch_guard`].
    Taken(Option<i64>),
    SoldOut(TicketTypeId),
    /// The voucher has no uses left for this hold.
    VoucherSpent,
    /// Redis did not answer: take from the ledger ([`Inventory::reserve_in_tx`]).
    Unavailable,
}

/// What a reservation did, counter by counter.
enum Taking {
    Taken(Option<i64>),
    SoldOut(Counter),
    Unavailable,
}

/// How long a Redis call may take before Redis is taken as away.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
/// How long Redis is left alone after it failed.
const REDIS_BACKOFF_MS: i64 = 1_000;

const RESERVE_LUA: &str = r#"
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if not v then return -i end
  if tonumber(v) < tonumber(ARGV[i]) then return i end
end
for i, k in ipairs(KEYS) do redis.call('DECRBY', k, ARGV[i]) end
return 0
"#;

/// Loads a counter (KEYS[2]) of epoch ARGV[1] with ARGV[2] if Redis still
/// keeps that epoch (KEYS[1]); -1 when it does not (restarted, moved on).
const LOAD_LUA: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[2], ARGV[2], 'NX')
return 0
"#;

/// The epoch Redis keeps (KEYS[1]), raised to ARGV[1] when behind. When
/// Redis keeps none: -1 if ARGV[2] is "adopt" (it lost its data: counters of
/// the current epoch may be gone with reservations in flight, so the epoch
/// must move), else it keeps ARGV[1] from now. One ahead of ARGV[1] is
/// returned as it is (the caller moves the database's epoch past it).
const EPOCH_LUA: &str = r#"
local s = redis.call('GET', KEYS[1])
if not s and ARGV[2] == 'adopt' then return -1 end
if (not s) or tonumber(s) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return tonumber(ARGV[1])
end
return tonumber(s)
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

/// The key of the epoch whose counters Redis keeps, one per deployment
/// (named by a random name its database keeps: two deployments may share a
/// Redis). The warm tier is one Redis server, not a cluster.
async fn epoch_key(app: &App) -> Result<String> {
    let db = app.db();
    let name: String = kernel::db_run!(db, p => sqlx::query_scalar("SELECT deployment FROM inventory_epoch WHERE id = 1").fetch_one(p).await)?;
    Ok(format!("inv:epoch:{name}"))
}

fn key(org: OrgId, event: EventId, epoch: i64, c: Counter) -> String {
    // The {ev:..} hash tag keeps one event's counters on one slot.
    format!("org:{org}:{{ev:{event}}}:inv:{epoch}:{c}")
}

/// The org, event, epoch and counter of a counter's key.
fn parse_key(k: &str) -> Option<(OrgId, EventId, i64, Counter)> {
    let rest = k.strip_prefix("org:")?;
    let (org, rest) = rest.split_once(":{ev:")?;
    let (event, rest) = rest.split_once("}:inv:")?;
    let (epoch, c) = rest.split_once(':')?;
    let c = if let Some(q) = c.strip_prefix("q:") {
        Counter::Quota(q.parse().ok()?)
    } else if let Some(v) = c.strip_prefix("v:") {
        Counter::Voucher(v.parse().ok()?)
    } else {
        Counter::Type(c.parse().ok()?)
    };
    Some((
        org.parse().ok()?,
        event.parse().ok()?,
        epoch.parse().ok()?,
        c,
    ))
}

/// Redis unreachable: the caller falls back to the ledger (reservations)
/// or says so (503), never tells a lie.
fn redis_err(e: redis::RedisError) -> Error {
    tracing::warn!(error = %e, "warm tier unavailable for inventory");
    Error::WarmTierDown
}

/// A Redis call, bounded by [`REDIS_TIMEOUT`].
async fn bounded<T>(f: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T> {
    match tokio::time::timeout(REDIS_TIMEOUT, f).await {
        Ok(r) => r.map_err(redis_err),
        Err(_) => {
            tracing::warn!("warm tier did not answer in time");
            Err(Error::WarmTierDown)
        }
    }
}

fn poisoned() -> Error {
    Error::Api(ApiError::internal("inventory lock poisoned"))
}

impl RedisTier {
    fn now_ms(&self) -> i64 {
        self.started.elapsed().as_millis() as i64
    }

    fn is_down(&self) -> bool {
        self.now_ms() < self.down_until.load(Ordering::Relaxed)
    }

    fn mark_down(&self) {
        if !self.is_down() {
            metrics::counter!("voelgoed_inventory_redis_down_total").increment(1);
        }
        self.down_until
            .store(self.now_ms() + REDIS_BACKOFF_MS, Ordering::Relaxed);
    }

    async fn epoch_key(&self, app: &App) -> Result<&str> {
        self.epoch_key
            .get_or_try_init(|| epoch_key(app))
            .await
            .map(String::as_str)
    }

    /// This node's epoch, learnt on first use.
    async fn epoch(&self, app: &App) -> Result<i64> {
        match self.epoch.load(Ordering::Acquire) {
            0 => self.learn(app, 0).await,
            e => Ok(e),
        }
    }

    /// Learns the current epoch after `seen` proved stale (a write refused,
    /// a load Redis would not take): the database's, raised in Redis; or a
    /// new one when Redis lost its data.
    async fn learn(&self, app: &App, seen: i64) -> Result<i64> {
        let _one = self.sync.lock().await;
        let now = self.epoch.load(Ordering::Acquire);
        if now != seen {
            return Ok(now);
        }
        let epoch_key = self.epoch_key(app).await?;
        let in_db = store::inventory_epoch(app.db()).await?;
        let kept: i64 = bounded(
            self.epoch_script
                .key(epoch_key)
                .arg(in_db)
                .arg("adopt")
                .invoke_async(&mut self.warm.conn()),
        )
        .await?;
        // Redis ahead: another node may have moved the epoch on since the
        // read above; only an epoch the database still never had counts.
        let in_db = if kept > in_db {
            store::inventory_epoch(app.db()).await?
        } else {
            in_db
        };
        let epoch = if kept < 0 || kept > in_db {
            // Redis lost its counters: reservations made against them may
            // still be on their way to the database. A new epoch fences
            // them off before any counter is loaded again. (Or Redis keeps
            // an epoch this database never had — the database was restored
            // or made anew — and its counters count nothing here: the
            // epoch moves past it.)
            let mut tx = app.db().begin().await?;
            let bumped = store::bump_epoch_past(&mut tx, kept).await?;
            tx.commit().await?;
            tracing::info!(
                epoch = bumped,
                "Redis kept no inventory epoch (new, or restarted): counters are loaded from the ledger in a new one"
            );
            bounded(
                self.epoch_script
                    .key(epoch_key)
                    .arg(bumped)
                    .arg("raise")
                    .invoke_async(&mut self.warm.conn()),
            )
            .await?
        } else {
            kept
        };
        self.epoch.store(epoch, Ordering::Release);
        Ok(epoch)
    }
}

impl Inventory {
    pub fn new(kernel: &Kernel) -> Inventory {
        let tier = match &kernel.warm {
            Some(w) => Tier::Redis(Box::new(RedisTier {
                warm: w.clone(),
                reserve: redis::Script::new(RESERVE_LUA),
                release: redis::Script::new(RELEASE_LUA),
                load: redis::Script::new(LOAD_LUA),
                epoch_script: redis::Script::new(EPOCH_LUA),
                epoch: AtomicI64::new(0),
                epoch_key: tokio::sync::OnceCell::new(),
                sync: tokio::sync::Mutex::new(()),
                down_until: AtomicI64::new(0),
                started: Instant::now(),
            })),
            None => Tier::Memory(Mutex::new(HashMap::new())),
        };
        Inventory {
            tier,
            known: dashmap::DashMap::new(),
            load_lock: tokio::sync::Mutex::new(()),
            ledger_turn: tokio::sync::Mutex::new(()),
        }
    }

    /// Takes every item's quantity from its ticket type and each of its
    /// quotas, or nothing. `Unavailable` when Redis does not answer (the
    /// caller takes from the ledger instead).
    pub async fn reserve(
        &self,
        app: &App,
        t: &Tenant,
        event: EventId,
        items: &[(TicketTypeId, i64)],
        voucher: VoucherUse,
    ) -> Result<Reserve> {
        Ok(self.reserve_counted(app, t, event, items, voucher).await?.0)
    }

    /// [`Inventory::reserve`], with the counters it took from (when it took:
    /// exactly what [`Inventory::give_back`] gives back if the hold is not
    /// written), and the ticket type it took from the voucher's reservation
    /// instead (the hold records it, and its write is guarded by the
    /// reservation standing).
    pub async fn reserve_counted(
        &self,
        app: &App,
        t: &Tenant,
        event: EventId,
        items: &[(TicketTypeId, i64)],
        voucher: VoucherUse,
    ) -> Result<(Reserve, Vec<(Counter, i64)>, Option<TicketTypeId>)> {
        let catalog = crate::events::catalog(app, t, event)
            .await?
            .ok_or(Error::NotFound)?;
        let reserved = voucher.and_then(|(v, _)| catalog.reserved_by(v));
        let counters = counters_reserving(Some(&catalog), items, voucher, reserved);
        let got = match &self.tier {
            Tier::Memory(map) => self.reserve_memory(map, app, t, event, &counters).await,
            Tier::Redis(r) => {
                if r.is_down() {
                    return Ok((Reserve::Unavailable, counters, reserved));
                }
                match self.reserve_warm(app, r, t, event, &counters).await {
                    Err(Error::WarmTierDown) => {
                        r.mark_down();
                        Ok(Taking::Unavailable)
                    }
                    other => other,
                }
            }
        }?;
        let got = match got {
            Taking::Taken(epoch) => Reserve::Taken(epoch),
            Taking::SoldOut(Counter::Voucher(_)) => Reserve::VoucherSpent,
            Taking::SoldOut(c) => Reserve::SoldOut(sold_out_type(&catalog, items, c)),
            Taking::Unavailable => Reserve::Unavailable,
        };
        Ok((got, counters, reserved))
    }

    /// Takes `n` tickets of `tt` (and of its quotas) for reserved vouchers
    /// and writes `writes` (the vouchers, `reserved_for` set) with them, or
    /// nothing: 409 when fewer are left. As a hold is taken: from the
    /// counters, the write guarded by their epoch; from the ledger while
    /// Redis is away.
    pub async fn reserve_for_vouchers(
        &self,
        app: &App,
        t: &Tenant,
        event: EventId,
        tt: TicketTypeId,
        n: i64,
        writes: Vec<kernel::Stmt>,
    ) -> Result<()> {
        let items = [(tt, n)];
        let too_few = || {
            Error::Api(ApiError::Conflict(format!(
                "fewer than {n} tickets of the ticket type are left to reserve"
            )))
        };
        for _ in 0..3 {
            let (got, counters, _) = self.reserve_counted(app, t, event, &items, None).await?;
            let epoch = match got {
                Reserve::SoldOut(_) | Reserve::VoucherSpent => return Err(too_few()),
                Reserve::Unavailable => break,
                Reserve::Taken(epoch) => epoch,
            };
            let queued = match epoch {
                Some(e) => {
                    app.db()
                        .enqueue_guarded(store::epoch_guard(e), writes.clone())
                        .await
                }
                None => app.db().enqueue_writes(writes.clone()).await,
            };
            let written = match queued {
                Ok(ticket) => ticket.await,
                Err(e) => Err(e),
            };
            match written {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    self.give_back(t.org(), event, epoch, &counters).await.ok();
                    self.refused(app, epoch.unwrap_or(0)).await?;
                }
                Err(e) => {
                    self.give_back(t.org(), event, epoch, &counters).await.ok();
                    return Err(e.into());
                }
            }
        }
        let _turn = self.ledger_turn().await;
        let mut tx = app.db().begin().await?;
        match self
            .reserve_in_tx(app, &mut tx, t, event, &items, None)
            .await?
            .0
        {
            Reserve::SoldOut(_) | Reserve::VoucherSpent => {
                tx.rollback().await?;
                Err(too_few())
            }
            Reserve::Taken(_) | Reserve::Unavailable => {
                tx.run_all(writes).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// Ends the reservations of vouchers whose time is up (at most `limit`,
    /// any tenant's): what each did not use goes back on sale. Each ends
    /// once (a conditional update), in a transaction that first waits for
    /// the guarded writes under way (the epoch's table locked): a hold
    /// written before is among the live holds whose mark it clears (they
    /// count as the type's own from now; one released meanwhile keeps its
    /// mark and gives back to the reservation, which this ending returns),
    /// and one reserved against the reservation but written after is
    /// refused by its guard and made again as an ordinary one. The unused
    /// are given to the counters before the commit, as a raised capacity is:
    /// a counter loaded meanwhile starts low, never counts them twice. How
    /// many ended.
    pub async fn end_reservations(&self, app: &App, now: i64, limit: i64) -> Result<usize> {
        let due = store::reservations_due(app.db(), now, limit).await?;
        let mut ended = 0;
        for (org, event, v, tt, max) in due {
            match self.end_reservation(app, org, event, v, tt, max).await {
                Ok(true) => ended += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, voucher = %v, "a voucher's reservation did not end (tried again)")
                }
            }
        }
        Ok(ended)
    }

    async fn end_reservation(
        &self,
        app: &App,
        org: OrgId,
        event: EventId,
        v: VoucherId,
        tt: TicketTypeId,
        max: i64,
    ) -> Result<bool> {
        let tenant = crate::identity::upkeep_tenant(app, org).await?;
        let catalog = match &tenant {
            Some(t) => crate::events::catalog(app, t, event).await?,
            None => None,
        };
        let _guard = self.load_lock.lock().await;
        let epoch = match &self.tier {
            Tier::Redis(r) => Some(r.epoch(app).await?),
            Tier::Memory(_) => None,
        };
        let mut tx = app.db().begin().await?;
        store::lock_epoch(&mut tx).await?;
        let Some(uses) = store::end_reservation(&mut tx, org, v).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        let back = if max > uses {
            counters_reserving(catalog.as_deref(), &[(tt, max - uses)], None, None)
        } else {
            Vec::new()
        };
        self.commit_grown(tx, org, event, epoch, &back).await?;
        if let Some(t) = &tenant {
            crate::events::invalidate(app, t, event).await;
        }
        tracing::info!(voucher = %v, unused = max - uses, "a voucher's reservation ended");
        Ok(true)
    }

    /// Commits `tx`, which makes more available, with `grow` added to the
    /// counters first (under `load_lock`): a counter loaded meanwhile starts
    /// from the ledger before the commit (low, the safe side), one loaded
    /// after finds this one there already — none counts it twice. Taken
    /// back if the commit fails; not added (Redis away), the counters stay
    /// low until the reconciliation.
    async fn commit_grown(
        &self,
        tx: Tx,
        org: OrgId,
        event: EventId,
        epoch: Option<i64>,
        grow: &[(Counter, i64)],
    ) -> Result<()> {
        let grown = !grow.is_empty()
            && match self.release_locked(org, event, epoch, grow).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "more made available; its counters were not raised");
                    false
                }
            };
        if let Err(e) = tx.commit().await {
            if grown {
                let back: Vec<(Counter, i64)> = grow.iter().map(|(c, q)| (*c, -q)).collect();
                let _ = self.release_locked(org, event, epoch, &back).await;
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Gives back exactly the counters a reservation took (its hold not
    /// written), to the epoch it took them in.
    pub async fn give_back(
        &self,
        org: OrgId,
        event: EventId,
        epoch: Option<i64>,
        counters: &[(Counter, i64)],
    ) -> Result<()> {
        let _guard = self.load_lock.lock().await;
        self.release_locked(org, event, epoch, counters).await
    }

    async fn reserve_memory(
        &self,
        map: &Mutex<HashMap<Counter, i64>>,
        app: &App,
        t: &Tenant,
        event: EventId,
        items: &[(Counter, i64)],
    ) -> Result<Taking> {
        for _ in 0..3 {
            let missing: Vec<Counter> = {
                let mut map = map.lock().map_err(|_| poisoned())?;
                let missing: Vec<Counter> = items
                    .iter()
                    .filter(|(t, _)| !map.contains_key(t))
                    .map(|(t, _)| *t)
                    .collect();
                if missing.is_empty() {
                    if let Some((t, _)) = items
                        .iter()
                        .find(|(t, q)| map.get(t).copied().unwrap_or(0) < *q)
                    {
                        return Ok(Taking::SoldOut(*t));
                    }
                    for (t, q) in items {
                        if let Some(v) = map.get_mut(t) {
                            *v -= q;
                        }
                    }
                    return Ok(Taking::Taken(None));
                }
                missing
            };
            self.load(app, t, event, &missing, 0).await?;
        }
        Err(Error::WarmTierDown)
    }

    async fn reserve_warm(
        &self,
        app: &App,
        r: &RedisTier,
        t: &Tenant,
        event: EventId,
        items: &[(Counter, i64)],
    ) -> Result<Taking> {
        let org = t.org();
        let mut epoch = r.epoch(app).await?;
        for _ in 0..4 {
            let mut inv = r.reserve.prepare_invoke();
            for (t, q) in items {
                inv.key(key(org, event, epoch, *t)).arg(*q);
            }
            let got: i64 = bounded(inv.invoke_async(&mut r.warm.conn())).await?;
            let missing = match got {
                0 => return Ok(Taking::Taken(Some(epoch))),
                i if i > 0 => return Ok(Taking::SoldOut(items[(i - 1) as usize].0)),
                i => vec![items[(-i - 1) as usize].0],
            };
            if !self.load(app, t, event, &missing, epoch).await? {
                epoch = r.learn(app, epoch).await?;
            }
        }
        Err(Error::WarmTierDown)
    }

    /// A hold reserved in `epoch` was refused by [`store::epoch_guard`]:
    /// the epoch moved on, and this node learns the new one (or, Redis
    /// away, takes from the ledger for a while).
    pub async fn refused(&self, app: &App, epoch: i64) -> Result<()> {
        if let Tier::Redis(r) = &self.tier {
            match r.learn(app, epoch).await {
                Err(Error::WarmTierDown) => r.mark_down(),
                Err(e) => return Err(e),
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// This node's turn to take a hold from the ledger: held across
    /// [`Inventory::reserve_in_tx`]'s transaction, from before it begins.
    pub async fn ledger_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.ledger_turn.lock().await
    }

    /// Takes every item's quantity from the ledger, inside `tx` (which the
    /// caller commits with the hold, or rolls back): the epoch row locked
    /// exclusively and moved on — no hold reserved in Redis is written
    /// meanwhile, and none reserved in the old epoch afterwards — then
    /// capacity less what active and consumed holds took. Slower than
    /// Redis (one such transaction at a time), never wrong.
    pub async fn reserve_in_tx(
        &self,
        app: &App,
        tx: &mut Tx,
        t: &Tenant,
        event: EventId,
        items: &[(TicketTypeId, i64)],
        voucher: VoucherUse,
    ) -> Result<(Reserve, Option<TicketTypeId>)> {
        let catalog = crate::events::catalog(app, t, event)
            .await?
            .ok_or(Error::NotFound)?;
        store::bump_epoch(tx).await?;
        // Whether the voucher reserves its tickets, as the database says now
        // (an ending of the reservation waits for this transaction's lock on
        // the epoch, or was before it).
        let reserved = match voucher {
            Some((v, _)) => store::reserved_by_in(tx, t.org(), v).await?,
            None => None,
        };
        for (c, q) in counters_reserving(Some(&catalog), items, voucher, reserved) {
            if let Counter::Voucher(v) = c {
                let max = voucher_max_uses(app, t, v).await?;
                if max - store::voucher_uses_in(tx, t.org(), v).await? < q {
                    return Ok((Reserve::VoucherSpent, reserved));
                }
                continue;
            }
            let (capacity, types) = capacity_of(app, t, &catalog, c).await?;
            let mut taken = 0;
            for tt in types {
                taken += store::taken_in(tx, t.org(), tt).await?;
            }
            if capacity - taken < q {
                return Ok((
                    Reserve::SoldOut(sold_out_type(&catalog, items, c)),
                    reserved,
                ));
            }
        }
        metrics::counter!("voelgoed_inventory_ledger_reservations_total").increment(1);
        Ok((Reserve::Taken(None), reserved))
    }

    /// Moves a ticket type's capacity from `from` to `to` together with its
    /// counter, writing `writes` in one transaction (the first changes the
    /// capacity, only while it is still `from`: one row, else someone else
    /// changed it meanwhile → 409).
    ///
    /// Lowered: the difference is taken from the counter first, exactly as
    /// a hold takes tickets, so no interleaving sells more than `to`; when
    /// the counter has not that much left, more than `to` is held or sold
    /// (409), and nothing changes. Raised: written first, then the counter
    /// (where loaded) grows; a counter loaded meanwhile read the new
    /// capacity. In Redis mode a lowering needs Redis (503 while it is
    /// away), and its write stands only in the epoch it was taken in.
    pub async fn resize(
        &self,
        app: &App,
        t: &Tenant,
        event: EventId,
        tt: TicketTypeId,
        (from, to): (i64, i64),
        writes: Vec<kernel::Stmt>,
    ) -> Result<()> {
        let counter = Counter::Type(tt);
        let delta = to - from;
        if delta >= 0 {
            // The counter grows while the new capacity is written but not
            // committed: a counter another node loads before the commit
            // starts from the old capacity (low, the safe side), one loaded
            // after finds this one there already (none is loaded twice).
            let _guard = self.load_lock.lock().await;
            // The epoch is learnt before the transaction begins: learning
            // it may write (a new epoch), and on SQLite a second write
            // while this one is open would wait for it forever.
            let epoch = match &self.tier {
                Tier::Redis(r) if delta > 0 => Some(r.epoch(app).await?),
                _ => None,
            };
            let tx = prepare_resize(app, t, None, tt, to, &writes).await?;
            let grow: &[(Counter, i64)] = if delta > 0 { &[(counter, delta)] } else { &[] };
            self.commit_grown(tx, t.org(), event, epoch, grow).await?;
            crate::events::invalidate(app, t, event).await;
            return Ok(());
        }
        let take = [(counter, -delta)];
        let taken = match &self.tier {
            Tier::Memory(map) => self.reserve_memory(map, app, t, event, &take).await?,
            Tier::Redis(r) => {
                if r.is_down() {
                    return Err(Error::WarmTierDown);
                }
                match self.reserve_warm(app, r, t, event, &take).await {
                    Err(Error::WarmTierDown) => {
                        r.mark_down();
                        return Err(Error::WarmTierDown);
                    }
                    other => other?,
                }
            }
        };
        let epoch = match taken {
            Taking::Taken(epoch) => epoch,
            Taking::SoldOut(_) => {
                let catalog = crate::events::catalog(app, t, event)
                    .await?
                    .ok_or(Error::NotFound)?;
                let left = self
                    .counters_left(app, t, event, &catalog, &[counter])
                    .await?;
                return Err(below_taken(from - left[0]));
            }
            Taking::Unavailable => return Err(Error::WarmTierDown),
        };
        let written = match prepare_resize(app, t, epoch, tt, to, &writes).await {
            Ok(tx) => tx.commit().await.map_err(Error::from),
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => Ok(()),
            Err(e) => {
                let _guard = self.load_lock.lock().await;
                if let Err(back) = self.release_locked(t.org(), event, epoch, &take).await {
                    tracing::warn!(error = %back, "a refused capacity change was not given back");
                }
                Err(e)
            }
        }
    }

    /// Gives quantities back (an expired, released or failed hold; counters
    /// of many tenants are released by the sweepers, hence the bare org) to
    /// the counters of the epoch it was reserved in. A hold taken from the
    /// ledger (`None` in Redis mode) has no counter to go back to: the next
    /// epoch's counters are loaded from the ledger, and the reconciliation
    /// repairs the current ones.
    #[allow(clippy::too_many_arguments)]
    pub async fn release(
        &self,
        app: &App,
        org: OrgId,
        event: EventId,
        epoch: Option<i64>,
        items: &[(TicketTypeId, i64)],
        voucher: VoucherUse,
        reserved: Option<TicketTypeId>,
    ) -> Result<()> {
        let counters = released_counters(app, org, event, items, voucher, reserved).await?;
        let _guard = self.load_lock.lock().await;
        self.release_locked(org, event, epoch, &counters).await
    }

    async fn release_locked(
        &self,
        org: OrgId,
        event: EventId,
        epoch: Option<i64>,
        items: &[(Counter, i64)],
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
                let Some(epoch) = epoch else {
                    return Ok(());
                };
                if r.is_down() {
                    return Err(Error::WarmTierDown);
                }
                let mut inv = r.release.prepare_invoke();
                for (t, q) in items {
                    inv.key(key(org, event, epoch, *t)).arg(*q);
                }
                let done: Result<i64> = bounded(inv.invoke_async(&mut r.warm.conn())).await;
                if done.is_err() {
                    r.mark_down();
                }
                done.map(|_| ())
            }
        }
    }

    /// What is left of each ticket type (the least of its own counter and
    /// its quotas'), loading counters not yet warm; from the ledger while
    /// Redis is away.
    pub async fn remaining(
        &self,
        app: &App,
        t: &Tenant,
        event: EventId,
        types: &[TicketTypeId],
    ) -> Result<Vec<i64>> {
        if types.is_empty() {
            return Ok(Vec::new());
        }
        let catalog = crate::events::catalog(app, t, event)
            .await?
            .ok_or(Error::NotFound)?;
        let mut counters: Vec<Counter> = types.iter().map(|tt| Counter::Type(*tt)).collect();
        for q in &catalog.quotas {
            if q.ticket_type_ids.iter().any(|tt| types.contains(tt)) {
                counters.push(Counter::Quota(q.id));
            }
        }
        let left = self
            .counters_left(app, t, event, &catalog, &counters)
            .await?;
        Ok(types
            .iter()
            .map(|tt| {
                counters
                    .iter()
                    .zip(&left)
                    .filter(|(c, _)| match c {
                        Counter::Type(t) => t == tt,
                        Counter::Quota(q) => catalog
                            .quota(*q)
                            .is_some_and(|q| q.ticket_type_ids.contains(tt)),
                        Counter::Voucher(_) => false,
                    })
                    .map(|(_, v)| *v)
                    .min()
                    .unwrap_or(0)
            })
            .collect())
    }

    /// What is left of each general-admission area of a seat map: the
    /// least of its quota and what its ticket types have left between them
    /// (one reading of the counters for all).
    pub async fn areas_left(
        &self,
        app: &App,
        t: &Tenant,
        event: EventId,
        areas: &[crate::events::Area],
    ) -> Result<Vec<i64>> {
        if areas.is_empty() {
            return Ok(Vec::new());
        }
        let types: Vec<TicketTypeId> = areas
            .iter()
            .flat_map(|a| a.ticket_type_ids.iter().copied())
            .collect();
        let per_type = self.remaining(app, t, event, &types).await?;
        let catalog = crate::events::catalog(app, t, event)
            .await?
            .ok_or(Error::NotFound)?;
        let quotas: Vec<Counter> = areas
            .iter()
            .filter(|a| catalog.quota(a.quota_id).is_some())
            .map(|a| Counter::Quota(a.quota_id))
            .collect();
        let quota_left = self.counters_left(app, t, event, &catalog, &quotas).await?;
        let left: std::collections::HashMap<TicketTypeId, i64> =
            types.into_iter().zip(per_type).collect();
        Ok(areas
            .iter()
            .map(|a| {
                let by_types: i64 = a
                    .ticket_type_ids
                    .iter()
                    .map(|tt| left.get(tt).copied().unwrap_or(0).max(0))
                    .sum();
                let by_quota = quotas
                    .iter()
                    .zip(&quota_left)
                    .find(|(c, _)| matches!(c, Counter::Quota(q) if *q == a.quota_id))
                    .map(|(_, v)| *v)
                    .unwrap_or(0);
                by_types.min(by_quota).max(0)
            })
            .collect())
    }

    /// What is left of each of the event's quotas.
    pub async fn quotas_left(
        &self,
        app: &App,
        t: &Tenant,
        event: EventId,
    ) -> Result<Vec<(QuotaId, i64)>> {
        let catalog = crate::events::catalog(app, t, event)
            .await?
            .ok_or(Error::NotFound)?;
        let counters: Vec<Counter> = catalog
            .quotas
            .iter()
            .map(|q| Counter::Quota(q.id))
            .collect();
        if counters.is_empty() {
            return Ok(Vec::new());
        }
        let left = self
            .counters_left(app, t, event, &catalog, &counters)
            .await?;
        Ok(catalog.quotas.iter().map(|q| q.id).zip(left).collect())
    }

    /// Uses left of each voucher (of the event).
    pub async fn vouchers_left(
        &self,
        app: &App,
        t: &Tenant,
        event: EventId,
        ids: &[VoucherId],
    ) -> Result<Vec<i64>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let catalog = crate::events::catalog(app, t, event)
            .await?
            .ok_or(Error::NotFound)?;
        let counters: Vec<Counter> = ids.iter().map(|v| Counter::Voucher(*v)).collect();
        self.counters_left(app, t, event, &catalog, &counters).await
    }

    /// What is left on each counter (never below zero).
    async fn counters_left(
        &self,
        app: &App,
        t: &Tenant,
        event: EventId,
        catalog: &Catalog,
        types: &[Counter],
    ) -> Result<Vec<i64>> {
        match &self.tier {
            Tier::Memory(map) => {
                for _ in 0..3 {
                    let found: Vec<Option<i64>> = {
                        let map = map.lock().map_err(|_| poisoned())?;
                        types.iter().map(|t| map.get(t).copied()).collect()
                    };
                    let missing = missing_of(types, &found);
                    if missing.is_empty() {
                        return Ok(found.into_iter().map(|v| v.unwrap_or(0).max(0)).collect());
                    }
                    self.load(app, t, event, &missing, 0).await?;
                }
                Err(Error::WarmTierDown)
            }
            Tier::Redis(r) => {
                if !r.is_down() {
                    match self.remaining_warm(app, r, t, event, types).await {
                        Err(Error::WarmTierDown) => r.mark_down(),
                        other => return other,
                    }
                }
                self.remaining_in_ledger(app, t, catalog, types).await
            }
        }
    }

    async fn remaining_warm(
        &self,
        app: &App,
        r: &RedisTier,
        t: &Tenant,
        event: EventId,
        types: &[Counter],
    ) -> Result<Vec<i64>> {
        let org = t.org();
        let mut epoch = r.epoch(app).await?;
        for _ in 0..3 {
            let keys: Vec<String> = types.iter().map(|t| key(org, event, epoch, *t)).collect();
            let found: Vec<Option<i64>> = bounded(
                redis::cmd("MGET")
                    .arg(&keys)
                    .query_async(&mut r.warm.conn()),
            )
            .await?;
            let missing = missing_of(types, &found);
            if missing.is_empty() {
                return Ok(found.into_iter().map(|v| v.unwrap_or(0).max(0)).collect());
            }
            if !self.load(app, t, event, &missing, epoch).await? {
                epoch = r.learn(app, epoch).await?;
            }
        }
        Err(Error::WarmTierDown)
    }

    async fn remaining_in_ledger(
        &self,
        app: &App,
        t: &Tenant,
        catalog: &Catalog,
        counters: &[Counter],
    ) -> Result<Vec<i64>> {
        let mut out = Vec::with_capacity(counters.len());
        for c in counters {
            out.push(left_in_ledger(app, t, catalog, *c).await?.max(0));
        }
        Ok(out)
    }

    /// Loads counters from the ledger: the ticket type's capacity (from the
    /// events slice) less what active and consumed holds took. In Redis,
    /// into `epoch`'s counters — false if Redis no longer keeps that epoch.
    async fn load(
        &self,
        app: &App,
        tenant: &Tenant,
        event: EventId,
        types: &[Counter],
        epoch: i64,
    ) -> Result<bool> {
        let org = tenant.org();
        // Read under the lock: a capacity change on this node is either
        // wholly before (its new capacity read here: it refreshes the
        // catalog before letting go) or wholly after (its difference
        // applied to the counter loaded here).
        let _guard = self.load_lock.lock().await;
        let catalog = crate::events::catalog(app, tenant, event)
            .await?
            .ok_or(Error::NotFound)?;
        for t in types {
            self.known.insert(*t, (org, event));
            let left = left_in_ledger(app, tenant, &catalog, *t).await?;
            match &self.tier {
                Tier::Memory(map) => {
                    let mut map = map.lock().map_err(|_| poisoned())?;
                    map.entry(*t).or_insert(left);
                }
                Tier::Redis(r) => {
                    let done: i64 = bounded(
                        r.load
                            .key(r.epoch_key(app).await?)
                            .key(key(org, event, epoch, *t))
                            .arg(epoch)
                            .arg(left)
                            .invoke_async(&mut r.warm.conn()),
                    )
                    .await?;
                    if done < 0 {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }

    /// Every counter in the tier: this node's in-process ones, or every
    /// node's in Redis of the current epoch (older epochs' are removed).
    pub async fn counters(&self, app: &App) -> Result<Vec<(OrgId, EventId, Counter)>> {
        match &self.tier {
            Tier::Memory(_) => Ok(self
                .known
                .iter()
                .map(|e| (e.value().0, e.value().1, *e.key()))
                .collect()),
            Tier::Redis(r) => {
                let epoch = r.epoch(app).await?;
                let mut conn = r.warm.conn();
                let mut cursor: u64 = 0;
                let mut out = Vec::new();
                let mut stale = Vec::new();
                loop {
                    let (next, keys): (u64, Vec<String>) = bounded(
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg("org:*:inv:*")
                            .arg("COUNT")
                            .arg(1000)
                            .query_async(&mut conn),
                    )
                    .await?;
                    for k in keys {
                        match parse_key(&k) {
                            Some((o, e, ep, t)) if ep == epoch => out.push((o, e, t)),
                            Some((o, _, ep, _)) if ep < epoch => stale.push((o, k)),
                            _ => {}
                        }
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                // Only this deployment's (another may share the Redis).
                let mut ours = std::collections::HashMap::new();
                let mut doomed = Vec::new();
                for (org, k) in stale {
                    let mine = match ours.get(&org) {
                        Some(m) => *m,
                        None => {
                            let m = crate::identity::upkeep_tenant(app, org).await?.is_some();
                            ours.insert(org, m);
                            m
                        }
                    };
                    if mine {
                        doomed.push(k);
                    }
                }
                for chunk in doomed.chunks(500) {
                    let _: i64 =
                        bounded(redis::cmd("DEL").arg(chunk).query_async(&mut conn)).await?;
                }
                Ok(out)
            }
        }
    }

    /// A counter's value, if it is loaded.
    pub async fn read(
        &self,
        app: &App,
        org: OrgId,
        event: EventId,
        tt: Counter,
    ) -> Result<Option<i64>> {
        match &self.tier {
            Tier::Memory(map) => Ok(map.lock().map_err(|_| poisoned())?.get(&tt).copied()),
            Tier::Redis(r) => {
                let epoch = r.epoch(app).await?;
                bounded(
                    redis::cmd("GET")
                        .arg(key(org, event, epoch, tt))
                        .query_async(&mut r.warm.conn()),
                )
                .await
            }
        }
    }

    /// Sets a counter to `to` if it still holds `seen`; false if it moved.
    pub async fn repair(
        &self,
        app: &App,
        org: OrgId,
        event: EventId,
        tt: Counter,
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
                let epoch = r.epoch(app).await?;
                let done: i64 = bounded(
                    redis::Script::new(REPAIR_LUA)
                        .key(key(org, event, epoch, tt))
                        .arg(seen)
                        .arg(to)
                        .invoke_async(&mut r.warm.conn()),
                )
                .await?;
                Ok(done == 1)
            }
        }
    }

    /// Releases what `release` marks released in the database (only one
    /// node wins each hold or order) and gives its quantities back, with no
    /// counter load in between. The database's release stands even when
    /// Redis does not take the quantities back (the reconciliation will).
    pub async fn release_many<F, Fut>(&self, app: &App, release: F) -> Result<usize>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<store::Released>>>,
    {
        let _guard = self.load_lock.lock().await;
        let released = release().await?;
        let n = released.len();
        for r in released {
            // Its seats (if any) are free again: the board shows it at once.
            let board = app.state::<super::seats::SeatBoard>();
            board.changed(r.org, r.event).await;
            board.freed(r.org, r.event);
            let counters = match released_counters(
                app, r.org, r.event, &r.items, r.voucher, r.reserved,
            )
            .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "released quantities not given back to the counters (reconciliation will)");
                    continue;
                }
            };
            if let Err(e) = self
                .release_locked(r.org, r.event, r.epoch, &counters)
                .await
            {
                tracing::warn!(error = %e, "released quantities not given back to the counters (reconciliation will)");
            }
        }
        Ok(n)
    }
}

/// A counter's capacity and the ticket types whose holds draw on it.
/// A counter's capacity and the ticket types it counts. A type's capacity
/// is read from the database, not the cached catalog: a counter loaded (or
/// a hold taken from the ledger) must not start from a capacity another
/// node lowered a moment ago. (Quotas never change; they are added or
/// removed.)
async fn capacity_of(
    app: &App,
    t: &Tenant,
    catalog: &Catalog,
    c: Counter,
) -> Result<(i64, Vec<TicketTypeId>)> {
    match c {
        Counter::Type(tt) => Ok((
            crate::events::capacity_now(app, t, catalog.event.id, tt)
                .await?
                .ok_or(Error::NotFound)?,
            vec![tt],
        )),
        Counter::Quota(q) => {
            let q = catalog.quota(q).ok_or(Error::NotFound)?;
            Ok((q.capacity, q.ticket_type_ids.clone()))
        }
        Counter::Voucher(_) => Err(Error::NotFound),
    }
}

async fn voucher_max_uses(app: &App, t: &Tenant, v: VoucherId) -> Result<i64> {
    Ok(crate::events::voucher(app, t, v)
        .await?
        .ok_or(Error::NotFound)?
        .max_uses)
}

fn below_taken(taken: i64) -> Error {
    Error::Api(ApiError::Conflict(format!(
        "{taken} tickets of this type are held or sold: the capacity cannot go below that"
    )))
}

/// A capacity change's writes, in one transaction (left open for the
/// caller to commit): in the Redis epoch the difference was taken in (if
/// any), never below what the ledger says is taken, and only if the
/// capacity is still what the change saw.
async fn prepare_resize(
    app: &App,
    t: &Tenant,
    epoch: Option<i64>,
    tt: TicketTypeId,
    to: i64,
    writes: &[kernel::Stmt],
) -> Result<Tx> {
    let mut tx = app.db().begin().await?;
    if let Some(e) = epoch
        && !store::epoch_guard(e).exists_in(&mut tx).await?
    {
        return Err(Error::EpochMoved(e));
    }
    let taken = store::taken_in(&mut tx, t.org(), tt).await?;
    if taken > to {
        return Err(below_taken(taken));
    }
    let mut writes = writes.iter();
    if let Some(first) = writes.next()
        && first.execute_in(&mut tx).await? != 1
    {
        return Err(Error::Api(ApiError::Conflict(
            "the ticket type was changed meanwhile; load it again".into(),
        )));
    }
    for w in writes {
        w.execute_in(&mut tx).await?;
    }
    Ok(tx)
}

/// What the ledger says is left on a counter: its capacity less what the
/// active and consumed holds of its ticket types took.
pub(super) async fn left_in_ledger(
    app: &App,
    t: &Tenant,
    catalog: &Catalog,
    c: Counter,
) -> Result<i64> {
    if let Counter::Voucher(v) = c {
        let max = voucher_max_uses(app, t, v).await?;
        return Ok(max - store::voucher_uses(app.db(), t, v).await?);
    }
    let (capacity, types) = capacity_of(app, t, catalog, c).await?;
    let mut taken = 0;
    for tt in types {
        taken += store::taken_from_ledger(app.db(), t, tt).await?;
    }
    Ok(capacity - taken)
}

/// The counters released items give back to (the event's quotas as the
/// catalog has them now: a quota added since counted the hold when it was
/// loaded from the ledger; one removed since is no longer read).
async fn released_counters(
    app: &App,
    org: OrgId,
    event: EventId,
    items: &[(TicketTypeId, i64)],
    voucher: VoucherUse,
    reserved: Option<TicketTypeId>,
) -> Result<Vec<(Counter, i64)>> {
    let catalog = match identity::upkeep_tenant(app, org).await? {
        Some(t) => crate::events::catalog(app, &t, event).await?,
        None => None,
    };
    // What the hold took from a reservation goes back to it (the hold says
    // so itself: the catalog may know of a reservation ended since).
    Ok(counters_reserving(
        catalog.as_deref(),
        items,
        voucher,
        reserved,
    ))
}

fn missing_of(types: &[Counter], found: &[Option<i64>]) -> Vec<Counter> {
    types
        .iter()
        .zip(found)
        .filter(|(_, v)| v.is_none())
        .map(|(t, _)| *t)
        .collect()
}
