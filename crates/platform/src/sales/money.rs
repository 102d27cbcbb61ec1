//! Money: an order's payment (by card through the provider, or by EFT with
//! a reference), the provider's webhooks, refunds and cancellation.
//!
//! Every change is one transaction guarded by a conditional update, so a
//! replayed provider event, a retried request or two finance people at once
//! change nothing twice: a payment is applied while it is waiting and never
//! again; a refund takes its amount off what is left in one step, so refunds
//! never add up to more than was paid.

use axum::http::StatusCode;
use kernel::{
    ApiError, Permission,
    clock::{self, MICROS_PER_SEC},
    events::Pending,
    idempotency::{Claim, Fingerprint, Key},
    ids::{OrderId, PaymentId, RefundId},
    jobs::{self, Job, JobError, NewJob, Queue},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    Inventory, OrderCancelled, OrderPaid, OrderRefunded,
    domain::{OrderStatus, OrderView, PaymentMethod, Reply},
    error::{Error, Result},
    inventory::Reserve,
    money_store::{self as ms, NewPayment, NewRefund, PaymentRow, RefundRow},
    store,
    stripe::{self, ProviderError, Stripe},
};
use crate::{
    App,
    identity::{self, Actor, Tenant},
    tickets,
};

pub const STRIPE: &str = "stripe";
pub const MANUAL: &str = "manual";

/// Refunds at the provider go through this queue (retried until they land).
pub const QUEUE: Queue = Queue::new("payments", 2);

/// Sends one refund to the provider.
#[derive(Serialize, Deserialize)]
pub struct SendRefund {
    pub org: kernel::ids::OrgId,
    pub refund: RefundId,
}

impl Job for SendRefund {
    const KIND: &'static str = "payments.refund";
    const QUEUE: &'static str = QUEUE.name;
    const MAX_ATTEMPTS: i64 = 25;
}

/// The provider adapter and its secrets (one per node).
pub struct Payments {
    pub stripe: Option<Stripe>,
    webhook_secret: Option<String>,
    pub publishable_key: Option<String>,
}

impl Payments {
    pub fn new(kernel: &kernel::Kernel) -> Payments {
        Payments {
            stripe: Stripe::from_config(&kernel.config),
            webhook_secret: kernel.config.stripe_webhook_secret.clone(),
            publishable_key: kernel.config.stripe_publishable_key.clone(),
        }
    }
}

/// An order's payment.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    pub id: PaymentId,
    /// `stripe` (card) or `manual` (EFT).
    pub provider: String,
    /// `requires_payment`, `succeeded` or `cancelled`.
    pub status: String,
    pub amount_cents: i64,
    pub currency: String,
    /// Card: what the buyer's page confirms the payment with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Card: the provider's publishable key, for the buyer's page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publishable_key: Option<String>,
    /// EFT: the reference the buyer puts on the transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Why the last attempt failed (a declined card), while still waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// While waiting: the order expires, and gives its tickets back, unless
    /// paid by then.
    pub expires_at: Option<String>,
}

/// A refund of (part of) an order's payment.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RefundView {
    pub id: RefundId,
    pub order_id: OrderId,
    pub amount_cents: i64,
    pub currency: String,
    /// `pending` (on its way through the provider), `succeeded` or `failed`.
    pub status: String,
    pub reason: String,
    /// `stripe` or `manual`.
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub created_at: String,
}

impl From<RefundRow> for RefundView {
    fn from(r: RefundRow) -> RefundView {
        RefundView {
            id: r.id,
            order_id: r.order_id,
            amount_cents: r.amount_cents,
            currency: r.currency,
            status: r.status,
            reason: r.reason,
            provider: r.provider,
            failure: r.failure,
            created_at: clock::rfc3339(r.created_at),
        }
    }
}

fn payment_view(app: &App, p: PaymentRow, expires_at: Option<i64>) -> PaymentView {
    let waiting = p.status == "requires_payment";
    PaymentView {
        id: p.id,
        publishable_key: (waiting && p.provider == STRIPE)
            .then(|| app.state::<Payments>().publishable_key.clone())
            .flatten(),
        provider: p.provider,
        status: p.status,
        amount_cents: p.amount_cents,
        currency: p.currency,
        client_secret: if waiting { p.client_secret } else { None },
        reference: p.reference,
        failure: if waiting { p.failure } else { None },
        expires_at: if waiting {
            expires_at.map(clock::rfc3339)
        } else {
            None
        },
    }
}

/// The order's payment and refunds, for its view.
pub(super) async fn for_order(
    app: &App,
    t: &Tenant,
    order: OrderId,
    expires_at: Option<i64>,
) -> Result<(Option<PaymentView>, Vec<RefundView>)> {
    let payment = ms::payment(app.db(), t, order)
        .await?
        .map(|p| payment_view(app, p, expires_at));
    let refunds = ms::refunds_of(app.db(), t, order)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok((payment, refunds))
}

/// A payment begun for a new order: its view, and the statement that stores
/// it in the order's transaction.
pub(super) struct Prepared {
    pub view: PaymentView,
    pub insert: kernel::Stmt,
}

