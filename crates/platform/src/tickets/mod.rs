//! Tickets: issued tickets, their signed codes, QR rendering, and the
//! org's signing keys.
//!
//! Owns: `tickets`, `org_signing_keys`.
//! Emits: `ticket.issued`, `ticket.revoked` (inside the order's transaction),
//! `ticket.transferred` (a ticket handed on: the old one revoked, a new one
//! issued to its new holder, in one transaction).
//! Consumes: `org.created` (makes the org's first signing key).
//! Invariants: a ticket's `code` is `VG1.<kid>.<payload>.<signature>`, an
//! Ed25519 signature by its org's key over the ticket and event ids, so a
//! device verifies it offline with the org's public key; a ticket is
//! admitted at most once (`admitted_at` is set once, never overwritten); an
//! org has at most one active signing key.

mod api;
mod code;
mod keys;
mod store;
mod transfer;
mod views;

use std::{sync::Arc, time::Duration};

pub use code::{EventRef, ParsedCode, Window, parse_code, qr_svg, sign_compact};
use kernel::{
    ApiError, ApiResult, DomainEvent, Envelope, Kernel, Slice, Stmt, Tx, clock,
    events::{Pending, TxFuture},
    ids::{DeviceId, EventId, OrderId, OrgId, TicketId, TicketTypeId},
};
pub use keys::{
    KEYS_TOPIC, KeyView, list as list_keys, reissue as reissue_ticket, rotate as rotate_key,
};
use serde::{Deserialize, Serialize};
pub use store::{
    AdmissionWrite, Admit, ExportRow, TicketRecord, mark_admitted_batch, mark_exited_batch,
};
pub use transfer::{TicketTransferred, TransferTo, for_holder, mint_holder_token, transfer};
use utoipa::ToSchema;

use crate::{
    App,
    identity::{OrgCreated, Tenant},
};

/// Whether a ticket still admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    Valid,
    Revoked,
}

impl TicketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Valid => "valid",
            TicketStatus::Revoked => "revoked",
        }
    }
}

impl TryFrom<String> for TicketStatus {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "valid" => Ok(TicketStatus::Valid),
            "revoked" => Ok(TicketStatus::Revoked),
            other => Err(format!("unknown ticket status {other:?}")),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TicketView {
    pub id: TicketId,
    pub event_id: EventId,
    pub ticket_type_id: TicketTypeId,
    /// The exact text of the ticket's QR code.
    pub code: String,
    pub status: TicketStatus,
    pub admitted_at: Option<String>,
    /// The ticket's seat (seated events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seat: Option<TicketSeat>,
    /// The attendee's answers to its ticket type's questions (question id
    /// → answer), when any were given.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub answers: std::collections::BTreeMap<String, String>,
    /// Whom it was handed on to (a ticket issued by a transfer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<TicketHolder>,
    /// The ticket it replaced (a transfer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<TicketId>,
    /// Handed on (then `revoked`): when, and to whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transferred_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transferred_to: Option<TicketHolder>,
}

/// Someone a ticket was handed on to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TicketHolder {
    pub email: String,
    pub name: String,
}

/// Where a seated ticket sits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TicketSeat {
    pub id: String,
    pub section: String,
    pub row: String,
    pub label: String,
}

impl From<TicketRecord> for TicketView {
    fn from(r: TicketRecord) -> Self {
        TicketView {
            id: r.id,
            event_id: r.event_id,
            ticket_type_id: r.ticket_type_id,
            code: r.code,
            status: r.status,
            admitted_at: r.admitted_at.map(clock::rfc3339),
            // Labels are filled in from the seat map ([`for_order`]).
            seat: r.seat_id.map(|id| TicketSeat {
                id,
                section: String::new(),
                row: String::new(),
                label: String::new(),
            }),
            answers: r
                .answers
                .as_deref()
                .and_then(|a| serde_json::from_str(a).ok())
                .unwrap_or_default(),
            holder: match (r.holder_email, r.holder_name) {
                (Some(email), Some(name)) => Some(TicketHolder { email, name }),
                _ => None,
            },
            replaces: r.replaces,
            transferred_at: r.transferred_at.map(clock::rfc3339),
            // Filled in from the ticket that replaced it ([`views`]).
            transferred_to: None,
        }
    }
}

