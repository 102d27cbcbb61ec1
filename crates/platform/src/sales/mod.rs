//! Sales: inventory, holds, checkout, orders and their money (payments by
//! card through the provider adapter or by EFT, refunds, cancellation).
//!
//! Owns: `holds`, `hold_items`, `orders`, `payments`, `refunds`,
//! `provider_events`, `waiting_list`; the inventory counters in the hot or warm tier;
//! idempotency keys of the `store.checkout` and `orders.refund` scopes.
//! Emits: `hold.created`, `hold.expired`, `order.created`, `order.paid`,
//! `order.expired`, `order.refunded`, `order.cancelled`, `waitlist.offered` (outbox). Issues
//! tickets through the tickets slice inside the checkout (or payment)
//! transaction; revokes them through it on a full refund or cancel.
//! Consumes: the provider's webhooks (`POST /api/v1/payments/stripe/webhook`).
//! Invariants: a ticket type never has more active+consumed hold quantity
//! than capacity (counter = capacity − that sum, on either tier); a hold is
//! checked out at most once; an idempotency key makes at most one order; an
//! expired hold or unpaid order gives its quantity back exactly once.

mod api;
pub mod attendees;
mod domain;
mod error;
mod hold_views;
pub mod integrity;
mod inventory;
pub mod limits;
pub mod lookup;
pub mod money;
mod money_api;
mod money_store;
mod money_views;
mod pricing;
pub mod queue;
pub mod seats;
pub mod settings;
mod store;
pub mod stripe;
#[cfg(test)]
mod tests;
mod views;
pub mod waitlist;
mod waitlist_views;

use std::time::Duration;

pub use domain::{
    Buyer, HoldItem, HoldView, MoneyShare, OrderLine, OrderListItem, OrderStatus, OrderView,
    PaymentMethod, Reply, StoreEvent, checkout, create_hold, expire_pending_orders, find_orders,
    get_order, get_order_for_buyer, money_shares, order_for_upkeep, order_opens_with,
    order_summaries, orders_page, paid_orders, release_expired, store_event,
};
pub use error::Error;
pub use inventory::{Inventory, Reserve};
use kernel::{
    DomainEvent, Kernel, Slice,
    ids::{EventId, HoldId, OrderId, OrgId, RefundId},
};
use serde::{Deserialize, Serialize};
pub use store::{
    OrderSummary, bump_epoch as fence_epoch, epoch_guard, inventory_epoch as store_epoch,
};

use crate::{App, identity::Tenant};

/// What is left to sell of an event, as the counters say: per ticket type
/// (the least of its own and its quotas'), and per quota.
pub struct Availability {
    pub types: Vec<(kernel::ids::TicketTypeId, i64)>,
    pub quotas: Vec<(kernel::ids::QuotaId, i64)>,
}

/// Uses left of each of the event's vouchers `ids`, as the counters say.
pub async fn voucher_uses_left(
    app: &App,
    t: &Tenant,
    event: EventId,
    ids: &[kernel::ids::VoucherId],
) -> kernel::ApiResult<Vec<i64>> {
    Ok(app
        .state::<Inventory>()
        .vouchers_left(app, t, event, ids)
        .await?)
}

/// For a write about an order's tickets made outside the sales slice (a
/// transfer): one row while the order is still paid (or partly refunded),
/// and the order's row locked to the end of the transaction — a refund or
/// a cancellation, which move that row first, waits for the write (and
/// then revokes its new ticket too) or made the order no longer paid.
pub fn order_still_paid(t: &Tenant, order: OrderId) -> kernel::Stmt {
    kernel::Stmt::new(
        "UPDATE orders SET updated_at = updated_at
         WHERE org_id = $1 AND id = $2 AND status IN ('paid', 'partially_refunded')",
    )
    .bind(t.org())
    .bind(order)
}

