//! Holds, checkout and orders.

use std::{collections::BTreeSet, sync::Arc};

use axum::http::StatusCode;
use kernel::{
    Permission,
    auth::{self, PlainToken},
    clock::{self, MICROS_PER_SEC},
    error::Checks,
    events::{self, Pending},
    idempotency::{self, Begin, Claim, Fingerprint, Found, Key},
    ids::{EventId, HoldId, OrderId, OrgId, TicketTypeId, VoucherId},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::attendees::Attendee;
use super::{
    HoldCreated, HoldExpired, Inventory, OrderCreated, OrderExpired, OrderPaid,
    error::{Error, Result},
    inventory::{Counter, Reserve, VoucherUse},
    store,
};
use crate::{
    App, events as catalog,
    identity::{Actor, Tenant},
    tickets,
};

/// Most items a hold may take, and most of one ticket type when the type
/// sets no `max_per_order`.
pub const MAX_ITEMS: usize = 20;
pub const DEFAULT_MAX_PER_ORDER: i64 = 50;

/// Where a hold stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldStatus {
    /// Holding its quantity until `expires_at`.
    Active,
    /// Checked out into an order (its quantity is the order's).
    Consumed,
    /// Expired, or its order expired: its quantity is back on sale.
    Released,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Active => "active",
            HoldStatus::Consumed => "consumed",
            HoldStatus::Released => "released",
        }
    }
}

impl TryFrom<String> for HoldStatus {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match s.as_str() {
            "active" => Ok(HoldStatus::Active),
            "consumed" => Ok(HoldStatus::Consumed),
            "released" => Ok(HoldStatus::Released),
            other => Err(format!("unknown hold status {other:?}")),
        }
    }
}

/// Where an order stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Waiting for its payment; no tickets yet.
    Pending,
    /// Paid; its tickets are issued.
    Paid,
    /// Not paid in time; its tickets went back on sale.
    Expired,
    /// Paid, and part of it refunded: its tickets stay valid.
    PartiallyRefunded,
    /// Paid and refunded in full: its tickets are revoked and back on sale.
    Refunded,
    /// Cancelled by the organizer: what was paid is refunded, its tickets
    /// are revoked and back on sale.
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Expired => "expired",
            OrderStatus::PartiallyRefunded => "partially_refunded",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

impl TryFrom<String> for OrderStatus {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match s.as_str() {
            "pending" => Ok(OrderStatus::Pending),
            "paid" => Ok(OrderStatus::Paid),
            "expired" => Ok(OrderStatus::Expired),
            "partially_refunded" => Ok(OrderStatus::PartiallyRefunded),
            "refunded" => Ok(OrderStatus::Refunded),
            "cancelled" => Ok(OrderStatus::Cancelled),
            other => Err(format!("unknown order status {other:?}")),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldItem {
    pub ticket_type_id: TicketTypeId,
    #[schema(minimum = 1, maximum = 1000)]
    pub quantity: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HoldView {
    pub id: HoldId,
    pub event_id: EventId,
    pub expires_at: String,
    pub items: Vec<HoldItem>,
    /// The voucher it was made with (its discount is applied at checkout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voucher: Option<String>,
    /// The seats it holds (seated events).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seats: Vec<super::seats::SeatRef>,
}

/// How a hold picks seats (seated events).
#[derive(Clone, Debug, Default)]
pub enum SeatPick {
    #[default]
    None,
    /// These seats, by id.
    Seats(Vec<String>),
    /// The best `quantity` free seats of the ticket type.
    Best {
        ticket_type_id: TicketTypeId,
        quantity: i64,
    },
}

/// Most seats one hold may take.
pub const MAX_SEATS_PER_HOLD: usize = 50;

/// A seat pick once checked.
enum Seating {
    None,
    Seats(Vec<(String, TicketTypeId)>),
    Best {
        map: Arc<catalog::SeatMap>,
        tt: TicketTypeId,
        quantity: usize,
    },
}

/// A published event of the tenant, or 404 (drafts are invisible to buyers).
pub(super) async fn published_catalog(
    app: &App,
    t: &Tenant,
    event: EventId,
) -> Result<Arc<catalog::Catalog>> {
    match catalog::catalog(app, t, event).await? {
        Some(c) if c.is_published() => Ok(c),
        _ => Err(Error::NotFound),
    }
}

/// A series sells through its dates, never itself.
pub(super) fn refuse_series(catalog: &catalog::Catalog) -> Result<()> {
    if catalog.event.series {
        return Err(Error::field(
            "event_id",
            "is a series: pick one of its dates (GET /api/v1/store/{org}/events/{event_id} lists them)",
        ));
    }
    Ok(())
}

fn items_of(pairs: &[(TicketTypeId, i64)]) -> Vec<HoldItem> {
    pairs
        .iter()
        .map(|(t, q)| HoldItem {
            ticket_type_id: *t,
            quantity: *q,
        })
        .collect()
}

/// Holds made on this node, kept for their checkout: a checkout on the
/// node that made its hold does not read it back (a hold's event, items and
/// expiry never change, and the checkout's conditional consume checks its
/// state). A checkout on another node, or after a restart, reads it.
pub struct RecentHolds(moka::future::Cache<(OrgId, HoldId), Arc<RecentHold>>);

struct RecentHold {
    event: EventId,
    /// By ticket type, as [`store::hold_for_checkout`] reads them.
    items: Vec<(TicketTypeId, i64)>,
    expires_at: i64,
    voucher: VoucherUse,
}

impl RecentHolds {
    pub fn new(kernel: &kernel::Kernel) -> RecentHolds {
        RecentHolds(
            moka::future::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(std::time::Duration::from_secs(
                    kernel.config.hold_ttl_secs.max(1) as u64,
                ))
                .build(),
        )
    }
}

/// Keyed checkouts being made on this node: a second request with the key
/// of one still being made answers 409 at once (API.md), as a claimed key
/// did. A retry reaching another node meanwhile cannot consume the hold
/// before the first committed, and then gets the first's reply.
#[derive(Default)]
pub struct CheckoutsInFlight(dashmap::DashSet<(OrgId, String)>);

/// A key's place in [`CheckoutsInFlight`], given up when dropped.
struct Flying<'a> {
    set: &'a dashmap::DashSet<(OrgId, String)>,
    entry: (OrgId, String),
}

impl Drop for Flying<'_> {
    fn drop(&mut self) {
        self.set.remove(&self.entry);
    }
}

/// Quantities taken from the inventory counters for a hold not yet
/// written. Dropped before its hold is written (or known to have failed),
/// it makes sure the quantities are given back when — and only when — the
/// write does not happen: a counter never drifts from the ledger because a
/// request went away.
struct Reservation {
    app: App,
    org: kernel::ids::OrgId,
    event: EventId,
    /// The Redis epoch it was taken in: the write is guarded by it.
    epoch: Option<i64>,
    /// The counters taken; `None` once settled.
    counters: Option<Vec<(Counter, i64)>>,
    /// A voucher reserving its tickets: the write stands only while the
    /// reservation does.
    reserved: Option<VoucherId>,
}

impl Reservation {
    async fn write(mut self, writes: Vec<kernel::Stmt>) -> Result<()> {
        // Dropped while queueing: nothing was queued, the drop gives back.
        let db = self.app.db();
        let queued = match (self.reserved, self.epoch) {
            (Some(v), epoch) => {
                db.enqueue_guarded(store::reservation_guard(self.org, v, epoch), writes)
                    .await
            }
            (None, Some(e)) => db.enqueue_guarded(store::epoch_guard(e), writes).await,
            (None, None) => db.enqueue_writes(writes).await,
        };
        let ticket = match queued {
            Ok(ticket) => ticket,
            Err(e) => {
                self.give_back().await?;
                return Err(e.into());
            }
        };
        let settle = WriteInFlight {
            reservation: Some(self),
            ticket: Some(ticket),
        };
        settle.finish().await
    }

    /// The hold is written: nothing is to be given back.
    fn settle(&mut self) {
        self.counters = None;
    }

