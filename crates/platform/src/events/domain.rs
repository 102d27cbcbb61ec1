//! Rules for events and ticket types.

use std::sync::Arc;

use kernel::{
    Permission, Stmt, clock,
    error::Checks,
    events::emit,
    ids::{EventId, QuotaId, TicketTypeId, VoucherId},
    parse,
};
use serde::Serialize;
use utoipa::ToSchema;

pub use super::questions::Question;
pub use super::vouchers::VoucherView;
use super::{
    EventCancelled, EventCreated, EventPublished, QuotaCreated, QuotaDeleted, TicketTypeCreated,
    error::{Error, Result},
    store,
};
use crate::{
    App,
    identity::{Actor, Tenant},
};

/// Where an event stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Draft,
    Published,
    /// Called off: off the storefront; its orders are cancelled and refunded.
    Cancelled,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Draft => "draft",
            EventStatus::Published => "published",
            EventStatus::Cancelled => "cancelled",
        }
    }
}

impl TryFrom<String> for EventStatus {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match s.as_str() {
            "draft" => Ok(EventStatus::Draft),
            "published" => Ok(EventStatus::Published),
            "cancelled" => Ok(EventStatus::Cancelled),
            other => Err(format!("unknown event status {other:?}")),
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TicketTypeView {
    pub id: TicketTypeId,
    pub event_id: EventId,
    pub name: String,
    pub price_cents: i64,
    /// ISO 4217 code.
    pub currency: String,
    pub capacity: i64,
    pub sale_starts_at: Option<String>,
    pub sale_ends_at: Option<String>,
    pub max_per_order: Option<i64>,
    /// The least one order may hold (1 when unset).
    pub min_per_order: Option<i64>,
    /// Off the storefront: sold only with a voucher that names the type.
    pub hidden: bool,
    /// Lower first on the storefront and in lists (then oldest first).
    pub sort_order: i64,
    /// When it was retired: off sale for good; its tickets stay valid.
    pub retired_at: Option<String>,
    /// Asked of each ticket's attendee at checkout, printed on the ticket.
    pub questions: Vec<Question>,
    /// The series' ticket type this date's type follows (its terms change
    /// with it); `null` unless the event is a date of a series.
    pub template_id: Option<TicketTypeId>,
    #[serde(skip)]
    pub sale_window: (Option<i64>, Option<i64>),
    /// Before this, its tickets answer `not_valid_now` at the gate.
    pub valid_from: Option<String>,
    /// After this, its tickets answer `not_valid_now` at the gate (the
    /// event's end bounds it anyway).
    pub valid_until: Option<String>,
    #[serde(skip)]
    pub valid_window: (Option<i64>, Option<i64>),
}

impl TicketTypeView {
    /// Whether the type is on sale at `now` (microseconds).
    pub fn on_sale_at(&self, now: i64) -> bool {
        self.retired_at.is_none()
            && self.sale_window.0.is_none_or(|s| now >= s)
            && self.sale_window.1.is_none_or(|e| now < e)
    }

    /// Whether buyers may see it: not retired, and not hidden unless the
    /// voucher they bring names it.
    pub fn shown_with(&self, voucher: Option<&VoucherView>) -> bool {
        self.retired_at.is_none() && (!self.hidden || voucher.is_some_and(|v| v.unlocks(self)))
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: EventId,
    pub name: String,
    pub starts_at: String,
    pub ends_at: String,
    /// IANA time zone of the venue.
    pub timezone: String,
    pub status: EventStatus,
    pub created_at: String,
    pub ticket_types: Vec<TicketTypeView>,
    /// Whether buyers may hand their tickets on, and until when.
    pub transfers: TransferPolicy,
    /// A series: sold through its dates (`…/dates`), never itself.
    pub series: bool,
    /// The series this event is a date of.
    pub series_id: Option<EventId>,
    #[serde(skip)]
    pub starts_at_micros: i64,
    #[serde(skip)]
    pub ends_at_micros: i64,
    #[serde(skip)]
    pub transfer_deadline_micros: Option<i64>,
}

impl EventView {
    /// The series' ticket type that this date's type `tt` follows.
    pub fn follows(&self, tt: TicketTypeId) -> Option<TicketTypeId> {
        self.ticket_types
            .iter()
            .find(|x| x.id == tt)
            .and_then(|x| x.template_id)
    }

