//! What the mail slice decides: which message an occasion makes, what it
//! says and carries, and whether it has gone already.

use std::sync::Arc;

use kernel::{
    ApiError, ApiResult, FieldError, Permission,
    clock::rfc3339,
    ids::{EventId, OrderId, OrgId, RefundId, TicketId},
    jobs::{HandlerResult, JobError, NewJob},
};
use lettre::{
    Message,
    message::{Attachment, Mailbox, MultiPart, SinglePart, header::ContentType},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    Reminders, Send,
    store::{self, SettingsRow},
    transport::{SendError, Transport},
};
use crate::{
    App,
    events::Catalog,
    identity::{self, Actor, Tenant},
    sales::{self, OrderStatus, OrderView},
};

/// Reminders go out this long before an event unless the org says
/// otherwise.
pub const DEFAULT_REMINDER_HOURS: i64 = 24;
/// At most this far ahead (a year).
pub const MAX_REMINDER_HOURS: i64 = 24 * 365;
/// Reminder jobs enqueued per database write.
const REMINDER_BATCH: i64 = 500;

/// What the org's mail says about its sender.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct MailSettings {
    /// The From display name; the organization's name when null.
    #[schema(max_length = 100)]
    pub sender_name: Option<String>,
    /// Where buyers' replies go; no Reply-To header when null.
    #[schema(max_length = 254)]
    pub reply_to: Option<String>,
    /// Hours before an event starts that its ticket holders are reminded;
    /// 0 sends no reminders.
    #[schema(minimum = 0, maximum = 8760)]
    pub reminder_hours: i64,
}

impl From<SettingsRow> for MailSettings {
    fn from(r: SettingsRow) -> Self {
        MailSettings {
            sender_name: r.sender_name,
            reply_to: r.reply_to,
            reminder_hours: r.reminder_hours,
        }
    }
}

async fn settings_of(app: &App, org: OrgId) -> Result<MailSettings, sqlx::Error> {
    Ok(store::settings(app.db(), org)
        .await?
        .map(MailSettings::from)
        .unwrap_or(MailSettings {
            sender_name: None,
            reply_to: None,
            reminder_hours: DEFAULT_REMINDER_HOURS,
        }))
}

pub async fn settings(app: &App, actor: &Actor) -> ApiResult<MailSettings> {
    let t = actor.require(Permission::SettingsManage)?;
    Ok(settings_of(app, t.org()).await?)
}

