//! An event's sales limits: tickets per order (checked when a hold is
//! made) and per buyer, by e-mail, across the buyer's live orders of the
//! event (checked at checkout, one checkout per buyer and event at a time).
//! Read on every hold, so kept warm per node (2 s, as the catalog is; a
//! change on this node is seen at once).

use std::{sync::Arc, time::Duration};

use kernel::{
    ApiError, ApiResult, Backend, Db, FieldError, Permission, Stmt, Tx, db_run,
    ids::{EventId, OrgId},
    tx_run,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    App,
    identity::{Actor, Tenant},
};

/// An event's sales limits; `null` is no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SalesLimits {
    /// Tickets of all types together in one order (a ticket type's own
    /// `max_per_order` still applies).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub max_tickets_per_order: Option<i64>,
    /// Tickets one buyer (by e-mail) may have across their pending and paid
    /// orders of the event.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100000)]
    pub max_tickets_per_buyer: Option<i64>,
    /// How long a waiting-list offer is held for the one it is made to,
    /// in hours (`null`: 48).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 336)]
    pub waitlist_offer_hours: Option<i64>,
}

/// A waiting-list offer's time when the event sets none.
pub const DEFAULT_OFFER_HOURS: i64 = 48;

impl SalesLimits {
    /// How long the event's waiting-list offers stand, in seconds.
    pub fn offer_secs(&self) -> i64 {
        self.waitlist_offer_hours.unwrap_or(DEFAULT_OFFER_HOURS) * 3600
    }
}

pub struct LimitsCache(moka::future::Cache<(OrgId, EventId), Arc<SalesLimits>>);

impl LimitsCache {
    pub fn new() -> LimitsCache {
        LimitsCache(
            moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(2))
                .build(),
        )
    }
}

impl Default for LimitsCache {
    fn default() -> Self {
        Self::new()
    }
}

async fn load(db: &Db, org: OrgId, event: EventId) -> Result<SalesLimits, sqlx::Error> {
    let sql = "SELECT max_tickets_per_order, max_tickets_per_buyer, waitlist_offer_hours
               FROM event_sales_limits WHERE org_id = $1 AND event_id = $2";
    let row: Option<(Option<i64>, Option<i64>, Option<i64>)> =
        db_run!(db, p => sqlx::query_as(sql).bind(org).bind(event).fetch_optional(p).await)?;
    Ok(row
        .map(|(o, b, w)| SalesLimits {
            max_tickets_per_order: o,
            max_tickets_per_buyer: b,
            waitlist_offer_hours: w,
        })
        .unwrap_or_default())
}

/// The event's limits, warm.
pub async fn of(app: &App, org: OrgId, event: EventId) -> ApiResult<Arc<SalesLimits>> {
    let cache = &app.state::<LimitsCache>().0;
    if let Some(s) = cache.get(&(org, event)).await {
        return Ok(s);
    }
    let db = app.db().clone();
    cache
        .try_get_with((org, event), async move {
            load(&db, org, event).await.map(Arc::new)
        })
        .await
        .map_err(|e| ApiError::from_db(&e))
}

/// 404 unless the tenant has the event (draft or not).
pub(super) async fn event_of(app: &App, t: &Tenant, event: EventId) -> ApiResult<()> {
    crate::events::catalog(app, t, event)
        .await?
        .map(|_| ())
        .ok_or(ApiError::NotFound)
}

pub async fn get(app: &App, actor: &Actor, event: EventId) -> ApiResult<SalesLimits> {
    let t = actor.require(Permission::EventsRead)?;
    event_of(app, t, event).await?;
    Ok(load(app.db(), t.org(), event).await?)
}