    /// Whether a ticket may be handed on at `now`: allowed, before the
    /// deadline (or the start), the event not called off.
    pub fn transfers_open_at(&self, now: i64) -> bool {
        self.transfers.allowed
            && self.status != EventStatus::Cancelled
            && now
                < self
                    .transfer_deadline_micros
                    .unwrap_or(self.starts_at_micros)
    }
}

/// Whether an event's tickets may be handed on to someone else.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct TransferPolicy {
    pub allowed: bool,
    /// Transfers close then (RFC 3339); `null`: when the event starts.
    pub deadline: Option<String>,
}

/// A capacity shared by several ticket types of one event: none of them
/// sells once it is used up, whatever each has left of its own.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct QuotaView {
    pub id: QuotaId,
    pub event_id: EventId,
    pub name: String,
    pub capacity: i64,
    /// The ticket types that draw on it (at least one).
    pub ticket_type_ids: Vec<TicketTypeId>,
    pub created_at: String,
}

/// An event as the other slices see it.
#[derive(Clone, Debug)]
pub struct Catalog {
    pub tenant: Tenant,
    pub event: EventView,
    /// Its quotas, oldest first.
    pub quotas: Vec<QuotaView>,
    /// Its vouchers whose uses are reserved now, with the ticket type each
    /// reserves: a hold using one takes that type's tickets from the
    /// reservation, not from the type's or its quotas' counters.
    pub reserved: Vec<(VoucherId, TicketTypeId)>,
}

impl Catalog {
    pub fn ticket_type(&self, id: TicketTypeId) -> Option<&TicketTypeView> {
        self.event.ticket_types.iter().find(|t| t.id == id)
    }
    pub fn quota(&self, id: QuotaId) -> Option<&QuotaView> {
        self.quotas.iter().find(|q| q.id == id)
    }
    /// The quotas a ticket type draws on.
    pub fn quotas_of(&self, tt: TicketTypeId) -> impl Iterator<Item = &QuotaView> {
        self.quotas
            .iter()
            .filter(move |q| q.ticket_type_ids.contains(&tt))
    }
    /// The ticket type `voucher` reserves now, if it reserves one.
    pub fn reserved_by(&self, voucher: VoucherId) -> Option<TicketTypeId> {
        self.reserved
            .iter()
            .find(|(v, _)| *v == voucher)
            .map(|(_, tt)| *tt)
    }
    pub fn is_published(&self) -> bool {
        self.event.status == EventStatus::Published
    }
}

pub struct NewEvent {
    pub name: String,
    pub starts_at: String,
    pub ends_at: String,
    pub timezone: String,
    /// Sold through dates added to it (`add_date`).
    pub series: bool,
}

pub(super) fn parse_time(s: &str) -> std::result::Result<i64, String> {
    clock::parse_rfc3339(s)
        .ok_or_else(|| "must be an RFC 3339 time, e.g. 2026-12-31T20:00:00Z".into())
}

/// A time zone the IANA database knows, by its name.
pub fn parse_timezone(s: &str) -> std::result::Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b))
        && !s.starts_with('/')
        && jiff::tz::TimeZone::get(s).is_ok();
    if ok {
        Ok(s.to_string())
    } else {
        Err("must be an IANA time zone name, e.g. Africa/Johannesburg".into())
    }
}

/// A wall-clock time typed in the event's time zone (`2026-12-31T20:00`,
/// as a `datetime-local` field sends it) as RFC 3339 in UTC. A time the
/// zone skips (a spring-forward gap) or repeats is refused, not guessed.
pub fn local_to_rfc3339(local: &str, timezone: &str) -> std::result::Result<String, String> {
    let tz = jiff::tz::TimeZone::get(timezone)
        .map_err(|_| "the time zone is not an IANA time zone name".to_string())?;
    let civil: jiff::civil::DateTime = local
        .trim()
        .parse()
        .map_err(|_| "must be a date and time, e.g. 2026-12-31T20:00".to_string())?;
    let ts = tz
        .to_ambiguous_timestamp(civil)
        .unambiguous()
        .map_err(|_| format!("does not exist or happens twice in {timezone} (a clock change)"))?;
    Ok(ts.to_string())
}

