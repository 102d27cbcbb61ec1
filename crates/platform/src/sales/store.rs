//! Sales' tables: holds (the inventory ledger), hold items, orders.
//! Every tenant statement names the tenant's org; the sweepers work across
//! tenants (they act on what the database says has run out).

use kernel::{
    Backend, Db, Stmt, Tx, db_run,
    ids::{EventId, HoldId, OrderId, OrgId, TicketTypeId, VoucherId},
    tx_run,
};

use super::domain::{HoldStatus, OrderStatus};
use crate::identity::Tenant;

/// A hold's items: ticket type and quantity.
pub type HoldItems = Vec<(TicketTypeId, i64)>;

/// What is taken of a ticket type: the tickets of its active and consumed
/// holds, and all of every standing reservation of it (a reserved voucher's
/// `max_uses`) — a hold that took its tickets from a reservation
/// (`reserved_type`) counts them no more.
const TAKEN: &str = "SELECT CAST(
    COALESCE((SELECT SUM(i.quantity) FROM hold_items i
              JOIN holds h ON h.org_id = i.org_id AND h.id = i.hold_id
              WHERE i.org_id = $1 AND i.ticket_type_id = $2 AND h.status IN ('active', 'consumed')
                AND (h.reserved_type IS NULL OR h.reserved_type <> i.ticket_type_id)), 0)
    + COALESCE((SELECT SUM(max_uses) FROM vouchers WHERE org_id = $1 AND reserved_for = $2), 0)
    AS BIGINT)";

/// Σ quantity of the ticket type's active and consumed holds: what is taken
/// of its capacity.
#[tracing::instrument(skip_all)]
pub async fn taken_from_ledger(db: &Db, t: &Tenant, tt: TicketTypeId) -> Result<i64, sqlx::Error> {
    db_run!(db, p => sqlx::query_scalar(TAKEN).bind(t.org()).bind(tt).fetch_one(p).await)
}

/// [`taken_from_ledger`] inside `tx`.
#[tracing::instrument(skip_all)]
pub async fn taken_in(tx: &mut Tx, org: OrgId, tt: TicketTypeId) -> Result<i64, sqlx::Error> {
    tx_run!(tx, c => sqlx::query_scalar(TAKEN).bind(org).bind(tt).fetch_one(c).await)
}

/// Σ uses of the voucher's active and consumed holds: what is taken of its
/// `max_uses`.
#[tracing::instrument(skip_all)]
pub async fn voucher_uses(db: &Db, t: &Tenant, v: VoucherId) -> Result<i64, sqlx::Error> {
    let sql = "SELECT CAST(COALESCE(SUM(voucher_uses), 0) AS BIGINT) FROM holds
               WHERE org_id = $1 AND voucher_id = $2 AND status IN ('active', 'consumed')";
    db_run!(db, p => sqlx::query_scalar(sql).bind(t.org()).bind(v).fetch_one(p).await)
}

/// The ticket type the voucher reserves now (inside `tx`), if any.
pub async fn reserved_by_in(
    tx: &mut Tx,
    org: OrgId,
    v: VoucherId,
) -> Result<Option<TicketTypeId>, sqlx::Error> {
    let sql = "SELECT reserved_for FROM vouchers WHERE org_id = $1 AND id = $2";
    let r: Option<Option<TicketTypeId>> =
        tx_run!(tx, c => sqlx::query_scalar(sql).bind(org).bind(v).fetch_optional(c).await)?;
    Ok(r.flatten())
}

/// Guards a hold written with a reserved voucher: the reservation stands
/// (one ended meanwhile counts the hold's tickets as the type's own, which
/// the hold did not take from the type's counters).
pub fn reservation_guard(org: OrgId, v: VoucherId, epoch: Option<i64>) -> Stmt {
    match epoch {
        Some(e) => Stmt::new(
            "SELECT 1 FROM inventory_epoch WHERE id = 1 AND epoch = $1
             AND EXISTS (SELECT 1 FROM vouchers WHERE org_id = $2 AND id = $3 AND reserved_for IS NOT NULL)",
        )
        .bind(e)
        .bind(org)
        .bind(v),
        // (Read through the epoch's table all the same: on PostgreSQL its
        // lock orders the write after an ending of the reservation.)
        None => Stmt::new(
            "SELECT 1 FROM inventory_epoch WHERE id = 1
             AND EXISTS (SELECT 1 FROM vouchers WHERE org_id = $1 AND id = $2 AND reserved_for IS NOT NULL)",
        )
        .bind(org)
        .bind(v),
    }
}

