//! Scanning's table: devices.

use kernel::{
    Db,
    auth::TokenHash,
    db_run,
    ids::{DeviceId, EventId, OrgId},
};

use super::domain::DeviceCtx;

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

#[allow(clippy::too_many_arguments)]
#[tracing::instrument(skip_all)]
pub async fn insert_device(
    db: &Db,
    org: OrgId,
    id: DeviceId,
    name: &str,
    events: &[EventId],
    pairing_hash: &TokenHash,
    pairing_expires_at: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO devices (org_id, id, name, event_ids, pairing_code_hash, pairing_expires_at, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7)";
    db_run!(db, p => sqlx::query(sql).bind(org).bind(id).bind(name).bind(join_ids(events))
        .bind(&pairing_hash.0).bind(pairing_expires_at).bind(now)
        .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Spends the pairing code: sets the token where the code is live and
/// unspent. Only one caller can win a code.
#[tracing::instrument(skip_all)]
pub async fn pair(
    db: &Db,
    code: &TokenHash,
    token: &TokenHash,
    now: i64,
) -> Result<Option<(String, DeviceId, Vec<EventId>)>, sqlx::Error> {
    let sql = "UPDATE devices SET token_hash = $1, paired_at = $2, pairing_code_hash = NULL
               WHERE pairing_code_hash = $3 AND pairing_expires_at > $2 AND token_hash IS NULL AND revoked_at IS NULL
               RETURNING org_id, id, event_ids";
    let row: Option<(OrgId, DeviceId, String)> = db_run!(db, p => sqlx::query_as(sql)
        .bind(&token.0).bind(now).bind(&code.0).fetch_optional(p).await)?;
    let Some((org, id, events)) = row else {
        return Ok(None);
    };
    let slug: String = db_run!(db, p => sqlx::query_scalar("SELECT slug FROM orgs WHERE id = $1").bind(org).fetch_one(p).await)?;
    Ok(Some((slug, id, split_ids(&events))))
}

#[tracing::instrument(skip_all)]
pub async fn device_by_token(db: &Db, token: &TokenHash) -> Result<Option<DeviceCtx>, sqlx::Error> {
    let sql = "SELECT d.org_id, o.slug, d.id, d.name, d.event_ids FROM devices d JOIN orgs o ON o.id = d.org_id
               WHERE d.token_hash = $1 AND d.revoked_at IS NULL";
    let row: Option<(OrgId, String, DeviceId, String, String)> =
        db_run!(db, p => sqlx::query_as(sql).bind(&token.0).fetch_optional(p).await)?;
    Ok(row.map(|(org, org_slug, id, name, events)| DeviceCtx {
        org,
        org_slug,
        id,
        name,
        events: split_ids(&events),
    }))
}