/// An instant (microseconds) as people at the venue read it:
/// `Sat 31 Dec 2026, 20:00 SAST`.
pub fn shown_in(micros: i64, timezone: &str) -> String {
    let tz = jiff::tz::TimeZone::get(timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    match jiff::Timestamp::from_microsecond(micros) {
        Ok(ts) => ts
            .to_zoned_datetime(tz)
            .strftime("%a %-d %b %Y, %H:%M %Z")
            .to_string(),
        Err(_) => String::new(),
    }
}

/// An instant (microseconds) as a `datetime-local` field shows it in the
/// zone: `2026-12-31T20:00`.
pub fn local_input(micros: i64, timezone: &str) -> String {
    let tz = jiff::tz::TimeZone::get(timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    match jiff::Timestamp::from_microsecond(micros) {
        Ok(ts) => ts
            .to_zoned_datetime(tz)
            .strftime("%Y-%m-%dT%H:%M")
            .to_string(),
        Err(_) => String::new(),
    }
}

pub async fn create_event(app: &App, actor: &Actor, input: NewEvent) -> Result<EventView> {
    let t = actor.require(Permission::EventsWrite)?;
    let mut c = Checks::default();
    let name = c.take("name", parse::name(&input.name, 200));
    let starts = c.take("starts_at", parse_time(&input.starts_at));
    let ends = c.take("ends_at", parse_time(&input.ends_at));
    let tz = c.take("timezone", parse_timezone(&input.timezone));
    if let (Some(s), Some(e)) = (starts, ends)
        && e <= s
    {
        c.fail("ends_at", "must be after starts_at");
    }
    c.finish()?;
    let (Some(name), Some(starts), Some(ends), Some(tz)) = (name, starts, ends, tz) else {
        return Err(Error::Invalid(Vec::new()));
    };
    let now = app.kernel.now();
    let row = store::EventRow {
        id: EventId::new(),
        name,
        starts_at: starts,
        ends_at: ends,
        timezone: tz,
        status: EventStatus::Draft,
        created_at: now,
        transfers_allowed: 1,
        transfer_deadline: None,
        series: input.series.into(),
        series_id: None,
    };
    let created = EventCreated {
        org_id: t.org(),
        event_id: row.id,
        name: row.name.clone(),
        starts_at: clock::rfc3339(starts),
        ends_at: clock::rfc3339(ends),
        series_id: None,
    };
    let audit = actor
        .audit("event.create", "event")
        .object(row.id)
        .after(&created)
        .stmt(now);
    app.db()
        .write_grouped(vec![
            store::insert_event(t, &row),
            emit(&created, now)?,
            audit,
        ])
        .await?;
    Ok(row.into_view(Vec::new()))
}

#[derive(Default)]
pub struct NewTicketType {
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub capacity: i64,
    pub sale_starts_at: Option<String>,
    pub sale_ends_at: Option<String>,
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
    pub max_per_order: Option<i64>,
    pub min_per_order: Option<i64>,
    pub hidden: bool,
    pub sort_order: i64,
    /// `None`: the default (the attendee's name, optionally).
    pub questions: Option<Vec<super::questions::QuestionInput>>,
}

/// The rules a ticket type's terms keep, whether it is made or changed
/// (the text fields are checked as they are read).
pub(super) fn check_terms(c: &mut Checks, row: &store::TicketTypeRow) {
    if !(0..=MAX_PRICE_CENTS).contains(&row.price_cents) {
        c.fail("price_cents", "must be between 0 and 100000000000");
    }
    if !(1..=MAX_CAPACITY).contains(&row.capacity) {
        c.fail("capacity", "must be at least 1 and at most 10000000");
    }
    if let (Some(s), Some(e)) = (row.sale_starts_at, row.sale_ends_at)
        && e <= s
    {
        c.fail("sale_ends_at", "must be after sale_starts_at");
    }
    if let (Some(s), Some(e)) = (row.valid_from, row.valid_until)
        && e <= s
    {
        c.fail("valid_until", "must be after valid_from");
    }
    check_per_order(c, row.min_per_order, row.max_per_order);
    if !(-MAX_SORT_ORDER..=MAX_SORT_ORDER).contains(&row.sort_order) {
        c.fail("sort_order", "must be between -1000000 and 1000000");
    }
}

/// Checks the limits per order (either may be unset).
fn check_per_order(c: &mut Checks, min: Option<i64>, max: Option<i64>) {
    if let Some(m) = max
        && !(1..=MAX_PER_ORDER_LIMIT).contains(&m)
    {
        c.fail("max_per_order", "must be between 1 and 1000");
    }
    if let Some(m) = min
        && !(1..=MAX_PER_ORDER_LIMIT).contains(&m)
    {
        c.fail("min_per_order", "must be between 1 and 1000");
    }
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        c.fail("min_per_order", "must not be more than max_per_order");
    }
}

pub const MAX_SORT_ORDER: i64 = 1_000_000;

pub fn parse_currency(s: &str) -> std::result::Result<String, String> {
    if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(s.to_string())
    } else {
        Err("must be an ISO 4217 code, e.g. ZAR".into())
    }
}

