//! Mail: what buyers and organizers receive by e-mail, and the PDF tickets
//! it carries (also offered on the buyer's order page).
//!
//! Owns: `mail_settings` (per-org sender name, reply-to, reminder lead),
//! `mail_log` (every message that went out).
//! Consumes, in the relay's transaction (so each event makes its mail job
//! exactly once): `order.paid` (confirmation with one PDF per ticket),
//! `order.expired`, `order.refunded`, `order.cancelled` (notices), `event.published` (the event's reminder job),
//! `webhook.endpoint_disabled` (the org's owners and admins are told),
//! `ticket.transferred` (the new holder gets the ticket and a link to it),
//! `waitlist.offered` (the first in line gets the link to the hold kept for
//! them).
//! Each message is a durable job on the `mail` queue, retried about 30 s,
//! 2 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h after transient failures; an
//! SMTP server's permanent refusal (5xx) ends it at once. A message already
//! in the log for its order and kind is not sent twice.
//! Refund and cancellation notices follow when those events exist (the
//! money issue).

mod api;
mod domain;
mod store;
mod transport;
mod views;

use std::time::Duration;

use kernel::{
    DomainEvent, Envelope, Kernel, Slice, Tx,
    events::TxFuture,
    ids::{EventId, HoldId, OrderId, OrgId, RefundId, TicketId, TicketTypeId},
    jobs::{self, Job, NewJob, Queue},
};
use serde::{Deserialize, Serialize};

use crate::{
    App,
    events::EventPublished,
    sales::{
        OrderCancelled, OrderExpired, OrderLookupRequested, OrderPaid, OrderRefunded,
        waitlist::WaitlistOffered,
    },
    tickets::TicketTransferred,
    webhooks::EndpointDisabled,
};
pub use domain::check_address;
pub use transport::check_smtp_url;

/// The mail queue: its own workers, so webhooks and exports never hold
/// up a buyer's tickets.
pub const QUEUE: Queue = Queue::new("mail", 2);

pub const RETRY_SCHEDULE: [Duration; 8] = [
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(3600),
    Duration::from_secs(3 * 3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(12 * 3600),
];

/// One message to send.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "mail", rename_all = "snake_case")]
pub enum Send {
    OrderConfirmation {
        org: OrgId,
        order: OrderId,
    },
    OrderExpired {
        org: OrgId,
        order: OrderId,
    },
    Reminder {
        org: OrgId,
        order: OrderId,
    },
    OrderRefunded {
        org: OrgId,
        order: OrderId,
        refund: RefundId,
        amount_cents: i64,
        full: bool,
    },
    OrderCancelled {
        org: OrgId,
        order: OrderId,
        refunded_cents: i64,
    },
    EndpointDisabled {
        org: OrgId,
        url: String,
        reason: String,
    },
    /// A buyer's link to their orders.
    OrderLookup {
        org: OrgId,
        email: String,
        request: uuid::Uuid,
    },
    /// A ticket handed on, to its new holder.
    TicketTransferred {
        org: OrgId,
        order: OrderId,
        ticket: TicketId,
    },
    /// Tickets back for the first on a waiting list: a hold kept for them.
    WaitlistOffer {
        org: OrgId,
        event: EventId,
        entry: uuid::Uuid,
        hold: HoldId,
        ticket_type: TicketTypeId,
        quantity: i64,
        email: String,
        name: String,
        expires_at: String,
    },
}

impl Send {
    pub fn org(&self) -> OrgId {
        match self {
            Send::OrderConfirmation { org, .. }
            | Send::OrderExpired { org, .. }
            | Send::Reminder { org, .. }
            | Send::OrderRefunded { org, .. }
            | Send::OrderCancelled { org, .. }
            | Send::EndpointDisabled { org, .. }
            | Send::OrderLookup { org, .. }
            | Send::TicketTransferred { org, .. }
            | Send::WaitlistOffer { org, .. } => *org,
        }
    }
}

impl Job for Send {
    const KIND: &'static str = "mail.send";
    const QUEUE: &'static str = QUEUE.name;
    const MAX_ATTEMPTS: i64 = RETRY_SCHEDULE.len() as i64 + 1;

    fn retry_in(attempts: i64) -> Duration {
        jobs::from_schedule(&RETRY_SCHEDULE, attempts)
    }
}

/// The reminders of one event: waits until the org's reminder time before
/// the event, then enqueues one reminder per paid order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reminders {
    pub org: OrgId,
    pub event: EventId,
}

impl Job for Reminders {
    const KIND: &'static str = "mail.reminders";
    const QUEUE: &'static str = QUEUE.name;
}

pub fn slice(kernel: &Kernel) -> Slice<App> {
    Slice::new("mail")
        .routes(api::routes())
        .pages(views::routes())
        .state(transport::Transport::new(&kernel.config))
        .queue(QUEUE)
        .consumes::<OrderPaid, _>("mail.confirmation", on_paid)
        .consumes::<OrderExpired, _>("mail.expired", on_expired)
        .consumes::<OrderRefunded, _>("mail.refunded", on_refunded)
        .consumes::<OrderCancelled, _>("mail.cancelled", on_cancelled)
        .consumes::<EndpointDisabled, _>("mail.endpoint_disabled", on_endpoint_disabled)
        .consumes::<OrderLookupRequested, _>("mail.lookup", on_lookup)
        .consumes::<TicketTransferred, _>("mail.transferred", on_transferred)
        .consumes::<WaitlistOffered, _>("mail.waitlist_offer", on_offered)
        .consumes::<EventPublished, _>("mail.reminders", schedule_reminders)
        .job::<Send, _, _>(|app: App, job: Send| async move { domain::send(&app, job).await })
        .job::<Reminders, _, _>(|app: App, job: Reminders| async move {
            domain::remind(&app, job).await
        })
}

