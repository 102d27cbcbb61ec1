//! Handing a ticket on: its holder (the buyer, with the order's key; or
//! whoever it was handed to, with the ticket's own key) gives it to someone
//! else by e-mail. In one transaction the old ticket is revoked — its code
//! stops admitting at once — and a new one with a new code is issued to
//! the new holder under the same order (same seat, same answers but the
//! attendee's name); the mail slice sends it. The event's policy may forbid
//! transfers or close them at a deadline (by default at the start).

use kernel::{
    ApiError, ApiResult, DomainEvent, auth,
    error::Checks,
    events::emit,
    ids::{EventId, OrderId, OrgId, TicketId},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{TicketHolder, TicketRecord, TicketStatus, TicketView, code, org_keys, store};
use crate::{App, identity::Tenant};

/// A ticket was handed on: `from_ticket` revoked, `ticket_id` issued to
/// `email`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TicketTransferred {
    pub org_id: OrgId,
    pub event_id: EventId,
    pub order_id: OrderId,
    pub from_ticket: TicketId,
    pub ticket_id: TicketId,
    pub email: String,
    pub name: String,
}

impl DomainEvent for TicketTransferred {
    const NAME: &'static str = "ticket.transferred";
    fn org(&self) -> OrgId {
        self.org_id
    }
    fn event(&self) -> Option<EventId> {
        Some(self.event_id)
    }
}

/// Whom a ticket goes to.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferTo {
    #[schema(schema_with = kernel::http::schema::email)]
    pub email: String,
    /// Not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
}

/// Keys to a handed-on ticket's page start so.
pub const HOLDER_PREFIX: &str = "tk.";

/// Whether `token` opens the ticket: the ticket's own key when it was
/// handed to its holder, else its order's key (the buyer's).
async fn opens(app: &App, t: &Tenant, rec: &TicketRecord, token: &str) -> ApiResult<bool> {
    if rec.holder_email.is_some() {
        let Some(hash) = store::holder_token_hash(app.db(), t, rec.id).await? else {
            return Ok(false);
        };
        return Ok(crate::web::csrf_matches_bytes(
            &auth::sha256(token.as_bytes()),
            &hash,
        ));
    }
    Ok(crate::sales::order_opens_with(app, t, rec.order_id, token).await?)
}

/// The ticket for its holder (who proves it with the key mailed to them).
pub async fn for_holder(
    app: &App,
    t: &Tenant,
    ticket: TicketId,
    token: &str,
) -> ApiResult<TicketView> {
    let rec = store::by_id(app.db(), t, ticket)
        .await?
        .filter(|r| r.holder_email.is_some())
        .ok_or(ApiError::NotFound)?;
    if !opens(app, t, &rec, token).await? {
        return Err(ApiError::NotFound);
    }
    // With the order's tickets: a ticket handed on again says to whom.
    let order = store::for_order(app.db(), t, rec.order_id).await?;
    super::views(app, t, order)
        .await?
        .into_iter()
        .find(|v| v.id == ticket)
        .ok_or(ApiError::NotFound)
}

/// A new key to a handed-on ticket's page, for the mail that sends it (the
/// newest mail's link is the one that works).
pub async fn mint_holder_token(app: &App, t: &Tenant, ticket: TicketId) -> ApiResult<String> {
    let token = auth::PlainToken::generate(HOLDER_PREFIX);
    app.db()
        .write_grouped(vec![store::set_holder_token(t, ticket, &token.hash().0)])
        .await?;
    Ok(token.expose().to_string())
}

