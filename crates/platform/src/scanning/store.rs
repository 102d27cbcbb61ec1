//! Scanning's table: devices (what each scans for).

use kernel::{
    Db, Stmt, db_run,
    ids::{DeviceId, EventId},
};

use crate::identity::Tenant;

fn join_ids(events: &[EventId]) -> String {
    events
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn split_ids(s: &str) -> Vec<EventId> {
    s.split_whitespace()
        .filter_map(|e| e.parse().ok())
        .collect()
}

pub fn insert_device(t: &Tenant, id: DeviceId, name: &str, events: &[EventId], now: i64) -> Stmt {
    Stmt::new(
        "INSERT INTO devices (org_id, id, name, event_ids, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(t.org())
    .bind(id)
    .bind(name)
    .bind(join_ids(events))
    .bind(now)
}

/// The device's name and events.
#[tracing::instrument(skip_all)]
pub async fn device(
    db: &Db,
    t: &Tenant,
    id: DeviceId,
) -> Result<Option<(String, Vec<EventId>)>, sqlx::Error> {
    let sql = "SELECT name, event_ids FROM devices WHERE org_id = $1 AND id = $2";
    let row: Option<(String, String)> =
        db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(id).fetch_optional(p).await)?;
    Ok(row.map(|(name, events)| (name, split_ids(&events))))
}