pub const MAX_CAPACITY: i64 = 10_000_000;
pub const MAX_PRICE_CENTS: i64 = 100_000_000_000;
pub const MAX_PER_ORDER_LIMIT: i64 = 1000;

pub async fn add_ticket_type(
    app: &App,
    actor: &Actor,
    event: EventId,
    input: NewTicketType,
) -> Result<TicketTypeView> {
    let t = actor.require(Permission::EventsWrite)?;
    let Some(ev) = store::event(app.db(), t, event).await? else {
        return Err(Error::NotFound);
    };
    let mut c = Checks::default();
    let name = c.take("name", parse::name(&input.name, 200));
    let currency = c.take("currency", parse_currency(&input.currency));
    let sale_starts = match &input.sale_starts_at {
        Some(s) => c.take("sale_starts_at", parse_time(s)),
        None => None,
    };
    let sale_ends = match &input.sale_ends_at {
        Some(s) => c.take("sale_ends_at", parse_time(s)),
        None => None,
    };
    let valid_from = match &input.valid_from {
        Some(s) => c.take("valid_from", parse_time(s)),
        None => None,
    };
    let valid_until = match &input.valid_until {
        Some(s) => c.take("valid_until", parse_time(s)),
        None => None,
    };
    let questions = input
        .questions
        .as_ref()
        .map(|q| super::questions::check(&mut c, q));
    let row = store::TicketTypeRow {
        id: TicketTypeId::new(),
        event_id: event,
        name: name.unwrap_or_default(),
        price_cents: input.price_cents,
        currency: currency.unwrap_or_default(),
        capacity: input.capacity,
        sale_starts_at: sale_starts,
        sale_ends_at: sale_ends,
        max_per_order: input.max_per_order,
        min_per_order: input.min_per_order,
        hidden: input.hidden.into(),
        sort_order: input.sort_order,
        retired_at: None,
        questions: questions.as_deref().and_then(super::questions::to_stored),
        template_id: None,
        valid_from,
        valid_until,
    };
    check_terms(&mut c, &row);
    c.finish()?;
    let now = app.kernel.now();
    let created = TicketTypeCreated {
        org_id: t.org(),
        event_id: event,
        ticket_type_id: row.id,
        capacity: row.capacity,
        price_cents: row.price_cents,
        currency: row.currency.clone(),
    };
    let audit = actor
        .audit("ticket_type.create", "ticket_type")
        .object(row.id)
        .after(&created)
        .stmt(now);
    let mut writes = vec![
        store::insert_ticket_type(t, &row, now),
        emit(&created, now)?,
        audit,
    ];
    // A series' new type is every date's too, in the same write.
    let dates = if ev.series != 0 {
        store::dates(app.db(), t, event).await?
    } else {
        Vec::new()
    };
    for date in &dates {
        let copy = super::series::follower(&row, date.id);
        writes.push(store::insert_ticket_type(t, &copy, now));
        writes.push(emit(&super::series::created(t, &copy), now)?);
    }
    app.db().write_grouped(writes).await?;
    super::invalidate(app, t, event).await;
    for date in &dates {
        super::invalidate(app, t, date.id).await;
    }
    Ok(row.into_view())
}

pub async fn publish(app: &App, actor: &Actor, event: EventId) -> Result<EventView> {
    let t = actor.require(Permission::EventsWrite)?;
    let Some(catalog) = store::load_catalog(app.db(), t, event).await? else {
        return Err(Error::NotFound);
    };
    if catalog.event.ticket_types.is_empty() {
        return Err(Error::field(
            "ticket_types",
            "add a ticket type before publishing",
        ));
    }
    if catalog.event.status == EventStatus::Draft {
        let now = app.kernel.now();
        let publish: Stmt = store::set_status(t, event, EventStatus::Draft, EventStatus::Published);
        let announce = Arc::new(emit(
            &EventPublished {
                org_id: t.org(),
                event_id: event,
            },
            now,
        )?);
        let audit = Arc::new(
            actor
                .audit("event.publish", "event")
                .object(event)
                .before(serde_json::json!({"status": "draft"}))
                .after(serde_json::json!({"status": "published"}))
                .stmt(now),
        );
        // Announced (and audited) once, by whichever request moved it from draft.
        app.db()
            .transact_grouped(Box::new(move |tx| {
                let (publish, announce, audit) = (publish.clone(), announce.clone(), audit.clone());
                Box::pin(async move {
                    if publish.execute_in(tx).await? == 0 {
                        return Ok(false);
                    }
                    announce.execute_in(tx).await?;
                    audit.execute_in(tx).await?;
                    Ok(true)
                })
            }))
            .await?;
        super::invalidate(app, t, event).await;
    }
    // A series publishes its dates still in draft.
    if catalog.event.series {
        for date in store::dates(app.db(), t, event).await? {
            if date.status == EventStatus::Draft {
                Box::pin(publish(app, actor, date.id)).await?;
            }
        }
    }
    let mut view = catalog.event.clone();
    view.status = EventStatus::Published;
    Ok(view)
}

