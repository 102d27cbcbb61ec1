//! Orders and money over HTTP: the organizer's order list, mark-paid,
//! refunds, cancel; and the card provider's webhook.

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use kernel::{
    ApiError,
    http::{ApiJson, ApiPath, ApiQuery},
    idempotency::{Fingerprint, Key},
    ids::OrderId,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    domain::{self, OrderStatus, OrderView},
    money::{self, RefundRequest, RefundView, WebhookAck},
    settings::{self, MoneySettings},
};
use crate::{App, identity::OrgActor};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_orders))
        .routes(routes!(mark_paid))
        .routes(routes!(create_refund))
        .routes(routes!(cancel_order))
        .routes(routes!(stripe_webhook))
        .routes(routes!(get_money_settings, put_money_settings))
        .routes(routes!(get_invoice))
}

/// The org's money settings: currency, VAT shown inside prices, booking fee
/// per priced ticket, and the seller's details for invoices.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/money/settings", tag = "orders",
    params(("org" = String, Path, description = "organization slug")),
    security(("api_key" = [])),
    responses((status = 200, body = MoneySettings, description = "the settings (defaults until set)")))]
async fn get_money_settings(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
) -> Result<axum::Json<MoneySettings>, ApiError> {
    Ok(axum::Json(settings::get(&app, &actor).await?))
}

/// Replaces the org's money settings (settings permission). Orders placed
/// before keep the fee and tax they were sold with.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/money/settings", tag = "orders",
    params(("org" = String, Path, description = "organization slug")),
    request_body = MoneySettings, security(("api_key" = [])),
    responses((status = 200, body = MoneySettings, description = "the settings as stored")))]
async fn put_money_settings(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiJson(req): ApiJson<MoneySettings>,
) -> Result<axum::Json<MoneySettings>, ApiError> {
    Ok(axum::Json(settings::put(&app, &actor, req).await?))
}

/// The order's invoice as a PDF: a number of the org's gap-free sequence,
/// given when the order was paid.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/orders/{order_id}/invoice", tag = "orders",
    params(("org" = String, Path, description = "organization slug"), ("order_id" = OrderId, Path)),
    security(("api_key" = [])),
    responses((status = 200, content_type = "application/pdf", description = "the invoice"),
              (status = 409, description = "the order has no invoice: not paid, or free")))]
async fn get_invoice(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, OrderId)>,
) -> Result<Response, ApiError> {
    let order = domain::get_order(&app, &actor, path.1).await?;
    let (name, pdf) = settings::invoice_pdf(&app, actor.tenant(), &order).await?;
    Ok(pdf_response(&name, pdf))
}

/// A PDF reply, offered as a download under `name`.
pub(super) fn pdf_response(name: &str, pdf: Vec<u8>) -> Response {
    let mut res = Body::from(pdf).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    res
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrdersQuery {
    /// A buyer's name or e-mail (part of it), or an order's id.
    #[param(max_length = 200)]
    q: Option<String>,
    status: Option<OrderStatus>,
    /// Only this event's orders.
    #[param(format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    event_id: Option<String>,
    /// At most 200; 50 when left out.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OrderList {
    data: Vec<domain::OrderListItem>,
    next_cursor: Option<String>,
}

/// The org's orders, newest first: search by name, e-mail or id, filter by
/// status and event.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/orders", tag = "orders",
    params(("org" = String, Path, description = "organization slug"), OrdersQuery),
    security(("api_key" = [])),
    responses((status = 200, body = OrderList, description = "a page of orders")))]
async fn list_orders(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiQuery(q): ApiQuery<OrdersQuery>,
) -> Result<axum::Json<OrderList>, ApiError> {
    let (limit, before) = kernel::http::page::<OrderId>(q.limit, q.cursor.as_deref())?;
    let event = match q.event_id.as_deref() {
        Some(e) => Some(
            e.parse()
                .map_err(|_| ApiError::field("event_id", "is not an id"))?,
        ),
        None => None,
    };
    let filter = domain::OrderFilter {
        q: q.q.filter(|s| !s.trim().is_empty()),
        status: q.status,
        event,
    };
    let data = domain::list_orders(&app, &actor, &filter, before, limit).await?;
    let next_cursor = kernel::http::next_cursor(&data, limit, |o| o.id);
    Ok(axum::Json(OrderList { data, next_cursor }))
}