/// Reservations whose voucher's time is up: org, event, voucher, the
/// ticket type reserved and how many.
pub async fn reservations_due(
    db: &Db,
    now: i64,
    limit: i64,
) -> Result<Vec<(OrgId, EventId, VoucherId, TicketTypeId, i64)>, sqlx::Error> {
    let sql = "SELECT org_id, event_id, id, reserved_for, max_uses FROM vouchers
               WHERE reserved_for IS NOT NULL AND valid_until IS NOT NULL AND valid_until <= $1
               ORDER BY valid_until LIMIT $2";
    db_run!(db, p => sqlx::query_as(sql).bind(now).bind(limit).fetch_all(p).await)
}

/// Ends a voucher's reservation, and marks its live holds as holding their
/// tickets of the type like any hold: the uses those holds took from the
/// reservation (the rest of it is to go back on sale). `None` when it had
/// ended already.
pub async fn end_reservation(
    tx: &mut Tx,
    org: OrgId,
    v: VoucherId,
) -> Result<Option<i64>, sqlx::Error> {
    let sql = "UPDATE vouchers SET reserved_for = NULL
               WHERE org_id = $1 AND id = $2 AND reserved_for IS NOT NULL";
    let done = tx_run!(tx, c => sqlx::query(sql).bind(org).bind(v).execute(c).await.map(|r| r.rows_affected()))?;
    if done != 1 {
        return Ok(None);
    }
    let sql = "UPDATE holds SET reserved_type = NULL
               WHERE org_id = $1 AND voucher_id = $2 AND reserved_type IS NOT NULL
                 AND status IN ('active', 'consumed')
               RETURNING voucher_uses";
    let uses: Vec<i64> =
        tx_run!(tx, c => sqlx::query_scalar(sql).bind(org).bind(v).fetch_all(c).await)?;
    Ok(Some(uses.iter().sum()))
}

/// [`voucher_uses`] inside `tx`.
pub async fn voucher_uses_in(tx: &mut Tx, org: OrgId, v: VoucherId) -> Result<i64, sqlx::Error> {
    let sql = "SELECT CAST(COALESCE(SUM(voucher_uses), 0) AS BIGINT) FROM holds
               WHERE org_id = $1 AND voucher_id = $2 AND status IN ('active', 'consumed')";
    tx_run!(tx, c => sqlx::query_scalar(sql).bind(org).bind(v).fetch_one(c).await)
}

/// The deployment's inventory epoch.
pub async fn inventory_epoch(db: &Db) -> Result<i64, sqlx::Error> {
    let sql = "SELECT epoch FROM inventory_epoch WHERE id = 1";
    db_run!(db, p => sqlx::query_scalar(sql).fetch_one(p).await)
}

/// Moves the inventory epoch on inside `tx`; the new epoch. On PostgreSQL
/// the table is locked `ACCESS EXCLUSIVE` first, until `tx` ends: it waits
/// for every transaction that read the epoch (an [`epoch_guard`] holds the
/// table's `ACCESS SHARE` lock until its transaction ends) and holds new
/// readers back until the new epoch is committed. (A table lock, not a row
/// lock: the guards' shared locks live in the lock manager only, where a
/// `FOR SHARE` on the row would write the row, and make a multixact, for
/// every group of holds.)
pub async fn bump_epoch(tx: &mut Tx) -> Result<i64, sqlx::Error> {
    if tx.backend() == Backend::Postgres {
        tx_run!(tx, c => sqlx::query("LOCK TABLE inventory_epoch IN ACCESS EXCLUSIVE MODE").execute(c).await.map(|_| ()))?;
    }
    let sql = "UPDATE inventory_epoch SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch";
    tx_run!(tx, c => sqlx::query_scalar(sql).fetch_one(c).await)
}

/// Waits for every write guarded by the epoch (or a reservation) under way
/// and keeps new ones waiting until `tx` ends, without moving the epoch
/// (PostgreSQL; SQLite's writers take turns anyway).
pub async fn lock_epoch(tx: &mut Tx) -> Result<(), sqlx::Error> {
    if tx.backend() == Backend::Postgres {
        tx_run!(tx, c => sqlx::query("LOCK TABLE inventory_epoch IN ACCESS EXCLUSIVE MODE").execute(c).await.map(|_| ()))?;
    }
    Ok(())
}