/// Calls the event off: it leaves the storefront at once, and every order
/// of it is cancelled and refunded by a job (`event.cancelled`), each buyer
/// told. Cancelling again changes nothing.
pub async fn cancel(app: &App, actor: &Actor, event: EventId) -> Result<EventView> {
    let t = actor.require(Permission::EventsWrite)?;
    let Some(catalog) = store::load_catalog(app.db(), t, event).await? else {
        return Err(Error::NotFound);
    };
    let from = catalog.event.status;
    if from != EventStatus::Cancelled {
        let now = app.kernel.now();
        let mut tx = app.db().begin().await?;
        if store::set_status(t, event, from, EventStatus::Cancelled)
            .execute_in(&mut tx)
            .await?
            == 1
        {
            emit(
                &EventCancelled {
                    org_id: t.org(),
                    event_id: event,
                },
                now,
            )?
            .execute_in(&mut tx)
            .await?;
            actor
                .audit("event.cancel", "event")
                .object(event)
                .before(serde_json::json!({"status": from}))
                .after(serde_json::json!({"status": "cancelled"}))
                .stmt(now)
                .execute_in(&mut tx)
                .await?;
            tx.commit().await?;
        }
        super::invalidate(app, t, event).await;
    }
    // A series calls off every date (each one's orders refunded).
    if catalog.event.series {
        for date in store::dates(app.db(), t, event).await? {
            if date.status != EventStatus::Cancelled {
                Box::pin(cancel(app, actor, date.id)).await?;
            }
        }
    }
    let mut view = catalog.event.clone();
    view.status = EventStatus::Cancelled;
    Ok(view)
}

pub async fn get_event(app: &App, actor: &Actor, event: EventId) -> Result<EventView> {
    let t = actor.require(Permission::EventsRead)?;
    match store::load_catalog(app.db(), t, event).await? {
        Some(c) => Ok(c.event),
        None => Err(Error::NotFound),
    }
}

pub async fn list_events(
    app: &App,
    actor: &Actor,
    limit: i64,
    after: Option<EventId>,
) -> Result<(Vec<EventView>, Option<EventId>)> {
    let t = actor.require(Permission::EventsRead)?;
    let rows = store::list_events(app.db(), t, limit + 1, after).await?;
    let more = rows.len() as i64 > limit;
    let mut views: Vec<EventView> = rows
        .into_iter()
        .take(limit as usize)
        .map(|r| r.into_view(Vec::new()))
        .collect();
    let next = if more {
        views.last().map(|v| v.id)
    } else {
        None
    };
    for v in &mut views {
        if let Some(c) = super::catalog(app, t, v.id).await? {
            v.ticket_types = c.event.ticket_types.clone();
        }
    }
    Ok((views, next))
}

pub struct NewQuota {
    pub name: String,
    pub capacity: i64,
    pub ticket_type_ids: Vec<TicketTypeId>,
}

/// At most this many quotas per event, and ticket types per quota: every
/// hold checks each quota of each of its ticket types in one atomic step.
pub const MAX_QUOTAS: usize = 100;
pub const MAX_QUOTA_TYPES: usize = 100;

