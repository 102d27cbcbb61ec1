//! Events and ticket types: what an organizer builds and publishes.
//!
//! Owns: `events`, `ticket_types`.
//! Emits: `event.published` (outbox).
//! Invariants: a draft event is invisible to buyers; a ticket type belongs to
//! exactly one event of the same org; capacity is at least 1.
//!
//! Other slices read events through [`catalog`], served from the hot tier.

mod api;
mod domain;
mod store;

use std::{sync::Arc, time::Duration};

pub use api::routes;
pub use domain::{
    Catalog, EventStatus, EventView, NewEvent, NewTicketType, TicketTypeView, add_ticket_type,
    create_event, get_event, list_events, publish,
};
use kernel::{
    ApiResult,
    ids::{EventId, OrgId},
};

use crate::App;

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

/// The event with its ticket types, draft or not; `None` when the org has no
/// such event. Loaded once per time-to-live, however many ask at once.
pub async fn catalog(app: &App, org: OrgId, event: EventId) -> ApiResult<Option<Arc<Catalog>>> {
    let db = app.db().clone();
    app.catalog
        .catalogs
        .try_get_with((org, event), async move {
            store::load_catalog(&db, org, event)
                .await
                .map(|c| c.map(Arc::new))
        })
        .await
        .map_err(kernel::ApiError::internal)
}

pub(crate) async fn invalidate(app: &App, org: OrgId, event: EventId) {
    app.catalog.catalogs.invalidate(&(org, event)).await;
}
