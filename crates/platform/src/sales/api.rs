//! Sales' HTTP surface: the storefront API and orders.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use kernel::{
    ApiError,
    http::{ApiJson, ApiPath, ApiQuery, ClientAddr},
    idempotency::{Fingerprint, Key},
    ids::{EventId, HoldId, OrderId, TicketTypeId},
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::domain::{self, Buyer, HoldItem, HoldView, OrderView, PaymentMethod, StoreEvent};
use crate::{
    App,
    identity::{OrgActor, StoreTenant},
};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(store_event))
        .routes(routes!(create_hold))
        .routes(routes!(checkout))
        .routes(routes!(store_order))
        .routes(routes!(get_order))
}

/// A published event with its ticket types and what is left of each.
#[utoipa::path(get, path = "/api/v1/store/{org}/events/{event_id}", tag = "storefront",
    params(("org" = String, Path), ("event_id" = String, Path)),
    responses((status = 200, body = StoreEvent, description = "the event as buyers see it")))]
async fn store_event(
    State(app): State<App>,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, EventId)>,
) -> Result<axum::Json<StoreEvent>, ApiError> {
    let (_, event) = path;
    Ok(axum::Json(
        Box::pin(domain::store_event(&app, &t, event)).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// One entry per ticket type (at most 20), each type once.
    #[serde(default)]
    #[schema(required = true, min_items = 1, max_items = 20)]
    items: Vec<HoldRequestItem>,
    /// Seat ids, for seated events (an event without a seat map answers
    /// 422 naming `seats`).
    seats: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequestItem {
    /// A ticket type of the event, on sale now (else 422 naming it).
    #[schema(schema_with = kernel::http::schema::uuid)]
    ticket_type_id: TicketTypeId,
    /// At most the ticket type's `max_per_order` (10 when it sets none).
    #[schema(minimum = 1, maximum = 1000)]
    quantity: i64,
}

/// Holds tickets for a while (15 minutes unless configured otherwise).
#[utoipa::path(post, path = "/api/v1/store/{org}/events/{event_id}/holds", tag = "storefront",
    params(("org" = String, Path), ("event_id" = String, Path)), request_body = HoldRequest,
    responses((status = 201, body = HoldView, description = "the hold",
               links(("checkout" = (operation_id = "checkout",
                   parameters(("org" = "$request.path.org"), ("hold_id" = "$response.body#/id")))))),
              (status = 409, description = "sold_out: not enough tickets left"),
              (status = 429, description = "too many holds from this address")))]
async fn create_hold(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiJson(req): ApiJson<HoldRequest>,
) -> Result<Response, ApiError> {
    let (_, event) = path;
    app.kernel.limits.storefront.check(&ip).await?;
    if req.seats.is_some() {
        return Err(ApiError::field(
            "seats",
            "this event has no seat map; hold items instead",
        ));
    }
    // Boxed: the handler's own future stays small (moving it is a copy).
    let items = req
        .items
        .into_iter()
        .map(|i| HoldItem {
            ticket_type_id: i.ticket_type_id,
            quantity: i.quantity,
        })
        .collect();
    let hold = Box::pin(domain::create_hold(&app, &t, event, items)).await?;
    Ok((StatusCode::CREATED, axum::Json(hold)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    buyer: CheckoutBuyer,
    /// How a priced order is paid: `card` (the default; through the card
    /// provider, 422 when none is configured) or `eft` (a bank transfer with
    /// the order's reference). A free order ignores it.
    #[serde(default)]
    payment_method: PaymentMethod,
}

/// The buyer, as the checkout takes it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutBuyer {
    #[schema(schema_with = kernel::http::schema::email)]
    email: String,
    /// Not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: String,
}

/// Turns a hold into an order. Send `Idempotency-Key` to make retries safe:
/// the same key and body answer the first reply again; another body → 422;
/// while the first is in flight → 409.
#[utoipa::path(post, path = "/api/v1/store/{org}/holds/{hold_id}/checkout", tag = "storefront",
    params(("org" = String, Path), ("hold_id" = String, Path),
           ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters",
            min_length = 1, max_length = 255, pattern = r"^[!-~]+$")),
    request_body = CheckoutRequest,
    responses((status = 201, body = OrderView, description = "the order (free: paid, with tickets; priced: pending)",
               links(("store_order" = (operation_id = "store_order",
                         parameters(("org" = "$request.path.org"), ("order_id" = "$response.body#/id"),
                                    ("access_token" = "$response.body#/access_token")))),
                     ("get_order" = (operation_id = "get_order",
                         parameters(("org" = "$request.path.org"), ("order_id" = "$response.body#/id")))),
                     ("qr_svg" = (operation_id = "qr_svg",
                         parameters(("org" = "$request.path.org"), ("ticket_id" = "$response.body#/tickets/0/id")))),
                     ("scan" = (operation_id = "scan",
                         request_body = json!({"code": "$response.body#/tickets/0/code",
                                               "event_id": "$response.body#/event_id"}))))),
              (status = 409, description = "the hold was already checked out, or the first request with this key is in flight"),
              (status = 410, description = "hold_expired"),
              (status = 422, description = "validation (card payments not configured), or idempotency_conflict: the key was used with another body"),
              (status = 429, description = "too many checkouts from this address, or by this buyer (`Retry-After`, `RateLimit-*`)"),
              (status = 503, description = "provider_unavailable: the card provider did not answer; nothing was charged, retry with the same key")))]
async fn checkout(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, HoldId)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    let (_, hold) = path;
    app.kernel.limits.storefront.check(&ip).await?;
    let key = Key::from_headers(&headers)?;
    // serde_json's maps are ordered, so equal bodies have equal fingerprints.
    let text = body.to_string();
    let fingerprint = Fingerprint::of(&[hold.0.as_bytes(), text.as_bytes()]);
    let req: CheckoutRequest = kernel::http::body_from_value(body)?;
    // Per buyer too, whatever address they come from (across nodes).
    app.kernel
        .limits
        .buyer
        .check(&req.buyer.email.trim().to_lowercase())
        .await?;
    let buyer = Buyer {
        email: req.buyer.email,
        name: req.buyer.name,
    };
    let reply = Box::pin(domain::checkout(
        &app,
        &t,
        hold,
        buyer,
        req.payment_method,
        key.map(|k| (k, fingerprint)),
    ))
    .await?;
    Ok(domain::reply_response(reply))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessQuery {
    /// The `access_token` of the checkout reply.
    #[param(min_length = 1, max_length = 256)]
    access_token: String,
}

/// The buyer's view of an order, with its tickets.
#[utoipa::path(get, path = "/api/v1/store/{org}/orders/{order_id}", tag = "storefront",
    params(("org" = String, Path), ("order_id" = String, Path), AccessQuery),
    responses((status = 200, body = OrderView, description = "the order")))]
async fn store_order(
    State(app): State<App>,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, OrderId)>,
    ApiQuery(q): ApiQuery<AccessQuery>,
) -> Result<axum::Json<OrderView>, ApiError> {
    let (_, order) = path;
    Ok(axum::Json(
        domain::get_order_for_buyer(&app, &t, order, &q.access_token).await?,
    ))
}

/// An order with its tickets; each ticket's `code` is the exact QR text.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/orders/{order_id}", tag = "orders",
    params(("org" = String, Path), ("order_id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = OrderView, description = "the order")))]
async fn get_order(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, OrderId)>,
) -> Result<axum::Json<OrderView>, ApiError> {
    let (_, order) = path;
    Ok(axum::Json(domain::get_order(&app, &actor, order).await?))
}
