//! Events' tables. Every statement names the tenant's org.

use kernel::{
    Db, Stmt, clock, db_run,
    ids::{EventId, TicketTypeId},
};

use super::domain::{Catalog, EventStatus, EventView, TicketTypeView};
use crate::identity::Tenant;

#[derive(sqlx::FromRow)]
pub struct EventRow {
    pub id: EventId,
    pub name: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub timezone: String,
    #[sqlx(try_from = "String")]
    pub status: EventStatus,
    pub created_at: i64,
}

impl EventRow {
    pub fn into_view(self, ticket_types: Vec<TicketTypeView>) -> EventView {
        EventView {
            id: self.id,
            name: self.name,
            starts_at: clock::rfc3339(self.starts_at),
            ends_at: clock::rfc3339(self.ends_at),
            timezone: self.timezone,
            status: self.status,
            created_at: clock::rfc3339(self.created_at),
            ticket_types,
            starts_at_micros: self.starts_at,
            ends_at_micros: self.ends_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct TicketTypeRow {
    pub id: TicketTypeId,
    pub event_id: EventId,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub capacity: i64,
    pub sale_starts_at: Option<i64>,
    pub sale_ends_at: Option<i64>,
    pub max_per_order: Option<i64>,
}

impl TicketTypeRow {
    pub fn into_view(self) -> TicketTypeView {
        TicketTypeView {
            id: self.id,
            event_id: self.event_id,
            name: self.name,
            price_cents: self.price_cents,
            currency: self.currency,
            capacity: self.capacity,
            sale_starts_at: self.sale_starts_at.map(clock::rfc3339),
            sale_ends_at: self.sale_ends_at.map(clock::rfc3339),
            max_per_order: self.max_per_order,
            sale_window: (self.sale_starts_at, self.sale_ends_at),
        }
    }
}

const EVENT_COLS: &str = "id, name, starts_at, ends_at, timezone, status, created_at";

pub fn insert_event(t: &Tenant, e: &EventRow) -> Stmt {
    Stmt::new(
        "INSERT INTO events (id, org_id, name, starts_at, ends_at, timezone, status, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(e.id)
    .bind(t.org())
    .bind(e.name.clone())
    .bind(e.starts_at)
    .bind(e.ends_at)
    .bind(e.timezone.clone())
    .bind(e.status.as_str())
    .bind(e.created_at)
}

#[tracing::instrument(skip_all)]
pub async fn event(db: &Db, t: &Tenant, id: EventId) -> Result<Option<EventRow>, sqlx::Error> {
    let sql = format!("SELECT {EVENT_COLS} FROM events WHERE org_id = $1 AND id = $2");
    db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(t.org()).bind(id).fetch_optional(p).await)
}

#[tracing::instrument(skip_all)]
pub async fn list_events(
    db: &Db,
    t: &Tenant,
    limit: i64,
    after: Option<EventId>,
) -> Result<Vec<EventRow>, sqlx::Error> {
    match after {
        Some(after) => {
            let sql = format!(
                "SELECT {EVENT_COLS} FROM events WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            );
            db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(t.org()).bind(after).bind(limit).fetch_all(p).await)
        }
        None => {
            let sql =
                format!("SELECT {EVENT_COLS} FROM events WHERE org_id = $1 ORDER BY id LIMIT $2");
            db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(t.org()).bind(limit).fetch_all(p).await)
        }
    }
}

pub fn insert_ticket_type(t: &Tenant, tt: &TicketTypeRow, now: i64) -> Stmt {
    Stmt::new(
        "INSERT INTO ticket_types (org_id, id, event_id, name, price_cents, currency, capacity,
             sale_starts_at, sale_ends_at, max_per_order, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(t.org())
    .bind(tt.id)
    .bind(tt.event_id)
    .bind(tt.name.clone())
    .bind(tt.price_cents)
    .bind(tt.currency.clone())
    .bind(tt.capacity)
    .bind(tt.sale_starts_at)
    .bind(tt.sale_ends_at)
    .bind(tt.max_per_order)
    .bind(now)
}

/// Moves the event to `to` only from `from`; whether it moved.
pub fn set_status(t: &Tenant, id: EventId, from: EventStatus, to: EventStatus) -> Stmt {
    Stmt::new("UPDATE events SET status = $1 WHERE org_id = $2 AND id = $3 AND status = $4")
        .bind(to.as_str())
        .bind(t.org())
        .bind(id)
        .bind(from.as_str())
}

#[tracing::instrument(skip_all)]
pub async fn load_catalog(
    db: &Db,
    t: &Tenant,
    id: EventId,
) -> Result<Option<Catalog>, sqlx::Error> {
    let Some(event) = self::event(db, t, id).await? else {
        return Ok(None);
    };
    let sql = "SELECT id, event_id, name, price_cents, currency, capacity, sale_starts_at, sale_ends_at, max_per_order
               FROM ticket_types WHERE org_id = $1 AND event_id = $2 ORDER BY id";
    let types: Vec<TicketTypeRow> =
        db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(id).fetch_all(p).await)?;
    Ok(Some(Catalog {
        tenant: t.clone(),
        event: event.into_view(types.into_iter().map(TicketTypeRow::into_view).collect()),
    }))
}
