//! Series: one event sold on several dates or time slots. The series is an
//! event made with `series: true`; each date added to it is an event of its
//! own (`series_id` names the series), so it has its own inventory, seats,
//! waiting list, gates and check-in, and everything that works for an event
//! works for a date. What the dates share is the catalog: the series'
//! ticket types, copied to a date when it is added, each copy following its
//! series type (`template_id`): a type added to the series is added to every
//! date, and a change of its terms (name, price, sale window, limits,
//! questions, hidden, retired, order) is made on every date too. Capacity,
//! quotas and the seat map are inventory: a date starts with copies of the
//! series' and they are changed per date afterwards.
//!
//! The series itself is never sold (a hold on it is refused): buyers pick a
//! date. Publishing the series publishes its dates still in draft;
//! cancelling it cancels every date (each refunds its own orders).

use std::collections::HashMap;

use kernel::{
    Permission, clock,
    error::Checks,
    events::emit,
    ids::{EventId, QuotaId, TicketTypeId},
    parse,
};

use super::{
    EventCreated, EventPublished, QuotaCreated, SeatingUpdated, TicketTypeCreated,
    domain::{EventStatus, EventView, QuotaView, parse_time},
    error::{Error, Result},
    store::{self, TicketTypeRow},
};
use crate::{
    App,
    identity::{Actor, Tenant},
};

/// At most this many dates in one series.
pub const MAX_DATES: usize = 1000;

pub struct NewDate {
    pub starts_at: String,
    pub ends_at: String,
    /// The series' name when left out.
    pub name: Option<String>,
}

/// A date's copy of the series' ticket type `row`.
pub(super) fn follower(row: &TicketTypeRow, date: EventId) -> TicketTypeRow {
    TicketTypeRow {
        id: TicketTypeId::new(),
        event_id: date,
        template_id: Some(row.id),
        // Each date's own: absolute times would fit one date only.
        valid_from: None,
        valid_until: None,
        ..row.clone()
    }
}

/// The event a ticket type's making announces (the live figures count from it).
pub(super) fn created(t: &Tenant, row: &TicketTypeRow) -> TicketTypeCreated {
    TicketTypeCreated {
        org_id: t.org(),
        event_id: row.event_id,
        ticket_type_id: row.id,
        capacity: row.capacity,
        price_cents: row.price_cents,
        currency: row.currency.clone(),
    }
}

