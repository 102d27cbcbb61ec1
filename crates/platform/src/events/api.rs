//! Events' HTTP surface (organizer API).

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use kernel::{
    ApiError,
    http::{ApiJson, ApiPath, ApiQuery},
    ids::{EventId, LayoutId, QuotaId, TicketTypeId, VoucherId},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::domain::{
    self, EventView, NewEvent, NewQuota, NewTicketType, QuotaView, TicketTypeView,
};
use super::layouts::{LayoutInput, LayoutView};
use crate::{App, identity::OrgActor};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(create_event, list_events))
        .routes(routes!(get_event))
        .routes(routes!(add_date, list_dates))
        .routes(routes!(add_ticket_type))
        .routes(routes!(update_ticket_type))
        .routes(routes!(get_transfer_policy, put_transfer_policy))
        .routes(routes!(publish))
        .routes(routes!(cancel_event))
        .routes(routes!(create_quota, list_quotas))
        .routes(routes!(delete_quota))
        .routes(routes!(create_voucher, list_vouchers))
        .routes(routes!(create_vouchers))
        .merge(
            // A map of 50,000 seats is several megabytes of JSON.
            OpenApiRouter::new()
                .routes(routes!(put_seating, get_seating))
                .routes(routes!(create_layout, list_layouts))
                .routes(routes!(get_layout, put_layout))
                .routes(routes!(seating_from_layout))
                .routes(routes!(save_as_layout))
                .layer(axum::extract::DefaultBodyLimit::max(
                    super::seating::MAX_MAP_BYTES,
                )),
        )
}

/// Stores the event's seat map, replacing the one before: sections of rows
/// of seats, each with its place (x, y), ticket type and flags. Each seat
/// gets a stable `id` (kept when a map is stored again with the same
/// section, row and label). A seat held or sold may not be removed, blocked
/// or moved to another ticket type (409).
#[utoipa::path(put, path = "/api/v1/orgs/{org}/events/{event_id}/seating", tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path)),
    request_body = super::SeatMapInput, security(("api_key" = [])),
    responses((status = 200, body = super::SeatMap, description = "the stored map"),
              (status = 409, description = "a seat that is held or sold would go"),
              (status = 422, description = "invalid: the offending seat is named")))]
async fn put_seating(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiJson(req): ApiJson<super::SeatMapInput>,
) -> Result<axum::Json<super::SeatMap>, ApiError> {
    let (_, event) = path;
    store_seating(&app, &actor, event, req)
        .await
        .map(axum::Json)
}

/// The event's seat map (404 when it has none).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events/{event_id}/seating", tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = super::SeatMap, description = "the map")))]
async fn get_seating(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
) -> Result<axum::Json<super::SeatMap>, ApiError> {
    let (_, event) = path;
    let t = actor.require(kernel::Permission::EventsRead)?;
    match super::seating(&app, t, event).await? {
        Some(m) => Ok(axum::Json((*m).clone())),
        None => Err(ApiError::NotFound),
    }
}

/// Keeps a venue layout for reuse (a seat map whose seats carry a
/// `category` instead of a ticket type); checked as a seat map is (422
/// naming the offending seat).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/venue-layouts", tag = "events",
    params(("org" = String, Path)), request_body = LayoutInput, security(("api_key" = [])),
    responses((status = 201, body = LayoutView, description = "the layout",
               links(("get_layout" = (operation_id = "get_layout",
                         parameters(("org" = "$request.path.org"), ("layout_id" = "$response.body#/id")))))),
              (status = 422, description = "invalid: the offending seat is named")))]
async fn create_layout(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiJson(req): ApiJson<LayoutInput>,
) -> Result<Response, ApiError> {
    let v = super::layouts::create_layout(&app, &actor, req).await?;
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct LayoutList {
    data: Vec<super::layouts::LayoutSummary>,
}

/// The org's venue layouts, newest first (without their seats).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/venue-layouts", tag = "events",
    params(("org" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = LayoutList, description = "the layouts")))]
async fn list_layouts(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
) -> Result<axum::Json<LayoutList>, ApiError> {
    Ok(axum::Json(LayoutList {
        data: super::layouts::list_layouts(&app, &actor).await?,
    }))
}