/// Moves the inventory epoch past `floor` (an epoch Redis keeps that this
/// database never had: the database was restored or made anew while Redis
/// lived on), so no counter Redis keeps is ever taken for a current one.
pub async fn bump_epoch_past(tx: &mut Tx, floor: i64) -> Result<i64, sqlx::Error> {
    bump_epoch(tx).await?;
    let sql = "UPDATE inventory_epoch SET epoch = CASE WHEN epoch > $1 THEN epoch ELSE $1 + 1 END
               WHERE id = 1 RETURNING epoch";
    tx_run!(tx, c => sqlx::query_scalar(sql).bind(floor).fetch_one(c).await)
}

/// The query a write reserved under `epoch` must pass: the epoch still
/// stands. On PostgreSQL its table lock (`ACCESS SHARE`, taken before the
/// statement's snapshot and held until the write's transaction ends) keeps
/// a ledger reservation ([`bump_epoch`]) from slipping in between; one that
/// was under way is waited for, and its new epoch seen. On SQLite writers
/// are serialised anyway.
pub fn epoch_guard(epoch: i64) -> Stmt {
    Stmt::new("SELECT 1 FROM inventory_epoch WHERE id = 1 AND epoch = $1").bind(epoch)
}

/// The Redis epoch a hold was reserved in (`None`: not from Redis).
pub async fn hold_epoch(db: &Db, t: &Tenant, hold: HoldId) -> Result<Option<i64>, sqlx::Error> {
    let sql = "SELECT epoch FROM holds WHERE org_id = $1 AND id = $2";
    let e: Option<Option<i64>> =
        db_run!(db, p => sqlx::query_scalar(sql).bind(t.org()).bind(hold).fetch_optional(p).await)?;
    Ok(e.flatten())
}

#[allow(clippy::too_many_arguments)]
pub fn insert_hold(
    t: &Tenant,
    hold: HoldId,
    event: EventId,
    expires_at: i64,
    created_at: i64,
    items: &[(TicketTypeId, i64)],
    epoch: Option<i64>,
    voucher: Option<(VoucherId, i64)>,
    reserved: Option<TicketTypeId>,
) -> Vec<Stmt> {
    let mut stmts = vec![
        Stmt::new(
            "INSERT INTO holds (org_id, id, event_id, status, expires_at, created_at, epoch,
                 voucher_id, voucher_uses, reserved_type)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(t.org())
        .bind(hold)
        .bind(event)
        .bind(HoldStatus::Active.as_str())
        .bind(expires_at)
        .bind(created_at)
        .bind(epoch)
        .bind(voucher.map(|(v, _)| v.0))
        .bind(voucher.map(|(_, n)| n).unwrap_or(0))
        .bind(kernel::db::Val::Uuid(reserved.map(|tt| tt.0))),
    ];
    for (tt, q) in items {
        stmts.push(
            Stmt::new("INSERT INTO hold_items (org_id, hold_id, ticket_type_id, quantity) VALUES ($1, $2, $3, $4)")
                .bind(t.org())
                .bind(hold)
                .bind(*tt)
                .bind(*q),
        );
    }
    stmts
}

/// Turns an active, unexpired hold into a consumed one, returning a row
/// when it did: the condition of a checkout's writes
/// ([`kernel::Db::write_if_taken`]).
pub fn consume_hold(t: &Tenant, hold: HoldId, now: i64) -> Stmt {
    Stmt::new(
        "UPDATE holds SET status = 'consumed'
         WHERE org_id = $1 AND id = $2 AND status = 'active' AND expires_at > $3
         RETURNING event_id",
    )
    .bind(t.org())
    .bind(hold)
    .bind(now)
}

/// What a checkout needs of its hold.
pub struct HoldForCheckout {
    pub event: EventId,
    pub items: HoldItems,
    pub status: HoldStatus,
    pub expires_at: i64,
    /// The voucher it spends, and how many uses.
    pub voucher: Option<(VoucherId, i64)>,
    /// The ticket type whose tickets it took from the voucher's reservation.
    pub reserved: Option<TicketTypeId>,
}