    /// Redis away, the quantities stay taken in its counters (on the safe
    /// side) until the reconciliation or the next epoch puts them right.
    async fn give_back(&mut self) -> Result<()> {
        if let Some(counters) = self.counters.take() {
            match self
                .app
                .state::<Inventory>()
                .give_back(self.org, self.event, self.epoch, &counters)
                .await
            {
                Ok(()) | Err(Error::WarmTierDown) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(counters) = self.counters.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let (app, org, event, epoch) = (self.app.clone(), self.org, self.event, self.epoch);
            rt.spawn(async move {
                if let Err(e) = app
                    .state::<Inventory>()
                    .give_back(org, event, epoch, &counters)
                    .await
                {
                    tracing::warn!(error = %e, "a dropped hold's quantities were not given back");
                }
            });
        }
    }
}

/// A queued hold write: dropped before its outcome is known, it hands the
/// outcome to a task that gives the quantities back if the write failed.
struct WriteInFlight {
    reservation: Option<Reservation>,
    ticket: Option<kernel::db::WriteTicket>,
}

impl WriteInFlight {
    async fn finish(mut self) -> Result<()> {
        // Awaited in place: dropped while waiting, `self` still holds the
        // reservation and the ticket, and its Drop hands them on.
        let outcome = match self.ticket.as_mut() {
            Some(ticket) => ticket.await,
            None => return Ok(()),
        };
        self.ticket = None;
        let Some(mut reservation) = self.reservation.take() else {
            return Ok(());
        };
        match outcome {
            Ok(true) => {
                reservation.settle();
                Ok(())
            }
            Ok(false) => {
                reservation.give_back().await?;
                Err(Error::EpochMoved(reservation.epoch.unwrap_or(0)))
            }
            // Dropped while giving back, the reservation's Drop gives back.
            Err(e) => {
                reservation.give_back().await?;
                Err(e.into())
            }
        }
    }
}

impl Drop for WriteInFlight {
    fn drop(&mut self) {
        if let (Some(mut reservation), Some(ticket)) = (self.reservation.take(), self.ticket.take())
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                match ticket.await {
                    Ok(true) => reservation.settle(),
                    Ok(false) | Err(_) => {
                        if let Err(e) = reservation.give_back().await {
                            tracing::warn!(error = %e, "a failed hold's quantities were not given back");
                        }
                    }
                }
            });
        }
    }
}

/// Holds quantities of ticket types for the configured time. One atomic
/// step takes all items or none; nothing is ever sold twice.
pub async fn create_hold(
    app: &App,
    t: &Tenant,
    event: EventId,
    items: Vec<HoldItem>,
    queue_pass: Option<&str>,
    voucher: Option<&str>,
    pick: SeatPick,
) -> Result<HoldView> {
    let catalog = published_catalog(app, t, event).await?;
    refuse_series(&catalog)?;
    let now = app.kernel.now();
    let mut c = Checks::default();
    let map = catalog::seating(app, t, event).await?;
    // Seats: each of the map, once, of a type on sale; or the best free
    // ones of a seated type. A seated type is held by its seats only.
    let mut unavailable = Vec::new();
    let mut counts: std::collections::BTreeMap<TicketTypeId, i64> = Default::default();
    let seating = match (&pick, &map) {
        (SeatPick::None, _) => Seating::None,
        (_, None) => {
            c.fail("seats", "this event has no seat map; hold items instead");
            Seating::None
        }
        (SeatPick::Seats(ids), Some(map)) => {
            if ids.is_empty() || ids.len() > MAX_SEATS_PER_HOLD {
                c.fail("seats", "must name 1 to 50 seats");
            }
            let mut seen = BTreeSet::new();
            let mut picked = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                let Some(seat) = map.seat(id) else {
                    c.fail(&format!("seats[{i}]"), "is not a seat of this event");
                    continue;
                };
                if !seen.insert(id.as_str()) {
                    c.fail(&format!("seats[{i}]"), "appears twice");
                }
                if seat.blocked() {
                    unavailable.push(format!("{} {} {}", seat.section, seat.row, seat.label));
                }
                *counts.entry(seat.ticket_type_id).or_default() += 1;
                picked.push((id.clone(), seat.ticket_type_id));
            }
            Seating::Seats(picked)
        }
        (
            SeatPick::Best {
                ticket_type_id,
                quantity,
            },
            Some(map),
        ) => {
            if !map.types.contains(ticket_type_id) {
                c.fail(
                    "best_available.ticket_type_id",
                    "has no seats in this event's map",
                );
            }
            if !(1..=MAX_SEATS_PER_HOLD as i64).contains(quantity) {
                c.fail("best_available.quantity", "must be between 1 and 50");
            }
            *counts.entry(*ticket_type_id).or_default() += (*quantity).max(0);
            Seating::Best {
                map: map.clone(),
                tt: *ticket_type_id,
                quantity: (*quantity).clamp(0, MAX_SEATS_PER_HOLD as i64) as usize,
            }
        }
    };
    for (i, item) in items.iter().enumerate() {
        if map
            .as_ref()
            .is_some_and(|m| m.types.contains(&item.ticket_type_id))
        {
            c.fail(
                &format!("items[{i}].ticket_type_id"),
                "is seated: hold seats or best_available",
            );
        }
    }
    for (tt, n) in &counts {
        match catalog.ticket_type(*tt) {
            Some(ty) if !ty.on_sale_at(now) => {
                c.fail("seats", "a seat's ticket type is not on sale now")
            }
            Some(ty) if *n < ty.min_per_order.unwrap_or(1) => c.fail(
                "seats",
                &format!(
                    "at least {} seats of {}",
                    ty.min_per_order.unwrap_or(1),
                    ty.name
                ),
            ),
            Some(ty) if *n > ty.max_per_order.unwrap_or(DEFAULT_MAX_PER_ORDER) => c.fail(
                "seats",
                &format!(
                    "at most {} seats of {}",
                    ty.max_per_order.unwrap_or(DEFAULT_MAX_PER_ORDER),
                    ty.name
                ),
            ),
            _ => {}
        }
    }
    for item in &items {
        *counts.entry(item.ticket_type_id).or_default() += item.quantity.max(0);
    }
    // The voucher: one of this event's, still valid, discounting at least
    // one of the tickets (each it discounts is one use).
    let mut unlocking = None;
    let voucher = match voucher {
        None => None,
        Some(code) => match catalog::voucher_by_code(app, t, event, code).await? {
            None => {
                c.fail("voucher", "is not a voucher of this event");
                None
            }
            Some(v) if !v.valid_at(now) => {
                c.fail("voucher", "has expired");
                None
            }
            Some(v) => {
                unlocking = Some(v.clone());
                let uses: i64 = counts
                    .iter()
                    .filter(|(tt, _)| catalog.ticket_type(**tt).is_some_and(|ty| v.applies_to(ty)))
                    .map(|(_, q)| *q)
                    .sum();
                if uses == 0 {
                    c.fail("voucher", "does not apply to these ticket types");
                }
                Some((v.id, uses, v.code.clone()))
            }
        },
    };
    if items.is_empty() && matches!(pick, SeatPick::None) {
        c.fail("items", "must hold at least one ticket type");
    }
    if items.len() > MAX_ITEMS {
        c.fail("items", "must hold at most 20 ticket types");
    }
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("items[{i}]");
        let Some(tt) = catalog.ticket_type(item.ticket_type_id) else {
            c.fail(
                &format!("{field}.ticket_type_id"),
                "is not a ticket type of this event",
            );
            continue;
        };
        if !seen.insert(item.ticket_type_id) {
            c.fail(&format!("{field}.ticket_type_id"), "appears twice");
        }
        let max = tt.max_per_order.unwrap_or(DEFAULT_MAX_PER_ORDER);
        let min = tt.min_per_order.unwrap_or(1).min(max);
        if item.quantity < min || item.quantity > max {
            c.fail(
                &format!("{field}.quantity"),
                &format!("must be between {min} and {max}"),
            );
        }
        if !tt.on_sale_at(now) {
            c.fail(&format!("{field}.ticket_type_id"), "is not on sale now");
        }
    }
    // A hidden ticket type is sold only with a voucher that names it.
    for tt in counts.keys() {
        if let Some(ty) = catalog.ticket_type(*tt)
            && ty.hidden
            && !unlocking.as_ref().is_some_and(|v| v.unlocks(ty))
        {
            let field = items
                .iter()
                .position(|i| i.ticket_type_id == *tt)
                .map(|i| format!("items[{i}].ticket_type_id"))
                .unwrap_or_else(|| "seats".into());
            c.fail(&field, "is sold only with a voucher that unlocks it");
        }
    }
    let limits = super::limits::of(app, t.org(), event).await?;
    if let Some(max) = limits.max_tickets_per_order {
        let total: i64 = counts.values().sum();
        if total > max {
            c.fail("items", &format!("at most {max} tickets in one order"));
        }
    }
    c.finish()?;
    if !unavailable.is_empty() {
        return Err(Error::SeatUnavailable(unavailable.join(", ")));
    }
    // The waiting room's pass, when the event has a room on: taken now,
    // given back if the hold is not made for another reason than the
    // tickets being gone.
    let pass = super::queue::take_pass(app, t, event, queue_pass).await?;
    let made = Box::pin(hold_seated(app, t, event, items, voucher, seating)).await;
    if let (Some(pass), Err(e)) = (pass, &made)
        && !matches!(e, Error::SoldOut(_) | Error::SeatUnavailable(_))
    {
        super::queue::give_back(app, pass).await;
    }
    made
}

