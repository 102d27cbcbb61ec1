//! Events' tables.

use kernel::{
    Db, Tx,
    clock::{self, now_micros},
    db_run,
    ids::{EventId, OrgId, TicketTypeId},
    tx_run,
};

use super::domain::{Catalog, EventStatus, EventView, TicketTypeView};

#[derive(sqlx::FromRow)]
pub struct EventRow {
    pub id: EventId,
    pub org_id: OrgId,
    pub name: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub timezone: String,
    pub status: String,
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
            status: EventStatus::parse(&self.status),
            created_at: clock::rfc3339(self.created_at),
            ticket_types,
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

const EVENT_COLS: &str = "id, org_id, name, starts_at, ends_at, timezone, status, created_at";

#[tracing::instrument(skip_all)]
pub async fn insert_event(db: &Db, e: &EventRow) -> Result<(), sqlx::Error> {
    let sql =
        "INSERT INTO events (id, org_id, name, starts_at, ends_at, timezone, status, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    db_run!(db, p => sqlx::query(sql)
        .bind(e.id).bind(e.org_id).bind(&e.name).bind(e.starts_at).bind(e.ends_at)
        .bind(&e.timezone).bind(&e.status).bind(e.created_at)
        .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[tracing::instrument(skip_all)]
pub async fn event(db: &Db, org: OrgId, id: EventId) -> Result<Option<EventRow>, sqlx::Error> {
    let sql = format!("SELECT {EVENT_COLS} FROM events WHERE org_id = $1 AND id = $2");
    db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(org).bind(id).fetch_optional(p).await)
}

#[tracing::instrument(skip_all)]
pub async fn list_events(
    db: &Db,
    org: OrgId,
    limit: i64,
    after: Option<EventId>,
) -> Result<Vec<EventRow>, sqlx::Error> {
    match after {
        Some(after) => {
            let sql = format!(
                "SELECT {EVENT_COLS} FROM events WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            );
            db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(org).bind(after).bind(limit).fetch_all(p).await)
        }
        None => {
            let sql =
                format!("SELECT {EVENT_COLS} FROM events WHERE org_id = $1 ORDER BY id LIMIT $2");
            db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(org).bind(limit).fetch_all(p).await)
        }
    }
}

#[tracing::instrument(skip_all)]
pub async fn insert_ticket_type(db: &Db, org: OrgId, t: &TicketTypeRow) -> Result<(), sqlx::Error> {
    let sql =
        "INSERT INTO ticket_types (org_id, id, event_id, name, price_cents, currency, capacity,
                   sale_starts_at, sale_ends_at, max_per_order, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
    db_run!(db, p => sqlx::query(sql)
        .bind(org).bind(t.id).bind(t.event_id).bind(&t.name).bind(t.price_cents).bind(&t.currency)
        .bind(t.capacity).bind(t.sale_starts_at).bind(t.sale_ends_at).bind(t.max_per_order).bind(now_micros())
        .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[tracing::instrument(skip_all)]
pub async fn set_status(
    tx: &mut Tx,
    org: OrgId,
    id: EventId,
    status: EventStatus,
) -> Result<(), sqlx::Error> {
    let sql = "UPDATE events SET status = $1 WHERE org_id = $2 AND id = $3";
    tx_run!(tx, c => sqlx::query(sql).bind(status.as_str()).bind(org).bind(id).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[tracing::instrument(skip_all)]
pub async fn load_catalog(
    db: &Db,
    org: OrgId,
    id: EventId,
) -> Result<Option<Catalog>, sqlx::Error> {
    let Some(event) = self::event(db, org, id).await? else {
        return Ok(None);
    };
    let sql = "SELECT id, event_id, name, price_cents, currency, capacity, sale_starts_at, sale_ends_at, max_per_order
               FROM ticket_types WHERE org_id = $1 AND event_id = $2 ORDER BY id";
    let types: Vec<TicketTypeRow> =
        db_run!(db, p => sqlx::query_as(sql).bind(org).bind(id).fetch_all(p).await)?;
    Ok(Some(Catalog {
        org,
        event: event.into_view(types.into_iter().map(TicketTypeRow::into_view).collect()),
    }))
}
