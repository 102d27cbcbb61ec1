//! The waiting list: buyers of a sold-out ticket type line up, first come
//! first served. When tickets come back (a hold expires, an order lapses or
//! is cancelled, the capacity grows) the first in line is offered them: a
//! hold made for them and kept for the offer's time (the event's, 48 hours
//! unless it says otherwise), its link
//! mailed (`waitlist.offered`). An offer not taken in time lapses with its
//! hold, and the tickets go to the next in line. Strictly in order: the
//! head waits until enough are back for what they asked.
//!
//! Offers are made by a sweep on every node every second; an entry is
//! claimed (`offering`) by one conditional update before its hold is made,
//! so two nodes never make two offers of one place in line. A claim left by
//! a node that died goes back in line after a minute.

use kernel::{
    ApiError, DomainEvent, Stmt, clock, db_run,
    error::Checks,
    events::emit,
    ids::{EventId, HoldId, OrgId, TicketTypeId, WaitlistEntryId},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    Inventory,
    domain::{self, DEFAULT_MAX_PER_ORDER},
    error::{Error, Result},
};
use crate::{
    App,
    identity::{self, Actor, Tenant},
};

/// A claim older than this without its hold goes back in line.
const CLAIM_TIMEOUT_MICROS: i64 = 60 * 1_000_000;
/// Offers made per ticket type per sweep.
const OFFERS_PER_SWEEP: usize = 20;

/// Where an entry stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitStatus {
    /// In line.
    Waiting,
    /// Being offered (a node is making the hold).
    Offering,
    /// Offered: a hold is kept for them until `offer_expires_at`.
    Offered,
    /// They checked the offer out.
    Bought,
    /// The offer ran out; the tickets went on.
    Lapsed,
    /// They left the line.
    Left,
}

impl WaitStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitStatus::Waiting => "waiting",
            WaitStatus::Offering => "offering",
            WaitStatus::Offered => "offered",
            WaitStatus::Bought => "bought",
            WaitStatus::Lapsed => "lapsed",
            WaitStatus::Left => "left",
        }
    }
}

impl TryFrom<String> for WaitStatus {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        Ok(match s.as_str() {
            "waiting" => WaitStatus::Waiting,
            "offering" => WaitStatus::Offering,
            "offered" => WaitStatus::Offered,
            "bought" => WaitStatus::Bought,
            "lapsed" => WaitStatus::Lapsed,
            "left" => WaitStatus::Left,
            other => return Err(format!("unknown waiting-list status {other:?}")),
        })
    }
}

/// One place on a waiting list.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WaitlistEntry {
    pub id: WaitlistEntryId,
    pub event_id: EventId,
    pub ticket_type_id: TicketTypeId,
    pub email: String,
    pub name: String,
    pub quantity: i64,
    pub status: WaitStatus,
    pub joined_at: String,
    /// The hold kept for them (offered).
    pub hold_id: Option<HoldId>,
    pub offer_expires_at: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: WaitlistEntryId,
    event_id: EventId,
    ticket_type_id: TicketTypeId,
    email: String,
    name: String,
    quantity: i64,
    #[sqlx(try_from = "String")]
    status: WaitStatus,
    joined_at: i64,
    hold_id: Option<HoldId>,
    offer_expires_at: Option<i64>,
}

impl From<Row> for WaitlistEntry {
    fn from(r: Row) -> Self {
        WaitlistEntry {
            id: r.id,
            event_id: r.event_id,
            ticket_type_id: r.ticket_type_id,
            email: r.email,
            name: r.name,
            quantity: r.quantity,
            status: r.status,
            joined_at: clock::rfc3339(r.joined_at),
            hold_id: r.hold_id,
            offer_expires_at: r.offer_expires_at.map(clock::rfc3339),
        }
    }
}

const COLS: &str = "id, event_id, ticket_type_id, email, name, quantity, status, joined_at,
    hold_id, offer_expires_at";

/// The first in line were offered tickets: a hold kept for them.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct WaitlistOffered {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub entry_id: WaitlistEntryId,
    pub ticket_type_id: TicketTypeId,
    pub hold_id: HoldId,
    pub quantity: i64,
    pub email: String,
    pub name: String,
    pub expires_at: String,
}