fn provider_error(e: ProviderError) -> Error {
    match e {
        ProviderError::Unavailable(why) => {
            tracing::warn!(error = %why, "the payment provider did not answer");
            Error::Api(ApiError::ProviderUnavailable {
                retry_after_secs: 2,
            })
        }
        ProviderError::Refused(why) => Error::field(
            "payment_method",
            &format!("the card provider refused the payment: {why}"),
        ),
    }
}

/// An EFT reference: `VG-` and ten characters of Crockford's base32 (no
/// I, L, O, U), easy to read out and type into a banking app.
fn eft_reference() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let n = u64::from_le_bytes(kernel::auth::random_bytes::<8>());
    let s: String = (0..10)
        .map(|i| ALPHABET[((n >> (i * 5)) & 31) as usize] as char)
        .collect();
    format!("VG-{}-{}", &s[..5], &s[5..])
}

/// Begins the payment of a new order. Card: the provider makes a payment
/// intent under a key derived from the order, so a checkout retried after
/// the provider timed out gets the same intent. EFT: a reference.
#[allow(clippy::too_many_arguments)]
pub(super) async fn prepare(
    app: &App,
    t: &Tenant,
    order: OrderId,
    amount: i64,
    currency: &str,
    method: PaymentMethod,
    expires_at: i64,
    now: i64,
) -> Result<Prepared> {
    let id = PaymentId::new();
    let (provider, provider_ref, client_secret, reference) = match method {
        PaymentMethod::Card => {
            let payments = app.state::<Payments>();
            let Some(stripe) = payments.stripe.as_ref() else {
                return Err(Error::field(
                    "payment_method",
                    "card payments are not configured; choose eft",
                ));
            };
            let intent = stripe
                .create_intent(
                    amount,
                    currency,
                    &order.to_string(),
                    t.slug(),
                    &format!("voelgoed-order-{order}"),
                )
                .await
                .map_err(provider_error)?;
            if intent.amount != amount || !intent.currency.eq_ignore_ascii_case(currency) {
                return Err(Error::Api(ApiError::internal(
                    "the provider's intent is for another amount",
                )));
            }
            (STRIPE, Some(intent.id), intent.client_secret, None)
        }
        PaymentMethod::Eft => (MANUAL, None, None, Some(eft_reference())),
    };
    let row = PaymentRow {
        id,
        order_id: order,
        provider: provider.into(),
        status: "requires_payment".into(),
        amount_cents: amount,
        currency: currency.into(),
        provider_ref: provider_ref.clone(),
        client_secret: client_secret.clone(),
        reference: reference.clone(),
        failure: None,
    };
    let view = payment_view(app, row, Some(expires_at));
    let insert = ms::insert_payment(
        t,
        NewPayment {
            id,
            order,
            provider,
            amount_cents: amount,
            currency,
            provider_ref,
            client_secret,
            reference,
            now,
        },
    );
    Ok(Prepared { view, insert })
}

/// What applying a payment did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// The order is paid now, its tickets issued.
    Paid,
    /// An expired order, revived: its tickets were still there.
    Revived,
    /// Applied before (a replayed event, a second mark-paid): nothing changed.
    Already,
    /// The order could not take it (expired and sold out, or cancelled):
    /// the money goes back automatically.
    Refunding,
    /// Not applied: the order expired and its tickets are gone (mark-paid
    /// answers this; a card payment is refunded instead).
    SoldOut,
}

