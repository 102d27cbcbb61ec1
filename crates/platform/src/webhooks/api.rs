//! Webhooks' HTTP surface (API.md Part 2, Integrations).

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use kernel::{
    ApiError,
    http::{ApiJson, ApiPath, ApiQuery},
    ids::{DeliveryId, WebhookId},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::domain::{self, DeliveryView, WebhookView};
use crate::{App, identity::OrgActor};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, delete_webhook))
        .routes(routes!(rotate_webhook_secret))
        .routes(routes!(enable_webhook))
        .routes(routes!(disable_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(retry_delivery))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where deliveries are POSTed: http(s), no credentials; private,
    /// loopback and link-local targets are refused unless the node allows
    /// them.
    #[schema(
        min_length = 8,
        max_length = 2000,
        pattern = r"^[hH][tT][tT][pP][sS]?://([A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?(\?[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$"
    )]
    url: String,
    /// The event types to receive, or `["*"]` for all.
    #[schema(min_items = 1, max_items = 12, value_type = Vec<EventTypeName>)]
    event_types: Vec<String>,
}

/// An event type a webhook endpoint may subscribe to.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
enum EventTypeName {
    #[serde(rename = "*")]
    All,
    #[serde(rename = "order.created")]
    OrderCreated,
    #[serde(rename = "order.paid")]
    OrderPaid,
    #[serde(rename = "order.expired")]
    OrderExpired,
    #[serde(rename = "order.refunded")]
    OrderRefunded,
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
    #[serde(rename = "ticket.issued")]
    TicketIssued,
    #[serde(rename = "ticket.revoked")]
    TicketRevoked,
    #[serde(rename = "ticket.transferred")]
    TicketTransferred,
    #[serde(rename = "ticket.admitted")]
    TicketAdmitted,
    #[serde(rename = "ticket.exited")]
    TicketExited,
    #[serde(rename = "ticket.admission_undone")]
    TicketAdmissionUndone,
    #[serde(rename = "event.published")]
    EventPublished,
    #[serde(rename = "event.cancelled")]
    EventCancelled,
}

/// A new endpoint, with its signing secret: shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    webhook: WebhookView,
    /// `whsec_` and the base64 key (Standard Webhooks).
    secret: String,
}

/// Registers a webhook endpoint.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/webhooks", tag = "webhooks",
    params(("org" = String, Path, description = "organization slug")),
    request_body = CreateWebhook, security(("api_key" = [])),
    responses((status = 201, body = CreatedWebhook, description = "the endpoint and its secret (shown once)",
               links(("get_webhook" = (operation_id = "get_webhook",
                         parameters(("org" = "$request.path.org"), ("webhook_id" = "$response.body#/id"))))))))]
async fn create_webhook(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiJson(req): ApiJson<CreateWebhook>,
) -> Result<Response, ApiError> {
    let (webhook, secret) = domain::create(&app, &actor, req.url, req.event_types).await?;
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::Json(CreatedWebhook { webhook, secret }),
    )
        .into_response())
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    data: Vec<WebhookView>,
}

/// The org's webhook endpoints.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/webhooks", tag = "webhooks",
    params(("org" = String, Path, description = "organization slug")), security(("api_key" = [])),
    responses((status = 200, body = WebhookList, description = "every endpoint")))]
async fn list_webhooks(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
) -> Result<axum::Json<WebhookList>, ApiError> {
    Ok(axum::Json(WebhookList {
        data: domain::list(&app, &actor).await?,
    }))
}

/// One endpoint (never its secret).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/webhooks/{webhook_id}", tag = "webhooks",
    params(("org" = String, Path, description = "organization slug"),
           ("webhook_id" = WebhookId, Path, description = "the endpoint")),
    security(("api_key" = [])),
    responses((status = 200, body = WebhookView, description = "the endpoint")))]
async fn get_webhook(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, WebhookId)>,
) -> Result<axum::Json<WebhookView>, ApiError> {
    let id = path.1;
    Ok(axum::Json(domain::get(&app, &actor, id).await?))
}