impl DomainEvent for WaitlistOffered {
    const NAME: &'static str = "waitlist.offered";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

/// A place in line, as a buyer asks for it.
pub struct Join {
    pub ticket_type_id: TicketTypeId,
    pub quantity: i64,
    pub email: String,
    pub name: String,
}

/// A buyer joins the line for a sold-out ticket type (general admission,
/// on the storefront): 409 while there are tickets to take, or when the
/// address is in this line already.
pub async fn join(
    app: &App,
    t: &Tenant,
    event: EventId,
    req: Join,
) -> Result<(WaitlistEntry, i64, String)> {
    let catalog = domain::published_catalog(app, t, event).await?;
    domain::refuse_series(&catalog)?;
    let mut c = Checks::default();
    let email = c.take("email", kernel::parse::email(&req.email));
    let name = c.take("name", kernel::parse::name(&req.name, 200));
    let now = app.kernel.now();
    match catalog.ticket_type(req.ticket_type_id) {
        Some(ty) if ty.shown_with(None) => {
            let max = ty.max_per_order.unwrap_or(DEFAULT_MAX_PER_ORDER);
            let min = ty.min_per_order.unwrap_or(1).min(max);
            if !(min..=max).contains(&req.quantity) {
                c.fail("quantity", &format!("must be between {min} and {max}"));
            }
            if now >= catalog.event.ends_at_micros || ty.sale_window.1.is_some_and(|e| now >= e) {
                c.fail("ticket_type_id", "its sale is over");
            }
        }
        _ => c.fail("ticket_type_id", "is not a ticket type of this event"),
    }
    if crate::events::seating(app, t, event)
        .await?
        .is_some_and(|m| m.types.contains(&req.ticket_type_id))
    {
        c.fail("ticket_type_id", "is seated: its seats are on the map");
    }
    c.finish()?;
    let (Some(email), Some(name)) = (email, name) else {
        return Err(Error::Invalid(Vec::new()));
    };
    let left = app
        .state::<Inventory>()
        .remaining(app, t, event, &[req.ticket_type_id])
        .await?;
    if left.first().is_some_and(|l| *l >= req.quantity) {
        return Err(Error::Api(ApiError::Conflict(
            "there are tickets left: take them now".into(),
        )));
    }
    let row = Row {
        id: WaitlistEntryId::new(),
        event_id: event,
        ticket_type_id: req.ticket_type_id,
        email,
        name,
        quantity: req.quantity,
        status: WaitStatus::Waiting,
        joined_at: now,
        hold_id: None,
        offer_expires_at: None,
    };
    let key = kernel::auth::PlainToken::generate(LEAVE_PREFIX);
    let insert = Stmt::new(
        "INSERT INTO waiting_list (org_id, id, event_id, ticket_type_id, email, name, quantity,
             status, joined_at, leave_key_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(t.org())
    .bind(row.id)
    .bind(event)
    .bind(row.ticket_type_id)
    .bind(row.email.clone())
    .bind(row.name.clone())
    .bind(row.quantity)
    .bind(row.status.as_str())
    .bind(now)
    .bind(key.hash().0);
    match app.db().write_grouped(vec![insert]).await {
        Err(e) if kernel::db::is_unique_violation(&e) => {
            return Err(Error::Api(ApiError::Conflict(
                "this address is on the waiting list for this ticket type already".into(),
            )));
        }
        other => other?,
    }
    let position = position(app, t, row.ticket_type_id, now, row.id).await?;
    Ok((row.into(), position, key.expose().to_string()))
}

/// Keys to leave a waiting list start so.
pub const LEAVE_PREFIX: &str = "wl.";

/// The buyer leaves the line with the key they got when they joined: 404
/// when the key does not open the entry (or there is none), 409 when an
/// offer is being made or stands (it lapses on its own, or is bought).
/// Leaving twice is leaving once.
pub async fn leave(
    app: &App,
    t: &Tenant,
    entry: WaitlistEntryId,
    key: &str,
) -> Result<WaitlistEntry> {
    let mut row = opened(app, t, entry, key).await?;
    match row.status {
        WaitStatus::Left => return Ok(row.into()),
        WaitStatus::Waiting => {}
        WaitStatus::Offering | WaitStatus::Offered => {
            return Err(Error::Api(ApiError::Conflict(
                "tickets are being held for you: take them from the offer's link, or let the offer run out".into(),
            )));
        }
        WaitStatus::Bought | WaitStatus::Lapsed => {
            return Err(Error::Api(ApiError::Conflict(format!(
                "this place in line has ended ({})",
                row.status.as_str()
            ))));
        }
    }
    // Only while still waiting: an offer claimed a moment ago stands.
    let mut tx = app.db().begin().await?;
    let left = Stmt::new(
        "UPDATE waiting_list SET status = 'left' WHERE org_id = $1 AND id = $2 AND status = 'waiting'",
    )
    .bind(t.org())
    .bind(entry)
    .execute_in(&mut tx)
    .await?;
    if left != 1 {
        return Err(Error::Api(ApiError::Conflict(
            "an offer was being made to you just now: take it from its link, or let it run out"
                .into(),
        )));
    }
    tx.commit().await?;
    row.status = WaitStatus::Left;
    Ok(row.into())
}

/// The entry and where it stands in line now (0 once it is not waiting),
/// for its buyer (who proves it with the key they got when they joined).
pub async fn for_buyer(
    app: &App,
    t: &Tenant,
    entry: WaitlistEntryId,
    key: &str,
) -> Result<(WaitlistEntry, i64)> {
    let row = opened(app, t, entry, key).await?;
    let at = if row.status == WaitStatus::Waiting {
        position(app, t, row.ticket_type_id, row.joined_at, row.id).await?
    } else {
        0
    };
    Ok((row.into(), at))
}

/// The entry `key` opens (404 for any other key, or none).
async fn opened(app: &App, t: &Tenant, entry: WaitlistEntryId, key: &str) -> Result<Row> {
    let db = app.db();
    let sql =
        format!("SELECT {COLS}, leave_key_hash FROM waiting_list WHERE org_id = $1 AND id = $2");
    #[derive(sqlx::FromRow)]
    struct Keyed {
        #[sqlx(flatten)]
        row: Row,
        leave_key_hash: Option<Vec<u8>>,
    }
    let found: Option<Keyed> = db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(t.org()).bind(entry).fetch_optional(p).await)?;
    let Some(found) = found else {
        return Err(Error::NotFound);
    };
    let presented = kernel::auth::PlainToken::from_presented(key).hash();
    if !found
        .leave_key_hash
        .is_some_and(|h| crate::web::csrf_matches_bytes(&presented.0, &h))
    {
        return Err(Error::NotFound);
    }
    Ok(found.row)
}

/// Where an entry joined at `joined_at` stands in its line (1: next).
async fn position(
    app: &App,
    t: &Tenant,
    tt: TicketTypeId,
    joined_at: i64,
    id: WaitlistEntryId,
) -> Result<i64> {
    let sql = "SELECT COUNT(*) FROM waiting_list
               WHERE org_id = $1 AND ticket_type_id = $2 AND status = 'waiting'
                 AND (joined_at < $3 OR (joined_at = $3 AND id <= $4))";
    let db = app.db();
    Ok(
        db_run!(db, p => sqlx::query_scalar(sql).bind(t.org()).bind(tt).bind(joined_at).bind(id).fetch_one(p).await)?,
    )
}

/// The event's waiting list, oldest first, `limit` after `after`.
pub async fn list(
    app: &App,
    actor: &Actor,
    event: EventId,
    limit: i64,
    after: Option<WaitlistEntryId>,
) -> Result<(Vec<WaitlistEntry>, Option<WaitlistEntryId>)> {
    let t = actor.require(kernel::Permission::OrdersRead)?;
    if crate::events::catalog(app, t, event).await?.is_none() {
        return Err(Error::NotFound);
    }
    let db = app.db();
    let rows: Vec<Row> = match after {
        Some(a) => {
            let sql = format!(
                "SELECT {COLS} FROM waiting_list WHERE org_id = $1 AND event_id = $2 AND id > $3
                 ORDER BY id LIMIT $4"
            );
            db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(t.org()).bind(event).bind(a).bind(limit + 1).fetch_all(p).await)?
        }
        None => {
            let sql = format!(
                "SELECT {COLS} FROM waiting_list WHERE org_id = $1 AND event_id = $2
                 ORDER BY id LIMIT $3"
            );
            db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(t.org()).bind(event).bind(limit + 1).fetch_all(p).await)?
        }
    };
    let more = rows.len() as i64 > limit;
    let entries: Vec<WaitlistEntry> = rows
        .into_iter()
        .take(limit as usize)
        .map(Into::into)
        .collect();
    let next = if more {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok((entries, next))
}

