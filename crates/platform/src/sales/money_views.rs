//! The organizer's order pages: search and filter the org's orders; an
//! order's payment, refunds and tickets; mark paid, refund, cancel.

use askama::Template;
use axum::{
    Form,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use kernel::{
    ApiError,
    http::{ApiPath, ApiQuery},
    idempotency::{Fingerprint, Key},
    ids::{EventId, OrderId},
};
use serde::Deserialize;

use super::{
    domain::{self, OrderFilter, OrderStatus, OrderView},
    money::{self, RefundRequest},
};
use crate::{
    App,
    identity::SessionActor,
    web::{Fields, csrf_matches, csrf_refused, field, page, said},
};

pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/dashboard/orders", get(list))
        .route("/dashboard/orders/{order_id}", get(detail))
        .route("/dashboard/orders/{order_id}/mark-paid", post(mark_paid))
        .route("/dashboard/orders/{order_id}/refund", post(refund))
        .route("/dashboard/orders/{order_id}/cancel", post(cancel))
        .route("/dashboard/money", get(money_page).post(money_save))
        .route(
            "/dashboard/events/{event_id}/limits",
            get(limits_page).post(limits_save),
        )
        .route("/dashboard/events/{event_id}/waiting-room", post(room_save))
}

#[derive(Template)]
#[template(path = "money.html")]
struct MoneyPage {
    org_slug: String,
    csrf: String,
    s: super::settings::MoneySettings,
    saved: bool,
    error: Option<String>,
}

impl MoneyPage {
    fn fee(&self) -> String {
        crate::money::amount(self.s.fee_per_ticket_cents, &self.s.currency)
    }
    fn tax_percent(&self) -> String {
        crate::money::amount(self.s.tax_bp, "XXX")
    }
}

fn money_page_of(
    session: &SessionActor,
    status: StatusCode,
    s: super::settings::MoneySettings,
    saved: bool,
    error: Option<String>,
) -> Response {
    page(
        status,
        MoneyPage {
            org_slug: session.actor.org_slug().to_string(),
            csrf: session.csrf.clone(),
            s,
            saved,
            error,
        },
    )
}

async fn money_page(State(app): State<App>, session: SessionActor) -> Result<Response, ApiError> {
    let s = super::settings::get(&app, &session.actor).await?;
    Ok(money_page_of(&session, StatusCode::OK, s, false, None))
}

async fn money_save(
    State(app): State<App>,
    session: SessionActor,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_ok(&session, &form) {
        return Ok(csrf_refused());
    }
    let opt = |name: &str| Some(field(&form, name).to_string()).filter(|v| !v.trim().is_empty());
    let currency = field(&form, "currency").trim().to_uppercase();
    let tax = crate::money::parse(field(&form, "tax_percent"), "XXX");
    let fee = crate::money::parse(field(&form, "fee"), &currency);
    let wanted = super::settings::MoneySettings {
        currency: currency.clone(),
        tax_bp: tax.unwrap_or(-1),
        tax_name: field(&form, "tax_name").to_string(),
        fee_per_ticket_cents: fee.unwrap_or(-1),
        seller_name: opt("seller_name"),
        seller_address: opt("seller_address"),
        seller_tax_number: opt("seller_tax_number"),
        invoice_prefix: field(&form, "invoice_prefix").trim().to_uppercase(),
    };
    match super::settings::put(&app, &session.actor, wanted.clone()).await {
        Ok(s) => Ok(money_page_of(&session, StatusCode::OK, s, true, None)),
        Err(e) if e.status().is_client_error() => {
            let shown = super::settings::MoneySettings {
                tax_bp: wanted.tax_bp.max(0),
                fee_per_ticket_cents: wanted.fee_per_ticket_cents.max(0),
                ..wanted
            };
            Ok(money_page_of(
                &session,
                e.status(),
                shown,
                false,
                Some(e.problem().detail),
            ))
        }
        Err(e) => Err(e),
    }
}

const STATUSES: [&str; 6] = [
    "pending",
    "paid",
    "partially_refunded",
    "refunded",
    "cancelled",
    "expired",
];