/// The hold's event, items, state, expiry and voucher use (one read, no
/// lock).
#[tracing::instrument(skip_all)]
pub async fn hold_for_checkout(
    db: &Db,
    t: &Tenant,
    hold: HoldId,
) -> Result<Option<HoldForCheckout>, sqlx::Error> {
    let sql = "SELECT h.event_id, i.ticket_type_id, i.quantity, h.status, h.expires_at, h.voucher_id, h.voucher_uses,
                      h.reserved_type
               FROM holds h JOIN hold_items i ON i.org_id = h.org_id AND i.hold_id = h.id
               WHERE h.org_id = $1 AND h.id = $2 ORDER BY i.ticket_type_id";
    type Row = (
        EventId,
        TicketTypeId,
        i64,
        String,
        i64,
        Option<VoucherId>,
        i64,
        Option<TicketTypeId>,
    );
    let rows: Vec<Row> =
        db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(hold).fetch_all(p).await)?;
    let Some((event, status, expires_at, voucher, reserved)) = rows
        .first()
        .map(|r| (r.0, r.3.clone(), r.4, r.5.map(|v| (v, r.6)), r.7))
    else {
        return Ok(None);
    };
    let status = HoldStatus::try_from(status).map_err(|e| sqlx::Error::Decode(e.into()))?;
    Ok(Some(HoldForCheckout {
        event,
        items: rows.into_iter().map(|r| (r.1, r.2)).collect(),
        status,
        expires_at,
        voucher,
        reserved,
    }))
}

#[tracing::instrument(skip_all)]
pub async fn hold_status(
    db: &Db,
    t: &Tenant,
    hold: HoldId,
) -> Result<Option<HoldStatus>, sqlx::Error> {
    let sql = "SELECT status FROM holds WHERE org_id = $1 AND id = $2";
    let s: Option<String> =
        db_run!(db, p => sqlx::query_scalar(sql).bind(t.org()).bind(hold).fetch_optional(p).await)?;
    s.map(HoldStatus::try_from)
        .transpose()
        .map_err(|e| sqlx::Error::Decode(e.into()))
}

async fn hold_items(tx: &mut Tx, org: OrgId, hold: HoldId) -> Result<HoldItems, sqlx::Error> {
    let sql = "SELECT ticket_type_id, quantity FROM hold_items WHERE org_id = $1 AND hold_id = $2 ORDER BY ticket_type_id";
    tx_run!(tx, c => sqlx::query_as(sql).bind(org).bind(hold).fetch_all(c).await)
}

/// Quantities given back: by an expired hold or an expired order.
pub struct Released {
    pub org: OrgId,
    pub event: EventId,
    /// The hold, or the order whose hold it was.
    pub id: uuid::Uuid,
    pub items: HoldItems,
    /// The Redis epoch the hold was reserved in.
    pub epoch: Option<i64>,
    /// The voucher uses it gives back.
    pub voucher: Option<(VoucherId, i64)>,
    /// The ticket type whose tickets it took from a voucher's reservation
    /// (they go back to the reservation, not to the type).
    pub reserved: Option<TicketTypeId>,
}

/// Marks up to `limit` expired active holds released, inside `tx`, and
/// returns them with their items. A hold another node released first is
/// not returned.
#[tracing::instrument(skip_all)]
pub async fn release_expired_holds(
    tx: &mut Tx,
    now: i64,
    limit: i64,
) -> Result<Vec<Released>, sqlx::Error> {
    let sql = "UPDATE holds SET status = 'released'
               WHERE status = 'active' AND expires_at <= $1
                 AND id IN (SELECT id FROM holds WHERE status = 'active' AND expires_at <= $1 LIMIT $2)
               RETURNING org_id, id, event_id, epoch, voucher_id, voucher_uses, reserved_type";
    type Row = (
        OrgId,
        HoldId,
        EventId,
        Option<i64>,
        Option<VoucherId>,
        i64,
        Option<TicketTypeId>,
    );
    let rows: Vec<Row> =
        tx_run!(tx, c => sqlx::query_as(sql).bind(now).bind(limit).fetch_all(c).await)?;
    let mut out = Vec::with_capacity(rows.len());
    for (org, hold, event, epoch, voucher, uses, reserved) in rows {
        let items = hold_items(tx, org, hold).await?;
        super::seats::unclaim(tx, org, hold).await?;
        out.push(Released {
            org,
            event,
            id: hold.0,
            items,
            epoch,
            voucher: voucher.map(|v| (v, uses)),
            reserved,
        });
    }
    Ok(out)
}

