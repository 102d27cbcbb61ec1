//! Events' tables. Every statement names the tenant's org.

use kernel::{
    Db, Stmt, clock, db_run,
    ids::{EventId, LayoutId, QuotaId, TicketTypeId, VoucherId},
};

use super::{
    domain::{Catalog, EventStatus, EventView, QuotaView, TicketTypeView, TransferPolicy},
    vouchers::VoucherView,
};
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
    pub transfers_allowed: i64,
    pub transfer_deadline: Option<i64>,
    /// 1: sells through its dates.
    pub series: i64,
    /// The series this event is a date of.
    pub series_id: Option<EventId>,
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
            transfers: TransferPolicy {
                allowed: self.transfers_allowed != 0,
                deadline: self.transfer_deadline.map(clock::rfc3339),
            },
            series: self.series != 0,
            series_id: self.series_id,
            starts_at_micros: self.starts_at,
            ends_at_micros: self.ends_at,
            transfer_deadline_micros: self.transfer_deadline,
        }
    }
}

#[derive(Clone, sqlx::FromRow)]
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
    pub min_per_order: Option<i64>,
    pub hidden: i64,
    pub sort_order: i64,
    pub retired_at: Option<i64>,
    /// JSON; `None` asks the default questions.
    pub questions: Option<String>,
    /// The series' ticket type this date's type follows.
    pub template_id: Option<TicketTypeId>,
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
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
            min_per_order: self.min_per_order,
            hidden: self.hidden != 0,
            sort_order: self.sort_order,
            retired_at: self.retired_at.map(clock::rfc3339),
            questions: super::questions::stored(self.questions.as_deref()),
            template_id: self.template_id,
            sale_window: (self.sale_starts_at, self.sale_ends_at),
            valid_from: self.valid_from.map(clock::rfc3339),
            valid_until: self.valid_until.map(clock::rfc3339),
            valid_window: (self.valid_from, self.valid_until),
        }
    }
}

const EVENT_COLS: &str = "id, name, starts_at, ends_at, timezone, status, created_at, transfers_allowed, transfer_deadline, series, series_id";

pub fn insert_event(t: &Tenant, e: &EventRow) -> Stmt {
    Stmt::new(
        "INSERT INTO events (id, org_id, name, starts_at, ends_at, timezone, status, created_at,
             transfers_allowed, transfer_deadline, series, series_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(e.id)
    .bind(t.org())
    .bind(e.name.clone())
    .bind(e.starts_at)
    .bind(e.ends_at)
    .bind(e.timezone.clone())
    .bind(e.status.as_str())
    .bind(e.created_at)
    .bind(e.transfers_allowed)
    .bind(e.transfer_deadline)
    .bind(e.series)
    .bind(e.series_id.map(|id| id.0))
}

/// The dates of a series, earliest first.
#[tracing::instrument(skip_all)]
pub async fn dates(db: &Db, t: &Tenant, series: EventId) -> Result<Vec<EventRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {EVENT_COLS} FROM events WHERE org_id = $1 AND series_id = $2
         ORDER BY starts_at, id"
    );
    db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(t.org()).bind(series).fetch_all(p).await)
}

/// The dates' ticket types that follow the series' type `template`.
#[tracing::instrument(skip_all)]
pub async fn following(
    db: &Db,
    t: &Tenant,
    template: TicketTypeId,
) -> Result<Vec<TicketTypeRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {TYPE_COLS} FROM ticket_types WHERE org_id = $1 AND template_id = $2 ORDER BY id"
    );
    db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(t.org()).bind(template).fetch_all(p).await)
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
             sale_starts_at, sale_ends_at, max_per_order, created_at, min_per_order, hidden,
             sort_order, retired_at, questions, template_id, valid_from, valid_until)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
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
    .bind(tt.min_per_order)
    .bind(tt.hidden)
    .bind(tt.sort_order)
    .bind(tt.retired_at)
    .bind(tt.questions.clone())
    .bind(tt.template_id.map(|id| id.0))
    .bind(tt.valid_from)
    .bind(tt.valid_until)
}

