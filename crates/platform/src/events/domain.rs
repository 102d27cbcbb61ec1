//! Rules for events and ticket types.

use std::sync::Arc;

use kernel::{
    Permission, Stmt, clock,
    error::Checks,
    events::emit,
    ids::{EventId, TicketTypeId},
    parse,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    EventCancelled, EventCreated, EventPublished, TicketTypeCreated,
    error::{Error, Result},
    store,
};
use crate::{
    App,
    identity::{Actor, Tenant},
};

/// Where an event stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Draft,
    Published,
    /// Called off: off the storefront; its orders are cancelled and refunded.
    Cancelled,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Draft => "draft",
            EventStatus::Published => "published",
            EventStatus::Cancelled => "cancelled",
        }
    }
}

impl TryFrom<String> for EventStatus {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match s.as_str() {
            "draft" => Ok(EventStatus::Draft),
            "published" => Ok(EventStatus::Published),
            "cancelled" => Ok(EventStatus::Cancelled),
            other => Err(format!("unknown event status {other:?}")),
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TicketTypeView {
    pub id: TicketTypeId,
    pub event_id: EventId,
    pub name: String,
    pub price_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
    pub capacity: i64,
    pub sale_starts_at: Option<String>,
    pub sale_ends_at: Option<String>,
    pub max_per_order: Option<i64>,
    #[serde(skip)]
    pub sale_window: (Option<i64>, Option<i64>),
}

impl TicketTypeView {
    /// Whether the type is on sale at `now` (microseconds).
    pub fn on_sale_at(&self, now: i64) -> bool {
        self.sale_window.0.is_none_or(|s| now >= s) && self.sale_window.1.is_none_or(|e| now < e)
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: EventId,
    pub name: String,
    pub starts_at: String,
    pub ends_at: String,
    /// IANA time zone of the venue.
    pub timezone: String,
    pub status: EventStatus,
    pub created_at: String,
    pub ticket_types: Vec<TicketTypeView>,
    #[serde(skip)]
    pub starts_at_micros: i64,
    #[serde(skip)]
    pub ends_at_micros: i64,
}

/// An event as the other slices see it.
#[derive(Clone, Debug)]
pub struct Catalog {
    pub tenant: Tenant,
    pub event: EventView,
}

impl Catalog {
    pub fn ticket_type(&self, id: TicketTypeId) -> Option<&TicketTypeView> {
        self.event.ticket_types.iter().find(|t| t.id == id)
    }
    pub fn is_published(&self) -> bool {
        self.event.status == EventStatus::Published
    }
}

pub struct NewEvent {
    pub name: String,
    pub starts_at: String,
    pub ends_at: String,
    pub timezone: String,
}

fn parse_time(s: &str) -> std::result::Result<i64, String> {
    clock::parse_rfc3339(s)
        .ok_or_else(|| "must be an RFC 3339 time, e.g. 2026-12-31T20:00:00Z".into())
}

pub fn parse_timezone(s: &str) -> std::result::Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b))
        && !s.starts_with('/');
    if ok {
        Ok(s.to_string())
    } else {
        Err("must be an IANA time zone name, e.g. Africa/Johannesburg".into())
    }
}

pub async fn create_event(app: &App, actor: &Actor, input: NewEvent) -> Result<EventView> {
    let t = actor.require(Permission::EventsWrite)?;
    let mut c = Checks::default();
    let name = c.take("name", parse::name(&input.name, 200));
    let starts = c.take("starts_at", parse_time(&input.starts_at));
    let ends = c.take("ends_at", parse_time(&input.ends_at));
    let tz = c.take("timezone", parse_timezone(&input.timezone));
    if let (Some(s), Some(e)) = (starts, ends)
        && e <= s
    {
        c.fail("ends_at", "must be after starts_at");
    }
    c.finish()?;
    let (Some(name), Some(starts), Some(ends), Some(tz)) = (name, starts, ends, tz) else {
        return Err(Error::Invalid(Vec::new()));
    };
    let now = app.kernel.now();
    let row = store::EventRow {
        id: EventId::new(),
        name,
        starts_at: starts,
        ends_at: ends,
        timezone: tz,
        status: EventStatus::Draft,
        created_at: now,
    };
    let created = EventCreated {
        org_id: t.org(),
        event_id: row.id,
        name: row.name.clone(),
        starts_at: clock::rfc3339(starts),
        ends_at: clock::rfc3339(ends),
    };
    let audit = actor
        .audit("event.create", "event")
        .object(row.id)
        .after(&created)
        .stmt(now);
    app.db()
        .write_grouped(vec![
            store::insert_event(t, &row),
            emit(&created, now)?,
            audit,
        ])
        .await?;
    Ok(row.into_view(Vec::new()))
}