/// The sweep (every node, every second): offers settled (bought, lapsed),
/// lost claims put back in line, and tickets that came back offered to the
/// first in each line. How many offers it made.
pub async fn sweep(app: &App) -> Result<usize> {
    settle(app).await?;
    let db = app.db();
    let sql = "SELECT DISTINCT org_id, event_id, ticket_type_id FROM waiting_list
               WHERE status = 'waiting' LIMIT 200";
    let lines: Vec<(OrgId, EventId, TicketTypeId)> =
        db_run!(db, p => sqlx::query_as(sql).fetch_all(p).await)?;
    let mut made = 0;
    for (org, event, tt) in lines {
        let Some(t) = identity::upkeep_tenant(app, org).await? else {
            continue;
        };
        match offer_line(app, &t, event, tt).await {
            Ok(n) => made += n,
            Err(e) => tracing::warn!(%org, %event, ticket_type = %tt, error = %e,
                "waiting-list offers not made this time"),
        }
    }
    Ok(made)
}

/// Offers settled: checked out (bought), or their hold released (lapsed);
/// claims left by a node that died go back in line.
async fn settle(app: &App) -> Result<()> {
    let db = app.db();
    let sql = "SELECT w.org_id, w.id, h.status FROM waiting_list w
               JOIN holds h ON h.org_id = w.org_id AND h.id = w.hold_id
               WHERE w.status = 'offered' AND h.status <> 'active' LIMIT 500";
    let done: Vec<(OrgId, WaitlistEntryId, String)> =
        db_run!(db, p => sqlx::query_as(sql).fetch_all(p).await)?;
    let mut writes = Vec::with_capacity(done.len());
    for (org, id, hold) in done {
        let to = if hold == "consumed" {
            WaitStatus::Bought
        } else {
            WaitStatus::Lapsed
        };
        writes.push(
            Stmt::new(
                "UPDATE waiting_list SET status = $1 WHERE org_id = $2 AND id = $3 AND status = 'offered'",
            )
            .bind(to.as_str())
            .bind(org)
            .bind(id),
        );
    }
    let sql = "SELECT org_id, id FROM waiting_list
               WHERE status = 'offering' AND offered_at < $1 LIMIT 500";
    let stale = app.kernel.now() - CLAIM_TIMEOUT_MICROS;
    let lost: Vec<(OrgId, WaitlistEntryId)> =
        db_run!(db, p => sqlx::query_as(sql).bind(stale).fetch_all(p).await)?;
    for (org, id) in lost {
        writes.push(
            Stmt::new(
                "UPDATE waiting_list SET status = 'waiting', offered_at = NULL
                 WHERE org_id = $1 AND id = $2 AND status = 'offering' AND offered_at < $3",
            )
            .bind(org)
            .bind(id)
            .bind(stale),
        );
    }
    // One by one: an entry that cannot move is told in the log and keeps
    // no other from moving.
    for w in writes {
        if let Err(e) = app.db().write_grouped(vec![w]).await {
            tracing::warn!(error = %e, "a waiting-list entry was not settled");
        }
    }
    Ok(())
}