/// One venue layout with its seats (`sections`: its JSON export, as
/// `POST …/venue-layouts` takes it back with its `name`).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/venue-layouts/{layout_id}", tag = "events",
    params(("org" = String, Path), ("layout_id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = LayoutView, description = "the layout")))]
async fn get_layout(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, LayoutId)>,
) -> Result<axum::Json<LayoutView>, ApiError> {
    Ok(axum::Json(
        super::layouts::get_layout(&app, &actor, path.1).await?,
    ))
}

/// Replaces a venue layout whole; events that copied it keep their copy.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/venue-layouts/{layout_id}", tag = "events",
    params(("org" = String, Path), ("layout_id" = String, Path)),
    request_body = LayoutInput, security(("api_key" = [])),
    responses((status = 200, body = LayoutView, description = "the layout"),
              (status = 422, description = "invalid: the offending seat is named")))]
async fn put_layout(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, LayoutId)>,
    ApiJson(req): ApiJson<LayoutInput>,
) -> Result<axum::Json<LayoutView>, ApiError> {
    Ok(axum::Json(
        super::layouts::put_layout(&app, &actor, path.1, req).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FromLayout {
    layout_id: LayoutId,
    /// Each of the layout's categories → a ticket type of this event.
    ticket_types: std::collections::BTreeMap<String, TicketTypeId>,
}

/// Gives the event a copy of a venue layout as its seat map, each
/// category's seats on the ticket type named for it (a category left out
/// → 422 naming it). Replaces the map as `PUT …/seating` does (a seat held
/// or sold may not go: 409).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/events/{event_id}/seating/from-layout", tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path)),
    request_body = FromLayout, security(("api_key" = [])),
    responses((status = 200, body = super::SeatMap, description = "the stored map"),
              (status = 409, description = "a seat that is held or sold would go"),
              (status = 422, description = "a category without a ticket type, or an invalid map")))]
async fn seating_from_layout(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiJson(req): ApiJson<FromLayout>,
) -> Result<axum::Json<super::SeatMap>, ApiError> {
    let (_, event) = path;
    let map = super::layouts::map_for_event(&app, &actor, req.layout_id, &req.ticket_types).await?;
    store_seating(&app, &actor, event, map)
        .await
        .map(axum::Json)
}

/// Stores `map` as the event's seat map (the seats held or sold asked of
/// the sales slice).
async fn store_seating(
    app: &App,
    actor: &crate::identity::Actor,
    event: EventId,
    map: super::SeatMapInput,
) -> Result<super::SeatMap, ApiError> {
    let t = actor.require(kernel::Permission::EventsWrite)?;
    let claimed = crate::sales::seats::claimed(app.db(), t, event)
        .await?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    Ok(super::put_seating(app, actor, event, map, &claimed).await?)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveAsLayout {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: String,
}

/// Keeps the event's seat map as a venue layout: each seat's category is
/// its ticket type's name (404 when the event has no map).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/events/{event_id}/seating/save-as-layout", tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path)),
    request_body = SaveAsLayout, security(("api_key" = [])),
    responses((status = 201, body = LayoutView, description = "the layout")))]
async fn save_as_layout(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiJson(req): ApiJson<SaveAsLayout>,
) -> Result<Response, ApiError> {
    let (_, event) = path;
    let v = super::layouts::layout_from_event(&app, &actor, event, &req.name).await?;
    Ok((StatusCode::CREATED, axum::Json(v)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVoucher {
    /// Letters, digits, `-`, `_`; kept upper case, matched in any case.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^\s*[A-Za-z0-9_-]{1,64}\s*$"
    )]
    code: String,
    /// Percent off each ticket it discounts; give this or `amount_off_cents`.
    /// 0: a voucher that only unlocks the hidden ticket types it names.
    #[schema(minimum = 0, maximum = 100)]
    percent_off: Option<i64>,
    /// Minor units off each ticket (never below zero).
    #[schema(minimum = 1, maximum = 100_000_000_000i64)]
    amount_off_cents: Option<i64>,
    /// Tickets it may discount, ever (each discounted ticket is one use).
    #[schema(minimum = 1, maximum = 1_000_000)]
    max_uses: i64,
    #[schema(format = DateTime, pattern = r"^(?:[1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")]
    valid_until: Option<String>,
    /// Only these ticket types (of this event); all when left out.
    #[serde(default)]
    #[schema(max_items = 100)]
    ticket_type_ids: Vec<TicketTypeId>,
    /// Reserve its `max_uses` tickets of its one ticket type now: taken
    /// from the type's availability (409 when fewer are left), they wait for
    /// the voucher's holders until `valid_until`, then what is unused goes
    /// back on sale. Not for a series' vouchers.
    #[serde(default)]
    reserve: bool,
}

/// Makes a voucher. A hold takes it as `"voucher": "CODE"`.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/events/{event_id}/vouchers", tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path)),
    request_body = CreateVoucher, security(("api_key" = [])),
    responses((status = 201, body = domain::VoucherView, description = "the voucher"),
              (status = 409, description = "fewer tickets left than the voucher would reserve"),
              (status = 422, description = "invalid, or the code is taken for this event")))]