pub struct NewTicketType {
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub capacity: i64,
    pub sale_starts_at: Option<String>,
    pub sale_ends_at: Option<String>,
    pub max_per_order: Option<i64>,
}

pub fn parse_currency(s: &str) -> std::result::Result<String, String> {
    if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(s.to_string())
    } else {
        Err("must be an ISO 4217 code, e.g. ZAR".into())
    }
}

pub const MAX_CAPACITY: i64 = 10_000_000;
pub const MAX_PRICE_CENTS: i64 = 100_000_000_000;
pub const MAX_PER_ORDER_LIMIT: i64 = 1000;

pub async fn add_ticket_type(
    app: &App,
    actor: &Actor,
    event: EventId,
    input: NewTicketType,
) -> Result<TicketTypeView> {
    let t = actor.require(Permission::EventsWrite)?;
    if store::event(app.db(), t, event).await?.is_none() {
        return Err(Error::NotFound);
    }
    let mut c = Checks::default();
    let name = c.take("name", parse::name(&input.name, 200));
    if !(0..=MAX_PRICE_CENTS).contains(&input.price_cents) {
        c.fail("price_cents", "must be between 0 and 100000000000");
    }
    let currency = c.take("currency", parse_currency(&input.currency));
    if !(1..=MAX_CAPACITY).contains(&input.capacity) {
        c.fail("capacity", "must be at least 1 and at most 10000000");
    }
    let sale_starts = match &input.sale_starts_at {
        Some(s) => c.take("sale_starts_at", parse_time(s)),
        None => None,
    };
    let sale_ends = match &input.sale_ends_at {
        Some(s) => c.take("sale_ends_at", parse_time(s)),
        None => None,
    };
    if let (Some(s), Some(e)) = (sale_starts, sale_ends)
        && e <= s
    {
        c.fail("sale_ends_at", "must be after sale_starts_at");
    }
    if let Some(m) = input.max_per_order
        && !(1..=MAX_PER_ORDER_LIMIT).contains(&m)
    {
        c.fail("max_per_order", "must be between 1 and 1000");
    }
    c.finish()?;
    let (Some(name), Some(currency)) = (name, currency) else {
        return Err(Error::Invalid(Vec::new()));
    };
    let row = store::TicketTypeRow {
        id: TicketTypeId::new(),
        event_id: event,
        name,
        price_cents: input.price_cents,
        currency,
        capacity: input.capacity,
        sale_starts_at: sale_starts,
        sale_ends_at: sale_ends,
        max_per_order: input.max_per_order,
    };
    let now = app.kernel.now();
    let created = TicketTypeCreated {
        org_id: t.org(),
        event_id: event,
        ticket_type_id: row.id,
        capacity: row.capacity,
        price_cents: row.price_cents,
        currency: row.currency.clone(),
    };
    let audit = actor
        .audit("ticket_type.create", "ticket_type")
        .object(row.id)
        .after(&created)
        .stmt(now);
    app.db()
        .write_grouped(vec![
            store::insert_ticket_type(t, &row, now),
            emit(&created, now)?,
            audit,
        ])
        .await?;
    super::invalidate(app, t, event).await;
    Ok(row.into_view())
}