/// Marks up to `limit` pending orders past their payment deadline expired,
/// and their holds released, inside `tx`; returns them with their items.
#[tracing::instrument(skip_all)]
pub async fn expire_pending_orders(
    tx: &mut Tx,
    now: i64,
    limit: i64,
) -> Result<Vec<Released>, sqlx::Error> {
    let sql = "UPDATE orders SET status = 'expired'
               WHERE status = 'pending' AND expires_at <= $1
                 AND id IN (SELECT id FROM orders WHERE status = 'pending' AND expires_at <= $1 LIMIT $2)
               RETURNING org_id, id, event_id, hold_id";
    let rows: Vec<(OrgId, OrderId, EventId, HoldId)> =
        tx_run!(tx, c => sqlx::query_as(sql).bind(now).bind(limit).fetch_all(c).await)?;
    let mut out = Vec::with_capacity(rows.len());
    let release =
        "UPDATE holds SET status = 'released' WHERE org_id = $1 AND id = $2 AND status = 'consumed'
                   RETURNING epoch, voucher_id, voucher_uses, reserved_type";
    for (org, order, event, hold) in rows {
        type Back = (Option<i64>, Option<VoucherId>, i64, Option<TicketTypeId>);
        let released: Option<Back> =
            tx_run!(tx, c => sqlx::query_as(release).bind(org).bind(hold).fetch_optional(c).await)?;
        // Only a hold still counted in the ledger gives quantity back.
        let (items, epoch, voucher, reserved) = match released {
            Some((epoch, voucher, uses, reserved)) => {
                super::seats::unclaim(tx, org, hold).await?;
                (
                    hold_items(tx, org, hold).await?,
                    epoch,
                    voucher.map(|v| (v, uses)),
                    reserved,
                )
            }
            None => (Vec::new(), None, None, None),
        };
        out.push(Released {
            org,
            event,
            id: order.0,
            items,
            epoch,
            voucher,
            reserved,
        });
    }
    Ok(out)
}

pub struct NewOrder<'a> {
    pub id: OrderId,
    pub event: EventId,
    pub hold: HoldId,
    pub status: OrderStatus,
    pub buyer_email: &'a str,
    pub buyer_name: &'a str,
    pub total_cents: i64,
    pub currency: &'a str,
    pub access_token_hash: &'a [u8],
    pub created_at: i64,
    /// A pending order's payment deadline.
    pub expires_at: Option<i64>,
    pub payment_method: &'a str,
    /// The order's lines as JSON.
    pub lines: &'a str,
    pub fee_cents: i64,
    pub tax_cents: i64,
    pub tax_bp: i64,
    /// The attendees' answers as JSON (`None`: none given).
    pub attendees: Option<String>,
}

pub fn insert_order(t: &Tenant, o: &NewOrder<'_>) -> Stmt {
    Stmt::new(
        "INSERT INTO orders (org_id, id, event_id, hold_id, status, buyer_email, buyer_name,
             total_cents, currency, access_token_hash, created_at, expires_at, payment_method, lines,
             paid_cents, updated_at, fee_cents, tax_cents, tax_bp, attendees)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $11, $16, $17, $18, $19)",
    )
    .bind(t.org())
    .bind(o.id)
    .bind(o.event)
    .bind(o.hold)
    .bind(o.status.as_str())
    .bind(o.buyer_email)
    .bind(o.buyer_name)
    .bind(o.total_cents)
    .bind(o.currency)
    .bind(o.access_token_hash.to_vec())
    .bind(o.created_at)
    .bind(o.expires_at)
    .bind(o.payment_method)
    .bind(o.lines)
    .bind(if o.status == OrderStatus::Paid {
        o.total_cents
    } else {
        0
    })
    .bind(o.fee_cents)
    .bind(o.tax_cents)
    .bind(o.tax_bp)
    .bind(o.attendees.clone())
}

/// The attendees' answers an order was checked out with (JSON).
#[tracing::instrument(skip_all)]
pub async fn order_attendees(
    db: &Db,
    t: &Tenant,
    order: OrderId,
) -> Result<Option<String>, sqlx::Error> {
    let sql = "SELECT attendees FROM orders WHERE org_id = $1 AND id = $2";
    let a: Option<Option<String>> = db_run!(db, p => sqlx::query_scalar(sql).bind(t.org()).bind(order).fetch_optional(p).await)?;
    Ok(a.flatten())
}