/// Applies a payment that arrived for the order. `refund_if_stuck`: a card
/// payment for an order that cannot take it is refunded automatically; a
/// manual one is refused (nobody has to send money back for a mark-paid
/// that did not happen).
async fn apply_payment(
    app: &App,
    t: &Tenant,
    order: OrderId,
    refund_if_stuck: bool,
    audit: Option<kernel::audit::Entry>,
) -> Result<Applied> {
    for _ in 0..5 {
        let now = app.kernel.now();
        let row = store::order(app.db(), t, order)
            .await?
            .ok_or(Error::NotFound)?;
        let Some(store::HoldForCheckout {
            event,
            items,
            voucher,
            ..
        }) = store::hold_for_checkout(app.db(), t, row.hold_id).await?
        else {
            return Err(Error::NotFound);
        };
        let revive = match row.status {
            OrderStatus::Pending => false,
            OrderStatus::Expired => true,
            OrderStatus::Cancelled => {
                return if refund_if_stuck {
                    refund_stuck(app, t, order, now).await
                } else {
                    Err(Error::Api(ApiError::Conflict(
                        "the order was cancelled".into(),
                    )))
                };
            }
            OrderStatus::Paid | OrderStatus::PartiallyRefunded | OrderStatus::Refunded => {
                return Ok(Applied::Already);
            }
        };
        let inventory = app.state::<Inventory>();
        // A revived order takes its quantities again: from the counters
        // (its write guarded by their epoch), or from the ledger inside the
        // transaction below when Redis is away.
        let (mut epoch, mut in_ledger) = (None, false);
        // What it took (given back exactly if it is not revived), and the
        // voucher whose reservation it took from (which must still stand).
        let (mut taken, mut reserved) = (Vec::new(), None);
        if revive {
            let (got, counters, reserving) = inventory
                .reserve_counted(app, t, event, &items, voucher)
                .await?;
            taken = counters;
            reserved = reserving.zip(voucher.map(|(v, _)| v));
            match got {
                Reserve::SoldOut(_) | Reserve::VoucherSpent => {
                    return if refund_if_stuck {
                        refund_stuck(app, t, order, now).await
                    } else {
                        Ok(Applied::SoldOut)
                    };
                }
                Reserve::Taken(e) => epoch = e,
                Reserve::Unavailable => in_ledger = true,
            }
        }
        let give_back = |ok: bool| {
            let taken = taken.clone();
            async move {
                if revive && !ok && !in_ledger {
                    app.state::<Inventory>()
                        .give_back(t.org(), event, epoch, &taken)
                        .await?;
                }
                Ok::<_, Error>(())
            }
        };
        // A seated order that expired gave its seats up: it is not revived
        // (its seats may be someone else's now).
        let seats = super::domain::held_seats(app, t, event, row.hold_id).await?;
        if revive && catalog_seated(app, t, event).await? {
            give_back(false).await?;
            return if refund_if_stuck {
                refund_stuck(app, t, order, now).await
            } else {
                Ok(Applied::SoldOut)
            };
        }
        let attendees = super::attendees::stored(
            super::store::order_attendees(app.db(), t, order)
                .await?
                .as_deref(),
        );
        let issued =
            match tickets::issue(app, t, order, event, &items, &seats, &attendees, now).await {
                Ok(i) => i,
                Err(e) => {
                    give_back(false).await?;
                    return Err(e.into());
                }
            };
        let mut announce = vec![
            Pending::of(
                &OrderPaid {
                    org_id: t.org(),
                    event_id: event,
                    order_id: order,
                    total_cents: row.total_cents,
                    currency: row.currency.clone(),
                    tickets: issued.tickets.len() as i64,
                },
                now,
            )
            .map_err(ApiError::internal)?,
        ];
        announce.extend(issued.events);
        Pending::in_order(&mut announce);
        let outcome: Result<Option<Applied>> = async {
            let mut tx = app.db().begin().await?;
            if let Some(e) = epoch
                && !store::epoch_guard(e).exists_in(&mut tx).await?
            {
                return Err(Error::EpochMoved(e));
            }
            if let Some((_, v)) = reserved
                && !in_ledger
                && !store::reservation_guard(t.org(), v, None)
                    .exists_in(&mut tx)
                    .await?
            {
                return Err(Error::EpochMoved(epoch.unwrap_or(0)));
            }
            // The type it took from a voucher's reservation (if any).
            let mut reserved_type = reserved.map(|(tt, _)| tt);
            if in_ledger {
                let (got, from) = inventory
                    .reserve_in_tx(app, &mut tx, t, event, &items, voucher)
                    .await?;
                if let Reserve::SoldOut(_) | Reserve::VoucherSpent = got {
                    return Ok(Some(Applied::SoldOut));
                }
                reserved_type = from;
            }
            if !ms::payment_succeeded(&mut tx, t, order, now).await? {
                return Ok(Some(Applied::Already));
            }
            let from = if revive { "expired" } else { "pending" };
            if !ms::order_paid(&mut tx, t, order, from, now).await? {
                // The expiry sweep (or a cancel) got there first: look again.
                return Ok(None);
            }
            if revive && !ms::retake_hold(&mut tx, t, row.hold_id, epoch, reserved_type).await? {
                return Ok(None);
            }
            tx.run_all(issued.writes.clone()).await?;
            kernel::events::record_many(&mut tx, &announce).await?;
            if let Some(a) = &audit {
                a.stmt(now).execute_in(&mut tx).await?;
            }
            // The invoice's number, in this transaction: sequential per org,
            // never skipped (a rollback gives it back) nor used twice. Taken
            // last, so the org's counter is locked only until the commit.
            let number = super::settings::next_invoice_number(&mut tx, t.org()).await?;
            super::settings::record_invoice(&mut tx, t, number, order, now).await?;
            tx.commit().await?;
            Ok(Some(if revive {
                Applied::Revived
            } else {
                Applied::Paid
            }))
        }
        .await;
        match outcome {
            Ok(Some(Applied::SoldOut)) => {
                return if refund_if_stuck {
                    refund_stuck(app, t, order, now).await
                } else {
                    Ok(Applied::SoldOut)
                };
            }
            Ok(Some(done)) => {
                give_back(done == Applied::Revived).await?;
                if done == Applied::Revived {
                    metrics::counter!("voelgoed_orders_revived_total").increment(1);
                }
                return Ok(done);
            }
            Ok(None) => give_back(false).await?,
            Err(Error::EpochMoved(e)) => {
                give_back(false).await?;
                inventory.refused(app, e).await?;
            }
            Err(e) => {
                give_back(false).await?;
                return Err(e);
            }
        }
    }
    Err(Error::Api(ApiError::Overloaded {
        retry_after_secs: 1,
    }))
}

/// Whether the event has a seat map.
async fn catalog_seated(app: &App, t: &Tenant, event: kernel::ids::EventId) -> Result<bool> {
    Ok(crate::events::seating(app, t, event).await?.is_some())
}

