//! Sales' tables: holds (the inventory ledger), hold items, orders,
//! idempotency keys.

use kernel::{
    Db, Stmt, Tx, db_run,
    ids::{EventId, HoldId, OrderId, OrgId, TicketTypeId},
    tx_run,
};

/// capacity − Σ quantity of active and consumed holds; `None` when the
/// ticket type does not exist.
#[tracing::instrument(skip_all)]
pub async fn remaining_from_ledger(
    db: &Db,
    org: OrgId,
    tt: TicketTypeId,
) -> Result<Option<i64>, sqlx::Error> {
    let sql = "SELECT t.capacity - CAST(COALESCE((
                   SELECT SUM(i.quantity) FROM hold_items i
                   JOIN holds h ON h.org_id = i.org_id AND h.id = i.hold_id
                   WHERE i.org_id = $1 AND i.ticket_type_id = $2 AND h.status IN ('active', 'consumed')
               ), 0) AS BIGINT)
               FROM ticket_types t WHERE t.org_id = $1 AND t.id = $2";
    db_run!(db, p => sqlx::query_scalar(sql).bind(org).bind(tt).fetch_optional(p).await)
}

#[tracing::instrument(skip_all)]
pub async fn insert_hold(
    db: &Db,
    org: OrgId,
    hold: HoldId,
    event: EventId,
    expires_at: i64,
    created_at: i64,
    items: &[(TicketTypeId, i64)],
) -> Result<(), sqlx::Error> {
    let mut stmts = vec![
        Stmt::new(
            "INSERT INTO holds (org_id, id, event_id, status, expires_at, created_at)
             VALUES ($1, $2, $3, 'active', $4, $5)",
        )
        .bind(org)
        .bind(hold)
        .bind(event)
        .bind(expires_at)
        .bind(created_at),
    ];
    for (tt, q) in items {
        stmts.push(
            Stmt::new("INSERT INTO hold_items (org_id, hold_id, ticket_type_id, quantity) VALUES ($1, $2, $3, $4)")
                .bind(org)
                .bind(hold)
                .bind(*tt)
                .bind(*q),
        );
    }
    db.write_grouped(stmts).await
}

/// Turns an active, unexpired hold into a consumed one; the event's id when
/// it did.
#[tracing::instrument(skip_all)]
pub async fn consume_hold(
    tx: &mut Tx,
    org: OrgId,
    hold: HoldId,
    now: i64,
) -> Result<Option<EventId>, sqlx::Error> {
    let sql = "UPDATE holds SET status = 'consumed'
               WHERE org_id = $1 AND id = $2 AND status = 'active' AND expires_at > $3
               RETURNING event_id";
    tx_run!(tx, c => sqlx::query_scalar(sql).bind(org).bind(hold).bind(now).fetch_optional(c).await)
}

/// A hold's items: ticket type and quantity.
pub type HoldItems = Vec<(TicketTypeId, i64)>;

/// The hold's event and items, whatever its state (one read, no lock).
#[tracing::instrument(skip_all)]
pub async fn hold_for_checkout(
    db: &Db,
    org: OrgId,
    hold: HoldId,
) -> Result<Option<(EventId, HoldItems)>, sqlx::Error> {
    let sql = "SELECT h.event_id, i.ticket_type_id, i.quantity FROM holds h
               JOIN hold_items i ON i.org_id = h.org_id AND i.hold_id = h.id
               WHERE h.org_id = $1 AND h.id = $2 ORDER BY i.ticket_type_id";
    let rows: Vec<(EventId, TicketTypeId, i64)> =
        db_run!(db, p => sqlx::query_as(sql).bind(org).bind(hold).fetch_all(p).await)?;
    let Some(event) = rows.first().map(|r| r.0) else {
        return Ok(None);
    };
    Ok(Some((
        event,
        rows.into_iter().map(|(_, t, q)| (t, q)).collect(),
    )))
}

/// The hold's status (`active`, `consumed`, `released`), if it exists.
#[tracing::instrument(skip_all)]
pub async fn hold_status(db: &Db, org: OrgId, hold: HoldId) -> Result<Option<String>, sqlx::Error> {
    let sql = "SELECT status FROM holds WHERE org_id = $1 AND id = $2";
    db_run!(db, p => sqlx::query_scalar(sql).bind(org).bind(hold).fetch_optional(p).await)
}

#[tracing::instrument(skip_all)]
pub async fn hold_items(
    tx: &mut Tx,
    org: OrgId,
    hold: HoldId,
) -> Result<Vec<(TicketTypeId, i64)>, sqlx::Error> {
    let sql = "SELECT ticket_type_id, quantity FROM hold_items WHERE org_id = $1 AND hold_id = $2 ORDER BY ticket_type_id";
    tx_run!(tx, c => sqlx::query_as(sql).bind(org).bind(hold).fetch_all(c).await)
}

/// A released hold: its org, event and items.
pub type ReleasedHold = (OrgId, EventId, HoldItems);