struct Row {
    id: String,
    name: String,
    email: String,
    status: String,
    total: String,
    paid: String,
    refunded: String,
    method: String,
    created_at: String,
}

#[derive(Template)]
#[template(path = "orders.html")]
struct ListPage {
    org_slug: String,
    q: String,
    status: String,
    statuses: &'static [&'static str],
    orders: Vec<Row>,
    next: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
}

async fn list(
    State(app): State<App>,
    session: SessionActor,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let q = query.q.unwrap_or_default().trim().to_string();
    let status_text = query.status.unwrap_or_default();
    let status = match status_text.as_str() {
        "" => None,
        s => Some(
            OrderStatus::try_from(s.to_string())
                .map_err(|_| ApiError::field("status", "is not an order status"))?,
        ),
    };
    let (limit, before) = kernel::http::page::<OrderId>(Some(50), query.cursor.as_deref())?;
    let filter = OrderFilter {
        q: (!q.is_empty()).then(|| q.clone()),
        status,
        event: None,
    };
    let (orders, error) =
        match domain::list_orders(&app, &session.actor, &filter, before, limit).await {
            Ok(o) => (o, None),
            Err(e) => {
                let e = ApiError::from(e);
                if !e.status().is_client_error() {
                    return Err(e);
                }
                (Vec::new(), Some(e.problem().detail))
            }
        };
    let next = kernel::http::next_cursor(&orders, limit, |o| o.id);
    let rows = orders
        .into_iter()
        .map(|o| Row {
            id: o.id.to_string(),
            name: o.buyer.name,
            email: o.buyer.email,
            status: o.status.as_str().to_string(),
            total: crate::money::format(o.total_cents, &o.currency),
            paid: crate::money::format(o.paid_cents, &o.currency),
            refunded: crate::money::format(o.refunded_cents, &o.currency),
            method: o.payment_method,
            created_at: o.created_at,
        })
        .collect();
    Ok(page(
        StatusCode::OK,
        ListPage {
            org_slug: session.actor.org_slug().to_string(),
            q,
            status: status_text,
            statuses: &STATUSES,
            orders: rows,
            next,
            error,
        },
    ))
}

#[derive(Template)]
#[template(path = "order_admin.html")]
struct DetailPage {
    o: OrderView,
    csrf: String,
    /// A fresh idempotency key per rendering of the refund form: a double
    /// submit refunds once.
    refund_key: String,
    notice: Option<String>,
    error: Option<String>,
}

impl DetailPage {
    fn money(&self, cents: &i64) -> String {
        crate::money::format(*cents, &self.o.currency)
    }
    fn money_plain(&self, cents: i64) -> String {
        crate::money::amount(cents, &self.o.currency)
    }
    fn refundable_text(&self) -> String {
        crate::money::format(self.refundable(), &self.o.currency)
    }
    fn refundable(&self) -> i64 {
        match self.o.status {
            OrderStatus::Paid | OrderStatus::PartiallyRefunded if self.o.payment.is_some() => {
                self.o.paid_cents - self.o.refunded_cents
            }
            _ => 0,
        }
    }
    fn can_mark_paid(&self) -> bool {
        matches!(self.o.status, OrderStatus::Pending | OrderStatus::Expired)
            && self
                .o
                .payment
                .as_ref()
                .is_some_and(|p| p.provider == money::MANUAL && p.status == "requires_payment")
    }
    fn cancellable(&self) -> bool {
        matches!(
            self.o.status,
            OrderStatus::Pending | OrderStatus::Paid | OrderStatus::PartiallyRefunded
        )
    }
}