/// [`create_hold`] once its checks passed: the hold made with its seats'
/// claims; best available chosen again (a few times) when another node's
/// hold took one of the chosen seats first.
async fn hold_seated(
    app: &App,
    t: &Tenant,
    event: EventId,
    items: Vec<HoldItem>,
    voucher: Option<(VoucherId, i64, String)>,
    seating: Seating,
) -> Result<HoldView> {
    let board = app.state::<super::seats::SeatBoard>();
    for attempt in 0..4 {
        // Seats asked for by id are marked in flight on this node first (a
        // concurrent ask here is told at once), and checked against the
        // database, before any counter is touched: a request that cannot
        // have its seats never keeps their quantity from others.
        let mut _marked = None;
        let source = match &seating {
            Seating::None => SeatSource::Fixed(Vec::new()),
            Seating::Seats(s) => {
                let ids: Vec<String> = s.iter().map(|(id, _)| id.clone()).collect();
                _marked = Some(board.mark(t.org(), event, ids.clone()).map_err(|_| {
                    Error::SeatUnavailable("a seat asked for is being held".into())
                })?);
                if !super::seats::claimed_among(app.db(), t, event, &ids)
                    .await?
                    .is_empty()
                {
                    return Err(Error::SeatUnavailable(
                        "a seat asked for is held or sold".into(),
                    ));
                }
                SeatSource::Fixed(s.clone())
            }
            Seating::Best { map, tt, quantity } => SeatSource::Best {
                map: map.clone(),
                tt: *tt,
                quantity: *quantity,
                fresh: attempt > 0,
            },
        };
        let seated = !matches!(&source, SeatSource::Fixed(s) if s.is_empty());
        let ttl = app.kernel.config.hold_ttl_secs;
        let made = hold_items(app, t, event, items.clone(), voucher.clone(), source, ttl).await;
        if made.is_ok() && seated {
            board.changed(t.org(), event).await;
        }
        match made {
            Err(Error::Db(e)) if kernel::db::is_unique_violation(&e) && seated => {
                if matches!(seating, Seating::Best { .. }) && attempt < 3 {
                    continue;
                }
                return Err(Error::SeatUnavailable(
                    "a seat asked for is held or sold".into(),
                ));
            }
            other => return other,
        }
    }
    Err(Error::SeatUnavailable(
        "the seats chosen were taken meanwhile; try again".into(),
    ))
}

/// A hold made for the head of a waiting list: `quantity` of one general
/// admission ticket type, kept `ttl_secs` (the offer's time); no waiting
/// room pass or per-order limit is asked (they were when they joined).
pub(super) async fn offer_hold(
    app: &App,
    t: &Tenant,
    event: EventId,
    ticket_type_id: TicketTypeId,
    quantity: i64,
    ttl_secs: i64,
) -> Result<HoldView> {
    let items = vec![HoldItem {
        ticket_type_id,
        quantity,
    }];
    Box::pin(hold_items(
        app,
        t,
        event,
        items,
        None,
        SeatSource::Fixed(Vec::new()),
        ttl_secs,
    ))
    .await
}

/// Where a hold's seats come from.
enum SeatSource {
    /// These (none for a general-admission hold).
    Fixed(Vec<(String, TicketTypeId)>),
    /// The best free ones, chosen once the counters granted the quantity
    /// (so a request refused for its voucher or its quota never keeps
    /// seats from another).
    Best {
        map: Arc<catalog::SeatMap>,
        tt: TicketTypeId,
        quantity: usize,
        /// Read the claims anew (a pick from an older reading lost).
        fresh: bool,
    },
}

impl SeatSource {
    /// The seats; best available ones chosen once the counters granted the
    /// quantity, and marked in flight on this node until the hold's write is
    /// done (seats asked for by id were marked before).
    async fn resolve<'a>(
        &self,
        app: &'a App,
        t: &Tenant,
        event: EventId,
    ) -> Result<(
        Vec<(String, TicketTypeId)>,
        Option<super::seats::InFlight<'a>>,
    )> {
        match self {
            SeatSource::Fixed(s) => Ok((s.clone(), None)),
            SeatSource::Best {
                map,
                tt,
                quantity,
                fresh,
            } => {
                let board = app.state::<super::seats::SeatBoard>();
                // Seats marked here by holds being made may yet fall
                // through: look again, waiting longer each time (20 ms
                // doubling to 400 ms, about 1.4 s in all: under load a
                // hold takes longer to be written), before saying none are
                // left.
                for look in 0..8u32 {
                    board
                        .read_taken(app.db(), t, event, map, look > 0 || *fresh)
                        .await?;
                    match board.pick(t.org(), event, map, *tt, *quantity) {
                        super::seats::Picked::Seats(m) => {
                            let seats = m.seats().iter().map(|id| (id.clone(), *tt)).collect();
                            return Ok((seats, Some(m)));
                        }
                        super::seats::Picked::Busy => {
                            let ms = (20u64 << look).min(400);
                            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                        }
                        super::seats::Picked::None => break,
                    }
                }
                Err(Error::SoldOut(*tt))
            }
        }
    }

    fn counts(&self) -> Vec<(TicketTypeId, i64)> {
        let mut out: Vec<(TicketTypeId, i64)> = Vec::new();
        match self {
            SeatSource::Fixed(s) => {
                for (_, tt) in s {
                    match out.iter_mut().find(|(t, _)| t == tt) {
                        Some((_, q)) => *q += 1,
                        None => out.push((*tt, 1)),
                    }
                }
            }
            SeatSource::Best { tt, quantity, .. } => out.push((*tt, *quantity as i64)),
        }
        out
    }
}

