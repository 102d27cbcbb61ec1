//! Sales: inventory, holds, checkout, orders.
//!
//! Owns: `holds`, `hold_items`, `orders`; the inventory counters in the hot
//! or warm tier; idempotency keys of the `store.checkout` scope.
//! Emits: `hold.created`, `hold.expired`, `order.created`, `order.paid`,
//! `order.expired` (outbox). Issues
//! tickets through the tickets slice inside the checkout transaction.
//! Consumes: nothing.
//! Invariants: a ticket type never has more active+consumed hold quantity
//! than capacity (counter = capacity − that sum, on either tier); a hold is
//! checked out at most once; an idempotency key makes at most one order; an
//! expired hold or unpaid order gives its quantity back exactly once.

mod api;
mod domain;
mod error;
pub mod integrity;
mod inventory;
mod store;
#[cfg(test)]
mod tests;
mod views;

use std::time::Duration;

pub use domain::{
    Buyer, HoldItem, HoldView, OrderStatus, OrderView, Reply, StoreEvent, checkout, create_hold,
    expire_pending_orders, get_order, get_order_for_buyer, order_for_upkeep, order_summaries,
    orders_page, paid_orders, release_expired, store_event,
};
pub use error::Error;
pub use inventory::{Inventory, Reserve};
use kernel::{
    DomainEvent, Kernel, Slice,
    ids::{EventId, HoldId, OrderId, OrgId},
};
use serde::{Deserialize, Serialize};
pub use store::OrderSummary;

use crate::App;

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

pub fn slice(kernel: &Kernel) -> Slice<App> {
    Slice::new("sales")
        .routes(api::routes())
        .pages(views::routes())
        .state(Inventory::new(kernel))
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
}