async fn render(
    app: &App,
    session: &SessionActor,
    order: OrderId,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, ApiError> {
    let o = domain::get_order(app, &session.actor, order).await?;
    let mut res = page(
        status,
        DetailPage {
            o,
            csrf: session.csrf.clone(),
            refund_key: kernel::auth::PlainToken::generate("rf_")
                .expose()
                .to_string(),
            notice,
            error,
        },
    );
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

#[derive(Deserialize)]
struct DetailQuery {
    /// What the last action did (after its redirect).
    done: Option<String>,
}

async fn detail(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(order): ApiPath<OrderId>,
    ApiQuery(q): ApiQuery<DetailQuery>,
) -> Result<Response, ApiError> {
    let notice = match q.done.as_deref() {
        Some("marked paid") => Some("Marked paid: the tickets are issued and mailed.".to_string()),
        Some("refunded") => Some("Refund recorded.".to_string()),
        Some("cancelled") => Some("Order cancelled.".to_string()),
        _ => None,
    };
    render(&app, &session, order, StatusCode::OK, notice, None).await
}

fn csrf_ok(session: &SessionActor, form: &Fields) -> bool {
    csrf_matches(&session.csrf, field(form, "csrf"))
}

/// After an action: back to the order (a redirect, so a reload does not
/// post again), or the order with the action's error.
async fn outcome<T>(
    app: &App,
    session: &SessionActor,
    order: OrderId,
    result: Result<T, ApiError>,
    done: &str,
) -> Result<Response, ApiError> {
    match result {
        Ok(_) => Ok(Redirect::to(&format!(
            "/dashboard/orders/{order}?done={}",
            done.replace(' ', "+")
        ))
        .into_response()),
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::NOT_FOUND => {
            let status = e.status();
            render(app, session, order, status, None, Some(e.problem().detail)).await
        }
        Err(e) => Err(e),
    }
}

async fn mark_paid(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(order): ApiPath<OrderId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_ok(&session, &form) {
        return Ok(csrf_refused());
    }
    let r = money::mark_paid(&app, &session.actor, order)
        .await
        .map_err(ApiError::from);
    outcome(&app, &session, order, r, "marked paid").await
}

async fn refund(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(order): ApiPath<OrderId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_ok(&session, &form) {
        return Ok(csrf_refused());
    }
    let o = domain::get_order(&app, &session.actor, order).await?;
    let text = field(&form, "amount");
    let Some(amount) = crate::money::parse(text, &o.currency) else {
        let msg = format!(
            "amount: {text:?} is not an amount in {} (e.g. {})",
            o.currency,
            crate::money::amount(1050, &o.currency)
        );
        return render(
            &app,
            &session,
            order,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(msg),
        )
        .await;
    };
    let reason = field(&form, "reason").trim().to_string();
    let key = field(&form, "key");
    let idempotency = Key::parse(key).ok().map(|k| {
        let fp = Fingerprint::of(&[order.0.as_bytes(), &amount.to_le_bytes(), reason.as_bytes()]);
        (k, fp)
    });
    let r = money::refund(
        &app,
        &session.actor,
        order,
        RefundRequest {
            amount_cents: Some(amount),
            reason,
        },
        idempotency,
    )
    .await
    .map_err(ApiError::from)
    .and_then(|reply| {
        if reply.status.is_success() {
            Ok(())
        } else {
            // A replayed refusal: its problem says why.
            let p: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or_default();
            Err(ApiError::Conflict(
                p["detail"].as_str().unwrap_or("refused").to_string(),
            ))
        }
    });
    outcome(&app, &session, order, r, "refunded").await
}

async fn cancel(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(order): ApiPath<OrderId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_ok(&session, &form) {
        return Ok(csrf_refused());
    }
    let reason = field(&form, "reason").trim().to_string();
    let r = money::cancel(&app, &session.actor, order, &reason)
        .await
        .map_err(ApiError::from);
    outcome(&app, &session, order, r, "cancelled").await
}

#[derive(Template)]
#[template(path = "sales_limits.html")]
struct LimitsPage {
    event_id: String,
    event_name: String,
    csrf: String,
    per_order: String,
    per_buyer: String,
    /// The waiting list's offer time in hours (empty: the default 48).
    offer_hours: String,
    saved: bool,
    error: Option<String>,
    room_enabled: bool,
    room_rate: String,
    /// `YYYY-MM-DDTHH:MM` (UTC), as the form's field takes it.
    room_opens: String,
    room_saved: bool,
    room_error: Option<String>,
}

fn shown(n: Option<i64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_default()
}

/// The page with both forms as stored.
async fn on_sale_page(
    app: &App,
    session: &SessionActor,
    event: EventId,
) -> Result<LimitsPage, ApiError> {
    let t = session.actor.require(kernel::Permission::EventsRead)?;
    let catalog = crate::events::catalog(app, t, event)
        .await?
        .ok_or(ApiError::NotFound)?;
    let l = super::limits::get(app, &session.actor, event).await?;
    let room = super::queue::get_settings(app, &session.actor, event).await?;
    Ok(LimitsPage {
        event_id: event.to_string(),
        event_name: catalog.event.name.clone(),
        csrf: session.csrf.clone(),
        per_order: shown(l.max_tickets_per_order),
        per_buyer: shown(l.max_tickets_per_buyer),
        offer_hours: shown(l.waitlist_offer_hours),
        saved: false,
        error: None,
        room_enabled: room.enabled,
        room_rate: room.per_minute.to_string(),
        room_opens: room
            .opens_at
            .map(|o| o.get(..16).unwrap_or_default().to_string())
            .unwrap_or_default(),
        room_saved: false,
        room_error: None,
    })
}

async fn limits_page(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
) -> Result<Response, ApiError> {
    let p = on_sale_page(&app, &session, event).await?;
    Ok(page(StatusCode::OK, p))
}

async fn limits_save(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_ok(&session, &form) {
        return Ok(csrf_refused());
    }
    let mut p = on_sale_page(&app, &session, event).await?;
    p.per_order = field(&form, "max_tickets_per_order").trim().to_string();
    p.per_buyer = field(&form, "max_tickets_per_buyer").trim().to_string();
    p.offer_hours = field(&form, "waitlist_offer_hours").trim().to_string();
    // Empty is no limit; anything else must be a whole number.
    let number = |name: &str, v: &str| -> Result<Option<i64>, String> {
        if v.is_empty() {
            Ok(None)
        } else {
            v.parse()
                .map(Some)
                .map_err(|_| format!("{name}: a whole number, or empty for no limit"))
        }
    };
    let wanted = match (
        number("Tickets per order", &p.per_order),
        number("Tickets per buyer", &p.per_buyer),
        number("Waiting-list offer hours", &p.offer_hours),
    ) {
        (Ok(o), Ok(b), Ok(w)) => super::limits::SalesLimits {
            max_tickets_per_order: o,
            max_tickets_per_buyer: b,
            waitlist_offer_hours: w,
        },
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            p.error = Some(e);
            return Ok(page(StatusCode::UNPROCESSABLE_ENTITY, p));
        }
    };
    match super::limits::put(&app, &session.actor, event, wanted).await {
        Ok(l) => {
            p.per_order = shown(l.max_tickets_per_order);
            p.per_buyer = shown(l.max_tickets_per_buyer);
            p.offer_hours = shown(l.waitlist_offer_hours);
            p.saved = true;
            Ok(page(StatusCode::OK, p))
        }
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::NOT_FOUND => {
            p.error = Some(said(&e));
            Ok(page(e.status(), p))
        }
        Err(e) => Err(e),
    }
}

async fn room_save(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_ok(&session, &form) {
        return Ok(csrf_refused());
    }
    let mut p = on_sale_page(&app, &session, event).await?;
    p.room_enabled = field(&form, "enabled") == "on";
    p.room_rate = field(&form, "per_minute").trim().to_string();
    p.room_opens = field(&form, "opens_at").trim().to_string();
    let Ok(per_minute) = p.room_rate.parse::<i64>() else {
        p.room_error = Some("Visitors per minute: a whole number".into());
        return Ok(page(StatusCode::UNPROCESSABLE_ENTITY, p));
    };
    // The form's `YYYY-MM-DDTHH:MM` is UTC.
    let opens_at = (!p.room_opens.is_empty()).then(|| match p.room_opens.len() {
        16 => format!("{}:00Z", p.room_opens),
        _ => p.room_opens.clone(),
    });
    let wanted = super::queue::WaitingRoom {
        enabled: p.room_enabled,
        per_minute,
        opens_at,
    };
    match super::queue::put_settings(&app, &session.actor, event, wanted).await {
        Ok(_) => {
            p.room_saved = true;
            Ok(page(StatusCode::OK, p))
        }
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::NOT_FOUND => {
            p.room_error = Some(said(&e));
            Ok(page(e.status(), p))
        }
        Err(e) => Err(e),
    }
}
