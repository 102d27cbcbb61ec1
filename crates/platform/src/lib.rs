//! The vertical slices of VoelgoedEvents, one module each:
//!
//! - [`identity`]: organizations, users, memberships, API keys, sessions;
//! - [`events`]: events, ticket types, publishing, the storefront catalog;
//! - [`sales`]: inventory, holds, checkout, orders, idempotency;
//! - [`tickets`]: issued tickets, their signed codes, QR rendering;
//! - [`scanning`]: devices, pairing, admission at the gate;
//! - [`live`]: live sales and check-in figures over server-sent events;
//! - [`ops`]: health, readiness.
//!
//! A slice reaches another only through that slice's `mod.rs` API.

use std::{ops::Deref, sync::Arc};

use kernel::Kernel;

pub mod events;
pub mod identity;
pub mod live;
pub mod ops;
pub mod sales;
pub mod scanning;
pub mod tickets;
pub mod web;

/// Everything a handler needs: the kernel handles and each slice's hot tier.
#[derive(Clone)]
pub struct App(Arc<AppInner>);

pub struct AppInner {
    pub kernel: Kernel,
    pub identity: identity::Hot,
    pub catalog: events::Hot,
    pub inventory: sales::Inventory,
    pub tickets: tickets::Hot,
    pub gates: scanning::Gates,
}

impl Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    pub fn new(kernel: Kernel) -> App {
        let inventory = sales::Inventory::new(&kernel);
        let gates = scanning::Gates::new(&kernel);
        App(Arc::new(AppInner {
            identity: identity::Hot::new(),
            catalog: events::Hot::new(),
            tickets: tickets::Hot::new(),
            inventory,
            gates,
            kernel,
        }))
    }

    pub fn db(&self) -> &kernel::Db {
        &self.kernel.db
    }
}

/// The whole HTTP surface and its OpenAPI document.
pub fn router(app: App) -> axum::Router {
    web::router(app)
}
