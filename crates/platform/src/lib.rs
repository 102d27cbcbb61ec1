//! The vertical slices of VoelgoedEvents, one module each:
//!
//! - [`identity`]: organizations, users, credentials (API keys, sessions,
//!   device tokens), the tenant context;
//! - [`events`]: events, ticket types, publishing, the catalog;
//! - [`sales`]: inventory, holds, checkout, orders;
//! - [`tickets`]: issued tickets, their signed codes, QR rendering;
//! - [`scanning`]: gate devices and admission;
//! - [`live`]: live sales and check-in figures over server-sent events;
//! - [`webhooks`]: signed deliveries of domain events to integrators;
//! - [`mail`]: e-mail to buyers and organizers, and the PDF tickets;
//! - [`exports`]: attendee, order and check-in exports; sales reports;
//! - [`audit`]: the audit log as owners read it, and its sealer;
//! - [`ops`]: health, readiness, upkeep.
//!
//! A slice reaches another only through that slice's `mod.rs` (its public
//! functions and its events), never through its tables. Each slice declares
//! what it brings in one `slice()` function (see `kernel::slice`); the
//! list below is the only place that names them all.

use std::{
    any::{Any, TypeId},
    ops::Deref,
    sync::Arc,
};

use kernel::{Kernel, Slice, slice::Runtime};

pub mod web;

#[cfg(test)]
mod testing;

// The slices. Adding one is its `mod` line here and its place in
// `slices()` below; nothing outside the platform crate changes.
pub mod audit;
pub mod events;
pub mod exports;
pub mod identity;
pub mod live;
pub mod mail;
pub mod money;
pub mod ops;
pub mod sales;
pub mod scanning;
pub mod tickets;
pub mod webhooks;

/// Every slice, in the order their routes and consumers are wired.
pub fn slices(kernel: &Kernel) -> Vec<Slice<App>> {
    vec![
        identity::slice(kernel),
        events::slice(kernel),
        sales::slice(kernel),
        tickets::slice(kernel),
        scanning::slice(kernel),
        live::slice(kernel),
        webhooks::slice(kernel),
        mail::slice(kernel),
        exports::slice(kernel),
        audit::slice(kernel),
        ops::slice(kernel),
    ]
}

/// Everything a handler, consumer or job needs: the kernel's handles and
/// each slice's in-process state (its hot tier), found by type.
#[derive(Clone)]
pub struct App(Arc<AppInner>);

pub struct AppInner {
    pub kernel: Kernel,
    states: Vec<(TypeId, Arc<dyn Any + Send + Sync>)>,
}

impl Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

impl App {
    pub fn db(&self) -> &kernel::Db {
        &self.kernel.db
    }

    /// A slice's state. Every state is registered at start by its slice, so
    /// a missing one is a wiring bug caught by any test that starts a node.
    pub fn state<T: Any + Send + Sync>(&self) -> &T {
        let id = TypeId::of::<T>();
        self.states
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, s)| s.downcast_ref::<T>())
            .unwrap_or_else(|| {
                panic!(
                    "no slice registered the state {}",
                    std::any::type_name::<T>()
                )
            })
    }
}

/// The platform put together: the application context, its HTTP surface,
/// and the background work its slices declared (not yet started).
pub struct Platform {
    pub app: App,
    pub router: axum::Router,
    pub runtime: Runtime<App>,
}

/// Wires every slice onto `kernel`.
pub fn assemble(kernel: Kernel) -> Platform {
    let wiring = kernel::slice::wire(slices(&kernel));
    let app = App(Arc::new(AppInner {
        kernel,
        states: wiring.states,
    }));
    let router = web::router(app.clone(), wiring.api, wiring.pages);
    Platform {
        app,
        router,
        runtime: wiring.runtime,
    }
}