/// Adds a quota shared by ticket types of the event. From the moment it is
/// written every hold of its types draws on it; what holds took of its
/// types before counts against it (it is loaded from the ledger).
pub async fn create_quota(
    app: &App,
    actor: &Actor,
    event: EventId,
    input: NewQuota,
) -> Result<QuotaView> {
    let t = actor.require(Permission::EventsWrite)?;
    let Some(catalog) = store::load_catalog(app.db(), t, event).await? else {
        return Err(Error::NotFound);
    };
    let mut c = Checks::default();
    let name = c.take("name", parse::name(&input.name, 200));
    if !(0..=MAX_CAPACITY).contains(&input.capacity) {
        c.fail("capacity", "must be between 0 and 10000000");
    }
    if input.ticket_type_ids.is_empty() {
        c.fail("ticket_type_ids", "must name at least one ticket type");
    }
    if input.ticket_type_ids.len() > MAX_QUOTA_TYPES {
        c.fail("ticket_type_ids", "must name at most 100 ticket types");
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, tt) in input.ticket_type_ids.iter().enumerate() {
        if catalog.ticket_type(*tt).is_none() {
            c.fail(
                &format!("ticket_type_ids[{i}]"),
                "is not a ticket type of this event",
            );
        } else if !seen.insert(*tt) {
            c.fail(&format!("ticket_type_ids[{i}]"), "appears twice");
        }
    }
    if catalog.quotas.len() >= MAX_QUOTAS {
        c.fail("quotas", "an event has at most 100 quotas");
    }
    c.finish()?;
    let Some(name) = name else {
        return Err(Error::Invalid(Vec::new()));
    };
    let now = app.kernel.now();
    let view = QuotaView {
        id: QuotaId::new(),
        event_id: event,
        name,
        capacity: input.capacity,
        ticket_type_ids: seen.into_iter().collect(),
        created_at: clock::rfc3339(now),
    };
    let created = QuotaCreated {
        org_id: t.org(),
        event_id: event,
        quota_id: view.id,
        capacity: view.capacity,
        ticket_type_ids: view.ticket_type_ids.clone(),
    };
    let mut writes = store::insert_quota(t, &view, now);
    writes.push(emit(&created, now)?);
    writes.push(
        actor
            .audit("quota.create", "quota")
            .object(view.id)
            .after(&created)
            .stmt(now),
    );
    app.db().write_grouped(writes).await?;
    super::invalidate(app, t, event).await;
    Ok(view)
}

pub async fn list_quotas(app: &App, actor: &Actor, event: EventId) -> Result<Vec<QuotaView>> {
    let t = actor.require(Permission::EventsRead)?;
    match store::load_catalog(app.db(), t, event).await? {
        Some(c) => Ok(c.quotas),
        None => Err(Error::NotFound),
    }
}

/// Removes a quota: its ticket types sell up to their own capacity (and
/// their other quotas) again.
pub async fn delete_quota(app: &App, actor: &Actor, event: EventId, quota: QuotaId) -> Result<()> {
    let t = actor.require(Permission::EventsWrite)?;
    let Some(catalog) = store::load_catalog(app.db(), t, event).await? else {
        return Err(Error::NotFound);
    };
    let Some(q) = catalog.quota(quota) else {
        return Err(Error::NotFound);
    };
    if let Some(map) = super::seating(app, t, event).await?
        && let Some(area) = map.areas.iter().find(|a| a.quota_id == quota)
    {
        return Err(Error::Api(kernel::ApiError::Conflict(format!(
            "this quota keeps the capacity of the seat map's area {}: change or remove the area in the map",
            area.name
        ))));
    }
    let now = app.kernel.now();
    let deleted = QuotaDeleted {
        org_id: t.org(),
        event_id: event,
        quota_id: quota,
    };
    let mut writes = store::delete_quota(t, quota);
    writes.push(emit(&deleted, now)?);
    writes.push(
        actor
            .audit("quota.delete", "quota")
            .object(quota)
            .before(q)
            .stmt(now),
    );
    app.db().write_grouped(writes).await?;
    super::invalidate(app, t, event).await;
    Ok(())
}

/// Sets whether the event's tickets may be handed on, and until when.
pub async fn put_transfer_policy(
    app: &App,
    actor: &Actor,
    event: EventId,
    policy: TransferPolicy,
) -> Result<TransferPolicy> {
    let t = actor.require(Permission::EventsWrite)?;
    let Some(catalog) = store::load_catalog(app.db(), t, event).await? else {
        return Err(Error::NotFound);
    };
    let deadline = match &policy.deadline {
        Some(d) => Some(parse_time(d).map_err(|m| Error::field("deadline", &m))?),
        None => None,
    };
    let now = app.kernel.now();
    let after = TransferPolicy {
        allowed: policy.allowed,
        deadline: deadline.map(clock::rfc3339),
    };
    app.db()
        .write_grouped(vec![
            store::set_transfer_policy(t, event, policy.allowed, deadline),
            actor
                .audit("event.transfer_policy", "event")
                .object(event)
                .before(&catalog.event.transfers)
                .after(&after)
                .stmt(now),
        ])
        .await?;
    super::invalidate(app, t, event).await;
    Ok(after)
}