/// A ticket was issued to a paid order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TicketIssued {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub order_id: OrderId,
    pub ticket_id: TicketId,
    pub ticket_type_id: TicketTypeId,
}

impl DomainEvent for TicketIssued {
    const NAME: &'static str = "ticket.issued";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

/// A ticket no longer admits: its order was refunded in full or cancelled.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TicketRevoked {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub order_id: OrderId,
    pub ticket_id: TicketId,
}

impl DomainEvent for TicketRevoked {
    const NAME: &'static str = "ticket.revoked";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

pub fn slice(kernel: &Kernel) -> Slice<App> {
    let hot = Hot::new();
    keys::follow_key_changes(kernel, &hot);
    Slice::new("tickets")
        .routes(api::routes())
        .pages(views::routes())
        .state(hot)
        .consumes::<OrgCreated, _>("tickets.signing_key", provision_on_org_created)
}

/// An org's keys: the active one signs, all of them verify.
pub struct OrgKeys {
    pub signing: (String, kernel::auth::SigningKey),
    pub verifying: Vec<(String, kernel::auth::VerifyingKey)>,
}

pub struct Hot {
    keys: moka::future::Cache<OrgId, Arc<OrgKeys>>,
}

impl Hot {
    pub fn new() -> Hot {
        Hot {
            keys: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
        }
    }
}

impl Default for Hot {
    fn default() -> Self {
        Self::new()
    }
}

/// A new org gets its first signing key, in the relay's transaction.
fn provision_on_org_created<'a>(
    app: &'a App,
    tx: &'a mut Tx,
    created: Vec<Envelope<OrgCreated>>,
) -> TxFuture<'a> {
    Box::pin(async move {
        for e in created {
            store::ensure_signing_key(tx, &app.kernel.master, e.data().org_id, app.kernel.now())
                .await?;
        }
        Ok(())
    })
}

/// The org's signing and verifying keys, from the hot tier when warm. An org
/// whose `org.created` is not relayed yet gets its key made here (the same
/// idempotent step).
pub async fn org_keys(app: &App, t: &Tenant) -> ApiResult<Arc<OrgKeys>> {
    if let Some(keys) = app.state::<Hot>().keys.get(&t.org()).await {
        return Ok(keys);
    }
    Box::pin(load_keys(app, t)).await
}

async fn load_keys(app: &App, t: &Tenant) -> ApiResult<Arc<OrgKeys>> {
    let db = app.db().clone();
    let master = app.kernel.master.clone();
    let (org, now) = (t.org(), app.kernel.now());
    app.state::<Hot>()
        .keys
        .try_get_with(org, async move {
            if let Some(keys) = store::org_keys(&db, &master, org).await? {
                return Ok(Arc::new(keys));
            }
            let mut tx = db.begin().await?;
            store::ensure_signing_key(&mut tx, &master, org, now).await?;
            tx.commit().await?;
            store::org_keys(&db, &master, org)
                .await?
                .map(Arc::new)
                .ok_or_else(|| sqlx::Error::Protocol("the org has no signing key".into()))
        })
        .await
        .map_err(|e| ApiError::from_db(&e))
}

/// A ticket replaced by another (handed on, re-issued): `old` revoked and
/// `new` issued, announced in the replacing transaction.
async fn announce_replaced(
    tx: &mut Tx,
    t: &Tenant,
    old: &TicketRecord,
    new: &TicketRecord,
    now: i64,
) -> ApiResult<()> {
    let (org, event, order) = (t.org(), old.event_id, old.order_id);
    kernel::events::emit(
        &TicketRevoked {
            org_id: org,
            event_id: event,
            order_id: order,
            ticket_id: old.id,
        },
        now,
    )?
    .execute_in(tx)
    .await?;
    kernel::events::emit(
        &TicketIssued {
            org_id: org,
            event_id: event,
            order_id: order,
            ticket_id: new.id,
            ticket_type_id: new.ticket_type_id,
        },
        now,
    )?
    .execute_in(tx)
    .await?;
    Ok(())
}

