//! Vouchers: codes that take a percentage or an amount off each ticket they
//! discount, for some or all of an event's ticket types, until a time, at
//! most `max_uses` tickets ever. The events slice keeps what a voucher *is*;
//! how many uses are left is counted by the sales slice's inventory, like
//! a quota (a use is taken with the hold, given back when it lapses).

use std::{collections::BTreeSet, sync::Arc};

use kernel::{
    Permission, clock,
    error::Checks,
    events::emit,
    ids::{EventId, OrgId, TicketTypeId, VoucherId},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    Hot,
    domain::{MAX_PRICE_CENTS, parse_time},
    error::{Error, Result},
    store,
};
use crate::{
    App,
    identity::{Actor, Tenant},
};

/// A voucher as organizers and the sales slice see it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct VoucherView {
    pub id: VoucherId,
    pub event_id: EventId,
    /// Upper case; buyers may type it in any case.
    pub code: String,
    /// Percent off each ticket it discounts (1–100), or
    pub percent_off: Option<i64>,
    /// an amount off each ticket (minor units, at most the ticket's price).
    pub amount_off_cents: Option<i64>,
    /// Tickets it may discount, ever.
    pub max_uses: i64,
    pub valid_until: Option<String>,
    /// The ticket types it discounts; empty: all of the event's.
    pub ticket_type_ids: Vec<TicketTypeId>,
    pub created_at: String,
    /// Its uses are reserved now: its ticket type's availability counts
    /// all of `max_uses` as taken until `valid_until` (or for good), so
    /// its holders always find their tickets.
    pub reserved: bool,
    #[serde(skip)]
    pub valid_until_micros: Option<i64>,
    #[serde(skip)]
    pub reserved_for: Option<TicketTypeId>,
}

impl VoucherView {
    /// Whether it discounts tickets of `tt` (a series' voucher: of the
    /// dates' copies of the types it names too).
    pub fn applies_to(&self, tt: &super::TicketTypeView) -> bool {
        self.ticket_type_ids.is_empty() || self.names(tt)
    }

    /// Whether it unlocks a hidden ticket type: only one it names (a
    /// voucher for every type unlocks none).
    pub fn unlocks(&self, tt: &super::TicketTypeView) -> bool {
        self.names(tt)
    }

    fn names(&self, tt: &super::TicketTypeView) -> bool {
        self.ticket_type_ids.contains(&tt.id)
            || tt
                .template_id
                .is_some_and(|t| self.ticket_type_ids.contains(&t))
    }

    pub fn valid_at(&self, now: i64) -> bool {
        self.valid_until_micros.is_none_or(|u| now < u)
    }

    /// What it takes off a line of `quantity` tickets at `unit_price_cents`
    /// (never more than the line; a percentage rounds half up).
    pub fn discount(&self, unit_price_cents: i64, quantity: i64) -> i64 {
        let gross = unit_price_cents.saturating_mul(quantity).max(0);
        let off = match (self.percent_off, self.amount_off_cents) {
            (Some(p), _) => ((gross as i128 * p as i128 + 50) / 100) as i64,
            (None, Some(a)) => a.saturating_mul(quantity),
            (None, None) => 0,
        };
        off.clamp(0, gross)
    }
}

/// A voucher was made.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct VoucherCreated {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub voucher_id: VoucherId,
    pub code: String,
    pub max_uses: i64,
}

impl kernel::DomainEvent for VoucherCreated {
    const NAME: &'static str = "voucher.created";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

/// What a voucher (or each of a bulk of them) is made with.
pub struct NewVoucher {
    pub percent_off: Option<i64>,
    pub amount_off_cents: Option<i64>,
    pub max_uses: i64,
    pub valid_until: Option<String>,
    pub ticket_type_ids: Vec<TicketTypeId>,
    /// Reserve its uses of its one ticket type (taken from the type's
    /// availability now, given back unused when `valid_until` passes).
    pub reserve: bool,
}

pub const MAX_USES: i64 = 1_000_000;
pub const MAX_BULK: i64 = 1000;

/// A code as stored: 1–64 letters, digits, `-` or `_`, upper-cased.
pub fn parse_code(s: &str) -> std::result::Result<String, String> {
    let s = s.trim();
    if !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(s.to_ascii_uppercase())
    } else {
        Err("must be 1 to 64 letters, digits, '-' or '_'".into())
    }
}