/// Writes a ticket type's terms, only while its capacity is still `seen`
/// (one row when it did).
pub fn update_ticket_type(t: &Tenant, tt: &TicketTypeRow, seen: i64) -> Stmt {
    Stmt::new(
        "UPDATE ticket_types SET name = $1, price_cents = $2, capacity = $3, sale_starts_at = $4,
             sale_ends_at = $5, max_per_order = $6, min_per_order = $7, hidden = $8,
             sort_order = $9, retired_at = $10, questions = $11, valid_from = $16, valid_until = $17
         WHERE org_id = $12 AND id = $13 AND event_id = $14 AND capacity = $15",
    )
    .bind(tt.name.clone())
    .bind(tt.price_cents)
    .bind(tt.capacity)
    .bind(tt.sale_starts_at)
    .bind(tt.sale_ends_at)
    .bind(tt.max_per_order)
    .bind(tt.min_per_order)
    .bind(tt.hidden)
    .bind(tt.sort_order)
    .bind(tt.retired_at)
    .bind(tt.questions.clone())
    .bind(t.org())
    .bind(tt.id)
    .bind(tt.event_id)
    .bind(seen)
    .bind(tt.valid_from)
    .bind(tt.valid_until)
}

#[tracing::instrument(skip_all)]
pub async fn ticket_type_row(
    db: &Db,
    t: &Tenant,
    event: EventId,
    id: TicketTypeId,
) -> Result<Option<TicketTypeRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {TYPE_COLS} FROM ticket_types WHERE org_id = $1 AND event_id = $2 AND id = $3"
    );
    db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(t.org()).bind(event).bind(id).fetch_optional(p).await)
}

/// See [`super::validity_windows`].
pub async fn validity_windows(
    db: &Db,
    t: &Tenant,
    event: EventId,
) -> Result<Vec<(TicketTypeId, (Option<i64>, Option<i64>))>, sqlx::Error> {
    let sql = "SELECT id, valid_from, valid_until FROM ticket_types
               WHERE org_id = $1 AND event_id = $2 AND (valid_from IS NOT NULL OR valid_until IS NOT NULL)";
    let rows: Vec<(TicketTypeId, Option<i64>, Option<i64>)> =
        db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(event).fetch_all(p).await)?;
    Ok(rows.into_iter().map(|(id, f, u)| (id, (f, u))).collect())
}

const TYPE_COLS: &str = "id, event_id, name, price_cents, currency, capacity, sale_starts_at,
    sale_ends_at, max_per_order, min_per_order, hidden, sort_order, retired_at, questions,
    template_id, valid_from, valid_until";

/// Sets the event's transfer policy, and its dates' when it is a series.
pub fn set_transfer_policy(t: &Tenant, id: EventId, allowed: bool, deadline: Option<i64>) -> Stmt {
    Stmt::new(
        "UPDATE events SET transfers_allowed = $1, transfer_deadline = $2
         WHERE org_id = $3 AND (id = $4 OR series_id = $5)",
    )
    .bind(i64::from(allowed))
    .bind(deadline)
    .bind(t.org())
    .bind(id)
    .bind(id)
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
    let sql = format!(
        "SELECT {TYPE_COLS} FROM ticket_types WHERE org_id = $1 AND event_id = $2
         ORDER BY sort_order, id"
    );
    let types: Vec<TicketTypeRow> = db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(t.org()).bind(id).fetch_all(p).await)?;
    let sql = "SELECT id, name, capacity, created_at FROM quotas
               WHERE org_id = $1 AND event_id = $2 ORDER BY id";
    let quotas: Vec<(QuotaId, String, i64, i64)> =
        db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(id).fetch_all(p).await)?;
    let members: Vec<(QuotaId, TicketTypeId)> = if quotas.is_empty() {
        Vec::new()
    } else {
        let sql = "SELECT m.quota_id, m.ticket_type_id FROM quota_ticket_types m
                   JOIN quotas q ON q.org_id = m.org_id AND q.id = m.quota_id
                   WHERE m.org_id = $1 AND q.event_id = $2 ORDER BY m.quota_id, m.ticket_type_id";
        db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(id).fetch_all(p).await)?
    };
    let quotas = quotas
        .into_iter()
        .map(|(qid, name, capacity, created_at)| QuotaView {
            id: qid,
            event_id: id,
            name,
            capacity,
            ticket_type_ids: members
                .iter()
                .filter(|(q, _)| *q == qid)
                .map(|(_, tt)| *tt)
                .collect(),
            created_at: clock::rfc3339(created_at),
        })
        .collect();
    let sql = "SELECT id, reserved_for FROM vouchers
               WHERE org_id = $1 AND event_id = $2 AND reserved_for IS NOT NULL ORDER BY id";
    let reserved: Vec<(VoucherId, TicketTypeId)> =
        db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(id).fetch_all(p).await)?;
    Ok(Some(Catalog {
        reserved,
        tenant: t.clone(),
        event: event.into_view(types.into_iter().map(TicketTypeRow::into_view).collect()),
        quotas,
    }))
}