fn on_paid<'a>(_: &'a App, tx: &'a mut Tx, events: Vec<Envelope<OrderPaid>>) -> TxFuture<'a> {
    enqueue(tx, events, |e| {
        let key = format!("confirmation:{}", e.order_id);
        (
            Send::OrderConfirmation {
                org: e.org_id,
                order: e.order_id,
            },
            key,
        )
    })
}

fn on_expired<'a>(_: &'a App, tx: &'a mut Tx, events: Vec<Envelope<OrderExpired>>) -> TxFuture<'a> {
    enqueue(tx, events, |e| {
        let key = format!("expired:{}", e.order_id);
        (
            Send::OrderExpired {
                org: e.org_id,
                order: e.order_id,
            },
            key,
        )
    })
}

fn on_refunded<'a>(
    _: &'a App,
    tx: &'a mut Tx,
    events: Vec<Envelope<OrderRefunded>>,
) -> TxFuture<'a> {
    enqueue(tx, events, |e| {
        let key = format!("refunded:{}", e.refund_id);
        (
            Send::OrderRefunded {
                org: e.org_id,
                order: e.order_id,
                refund: e.refund_id,
                amount_cents: e.amount_cents,
                full: e.full,
            },
            key,
        )
    })
}

fn on_cancelled<'a>(
    _: &'a App,
    tx: &'a mut Tx,
    events: Vec<Envelope<OrderCancelled>>,
) -> TxFuture<'a> {
    enqueue(tx, events, |e| {
        let key = format!("cancelled:{}", e.order_id);
        (
            Send::OrderCancelled {
                org: e.org_id,
                order: e.order_id,
                refunded_cents: e.refunded_cents,
            },
            key,
        )
    })
}

fn on_endpoint_disabled<'a>(
    _: &'a App,
    tx: &'a mut Tx,
    events: Vec<Envelope<EndpointDisabled>>,
) -> TxFuture<'a> {
    enqueue(tx, events, |e| {
        let send = Send::EndpointDisabled {
            org: e.org_id,
            url: e.url.clone(),
            reason: e.reason.clone(),
        };
        (
            send,
            format!("endpoint_disabled:{}:{}", e.webhook_id, e.reason),
        )
    })
}

fn on_lookup<'a>(
    _: &'a App,
    tx: &'a mut Tx,
    events: Vec<Envelope<OrderLookupRequested>>,
) -> TxFuture<'a> {
    enqueue(tx, events, |e| {
        let send = Send::OrderLookup {
            org: e.org_id,
            email: e.email.clone(),
            request: e.request_id,
        };
        (send, format!("lookup:{}", e.request_id))
    })
}

fn on_transferred<'a>(
    _: &'a App,
    tx: &'a mut Tx,
    events: Vec<Envelope<TicketTransferred>>,
) -> TxFuture<'a> {
    enqueue(tx, events, |e| {
        let send = Send::TicketTransferred {
            org: e.org_id,
            order: e.order_id,
            ticket: e.ticket_id,
        };
        (send, format!("transferred:{}", e.ticket_id))
    })
}

fn on_offered<'a>(
    _: &'a App,
    tx: &'a mut Tx,
    events: Vec<Envelope<WaitlistOffered>>,
) -> TxFuture<'a> {
    enqueue(tx, events, |e| {
        let send = Send::WaitlistOffer {
            org: e.org_id,
            event: e.event_id,
            entry: e.entry_id.0,
            hold: e.hold_id,
            ticket_type: e.ticket_type_id,
            quantity: e.quantity,
            email: e.email.clone(),
            name: e.name.clone(),
            expires_at: e.expires_at.clone(),
        };
        (send, format!("waitlist_offer:{}", e.hold_id))
    })
}

/// A published event gets its reminder job; the job itself waits for the
/// time (and reads the org's lead time when it wakes).
fn schedule_reminders<'a>(
    _: &'a App,
    tx: &'a mut Tx,
    events: Vec<Envelope<EventPublished>>,
) -> TxFuture<'a> {
    enqueue(tx, events, |e| {
        let key = format!("reminders:{}", e.event_id);
        (
            Reminders {
                org: e.org_id,
                event: e.event_id,
            },
            key,
        )
    })
}

/// In the relay's transaction: one job per event, unique by its key.
fn enqueue<E: DomainEvent, J: Job>(
    tx: &mut Tx,
    events: Vec<Envelope<E>>,
    job: fn(&E) -> (J, String),
) -> TxFuture<'_> {
    Box::pin(async move {
        let stmts: Vec<_> = events
            .iter()
            .map(|e| {
                let (j, key) = job(e.data());
                NewJob::of(&j)
                    .unique(key)
                    .for_org(e.org().0)
                    .stmt(e.occurred_at())
            })
            .collect();
        if !stmts.is_empty() {
            tx.run_all(stmts).await?;
            jobs::wake_after_commit(QUEUE.name);
        }
        Ok(())
    })
}