/// A card payment for an order that cannot take it: the payment is
/// recorded, and all of it refunded through the provider.
async fn refund_stuck(app: &App, t: &Tenant, order: OrderId, now: i64) -> Result<Applied> {
    let Some(payment) = ms::payment(app.db(), t, order).await? else {
        return Err(Error::NotFound);
    };
    let refund = RefundId::new();
    let mut tx = app.db().begin().await?;
    if !ms::payment_succeeded(&mut tx, t, order, now).await? {
        return Ok(Applied::Already);
    }
    ms::order_paid_and_owed(&mut tx, t, order, payment.amount_cents, now).await?;
    ms::insert_refund(
        t,
        NewRefund {
            id: refund,
            order,
            payment: payment.id,
            provider: &payment.provider,
            amount_cents: payment.amount_cents,
            currency: &payment.currency,
            reason: "automatic: the payment arrived after the order had expired or was cancelled, and its tickets were gone",
            status: "pending",
            now,
        },
    )
    .execute_in(&mut tx)
    .await?;
    NewJob::of(&SendRefund {
        org: t.org(),
        refund,
    })
    .for_org(t.org().0)
    .stmt(now)
    .execute_in(&mut tx)
    .await?;
    tx.commit().await?;
    metrics::counter!("voelgoed_payments_refunded_late_total").increment(1);
    jobs::wake(QUEUE.name);
    Ok(Applied::Refunding)
}

/// Marks an order paid by EFT (finance): its tickets are issued. An order
/// that expired is revived when its tickets are still there (else 409
/// `sold_out`, nothing changes); marking a paid order again changes nothing.
pub async fn mark_paid(app: &App, actor: &Actor, order: OrderId) -> Result<OrderView> {
    let t = actor.require(Permission::Finance)?;
    let payment = ms::payment(app.db(), t, order)
        .await?
        .ok_or(Error::NotFound)?;
    if payment.provider != MANUAL {
        return Err(Error::Api(ApiError::Conflict(
            "a card payment is confirmed by the card provider, not marked paid".into(),
        )));
    }
    let audit = actor.audit("order.mark_paid", "order").object(order).after(
        serde_json::json!({"amount_cents": payment.amount_cents, "currency": payment.currency}),
    );
    match apply_payment(app, t, order, false, Some(audit)).await? {
        Applied::SoldOut => Err(Error::Api(ApiError::SoldOut(
            "the order expired and its tickets were sold meanwhile".into(),
        ))),
        _ => order_view(app, t, order).await,
    }
}

async fn order_view(app: &App, t: &Tenant, order: OrderId) -> Result<OrderView> {
    let row = store::order(app.db(), t, order)
        .await?
        .ok_or(Error::NotFound)?;
    super::domain::order_view(app, t, row).await
}

/// What the provider's webhook did.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAck {
    pub received: bool,
    /// What the event changed: `paid`, `revived`, `refunding`, `failure_recorded`, or `nothing`.
    pub outcome: String,
}

/// Takes a webhook from Stripe (or a stand-in speaking its protocol):
/// verified by `Stripe-Signature`, applied once, in any order.
pub async fn stripe_webhook(app: &App, signature: Option<&str>, body: &[u8]) -> Result<WebhookAck> {
    let payments = app.state::<Payments>();
    let Some(secret) = payments.webhook_secret.as_deref() else {
        return Err(Error::Api(ApiError::BadRequest(
            "Stripe webhooks are not configured here".into(),
        )));
    };
    // The sender's clock is real time, whatever the platform's rules run on.
    let real_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let Some(signature) = signature else {
        return Err(Error::Api(ApiError::BadRequest(
            "Stripe-Signature header missing".into(),
        )));
    };
    if !stripe::verify_signature(secret, signature, body, real_now) {
        return Err(Error::Api(ApiError::BadRequest(
            "Stripe-Signature does not verify (wrong secret, altered body, or older than 300 s)"
                .into(),
        )));
    }
    let event: stripe::Event = serde_json::from_slice(body)
        .map_err(|e| Error::Api(ApiError::BadRequest(format!("not a Stripe event: {e}"))))?;
    let ack = |outcome: &str| WebhookAck {
        received: true,
        outcome: outcome.into(),
    };
    if ms::seen(app.db(), STRIPE, &event.id).await? {
        return Ok(ack("nothing"));
    }
    let outcome = match event.kind.as_str() {
        "payment_intent.succeeded" => {
            let intent: stripe::Intent =
                serde_json::from_value(event.data.object).map_err(|e| {
                    Error::Api(ApiError::BadRequest(format!("not a PaymentIntent: {e}")))
                })?;
            match ms::payment_by_ref(app.db(), STRIPE, &intent.id).await? {
                None => {
                    tracing::warn!(intent = %intent.id, "a succeeded intent that is not ours");
                    "nothing"
                }
                Some((org, p)) => {
                    let received = if intent.amount_received > 0 {
                        intent.amount_received
                    } else {
                        intent.amount
                    };
                    if received != p.amount_cents
                        || !intent.currency.eq_ignore_ascii_case(&p.currency)
                    {
                        tracing::error!(intent = %intent.id, received, expected = p.amount_cents,
                            "a payment for another amount than the order's: not applied");
                        "nothing"
                    } else {
                        let Some(t) = identity::upkeep_tenant(app, org).await? else {
                            return Ok(ack("nothing"));
                        };
                        match apply_payment(app, &t, p.order_id, true, None).await? {
                            Applied::Paid => "paid",
                            Applied::Revived => "revived",
                            Applied::Refunding => "refunding",
                            Applied::Already | Applied::SoldOut => "nothing",
                        }
                    }
                }
            }
        }
        // A refund that failed after it was answered (Stripe sends
        // `refund.failed`, and `charge.refund.updated` / `refund.updated`
        // with the refund failed): its amount goes back to the order.
        "refund.failed" | "refund.updated" | "charge.refund.updated" => {
            let refund: stripe::Refund = serde_json::from_value(event.data.object)
                .map_err(|e| Error::Api(ApiError::BadRequest(format!("not a Refund: {e}"))))?;
            refund_event(app, refund).await?
        }
        "payment_intent.payment_failed" => {
            let intent: stripe::Intent =
                serde_json::from_value(event.data.object).map_err(|e| {
                    Error::Api(ApiError::BadRequest(format!("not a PaymentIntent: {e}")))
                })?;
            let why = intent
                .last_payment_error
                .as_ref()
                .and_then(|e| e.get("message").and_then(|m| m.as_str()))
                .unwrap_or("the payment failed");
            let why: String = why.chars().take(300).collect();
            if ms::payment_failed(app.db(), STRIPE, &intent.id, &why, app.kernel.now()).await? > 0 {
                "failure_recorded"
            } else {
                "nothing"
            }
        }
        _ => "nothing",
    };
    ms::mark_seen(app.db(), STRIPE, &event.id, &event.kind, app.kernel.now()).await?;
    Ok(ack(outcome))
}

