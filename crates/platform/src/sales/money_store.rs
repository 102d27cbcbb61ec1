//! Sales' money tables: payments, refunds, the provider events seen, and
//! the order's money columns.

use kernel::{
    Db, Stmt, Tx, db_run,
    ids::{HoldId, OrderId, OrgId, PaymentId, RefundId, TicketTypeId},
    tx_run,
};

use crate::identity::Tenant;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: PaymentId,
    pub order_id: OrderId,
    pub provider: String,
    pub status: String,
    pub amount_cents: i64,
    pub currency: String,
    pub provider_ref: Option<String>,
    pub client_secret: Option<String>,
    pub reference: Option<String>,
    pub failure: Option<String>,
}

const PAYMENT: &str = "SELECT id, order_id, provider, status, amount_cents, currency, provider_ref,
                              client_secret, reference, failure FROM payments";

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RefundRow {
    pub id: RefundId,
    pub order_id: OrderId,
    pub payment_id: PaymentId,
    pub provider: String,
    pub amount_cents: i64,
    pub currency: String,
    pub reason: String,
    pub status: String,
    pub provider_ref: Option<String>,
    pub failure: Option<String>,
    pub created_at: i64,
}

const REFUND: &str =
    "SELECT id, order_id, payment_id, provider, amount_cents, currency, reason, status,
                             provider_ref, failure, created_at FROM refunds";

pub struct NewPayment<'a> {
    pub id: PaymentId,
    pub order: OrderId,
    pub provider: &'a str,
    pub amount_cents: i64,
    pub currency: &'a str,
    pub provider_ref: Option<String>,
    pub client_secret: Option<String>,
    pub reference: Option<String>,
    pub now: i64,
}

pub fn insert_payment(t: &Tenant, p: NewPayment<'_>) -> Stmt {
    Stmt::new(
        "INSERT INTO payments (org_id, id, order_id, provider, status, amount_cents, currency,
             provider_ref, client_secret, reference, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'requires_payment', $5, $6, $7, $8, $9, $10, $10)",
    )
    .bind(t.org())
    .bind(p.id)
    .bind(p.order)
    .bind(p.provider)
    .bind(p.amount_cents)
    .bind(p.currency)
    .bind(p.provider_ref)
    .bind(p.client_secret)
    .bind(p.reference)
    .bind(p.now)
}

pub async fn payment(
    db: &Db,
    t: &Tenant,
    order: OrderId,
) -> Result<Option<PaymentRow>, sqlx::Error> {
    let sql = format!("{PAYMENT} WHERE org_id = $1 AND order_id = $2");
    db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(t.org()).bind(order).fetch_optional(p).await)
}

/// The payment a provider's object is about, across tenants (the provider's
/// webhook names no tenant; the payment row does).
pub async fn payment_by_ref(
    db: &Db,
    provider: &str,
    provider_ref: &str,
) -> Result<Option<(OrgId, PaymentRow)>, sqlx::Error> {
    let sql = "SELECT org_id FROM payments WHERE provider = $1 AND provider_ref = $2";
    let org: Option<OrgId> = db_run!(db, p => sqlx::query_scalar(sql).bind(provider).bind(provider_ref).fetch_optional(p).await)?;
    let Some(org) = org else { return Ok(None) };
    let sql = format!("{PAYMENT} WHERE org_id = $1 AND provider = $2 AND provider_ref = $3");
    let row: Option<PaymentRow> = db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(org).bind(provider).bind(provider_ref).fetch_optional(p).await)?;
    Ok(row.map(|r| (org, r)))
}