/// Marks up to `limit` expired active holds released and returns them with
/// their items. A hold another node released first is not returned.
#[tracing::instrument(skip_all)]
pub async fn release_expired_holds(
    db: &Db,
    now: i64,
    limit: i64,
) -> Result<Vec<ReleasedHold>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let sql = "UPDATE holds SET status = 'released'
               WHERE status = 'active' AND expires_at <= $1
                 AND id IN (SELECT id FROM holds WHERE status = 'active' AND expires_at <= $1 LIMIT $2)
               RETURNING org_id, id, event_id";
    let rows: Vec<(OrgId, HoldId, EventId)> =
        tx_run!(&mut tx, c => sqlx::query_as(sql).bind(now).bind(limit).fetch_all(c).await)?;
    let mut out = Vec::with_capacity(rows.len());
    for (org, hold, event) in rows {
        let items = hold_items(&mut tx, org, hold).await?;
        out.push((org, event, items));
    }
    tx.commit().await?;
    Ok(out)
}

pub struct NewOrder<'a> {
    pub org: OrgId,
    pub id: OrderId,
    pub event: EventId,
    pub hold: HoldId,
    pub status: &'a str,
    pub buyer_email: &'a str,
    pub buyer_name: &'a str,
    pub total_cents: i64,
    pub currency: &'a str,
    pub access_token_hash: &'a [u8],
    pub created_at: i64,
}

pub fn insert_order(o: &NewOrder<'_>) -> Stmt {
    Stmt::new(
        "INSERT INTO orders (org_id, id, event_id, hold_id, status, buyer_email, buyer_name,
             total_cents, currency, access_token_hash, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(o.org)
    .bind(o.id)
    .bind(o.event)
    .bind(o.hold)
    .bind(o.status)
    .bind(o.buyer_email)
    .bind(o.buyer_name)
    .bind(o.total_cents)
    .bind(o.currency)
    .bind(o.access_token_hash.to_vec())
    .bind(o.created_at)
}

#[derive(sqlx::FromRow)]
pub struct OrderRow {
    pub id: OrderId,
    pub event_id: EventId,
    pub status: String,
    pub buyer_email: String,
    pub buyer_name: String,
    pub total_cents: i64,
    pub currency: String,
    pub access_token_hash: Vec<u8>,
    pub created_at: i64,
}

#[tracing::instrument(skip_all)]
pub async fn order(db: &Db, org: OrgId, id: OrderId) -> Result<Option<OrderRow>, sqlx::Error> {
    let sql = "SELECT id, event_id, status, buyer_email, buyer_name, total_cents, currency, access_token_hash, created_at
               FROM orders WHERE org_id = $1 AND id = $2";
    db_run!(db, p => sqlx::query_as(sql).bind(org).bind(id).fetch_optional(p).await)
}

#[derive(sqlx::FromRow)]
pub struct IdempotencyRow {
    pub request_hash: Vec<u8>,
    pub status_code: Option<i32>,
    pub response: Option<String>,
    pub created_at: i64,
}

/// Claims `key` for a request; false when it is already claimed.
#[tracing::instrument(skip_all)]
pub async fn claim_key(
    db: &Db,
    org: OrgId,
    scope: &str,
    key: &str,
    hash: &[u8],
    now: i64,
) -> Result<bool, sqlx::Error> {
    let sql = "INSERT INTO idempotency_keys (org_id, scope, key, request_hash, created_at)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
    let _queued = db.serial_write().await;
    let n = db_run!(db, p => sqlx::query(sql).bind(org).bind(scope).bind(key).bind(hash).bind(now)
        .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

#[tracing::instrument(skip_all)]
pub async fn key_row(
    db: &Db,
    org: OrgId,
    scope: &str,
    key: &str,
) -> Result<Option<IdempotencyRow>, sqlx::Error> {
    let sql = "SELECT request_hash, status_code, response, created_at FROM idempotency_keys
               WHERE org_id = $1 AND scope = $2 AND key = $3";
    db_run!(db, p => sqlx::query_as(sql).bind(org).bind(scope).bind(key).fetch_optional(p).await)
}

/// Deletes a claim made at `created_at` (an abandoned or expired one).
#[tracing::instrument(skip_all)]
pub async fn drop_key(
    db: &Db,
    org: OrgId,
    scope: &str,
    key: &str,
    created_at: i64,
) -> Result<(), sqlx::Error> {
    let sql = "DELETE FROM idempotency_keys WHERE org_id = $1 AND scope = $2 AND key = $3 AND created_at = $4";
    db_run!(db, p => sqlx::query(sql).bind(org).bind(scope).bind(key).bind(created_at)
        .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

pub fn complete_key_stmt(
    org: OrgId,
    scope: &str,
    key: &str,
    status: i64,
    response: String,
) -> Stmt {
    Stmt::new("UPDATE idempotency_keys SET status_code = $1, response = $2 WHERE org_id = $3 AND scope = $4 AND key = $5")
        .bind(status)
        .bind(response)
        .bind(org)
        .bind(scope)
        .bind(key)
}

#[tracing::instrument(skip_all)]
pub async fn complete_key(
    db: &Db,
    org: OrgId,
    scope: &str,
    key: &str,
    status: i32,
    response: &str,
) -> Result<(), sqlx::Error> {
    let sql = "UPDATE idempotency_keys SET status_code = $1, response = $2 WHERE org_id = $3 AND scope = $4 AND key = $5";
    db_run!(db, p => sqlx::query(sql).bind(status).bind(response).bind(org).bind(scope).bind(key)
        .execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Deletes idempotency keys older than `before`.
pub async fn prune_keys(db: &Db, before: i64) -> Result<u64, sqlx::Error> {
    db_run!(db, p => sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1").bind(before)
        .execute(p).await.map(|r| r.rows_affected()))
}
