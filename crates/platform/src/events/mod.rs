//! Events and ticket types: what an organizer builds and publishes.
//!
//! Owns: `events`, `ticket_types`, `quotas` (capacities shared by ticket
//! types), `vouchers` (discount codes; their uses are counted by sales).
//! Emits: `event.created`, `ticket_type.created`, `ticket_type.updated`, `event.published`,
//! `event.cancelled`, `quota.created`, `quota.deleted`, `voucher.created`.
//! Consumes: nothing.
//! Invariants: a draft event is invisible to buyers; a ticket type belongs to
//! exactly one event of the same org; capacity is at least 1.
//!
//! Other slices read events through [`catalog`], served from the hot tier.

mod api;
mod domain;
mod error;
mod layout_views;
pub mod layouts;
pub mod questions;
mod seating;
mod series;
mod store;
mod ticket_types;
mod views;
mod vouchers;

use std::{sync::Arc, time::Duration};

pub use domain::{
    Catalog, EventStatus, EventView, NewEvent, NewQuota, NewTicketType, QuotaView, TicketTypeView,
    TransferPolicy, add_ticket_type, create_event, create_quota, delete_quota, get_event,
    list_events, list_quotas, local_input, local_to_rfc3339, publish, put_transfer_policy,
    shown_in,
};
pub use error::Error;
use kernel::{
    ApiResult, DomainEvent, Kernel, Slice,
    ids::{EventId, OrgId, QuotaId, TicketTypeId, VoucherId},
};
pub use questions::{Question, QuestionInput, QuestionKind};
pub use seating::{
    Area, AreaInput, Drawing, DrawnArea, DrawnSeat, DrawnText, RowInput, Seat, SeatFlag, SeatInput,
    SeatMap, SeatMapInput, SeatingUpdated, SectionInput, draw, put_seating, seating,
};
use serde::{Deserialize, Serialize};
pub use series::{MAX_DATES, NewDate, add_date, dates, list_dates};
pub use ticket_types::{TicketTypePatch, TicketTypeUpdated, update_ticket_type};
pub use vouchers::{
    NewVoucher, VoucherCreated, VoucherView, create_voucher, create_vouchers, list_vouchers,
    voucher, voucher_by_code,
};

use crate::{App, identity::Tenant};

/// An event was created (as a draft).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventCreated {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub name: String,
    pub starts_at: String,
    pub ends_at: String,
    /// The series it is a date of.
    #[serde(default)]
    pub series_id: Option<EventId>,
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

/// A quota was added to an event.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuotaCreated {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub quota_id: QuotaId,
    pub capacity: i64,
    pub ticket_type_ids: Vec<TicketTypeId>,
}

impl DomainEvent for QuotaCreated {
    const NAME: &'static str = "quota.created";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

/// A quota was removed from an event.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuotaDeleted {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub quota_id: QuotaId,
}

impl DomainEvent for QuotaDeleted {
    const NAME: &'static str = "quota.deleted";
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
    /// Local writes so far (all events): a load that read the database
    /// while one was being written reads again, so it cannot put back
    /// what the write's invalidation removed.
    writes: std::sync::atomic::AtomicU64,
    /// Vouchers by code (upper case) and by id; never changed once made.
    vouchers: moka::future::Cache<(OrgId, EventId, String), Option<Arc<VoucherView>>>,
    vouchers_by_id: moka::future::Cache<(OrgId, VoucherId), Option<Arc<VoucherView>>>,
    /// Seat maps; a local write invalidates at once.
    seat_maps: moka::future::Cache<(OrgId, EventId), Option<Arc<SeatMap>>>,
}

impl Hot {
    pub fn new() -> Hot {
        Hot {
            catalogs: moka::future::Cache::builder()
                .max_capacity(50_000)
                .time_to_live(Duration::from_secs(2))
                .build(),
            writes: std::sync::atomic::AtomicU64::new(0),
            vouchers: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(2))
                .build(),
            vouchers_by_id: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            seat_maps: moka::future::Cache::builder()
                .max_capacity(1_000)
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
    let hot = app.state::<Hot>();
    hot.catalogs
        .try_get_with((t.org(), event), async move {
            use std::sync::atomic::Ordering;
            let mut tries = 0;
            loop {
                let seen = hot.writes.load(Ordering::Acquire);
                let c = store::load_catalog(&db, &t2, event).await?;
                tries += 1;
                // (Writes of other events count too: a few tries at most.)
                if hot.writes.load(Ordering::Acquire) == seen || tries == 3 {
                    return Ok(c.map(Arc::new));
                }
            }
        })
        .await
        .map_err(|e: Arc<sqlx::Error>| kernel::ApiError::from_db(&e))
}

/// The event's ticket types with a validity window of their own, as the
/// database has them now (the gate reloads them on `ticket_type.updated`,
/// which may reach it before the cached catalog is renewed).
pub async fn validity_windows(
    app: &App,
    t: &Tenant,
    event: EventId,
) -> ApiResult<Vec<(TicketTypeId, (Option<i64>, Option<i64>))>> {
    Ok(store::validity_windows(app.db(), t, event).await?)
}

/// A ticket type's capacity as the database has it now (not the cached
/// catalog's): what an inventory counter starts from.
pub async fn capacity_now(
    app: &App,
    t: &Tenant,
    event: EventId,
    tt: TicketTypeId,
) -> ApiResult<Option<i64>> {
    Ok(store::capacity(app.db(), t, event, tt).await?)
}

/// After a local write of the event's catalog (committed): the cached copy
/// goes, and a load under way reads again.
pub(crate) async fn invalidate(app: &App, t: &Tenant, event: EventId) {
    let hot = app.state::<Hot>();
    hot.writes.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    hot.catalogs.invalidate(&(t.org(), event)).await;
}