/// A quota and its members.
pub fn insert_quota(t: &Tenant, q: &QuotaView, now: i64) -> Vec<Stmt> {
    let mut stmts = vec![
        Stmt::new(
            "INSERT INTO quotas (org_id, id, event_id, name, capacity, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(t.org())
        .bind(q.id)
        .bind(q.event_id)
        .bind(q.name.clone())
        .bind(q.capacity)
        .bind(now),
    ];
    for tt in &q.ticket_type_ids {
        stmts.push(
            Stmt::new(
                "INSERT INTO quota_ticket_types (org_id, quota_id, ticket_type_id) VALUES ($1, $2, $3)",
            )
            .bind(t.org())
            .bind(q.id)
            .bind(*tt),
        );
    }
    stmts
}

pub fn delete_quota(t: &Tenant, q: QuotaId) -> Vec<Stmt> {
    vec![
        Stmt::new("DELETE FROM quota_ticket_types WHERE org_id = $1 AND quota_id = $2")
            .bind(t.org())
            .bind(q),
        Stmt::new("DELETE FROM quotas WHERE org_id = $1 AND id = $2")
            .bind(t.org())
            .bind(q),
    ]
}

#[derive(sqlx::FromRow)]
struct VoucherRow {
    id: VoucherId,
    event_id: EventId,
    code: String,
    percent_off: Option<i64>,
    amount_off_cents: Option<i64>,
    max_uses: i64,
    valid_until: Option<i64>,
    created_at: i64,
    reserved_for: Option<TicketTypeId>,
}

const VOUCHER_COLS: &str = "id, event_id, code, percent_off, amount_off_cents, max_uses, valid_until, created_at, reserved_for";

/// Vouchers with their ticket types (one more query for all of them).
async fn vouchers_with_types(
    db: &Db,
    t: &Tenant,
    rows: Vec<VoucherRow>,
) -> Result<Vec<VoucherView>, sqlx::Error> {
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let sql = "SELECT ticket_type_id FROM voucher_ticket_types
                   WHERE org_id = $1 AND voucher_id = $2 ORDER BY ticket_type_id";
        let types: Vec<TicketTypeId> =
            db_run!(db, p => sqlx::query_scalar(sql).bind(t.org()).bind(r.id).fetch_all(p).await)?;
        out.push(VoucherView {
            id: r.id,
            event_id: r.event_id,
            code: r.code,
            percent_off: r.percent_off,
            amount_off_cents: r.amount_off_cents,
            max_uses: r.max_uses,
            valid_until: r.valid_until.map(clock::rfc3339),
            ticket_type_ids: types,
            created_at: clock::rfc3339(r.created_at),
            reserved: r.reserved_for.is_some(),
            valid_until_micros: r.valid_until,
            reserved_for: r.reserved_for,
        });
    }
    Ok(out)
}

#[tracing::instrument(skip_all)]
pub async fn voucher_by_code(
    db: &Db,
    t: &Tenant,
    event: EventId,
    code: &str,
) -> Result<Option<VoucherView>, sqlx::Error> {
    let sql = format!(
        "SELECT {VOUCHER_COLS} FROM vouchers WHERE org_id = $1 AND event_id = $2 AND code = $3"
    );
    let row: Option<VoucherRow> = db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(t.org()).bind(event).bind(code).fetch_optional(p).await)?;
    Ok(vouchers_with_types(db, t, row.into_iter().collect())
        .await?
        .pop())
}

#[tracing::instrument(skip_all)]
pub async fn voucher(
    db: &Db,
    t: &Tenant,
    id: VoucherId,
) -> Result<Option<VoucherView>, sqlx::Error> {
    let sql = format!("SELECT {VOUCHER_COLS} FROM vouchers WHERE org_id = $1 AND id = $2");
    let row: Option<VoucherRow> = db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(t.org()).bind(id).fetch_optional(p).await)?;
    Ok(vouchers_with_types(db, t, row.into_iter().collect())
        .await?
        .pop())
}

#[tracing::instrument(skip_all)]
pub async fn list_vouchers(
    db: &Db,
    t: &Tenant,
    event: EventId,
    limit: i64,
    after: Option<VoucherId>,
) -> Result<Vec<VoucherView>, sqlx::Error> {
    // A nil id sorts before every UUIDv7.
    let after = after.unwrap_or(VoucherId(uuid::Uuid::nil()));
    let sql = format!(
        "SELECT {VOUCHER_COLS} FROM vouchers WHERE org_id = $1 AND event_id = $2 AND id > $3
         ORDER BY id LIMIT $4"
    );
    let rows: Vec<VoucherRow> = db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(t.org()).bind(event).bind(after).bind(limit).fetch_all(p).await)?;
    vouchers_with_types(db, t, rows).await
}