async fn create_voucher(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiJson(req): ApiJson<CreateVoucher>,
) -> Result<Response, ApiError> {
    let (_, event) = path;
    let view = super::create_voucher(
        &app,
        &actor,
        event,
        &req.code,
        super::NewVoucher {
            percent_off: req.percent_off,
            amount_off_cents: req.amount_off_cents,
            max_uses: req.max_uses,
            valid_until: req.valid_until,
            ticket_type_ids: req.ticket_type_ids,
            reserve: req.reserve,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVouchers {
    /// How many to make (each its own random code).
    #[schema(minimum = 1, maximum = 1000)]
    count: i64,
    /// Put before each code's ten random characters.
    #[serde(default)]
    #[schema(max_length = 32, pattern = r"^\s*[A-Za-z0-9_-]{0,32}\s*$")]
    prefix: String,
    #[schema(minimum = 0, maximum = 100)]
    percent_off: Option<i64>,
    #[schema(minimum = 1, maximum = 100_000_000_000i64)]
    amount_off_cents: Option<i64>,
    /// Per voucher.
    #[schema(minimum = 1, maximum = 1_000_000)]
    max_uses: i64,
    #[schema(format = DateTime, pattern = r"^(?:[1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")]
    valid_until: Option<String>,
    #[serde(default)]
    #[schema(max_items = 100)]
    ticket_type_ids: Vec<TicketTypeId>,
    /// Reserve every voucher's `max_uses` of its one ticket type (all of
    /// them, or none: 409 when fewer are left).
    #[serde(default)]
    reserve: bool,
}

#[derive(Serialize, ToSchema)]
pub struct VoucherList {
    data: Vec<domain::VoucherView>,
    next_cursor: Option<String>,
}

/// Makes `count` vouchers with the same terms, codes `prefix` + ten random
/// characters; all of them or none.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/events/{event_id}/vouchers/bulk", tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path)),
    request_body = CreateVouchers, security(("api_key" = [])),
    responses((status = 201, body = VoucherList, description = "the vouchers made"),
              (status = 409, description = "fewer tickets left than the vouchers would reserve")))]
async fn create_vouchers(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiJson(req): ApiJson<CreateVouchers>,
) -> Result<Response, ApiError> {
    let (_, event) = path;
    let data = super::create_vouchers(
        &app,
        &actor,
        event,
        req.count,
        &req.prefix,
        super::NewVoucher {
            percent_off: req.percent_off,
            amount_off_cents: req.amount_off_cents,
            max_uses: req.max_uses,
            valid_until: req.valid_until,
            ticket_type_ids: req.ticket_type_ids,
            reserve: req.reserve,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(VoucherList {
            data,
            next_cursor: None,
        }),
    )
        .into_response())
}

/// The event's vouchers, oldest first.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events/{event_id}/vouchers", tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path), ListQuery), security(("api_key" = [])),
    responses((status = 200, body = VoucherList, description = "a page of vouchers")))]