#[derive(Clone, sqlx::FromRow)]
pub struct OrderRow {
    pub id: OrderId,
    pub event_id: EventId,
    pub hold_id: HoldId,
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
    pub buyer_email: String,
    pub buyer_name: String,
    pub total_cents: i64,
    pub currency: String,
    pub access_token_hash: Vec<u8>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub paid_cents: i64,
    pub refunded_cents: i64,
    pub payment_method: String,
    pub lines: Option<String>,
    pub fee_cents: i64,
    pub tax_cents: i64,
    pub tax_bp: i64,
}

#[tracing::instrument(skip_all)]
pub async fn order(db: &Db, t: &Tenant, id: OrderId) -> Result<Option<OrderRow>, sqlx::Error> {
    let sql = "SELECT id, event_id, hold_id, status, buyer_email, buyer_name, total_cents, currency,
                      access_token_hash, created_at, expires_at, paid_cents, refunded_cents, payment_method, lines,
                      fee_cents, tax_cents, tax_bp
               FROM orders WHERE org_id = $1 AND id = $2";
    db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(id).fetch_optional(p).await)
}

/// The event's paid orders (partly refunded ones too: their tickets still
/// admit) after `after` (by id), `limit` of them.
#[tracing::instrument(skip_all)]
pub async fn paid_orders(
    db: &Db,
    t: &Tenant,
    event: EventId,
    after: Option<OrderId>,
    limit: i64,
) -> Result<Vec<OrderId>, sqlx::Error> {
    // With a cursor the primary key is walked from it (as `orders_page`).
    let sql = match after {
        None => {
            "SELECT id FROM orders WHERE org_id = $1 AND event_id = $2 AND status IN ($3, 'partially_refunded')
                 ORDER BY id LIMIT $4"
        }
        Some(_) => {
            "SELECT id FROM orders WHERE org_id = $1 AND event_id = $2 AND status IN ($3, 'partially_refunded')
                    AND id > $5 ORDER BY id LIMIT $4"
        }
    };
    db_run!(db, p => {
        let q = sqlx::query_scalar(sql).bind(t.org()).bind(event).bind(OrderStatus::Paid.as_str()).bind(limit);
        match after {
            Some(a) => q.bind(a).fetch_all(p).await,
            None => q.fetch_all(p).await,
        }
    })
}

/// An order as exports and reports list it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OrderSummary {
    pub id: OrderId,
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
    pub buyer_email: String,
    pub buyer_name: String,
    pub total_cents: i64,
    pub currency: String,
    pub created_at: i64,
}

const SUMMARY: &str =
    "SELECT id, status, buyer_email, buyer_name, total_cents, currency, created_at FROM orders";

/// The event's orders after `after` by id, `limit` of them.
#[tracing::instrument(skip_all)]
pub async fn orders_page(
    db: &Db,
    t: &Tenant,
    event: EventId,
    after: Option<OrderId>,
    limit: i64,
) -> Result<Vec<OrderSummary>, sqlx::Error> {
    // With a cursor the primary key is walked from it (no sort of the rest).
    let sql = match after {
        None => format!("{SUMMARY} WHERE org_id = $1 AND event_id = $2 ORDER BY id LIMIT $3"),
        Some(_) => format!(
            "{SUMMARY} WHERE org_id = $1 AND event_id = $2 AND id > $4 ORDER BY id LIMIT $3"
        ),
    };
    db_run!(db, p => {
        let q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(t.org()).bind(event).bind(limit);
        match after {
            Some(a) => q.bind(a).fetch_all(p).await,
            None => q.fetch_all(p).await,
        }
    })
}

/// These orders of the tenant (at most a page's worth: one placeholder
/// each).
#[tracing::instrument(skip_all)]
pub async fn order_summaries(
    db: &Db,
    t: &Tenant,
    ids: &[OrderId],
) -> Result<Vec<OrderSummary>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks: Vec<String> = (2..ids.len() + 2).map(|i| format!("${i}")).collect();
    let sql = format!(
        "{SUMMARY} WHERE org_id = $1 AND id IN ({})",
        marks.join(", ")
    );
    db_run!(db, p => {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(t.org());
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(p).await
    })
}