/// Checks and stores the event's limits (audited). Orders already placed
/// stand; new holds and checkouts meet the new limits.
pub async fn put(
    app: &App,
    actor: &Actor,
    event: EventId,
    limits: SalesLimits,
) -> ApiResult<SalesLimits> {
    let t = actor.require(Permission::EventsWrite)?;
    event_of(app, t, event).await?;
    let mut errors = Vec::new();
    if limits
        .max_tickets_per_order
        .is_some_and(|n| !(1..=1000).contains(&n))
    {
        errors.push(FieldError::new(
            "max_tickets_per_order",
            "from 1 to 1000, or null",
        ));
    }
    if limits
        .max_tickets_per_buyer
        .is_some_and(|n| !(1..=100_000).contains(&n))
    {
        errors.push(FieldError::new(
            "max_tickets_per_buyer",
            "from 1 to 100000, or null",
        ));
    }
    if limits
        .waitlist_offer_hours
        .is_some_and(|n| !(1..=336).contains(&n))
    {
        errors.push(FieldError::new(
            "waitlist_offer_hours",
            "from 1 to 336 (two weeks), or null for 48",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let before = load(app.db(), t.org(), event).await?;
    let now = app.kernel.now();
    let audit = actor
        .audit("event.sales_limits_update", "event")
        .object(event)
        .before(&before)
        .after(&limits)
        .stmt(now);
    let put = Stmt::new(
        "INSERT INTO event_sales_limits (org_id, event_id, max_tickets_per_order, max_tickets_per_buyer,
             waitlist_offer_hours, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (org_id, event_id) DO UPDATE SET max_tickets_per_order = excluded.max_tickets_per_order,
             max_tickets_per_buyer = excluded.max_tickets_per_buyer,
             waitlist_offer_hours = excluded.waitlist_offer_hours, updated_at = excluded.updated_at",
    )
    .bind(t.org())
    .bind(event)
    .bind(limits.max_tickets_per_order)
    .bind(limits.max_tickets_per_buyer)
    .bind(limits.waitlist_offer_hours)
    .bind(now);
    let mut tx = app.db().begin().await?;
    tx.run_all(vec![put, audit]).await?;
    tx.commit().await?;
    app.state::<LimitsCache>()
        .0
        .invalidate(&(t.org(), event))
        .await;
    Ok(limits)
}

/// Serialises checkouts of one buyer for one event until `tx` ends (on
/// SQLite every write transaction is serialised already).
pub async fn lock_buyer(
    tx: &mut Tx,
    org: OrgId,
    event: EventId,
    email: &str,
) -> Result<(), sqlx::Error> {
    if tx.backend() == Backend::Postgres {
        let key = format!("buyer:{org}:{event}:{email}");
        tx_run!(tx, c => sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(key).execute(c).await.map(|_| ()))?;
    }
    Ok(())
}

const BUYER_TICKETS: &str = "SELECT CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT) FROM orders o
    JOIN hold_items i ON i.org_id = o.org_id AND i.hold_id = o.hold_id
    WHERE o.org_id = $1 AND o.buyer_email = $2 AND o.event_id = $3
      AND o.status IN ('pending', 'paid', 'partially_refunded')";

/// The tickets a buyer has in their pending and paid orders of the event.
pub async fn buyer_tickets(
    tx: &mut Tx,
    org: OrgId,
    event: EventId,
    email: &str,
) -> Result<i64, sqlx::Error> {
    tx_run!(tx, c => sqlx::query_scalar(BUYER_TICKETS).bind(org).bind(email).bind(event).fetch_one(c).await)
}

/// [`buyer_tickets`] outside a transaction (the early answer, before a
/// payment is begun).
pub async fn buyer_tickets_now(
    db: &Db,
    org: OrgId,
    event: EventId,
    email: &str,
) -> Result<i64, sqlx::Error> {
    db_run!(db, p => sqlx::query_scalar(BUYER_TICKETS).bind(org).bind(email).bind(event).fetch_one(p).await)
}

/// The answer when a buyer would go over the event's limit.
pub fn over_buyer_limit(max: i64, has: i64) -> super::error::Error {
    super::error::Error::field(
        "buyer.email",
        &format!("may have at most {max} tickets of this event; this address has {has}"),
    )
}