/// Moves a ticket type's capacity `(from, to)` with its counter, writing
/// the events slice's `writes` (the first changes the capacity, only while
/// it is still `from`): see [`Inventory::resize`].
pub async fn resize_ticket_type(
    app: &App,
    t: &Tenant,
    event: EventId,
    tt: kernel::ids::TicketTypeId,
    capacity: (i64, i64),
    writes: Vec<kernel::Stmt>,
) -> kernel::ApiResult<()> {
    Ok(app
        .state::<Inventory>()
        .resize(app, t, event, tt, capacity, writes)
        .await?)
}

/// Takes `n` tickets of `tt` for reserved vouchers and writes the events
/// slice's `writes` (the vouchers) with them, or nothing (409: fewer left).
pub async fn reserve_for_vouchers(
    app: &App,
    t: &Tenant,
    event: EventId,
    tt: kernel::ids::TicketTypeId,
    n: i64,
    writes: Vec<kernel::Stmt>,
) -> kernel::ApiResult<()> {
    Ok(app
        .state::<Inventory>()
        .reserve_for_vouchers(app, t, event, tt, n, writes)
        .await?)
}

/// Ends the reservations of vouchers whose time is up (the sweep's step).
pub async fn end_reservations(app: &App) -> Result<usize, Error> {
    let now = app.kernel.now();
    app.state::<Inventory>()
        .end_reservations(app, now, 100)
        .await
}

/// [`Availability`] of an event of the tenant, draft or published.
pub async fn availability(
    app: &App,
    t: &Tenant,
    event: EventId,
) -> kernel::ApiResult<Availability> {
    let Some(catalog) = crate::events::catalog(app, t, event).await? else {
        return Err(kernel::ApiError::NotFound);
    };
    let inv = app.state::<Inventory>();
    let types: Vec<kernel::ids::TicketTypeId> =
        catalog.event.ticket_types.iter().map(|t| t.id).collect();
    let left = if catalog.event.series {
        // A series sells nothing itself: what is left is its dates' together.
        let mut sums: Vec<(kernel::ids::TicketTypeId, i64)> =
            types.iter().map(|tt| (*tt, 0)).collect();
        for date in crate::events::dates(app, t, event)
            .await
            .map_err(kernel::ApiError::from)?
        {
            for (tt, n) in Box::pin(availability(app, t, date.id)).await?.types {
                if let Some(series_type) = date.follows(tt)
                    && let Some(sum) = sums.iter_mut().find(|(id, _)| *id == series_type)
                {
                    sum.1 += n;
                }
            }
        }
        sums.into_iter().map(|(_, n)| n).collect()
    } else {
        inv.remaining(app, t, event, &types).await?
    };
    Ok(Availability {
        types: types.into_iter().zip(left).collect(),
        quotas: inv.quotas_left(app, t, event).await?,
    })
}

/// Tickets were held for a buyer.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HoldCreated {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub hold_id: HoldId,
    pub items: Vec<HoldItem>,
    pub expires_at: String,
}

impl DomainEvent for HoldCreated {
    const NAME: &'static str = "hold.created";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

/// A buyer asked for a link to their orders (the mail slice sends it).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderLookupRequested {
    pub org_id: OrgId,
    pub email: String,
    /// This request's own id (one mail per request).
    pub request_id: uuid::Uuid,
}

impl DomainEvent for OrderLookupRequested {
    const NAME: &'static str = "order.lookup_requested";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        None
    }
}

/// A hold ran out unchecked-out; its tickets are back on sale.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HoldExpired {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub hold_id: HoldId,
    pub items: Vec<HoldItem>,
}

impl DomainEvent for HoldExpired {
    const NAME: &'static str = "hold.expired";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

/// A hold was checked out into an order (paid at once when free).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderCreated {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub order_id: OrderId,
    pub hold_id: HoldId,
    pub status: OrderStatus,
    pub items: Vec<HoldItem>,
    pub total_cents: i64,
    pub currency: String,
}

impl DomainEvent for OrderCreated {
    const NAME: &'static str = "order.created";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

/// An order is paid; its tickets are issued.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderPaid {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub order_id: OrderId,
    pub total_cents: i64,
    pub currency: String,
    pub tickets: i64,
}