/// Checks the terms shared by one voucher and a bulk; the fields named as
/// the request names them.
fn check_terms(
    c: &mut Checks,
    catalog: &super::Catalog,
    v: &NewVoucher,
) -> (Option<i64>, Vec<TicketTypeId>) {
    match (v.percent_off, v.amount_off_cents) {
        // 0 % off: a voucher that only unlocks hidden ticket types.
        (Some(p), None) if !(0..=100).contains(&p) => {
            c.fail("percent_off", "must be between 0 and 100")
        }
        (None, Some(a)) if !(1..=MAX_PRICE_CENTS).contains(&a) => {
            c.fail("amount_off_cents", "must be between 1 and 100000000000")
        }
        (Some(_), None) | (None, Some(_)) => {}
        _ => c.fail("percent_off", "give either percent_off or amount_off_cents"),
    }
    if !(1..=MAX_USES).contains(&v.max_uses) {
        c.fail("max_uses", "must be between 1 and 1000000");
    }
    let until = match &v.valid_until {
        Some(s) => c.take("valid_until", parse_time(s)),
        None => None,
    };
    if v.ticket_type_ids.len() > 100 {
        c.fail("ticket_type_ids", "must name at most 100 ticket types");
    }
    let mut seen = BTreeSet::new();
    for (i, tt) in v.ticket_type_ids.iter().enumerate() {
        if catalog.ticket_type(*tt).is_none() {
            c.fail(
                &format!("ticket_type_ids[{i}]"),
                "is not a ticket type of this event",
            );
        } else if !seen.insert(*tt) {
            c.fail(&format!("ticket_type_ids[{i}]"), "appears twice");
        }
    }
    (until, seen.into_iter().collect())
}

/// Unambiguous characters for generated codes (no 0/O, 1/I/L).
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

fn random_suffix() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..10]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Makes one voucher with `code`.
pub async fn create_voucher(
    app: &App,
    actor: &Actor,
    event: EventId,
    code: &str,
    terms: NewVoucher,
) -> Result<VoucherView> {
    let mut c = Checks::default();
    let code = c.take("code", parse_code(code));
    let mut made = create(app, actor, event, c, &terms, code.into_iter().collect()).await?;
    made.pop().ok_or(Error::Invalid(Vec::new()))
}

/// Makes `count` vouchers with the same terms, each code `prefix` and ten
/// random characters.
pub async fn create_vouchers(
    app: &App,
    actor: &Actor,
    event: EventId,
    count: i64,
    prefix: &str,
    terms: NewVoucher,
) -> Result<Vec<VoucherView>> {
    let mut c = Checks::default();
    if !(1..=MAX_BULK).contains(&count) {
        c.fail("count", "must be between 1 and 1000");
    }
    let prefix = prefix.trim();
    if prefix.len() > 32
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        c.fail("prefix", "must be at most 32 letters, digits, '-' or '_'");
    }
    let codes: Vec<String> = (0..count.clamp(0, MAX_BULK))
        .map(|_| format!("{}{}", prefix.to_ascii_uppercase(), random_suffix()))
        .collect();
    create(app, actor, event, c, &terms, codes).await
}