/// Makes the hold: its quantities (seats included) taken from the
/// counters, its seats chosen, its rows and seat claims written.
async fn hold_items(
    app: &App,
    t: &Tenant,
    event: EventId,
    items: Vec<HoldItem>,
    voucher: Option<(VoucherId, i64, String)>,
    source: SeatSource,
    ttl_secs: i64,
) -> Result<HoldView> {
    let (voucher, code): (VoucherUse, Option<String>) = match voucher {
        Some((v, uses, code)) => (Some((v, uses)), Some(code)),
        None => (None, None),
    };
    // The items with the seats' ticket types counted in.
    let mut pairs: Vec<(TicketTypeId, i64)> = items
        .iter()
        .map(|i| (i.ticket_type_id, i.quantity))
        .collect();
    for (tt, n) in source.counts() {
        match pairs.iter_mut().find(|(t, _)| *t == tt) {
            Some((_, q)) => *q += n,
            None => pairs.push((tt, n)),
        }
    }
    let items = items_of(&pairs);
    let hold = HoldId::new();
    // The hold's writes, and when it expires: its time runs from when it is
    // taken (a reservation may wait its turn at the ledger).
    let writes = |epoch: Option<i64>,
                  reserved: Option<TicketTypeId>,
                  seats: &[(String, TicketTypeId)]|
     -> Result<(Vec<kernel::Stmt>, i64)> {
        let now = app.kernel.now();
        let expires_at = now + ttl_secs * MICROS_PER_SEC;
        let mut writes = store::insert_hold(
            t, hold, event, expires_at, now, &pairs, epoch, voucher, reserved,
        );
        writes.extend(super::seats::claim(t, event, hold, seats));
        writes.push(events::emit(
            &HoldCreated {
                org_id: t.org(),
                event_id: event,
                hold_id: hold,
                items: items.clone(),
                expires_at: clock::rfc3339(expires_at),
            },
            now,
        )?);
        Ok((writes, expires_at))
    };
    let inventory = app.state::<Inventory>();
    let mut taken = None;
    // A reservation whose Redis epoch moved on before its write is refused
    // and made again (the node learns the new epoch); Redis away, the
    // ledger decides.
    for _ in 0..3 {
        let (got, counters, reserved) = inventory
            .reserve_counted(app, t, event, &pairs, voucher)
            .await?;
        let epoch = match got {
            Reserve::SoldOut(tt) => return Err(Error::SoldOut(tt)),
            Reserve::VoucherSpent => return Err(voucher_spent()),
            Reserve::Unavailable => break,
            Reserve::Taken(epoch) => epoch,
        };
        // From here the reservation is either written or given back, even
        // when the request is dropped (a client gone, the handler's time
        // limit).
        let mut reservation = Reservation {
            app: app.clone(),
            org: t.org(),
            event,
            epoch,
            counters: Some(counters),
            reserved: reserved.and(voucher.map(|(v, _)| v)),
        };
        let (seats, _marked) = match source.resolve(app, t, event).await {
            Ok(s) => s,
            Err(e) => {
                reservation.give_back().await?;
                return Err(e);
            }
        };
        let (stmts, expires_at) = writes(epoch, reserved, &seats)?;
        match reservation.write(stmts).await {
            Ok(()) => {
                if let SeatSource::Best { map, .. } = &source {
                    let ids: Vec<String> = seats.iter().map(|(s, _)| s.clone()).collect();
                    app.state::<super::seats::SeatBoard>()
                        .claimed_here(t.org(), event, map, &ids);
                }
                taken = Some((expires_at, seats));
                break;
            }
            Err(Error::EpochMoved(e)) => {
                if reserved.is_some() {
                    // Perhaps the reservation ended: look again.
                    crate::events::invalidate(app, t, event).await;
                }
                inventory.refused(app, e).await?
            }
            Err(e) => return Err(e),
        }
    }
    let (expires_at, seats) = match taken {
        Some(done) => done,
        None => {
            let (seats, _marked) = source.resolve(app, t, event).await?;
            let at = hold_from_ledger(app, t, event, &pairs, voucher, |reserved| {
                writes(None, reserved, &seats)
            })
            .await?;
            (at, seats)
        }
    };
    let mut sorted = pairs.clone();
    sorted.sort_by_key(|(tt, _)| *tt);
    app.state::<RecentHolds>()
        .0
        .insert(
            (t.org(), hold),
            Arc::new(RecentHold {
                event,
                items: sorted,
                expires_at,
                voucher,
            }),
        )
        .await;
    Ok(HoldView {
        id: hold,
        event_id: event,
        expires_at: clock::rfc3339(expires_at),
        items,
        voucher: code,
        seats: seat_refs(app, t, event, seats.iter().map(|(s, _)| s.as_str())).await?,
    })
}

/// The seats a hold claimed, by ticket type (none unless the event has a
/// seat map).
pub(super) async fn held_seats(
    app: &App,
    t: &Tenant,
    event: EventId,
    hold: HoldId,
) -> Result<Vec<(TicketTypeId, String)>> {
    if catalog::seating(app, t, event).await?.is_none() {
        return Ok(Vec::new());
    }
    Ok(super::seats::of_hold(app.db(), t, hold).await?)
}

/// Seats by id as a reply shows them.
async fn seat_refs<'a>(
    app: &App,
    t: &Tenant,
    event: EventId,
    ids: impl Iterator<Item = &'a str>,
) -> Result<Vec<super::seats::SeatRef>> {
    let ids: Vec<&str> = ids.collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let map = catalog::seating(app, t, event).await?;
    Ok(ids
        .into_iter()
        .filter_map(|id| map.as_ref()?.seat(id))
        .map(|s| super::seats::SeatRef {
            id: s.id.clone(),
            section: s.section.clone(),
            row: s.row.clone(),
            label: s.label.clone(),
        })
        .collect())
}

/// A voucher with no uses left for the hold asked.
fn voucher_spent() -> Error {
    Error::field("voucher", "has been used up")
}

/// Writes a hold taken from the ledger (Redis away, or its epoch moving
/// under a reservation again and again): one transaction at a time. When
/// it expires.
async fn hold_from_ledger(
    app: &App,
    t: &Tenant,
    event: EventId,
    pairs: &[(TicketTypeId, i64)],
    voucher: VoucherUse,
    writes: impl FnOnce(Option<TicketTypeId>) -> Result<(Vec<kernel::Stmt>, i64)>,
) -> Result<i64> {
    let inventory = app.state::<Inventory>();
    let _turn = inventory.ledger_turn().await;
    let mut tx = app.db().begin().await?;
    let (got, reserved) = inventory
        .reserve_in_tx(app, &mut tx, t, event, pairs, voucher)
        .await?;
    match got {
        Reserve::SoldOut(tt) => {
            tx.rollback().await?;
            return Err(Error::SoldOut(tt));
        }
        Reserve::VoucherSpent => {
            tx.rollback().await?;
            return Err(voucher_spent());
        }
        Reserve::Taken(_) | Reserve::Unavailable => {}
    }
    let (stmts, expires_at) = writes(reserved)?;
    tx.run_all(stmts).await?;
    tx.commit().await?;
    Ok(expires_at)
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Buyer {
    /// The e-mail address given at checkout (lower case).
    pub email: String,
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    pub id: OrderId,
    pub event_id: EventId,
    pub status: OrderStatus,
    pub buyer: Buyer,
    pub total_cents: i64,
    pub currency: String,
    /// What was paid, and how much of it refunded (minor units).
    pub paid_cents: i64,
    pub refunded_cents: i64,
    /// The booking fee inside `total_cents` (per priced ticket).
    pub fee_cents: i64,
    /// The VAT inside `total_cents` (prices include it), at `tax_rate_bp`
    /// basis points.
    pub tax_cents: i64,
    pub tax_rate_bp: i64,
    /// The invoice's number once paid (`INV-000042`).
    pub invoice_number: Option<String>,
    /// `card`, `eft`, or `free`.
    pub payment_method: String,
    /// One per ticket type: quantity, unit price and the discount applied.
    pub lines: Vec<OrderLine>,
    pub tickets: Vec<tickets::TicketView>,
    /// The order's payment (none for a free order).
    pub payment: Option<PaymentView>,
    /// Its refunds, oldest first.
    pub refunds: Vec<RefundView>,
    pub created_at: String,
    /// Shown in the checkout reply only: the buyer's key to this order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
}

pub const CHECKOUT_SCOPE: &str = "store.checkout";

/// How a priced order is to be paid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// By card through the provider (Stripe's protocol).
    #[default]
    Card,
    /// By bank transfer with the order's reference; marked paid by finance.
    Eft,
}

/// One ticket type of an order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderLine {
    pub ticket_type_id: TicketTypeId,
    pub name: String,
    pub quantity: i64,
    pub unit_price_cents: i64,
    /// The discount applied to this line (minor units).
    pub discount_cents: i64,
    /// quantity × unit price − discount.
    pub total_cents: i64,
}

pub use super::money::{PaymentView, RefundView};

/// What a checkout answers: status and body, replayed as-is for the same
/// idempotency key.
pub struct Reply {
    pub status: StatusCode,
    /// JSON text: the order, or (replayed) the problem the first try got.
    pub body: String,
}

impl From<idempotency::Stored> for Reply {
    fn from(stored: idempotency::Stored) -> Reply {
        Reply {
            status: StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
            body: stored.body,
        }
    }
}

/// The problem to keep as a key's reply when a request failed this way: a
/// client error (the same request would fail the same way), not a request
/// in flight; `None` otherwise (a retry may go through).
fn kept_problem(api: &kernel::ApiError) -> Result<Option<String>> {
    if !api.status().is_client_error() || matches!(api, kernel::ApiError::IdempotencyInFlight) {
        return Ok(None);
    }
    Ok(Some(
        serde_json::to_string(&api.problem()).map_err(kernel::ApiError::internal)?,
    ))
}

