//! Events and ticket types: what an organizer builds and publishes.
//!
//! Owns: `events`, `ticket_types`.
//! Emits: `event.created`, `ticket_type.created`, `event.published`.
//! Consumes: nothing.
//! Invariants: a draft event is invisible to buyers; a ticket type belongs to
//! exactly one event of the same org; capacity is at least 1.
//!
//! Other slices read events through [`catalog`], served from the hot tier.

mod api;
mod domain;
mod error;
mod store;
mod views;

use std::{sync::Arc, time::Duration};

pub use domain::{
    Catalog, EventStatus, EventView, NewEvent, NewTicketType, TicketTypeView, add_ticket_type,
    create_event, get_event, list_events, publish,
};
pub use error::Error;
use kernel::{
    ApiResult, DomainEvent, Kernel, Slice,
    ids::{EventId, OrgId, TicketTypeId},
};
use serde::{Deserialize, Serialize};

use crate::{App, identity::Tenant};

/// An event was created (as a draft).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventCreated {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub name: String,
    pub starts_at: String,
    pub ends_at: String,
}

impl DomainEvent for EventCreated {
    const NAME: &'static str = "event.created";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

/// A ticket type was added to an event.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TicketTypeCreated {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub ticket_type_id: TicketTypeId,
    pub capacity: i64,
    pub price_cents: i64,
    pub currency: String,
}

impl DomainEvent for TicketTypeCreated {
    const NAME: &'static str = "ticket_type.created";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

/// An event went on the storefront.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventPublished {
    pub org_id: OrgId,
    pub event_id: EventId,
}

impl DomainEvent for EventPublished {
    const NAME: &'static str = "event.published";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

/// An event was called off; its orders are to be cancelled and refunded.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventCancelled {
    pub org_id: OrgId,
    pub event_id: EventId,
}

impl DomainEvent for EventCancelled {
    const NAME: &'static str = "event.cancelled";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

pub fn slice(_kernel: &Kernel) -> Slice<App> {
    Slice::new("events")
        .routes(api::routes())
        .pages(views::routes())
        .state(Hot::new())
}

/// The catalog hot tier: an event and its ticket types, as the storefront,
/// holds and checkout read them. Local writes invalidate at once; other
/// nodes see a change within the entry's time to live.
pub struct Hot {
    catalogs: moka::future::Cache<(OrgId, EventId), Option<Arc<Catalog>>>,
}

impl Hot {
    pub fn new() -> Hot {
        Hot {
            catalogs: moka::future::Cache::builder()
                .max_capacity(50_000)
                .time_to_live(Duration::from_secs(2))
                .build(),
        }
    }
}

impl Default for Hot {
    fn default() -> Self {
        Self::new()
    }
}

/// The event with its ticket types, draft or not; `None` when the tenant
/// has no such event. Loaded once per time-to-live, however many ask at once.
pub async fn catalog(app: &App, t: &Tenant, event: EventId) -> ApiResult<Option<Arc<Catalog>>> {
    // The hit path builds no loader future (which is large, and would make
    // every caller's future large).
    if let Some(c) = app.state::<Hot>().catalogs.get(&(t.org(), event)).await {
        return Ok(c);
    }
    Box::pin(load_catalog(app, t, event)).await
}

async fn load_catalog(app: &App, t: &Tenant, event: EventId) -> ApiResult<Option<Arc<Catalog>>> {
    let db = app.db().clone();
    let t2 = t.clone();
    app.state::<Hot>()
        .catalogs
        .try_get_with((t.org(), event), async move {
            store::load_catalog(&db, &t2, event)
                .await
                .map(|c| c.map(Arc::new))
        })
        .await
        .map_err(|e| kernel::ApiError::from_db(&e))
}

pub(crate) async fn invalidate(app: &App, t: &Tenant, event: EventId) {
    app.state::<Hot>()
        .catalogs
        .invalidate(&(t.org(), event))
        .await;
}