/// Adds a date to a series: an event of its own in the series' time zone,
/// with a copy of each of the series' ticket types (following it), quotas
/// and seat map; published when the series is. One write: the date is
/// there whole or not at all.
pub async fn add_date(
    app: &App,
    actor: &Actor,
    series: EventId,
    input: NewDate,
) -> Result<EventView> {
    let t = actor.require(Permission::EventsWrite)?;
    let Some(catalog) = store::load_catalog(app.db(), t, series).await? else {
        return Err(Error::NotFound);
    };
    let ev = &catalog.event;
    let mut c = Checks::default();
    if !ev.series {
        c.fail(
            "event_id",
            "is not a series: dates are added to an event made with \"series\": true",
        );
    } else if ev.status == EventStatus::Cancelled {
        c.fail("event_id", "the series is cancelled");
    }
    let name = match &input.name {
        Some(n) => c.take("name", parse::name(n, 200)),
        None => Some(ev.name.clone()),
    };
    let starts = c.take("starts_at", parse_time(&input.starts_at));
    let ends = c.take("ends_at", parse_time(&input.ends_at));
    if let (Some(s), Some(e)) = (starts, ends)
        && e <= s
    {
        c.fail("ends_at", "must be after starts_at");
    }
    let existing = store::dates(app.db(), t, series).await?;
    if existing.len() >= MAX_DATES {
        c.fail("dates", "a series has at most 1000 dates");
    }
    c.finish()?;
    let (Some(name), Some(starts), Some(ends)) = (name, starts, ends) else {
        return Err(Error::Invalid(Vec::new()));
    };
    let now = app.kernel.now();
    let date = store::EventRow {
        id: EventId::new(),
        name,
        starts_at: starts,
        ends_at: ends,
        timezone: ev.timezone.clone(),
        status: ev.status,
        created_at: now,
        transfers_allowed: ev.transfers.allowed.into(),
        transfer_deadline: ev.transfer_deadline_micros,
        series: 0,
        series_id: Some(series),
    };
    let announced = EventCreated {
        org_id: t.org(),
        event_id: date.id,
        name: date.name.clone(),
        starts_at: clock::rfc3339(starts),
        ends_at: clock::rfc3339(ends),
        series_id: Some(series),
    };
    let mut writes = vec![store::insert_event(t, &date), emit(&announced, now)?];
    // The catalog: every ticket type, as a copy that follows it.
    let mut types: HashMap<TicketTypeId, TicketTypeId> = HashMap::new();
    for tt in &ev.ticket_types {
        let Some(row) = store::ticket_type_row(app.db(), t, series, tt.id).await? else {
            continue;
        };
        let copy = follower(&row, date.id);
        types.insert(row.id, copy.id);
        writes.push(store::insert_ticket_type(t, &copy, now));
        writes.push(emit(&created(t, &copy), now)?);
    }
    // Inventory starts as the series': its quotas and its seat map.
    let mut quotas = HashMap::new();
    for q in &catalog.quotas {
        let view = QuotaView {
            id: QuotaId::new(),
            event_id: date.id,
            name: q.name.clone(),
            capacity: q.capacity,
            ticket_type_ids: q
                .ticket_type_ids
                .iter()
                .filter_map(|tt| types.get(tt).copied())
                .collect(),
            created_at: clock::rfc3339(now),
        };
        if view.ticket_type_ids.is_empty() {
            continue;
        }
        quotas.insert(q.id, view.id);
        writes.extend(store::insert_quota(t, &view, now));
        writes.push(emit(
            &QuotaCreated {
                org_id: t.org(),
                event_id: date.id,
                quota_id: view.id,
                capacity: view.capacity,
                ticket_type_ids: view.ticket_type_ids.clone(),
            },
            now,
        )?);
    }
    if let Some((doc, seats)) = super::seating::copied(app.db(), t, series, &types, &quotas).await?
    {
        writes.push(store::put_seat_map(t, date.id, &doc, now));
        writes.push(emit(
            &SeatingUpdated {
                org_id: t.org(),
                event_id: date.id,
                seats,
            },
            now,
        )?);
    }
    if date.status == EventStatus::Published {
        writes.push(emit(
            &EventPublished {
                org_id: t.org(),
                event_id: date.id,
            },
            now,
        )?);
    }
    writes.push(
        actor
            .audit("event.add_date", "event")
            .object(date.id)
            .after(&announced)
            .stmt(now),
    );
    app.db().write_grouped(writes).await?;
    super::invalidate(app, t, series).await;
    match store::load_catalog(app.db(), t, date.id).await? {
        Some(c) => Ok(c.event),
        None => Err(Error::NotFound),
    }
}

/// A series' dates, earliest first, each with its ticket types (404 when
/// there is no such event; none when it is not a series).
pub async fn dates(app: &App, t: &Tenant, series: EventId) -> Result<Vec<EventView>> {
    if store::event(app.db(), t, series).await?.is_none() {
        return Err(Error::NotFound);
    }
    let mut out = Vec::new();
    for row in store::dates(app.db(), t, series).await? {
        let id = row.id;
        match super::catalog(app, t, id).await? {
            Some(c) => out.push(c.event.clone()),
            None => out.push(row.into_view(Vec::new())),
        }
    }
    Ok(out)
}

/// [`dates`] as an organizer asks.
pub async fn list_dates(app: &App, actor: &Actor, series: EventId) -> Result<Vec<EventView>> {
    let t = actor.require(Permission::EventsRead)?;
    dates(app, t, series).await
}