/// Runs `once` under an idempotency key of `scope` (when the request sent
/// one): a replay answers the first reply again; a client error is stored
/// as the reply (the same request would fail the same way); anything else
/// frees the key so a retry can go through. `once` stores its success
/// reply in its own transaction, conditional on still holding the claim.
pub(super) async fn idempotent<F, Fut>(
    app: &App,
    t: &Tenant,
    scope: &'static str,
    idempotency: Option<(Key, Fingerprint)>,
    once: F,
) -> Result<Reply>
where
    F: FnOnce(Option<Claim>) -> Fut,
    Fut: std::future::Future<Output = Result<Reply>>,
{
    let Some((key, fingerprint)) = idempotency else {
        return once(None).await;
    };
    let db = app.db();
    let claim = match idempotency::begin(db, &app.kernel.clock, t.org(), scope, &key, &fingerprint)
        .await?
    {
        Begin::Claimed(claim) => claim,
        Begin::Replay(stored) => return Ok(stored.into()),
        Begin::InFlight => return Err(Error::IdempotencyInFlight),
        Begin::Conflict => return Err(Error::IdempotencyConflict),
    };
    match once(Some(claim.clone())).await {
        Ok(reply) => Ok(reply),
        Err(e) => {
            let api = kernel::ApiError::from(e);
            match kept_problem(&api)? {
                Some(body) => {
                    claim.complete(db, api.status().as_u16(), &body).await?;
                }
                // Nothing was written: free the key so a retry can go through.
                None => {
                    let _ = claim.release(db).await;
                }
            }
            Err(Error::Api(api))
        }
    }
}

/// A stored or fresh reply as the HTTP response: JSON when it succeeded,
/// problem+json when it did not.
pub fn reply_response(reply: Reply) -> axum::response::Response {
    use axum::response::IntoResponse;
    let content_type = if reply.status.is_success() {
        "application/json"
    } else {
        "application/problem+json"
    };
    let mut res = (reply.status, axum::body::Body::from(reply.body)).into_response();
    res.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(content_type),
    );
    res
}

/// Checks a hold out into an order. A free order is `paid` at once and its
/// tickets issued; a priced one is `pending` with a payment to complete
/// before `--payment-timeout-secs`. With an idempotency key, the reply is
/// stored as the key's row in the same transaction as the order, so a
/// retry can never make a second order.
///
/// A second request with the key while the first is being made on this
/// node answers 409. The key is not claimed in the database first: the
/// hold is the claim (a hold is checked
/// out at most once, and the order's writes need it still active). Only
/// when the checkout cannot be made is the key asked what to answer — the
/// first request's reply, a conflict when it was used with another
/// request, or this request's own client error, then kept as the key's
/// reply (the same request would fail the same way).
#[allow(clippy::too_many_arguments)]
pub async fn checkout(
    app: &App,
    t: &Tenant,
    hold: HoldId,
    buyer: Buyer,
    attendees: Vec<Attendee>,
    method: PaymentMethod,
    idempotency: Option<(Key, Fingerprint)>,
) -> Result<Reply> {
    let Some((key, fingerprint)) = idempotency else {
        return Box::pin(checkout_once(app, t, hold, buyer, &attendees, method, None)).await;
    };
    let flying = &app.state::<CheckoutsInFlight>().0;
    let entry = (t.org(), key.as_str().to_string());
    if !flying.insert(entry.clone()) {
        return Err(Error::IdempotencyInFlight);
    }
    let _flying = Flying { set: flying, entry };
    let db = app.db();
    let under = idempotency::Under {
        org: t.org(),
        scope: CHECKOUT_SCOPE,
        key: &key,
        fingerprint: &fingerprint,
    };
    // Twice at most: a key past its retention is forgotten on the way.
    for _ in 0..2 {
        let once = checkout_once(app, t, hold, buyer.clone(), &attendees, method, Some(under));
        let failed = match Box::pin(once).await {
            Ok(reply) => return Ok(reply),
            Err(e) => e,
        };
        let found = idempotency::find(db, &app.kernel.clock, under).await?;
        match found {
            Found::Replay(stored) => return Ok(stored.into()),
            Found::Conflict => return Err(Error::IdempotencyConflict),
            Found::InFlight => return Err(Error::IdempotencyInFlight),
            // The key's row was there when the order was written, and is
            // forgotten now: once more.
            Found::Free if matches!(&failed, Error::Db(e) if kernel::db::is_unique_violation(e)) => {
                continue;
            }
            Found::Free => {
                let api = kernel::ApiError::from(failed);
                if let Some(body) = kept_problem(&api)? {
                    idempotency::record(db, under, api.status().as_u16(), body, app.kernel.now())
                        .await?;
                }
                return Err(Error::Api(api));
            }
        }
    }
    Err(Error::IdempotencyInFlight)
}