/// Checks and stores the org's mail settings (audited).
pub async fn put_settings(app: &App, actor: &Actor, s: MailSettings) -> ApiResult<MailSettings> {
    let t = actor.require(Permission::SettingsManage)?;
    let mut errors = Vec::new();
    let sender_name = match s.sender_name.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(n) if n.chars().count() > 100 => {
            errors.push(FieldError::new("sender_name", "at most 100 characters"));
            None
        }
        Some(n) if n.chars().any(char::is_control) => {
            errors.push(FieldError::new("sender_name", "no control characters"));
            None
        }
        Some(n) => Some(n.to_string()),
    };
    let reply_to = match s.reply_to.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(a) => match kernel::parse::email(a).and_then(|a| check_address(&a).map(|_| a)) {
            Ok(a) => Some(a),
            Err(e) => {
                errors.push(FieldError::new("reply_to", &e));
                None
            }
        },
    };
    if !(0..=MAX_REMINDER_HOURS).contains(&s.reminder_hours) {
        errors.push(FieldError::new(
            "reminder_hours",
            format!("from 0 (no reminders) to {MAX_REMINDER_HOURS}"),
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let before = settings_of(app, t.org()).await?;
    let row = SettingsRow {
        sender_name,
        reply_to,
        reminder_hours: s.reminder_hours,
    };
    let after = MailSettings::from(row.clone());
    let now = app.kernel.now();
    let audit = actor
        .audit("mail.settings_update", "mail_settings")
        .object(t.org())
        .before(&before)
        .after(&after)
        .stmt(now);
    let mut tx = app.db().begin().await?;
    tx.run_all(vec![store::put_settings(t, &row, now), audit])
        .await?;
    tx.commit().await?;
    Ok(after)
}

/// Whether lettre takes `address` as a mailbox address.
pub fn check_address(address: &str) -> Result<(), String> {
    address
        .parse::<lettre::Address>()
        .map(|_| ())
        .map_err(|e| format!("not an e-mail address: {e}"))
}

/// One entry of the org's mail log.
#[derive(Debug, Serialize, ToSchema)]
pub struct SentMail {
    pub id: uuid::Uuid,
    /// `order_confirmation`, `order_expired`, `reminder` or
    /// `endpoint_disabled`.
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub order_id: Option<uuid::Uuid>,
    /// PDF tickets attached.
    pub attachments: i64,
    pub sent_at: String,
}

pub async fn log(
    app: &App,
    actor: &Actor,
    before: Option<uuid::Uuid>,
    limit: i64,
) -> ApiResult<Vec<SentMail>> {
    let t = actor.require(Permission::SettingsManage)?;
    Ok(store::recent(app.db(), t, before, limit.clamp(1, 200))
        .await?
        .into_iter()
        .map(|r| SentMail {
            id: r.id,
            kind: r.kind,
            recipient: r.recipient,
            subject: r.subject,
            order_id: r.order_id,
            attachments: r.attachments,
            sent_at: rfc3339(r.created_at),
        })
        .collect())
}

/// `micros` as the venue's wall-clock time, e.g. "Sat 2 Jan 2027, 20:00
/// (Africa/Johannesburg)"; UTC when the zone is unknown.
pub fn local_time(micros: i64, tz: &str) -> String {
    let Ok(ts) = jiff::Timestamp::from_microsecond(micros) else {
        return rfc3339(micros);
    };
    match ts.in_tz(tz) {
        Ok(z) => format!("{} ({tz})", z.strftime("%a %-d %b %Y, %H:%M")),
        Err(_) => format!("{} (UTC)", ts.strftime("%a %-d %b %Y, %H:%M")),
    }
}

/// One ticket of `order` as a PDF.
pub async fn ticket_pdf(
    app: &App,
    t: &Tenant,
    order: &OrderView,
    ticket: TicketId,
) -> ApiResult<Option<Vec<u8>>> {
    let Some(catalog) = crate::events::catalog(app, t, order.event_id).await? else {
        return Ok(None);
    };
    let org = identity::org_by_id(app, t.org()).await?;
    let organizer = org.map(|o| o.name.clone()).unwrap_or_default();
    let Some(doc) = order
        .tickets
        .iter()
        .find(|x| x.id == ticket)
        .map(|x| ticket_doc(&organizer, &catalog, order, x))
    else {
        return Ok(None);
    };
    render(vec![doc])
        .await
        .map(|mut v| v.pop())
        .map_err(ApiError::internal)
}

fn ticket_doc(
    organizer: &str,
    catalog: &Catalog,
    order: &OrderView,
    ticket: &crate::tickets::TicketView,
) -> ticketpdf::TicketDoc {
    let e = &catalog.event;
    let ty = catalog.ticket_type(ticket.ticket_type_id);
    let questions = ty.map(|t| t.questions.as_slice()).unwrap_or_default();
    let attendee = crate::events::questions::attendee_name(questions, &ticket.answers);
    ticketpdf::TicketDoc {
        organizer: organizer.to_string(),
        event: e.name.clone(),
        when: local_time(e.starts_at_micros, &e.timezone),
        venue: None,
        ticket_type: ty.map(|tt| tt.name.clone()).unwrap_or_default(),
        holder: attendee
            .or(ticket.holder.as_ref().map(|h| h.name.as_str()))
            .unwrap_or(&order.buyer.name)
            .to_string(),
        details: crate::events::questions::labelled(questions, &ticket.answers)
            .into_iter()
            .filter(|(_, a)| Some(a.as_str()) != attendee)
            .collect(),
        seat: ticket
            .seat
            .as_ref()
            .map(|s| format!("{} · Row {}, seat {}", s.section, s.row, s.label)),
        order_number: order.id.to_string(),
        code: ticket.code.clone(),
    }
}

/// Renders PDFs off the async threads (each is a few milliseconds of CPU).
async fn render(docs: Vec<ticketpdf::TicketDoc>) -> Result<Vec<Vec<u8>>, String> {
    tokio::task::spawn_blocking(move || docs.iter().map(ticketpdf::render).collect())
        .await
        .map_err(|e| format!("rendering failed: {e}"))?
}

/// A message about to go out.
struct Draft {
    kind: &'static str,
    to: Vec<Mailbox>,
    subject: String,
    body: String,
    order: Option<OrderId>,
    /// What makes this message one of a kind when the order does not (a
    /// refund: an order may have several).
    once: Option<uuid::Uuid>,
    attachments: Vec<(String, Vec<u8>)>,
}

fn mailbox(name: Option<&str>, address: &str) -> Result<Mailbox, JobError> {
    let address = address
        .parse()
        .map_err(|e| JobError::Discard(format!("{address:?} is not an address: {e}")))?;
    Ok(Mailbox::new(name.map(str::to_string), address))
}

/// Sends one message of the `mail.send` job.
pub async fn send(app: &App, job: Send) -> HandlerResult {
    let org = job.org();
    let Some(t) = identity::upkeep_tenant(app, org)
        .await
        .map_err(api_failed)?
    else {
        return Err(JobError::Discard(format!("organization {org} is gone")));
    };
    let Some(org_ref) = identity::org_by_id(app, org).await.map_err(api_failed)? else {
        return Err(JobError::Discard(format!("organization {org} is gone")));
    };
    let settings = settings_of(app, org).await?;
    let draft = match job {
        Send::OrderConfirmation { order, .. } => {
            order_mail(app, &t, &org_ref.name, order, Occasion::Paid).await?
        }
        Send::OrderExpired { order, .. } => {
            order_mail(app, &t, &org_ref.name, order, Occasion::Expired).await?
        }
        Send::Reminder { order, .. } => {
            order_mail(app, &t, &org_ref.name, order, Occasion::Reminder).await?
        }
        Send::OrderRefunded {
            order,
            refund,
            amount_cents,
            full,
            ..
        } => {
            let occasion = Occasion::Refunded {
                refund,
                amount_cents,
                full,
            };
            order_mail(app, &t, &org_ref.name, order, occasion).await?
        }
        Send::OrderCancelled {
            order,
            refunded_cents,
            ..
        } => {
            let occasion = Occasion::Cancelled { refunded_cents };
            order_mail(app, &t, &org_ref.name, order, occasion).await?
        }
        Send::OrderLookup { email, request, .. } => {
            lookup_mail(app, &t, &org_ref, &email, request).await?
        }
        Send::TicketTransferred { order, ticket, .. } => {
            transferred_mail(app, &t, &org_ref, order, ticket).await?
        }
        Send::WaitlistOffer {
            event,
            hold,
            ticket_type,
            quantity,
            email,
            name,
            expires_at,
            ..
        } => {
            let Some(catalog) = crate::events::catalog(app, &t, event)
                .await
                .map_err(api_failed)?
            else {
                return Ok(());
            };
            let e = &catalog.event;
            let type_name = catalog
                .ticket_type(ticket_type)
                .map(|t| t.name.clone())
                .unwrap_or_default();
            let until = kernel::clock::parse_rfc3339(&expires_at)
                .map(|m| local_time(m, &e.timezone))
                .unwrap_or(expires_at);
            let base = app.kernel.config.public_url.trim_end_matches('/');
            Some(Draft {
                kind: "waitlist_offer",
                to: vec![mailbox(Some(&name), &email)?],
                subject: format!("Tickets for {} are yours to take", e.name),
                body: format!(
                    "Hello {name},\n\nTickets came back: {quantity} × {type_name} for {} ({}) \
                     are held for you until {until}. Take them here:\n\
                     {base}/s/{}/holds/{hold}\n\nNot taken by then, they go to the next in line.\n",
                    e.name,
                    local_time(e.starts_at_micros, &e.timezone),
                    org_ref.slug,
                ),
                order: None,
                once: Some(hold.0),
                attachments: Vec::new(),
            })
        }
        Send::EndpointDisabled { url, reason, .. } => {
            let owners = identity::owner_emails(app, org).await.map_err(api_failed)?;
            let to = owners
                .iter()
                .filter_map(|a| mailbox(None, a).ok())
                .collect();
            Some(Draft {
                kind: "endpoint_disabled",
                to,
                subject: "A webhook endpoint was disabled".into(),
                body: format!(
                    "The webhook endpoint {url} of {} no longer receives events: {reason}.\n\n\
                     Fix the receiver, then enable it again in the console (Webhooks); \
                     deliveries that failed can be sent again from its delivery log.\n",
                    org_ref.name
                ),
                order: None,
                once: None,
                attachments: Vec::new(),
            })
        }
    };
    let Some(draft) = draft else { return Ok(()) };
    if draft.to.is_empty() {
        return Err(JobError::Discard("no one to send it to".into()));
    }
    let config = &app.kernel.config;
    // One message per (kind, what it is about): a retried job sends nothing
    // twice. What it is about is the order, or the refund for refund notices.
    let about = draft.once.or(draft.order.map(|o| o.0));
    let message_id = message_id(
        draft.kind,
        about.unwrap_or_else(uuid::Uuid::now_v7),
        &config.mail_from,
    );
    if about.is_some() && store::already_sent(app.db(), org, &message_id).await? {
        return Ok(());
    }
    let sender = settings.sender_name.as_deref().unwrap_or(&org_ref.name);
    let from = mailbox(Some(sender), &config.mail_from)?;
    let mut builder = Message::builder()
        .from(from)
        .subject(draft.subject.clone())
        .message_id(Some(message_id.clone()));
    for to in &draft.to {
        builder = builder.to(to.clone());
    }
    if let Some(reply_to) = &settings.reply_to {
        builder = builder.reply_to(mailbox(None, reply_to)?);
    }
    let n = draft.attachments.len() as i64;
    let pdf = ContentType::parse("application/pdf").expect("a valid content type");
    let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(draft.body.clone()));
    for (name, bytes) in draft.attachments {
        parts = parts.singlepart(Attachment::new(name).body(bytes, pdf.clone()));
    }
    let message = builder
        .multipart(parts)
        .map_err(|e| JobError::Discard(format!("the message cannot be built: {e}")))?;
    match app.state::<Transport>().send(&message).await {
        Ok(()) => {}
        Err(SendError::Permanent(e)) => return Err(JobError::Discard(format!("refused: {e}"))),
        Err(SendError::Transient(e)) => return Err(JobError::Failed(e)),
    }
    let recipients = draft
        .to
        .iter()
        .map(|m| m.email.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    store::log(
        app.db(),
        store::Sent {
            org,
            kind: draft.kind,
            recipient: &recipients,
            subject: &draft.subject,
            order: draft.order,
            attachments: n,
            message_id: &message_id,
        },
        app.kernel.now(),
    )
    .await?;
    metrics::counter!("voelgoed_mail_sent_total", "kind" => draft.kind).increment(1);
    Ok(())
}

/// The buyer's link to their orders, listed (none: no orders, nothing to
/// send).
async fn lookup_mail(
    app: &App,
    t: &Tenant,
    org: &crate::identity::OrgRef,
    email: &str,
    request: uuid::Uuid,
) -> Result<Option<Draft>, JobError> {
    let failed = |e: sales::Error| api_failed(e.into());
    let orders = sales::lookup::orders_of(app, t, email)
        .await
        .map_err(failed)?;
    if orders.is_empty() {
        return Ok(None);
    }
    let token = sales::lookup::mint(app, t, email).await.map_err(failed)?;
    let base = app.kernel.config.public_url.trim_end_matches('/');
    let link = format!("{base}/s/{}/orders/mine?token={token}", org.slug);
    let mut list = String::new();
    for o in &orders {
        list.push_str(&format!(
            "- {} · {} · {} · order {}\n",
            o.event_name,
            crate::money::format(o.total_cents, &o.currency),
            o.status.as_str().replace('_', " "),
            o.id
        ));
    }
    Ok(Some(Draft {
        kind: "order_lookup",
        to: vec![mailbox(None, email)?],
        subject: format!("Your orders with {}", org.name),
        body: format!(
            "Hello,\n\nYou asked for your orders with {}. This address has:\n\n{list}\n\
             Open them (tickets, invoices) with this link for the next 24 hours:\n{link}\n\n\
             If you did not ask, you can ignore this message.\n",
            org.name
        ),
        order: None,
        once: Some(request),
        attachments: Vec::new(),
    }))
}

/// The message id of a kind of mail about one thing (what makes it sent
/// once).
fn message_id(kind: &str, about: uuid::Uuid, mail_from: &str) -> String {
    let domain = mail_from.rsplit('@').next().unwrap_or("localhost");
    format!("<{kind}.{about}@{domain}>")
}

/// A ticket handed on, to its new holder: the PDF, and a link to its page
/// (a new key, minted only when the message is really to go out: a link
/// already mailed keeps working).
async fn transferred_mail(
    app: &App,
    t: &Tenant,
    org: &crate::identity::OrgRef,
    order: OrderId,
    ticket: TicketId,
) -> Result<Option<Draft>, JobError> {
    if store::already_sent(
        app.db(),
        t.org(),
        &message_id("ticket_transferred", ticket.0, &app.kernel.config.mail_from),
    )
    .await?
    {
        return Ok(None);
    }
    let Some(order) = sales::order_for_upkeep(app, t, order)
        .await
        .map_err(|e| api_failed(e.into()))?
    else {
        return Ok(None);
    };
    let Some(tk) = order.tickets.iter().find(|x| x.id == ticket) else {
        return Ok(None);
    };
    let Some(holder) = tk.holder.clone() else {
        return Ok(None);
    };
    if tk.status != crate::tickets::TicketStatus::Valid {
        return Ok(None); // handed on again, or revoked, before this went out
    }
    let Some(catalog) = crate::events::catalog(app, t, order.event_id)
        .await
        .map_err(api_failed)?
    else {
        return Ok(None);
    };
    let token = crate::tickets::mint_holder_token(app, t, ticket)
        .await
        .map_err(api_failed)?;
    let base = app.kernel.config.public_url.trim_end_matches('/');
    let link = format!(
        "{base}/s/{}/tickets/{ticket}?access_token={token}",
        org.slug
    );
    let e = &catalog.event;
    let doc = ticket_doc(&org.name, &catalog, &order, tk);
    let pdfs = render(vec![doc]).await.map_err(JobError::Failed)?;
    Ok(Some(Draft {
        kind: "ticket_transferred",
        to: vec![mailbox(Some(&holder.name), &holder.email)?],
        subject: format!("Your ticket to {}", e.name),
        body: format!(
            "Hello {},\n\n{} handed you a ticket to {} ({}). It is attached: show its QR \
             code at the gate.\n\nYour ticket's page (to see it, or hand it on in turn):\n{link}\n",
            holder.name,
            order.buyer.name,
            e.name,
            local_time(e.starts_at_micros, &e.timezone),
        ),
        order: None,
        once: Some(ticket.0),
        attachments: pdfs
            .into_iter()
            .map(|p| (format!("ticket-{ticket}.pdf"), p))
            .collect(),
    }))
}

fn api_failed(e: ApiError) -> JobError {
    JobError::Failed(e.to_string())
}

#[derive(Clone, Copy, PartialEq)]
enum Occasion {
    Paid,
    Expired,
    Reminder,
    Refunded {
        refund: RefundId,
        amount_cents: i64,
        full: bool,
    },
    Cancelled {
        refunded_cents: i64,
    },
}

/// The buyer's message about an order, or None when the occasion has
/// passed (a reminder for an order no longer paid).
async fn order_mail(
    app: &App,
    t: &Tenant,
    organizer: &str,
    order: OrderId,
    occasion: Occasion,
) -> Result<Option<Draft>, JobError> {
    let Some(mut order) = sales::order_for_upkeep(app, t, order)
        .await
        .map_err(|e| api_failed(e.into()))?
    else {
        return Err(JobError::Discard(format!("order {order} is gone")));
    };
    // The buyer's tickets only: one handed on is its new holder's (and
    // the one it replaced no longer admits).
    order
        .tickets
        .retain(|x| x.holder.is_none() && x.transferred_at.is_none());
    let catalog: Arc<Catalog> = crate::events::catalog(app, t, order.event_id)
        .await
        .map_err(api_failed)?
        .ok_or_else(|| JobError::Discard(format!("the event of order {} is gone", order.id)))?;
    let e = &catalog.event;
    let when = local_time(e.starts_at_micros, &e.timezone);
    let to = vec![mailbox(Some(&order.buyer.name), &order.buyer.email)?];
    let (kind, subject, body, attach) = match occasion {
        Occasion::Paid => {
            if !matches!(
                order.status,
                OrderStatus::Paid | OrderStatus::PartiallyRefunded
            ) {
                return Ok(None);
            }
            (
                "order_confirmation",
                format!("Your tickets for {}", e.name),
                format!(
                    "Hello {},\n\nThank you for your order {} with {organizer}.\n\n{}\n{when}\n\n\
                     Your {} attached, one PDF per ticket: show the QR code at the gate, \
                     on paper or on your phone.\n",
                    order.buyer.name,
                    order.id,
                    e.name,
                    if order.tickets.len() == 1 {
                        "ticket is"
                    } else {
                        "tickets are"
                    },
                ),
                true,
            )
        }
        Occasion::Reminder => {
            if !matches!(
                order.status,
                OrderStatus::Paid | OrderStatus::PartiallyRefunded
            ) || e.starts_at_micros <= app.kernel.now()
            {
                return Ok(None);
            }
            (
                "reminder",
                format!("Soon: {}", e.name),
                format!(
                    "Hello {},\n\n{} starts {when}.\n\nYour tickets are attached again, in case \
                     you need them: show the QR code at the gate.\n",
                    order.buyer.name, e.name
                ),
                true,
            )
        }
        Occasion::Refunded {
            amount_cents, full, ..
        } => {
            let money = crate::money::format(amount_cents, &order.currency);
            (
                "order_refunded",
                format!("Refund for your order for {}", e.name),
                format!(
                    "Hello {},\n\n{organizer} refunded {money} of your order {} for {} ({when}).\n\n{}\
                     The money goes back the way you paid; your bank may take a few days to show it.\n",
                    order.buyer.name,
                    order.id,
                    e.name,
                    if full {
                        "That is all of it, so your tickets no longer admit anyone.\n\n"
                    } else {
                        "Your tickets stay valid.\n\n"
                    },
                ),
                false,
            )
        }
        Occasion::Cancelled { refunded_cents } => {
            if order.status != OrderStatus::Cancelled {
                return Ok(None);
            }
            let refunded = if refunded_cents > 0 {
                format!(
                    " {} is refunded the way you paid; your bank may take a few days to show it.",
                    crate::money::format(refunded_cents, &order.currency)
                )
            } else {
                " Nothing was charged.".to_string()
            };
            (
                "order_cancelled",
                format!("Your order for {} was cancelled", e.name),
                format!(
                    "Hello {},\n\n{organizer} cancelled your order {} for {} ({when}), so its \
                     tickets no longer admit anyone.{refunded}\n",
                    order.buyer.name, order.id, e.name
                ),
                false,
            )
        }
        Occasion::Expired => {
            if order.status != OrderStatus::Expired {
                return Ok(None);
            }
            (
                "order_expired",
                format!("Your order for {} has expired", e.name),
                format!(
                    "Hello {},\n\nYour order {} for {} ({when}) was not paid in time, so it has \
                     expired and its tickets went back on sale. Nothing was charged.\n",
                    order.buyer.name, order.id, e.name
                ),
                false,
            )
        }
    };
    let attachments = if attach {
        let docs: Vec<_> = order
            .tickets
            .iter()
            .map(|x| ticket_doc(organizer, &catalog, &order, x))
            .collect();
        let names: Vec<String> = (1..=docs.len())
            .map(|i| format!("ticket-{i}.pdf"))
            .collect();
        let pdfs = render(docs).await.map_err(JobError::Discard)?;
        names.into_iter().zip(pdfs).collect()
    } else {
        Vec::new()
    };
    Ok(Some(Draft {
        kind,
        to,
        subject,
        body,
        order: Some(order.id),
        once: match occasion {
            Occasion::Refunded { refund, .. } => Some(refund.0),
            _ => None,
        },
        attachments,
    }))
}

/// The `mail.reminders` job of one event: sleeps until the reminder time
/// (snoozing, so a changed setting is read when it wakes), then enqueues a
/// reminder per paid order.
pub async fn remind(app: &App, job: Reminders) -> HandlerResult {
    let Some(t) = identity::upkeep_tenant(app, job.org)
        .await
        .map_err(api_failed)?
    else {
        return Err(JobError::Discard(format!(
            "organization {} is gone",
            job.org
        )));
    };
    let Some(catalog) = crate::events::catalog(app, &t, job.event)
        .await
        .map_err(api_failed)?
    else {
        return Err(JobError::Discard(format!("event {} is gone", job.event)));
    };
    let settings = settings_of(app, job.org).await?;
    let now = app.kernel.now();
    let starts = catalog.event.starts_at_micros;
    if settings.reminder_hours == 0 || starts <= now {
        return Ok(());
    }
    let due = starts - settings.reminder_hours * 3600 * 1_000_000;
    if now < due {
        // Wake at least daily, so a shortened lead is noticed in time.
        let wait = (due - now).min(24 * 3600 * 1_000_000);
        return Err(JobError::Snooze(std::time::Duration::from_micros(
            wait as u64,
        )));
    }
    enqueue_reminders(app, &t, job.org, job.event).await
}

async fn enqueue_reminders(app: &App, t: &Tenant, org: OrgId, event: EventId) -> HandlerResult {
    let mut after = None;
    loop {
        let orders = sales::paid_orders(app, t, event, after, REMINDER_BATCH)
            .await
            .map_err(|e| api_failed(e.into()))?;
        let Some(last) = orders.last().copied() else {
            break;
        };
        let now = app.kernel.now();
        let stmts = orders
            .iter()
            .map(|&order| {
                NewJob::of(&Send::Reminder { org, order })
                    .unique(format!("reminder:{order}"))
                    .for_org(org.0)
                    .stmt(now)
            })
            .collect();
        app.db().write_grouped(stmts).await?;
        kernel::jobs::wake(super::QUEUE.name);
        after = Some(last);
    }
    Ok(())
}