async fn create(
    app: &App,
    actor: &Actor,
    event: EventId,
    mut c: Checks,
    terms: &NewVoucher,
    codes: Vec<String>,
) -> Result<Vec<VoucherView>> {
    let t = actor.require(Permission::EventsWrite)?;
    let Some(catalog) = store::load_catalog(app.db(), t, event).await? else {
        return Err(Error::NotFound);
    };
    let (until, types) = check_terms(&mut c, &catalog, terms);
    // A reservation is of one ticket type (its tickets are taken from that
    // type's availability), of one date (a series' voucher counts across
    // its dates).
    let reserved_for = match types.as_slice() {
        _ if !terms.reserve => None,
        _ if catalog.event.series => {
            c.fail("reserve", "a series' vouchers cannot reserve tickets");
            None
        }
        [_] if until.is_some_and(|u| u <= app.kernel.now()) => {
            c.fail("valid_until", "must be in the future to reserve tickets");
            None
        }
        [tt] => Some(*tt),
        _ => {
            c.fail(
                "ticket_type_ids",
                "a reserving voucher names exactly one ticket type",
            );
            None
        }
    };
    if let [code] = codes.as_slice()
        && store::voucher_by_code(app.db(), t, event, code)
            .await?
            .is_some()
    {
        c.fail("code", "is already a voucher of this event");
    }
    c.finish()?;
    let now = app.kernel.now();
    let mut writes = Vec::new();
    let mut made = Vec::with_capacity(codes.len());
    for code in codes {
        let v = VoucherView {
            id: VoucherId::new(),
            event_id: event,
            code,
            percent_off: terms.percent_off,
            amount_off_cents: terms.amount_off_cents,
            max_uses: terms.max_uses,
            valid_until: until.map(clock::rfc3339),
            ticket_type_ids: types.clone(),
            created_at: clock::rfc3339(now),
            reserved: reserved_for.is_some(),
            valid_until_micros: until,
            reserved_for,
        };
        let created = VoucherCreated {
            org_id: t.org(),
            event_id: event,
            voucher_id: v.id,
            code: v.code.clone(),
            max_uses: v.max_uses,
        };
        writes.extend(store::insert_voucher(t, &v, now));
        writes.push(emit(&created, now)?);
        writes.push(
            actor
                .audit("voucher.create", "voucher")
                .object(v.id)
                .after(&created)
                .stmt(now),
        );
        made.push(v);
    }
    let written = match reserved_for {
        // Every voucher's uses taken from the type (and its quotas) with
        // the vouchers' write, or nothing.
        Some(tt) => {
            let n = terms.max_uses.saturating_mul(made.len() as i64);
            crate::sales::reserve_for_vouchers(app, t, event, tt, n, writes).await?;
            Ok(())
        }
        None => app.db().write_grouped(writes).await,
    };
    match written {
        Ok(()) => {}
        // The same code made at the same moment by another request.
        Err(e) if kernel::db::is_unique_violation(&e) => {
            return Err(Error::field("code", "is already a voucher of this event"));
        }
        Err(e) => return Err(e.into()),
    }
    if reserved_for.is_some() {
        // The catalog lists the reservations standing.
        super::invalidate(app, t, event).await;
    }
    let hot = app.state::<Hot>();
    for v in &made {
        hot.vouchers
            .invalidate(&(t.org(), event, v.code.clone()))
            .await;
    }
    Ok(made)
}

pub async fn list_vouchers(
    app: &App,
    actor: &Actor,
    event: EventId,
    limit: i64,
    after: Option<VoucherId>,
) -> Result<(Vec<VoucherView>, Option<VoucherId>)> {
    let t = actor.require(Permission::EventsRead)?;
    if store::event(app.db(), t, event).await?.is_none() {
        return Err(Error::NotFound);
    }
    let mut rows = store::list_vouchers(app.db(), t, event, limit + 1, after).await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|v| v.id)
    } else {
        None
    };
    Ok((rows, next))
}

/// The event's voucher with this code (any case), as the storefront asks;
/// `None` when there is none. A date of a series takes the series'
/// vouchers too (one count of uses across all dates). Served from the hot
/// tier.
pub async fn voucher_by_code(
    app: &App,
    t: &Tenant,
    event: EventId,
    code: &str,
) -> kernel::ApiResult<Option<Arc<VoucherView>>> {
    if let Some(v) = own_voucher(app, t, event, code).await? {
        return Ok(Some(v));
    }
    match super::catalog(app, t, event)
        .await?
        .and_then(|c| c.event.series_id)
    {
        Some(series) => own_voucher(app, t, series, code).await,
        None => Ok(None),
    }
}

async fn own_voucher(
    app: &App,
    t: &Tenant,
    event: EventId,
    code: &str,
) -> kernel::ApiResult<Option<Arc<VoucherView>>> {
    let Ok(code) = parse_code(code) else {
        return Ok(None);
    };
    let db = app.db().clone();
    let t2 = t.clone();
    let key = (t.org(), event, code.clone());
    app.state::<Hot>()
        .vouchers
        .try_get_with(key, async move {
            store::voucher_by_code(&db, &t2, event, &code)
                .await
                .map(|v| v.map(Arc::new))
        })
        .await
        .map_err(|e| kernel::ApiError::from_db(&e))
}

/// A voucher by id (a hold's), cached like the codes.
pub async fn voucher(
    app: &App,
    t: &Tenant,
    id: VoucherId,
) -> kernel::ApiResult<Option<Arc<VoucherView>>> {
    let db = app.db().clone();
    let t2 = t.clone();
    app.state::<Hot>()
        .vouchers_by_id
        .try_get_with((t.org(), id), async move {
            store::voucher(&db, &t2, id).await.map(|v| v.map(Arc::new))
        })
        .await
        .map_err(|e| kernel::ApiError::from_db(&e))
}