/// A refund event from the provider: one of ours that failed gives its
/// amount back (once); anything else changes nothing.
async fn refund_event(app: &App, refund: stripe::Refund) -> Result<&'static str> {
    let ours = refund
        .metadata
        .get("refund_id")
        .and_then(|id| id.parse::<uuid::Uuid>().ok())
        .map(RefundId);
    let Some(id) = ours.filter(|_| refund.status == "failed") else {
        return Ok("nothing");
    };
    let Some(org) = ms::refund_org(app.db(), id).await? else {
        return Ok("nothing");
    };
    let Some(t) = identity::upkeep_tenant(app, org).await? else {
        return Ok("nothing");
    };
    let why = refund
        .failure_reason
        .as_deref()
        .unwrap_or("the refund failed at the provider");
    let why: String = why.chars().take(300).collect();
    if !ms::refund_failed(app.db(), &t, id, &why, app.kernel.now()).await? {
        return Ok("nothing");
    }
    tracing::error!(refund = %id, error = %why, "a refund failed at the provider: finance must act");
    Ok("refund_failed")
}

/// A refund request.
pub struct RefundRequest {
    /// All that is left when `None`.
    pub amount_cents: Option<i64>,
    pub reason: String,
}

pub const REFUND_SCOPE: &str = "orders.refund";

/// Refunds part or all of what is left of an order's payment. A full refund
/// revokes the tickets and puts them back on sale. With an idempotency key
/// the reply is stored in the refund's transaction: a retry never refunds
/// twice.
pub async fn refund(
    app: &App,
    actor: &Actor,
    order: OrderId,
    req: RefundRequest,
    idempotency: Option<(Key, Fingerprint)>,
) -> Result<Reply> {
    let t = actor.require(Permission::Finance)?;
    let mut c = kernel::error::Checks::default();
    if let Some(a) = req.amount_cents
        && a < 1
    {
        c.fail("amount_cents", "must be at least 1");
    }
    if req.reason.chars().count() > 500 {
        c.fail("reason", "must be at most 500 characters");
    }
    if !plain_text(&req.reason) {
        c.fail(
            "reason",
            "must not contain control characters (tabs and line breaks are fine)",
        );
    }
    c.finish()?;
    super::domain::idempotent(app, t, REFUND_SCOPE, idempotency, |claim| async move {
        Box::pin(refund_once(app, actor, t, order, &req, claim.as_ref())).await
    })
    .await
}

/// Text without control characters other than tab and line feed.
fn plain_text(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() && c != '\t' && c != '\n')
}

fn nothing_to_refund(status: OrderStatus) -> Error {
    Error::Api(ApiError::Conflict(format!(
        "the order is {}: nothing to refund",
        status.as_str()
    )))
}