pub fn insert_voucher(t: &Tenant, v: &VoucherView, now: i64) -> Vec<Stmt> {
    let mut stmts = vec![
        Stmt::new(
            "INSERT INTO vouchers (org_id, id, event_id, code, percent_off, amount_off_cents,
                 max_uses, valid_until, created_at, reserved_for)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(t.org())
        .bind(v.id)
        .bind(v.event_id)
        .bind(v.code.clone())
        .bind(v.percent_off)
        .bind(v.amount_off_cents)
        .bind(v.max_uses)
        .bind(v.valid_until_micros)
        .bind(now)
        .bind(kernel::db::Val::Uuid(v.reserved_for.map(|tt| tt.0))),
    ];
    for tt in &v.ticket_type_ids {
        stmts.push(
            Stmt::new(
                "INSERT INTO voucher_ticket_types (org_id, voucher_id, ticket_type_id) VALUES ($1, $2, $3)",
            )
            .bind(t.org())
            .bind(v.id)
            .bind(*tt),
        );
    }
    stmts
}

/// Stores the event's seat map document (replacing the one before).
pub fn put_seat_map(t: &Tenant, event: EventId, doc: &str, now: i64) -> Stmt {
    Stmt::new(
        "INSERT INTO seat_maps (org_id, event_id, doc, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (org_id, event_id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
    )
    .bind(t.org())
    .bind(event)
    .bind(doc.to_string())
    .bind(now)
}

#[tracing::instrument(skip_all)]
pub async fn seat_map(
    db: &Db,
    t: &Tenant,
    event: EventId,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    let sql = "SELECT doc, updated_at FROM seat_maps WHERE org_id = $1 AND event_id = $2";
    db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(event).fetch_optional(p).await)
}

/// A ticket type's capacity as the database has it now.
#[tracing::instrument(skip_all)]
pub async fn capacity(
    db: &Db,
    t: &Tenant,
    event: EventId,
    tt: TicketTypeId,
) -> Result<Option<i64>, sqlx::Error> {
    let sql = "SELECT capacity FROM ticket_types WHERE org_id = $1 AND event_id = $2 AND id = $3";
    db_run!(db, p => sqlx::query_scalar(sql).bind(t.org()).bind(event).bind(tt).fetch_optional(p).await)
}

/// A venue layout as kept: its sections as JSON, and its categories (a
/// JSON list) so a list of layouts reads no seats.
#[derive(sqlx::FromRow)]
pub struct LayoutRow {
    pub id: LayoutId,
    pub name: String,
    pub doc: String,
    pub categories: String,
    pub seats: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

pub fn insert_layout(t: &Tenant, l: &LayoutRow) -> Stmt {
    Stmt::new(
        "INSERT INTO venue_layouts (org_id, id, name, doc, categories, seats, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(t.org())
    .bind(l.id)
    .bind(l.name.clone())
    .bind(l.doc.clone())
    .bind(l.categories.clone())
    .bind(l.seats)
    .bind(l.created_at)
    .bind(l.updated_at)
}

/// Replaces a layout's name and seats (its `created_at` stays).
pub fn update_layout(t: &Tenant, l: &LayoutRow) -> Stmt {
    Stmt::new(
        "UPDATE venue_layouts SET name = $1, doc = $2, categories = $3, seats = $4, updated_at = $5
         WHERE org_id = $6 AND id = $7",
    )
    .bind(l.name.clone())
    .bind(l.doc.clone())
    .bind(l.categories.clone())
    .bind(l.seats)
    .bind(l.updated_at)
    .bind(t.org())
    .bind(l.id)
}

#[tracing::instrument(skip_all)]
pub async fn layout(db: &Db, t: &Tenant, id: LayoutId) -> Result<Option<LayoutRow>, sqlx::Error> {
    let sql = "SELECT id, name, doc, categories, seats, created_at, updated_at FROM venue_layouts
               WHERE org_id = $1 AND id = $2";
    db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(id).fetch_optional(p).await)
}

/// A layout in a list: no seats.
#[derive(sqlx::FromRow)]
pub struct LayoutListRow {
    pub id: LayoutId,
    pub name: String,
    /// JSON list.
    pub categories: String,
    pub seats: i64,
    pub updated_at: i64,
}

/// The org's layouts, newest first.
#[tracing::instrument(skip_all)]
pub async fn layouts(db: &Db, t: &Tenant, limit: i64) -> Result<Vec<LayoutListRow>, sqlx::Error> {
    let sql = "SELECT id, name, categories, seats, updated_at FROM venue_layouts
               WHERE org_id = $1 ORDER BY id DESC LIMIT $2";
    db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(limit).fetch_all(p).await)
}
