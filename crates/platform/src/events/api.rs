//! Events' HTTP surface (organizer API).

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use kernel::{
    ApiError,
    http::{ApiJson, ApiPath, ApiQuery},
    ids::EventId,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::domain::{self, EventView, NewEvent, NewTicketType, TicketTypeView};
use crate::{App, identity::OrgActor};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(create_event, list_events))
        .routes(routes!(get_event))
        .routes(routes!(add_ticket_type))
        .routes(routes!(publish))
        .routes(routes!(cancel_event))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEvent {
    /// Not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: String,
    #[schema(format = DateTime, pattern = r"^(?:[1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")]
    starts_at: String,
    /// After `starts_at`.
    #[schema(format = DateTime, pattern = r"^(?:[1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")]
    ends_at: String,
    /// IANA time zone name of the venue, e.g. Africa/Johannesburg.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9_+-][A-Za-z0-9/_+-]*$",
        example = "Africa/Johannesburg"
    )]
    timezone: String,
}

/// Creates a draft event.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/events", tag = "events",
    params(("org" = String, Path, description = "organization slug")),
    request_body = CreateEvent, security(("api_key" = [])),
    responses((status = 201, body = EventView, description = "the draft event",
               links(("get_event" = (operation_id = "get_event",
                         parameters(("org" = "$request.path.org"), ("event_id" = "$response.body#/id")))),
                     ("add_ticket_type" = (operation_id = "add_ticket_type",
                         parameters(("org" = "$request.path.org"), ("event_id" = "$response.body#/id")))),
                     ("publish" = (operation_id = "publish",
                         parameters(("org" = "$request.path.org"), ("event_id" = "$response.body#/id"))))))))]
async fn create_event(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiJson(req): ApiJson<CreateEvent>,
) -> Result<Response, ApiError> {
    let view = domain::create_event(
        &app,
        &actor,
        NewEvent {
            name: req.name,
            starts_at: req.starts_at,
            ends_at: req.ends_at,
            timezone: req.timezone,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most 200; 50 when left out.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EventList {
    data: Vec<EventView>,
    next_cursor: Option<String>,
}

/// The org's events, oldest first.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events", tag = "events",
    params(("org" = String, Path, description = "organization slug"), ListQuery), security(("api_key" = [])),
    responses((status = 200, body = EventList, description = "a page of events")))]
async fn list_events(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<axum::Json<EventList>, ApiError> {
    let (limit, after) = kernel::http::page::<EventId>(q.limit, q.cursor.as_deref())?;
    let (data, next) = domain::list_events(&app, &actor, limit, after).await?;
    Ok(axum::Json(EventList {
        data,
        next_cursor: next.map(|n| n.to_string()),
    }))
}

/// One event with its ticket types.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events/{event_id}", tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = EventView, description = "the event")))]
async fn get_event(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
) -> Result<axum::Json<EventView>, ApiError> {
    let (_, event) = path;
    Ok(axum::Json(domain::get_event(&app, &actor, event).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTicketType {
    /// Not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: String,
    /// Price in minor units of `currency` (VAT included); 0 is free.
    #[schema(minimum = 0, maximum = 100_000_000_000i64)]
    price_cents: i64,
    /// ISO 4217 code.
    #[schema(pattern = r"^[A-Z]{3}$", example = "ZAR")]
    currency: String,
    #[schema(minimum = 1, maximum = 10_000_000)]
    capacity: i64,
    #[schema(format = DateTime, pattern = r"^(?:[1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")]
    sale_starts_at: Option<String>,
    /// After `sale_starts_at`.
    #[schema(format = DateTime, pattern = r"^(?:[1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")]
    sale_ends_at: Option<String>,
    #[schema(minimum = 1, maximum = 1000)]
    max_per_order: Option<i64>,
}

/// Adds a general-admission ticket type with a capacity.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/events/{event_id}/ticket-types", tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path)),
    request_body = CreateTicketType, security(("api_key" = [])),
    responses((status = 201, body = TicketTypeView, description = "the ticket type",
               links(("publish" = (operation_id = "publish",
                   parameters(("org" = "$request.path.org"), ("event_id" = "$request.path.event_id"))))))))]
async fn add_ticket_type(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiJson(req): ApiJson<CreateTicketType>,
) -> Result<Response, ApiError> {
    let (_, event) = path;
    let view = domain::add_ticket_type(
        &app,
        &actor,
        event,
        NewTicketType {
            name: req.name,
            price_cents: req.price_cents,
            currency: req.currency,
            capacity: req.capacity,
            sale_starts_at: req.sale_starts_at,
            sale_ends_at: req.sale_ends_at,
            max_per_order: req.max_per_order,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

/// Calls the event off: it leaves the storefront at once; a job cancels
/// every order, refunds what was paid and tells each buyer. Again: no change.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/events/{event_id}/cancel", tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = EventView, description = "the cancelled event")))]
async fn cancel_event(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
) -> Result<axum::Json<EventView>, ApiError> {
    let (_, event) = path;
    Ok(axum::Json(domain::cancel(&app, &actor, event).await?))
}

/// Publishes the event: it appears on the storefront and goes on sale.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/events/{event_id}/publish", tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = EventView, description = "the published event",
               links(("store_event" = (operation_id = "store_event",
                         parameters(("org" = "$request.path.org"), ("event_id" = "$response.body#/id")))),
                     ("create_hold" = (operation_id = "create_hold",
                         parameters(("org" = "$request.path.org"), ("event_id" = "$response.body#/id")))))),
              (status = 422, description = "the event has no ticket type yet")))]
async fn publish(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
) -> Result<axum::Json<EventView>, ApiError> {
    let (_, event) = path;
    Ok(axum::Json(domain::publish(&app, &actor, event).await?))
}