async fn refund_once(
    app: &App,
    actor: &Actor,
    t: &Tenant,
    order: OrderId,
    req: &RefundRequest,
    claim: Option<&Claim>,
) -> Result<Reply> {
    for _ in 0..5 {
        let now = app.kernel.now();
        let row = store::order(app.db(), t, order)
            .await?
            .ok_or(Error::NotFound)?;
        if !matches!(
            row.status,
            OrderStatus::Paid | OrderStatus::PartiallyRefunded
        ) {
            return Err(nothing_to_refund(row.status));
        }
        let left = row.paid_cents - row.refunded_cents;
        let Some(payment) = ms::payment(app.db(), t, order).await? else {
            return Err(Error::Api(ApiError::Conflict(
                "the order was free: nothing to refund (cancel it instead)".into(),
            )));
        };
        if left <= 0 {
            return Err(nothing_to_refund(row.status));
        }
        let amount = req.amount_cents.unwrap_or(left);
        if amount > left {
            return Err(Error::field(
                "amount_cents",
                &format!("must be at most {left}, what is left of the payment"),
            ));
        }
        let full = amount == left;
        let revoke = if full {
            Some(tickets::revoke_order(app, t, order, now).await?)
        } else {
            None
        };
        let refund = RefundId::new();
        let status = if payment.provider == MANUAL {
            "succeeded"
        } else {
            "pending"
        };
        let view = RefundView {
            id: refund,
            order_id: order,
            amount_cents: amount,
            currency: row.currency.clone(),
            status: status.into(),
            reason: req.reason.clone(),
            provider: payment.provider.clone(),
            failure: None,
            created_at: clock::rfc3339(now),
        };
        let body = serde_json::to_string(&view).map_err(ApiError::internal)?;
        let mut announce = vec![
            Pending::of(
                &OrderRefunded {
                    org_id: t.org(),
                    event_id: row.event_id,
                    order_id: order,
                    refund_id: refund,
                    amount_cents: amount,
                    currency: row.currency.clone(),
                    refunded_cents: row.refunded_cents + amount,
                    full,
                },
                now,
            )
            .map_err(ApiError::internal)?,
        ];
        let mut writes = vec![ms::insert_refund(
            t,
            NewRefund {
                id: refund,
                order,
                payment: payment.id,
                provider: &payment.provider,
                amount_cents: amount,
                currency: &row.currency,
                reason: &req.reason,
                status,
                now,
            },
        )];
        if let Some(r) = revoke {
            writes.extend(r.writes);
            announce.extend(r.events);
        }
        Pending::in_order(&mut announce);
        if payment.provider != MANUAL {
            writes.push(
                NewJob::of(&SendRefund {
                    org: t.org(),
                    refund,
                })
                .for_org(t.org().0)
                .stmt(now),
            );
        }
        writes.push(
            actor
                .audit("order.refund", "order")
                .object(order)
                .after(
                    serde_json::json!({"refund_id": refund, "amount_cents": amount,
                    "currency": row.currency, "reason": req.reason, "full": full}),
                )
                .stmt(now),
        );
        if let Some(claim) = claim {
            writes.push(claim.complete_stmt(201, body.clone()));
        }
        let mut tx = app.db().begin().await?;
        if let Some(claim) = claim
            && !claim.still_held(&mut tx).await?
        {
            return Err(Error::IdempotencyInFlight);
        }
        if ms::take_refund(&mut tx, t, order, amount, now)
            .await?
            .is_none()
        {
            // Another refund or a cancel moved first: decide again.
            drop(tx);
            continue;
        }
        let released = full && ms::release_hold(&mut tx, t, row.hold_id).await?;
        tx.run_all(writes).await?;
        kernel::events::record_many(&mut tx, &announce).await?;
        tx.commit().await?;
        after_release(app, t, row.hold_id, released).await;
        if payment.provider != MANUAL {
            // Its job, committed with it, sends it to the provider now.
            jobs::wake(QUEUE.name);
        }
        return Ok(Reply {
            status: StatusCode::CREATED,
            body,
        });
    }
    Err(Error::Api(ApiError::Overloaded {
        retry_after_secs: 1,
    }))
}

/// Gives a released hold's quantities back to the counters (once: only the
/// transaction that released it calls this). Lost on a crash in between,
/// the difference is repaired by the inventory reconciliation.
async fn after_release(app: &App, t: &Tenant, hold: kernel::ids::HoldId, released: bool) {
    if !released {
        return;
    }
    if let Ok(Some(h)) = store::hold_for_checkout(app.db(), t, hold).await {
        let board = app.state::<super::seats::SeatBoard>();
        board.changed(t.org(), h.event).await;
        board.freed(t.org(), h.event);
    }
    let epoch = match store::hold_epoch(app.db(), t, hold).await {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "a released hold could not be read");
            return;
        }
    };
    match store::hold_for_checkout(app.db(), t, hold).await {
        Ok(Some(h)) => {
            if let Err(e) = app
                .state::<Inventory>()
                .release(
                    app,
                    t.org(),
                    h.event,
                    epoch,
                    &h.items,
                    h.voucher,
                    h.reserved,
                )
                .await
            {
                tracing::warn!(error = %e, "a released hold's quantities were not given back (reconciliation will)");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "a released hold could not be read"),
    }
}

/// The refund job: sends a pending refund to the provider, under a key of
/// the refund's own, so however often it runs the provider refunds once.
pub async fn run_refund_job(app: &App, job: SendRefund) -> std::result::Result<(), JobError> {
    let Some(t) = identity::upkeep_tenant(app, job.org)
        .await
        .map_err(|e| JobError::Failed(e.to_string()))?
    else {
        return Err(JobError::Discard("the org is gone".into()));
    };
    send_refund(app, &t, job.refund).await
}