/// The validity window a ticket of `tt` carries in its code: the ticket
/// type's own, when it has one (none yet: ticket types have no validity
/// of their own, so codes carry an open window and the event's end is
/// checked from the event itself).
pub fn validity(_tt: TicketTypeId) -> Window {
    Window::default()
}

/// Tickets minted for a paid order: their records and the statements that
/// store them and announce `ticket.issued`, for the order's transaction.
pub struct Issue {
    pub tickets: Vec<TicketRecord>,
    pub writes: Vec<Stmt>,
    pub events: Vec<Pending>,
}

/// Mints `quantity` signed tickets per item of a paid order (no writes yet).
#[allow(clippy::too_many_arguments)]
pub async fn issue(
    app: &App,
    t: &Tenant,
    order: OrderId,
    event: EventId,
    items: &[(TicketTypeId, i64)],
    seats: &[(TicketTypeId, String)],
    attendees: &[crate::sales::attendees::Attendee],
    now: i64,
) -> ApiResult<Issue> {
    let keys = org_keys(app, t).await?;
    let mut tickets = Vec::new();
    let mut writes = Vec::new();
    let mut events = Vec::new();
    for (tt, q) in items {
        // The type's seats, one per ticket, in order.
        let mut its_seats = seats.iter().filter(|(st, _)| st == tt).map(|(_, s)| s);
        // And its attendees' answers, likewise.
        let mut its_answers = attendees
            .iter()
            .filter(|a| a.ticket_type_id == *tt)
            .map(|a| &a.answers);
        for _ in 0..*q {
            let id = TicketId::new();
            let rec = TicketRecord {
                id,
                event_id: event,
                ticket_type_id: *tt,
                code: code::sign_compact(
                    &keys.signing.0,
                    &keys.signing.1,
                    id,
                    event,
                    *tt,
                    validity(*tt),
                ),
                status: TicketStatus::Valid,
                admitted_at: None,
                seat_id: its_seats.next().cloned(),
                answers: its_answers
                    .next()
                    .filter(|a| !a.is_empty())
                    .and_then(|a| serde_json::to_string(a).ok()),
                order_id: order,
                holder_email: None,
                holder_name: None,
                replaces: None,
                transferred_at: None,
            };
            writes.push(store::insert_ticket(t, order, &rec, now));
            events.push(
                Pending::of(
                    &TicketIssued {
                        org_id: t.org(),
                        event_id: event,
                        order_id: order,
                        ticket_id: id,
                        ticket_type_id: *tt,
                    },
                    now,
                )
                .map_err(ApiError::internal)?,
            );
            tickets.push(rec);
        }
    }
    Ok(Issue {
        tickets,
        writes,
        events,
    })
}

/// Revoking an order's valid tickets: the statement that revokes them and
/// their `ticket.revoked` events, for the order's transaction. Gates learn
/// of it from the events; the database refuses to admit a revoked ticket
/// whatever a gate still believes.
pub struct Revoke {
    pub writes: Vec<Stmt>,
    pub events: Vec<Pending>,
}

pub async fn revoke_order(app: &App, t: &Tenant, order: OrderId, now: i64) -> ApiResult<Revoke> {
    let valid: Vec<TicketRecord> = store::for_order(app.db(), t, order)
        .await?
        .into_iter()
        .filter(|r| r.status == TicketStatus::Valid)
        .collect();
    let mut events = Vec::with_capacity(valid.len());
    for r in &valid {
        events.push(
            Pending::of(
                &TicketRevoked {
                    org_id: t.org(),
                    event_id: r.event_id,
                    order_id: order,
                    ticket_id: r.id,
                },
                now,
            )
            .map_err(ApiError::internal)?,
        );
    }
    Ok(Revoke {
        writes: vec![store::revoke_order(t, order)],
        events,
    })
}