async fn list_vouchers(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<axum::Json<VoucherList>, ApiError> {
    let (_, event) = path;
    let (limit, after) = kernel::http::page::<VoucherId>(q.limit, q.cursor.as_deref())?;
    let (data, next) = super::list_vouchers(&app, &actor, event, limit, after).await?;
    Ok(axum::Json(VoucherList {
        data,
        next_cursor: next.map(|n| n.to_string()),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateQuota {
    /// Not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: String,
    /// How many tickets its types may sell together.
    #[schema(minimum = 0, maximum = 10_000_000)]
    capacity: i64,
    /// Ticket types of this event, each once.
    #[schema(min_items = 1, max_items = 100)]
    ticket_type_ids: Vec<TicketTypeId>,
}

/// Adds a quota shared by ticket types: a ticket type's `available` is the
/// least of its own capacity left and every quota it belongs to.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/events/{event_id}/quotas", tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path)),
    request_body = CreateQuota, security(("api_key" = [])),
    responses((status = 201, body = QuotaView, description = "the quota"),
              (status = 422, description = "invalid, or a ticket type not of this event")))]
async fn create_quota(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiJson(req): ApiJson<CreateQuota>,
) -> Result<Response, ApiError> {
    let (_, event) = path;
    let view = domain::create_quota(
        &app,
        &actor,
        event,
        NewQuota {
            name: req.name,
            capacity: req.capacity,
            ticket_type_ids: req.ticket_type_ids,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct QuotaList {
    data: Vec<QuotaView>,
    /// Always null: an event's quotas come in one page.
    next_cursor: Option<String>,
}

/// The event's quotas, oldest first.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events/{event_id}/quotas", tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = QuotaList, description = "the quotas")))]
async fn list_quotas(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
) -> Result<axum::Json<QuotaList>, ApiError> {
    let (_, event) = path;
    Ok(axum::Json(QuotaList {
        data: domain::list_quotas(&app, &actor, event).await?,
        next_cursor: None,
    }))
}

/// Removes a quota; its ticket types sell up to their own capacity again.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/events/{event_id}/quotas/{quota_id}", tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path), ("quota_id" = String, Path)),
    security(("api_key" = [])),
    responses((status = 204, description = "removed")))]
async fn delete_quota(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId, QuotaId)>,
) -> Result<StatusCode, ApiError> {
    let (_, event, quota) = path;
    domain::delete_quota(&app, &actor, event, quota).await?;
    Ok(StatusCode::NO_CONTENT)
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
    /// A series: sold on the dates added to it (`POST …/events/{id}/dates`),
    /// which share its ticket types; never sold itself.
    #[serde(default)]
    series: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDate {
    #[schema(format = DateTime, pattern = r"^(?:[1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")]
    starts_at: String,
    /// After `starts_at`.
    #[schema(format = DateTime, pattern = r"^(?:[1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")]
    ends_at: String,
    /// The series' name when left out (e.g. "Matinee").
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: Option<String>,
}

/// Adds a date (or time slot) to a series: an event of its own, in the
/// series' time zone, with its own inventory, seats and check-in, and a copy
/// of each of the series' ticket types that follows the series' type
/// (`template_id`), its quotas and its seat map. Published when the series
/// is. 422 when the event is not a series.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/events/{event_id}/dates", tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path)),
    request_body = CreateDate, security(("api_key" = [])),
    responses((status = 201, body = EventView, description = "the date, an event with `series_id`",
               links(("get_event" = (operation_id = "get_event",
                         parameters(("org" = "$request.path.org"), ("event_id" = "$response.body#/id")))))),
              (status = 422, description = "not a series, or invalid times")))]
async fn add_date(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiJson(req): ApiJson<CreateDate>,
) -> Result<Response, ApiError> {
    let (_, series) = path;
    let view = super::add_date(
        &app,
        &actor,
        series,
        super::NewDate {
            starts_at: req.starts_at,
            ends_at: req.ends_at,
            name: req.name,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct DateList {
    data: Vec<EventView>,
}

/// A series' dates, earliest first (none when the event is not a series).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events/{event_id}/dates", tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = DateList, description = "the dates")))]
async fn list_dates(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
) -> Result<axum::Json<DateList>, ApiError> {
    let (_, series) = path;
    Ok(axum::Json(DateList {
        data: super::list_dates(&app, &actor, series).await?,
    }))
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
            series: req.series,
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
    /// Its tickets admit from then on (before: `not_valid_now`).
    #[schema(format = DateTime, pattern = r"^(?:[1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")]
    valid_from: Option<String>,
    /// Its tickets admit until then; after `valid_from`.
    #[schema(format = DateTime, pattern = r"^(?:[1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")]
    valid_until: Option<String>,
    #[schema(minimum = 1, maximum = 1000)]
    max_per_order: Option<i64>,
    /// The least one order may hold (1 when unset); at most `max_per_order`.
    #[schema(minimum = 1, maximum = 1000)]
    min_per_order: Option<i64>,
    /// Off the storefront: sold only with a voucher that names it.
    #[serde(default)]
    hidden: bool,
    /// Lower first on the storefront (then oldest first).
    #[serde(default)]
    #[schema(minimum = -1_000_000, maximum = 1_000_000)]
    sort_order: i64,
    /// Asked of each ticket's attendee at checkout (at most 20); left out,
    /// the attendee's name is asked, optionally.
    #[schema(max_items = 20)]
    questions: Option<Vec<super::QuestionInput>>,
}

/// A ticket type's changes: a field left out stays as it is; `null`
/// clears one that may be unset. The currency never changes.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTicketType {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: Option<String>,
    /// Applies to holds made from now on.
    #[schema(minimum = 0, maximum = 100_000_000_000i64)]
    price_cents: Option<i64>,
    /// Never below what is held or sold (409).
    #[schema(minimum = 1, maximum = 10_000_000)]
    capacity: Option<i64>,
    #[serde(default, deserialize_with = "kernel::http::explicit")]
    #[schema(value_type = Option<String>, nullable, format = DateTime)]
    sale_starts_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "kernel::http::explicit")]
    #[schema(value_type = Option<String>, nullable, format = DateTime)]
    sale_ends_at: Option<Option<String>>,
    /// Its tickets admit from then on; `null`: open. A series' ticket
    /// type's window is not passed on to its dates.
    #[serde(default, deserialize_with = "kernel::http::explicit")]
    #[schema(value_type = Option<String>, nullable, format = DateTime)]
    valid_from: Option<Option<String>>,
    /// Its tickets admit until then; `null`: until the event ends.
    #[serde(default, deserialize_with = "kernel::http::explicit")]
    #[schema(value_type = Option<String>, nullable, format = DateTime)]
    valid_until: Option<Option<String>>,
    #[serde(default, deserialize_with = "kernel::http::explicit")]
    #[schema(value_type = Option<i64>, nullable, minimum = 1, maximum = 1000)]
    max_per_order: Option<Option<i64>>,
    #[serde(default, deserialize_with = "kernel::http::explicit")]
    #[schema(value_type = Option<i64>, nullable, minimum = 1, maximum = 1000)]
    min_per_order: Option<Option<i64>>,
    hidden: Option<bool>,
    #[schema(minimum = -1_000_000, maximum = 1_000_000)]
    sort_order: Option<i64>,
    /// `true`: off sale for good (its tickets stay valid); `false`: back.
    retired: Option<bool>,
    /// Replaces the questions.
    #[schema(max_items = 20)]
    questions: Option<Vec<super::QuestionInput>>,
}

/// Changes a ticket type: its terms, capacity (never below what is held or
/// sold: 409, nothing changed), order, hiding and retirement. A ticket type
/// is never deleted: retire it.
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/events/{event_id}/ticket-types/{ticket_type_id}",
    tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path), ("ticket_type_id" = String, Path)),
    request_body = UpdateTicketType, security(("api_key" = [])),
    responses((status = 200, body = TicketTypeView, description = "the ticket type as it is now"),
              (status = 409, description = "more than the new capacity is held or sold, or it changed meanwhile"),
              (status = 422, description = "invalid: the field is named")))]
