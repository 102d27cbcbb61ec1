//! Scanning's tables: devices (what each scans for, and its role) and the
//! scan log.

use kernel::{
    Db, Stmt, db_run,
    ids::{DeviceId, EventId, GateId, ScanId, TicketId},
};

use crate::identity::Tenant;

fn join_ids<T: ToString>(ids: &[T]) -> String {
    ids.iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn split_ids<T: std::str::FromStr>(s: &str) -> Vec<T> {
    s.split_whitespace()
        .filter_map(|e| e.parse().ok())
        .collect()
}

/// A device as scanning keeps it.
#[derive(Clone, Debug)]
pub struct DeviceRow {
    pub id: DeviceId,
    pub name: String,
    pub events: Vec<EventId>,
    pub gates: Vec<GateId>,
    pub role: String,
    pub created_at: i64,
}

type Row = (DeviceId, String, String, String, String, i64);

fn from_row((id, name, events, gates, role, created_at): Row) -> DeviceRow {
    DeviceRow {
        id,
        name,
        events: split_ids(&events),
        gates: split_ids(&gates),
        role,
        created_at,
    }
}

pub fn insert_device(t: &Tenant, d: &DeviceRow) -> Stmt {
    Stmt::new(
        "INSERT INTO devices (org_id, id, name, event_ids, gate_ids, role, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(t.org())
    .bind(d.id)
    .bind(d.name.clone())
    .bind(join_ids(&d.events))
    .bind(join_ids(&d.gates))
    .bind(d.role.clone())
    .bind(d.created_at)
}

pub fn update_device(t: &Tenant, d: &DeviceRow) -> Stmt {
    Stmt::new(
        "UPDATE devices SET name = $3, event_ids = $4, gate_ids = $5, role = $6
         WHERE org_id = $1 AND id = $2",
    )
    .bind(t.org())
    .bind(d.id)
    .bind(d.name.clone())
    .bind(join_ids(&d.events))
    .bind(join_ids(&d.gates))
    .bind(d.role.clone())
}

const COLS: &str = "id, name, event_ids, gate_ids, role, created_at";

/// One device.
#[tracing::instrument(skip_all)]
pub async fn device(db: &Db, t: &Tenant, id: DeviceId) -> Result<Option<DeviceRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM devices WHERE org_id = $1 AND id = $2");
    let row: Option<Row> = db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(t.org()).bind(id).fetch_optional(p).await)?;
    Ok(row.map(from_row))
}

/// The org's devices, newest first.
pub async fn devices(db: &Db, t: &Tenant) -> Result<Vec<DeviceRow>, sqlx::Error> {
    let sql = format!("SELECT {COLS} FROM devices WHERE org_id = $1 ORDER BY created_at DESC, id");
    let rows: Vec<Row> = db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(t.org()).fetch_all(p).await)?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Every entry's time per ticket of the event (to load a gate's hot tier).
#[tracing::instrument(skip_all)]
pub async fn entries_for_event(
    db: &Db,
    t: &Tenant,
    event: EventId,
) -> Result<Vec<(TicketId, i64, bool)>, sqlx::Error> {
    let sql = "SELECT ticket_id, scanned_at, result = 'undone' FROM scans
               WHERE org_id = $1 AND event_id = $2 AND result IN ('admitted', 'undone') AND ticket_id IS NOT NULL
               ORDER BY scanned_at";
    db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(event).fetch_all(p).await)
}

/// A scan as the log shows it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ScanRow {
    pub id: ScanId,
    pub device_id: Option<DeviceId>,
    pub gate_id: Option<GateId>,
    pub ticket_id: Option<TicketId>,
    pub direction: String,
    pub result: String,
    pub reason: String,
    pub explanation: Option<String>,
    pub override_reason: Option<String>,
    pub scanned_at: i64,
}

/// A page of the event's scan log, oldest first, after `after`.
pub async fn scans(
    db: &Db,
    t: &Tenant,
    event: EventId,
    after: Option<ScanId>,
    ticket: Option<TicketId>,
    limit: i64,
) -> Result<Vec<ScanRow>, sqlx::Error> {
    let sql = "SELECT id, device_id, gate_id, ticket_id, direction, result, reason, explanation, override_reason, scanned_at
               FROM scans WHERE org_id = $1 AND event_id = $2 AND ($3 IS NULL OR id > $3) AND ($4 IS NULL OR ticket_id = $4)
               ORDER BY id LIMIT $5";
    db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(event).bind(after).bind(ticket).bind(limit).fetch_all(p).await)
}

/// The event's newest scans (before `before`, when given), newest first.
pub async fn recent_scans(
    db: &Db,
    t: &Tenant,
    event: EventId,
    before: Option<ScanId>,
    limit: i64,
) -> Result<Vec<ScanRow>, sqlx::Error> {
    let sql = "SELECT id, device_id, gate_id, ticket_id, direction, result, reason, explanation, override_reason, scanned_at
               FROM scans WHERE org_id = $1 AND event_id = $2 AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4";
    db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(event).bind(before).bind(limit).fetch_all(p).await)
}