/// Offers what came back of one ticket type to the first in its line, as
/// long as the first one's quantity is there.
async fn offer_line(app: &App, t: &Tenant, event: EventId, tt: TicketTypeId) -> Result<usize> {
    let Some(catalog) = crate::events::catalog(app, t, event).await? else {
        return Ok(0);
    };
    let now = app.kernel.now();
    let ty = catalog.ticket_type(tt);
    // A line that can never be served (the event over or called off, the
    // type retired or its sale over) lapses: it keeps no sweep busy.
    let over = !catalog.is_published()
        || now >= catalog.event.ends_at_micros
        || ty
            .is_none_or(|ty| ty.retired_at.is_some() || ty.sale_window.1.is_some_and(|e| now >= e));
    if over {
        app.db()
            .write_grouped(vec![
                Stmt::new(
                    "UPDATE waiting_list SET status = 'lapsed'
                     WHERE org_id = $1 AND ticket_type_id = $2 AND status = 'waiting'",
                )
                .bind(t.org())
                .bind(tt),
            ])
            .await?;
        return Ok(0);
    }
    if !ty.is_some_and(|ty| ty.on_sale_at(now)) {
        return Ok(0); // not on sale yet: the line waits
    }
    let db = app.db();
    let mut made = 0;
    for _ in 0..OFFERS_PER_SWEEP {
        let left = app
            .state::<Inventory>()
            .remaining(app, t, event, &[tt])
            .await?;
        let left = left.first().copied().unwrap_or(0);
        if left <= 0 {
            break;
        }
        let sql = format!(
            "SELECT {COLS} FROM waiting_list
             WHERE org_id = $1 AND ticket_type_id = $2 AND status = 'waiting'
             ORDER BY joined_at, id LIMIT 1"
        );
        let head: Option<Row> = db_run!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(t.org()).bind(tt).fetch_optional(p).await)?;
        let Some(head) = head else { break };
        if head.quantity > left {
            break; // in order: the first waits until theirs is there
        }
        // Claimed by one node only.
        let mut tx = app.db().begin().await?;
        let claimed = Stmt::new(
            "UPDATE waiting_list SET status = 'offering', offered_at = $1
             WHERE org_id = $2 AND id = $3 AND status = 'waiting'",
        )
        .bind(now)
        .bind(t.org())
        .bind(head.id)
        .execute_in(&mut tx)
        .await?;
        tx.commit().await?;
        if claimed != 1 {
            break;
        }
        let secs = super::limits::of(app, t.org(), event).await?.offer_secs();
        let hold = match domain::offer_hold(app, t, event, tt, head.quantity, secs).await {
            Ok(h) => h,
            Err(e) => {
                // Not there after all (taken meanwhile): back in line, first.
                app.db()
                    .write_grouped(vec![
                        Stmt::new(
                            "UPDATE waiting_list SET status = 'waiting', offered_at = NULL
                             WHERE org_id = $1 AND id = $2 AND status = 'offering'",
                        )
                        .bind(t.org())
                        .bind(head.id),
                    ])
                    .await?;
                return match e {
                    Error::SoldOut(_) => Ok(made),
                    other => Err(other),
                };
            }
        };
        let expires = clock::parse_rfc3339(&hold.expires_at).unwrap_or(now);
        let offered = WaitlistOffered {
            org_id: t.org(),
            event_id: event,
            entry_id: head.id,
            ticket_type_id: tt,
            hold_id: hold.id,
            quantity: head.quantity,
            email: head.email.clone(),
            name: head.name.clone(),
            expires_at: hold.expires_at.clone(),
        };
        let mut tx = app.db().begin().await?;
        let updated = Stmt::new(
            "UPDATE waiting_list SET status = 'offered', hold_id = $1, offer_expires_at = $2
             WHERE org_id = $3 AND id = $4 AND status = 'offering'",
        )
        .bind(hold.id)
        .bind(expires)
        .bind(t.org())
        .bind(head.id)
        .execute_in(&mut tx)
        .await?;
        if updated == 1 {
            emit(&offered, now)?.execute_in(&mut tx).await?;
            tx.commit().await?;
            metrics::counter!("voelgoed_waitlist_offers_total").increment(1);
            made += 1;
        } else {
            // Put back in line meanwhile (a minute passed): the hold lapses
            // on its own and its tickets come back.
            drop(tx);
        }
    }
    Ok(made)
}