/// Marks the order's waiting payment succeeded; false when it was not
/// waiting (applied before, cancelled): the caller then changes nothing.
pub async fn payment_succeeded(
    tx: &mut Tx,
    t: &Tenant,
    order: OrderId,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let sql = "UPDATE payments SET status = 'succeeded', failure = NULL, updated_at = $3
               WHERE org_id = $1 AND order_id = $2 AND status = 'requires_payment'";
    let n = tx_run!(tx, c => sqlx::query(sql).bind(t.org()).bind(order).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

pub async fn payment_cancelled(
    tx: &mut Tx,
    t: &Tenant,
    order: OrderId,
    now: i64,
) -> Result<(), sqlx::Error> {
    let sql = "UPDATE payments SET status = 'cancelled', updated_at = $3
               WHERE org_id = $1 AND order_id = $2 AND status = 'requires_payment'";
    tx_run!(tx, c => sqlx::query(sql).bind(t.org()).bind(order).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Records why the last attempt failed (a declined card), while waiting.
pub async fn payment_failed(
    db: &Db,
    provider: &str,
    provider_ref: &str,
    why: &str,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let sql = "UPDATE payments SET failure = $3, updated_at = $4
               WHERE provider = $1 AND provider_ref = $2 AND status = 'requires_payment'";
    let _queued = db.serial_write().await;
    db_run!(db, p => sqlx::query(sql).bind(provider).bind(provider_ref).bind(why).bind(now).execute(p).await.map(|r| r.rows_affected()))
}

/// Pending → paid, only while pending (the expiry sweep may have won).
pub async fn order_paid(
    tx: &mut Tx,
    t: &Tenant,
    order: OrderId,
    from: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let sql = "UPDATE orders SET status = 'paid', paid_cents = total_cents, expires_at = NULL, updated_at = $4
               WHERE org_id = $1 AND id = $2 AND status = $3";
    let n = tx_run!(tx, c => sqlx::query(sql).bind(t.org()).bind(order).bind(from).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// A payment that came for an order that can no longer take it: what was
/// paid is on the books, and all of it owed back.
pub async fn order_paid_and_owed(
    tx: &mut Tx,
    t: &Tenant,
    order: OrderId,
    amount: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    let sql = "UPDATE orders SET paid_cents = paid_cents + $3, refunded_cents = refunded_cents + $3, updated_at = $4
               WHERE org_id = $1 AND id = $2";
    tx_run!(tx, c => sqlx::query(sql).bind(t.org()).bind(order).bind(amount).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Takes `amount` off what is left to refund, in one conditional step (two
/// refunds at once can never return more than was paid); the order's new
/// status, or `None` when not that much is left or it is not paid.
pub async fn take_refund(
    tx: &mut Tx,
    t: &Tenant,
    order: OrderId,
    amount: i64,
    now: i64,
) -> Result<Option<String>, sqlx::Error> {
    let sql = "UPDATE orders SET refunded_cents = refunded_cents + $3,
                   status = CASE WHEN refunded_cents + $3 >= paid_cents THEN 'refunded' ELSE 'partially_refunded' END,
                   updated_at = $4
               WHERE org_id = $1 AND id = $2 AND status IN ('paid', 'partially_refunded')
                 AND paid_cents - refunded_cents >= $3
               RETURNING status";
    tx_run!(tx, c => sqlx::query_scalar(sql).bind(t.org()).bind(order).bind(amount).bind(now).fetch_optional(c).await)
}

/// Cancels a paid order, refunding what is left: only while the refunded
/// amount is still `refunded` (a refund racing with it makes it retry).
pub async fn cancel_paid(
    tx: &mut Tx,
    t: &Tenant,
    order: OrderId,
    refunded: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let sql = "UPDATE orders SET status = 'cancelled', refunded_cents = paid_cents, updated_at = $4
               WHERE org_id = $1 AND id = $2 AND status IN ('paid', 'partially_refunded') AND refunded_cents = $3";
    let n = tx_run!(tx, c => sqlx::query(sql).bind(t.org()).bind(order).bind(refunded).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

pub async fn cancel_pending(
    tx: &mut Tx,
    t: &Tenant,
    order: OrderId,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let sql = "UPDATE orders SET status = 'cancelled', expires_at = NULL, updated_at = $3
               WHERE org_id = $1 AND id = $2 AND status = 'pending'";
    let n = tx_run!(tx, c => sqlx::query(sql).bind(t.org()).bind(order).bind(now).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// The order's hold stops counting against capacity (consumed → released);
/// true when it did (its quantities are then to be given back once).
pub async fn release_hold(tx: &mut Tx, t: &Tenant, hold: HoldId) -> Result<bool, sqlx::Error> {
    let sql = "UPDATE holds SET status = 'released' WHERE org_id = $1 AND id = $2 AND status = 'consumed'";
    let n = tx_run!(tx, c => sqlx::query(sql).bind(t.org()).bind(hold).execute(c).await.map(|r| r.rows_affected()))?;
    if n == 1 {
        super::seats::unclaim(tx, t.org(), hold).await?;
    }
    Ok(n == 1)
}

/// A released hold counts again (an expired order revived by its payment).
pub async fn retake_hold(
    tx: &mut Tx,
    t: &Tenant,
    hold: HoldId,
    epoch: Option<i64>,
    reserved: Option<TicketTypeId>,
) -> Result<bool, sqlx::Error> {
    let sql = "UPDATE holds SET status = 'consumed', epoch = $3, reserved_type = $4
               WHERE org_id = $1 AND id = $2 AND status = 'released'";
    let n = tx_run!(tx, c => sqlx::query(sql).bind(t.org()).bind(hold).bind(epoch).bind(reserved).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

pub struct NewRefund<'a> {
    pub id: RefundId,
    pub order: OrderId,
    pub payment: PaymentId,
    pub provider: &'a str,
    pub amount_cents: i64,
    pub currency: &'a str,
    pub reason: &'a str,
    pub status: &'a str,
    pub now: i64,
}

pub fn insert_refund(t: &Tenant, r: NewRefund<'_>) -> Stmt {
    Stmt::new(
        "INSERT INTO refunds (org_id, id, order_id, payment_id, provider, amount_cents, currency, reason,
             status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
    )
    .bind(t.org())
    .bind(r.id)
    .bind(r.order)
    .bind(r.payment)
    .bind(r.provider)
    .bind(r.amount_cents)
    .bind(r.currency)
    .bind(r.reason)
    .bind(r.status)
    .bind(r.now)
}

pub async fn refunds_of(
    db: &Db,
    t: &Tenant,
    order: OrderId,
) -> Result<Vec<RefundRow>, sqlx::Error> {
    let sql = format!("{REFUND} WHERE org_id = $1 AND order_id = $2 ORDER BY created_at, id");
    db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(t.org()).bind(order).fetch_all(p).await)
}

pub async fn refund(db: &Db, t: &Tenant, id: RefundId) -> Result<Option<RefundRow>, sqlx::Error> {
    let sql = format!("{REFUND} WHERE org_id = $1 AND id = $2");
    db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(t.org()).bind(id).fetch_optional(p).await)
}

/// A pending refund's outcome at the provider (only while pending).
pub async fn refund_settled(
    db: &Db,
    t: &Tenant,
    id: RefundId,
    status: &str,
    provider_ref: Option<&str>,
    failure: Option<&str>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let sql = "UPDATE refunds SET status = $3, provider_ref = $4, failure = $5, updated_at = $6
               WHERE org_id = $1 AND id = $2 AND status = 'pending'";
    let _queued = db.serial_write().await;
    let n = db_run!(db, p => sqlx::query(sql).bind(t.org()).bind(id).bind(status).bind(provider_ref)
        .bind(failure).bind(now).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// A refund the provider gave up on (refused at once, or failed after it
/// was answered): marked failed, and its amount given back to what the
/// order holds — the money never left. A fully refunded order goes back to
/// partially refunded (its tickets stay revoked), so what is left can be
/// refunded again; a partly refunded one with nothing refunded left and its
/// tickets whole is paid again. Once: false
/// when the refund had failed before (or is not there).
pub async fn refund_failed(
    db: &Db,
    t: &Tenant,
    id: RefundId,
    why: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let sql = "UPDATE refunds SET status = 'failed', failure = $3, updated_at = $4
               WHERE org_id = $1 AND id = $2 AND status IN ('pending', 'succeeded')
               RETURNING order_id, amount_cents";
    let row: Option<(uuid::Uuid, i64)> = tx_run!(&mut tx, c => sqlx::query_as(sql).bind(t.org()).bind(id)
        .bind(why).bind(now).fetch_optional(c).await)?;
    let Some((order, amount)) = row else {
        return Ok(false);
    };
    let sql = "UPDATE orders SET refunded_cents = refunded_cents - $3,
                   status = CASE WHEN status = 'refunded' THEN 'partially_refunded'
                                 WHEN status = 'partially_refunded' AND refunded_cents - $3 <= 0
                                      AND NOT EXISTS (SELECT 1 FROM tickets k WHERE k.org_id = $1
                                                      AND k.order_id = $2 AND k.status = 'revoked')
                                 THEN 'paid' ELSE status END,
                   updated_at = $4
               WHERE org_id = $1 AND id = $2";
    tx_run!(&mut tx, c => sqlx::query(sql).bind(t.org()).bind(order).bind(amount).bind(now)
        .execute(c).await.map(|_| ()))?;
    tx.commit().await?;
    Ok(true)
}

/// The org of one of our refunds, by its id alone (a provider's event).
pub async fn refund_org(db: &Db, id: RefundId) -> Result<Option<OrgId>, sqlx::Error> {
    let sql = "SELECT org_id FROM refunds WHERE id = $1";
    db_run!(db, p => sqlx::query_scalar(sql).bind(id).fetch_optional(p).await)
}

/// Whether the provider's event was applied before.
pub async fn seen(db: &Db, provider: &str, id: &str) -> Result<bool, sqlx::Error> {
    let sql = "SELECT 1 FROM provider_events WHERE provider = $1 AND id = $2";
    let found: Option<i32> =
        db_run!(db, p => sqlx::query_scalar(sql).bind(provider).bind(id).fetch_optional(p).await)?;
    Ok(found.is_some())
}

pub async fn mark_seen(
    db: &Db,
    provider: &str,
    id: &str,
    kind: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let sql =
        "INSERT INTO provider_events (provider, id, kind, received_at) VALUES ($1, $2, $3, $4)
               ON CONFLICT DO NOTHING";
    let _queued = db.serial_write().await;
    db_run!(db, p => sqlx::query(sql).bind(provider).bind(id).bind(kind).bind(now).execute(p).await.map(|_| ()))
}
