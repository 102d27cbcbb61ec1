//! Webhooks (Standard Webhooks): an org's endpoints receive its domain
//! events as signed POSTs, at least once, in order per order or ticket.
//!
//! Owns: `webhook_endpoints`, `webhook_deliveries`, `webhook_attempts`.
//! Consumes (in the relay's transaction, so each event makes its deliveries
//! exactly once): `order.created`, `order.paid`, `order.expired`,
//! `ticket.issued`, `ticket.admitted`, `event.published`. Each delivery is a
//! durable job on the `webhooks` queue (retried about 5 s, 5 min, 30 min,
//! 2 h, 5 h, 10 h, 10 h, 24 h after failures, then dead).
//! Emits: `webhook.endpoint_disabled` when an endpoint answers 410 or has
//! failed for three days.

mod api;
mod domain;
mod outbound;
mod store;
mod views;

use std::time::Duration;

use kernel::{
    DomainEvent, Envelope, Kernel, Slice, Tx,
    events::TxFuture,
    ids::{DeliveryId, OrgId, WebhookId},
    jobs::{self, Job, Queue},
};
use serde::{Deserialize, Serialize};

use crate::{
    App,
    events::{EventCancelled, EventPublished},
    sales::{OrderCancelled, OrderCreated, OrderExpired, OrderPaid, OrderRefunded},
    scanning::{TicketAdmissionUndone, TicketAdmitted, TicketExited},
    tickets::{TicketIssued, TicketRevoked, TicketTransferred},
};
pub use domain::{EVENT_TYPES, sign};
pub use outbound::is_public;

/// The queue of deliveries; its workers never wait on e-mail or exports.
pub const QUEUE: Queue = Queue::new("webhooks", 8);

/// Waits after failed attempts; the delivery is dead after the last.
pub const RETRY_SCHEDULE: [Duration; 8] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(24 * 3600),
];

/// One attempt to deliver one event to one endpoint.
#[derive(Serialize, Deserialize)]
pub struct Deliver {
    pub delivery: DeliveryId,
}

impl Job for Deliver {
    const KIND: &'static str = "webhooks.deliver";
    const QUEUE: &'static str = QUEUE.name;
    const MAX_ATTEMPTS: i64 = RETRY_SCHEDULE.len() as i64 + 1;

    fn retry_in(attempts: i64) -> Duration {
        jobs::from_schedule(&RETRY_SCHEDULE, attempts)
    }
}

/// An endpoint stopped receiving: it answered `410 Gone`, or every delivery
/// to it failed for three days. The org is told (its console shows it; the
/// mail slice mails the owners and admins).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EndpointDisabled {
    pub org_id: OrgId,
    pub webhook_id: WebhookId,
    pub url: String,
    pub reason: String,
}

impl DomainEvent for EndpointDisabled {
    const NAME: &'static str = "webhook.endpoint_disabled";
    fn org(&self) -> OrgId {
        self.org_id
    }
}

pub fn slice(kernel: &Kernel) -> Slice<App> {
    Slice::new("webhooks")
        .routes(api::routes())
        .pages(views::routes())
        .state(outbound::Outbound::new(
            kernel.config.webhooks_allow_private,
        ))
        .queue(QUEUE)
        .consumes::<OrderCreated, _>("webhooks.fan_out", fan_out::<OrderCreated>)
        .consumes::<OrderPaid, _>("webhooks.fan_out", fan_out::<OrderPaid>)
        .consumes::<OrderExpired, _>("webhooks.fan_out", fan_out::<OrderExpired>)
        .consumes::<OrderRefunded, _>("webhooks.fan_out", fan_out::<OrderRefunded>)
        .consumes::<OrderCancelled, _>("webhooks.fan_out", fan_out::<OrderCancelled>)
        .consumes::<TicketIssued, _>("webhooks.fan_out", fan_out::<TicketIssued>)
        .consumes::<TicketRevoked, _>("webhooks.fan_out", fan_out::<TicketRevoked>)
        .consumes::<TicketTransferred, _>("webhooks.fan_out", fan_out::<TicketTransferred>)
        .consumes::<TicketAdmitted, _>("webhooks.fan_out", fan_out::<TicketAdmitted>)
        .consumes::<TicketExited, _>("webhooks.fan_out", fan_out::<TicketExited>)
        .consumes::<TicketAdmissionUndone, _>("webhooks.fan_out", fan_out::<TicketAdmissionUndone>)
        .consumes::<EventPublished, _>("webhooks.fan_out", fan_out::<EventPublished>)
        .consumes::<EventCancelled, _>("webhooks.fan_out", fan_out::<EventCancelled>)
        .job::<Deliver, _, _>(|app: App, job: Deliver| async move {
            domain::deliver(&app, job.delivery).await
        })
}

/// What an event is about, for ordering: deliveries about one subject go
/// out in the order their events happened.
pub trait Subject: DomainEvent {
    fn subject(&self) -> String;
}

impl Subject for OrderCreated {
    fn subject(&self) -> String {
        format!("order:{}", self.order_id)
    }
}
impl Subject for OrderPaid {
    fn subject(&self) -> String {
        format!("order:{}", self.order_id)
    }
}
impl Subject for OrderExpired {
    fn subject(&self) -> String {
        format!("order:{}", self.order_id)
    }
}
impl Subject for OrderRefunded {
    fn subject(&self) -> String {
        format!("order:{}", self.order_id)
    }
}
impl Subject for OrderCancelled {
    fn subject(&self) -> String {
        format!("order:{}", self.order_id)
    }
}
impl Subject for TicketRevoked {
    // After the order's own events (a refund before its revocations).
    fn subject(&self) -> String {
        format!("order:{}", self.order_id)
    }
}
impl Subject for TicketTransferred {
    // With the order's other ticket events, after the revocation.
    fn subject(&self) -> String {
        format!("order:{}", self.order_id)
    }
}
impl Subject for TicketIssued {
    // After the order's own events: `order.paid` before its tickets.
    fn subject(&self) -> String {
        format!("order:{}", self.order_id)
    }
}
impl Subject for TicketExited {
    fn subject(&self) -> String {
        format!("ticket:{}", self.ticket_id)
    }
}
impl Subject for TicketAdmissionUndone {
    fn subject(&self) -> String {
        format!("ticket:{}", self.ticket_id)
    }
}
impl Subject for TicketAdmitted {
    fn subject(&self) -> String {
        format!("ticket:{}", self.ticket_id)
    }
}
impl Subject for EventPublished {
    fn subject(&self) -> String {
        format!("event:{}", self.event_id)
    }
}
impl Subject for EventCancelled {
    fn subject(&self) -> String {
        format!("event:{}", self.event_id)
    }
}

/// Makes a delivery (and its job) for every active endpoint of the event's
/// org that wants this type, in the relay's transaction.
fn fan_out<'a, E: Subject>(app: &'a App, tx: &'a mut Tx, events: Vec<Envelope<E>>) -> TxFuture<'a> {
    Box::pin(async move { domain::fan_out(app, tx, events).await })
}