pub async fn publish(app: &App, actor: &Actor, event: EventId) -> Result<EventView> {
    let t = actor.require(Permission::EventsWrite)?;
    let Some(catalog) = store::load_catalog(app.db(), t, event).await? else {
        return Err(Error::NotFound);
    };
    if catalog.event.ticket_types.is_empty() {
        return Err(Error::field(
            "ticket_types",
            "add a ticket type before publishing",
        ));
    }
    if catalog.event.status == EventStatus::Draft {
        let now = app.kernel.now();
        let publish: Stmt = store::set_status(t, event, EventStatus::Draft, EventStatus::Published);
        let announce = Arc::new(emit(
            &EventPublished {
                org_id: t.org(),
                event_id: event,
            },
            now,
        )?);
        let audit = Arc::new(
            actor
                .audit("event.publish", "event")
                .object(event)
                .before(serde_json::json!({"status": "draft"}))
                .after(serde_json::json!({"status": "published"}))
                .stmt(now),
        );
        // Announced (and audited) once, by whichever request moved it from draft.
        app.db()
            .transact_grouped(Box::new(move |tx| {
                let (publish, announce, audit) = (publish.clone(), announce.clone(), audit.clone());
                Box::pin(async move {
                    if publish.execute_in(tx).await? == 0 {
                        return Ok(false);
                    }
                    announce.execute_in(tx).await?;
                    audit.execute_in(tx).await?;
                    Ok(true)
                })
            }))
            .await?;
        super::invalidate(app, t, event).await;
    }
    let mut view = catalog.event.clone();
    view.status = EventStatus::Published;
    Ok(view)
}

/// Calls the event off: it leaves the storefront at once, and every order
/// of it is cancelled and refunded by a job (`event.cancelled`), each buyer
/// told. Cancelling again changes nothing.
pub async fn cancel(app: &App, actor: &Actor, event: EventId) -> Result<EventView> {
    let t = actor.require(Permission::EventsWrite)?;
    let Some(catalog) = store::load_catalog(app.db(), t, event).await? else {
        return Err(Error::NotFound);
    };
    let from = catalog.event.status;
    if from != EventStatus::Cancelled {
        let now = app.kernel.now();
        let mut tx = app.db().begin().await?;
        if store::set_status(t, event, from, EventStatus::Cancelled)
            .execute_in(&mut tx)
            .await?
            == 1
        {
            emit(
                &EventCancelled {
                    org_id: t.org(),
                    event_id: event,
                },
                now,
            )?
            .execute_in(&mut tx)
            .await?;
            actor
                .audit("event.cancel", "event")
                .object(event)
                .before(serde_json::json!({"status": from}))
                .after(serde_json::json!({"status": "cancelled"}))
                .stmt(now)
                .execute_in(&mut tx)
                .await?;
            tx.commit().await?;
        }
        super::invalidate(app, t, event).await;
    }
    let mut view = catalog.event.clone();
    view.status = EventStatus::Cancelled;
    Ok(view)
}

pub async fn get_event(app: &App, actor: &Actor, event: EventId) -> Result<EventView> {
    let t = actor.require(Permission::EventsRead)?;
    match store::load_catalog(app.db(), t, event).await? {
        Some(c) => Ok(c.event),
        None => Err(Error::NotFound),
    }
}

pub async fn list_events(
    app: &App,
    actor: &Actor,
    limit: i64,
    after: Option<EventId>,
) -> Result<(Vec<EventView>, Option<EventId>)> {
    let t = actor.require(Permission::EventsRead)?;
    let rows = store::list_events(app.db(), t, limit + 1, after).await?;
    let more = rows.len() as i64 > limit;
    let mut views: Vec<EventView> = rows
        .into_iter()
        .take(limit as usize)
        .map(|r| r.into_view(Vec::new()))
        .collect();
    let next = if more {
        views.last().map(|v| v.id)
    } else {
        None
    };
    for v in &mut views {
        if let Some(c) = super::catalog(app, t, v.id).await? {
            v.ticket_types = c.event.ticket_types.clone();
        }
    }
    Ok((views, next))
}