/// Marks an order paid by EFT (finance permission): its tickets are issued.
/// A paid order answers as it is; an expired one is revived when its
/// tickets are still there.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/orders/{order_id}/mark-paid", tag = "orders",
    params(("org" = String, Path, description = "organization slug"), ("order_id" = OrderId, Path)),
    security(("api_key" = [])),
    responses((status = 200, body = OrderView, description = "the order, paid"),
              (status = 409, description = "a card order, a cancelled order, or sold_out: it expired and its tickets were sold")))]
async fn mark_paid(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, OrderId)>,
) -> Result<axum::Json<OrderView>, ApiError> {
    Ok(axum::Json(
        Box::pin(money::mark_paid(&app, &actor, path.1)).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    /// Minor units; all that is left of the payment when left out.
    #[schema(minimum = 1)]
    amount_cents: Option<i64>,
    #[serde(default)]
    #[schema(max_length = 500, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    reason: String,
}

/// Refunds part or all of an order (finance permission). Never more than
/// was paid; a full refund revokes the tickets. Send `Idempotency-Key`: a
/// retry with it never refunds twice.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/orders/{order_id}/refunds", tag = "orders",
    params(("org" = String, Path, description = "organization slug"), ("order_id" = OrderId, Path),
           ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters",
            min_length = 1, max_length = 255, pattern = r"^[!-~]+$")),
    request_body = CreateRefund, security(("api_key" = [])),
    responses((status = 201, body = RefundView, description = "the refund (`pending` while the card provider sends it)"),
              (status = 409, description = "the order is not paid (nothing to refund), or the first request with this key is in flight"),
              (status = 422, description = "validation (`amount_cents` more than is left), or idempotency_conflict")))]
async fn create_refund(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, OrderId)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    let order = path.1;
    let key = Key::from_headers(&headers)?;
    let fingerprint = Fingerprint::of_json(order.0.as_bytes(), &body);
    let req: CreateRefund = kernel::http::body_from_value(body)?;
    let reply = Box::pin(money::refund(
        &app,
        &actor,
        order,
        RefundRequest {
            amount_cents: req.amount_cents,
            reason: req.reason,
        },
        key.map(|k| (k, fingerprint)),
    ))
    .await?;
    Ok(domain::reply_response(reply))
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CancelOrder {
    #[serde(default)]
    #[schema(max_length = 500, pattern = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$")]
    reason: String,
}

/// Cancels an order (finance permission): unpaid, it stops waiting; paid,
/// what is left is refunded and its tickets revoked. Either way its tickets
/// go back on sale. Cancelling again changes nothing.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/orders/{order_id}/cancel", tag = "orders",
    params(("org" = String, Path, description = "organization slug"), ("order_id" = OrderId, Path)),
    request_body(content = Option<CancelOrder>), security(("api_key" = [])),
    responses((status = 200, body = OrderView, description = "the order, cancelled"),
              (status = 409, description = "the order expired or was refunded in full: nothing to cancel")))]
async fn cancel_order(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, OrderId)>,
    body: Bytes,
) -> Result<axum::Json<OrderView>, ApiError> {
    let text = std::str::from_utf8(&body).unwrap_or("x").trim();
    let req: CancelOrder = if text.is_empty() || text == "null" {
        CancelOrder::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::field("body", &e.to_string()))?
    };
    Ok(axum::Json(
        Box::pin(money::cancel(&app, &actor, path.1, &req.reason)).await?,
    ))
}

/// The card provider's webhook (Stripe's protocol): `Stripe-Signature`
/// must verify under the configured webhook secret within 300 s, else 400
/// and nothing changes. `payment_intent.succeeded` pays the order (or
/// revives an expired one, or refunds a payment that came too late);
/// `payment_intent.payment_failed` records why; a replayed event changes
/// nothing.
#[utoipa::path(post, path = "/api/v1/payments/stripe/webhook", tag = "payments",
    params(("Stripe-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256 of \"t.body\">")),
    request_body(content = serde_json::Value, content_type = "application/json"),
    responses((status = 200, body = WebhookAck, description = "taken (applied now, or before)"),
              (status = 400, description = "the signature does not verify, or the body is not an event")))]
async fn stripe_webhook(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<WebhookAck>, ApiError> {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    Ok(axum::Json(
        Box::pin(money::stripe_webhook(&app, signature, &body)).await?,
    ))
}