async fn send_refund(app: &App, t: &Tenant, id: RefundId) -> std::result::Result<(), JobError> {
    let failed = |e: sqlx::Error| JobError::Failed(e.to_string());
    let Some(refund) = ms::refund(app.db(), t, id).await.map_err(failed)? else {
        return Err(JobError::Discard("no such refund".into()));
    };
    if refund.status != "pending" {
        return Ok(());
    }
    let Some(payment) = ms::payment(app.db(), t, refund.order_id)
        .await
        .map_err(failed)?
    else {
        return Err(JobError::Discard("the refund's payment is gone".into()));
    };
    let (Some(stripe), Some(intent)) = (
        app.state::<Payments>().stripe.as_ref(),
        payment.provider_ref.as_deref(),
    ) else {
        return Err(JobError::Failed(
            "card payments are not configured on this node".into(),
        ));
    };
    let now = app.kernel.now();
    match stripe
        .refund(
            intent,
            refund.amount_cents,
            &id.to_string(),
            &format!("voelgoed-refund-{id}"),
        )
        .await
    {
        Ok(r) => {
            ms::refund_settled(app.db(), t, id, "succeeded", Some(&r.id), None, now)
                .await
                .map_err(failed)?;
            Ok(())
        }
        Err(ProviderError::Unavailable(why)) => Err(JobError::Failed(why)),
        Err(ProviderError::Refused(why)) => {
            tracing::error!(refund = %id, error = %why, "the provider refused a refund: finance must act");
            ms::refund_failed(app.db(), t, id, &why, now)
                .await
                .map_err(failed)?;
            Err(JobError::Discard(why))
        }
    }
}

/// Cancels an order. Pending: it stops waiting for its payment and its
/// tickets go back on sale. Paid: what is left is refunded, its tickets are
/// revoked and back on sale. Cancelling a cancelled order changes nothing.
pub async fn cancel(app: &App, actor: &Actor, order: OrderId, reason: &str) -> Result<OrderView> {
    let t = actor.require(Permission::Finance)?;
    if reason.chars().count() > 500 {
        return Err(Error::field("reason", "must be at most 500 characters"));
    }
    if !plain_text(reason) {
        return Err(Error::field(
            "reason",
            "must not contain control characters (tabs and line breaks are fine)",
        ));
    }
    for _ in 0..5 {
        let now = app.kernel.now();
        let row = store::order(app.db(), t, order)
            .await?
            .ok_or(Error::NotFound)?;
        let paid = match row.status {
            OrderStatus::Cancelled => return order_view(app, t, order).await,
            OrderStatus::Expired | OrderStatus::Refunded => {
                return Err(Error::Api(ApiError::Conflict(format!(
                    "the order is {}: there is nothing to cancel",
                    row.status.as_str()
                ))));
            }
            OrderStatus::Pending => false,
            OrderStatus::Paid | OrderStatus::PartiallyRefunded => true,
        };
        let left = row.paid_cents - row.refunded_cents;
        let payment = ms::payment(app.db(), t, order).await?;
        let mut announce = Vec::new();
        let mut writes = Vec::new();
        let mut card_refund = false;
        if paid {
            let revoke = tickets::revoke_order(app, t, order, now).await?;
            writes.extend(revoke.writes);
            announce.extend(revoke.events);
            if let (Some(p), true) = (&payment, left > 0) {
                let refund = RefundId::new();
                let status = if p.provider == MANUAL {
                    "succeeded"
                } else {
                    "pending"
                };
                writes.push(ms::insert_refund(
                    t,
                    NewRefund {
                        id: refund,
                        order,
                        payment: p.id,
                        provider: &p.provider,
                        amount_cents: left,
                        currency: &row.currency,
                        reason: if reason.is_empty() {
                            "the order was cancelled"
                        } else {
                            reason
                        },
                        status,
                        now,
                    },
                ));
                if p.provider != MANUAL {
                    writes.push(
                        NewJob::of(&SendRefund {
                            org: t.org(),
                            refund,
                        })
                        .for_org(t.org().0)
                        .stmt(now),
                    );
                    card_refund = true;
                }
                announce.push(
                    Pending::of(
                        &OrderRefunded {
                            org_id: t.org(),
                            event_id: row.event_id,
                            order_id: order,
                            refund_id: refund,
                            amount_cents: left,
                            currency: row.currency.clone(),
                            refunded_cents: row.paid_cents,
                            full: true,
                        },
                        now,
                    )
                    .map_err(ApiError::internal)?,
                );
            }
        }
        announce.push(
            Pending::of(
                &OrderCancelled {
                    org_id: t.org(),
                    event_id: row.event_id,
                    order_id: order,
                    refunded_cents: if paid { left.max(0) } else { 0 },
                    currency: row.currency.clone(),
                    reason: reason.to_string(),
                },
                now,
            )
            .map_err(ApiError::internal)?,
        );
        Pending::in_order(&mut announce);
        writes.push(
            actor
                .audit("order.cancel", "order")
                .object(order)
                .before(serde_json::json!({"status": row.status}))
                .after(serde_json::json!({"status": "cancelled", "refunded_cents": if paid { left } else { 0 },
                    "reason": reason}))
                .stmt(now),
        );
        let mut tx = app.db().begin().await?;
        let moved = if paid {
            ms::cancel_paid(&mut tx, t, order, row.refunded_cents, now).await?
        } else {
            let moved = ms::cancel_pending(&mut tx, t, order, now).await?;
            if moved {
                ms::payment_cancelled(&mut tx, t, order, now).await?;
            }
            moved
        };
        if !moved {
            drop(tx);
            continue;
        }
        let released = ms::release_hold(&mut tx, t, row.hold_id).await?;
        tx.run_all(writes).await?;
        kernel::events::record_many(&mut tx, &announce).await?;
        tx.commit().await?;
        after_release(app, t, row.hold_id, released).await;
        if card_refund {
            // Its job, committed with it, sends it to the provider now.
            jobs::wake(QUEUE.name);
        }
        return order_view(app, t, order).await;
    }
    Err(Error::Api(ApiError::Overloaded {
        retry_after_secs: 1,
    }))
}

