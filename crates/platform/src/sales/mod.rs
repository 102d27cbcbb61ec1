//! Sales: inventory, holds, checkout, orders, idempotency.
//!
//! Owns: `holds`, `hold_items`, `orders`, `idempotency_keys`.
//! Emits: `order.paid`, `order.created` (outbox); `inventory.changed`
//! (PubSub only). Consumes: the events catalog; issues tickets through the
//! tickets slice inside the checkout transaction.
//! Invariants: a ticket type never has more active+consumed hold quantity
//! than capacity; a hold is checked out at most once; an idempotency key
//! makes at most one order.

mod api;
mod domain;
mod inventory;
mod store;
pub mod views;

pub use api::routes;
pub use domain::{
    Buyer, HoldItem, HoldView, OrderView, Reply, StoreEvent, checkout, create_hold, get_order,
    get_order_for_buyer, prune_idempotency_keys, release_expired, store_event,
};
pub use inventory::Inventory;