/// Hands the ticket on to `to`, proven by `token`: the old ticket as it is
/// now (revoked, handed on). 404 when the token does not open it; 409 when
/// the event does not allow it (any more), or the ticket was used at the
/// gate, revoked or handed on already — also when that happened a moment
/// before, on any node.
pub async fn transfer(
    app: &App,
    t: &Tenant,
    ticket: TicketId,
    token: &str,
    to: TransferTo,
) -> ApiResult<TicketView> {
    let old = store::by_id(app.db(), t, ticket)
        .await?
        .ok_or(ApiError::NotFound)?;
    if !opens(app, t, &old, token).await? {
        return Err(ApiError::NotFound);
    }
    let mut c = Checks::default();
    let email = c.take("to.email", kernel::parse::email(&to.email));
    let name = c.take("to.name", kernel::parse::name(&to.name, 200));
    c.finish()?;
    let (Some(email), Some(name)) = (email, name) else {
        return Err(ApiError::validation(Vec::new()));
    };
    let catalog = crate::events::catalog(app, t, old.event_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let now = app.kernel.now();
    if !catalog.event.transfers.allowed {
        return Err(ApiError::Conflict(
            "the organizer does not allow tickets of this event to be handed on".into(),
        ));
    }
    if !catalog.event.transfers_open_at(now) {
        return Err(ApiError::Conflict(
            "tickets of this event can no longer be handed on".into(),
        ));
    }
    let gone = || {
        ApiError::Conflict("this ticket was used at the gate, revoked or handed on already".into())
    };
    if old.status != TicketStatus::Valid || old.admitted_at.is_some() {
        return Err(gone());
    }
    // The new holder's ticket: a new code; the seat, and the answers but
    // the attendee's name, which is now theirs.
    let questions = catalog
        .ticket_type(old.ticket_type_id)
        .map(|t| t.questions.clone())
        .unwrap_or_default();
    let mut answers: std::collections::BTreeMap<String, String> = old
        .answers
        .as_deref()
        .and_then(|a| serde_json::from_str(a).ok())
        .unwrap_or_default();
    for q in questions
        .iter()
        .filter(|q| q.kind == crate::events::QuestionKind::Name)
    {
        answers.insert(q.id.clone(), name.clone());
    }
    let keys = org_keys(app, t).await?;
    let id = TicketId::new();
    let new = TicketRecord {
        id,
        event_id: old.event_id,
        ticket_type_id: old.ticket_type_id,
        code: code::sign_compact(
            &keys.signing.0,
            &keys.signing.1,
            id,
            old.event_id,
            old.ticket_type_id,
            super::validity(old.ticket_type_id),
        ),
        status: TicketStatus::Valid,
        admitted_at: None,
        seat_id: old.seat_id.clone(),
        answers: (!answers.is_empty())
            .then(|| serde_json::to_string(&answers).ok())
            .flatten(),
        order_id: old.order_id,
        holder_email: Some(email.clone()),
        holder_name: Some(name.clone()),
        replaces: Some(old.id),
        transferred_at: None,
    };
    let mut tx = app.db().begin().await?;
    // The order first (as refunds and cancellations take it): still paid,
    // and no refund or cancellation between here and the commit.
    if crate::sales::order_still_paid(t, old.order_id)
        .execute_in(&mut tx)
        .await?
        != 1
    {
        return Err(ApiError::Conflict(
            "the order was refunded or cancelled: its tickets are not handed on".into(),
        ));
    }
    if store::hand_on(t, old.id, now).execute_in(&mut tx).await? != 1 {
        return Err(gone());
    }
    store::insert_ticket(t, old.order_id, &new, now)
        .execute_in(&mut tx)
        .await?;
    super::announce_replaced(&mut tx, t, &old, &new, now).await?;
    emit(
        &TicketTransferred {
            org_id: t.org(),
            event_id: old.event_id,
            order_id: old.order_id,
            from_ticket: old.id,
            ticket_id: id,
            email: email.clone(),
            name: name.clone(),
        },
        now,
    )?
    .execute_in(&mut tx)
    .await?;
    tx.commit().await?;
    metrics::counter!("voelgoed_tickets_transferred_total").increment(1);
    let mut view = TicketView::from(TicketRecord {
        status: TicketStatus::Revoked,
        transferred_at: Some(now),
        ..old
    });
    view.transferred_to = Some(TicketHolder { email, name });
    Ok(view)
}
