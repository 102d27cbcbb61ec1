//! Sales' HTTP surface: the storefront API and orders.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use kernel::{
    ApiError, ApiResult,
    http::{ApiJson, ApiPath, ApiQuery},
    ids::{EventId, HoldId, OrderId, OrgId},
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::domain::{self, Buyer, HoldItem, HoldView, OrderView, StoreEvent};
use crate::{App, identity};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(store_event))
        .routes(routes!(create_hold))
        .routes(routes!(checkout))
        .routes(routes!(store_order))
        .routes(routes!(get_order))
}

type Problem = kernel::error::Problem;

pub(crate) async fn org_id(app: &App, slug: &str) -> ApiResult<OrgId> {
    identity::org_by_slug(app, slug)
        .await?
        .map(|o| o.id)
        .ok_or(ApiError::NotFound)
}

/// A published event with its ticket types and what is left of each.
#[utoipa::path(get, path = "/api/v1/store/{org}/events/{event_id}", tag = "storefront",
    params(("org" = String, Path), ("event_id" = String, Path)),
    responses((status = 200, body = StoreEvent), (status = 404, body = Problem)))]
async fn store_event(
    State(app): State<App>,
    ApiPath(path): ApiPath<(String, EventId)>,
) -> Result<axum::Json<StoreEvent>, ApiError> {
    let (org, event) = path;
    let org = org_id(&app, &org).await?;
    Ok(axum::Json(domain::store_event(&app, org, event).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    #[serde(default)]
    items: Vec<HoldItem>,
    /// Seat ids, for seated events.
    seats: Option<Vec<String>>,
}

/// Holds tickets for a while (15 minutes unless configured otherwise).
#[utoipa::path(post, path = "/api/v1/store/{org}/events/{event_id}/holds", tag = "storefront",
    params(("org" = String, Path), ("event_id" = String, Path)), request_body = HoldRequest,
    responses((status = 201, body = HoldView), (status = 409, body = Problem, description = "sold_out"),
              (status = 422, body = Problem), (status = 404, body = Problem)))]
async fn create_hold(
    State(app): State<App>,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiJson(req): ApiJson<HoldRequest>,
) -> Result<Response, ApiError> {
    let (org, event) = path;
    let org = org_id(&app, &org).await?;
    if req.seats.is_some() {
        return Err(ApiError::field(
            "seats",
            "this event has no seat map; hold items instead",
        ));
    }
    let hold = domain::create_hold(&app, org, event, req.items).await?;
    Ok((StatusCode::CREATED, axum::Json(hold)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    buyer: Buyer,
}

/// Turns a hold into an order. Send `Idempotency-Key` to make retries safe:
/// the same key and body answer the first reply again; another body → 422;
/// while the first is in flight → 409.
#[utoipa::path(post, path = "/api/v1/store/{org}/holds/{hold_id}/checkout", tag = "storefront",
    params(("org" = String, Path), ("hold_id" = String, Path),
           ("Idempotency-Key" = Option<String>, Header)),
    request_body = CheckoutRequest,
    responses((status = 201, body = OrderView), (status = 410, body = Problem, description = "hold_expired"),
              (status = 409, body = Problem), (status = 422, body = Problem), (status = 404, body = Problem)))]
async fn checkout(
    State(app): State<App>,
    ApiPath(path): ApiPath<(String, HoldId)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    let (org, hold) = path;
    let org = org_id(&app, &org).await?;
    let key = match headers.get("idempotency-key") {
        Some(v) => {
            let k = v
                .to_str()
                .map_err(|_| ApiError::field("Idempotency-Key", "must be visible ASCII"))?;
            if k.is_empty() || k.len() > 255 {
                return Err(ApiError::field(
                    "Idempotency-Key",
                    "must be 1 to 255 characters",
                ));
            }
            Some(k.to_string())
        }
        None => None,
    };
    // serde_json's maps are ordered, so equal bodies have equal fingerprints.
    let fingerprint = kernel::auth::sha256(format!("{hold}\n{body}").as_bytes());
    let req: CheckoutRequest =
        serde_json::from_value(body).map_err(|e| ApiError::field("body", &e.to_string()))?;
    let reply = domain::checkout(
        &app,
        org,
        hold,
        req.buyer,
        key.as_deref().map(|k| (k, fingerprint.as_slice())),
    )
    .await?;
    Ok((reply.status, axum::Json(reply.body)).into_response())
}

#[derive(Deserialize, IntoParams)]
pub struct AccessQuery {
    access_token: String,
}

/// The buyer's view of an order, with its tickets.
#[utoipa::path(get, path = "/api/v1/store/{org}/orders/{order_id}", tag = "storefront",
    params(("org" = String, Path), ("order_id" = String, Path), AccessQuery),
    responses((status = 200, body = OrderView), (status = 404, body = Problem)))]
async fn store_order(
    State(app): State<App>,
    ApiPath(path): ApiPath<(String, OrderId)>,
    ApiQuery(q): ApiQuery<AccessQuery>,
) -> Result<axum::Json<OrderView>, ApiError> {
    let (org, order) = path;
    let org = org_id(&app, &org).await?;
    Ok(axum::Json(
        domain::get_order_for_buyer(&app, org, order, &q.access_token).await?,
    ))
}

/// An order with its tickets; each ticket's `code` is the exact QR text.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/orders/{order_id}", tag = "orders",
    params(("org" = String, Path), ("order_id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = OrderView), (status = 404, body = Problem)))]
async fn get_order(
    State(app): State<App>,
    identity::OrgActor(actor): identity::OrgActor,
    ApiPath(path): ApiPath<(String, OrderId)>,
) -> Result<axum::Json<OrderView>, ApiError> {
    let (_, order) = path;
    Ok(axum::Json(domain::get_order(&app, &actor, order).await?))
}