async fn checkout_once(
    app: &App,
    t: &Tenant,
    hold: HoldId,
    buyer: Buyer,
    attendees: &[Attendee],
    method: PaymentMethod,
    idempotency: Option<idempotency::Under<'_>>,
) -> Result<Reply> {
    let mut c = Checks::default();
    let email = c.take("buyer.email", kernel::parse::email(&buyer.email));
    let name = c.take("buyer.name", kernel::parse::name(&buyer.name, 200));
    c.finish()?;
    let (Some(email), Some(name)) = (email, name) else {
        return Err(Error::Invalid(Vec::new()));
    };
    let now = app.kernel.now();
    // Prepare everything outside the write transaction (a read, signing,
    // rendering), so the transaction itself is a handful of writes. A hold's
    // items never change; the conditional consume below re-checks its state.
    let recent = app.state::<RecentHolds>().0.get(&(t.org(), hold)).await;
    let read = match recent {
        Some(r) => Some(store::HoldForCheckout {
            event: r.event,
            items: r.items.clone(),
            status: HoldStatus::Active,
            expires_at: r.expires_at,
            voucher: r.voucher,
            // (Not asked here: a release reads its hold again.)
            reserved: None,
        }),
        None => store::hold_for_checkout(app.db(), t, hold).await?,
    };
    let Some(store::HoldForCheckout {
        event,
        items,
        status: hold_state,
        expires_at: hold_expires,
        voucher,
        ..
    }) = read
    else {
        return Err(Error::NotFound);
    };
    // Cheap early answers (the transaction below re-checks): no payment is
    // begun for a hold that cannot be checked out.
    match hold_state {
        HoldStatus::Consumed => return Err(Error::HoldConsumed),
        HoldStatus::Released => return Err(Error::HoldExpired),
        HoldStatus::Active if hold_expires <= now => return Err(Error::HoldExpired),
        HoldStatus::Active => {}
    }
    // The buyer's limit: an early answer here, before a payment is begun;
    // the write below checks again under the buyer's lock.
    let per_buyer = super::limits::of(app, t.org(), event)
        .await?
        .max_tickets_per_buyer;
    let quantity: i64 = items.iter().map(|(_, q)| q).sum();
    if let Some(max) = per_buyer {
        let has = super::limits::buyer_tickets_now(app.db(), t.org(), event, &email).await?;
        if has + quantity > max {
            return Err(super::limits::over_buyer_limit(max, has));
        }
    }
    let catalog = catalog::catalog(app, t, event)
        .await?
        .ok_or(Error::NotFound)?;
    let attendees = super::attendees::check(&catalog, &items, attendees)?;
    // The voucher's discount, on each line it applies to.
    let voucher = match voucher {
        Some((v, _)) => Some(
            catalog::voucher(app, t, v)
                .await?
                .ok_or_else(|| Error::Api(kernel::ApiError::internal("held voucher vanished")))?,
        ),
        None => None,
    };
    let mut currencies = BTreeSet::new();
    let mut lines = Vec::with_capacity(items.len());
    for (tt, q) in &items {
        let ty = catalog
            .ticket_type(*tt)
            .ok_or_else(|| Error::Api(kernel::ApiError::internal("held ticket type vanished")))?;
        currencies.insert(ty.currency.clone());
        let discount = voucher
            .as_ref()
            .filter(|v| v.applies_to(ty))
            .map(|v| v.discount(ty.price_cents, *q))
            .unwrap_or(0);
        lines.push(OrderLine {
            ticket_type_id: *tt,
            name: ty.name.clone(),
            quantity: *q,
            unit_price_cents: ty.price_cents,
            discount_cents: discount,
            total_cents: ty.price_cents * q - discount,
        });
    }
    if currencies.len() > 1 {
        return Err(Error::field(
            "items",
            "ticket types of one order must share a currency",
        ));
    }
    let currency = currencies
        .into_iter()
        .next()
        .unwrap_or_else(|| "ZAR".into());
    let money = super::settings::of(app, t.org()).await?;
    let rates = money.rates_for(&currency);
    let priced: Vec<super::pricing::Line> = lines
        .iter()
        .map(|l| super::pricing::Line {
            quantity: l.quantity,
            unit_price_cents: l.unit_price_cents,
            discount_cents: l.discount_cents,
        })
        .collect();
    let Some(totals) = super::pricing::price(&priced, rates) else {
        return Err(Error::field("items", "the order is too large"));
    };
    let total = totals.total_cents;
    let status = if total == 0 {
        OrderStatus::Paid
    } else {
        OrderStatus::Pending
    };
    let expires_at = (status == OrderStatus::Pending)
        .then(|| now + app.kernel.config.payment_timeout_secs * MICROS_PER_SEC);
    // The order's id is its hold's: a hold is checked out at most once, and
    // a retried checkout (the provider timed out) asks the provider for the
    // same payment under the same key.
    let order = OrderId(hold.0);
    let access = PlainToken::generate("");
    let payment = match status {
        OrderStatus::Pending => Some(
            super::money::prepare(
                app,
                t,
                order,
                total,
                &currency,
                method,
                expires_at.unwrap_or(now),
                now,
            )
            .await?,
        ),
        _ => None,
    };
    let method_name = match (&payment, method) {
        (None, _) => "free",
        (Some(_), PaymentMethod::Card) => "card",
        (Some(_), PaymentMethod::Eft) => "eft",
    };
    let issued = if status == OrderStatus::Paid {
        let seats = held_seats(app, t, event, hold).await?;
        tickets::issue(app, t, order, event, &items, &seats, &attendees, now).await?
    } else {
        tickets::Issue {
            tickets: Vec::new(),
            writes: Vec::new(),
            events: Vec::new(),
        }
    };
    let view = OrderView {
        id: order,
        event_id: event,
        status,
        buyer: Buyer {
            email: email.clone(),
            name: name.clone(),
        },
        total_cents: total,
        currency: currency.clone(),
        paid_cents: if status == OrderStatus::Paid {
            total
        } else {
            0
        },
        refunded_cents: 0,
        fee_cents: totals.fee_cents,
        tax_cents: totals.tax_cents,
        tax_rate_bp: rates.tax_bp,
        invoice_number: None,
        payment_method: method_name.into(),
        lines: lines.clone(),
        tickets: tickets::views(app, t, issued.tickets.clone()).await?,
        payment: payment.as_ref().map(|p| p.view.clone()),
        refunds: Vec::new(),
        created_at: clock::rfc3339(now),
        access_token: Some(access.expose().to_string()),
    };
    let body = serde_json::to_string(&view).map_err(kernel::ApiError::internal)?;

    let mut announce = vec![
        Pending::of(
            &OrderCreated {
                org_id: t.org(),
                event_id: event,
                order_id: order,
                hold_id: hold,
                status,
                items: items_of(&items),
                total_cents: total,
                currency: currency.clone(),
            },
            now,
        )
        .map_err(kernel::ApiError::internal)?,
    ];
    if status == OrderStatus::Paid {
        announce.push(
            Pending::of(
                &OrderPaid {
                    org_id: t.org(),
                    event_id: event,
                    order_id: order,
                    total_cents: total,
                    currency: currency.clone(),
                    tickets: issued.tickets.len() as i64,
                },
                now,
            )
            .map_err(kernel::ApiError::internal)?,
        );
    }
    announce.extend(issued.events);
    // The order first, then its tickets: what webhooks deliver in order.
    Pending::in_order(&mut announce);
    let mut writes = vec![store::insert_order(
        t,
        &store::NewOrder {
            id: order,
            event,
            hold,
            status,
            buyer_email: &email,
            buyer_name: &name,
            total_cents: total,
            currency: &currency,
            access_token_hash: &access.hash().0,
            created_at: now,
            expires_at,
            payment_method: method_name,
            lines: &serde_json::to_string(&lines).map_err(kernel::ApiError::internal)?,
            fee_cents: totals.fee_cents,
            tax_cents: totals.tax_cents,
            tax_bp: rates.tax_bp,
            attendees: super::attendees::to_stored(&attendees),
        },
    )];
    if let Some(p) = payment {
        writes.push(p.insert);
    }
    writes.extend(issued.writes);
    writes.extend(Pending::stmt_all(&announce));
    if let Some(under) = idempotency {
        writes.push(idempotency::record_stmt(under, 201, body.clone(), now));
    }
    // Consume the hold and write the order in one transaction, shared with
    // other checkouts waiting at the same moment (group commit). Nothing is
    // written unless the hold is still active (and the key, if any, unused).
    let consume = store::consume_hold(t, hold, now);
    let applied = match per_buyer {
        None => app.db().write_if_taken(consume, writes).await?,
        // One checkout per buyer and event at a time, in a transaction of
        // its own (a lock held across a shared group could deadlock two).
        Some(max) => {
            let mut tx = app.db().begin().await?;
            super::limits::lock_buyer(&mut tx, t.org(), event, &email).await?;
            let has = super::limits::buyer_tickets(&mut tx, t.org(), event, &email).await?;
            if has + quantity > max {
                return Err(super::limits::over_buyer_limit(max, has));
            }
            if !consume.exists_in(&mut tx).await? {
                false
            } else {
                tx.run_all(writes).await?;
                tx.commit().await?;
                true
            }
        }
    };
    app.state::<RecentHolds>()
        .0
        .invalidate(&(t.org(), hold))
        .await;
    if applied {
        // Its seats (if any) are sold now.
        app.state::<super::seats::SeatBoard>()
            .changed(t.org(), event)
            .await;
    }
    if !applied {
        return Err(match store::hold_status(app.db(), t, hold).await? {
            None => Error::NotFound,
            Some(HoldStatus::Consumed) => Error::HoldConsumed,
            Some(_) => Error::HoldExpired,
        });
    }
    Ok(Reply {
        status: StatusCode::CREATED,
        body,
    })
}

pub(super) async fn order_view(
    app: &App,
    t: &Tenant,
    mut row: store::OrderRow,
) -> Result<OrderView> {
    // The order's parts (tickets, payment and refunds, invoice) are read
    // apart from its row: read again when the row moved meanwhile (a
    // refund failing takes its amount off the order in the transaction
    // that fails it), so the figures and the parts agree.
    let figures = |r: &store::OrderRow| (r.status, r.paid_cents, r.refunded_cents);
    for _ in 0..3 {
        let view = order_parts(app, t, row.clone()).await?;
        match store::order(app.db(), t, row.id).await? {
            Some(now) if figures(&now) != figures(&row) => row = now,
            _ => return Ok(view),
        }
    }
    order_parts(app, t, row).await
}

async fn order_parts(app: &App, t: &Tenant, row: store::OrderRow) -> Result<OrderView> {
    let issued = tickets::for_order(app, t, row.id).await?;
    let pending_until = (row.status == OrderStatus::Pending)
        .then_some(row.expires_at)
        .flatten();
    let (payment, refunds) = super::money::for_order(app, t, row.id, pending_until).await?;
    let invoice_number = match super::settings::invoice_of(app.db(), t, row.id).await? {
        Some((n, _)) => Some(super::settings::invoice_label(
            &super::settings::of(app, t.org()).await?.invoice_prefix,
            n,
        )),
        None => None,
    };
    Ok(OrderView {
        id: row.id,
        event_id: row.event_id,
        status: row.status,
        buyer: Buyer {
            email: row.buyer_email,
            name: row.buyer_name,
        },
        total_cents: row.total_cents,
        currency: row.currency.clone(),
        paid_cents: row.paid_cents,
        refunded_cents: row.refunded_cents,
        fee_cents: row.fee_cents,
        tax_cents: row.tax_cents,
        tax_rate_bp: row.tax_bp,
        invoice_number,
        payment_method: row.payment_method,
        lines: row
            .lines
            .as_deref()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_default(),
        tickets: issued,
        payment,
        refunds,
        created_at: clock::rfc3339(row.created_at),
        access_token: None,
    })
}

/// What the organizer's order list filters by.
pub struct OrderFilter {
    /// Part of a buyer's name or e-mail, or an order id.
    pub q: Option<String>,
    pub status: Option<OrderStatus>,
    pub event: Option<EventId>,
}