async fn update_ticket_type(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId, TicketTypeId)>,
    ApiJson(req): ApiJson<UpdateTicketType>,
) -> Result<axum::Json<TicketTypeView>, ApiError> {
    let (_, event, tt) = path;
    let patch = super::TicketTypePatch {
        name: req.name,
        price_cents: req.price_cents,
        capacity: req.capacity,
        sale_starts_at: req.sale_starts_at,
        sale_ends_at: req.sale_ends_at,
        valid_from: req.valid_from,
        valid_until: req.valid_until,
        max_per_order: req.max_per_order,
        min_per_order: req.min_per_order,
        hidden: req.hidden,
        sort_order: req.sort_order,
        retired: req.retired,
        questions: req.questions,
    };
    Ok(axum::Json(
        super::update_ticket_type(&app, &actor, event, tt, patch).await?,
    ))
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
            valid_from: req.valid_from,
            valid_until: req.valid_until,
            max_per_order: req.max_per_order,
            min_per_order: req.min_per_order,
            hidden: req.hidden,
            sort_order: req.sort_order,
            questions: req.questions,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

/// Whether the event's tickets may be handed on to someone else, and until
/// when.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events/{event_id}/transfer-policy", tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = super::TransferPolicy, description = "the policy")))]
async fn get_transfer_policy(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
) -> Result<axum::Json<super::TransferPolicy>, ApiError> {
    let (_, event) = path;
    Ok(axum::Json(
        domain::get_event(&app, &actor, event).await?.transfers,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferPolicyInput {
    allowed: bool,
    /// Transfers close then; `null` or left out: when the event starts.
    #[schema(format = DateTime, pattern = r"^(?:[1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")]
    deadline: Option<String>,
}

/// Allows or forbids handing tickets on (a transfer revokes the old code
/// and issues a new one to the new holder), with an optional deadline.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/events/{event_id}/transfer-policy", tag = "events",
    params(("org" = String, Path), ("event_id" = String, Path)),
    request_body = TransferPolicyInput, security(("api_key" = [])),
    responses((status = 200, body = super::TransferPolicy, description = "the policy as stored")))]
async fn put_transfer_policy(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiJson(req): ApiJson<TransferPolicyInput>,
) -> Result<axum::Json<super::TransferPolicy>, ApiError> {
    let (_, event) = path;
    Ok(axum::Json(
        domain::put_transfer_policy(
            &app,
            &actor,
            event,
            super::TransferPolicy {
                allowed: req.allowed,
                deadline: req.deadline,
            },
        )
        .await?,
    ))
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