impl DomainEvent for OrderPaid {
    const NAME: &'static str = "order.paid";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

/// A pending order was not paid in time; its tickets are back on sale.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderExpired {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub order_id: OrderId,
    pub items: Vec<HoldItem>,
}

impl DomainEvent for OrderExpired {
    const NAME: &'static str = "order.expired";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

/// Money went back to the buyer (part or all of what was paid).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderRefunded {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub order_id: OrderId,
    pub refund_id: RefundId,
    pub amount_cents: i64,
    pub currency: String,
    /// Refunded of the order so far, this refund included.
    pub refunded_cents: i64,
    /// All of it: the order's tickets are revoked.
    pub full: bool,
}

impl DomainEvent for OrderRefunded {
    const NAME: &'static str = "order.refunded";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

/// The organizer cancelled the order: its tickets are revoked and back on
/// sale, what was paid is refunded.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderCancelled {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub order_id: OrderId,
    /// Refunded by the cancellation (0 for an unpaid order).
    pub refunded_cents: i64,
    pub currency: String,
    pub reason: String,
}

impl DomainEvent for OrderCancelled {
    const NAME: &'static str = "order.cancelled";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

pub fn slice(kernel: &Kernel) -> Slice<App> {
    Slice::new("sales")
        .routes(api::routes())
        .routes(money_api::routes())
        .pages(views::routes())
        .pages(hold_views::routes())
        .pages(waitlist_views::routes())
        .pages(money_views::routes())
        .state(Inventory::new(kernel))
        .state(money::Payments::new(kernel))
        .state(settings::SettingsCache::new())
        .state(limits::LimitsCache::new())
        .state(queue::Rooms::new(kernel))
        .state(domain::RecentHolds::new(kernel))
        .state(domain::CheckoutsInFlight::default())
        .state(seats::SeatBoard::new())
        .state(seats::SeatWatchers::new())
        .queue(money::QUEUE)
        .job::<money::SendRefund, _, _>(|app: App, job: money::SendRefund| async move {
            money::run_refund_job(&app, job).await
        })
        .job::<money::ReconcilePayments, _, _>(|app: App, _| async move {
            money::reconcile_provider(&app, money::RECONCILE_DAYS)
                .await
                .map(|_| ())
                .map_err(|e| kernel::jobs::JobError::Failed(e.to_string()))
        })
        .cron("17 3 * * *", money::ReconcilePayments {})
        .consumes::<crate::events::EventCancelled, _>(
            "sales.cancel_event",
            money::on_event_cancelled,
        )
        .job::<money::CancelEvent, _, _>(|app: App, job: money::CancelEvent| async move {
            money::run_cancel_event(&app, job).await
        })
        .queue(integrity::QUEUE)
        .job::<integrity::Reconcile, _, _>(|app: App, _| async move {
            integrity::reconcile(&app, integrity::WINDOW)
                .await
                .map(|_| ())
                .map_err(|e| kernel::jobs::JobError::Failed(e.to_string()))
        })
        .cron("*/5 * * * *", integrity::Reconcile {})
        // Sweeps driven by database state: idempotent, safe on many nodes
        // (each hold or order is released by exactly one conditional update).
        .every(
            "sales.release_expired_holds",
            Duration::from_secs(1),
            |app: App| async move { release_expired(&app).await.map_err(|e| e.to_string()) },
        )
        .every(
            "sales.expire_pending_orders",
            Duration::from_secs(1),
            |app: App| async move { expire_pending_orders(&app).await.map_err(|e| e.to_string()) },
        )
        .every(
            "sales.end_voucher_reservations",
            Duration::from_secs(2),
            |app: App| async move { end_reservations(&app).await.map_err(|e| e.to_string()) },
        )
        .every(
            "sales.waiting_list_offers",
            Duration::from_secs(1),
            |app: App| async move { waitlist::sweep(&app).await.map_err(|e| e.to_string()) },
        )
}