/// An order in the organizer's list.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderListItem {
    pub id: OrderId,
    pub event_id: EventId,
    pub status: OrderStatus,
    pub buyer: Buyer,
    pub total_cents: i64,
    pub currency: String,
    pub paid_cents: i64,
    pub refunded_cents: i64,
    pub payment_method: String,
    pub created_at: String,
}

/// The org's orders, newest first, `limit` before `before`.
pub async fn list_orders(
    app: &App,
    actor: &Actor,
    f: &OrderFilter,
    before: Option<OrderId>,
    limit: i64,
) -> Result<Vec<OrderListItem>> {
    let t = actor.require(Permission::OrdersRead)?;
    orders_of(app, t, f, before, limit).await
}

/// The event's orders whose buyer's name or e-mail holds `q`, or whose id
/// is `q`, newest first: the box office's lookup (its caller decided who
/// may look).
pub async fn find_orders(
    app: &App,
    t: &Tenant,
    event: EventId,
    q: &str,
    limit: i64,
) -> Result<Vec<OrderListItem>> {
    let f = OrderFilter {
        q: Some(q.to_string()),
        status: None,
        event: Some(event),
    };
    orders_of(app, t, &f, None, limit).await
}

async fn orders_of(
    app: &App,
    t: &Tenant,
    f: &OrderFilter,
    before: Option<OrderId>,
    limit: i64,
) -> Result<Vec<OrderListItem>> {
    let rows = store::list_orders(app.db(), t, f, before, limit).await?;
    Ok(rows
        .into_iter()
        .map(|r| OrderListItem {
            id: r.id,
            event_id: r.event_id,
            status: r.status,
            buyer: Buyer {
                email: r.buyer_email,
                name: r.buyer_name,
            },
            total_cents: r.total_cents,
            currency: r.currency,
            paid_cents: r.paid_cents,
            refunded_cents: r.refunded_cents,
            payment_method: r.payment_method,
            created_at: clock::rfc3339(r.created_at),
        })
        .collect())
}

/// An order for the organizer.
pub async fn get_order(app: &App, actor: &Actor, order: OrderId) -> Result<OrderView> {
    let t = actor.require(Permission::OrdersRead)?;
    let row = store::order(app.db(), t, order)
        .await?
        .ok_or(Error::NotFound)?;
    order_view(app, t, row).await
}

/// An order as the platform's own upkeep reads it (the mail it sends about
/// the order): for the upkeep tenant only, never from a request's input.
pub async fn order_for_upkeep(app: &App, t: &Tenant, order: OrderId) -> Result<Option<OrderView>> {
    match store::order(app.db(), t, order).await? {
        Some(row) => Ok(Some(order_view(app, t, row).await?)),
        None => Ok(None),
    }
}

/// The event's paid orders, by id, `limit` after `after`.
pub async fn paid_orders(
    app: &App,
    t: &Tenant,
    event: EventId,
    after: Option<OrderId>,
    limit: i64,
) -> Result<Vec<OrderId>> {
    Ok(store::paid_orders(app.db(), t, event, after, limit).await?)
}

/// A page of the event's orders (by id, after `after`), for an export.
pub async fn orders_page(
    app: &App,
    t: &Tenant,
    event: EventId,
    after: Option<OrderId>,
    limit: i64,
) -> Result<Vec<store::OrderSummary>> {
    Ok(store::orders_page(app.db(), t, event, after, limit).await?)
}

/// What an order that took money adds to the sales report, per ticket type:
/// its fee, the VAT inside it and what was refunded, each order's figures
/// shared out over its lines in proportion (the last line takes the
/// rounding), so the lines add up to the order exactly.
#[derive(Clone, Debug)]
pub struct MoneyShare {
    /// When the order was placed (microseconds).
    pub at: i64,
    pub ticket_type_id: TicketTypeId,
    pub currency: String,
    pub discount_cents: i64,
    pub fee_cents: i64,
    pub tax_cents: i64,
    pub refunds_cents: i64,
}

/// Every money share of the event's orders that took money.
pub async fn money_shares(app: &App, t: &Tenant, event: EventId) -> Result<Vec<MoneyShare>> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store::money_rows(app.db(), t, event, after, 1000).await?;
        let Some(last) = page.last().map(|(id, _)| *id) else {
            return Ok(out);
        };
        for (_, o) in &page {
            let lines: Vec<OrderLine> = o
                .lines
                .as_deref()
                .and_then(|l| serde_json::from_str(l).ok())
                .unwrap_or_default();
            let priced: i64 = lines
                .iter()
                .filter(|l| l.unit_price_cents > 0)
                .map(|l| l.quantity)
                .sum();
            let fee_each = if priced > 0 { o.fee_cents / priced } else { 0 };
            let n = lines.len();
            let (mut fee_left, mut tax_left, mut refund_left) =
                (o.fee_cents, o.tax_cents, o.refunded_cents);
            for (i, l) in lines.iter().enumerate() {
                let fee = if i + 1 == n {
                    fee_left
                } else if l.unit_price_cents > 0 {
                    fee_each * l.quantity
                } else {
                    0
                };
                let weight = l.total_cents + fee;
                let share = |amount: i64| {
                    if o.total_cents > 0 {
                        (amount as i128 * weight as i128 / o.total_cents as i128) as i64
                    } else {
                        0
                    }
                };
                let (tax, refund) = if i + 1 == n {
                    (tax_left, refund_left)
                } else {
                    (share(o.tax_cents), share(o.refunded_cents))
                };
                fee_left -= fee;
                tax_left -= tax;
                refund_left -= refund;
                out.push(MoneyShare {
                    at: o.created_at,
                    ticket_type_id: l.ticket_type_id,
                    currency: o.currency.clone(),
                    discount_cents: l.discount_cents,
                    fee_cents: fee,
                    tax_cents: tax,
                    refunds_cents: refund,
                });
            }
        }
        after = Some(last);
    }
}

/// These orders, by id (at most 1,000 at once).
pub async fn order_summaries(
    app: &App,
    t: &Tenant,
    ids: &[OrderId],
) -> Result<std::collections::HashMap<OrderId, store::OrderSummary>> {
    if ids.len() > 1000 {
        return Err(Error::Api(kernel::ApiError::internal(
            "at most 1,000 orders at once",
        )));
    }
    Ok(store::order_summaries(app.db(), t, ids)
        .await?
        .into_iter()
        .map(|o| (o.id, o))
        .collect())
}

/// An order for its buyer, who proves it with the access token.
pub async fn get_order_for_buyer(
    app: &App,
    t: &Tenant,
    order: OrderId,
    access_token: &str,
) -> Result<OrderView> {
    let row = store::order(app.db(), t, order)
        .await?
        .ok_or(Error::NotFound)?;
    if !opens(app, t, &row, access_token).await? {
        return Err(Error::NotFound);
    }
    let mut view = order_view(app, t, row).await?;
    // Tickets handed on are their new holders', not the buyer's.
    view.tickets.retain(|t| t.holder.is_none());
    Ok(view)
}

/// Whether the token opens the order: its own, or a look-up link's for the
/// buyer's address.
async fn opens(app: &App, t: &Tenant, row: &store::OrderRow, access_token: &str) -> Result<bool> {
    Ok(if access_token.starts_with(super::lookup::PREFIX) {
        super::lookup::email_of(app, t, access_token)
            .await?
            .as_deref()
            == Some(row.buyer_email.as_str())
    } else {
        crate::web::csrf_matches_bytes(
            &auth::sha256(access_token.as_bytes()),
            &row.access_token_hash,
        )
    })
}