/// The org's orders by id, newest first, filtered (see `OrderFilter`).
#[tracing::instrument(skip_all)]
pub async fn list_orders(
    db: &Db,
    t: &Tenant,
    f: &super::domain::OrderFilter,
    before: Option<OrderId>,
    limit: i64,
) -> Result<Vec<OrderRow>, sqlx::Error> {
    use std::fmt::Write;
    let mut sql = String::from(
        "SELECT id, event_id, hold_id, status, buyer_email, buyer_name, total_cents, currency,
                access_token_hash, created_at, expires_at, paid_cents, refunded_cents, payment_method, lines,
                      fee_cents, tax_cents, tax_bp
         FROM orders WHERE org_id = $1",
    );
    let mut n = 1;
    let by_id: Option<OrderId> = f.q.as_deref().and_then(|q| q.trim().parse().ok());
    let like = match (&f.q, by_id) {
        (Some(q), None) => {
            let escaped = q
                .trim()
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            Some(format!("%{escaped}%"))
        }
        _ => None,
    };
    if by_id.is_some() {
        n += 1;
        let _ = write!(sql, " AND id = ${n}");
    }
    if like.is_some() {
        n += 1;
        let _ = write!(
            sql,
            " AND (LOWER(buyer_email) LIKE ${n} ESCAPE '\\' OR LOWER(buyer_name) LIKE ${n} ESCAPE '\\')"
        );
    }
    if f.status.is_some() {
        n += 1;
        let _ = write!(sql, " AND status = ${n}");
    }
    if f.event.is_some() {
        n += 1;
        let _ = write!(sql, " AND event_id = ${n}");
    }
    if before.is_some() {
        n += 1;
        let _ = write!(sql, " AND id < ${n}");
    }
    let _ = write!(sql, " ORDER BY id DESC LIMIT {limit}");
    db_run!(db, p => {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(t.org());
        if let Some(id) = by_id {
            q = q.bind(id);
        }
        if let Some(l) = &like {
            q = q.bind(l.clone());
        }
        if let Some(s) = f.status {
            q = q.bind(s.as_str());
        }
        if let Some(e) = f.event {
            q = q.bind(e);
        }
        if let Some(b) = before {
            q = q.bind(b);
        }
        q.fetch_all(p).await
    })
}

#[derive(sqlx::FromRow)]
struct MoneyPageRow {
    id: OrderId,
    #[sqlx(flatten)]
    m: MoneyRow,
}

/// An order that took money, for the sales report.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MoneyRow {
    pub created_at: i64,
    pub currency: String,
    pub total_cents: i64,
    pub fee_cents: i64,
    pub tax_cents: i64,
    pub refunded_cents: i64,
    pub lines: Option<String>,
}

/// The event's orders that took money (paid, refunded or cancelled after
/// payment), `limit` after the `after`-th.
#[tracing::instrument(skip_all)]
pub async fn money_rows(
    db: &Db,
    t: &Tenant,
    event: EventId,
    after: Option<OrderId>,
    limit: i64,
) -> Result<Vec<(OrderId, MoneyRow)>, sqlx::Error> {
    let sql = match after {
        None => "SELECT id, created_at, currency, total_cents, fee_cents, tax_cents, refunded_cents, lines
                 FROM orders WHERE org_id = $1 AND event_id = $2 AND paid_cents > 0 AND status <> 'expired'
                 ORDER BY id LIMIT $3",
        Some(_) => "SELECT id, created_at, currency, total_cents, fee_cents, tax_cents, refunded_cents, lines
                 FROM orders WHERE org_id = $1 AND event_id = $2 AND paid_cents > 0 AND status <> 'expired'
                   AND id > $4 ORDER BY id LIMIT $3",
    };
    let rows: Vec<MoneyPageRow> = db_run!(db, p => {
        let q = sqlx::query_as(sql).bind(t.org()).bind(event).bind(limit);
        match after {
            Some(a) => q.bind(a).fetch_all(p).await,
            None => q.fetch_all(p).await,
        }
    })?;
    Ok(rows.into_iter().map(|r| (r.id, r.m)).collect())
}

/// Orders of the event that can still be cancelled (pending, paid, partly
/// refunded), `limit` of them.
pub async fn open_orders(
    db: &Db,
    t: &Tenant,
    event: EventId,
    limit: i64,
) -> Result<Vec<OrderId>, sqlx::Error> {
    let sql = "SELECT id FROM orders WHERE org_id = $1 AND event_id = $2
               AND status IN ('pending', 'paid', 'partially_refunded') ORDER BY id LIMIT $3";
    db_run!(db, p => sqlx::query_scalar(sql).bind(t.org()).bind(event).bind(limit).fetch_all(p).await)
}
