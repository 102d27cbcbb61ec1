//! The box office: an event's tickets found by buyer or order, a check-in
//! by hand, and the undo of a mistaken admission. Both changes are audited
//! and kept in the scan log. A check-in goes through the gate's own writer,
//! so it and any device's scan admit a ticket once; an undo reaches every
//! node's gate through `ticket.admission_undone`.

use kernel::{
    Permission, clock,
    ids::{EventId, GateId, OrderId, ScanId, TicketId},
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    TicketAdmissionUndone,
    domain::{Ctx, Direction, ScanOutcome, decide},
    error::{Error, Result},
    gate::{Gates, LogRow, scan_row},
};
use crate::{
    App,
    identity::{Actor, Tenant},
    tickets::{self, TicketView},
};

/// A ticket as the box office finds it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BoxOfficeTicket {
    pub ticket: TicketView,
    pub order_id: OrderId,
    pub buyer_name: String,
    pub buyer_email: String,
    /// Came in and has not gone out.
    pub inside: bool,
    /// Entries so far.
    pub entries: i64,
}

/// Shortest lookup text: one letter would list half the event.
const MIN_QUERY: usize = 2;

/// The event's tickets whose order's buyer's name or e-mail holds `q`, or
/// whose order id is `q`; newest orders first, at most `limit` orders.
pub async fn find(
    app: &App,
    actor: &Actor,
    event: EventId,
    q: &str,
    limit: i64,
) -> Result<Vec<BoxOfficeTicket>> {
    let t = actor.require(Permission::OrdersRead)?;
    find_for(app, t, event, q, limit).await
}

pub(super) async fn find_for(
    app: &App,
    t: &Tenant,
    event: EventId,
    q: &str,
    limit: i64,
) -> Result<Vec<BoxOfficeTicket>> {
    let len = q.chars().count();
    if !(MIN_QUERY..=200).contains(&len) {
        return Err(Error::Invalid(vec![kernel::FieldError::new(
            "q",
            "must be 2 to 200 characters: a name, an e-mail or an order id",
        )]));
    }
    // The length is the contract's (as sent); what is searched is trimmed,
    // and a query that is mostly blank finds nothing rather than everyone.
    let q = q.trim();
    if q.chars().count() < MIN_QUERY {
        return Ok(Vec::new());
    }
    let gate = app.state::<Gates>().gate(app, t, event).await?;
    let orders = crate::sales::find_orders(app, t, event, q, limit)
        .await
        .map_err(kernel::ApiError::from)?;
    let mut out = Vec::new();
    for o in orders {
        for ticket in tickets::for_order(app, t, o.id).await? {
            let (inside, entries) = gate.entry(ticket.id).map_or((false, 0), |e| {
                let p = e.presence();
                (p.inside, p.entries.len() as i64)
            });
            out.push(BoxOfficeTicket {
                ticket,
                order_id: o.id,
                buyer_name: o.buyer.name.clone(),
                buyer_email: o.buyer.email.clone(),
                inside,
                entries,
            });
        }
    }
    Ok(out)
}

/// Whether `actor` may check in by hand and undo admissions (the page
/// offers those only then).
pub fn may_change(actor: &Actor) -> bool {
    box_office(actor).is_ok()
}

/// What a member at the box office may change at the gate: the box office
/// role, an admin or the owner (a scanner account scans only).
fn box_office(actor: &Actor) -> Result<&Tenant> {
    actor.require(Permission::OrdersWrite)?;
    Ok(actor.require(Permission::Scan)?)
}

fn reason_checked(reason: &str) -> Result<String> {
    let r = reason.trim();
    if r.is_empty() || r.chars().count() > 500 {
        return Err(Error::Invalid(vec![kernel::FieldError::new(
            "reason",
            "must be 1 to 500 characters",
        )]));
    }
    Ok(r.to_string())
}