/// Removes an endpoint and its delivery log.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/webhooks/{webhook_id}", tag = "webhooks",
    params(("org" = String, Path, description = "organization slug"),
           ("webhook_id" = WebhookId, Path, description = "the endpoint")),
    security(("api_key" = [])),
    responses((status = 204, description = "removed")))]
async fn delete_webhook(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, WebhookId)>,
) -> Result<StatusCode, ApiError> {
    let id = path.1;
    domain::delete(&app, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new secret (shown once); the previous one keeps verifying for 24 hours.
    secret: String,
}

/// Rotates the signing secret: for a day both secrets sign each delivery.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/webhooks/{webhook_id}/rotate", tag = "webhooks",
    params(("org" = String, Path, description = "organization slug"),
           ("webhook_id" = WebhookId, Path, description = "the endpoint")),
    security(("api_key" = [])),
    responses((status = 200, body = RotatedSecret, description = "the new secret")))]
async fn rotate_webhook_secret(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, WebhookId)>,
) -> Result<Response, ApiError> {
    let id = path.1;
    let secret = domain::rotate(&app, &actor, id).await?;
    Ok((
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::Json(RotatedSecret { secret }),
    )
        .into_response())
}

/// Switches a (disabled) endpoint on again.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/webhooks/{webhook_id}/enable", tag = "webhooks",
    params(("org" = String, Path, description = "organization slug"),
           ("webhook_id" = WebhookId, Path, description = "the endpoint")),
    security(("api_key" = [])),
    responses((status = 200, body = WebhookView, description = "the endpoint, active")))]
async fn enable_webhook(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, WebhookId)>,
) -> Result<axum::Json<WebhookView>, ApiError> {
    let id = path.1;
    Ok(axum::Json(
        domain::set_active(&app, &actor, id, true).await?,
    ))
}

/// Stops deliveries to an endpoint (waiting ones are cancelled).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/webhooks/{webhook_id}/disable", tag = "webhooks",
    params(("org" = String, Path, description = "organization slug"),
           ("webhook_id" = WebhookId, Path, description = "the endpoint")),
    security(("api_key" = [])),
    responses((status = 200, body = WebhookView, description = "the endpoint, disabled")))]
async fn disable_webhook(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, WebhookId)>,
) -> Result<axum::Json<WebhookView>, ApiError> {
    let id = path.1;
    Ok(axum::Json(
        domain::set_active(&app, &actor, id, false).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// At most 200; 50 when left out.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    data: Vec<DeliveryView>,
    next_cursor: Option<String>,
}

/// The delivery log of an endpoint, newest first, with each attempt's
/// request headers, status and latency.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/webhooks/{webhook_id}/deliveries", tag = "webhooks",
    params(("org" = String, Path, description = "organization slug"),
           ("webhook_id" = WebhookId, Path, description = "the endpoint"), DeliveriesQuery),
    security(("api_key" = [])),
    responses((status = 200, body = DeliveryList, description = "a page of deliveries")))]
async fn list_deliveries(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, WebhookId)>,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> Result<axum::Json<DeliveryList>, ApiError> {
    let id = path.1;
    let (limit, before) = kernel::http::page::<DeliveryId>(q.limit, q.cursor.as_deref())?;
    let data = domain::deliveries(&app, &actor, id, before, limit, true).await?;
    let next_cursor = kernel::http::next_cursor(&data, limit, |d| d.id);
    Ok(axum::Json(DeliveryList { data, next_cursor }))
}

/// Sends a delivery again now (a new attempt with the same `webhook-id`).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", tag = "webhooks",
    params(("org" = String, Path, description = "organization slug"),
           ("webhook_id" = WebhookId, Path, description = "the endpoint"),
           ("delivery_id" = DeliveryId, Path, description = "the delivery")),
    security(("api_key" = [])),
    responses((status = 202, body = DeliveryView, description = "queued again"),
              (status = 409, description = "the endpoint is disabled")))]
async fn retry_delivery(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, WebhookId, DeliveryId)>,
) -> Result<Response, ApiError> {
    let (_, id, delivery) = path;
    let d = domain::redeliver(&app, &actor, id, delivery).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(d)).into_response())
}