/// Whether `access_token` opens the order as its buyer (false for an
/// unknown order too).
pub async fn order_opens_with(
    app: &App,
    t: &Tenant,
    order: OrderId,
    access_token: &str,
) -> Result<bool> {
    match store::order(app.db(), t, order).await? {
        Some(row) => opens(app, t, &row, access_token).await,
        None => Ok(false),
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StoreTicketType {
    pub id: TicketTypeId,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub available: i64,
    pub on_sale: bool,
    pub max_per_order: i64,
    pub min_per_order: i64,
    /// Asked of each ticket's attendee at checkout.
    pub questions: Vec<catalog::Question>,
    /// Shown only because a voucher unlocked it (its waiting list is not
    /// open to the public).
    #[serde(skip)]
    pub hidden: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreEvent {
    pub id: EventId,
    pub name: String,
    pub starts_at: String,
    pub ends_at: String,
    pub timezone: String,
    /// Where the sale stands now (derived, never stored); a series': the
    /// best of its dates'.
    pub sale_state: SaleState,
    /// A series' ticket types show what is left on all its dates together.
    pub ticket_types: Vec<StoreTicketType>,
    /// A series: sold on its dates, never itself.
    pub series: bool,
    /// The series this event is a date of.
    pub series_id: Option<EventId>,
    /// A series' published dates, earliest first (empty for other events):
    /// tickets are held on a date.
    pub dates: Vec<StoreDate>,
}

/// One date of a series on the storefront.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoreDate {
    pub id: EventId,
    pub name: String,
    pub starts_at: String,
    pub ends_at: String,
    pub sale_state: SaleState,
    /// Tickets left on this date, all shown types together.
    pub available: i64,
}

/// A published event's sale as buyers see it now: derived from the clock,
/// the ticket types' sale windows and what is left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SaleState {
    /// No ticket type's sale window has opened yet.
    NotYetOnSale,
    OnSale,
    /// Every type on sale now has nothing left.
    SoldOut,
    /// Every sale window has closed, the event not yet over.
    SalesClosed,
    /// The event is over.
    Ended,
}

impl SaleState {
    pub fn of(
        now: i64,
        ends_at: i64,
        types: &[StoreTicketType],
        windows: &[(Option<i64>, Option<i64>)],
    ) -> SaleState {
        if now >= ends_at {
            return SaleState::Ended;
        }
        if types.iter().any(|t| t.on_sale) {
            return if types.iter().any(|t| t.on_sale && t.available > 0) {
                SaleState::OnSale
            } else {
                SaleState::SoldOut
            };
        }
        if windows.iter().any(|(s, _)| s.is_some_and(|s| now < s)) {
            SaleState::NotYetOnSale
        } else {
            SaleState::SalesClosed
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SaleState::NotYetOnSale => "not_yet_on_sale",
            SaleState::OnSale => "on_sale",
            SaleState::SoldOut => "sold_out",
            SaleState::SalesClosed => "sales_closed",
            SaleState::Ended => "ended",
        }
    }
}

/// The published event as buyers see it, with live availability from the
/// hot or warm tier (no database read once warm).
/// Hidden ticket types show only with a voucher (`unlock`) that names them.
pub async fn store_event(
    app: &App,
    t: &Tenant,
    event: EventId,
    unlock: Option<&str>,
) -> Result<StoreEvent> {
    let catalog = published_catalog(app, t, event).await?;
    let now = app.kernel.now();
    let voucher = match unlock {
        Some(code) => catalog::voucher_by_code(app, t, event, code)
            .await?
            .filter(|v| v.valid_at(now)),
        None => None,
    };
    let shown: Vec<&catalog::TicketTypeView> = catalog
        .event
        .ticket_types
        .iter()
        .filter(|ty| ty.shown_with(voucher.as_deref()))
        .collect();
    let types: Vec<TicketTypeId> = shown.iter().map(|t| t.id).collect();
    let inventory = app.state::<Inventory>();
    let mut left = inventory.remaining(app, t, event, &types).await?;
    // A voucher reserving a type: its holder takes that type from what is
    // left of the reservation.
    if let Some(v) = &voucher
        && let Some(tt) = catalog.reserved_by(v.id)
        && let Some(i) = types.iter().position(|x| *x == tt)
    {
        let uses = inventory.vouchers_left(app, t, event, &[v.id]).await?;
        left[i] = uses.first().copied().unwrap_or(0).max(0);
    }
    let now = app.kernel.now();
    let e = &catalog.event;
    let ticket_types: Vec<StoreTicketType> = shown
        .iter()
        .zip(left)
        .map(|(ty, available)| StoreTicketType {
            id: ty.id,
            name: ty.name.clone(),
            price_cents: ty.price_cents,
            currency: ty.currency.clone(),
            available,
            on_sale: ty.on_sale_at(now),
            max_per_order: ty.max_per_order.unwrap_or(DEFAULT_MAX_PER_ORDER),
            min_per_order: ty.min_per_order.unwrap_or(1),
            questions: ty.questions.clone(),
            hidden: ty.hidden,
        })
        .collect();
    let windows: Vec<(Option<i64>, Option<i64>)> = shown.iter().map(|t| t.sale_window).collect();
    let mut out = StoreEvent {
        id: e.id,
        name: e.name.clone(),
        starts_at: e.starts_at.clone(),
        ends_at: e.ends_at.clone(),
        timezone: e.timezone.clone(),
        sale_state: SaleState::of(now, e.ends_at_micros, &ticket_types, &windows),
        ticket_types,
        series: e.series,
        series_id: e.series_id,
        dates: Vec::new(),
    };
    if e.series {
        Box::pin(series_on_store(app, t, &mut out, unlock)).await?;
    }
    Ok(out)
}

/// A series on the storefront: its published dates, each with what is
/// left, and the series' types with what is left on all dates together.
async fn series_on_store(
    app: &App,
    t: &Tenant,
    out: &mut StoreEvent,
    unlock: Option<&str>,
) -> Result<()> {
    for ty in &mut out.ticket_types {
        ty.available = 0;
        ty.on_sale = false;
    }
    for date in catalog::dates(app, t, out.id)
        .await
        .map_err(kernel::ApiError::from)?
    {
        if date.status != catalog::EventStatus::Published {
            continue;
        }
        let d = Box::pin(store_event(app, t, date.id, unlock)).await?;
        for ty in &d.ticket_types {
            let series_type = date.follows(ty.id);
            if let Some(st) = out
                .ticket_types
                .iter_mut()
                .find(|s| Some(s.id) == series_type)
            {
                st.available += ty.available;
                st.on_sale |= ty.on_sale && ty.available > 0;
            }
        }
        out.dates.push(StoreDate {
            id: d.id,
            name: d.name,
            starts_at: d.starts_at,
            ends_at: d.ends_at,
            sale_state: d.sale_state,
            available: d.ticket_types.iter().map(|t| t.available).sum(),
        });
    }
    let best = [
        SaleState::OnSale,
        SaleState::NotYetOnSale,
        SaleState::SoldOut,
        SaleState::SalesClosed,
        SaleState::Ended,
    ];
    out.sale_state = best
        .into_iter()
        .find(|s| out.dates.iter().any(|d| d.sale_state == *s))
        .unwrap_or(SaleState::NotYetOnSale);
    Ok(())
}

const SWEEP_BATCH: i64 = 500;

/// Releases expired holds (every node, every second): each is released by
/// one conditional update, announced (`hold.expired`) in that transaction,
/// and its quantity given back once.
pub async fn release_expired(app: &App) -> Result<usize> {
    let now = app.kernel.now();
    let db = app.db().clone();
    let n = app
        .state::<Inventory>()
        .release_many(app, || async move {
            let mut tx = db.begin().await?;
            let released = store::release_expired_holds(&mut tx, now, SWEEP_BATCH).await?;
            let mut announce = Vec::with_capacity(released.len());
            for r in &released {
                announce.push(
                    events::Pending::of(
                        &HoldExpired {
                            org_id: r.org,
                            event_id: r.event,
                            hold_id: HoldId(r.id),
                            items: items_of(&r.items),
                        },
                        now,
                    )
                    .map_err(kernel::ApiError::internal)?,
                );
            }
            events::record_many(&mut tx, &announce).await?;
            tx.commit().await?;
            Ok(released)
        })
        .await?;
    Ok(n)
}

/// Expires pending orders past their payment deadline (every node, every
/// second): each gives its hold's quantity back once, announced as
/// `order.expired` in the same transaction.
pub async fn expire_pending_orders(app: &App) -> Result<usize> {
    let now = app.kernel.now();
    let db = app.db().clone();
    let n = app
        .state::<Inventory>()
        .release_many(app, || async move {
            let mut tx = db.begin().await?;
            let expired = store::expire_pending_orders(&mut tx, now, SWEEP_BATCH).await?;
            let mut announce = Vec::with_capacity(expired.len());
            for r in &expired {
                announce.push(
                    events::Pending::of(
                        &OrderExpired {
                            org_id: r.org,
                            event_id: r.event,
                            order_id: OrderId(r.id),
                            items: items_of(&r.items),
                        },
                        now,
                    )
                    .map_err(kernel::ApiError::internal)?,
                );
            }
            events::record_many(&mut tx, &announce).await?;
            tx.commit().await?;
            Ok(expired)
        })
        .await?;
    Ok(n)
}
