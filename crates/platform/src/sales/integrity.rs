//! Inventory reconciliation: every counter of the hot or warm tier is
//! checked against the ledger (capacity less what active and consumed holds
//! took) and repaired when it drifted — a node that died between reserving
//! a quantity and writing its hold leaves the counter too low for ever;
//! a bug that released twice would leave it too high.
//!
//! A counter and the ledger legitimately disagree while a reservation or a
//! release is in flight (counter moved, hold not yet written or the other
//! way round). So a difference is repaired only when neither the counter
//! nor the ledger moved over a window (a minute in production, longer than
//! any request may run), and the repair is conditional on the counter still
//! holding what was seen.

use std::time::Duration;

use kernel::{
    ids::{EventId, OrgId, QuotaId, TicketTypeId, VoucherId},
    jobs::{Job, Queue},
};
use serde::{Deserialize, Serialize};

use super::{
    Inventory,
    error::{Error, Result},
    inventory::{Counter, left_in_ledger},
};
use crate::{App, events, identity};

/// The queue of integrity checks: one at a time, never in prune's way.
pub const QUEUE: Queue = Queue::new("integrity", 1);

/// How long a difference must stand still before it is repaired.
pub const WINDOW: Duration = Duration::from_secs(60);

/// The periodic reconciliation (every five minutes, once across nodes).
#[derive(Serialize, Deserialize)]
pub struct Reconcile {}

impl Job for Reconcile {
    const KIND: &'static str = "sales.reconcile_inventory";
    const QUEUE: &'static str = QUEUE.name;
    const MAX_ATTEMPTS: i64 = 3;
}

/// One counter put right.
#[derive(Clone, Debug, Serialize)]
pub struct Repair {
    pub org_id: OrgId,
    pub event_id: EventId,
    /// The ticket type whose own counter it was, or
    pub ticket_type_id: Option<TicketTypeId>,
    /// the quota whose counter it was, or
    pub quota_id: Option<QuotaId>,
    /// the voucher whose uses it counts.
    pub voucher_id: Option<VoucherId>,
    pub counter_was: i64,
    pub ledger_says: i64,
}

/// What the ledger says the counter should hold; `None` when the event,
/// ticket type or quota is gone.
async fn expected(app: &App, org: OrgId, event: EventId, c: Counter) -> Result<Option<i64>> {
    let Some(tenant) = identity::upkeep_tenant(app, org).await? else {
        return Ok(None);
    };
    let Some(catalog) = events::catalog(app, &tenant, event).await? else {
        return Ok(None);
    };
    match left_in_ledger(app, &tenant, &catalog, c).await {
        Ok(left) => Ok(Some(left)),
        Err(Error::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Checks every counter, waits `window`, and repairs the differences that
/// stood still. Returns what it repaired.
pub async fn reconcile(app: &App, window: Duration) -> Result<Vec<Repair>> {
    reconcile_only(app, None, window).await
}

/// [`reconcile`], limited to one org's counters when `org` is given.
pub async fn reconcile_only(
    app: &App,
    org: Option<OrgId>,
    window: Duration,
) -> Result<Vec<Repair>> {
    let inv = app.state::<Inventory>();
    let mut suspects = Vec::new();
    let mut counters = inv.counters(app).await?;
    if let Some(only) = org {
        counters.retain(|(o, _, _)| *o == only);
    }
    for (org, event, tt) in &counters {
        let (Some(c), Some(e)) = (
            inv.read(app, *org, *event, *tt).await?,
            expected(app, *org, *event, *tt).await?,
        ) else {
            continue;
        };
        if c != e {
            suspects.push((*org, *event, *tt, c, e));
        }
    }
    metrics::gauge!("voelgoed_inventory_counters_checked").set(counters.len() as f64);
    if suspects.is_empty() {
        return Ok(Vec::new());
    }
    tokio::time::sleep(window).await;
    let mut repaired = Vec::new();
    for (org, event, tt, c1, e1) in suspects {
        let c2 = inv.read(app, org, event, tt).await?;
        let e2 = expected(app, org, event, tt).await?;
        if c2 != Some(c1) || e2 != Some(e1) {
            continue; // moving: in flight, not drift
        }
        if inv.repair(app, org, event, tt, c1, e1).await? {
            tracing::warn!(%org, %event, counter = %tt, counter_was = c1, ledger_says = e1,
                "inventory counter drifted from the ledger; repaired");
            metrics::counter!("voelgoed_inventory_repairs_total").increment(1);
            metrics::counter!("voelgoed_inventory_repaired_quantity_total")
                .increment((e1 - c1).unsigned_abs());
            let (ticket_type_id, quota_id, voucher_id) = match tt {
                Counter::Type(t) => (Some(t), None, None),
                Counter::Quota(q) => (None, Some(q), None),
                Counter::Voucher(v) => (None, None, Some(v)),
            };
            repaired.push(Repair {
                org_id: org,
                event_id: event,
                ticket_type_id,
                quota_id,
                voucher_id,
                counter_was: c1,
                ledger_says: e1,
            });
        }
    }
    Ok(repaired)
}