/// A mismatch between the provider's records and the orders.
#[derive(Debug, Serialize)]
pub struct Mismatch {
    pub intent: String,
    pub order_id: Option<OrderId>,
    pub provider_status: String,
    pub our_status: Option<String>,
    /// What was done: `applied` (a lost webhook's payment, applied now) or
    /// `reported`.
    pub action: String,
}

/// Compares the provider's intents of the last `days` with the payments:
/// an intent that succeeded while its payment still waits (a webhook that
/// never arrived) is applied now; anything else that disagrees is reported.
pub async fn reconcile_provider(app: &App, days: i64) -> Result<Vec<Mismatch>> {
    let Some(stripe) = app.state::<Payments>().stripe.as_ref() else {
        return Ok(Vec::new());
    };
    let now = app.kernel.now();
    let since_secs = now / MICROS_PER_SEC - days * 86_400;
    let intents = stripe
        .intents_since(since_secs, 100_000)
        .await
        .map_err(provider_error)?;
    let mut out = Vec::new();
    for intent in intents {
        let ours = ms::payment_by_ref(app.db(), STRIPE, &intent.id).await?;
        let Some((org, p)) = ours else {
            if intent.status == "succeeded" {
                out.push(Mismatch {
                    intent: intent.id,
                    order_id: None,
                    provider_status: intent.status,
                    our_status: None,
                    action: "reported".into(),
                });
            }
            continue;
        };
        let agree = matches!(
            (intent.status.as_str(), p.status.as_str()),
            ("succeeded", "succeeded")
                | (
                    "requires_payment_method"
                        | "requires_confirmation"
                        | "requires_action"
                        | "processing",
                    "requires_payment"
                )
                | ("requires_payment_method" | "canceled", "cancelled")
        );
        if agree {
            continue;
        }
        let mut action = "reported";
        if intent.status == "succeeded"
            && p.status == "requires_payment"
            && let Some(t) = identity::upkeep_tenant(app, org).await?
        {
            apply_payment(app, &t, p.order_id, true, None).await?;
            action = "applied";
        }
        out.push(Mismatch {
            intent: intent.id,
            order_id: Some(p.order_id),
            provider_status: intent.status,
            our_status: Some(p.status),
            action: action.into(),
        });
    }
    for m in &out {
        tracing::warn!(intent = %m.intent, provider = %m.provider_status, ours = ?m.our_status,
            action = %m.action, "payment reconciliation mismatch");
    }
    metrics::gauge!("voelgoed_payment_mismatches").set(out.len() as f64);
    Ok(out)
}

/// The nightly provider reconciliation.
#[derive(Serialize, Deserialize)]
pub struct ReconcilePayments {}

impl Job for ReconcilePayments {
    const KIND: &'static str = "payments.reconcile";
    const QUEUE: &'static str = QUEUE.name;
    const MAX_ATTEMPTS: i64 = 3;
}

pub const RECONCILE_DAYS: i64 = 3;

/// Cancels every open order of a cancelled event (a job per event).
#[derive(Serialize, Deserialize)]
pub struct CancelEvent {
    pub org: kernel::ids::OrgId,
    pub event: kernel::ids::EventId,
}

impl Job for CancelEvent {
    const KIND: &'static str = "sales.cancel_event";
    const QUEUE: &'static str = QUEUE.name;
}

/// `event.cancelled` → the event's cancellation job, in the relay's
/// transaction (once per event).
pub fn on_event_cancelled<'a>(
    _: &'a App,
    tx: &'a mut kernel::Tx,
    events: Vec<kernel::Envelope<crate::events::EventCancelled>>,
) -> kernel::events::TxFuture<'a> {
    Box::pin(async move {
        for e in &events {
            let d = e.data();
            NewJob::of(&CancelEvent {
                org: d.org_id,
                event: d.event_id,
            })
            .unique(d.event_id.to_string())
            .for_org(d.org_id.0)
            .stmt(e.occurred_at())
            .execute_in(tx)
            .await?;
        }
        if !events.is_empty() {
            jobs::wake_after_commit(QUEUE.name);
        }
        Ok(())
    })
}

/// The job: cancels the event's open orders (pending ones stop waiting,
/// paid ones are refunded), a hundred at a time, as the org's operator;
/// each buyer gets the cancellation notice. Run again, it finds nothing.
pub async fn run_cancel_event(app: &App, job: CancelEvent) -> std::result::Result<(), JobError> {
    let failed = |e: Error| JobError::Failed(ApiError::from(e).to_string());
    let Some(t) = identity::upkeep_tenant(app, job.org)
        .await
        .map_err(|e| JobError::Failed(e.to_string()))?
    else {
        return Err(JobError::Discard("the org is gone".into()));
    };
    let actor = identity::operator(app, t.slug())
        .await
        .map_err(|e| JobError::Failed(e.to_string()))?;
    loop {
        let open = store::open_orders(app.db(), &t, job.event, 100)
            .await
            .map_err(|e| failed(e.into()))?;
        if open.is_empty() {
            return Ok(());
        }
        for order in open {
            cancel(app, &actor, order, "the event was cancelled")
                .await
                .map_err(failed)?;
        }
    }
}