/// Checks a ticket in by hand (its holder has no code to show, say), at
/// `gate` if named: despite a gate's type, rule or window, as a supervisor's
/// override would; never a revoked ticket, nor one admitted already.
pub async fn check_in(
    app: &App,
    actor: &Actor,
    event: EventId,
    ticket: TicketId,
    gate_id: Option<GateId>,
    reason: &str,
) -> Result<ScanOutcome> {
    let t = box_office(actor)?;
    let reason = reason_checked(reason)?;
    let gate = app.state::<Gates>().gate(app, t, event).await?;
    let setup = gate.setup();
    let at = match gate_id {
        Some(id) => Some(setup.gate(id).ok_or_else(|| {
            Error::Invalid(vec![kernel::FieldError::new(
                "gate_id",
                "is not a gate of this event",
            )])
        })?),
        None => None,
    };
    let entry = match gate.entry(ticket) {
        Some(e) => e,
        None => match tickets::by_id(app, t, ticket).await? {
            Some(rec) if rec.event_id == event => gate.insert(rec),
            _ => return Err(Error::NotFound),
        },
    };
    let who = actor.audit("ticket.check_in", "ticket");
    let ctx = Ctx {
        app,
        tenant: t,
        device: None,
        by: (who.actor_kind, who.actor_id),
        event,
        gate: &gate,
        setup: &setup,
        at,
        label: at.map(|g| g.id.to_string()),
        direction: Direction::In,
        now: app.kernel.now(),
        override_reason: Some(reason),
    };
    Box::pin(decide(&ctx, &entry)).await
}

/// An undone admission.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdmissionUndoneView {
    pub ticket_id: TicketId,
    /// The admission undone: the ticket's first.
    pub admitted_at: String,
    pub undone_at: String,
    pub reason: String,
}

/// Undoes a mistaken admission: the ticket is as if never scanned (not
/// inside, no entries), so its holder can come in. The scans stay in the
/// log, with the undo after them; the audit log has who and why.
pub async fn undo_admission(
    app: &App,
    actor: &Actor,
    event: EventId,
    ticket: TicketId,
    reason: &str,
) -> Result<AdmissionUndoneView> {
    let t = box_office(actor)?;
    let reason = reason_checked(reason)?;
    let rec = match tickets::by_id(app, t, ticket).await? {
        Some(rec) if rec.event_id == event => rec,
        _ => return Err(Error::NotFound),
    };
    let Some(admitted_at) = rec.admitted_at else {
        return Err(Error::Api(kernel::ApiError::Conflict(
            "the ticket has not been admitted".into(),
        )));
    };
    let now = app.kernel.now();
    let log = LogRow {
        id: ScanId::new(),
        direction: "in",
        result: "undone",
        reason: format!("admission undone: {reason}"),
        explanation: None,
        override_reason: None,
        at: now,
    };
    let row = scan_row(
        t.org(),
        event,
        None,
        None,
        Some(ticket),
        &log,
        log.result,
        &log.reason,
    );
    let undone = TicketAdmissionUndone {
        org_id: t.org(),
        event_id: event,
        ticket_id: ticket,
        admitted_at: clock::rfc3339(admitted_at),
        undone_at: clock::rfc3339(now),
    };
    let audit = actor
        .audit("ticket.undo_admission", "ticket")
        .object(ticket)
        .before(serde_json::json!({"admitted_at": clock::rfc3339(admitted_at)}))
        .after(serde_json::json!({"admitted_at": null, "reason": reason}))
        .stmt(now);
    let stmts = vec![
        kernel::Stmt::insert_rows(super::gate::SCANS_HEAD, vec![row]),
        kernel::events::Pending::of(&undone, now)
            .map_err(kernel::ApiError::internal)?
            .stmt(),
        audit,
    ];
    if !app
        .db()
        .write_if_taken(tickets::clear_admission(t, ticket, admitted_at), stmts)
        .await?
    {
        return Err(Error::Api(kernel::ApiError::Conflict(
            "the ticket's admission changed meanwhile: look it up again".into(),
        )));
    }
    Ok(AdmissionUndoneView {
        ticket_id: ticket,
        admitted_at: undone.admitted_at,
        undone_at: undone.undone_at,
        reason,
    })
}