pub async fn for_order(app: &App, t: &Tenant, order: OrderId) -> ApiResult<Vec<TicketView>> {
    views(app, t, store::for_order(app.db(), t, order).await?).await
}

/// Tickets as replies show them, seated ones with their seat's place.
pub async fn views(
    app: &App,
    t: &Tenant,
    records: Vec<TicketRecord>,
) -> ApiResult<Vec<TicketView>> {
    let mut views: Vec<TicketView> = records.into_iter().map(Into::into).collect();
    // Handed on: to whom (the ticket that replaced it is in the same order).
    let handed: Vec<(TicketId, TicketHolder)> = views
        .iter()
        .filter_map(|v| Some((v.replaces?, v.holder.clone()?)))
        .collect();
    for (old, to) in handed {
        if let Some(v) = views.iter_mut().find(|v| v.id == old) {
            v.transferred_to = Some(to);
        }
    }
    // Seated tickets: their seat's place, from the event's map.
    if let Some(event) = views.iter().find(|v| v.seat.is_some()).map(|v| v.event_id)
        && let Some(map) = crate::events::seating(app, t, event).await?
    {
        for v in &mut views {
            if let Some(seat) = &mut v.seat
                && let Some(s) = map.seat(&seat.id)
            {
                seat.section = s.section.clone();
                seat.row = s.row.clone();
                seat.label = s.label.clone();
            }
        }
    }
    Ok(views)
}

/// Every ticket of an event (to load a gate's hot tier).
pub async fn for_event(app: &App, t: &Tenant, event: EventId) -> ApiResult<Vec<TicketRecord>> {
    Ok(store::for_event(app.db(), t, event).await?)
}

/// A page of the event's tickets for an export (by id, after `after`).
pub async fn export_page(
    app: &App,
    t: &Tenant,
    event: EventId,
    after: Option<TicketId>,
    admitted_only: bool,
    limit: i64,
) -> ApiResult<Vec<ExportRow>> {
    Ok(store::export_page(app.db(), t, event, after, admitted_only, limit).await?)
}

/// Tickets issued per (ticket type, slot of `bucket` microseconds since the
/// epoch), for the sales report.
pub async fn issued_by_type(
    app: &App,
    t: &Tenant,
    event: EventId,
    bucket: i64,
) -> ApiResult<Vec<(TicketTypeId, i64, i64)>> {
    Ok(store::issued_by_type(app.db(), t, event, bucket).await?)
}

/// One ticket by id.
pub async fn by_id(app: &App, t: &Tenant, id: TicketId) -> ApiResult<Option<TicketRecord>> {
    Ok(store::by_id(app.db(), t, id).await?)
}

/// What an admission writes: the ticket, when and where, and whether it
/// enters once ever (`single`) or whenever it is not inside (`in_out`).
pub fn admission(
    t: &Tenant,
    ticket: TicketId,
    at: i64,
    device: Option<DeviceId>,
    gate: Option<String>,
    gate_id: Option<kernel::ids::GateId>,
    single: bool,
) -> AdmissionWrite {
    AdmissionWrite {
        org: t.org(),
        ticket,
        at,
        device,
        gate,
        gate_id,
        single,
    }
}

/// Clears a ticket's admission (a mistaken one, undone at the box office)
/// if it is still the one admitted at `admitted_at`: a statement returning
/// the ticket's id when it did.
pub fn clear_admission(t: &Tenant, ticket: TicketId, admitted_at: i64) -> kernel::Stmt {
    store::clear_admission(t, ticket, admitted_at)
}

/// Who is inside the event now, and through which gate.
pub async fn presence_for_event(
    app: &App,
    t: &Tenant,
    event: EventId,
) -> ApiResult<Vec<(TicketId, Option<kernel::ids::GateId>)>> {
    Ok(store::presence_for_event(app.db(), t, event).await?)
}
