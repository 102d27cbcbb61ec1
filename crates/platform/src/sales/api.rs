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

use super::{
    domain::{self, Buyer, HoldItem, HoldView, OrderView, PaymentMethod, StoreEvent},
    limits::{self, SalesLimits},
    lookup::{self, LookupAck},
    queue::{self, QueueStatus, WaitingRoom},
};
use crate::{
    App,
    identity::{OrgActor, StoreTenant},
};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(store_event))
        .routes(routes!(store_seats))
        .routes(routes!(store_seats_live))
        .routes(routes!(create_hold))
        .routes(routes!(checkout))
        .routes(routes!(store_order))
        .routes(routes!(get_order))
        .routes(routes!(get_sales_limits, put_sales_limits))
        .routes(routes!(lookup_orders))
        .routes(routes!(get_waiting_room, put_waiting_room))
        .routes(routes!(join_queue))
        .routes(routes!(queue_status))
        .routes(routes!(join_waiting_list))
        .routes(routes!(leave_waiting_list))
        .routes(routes!(waiting_list))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinWaitingList {
    ticket_type_id: TicketTypeId,
    /// Within the ticket type's least and most per order.
    #[schema(minimum = 1, maximum = 1000)]
    quantity: i64,
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

#[derive(serde::Serialize, ToSchema)]
pub struct JoinedWaitingList {
    #[serde(flatten)]
    entry: super::waitlist::WaitlistEntry,
    /// Place in line (1: next).
    position: i64,
    /// The key to leave the line with (`POST …/waiting-list/{id}/leave`);
    /// given once, here.
    leave_key: String,
}

/// Joins the waiting list of a sold-out ticket type (general admission).
/// When tickets come back the first in line gets a hold kept for them for
/// the event's offer time (48 hours unless its sales limits say
/// `waitlist_offer_hours`), its link mailed; unused, it goes to the next.
/// The reply's `leave_key` leaves the line again. 409 while
/// tickets are left, or when the address is in this line already.
#[utoipa::path(post, path = "/api/v1/store/{org}/events/{event_id}/waiting-list", tag = "storefront",
    params(("org" = String, Path), ("event_id" = String, Path)),
    request_body = JoinWaitingList,
    responses((status = 201, body = JoinedWaitingList, description = "in line"),
              (status = 409, description = "tickets are left, or the address is in line already"),
              (status = 422, description = "invalid: the field is named")))]
async fn join_waiting_list(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiJson(req): ApiJson<JoinWaitingList>,
) -> Result<Response, ApiError> {
    let (_, event) = path;
    app.kernel.limits.storefront.check(&ip).await?;
    let (entry, position, leave_key) = super::waitlist::join(
        &app,
        &t,
        event,
        super::waitlist::Join {
            ticket_type_id: req.ticket_type_id,
            quantity: req.quantity,
            email: req.email,
            name: req.name,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(JoinedWaitingList {
            entry,
            position,
            leave_key,
        }),
    )
        .into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeaveWaitingList {
    /// The `leave_key` the join gave.
    #[schema(min_length = 1, max_length = 200)]
    key: String,
}

/// Leaves a waiting list (the key the join gave proves it): the entry,
/// `left`. Leaving twice answers the same. 404 for a wrong key; 409 once an
/// offer is being made or stands (take it, or let it run out), or the
/// place ended (bought, lapsed).
#[utoipa::path(post, path = "/api/v1/store/{org}/waiting-list/{entry_id}/leave", tag = "storefront",
    params(("org" = String, Path), ("entry_id" = String, Path)),
    request_body = LeaveWaitingList,
    responses((status = 200, body = super::waitlist::WaitlistEntry, description = "out of line"),
              (status = 404, description = "no such entry, or not this key"),
              (status = 409, description = "an offer is being made or stands, or the place ended")))]
async fn leave_waiting_list(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, kernel::ids::WaitlistEntryId)>,
    ApiJson(req): ApiJson<LeaveWaitingList>,
) -> Result<Response, ApiError> {
    let (_, entry) = path;
    app.kernel.limits.storefront.check(&ip).await?;
    let entry = super::waitlist::leave(&app, &t, entry, &req.key).await?;
    Ok(axum::Json(entry).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitlistQuery {
    /// At most 200; 50 when left out.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    cursor: Option<String>,
}

#[derive(serde::Serialize, ToSchema)]
pub struct WaitingList {
    data: Vec<super::waitlist::WaitlistEntry>,
    next_cursor: Option<String>,
}

/// The event's waiting lists (every ticket type), oldest first: who waits,
/// who was offered what until when, who bought, whose offer lapsed.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events/{event_id}/waiting-list", tag = "orders",
    params(("org" = String, Path), ("event_id" = String, Path), WaitlistQuery), security(("api_key" = [])),
    responses((status = 200, body = WaitingList, description = "a page of entries")))]
async fn waiting_list(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiQuery(q): ApiQuery<WaitlistQuery>,
) -> Result<axum::Json<WaitingList>, ApiError> {
    let (_, event) = path;
    let (limit, after) =
        kernel::http::page::<kernel::ids::WaitlistEntryId>(q.limit, q.cursor.as_deref())?;
    let (data, next) = super::waitlist::list(&app, &actor, event, limit, after).await?;
    Ok(axum::Json(WaitingList {
        data,
        next_cursor: next.map(|n| n.to_string()),
    }))
}

/// The event's waiting room: off, or on with a rate per minute and the
/// time the on-sale opens.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events/{event_id}/waiting-room", tag = "events",
    params(("org" = String, Path, description = "organization slug"), ("event_id" = EventId, Path)),
    security(("api_key" = [])),
    responses((status = 200, body = WaitingRoom, description = "the room (off until set)")))]
async fn get_waiting_room(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
) -> Result<axum::Json<WaitingRoom>, ApiError> {
    Ok(axum::Json(queue::get_settings(&app, &actor, path.1).await?))
}

/// Turns the event's waiting room on or off. On, every hold of the event
/// needs a pass from the room (`queue_pass`); visitors who join before
/// `opens_at` get random places among the early ones, later ones queue in
/// order, and `per_minute` of them are let through each minute.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/events/{event_id}/waiting-room", tag = "events",
    params(("org" = String, Path, description = "organization slug"), ("event_id" = EventId, Path)),
    request_body = WaitingRoom, security(("api_key" = [])),
    responses((status = 200, body = WaitingRoom, description = "the room as stored")))]
async fn put_waiting_room(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiJson(req): ApiJson<WaitingRoom>,
) -> Result<axum::Json<WaitingRoom>, ApiError> {
    Ok(axum::Json(
        queue::put_settings(&app, &actor, path.1, req).await?,
    ))
}

/// Joins the event's waiting room: a signed queue token and the visitor's
/// place (keep the token; ask with it for the place and, once admitted, the
/// pass).
#[utoipa::path(post, path = "/api/v1/store/{org}/events/{event_id}/queue", tag = "storefront",
    params(("org" = String, Path), ("event_id" = EventId, Path)),
    responses((status = 201, body = QueueStatus, description = "the visitor's token and place"),
              (status = 409, description = "the event has no waiting room on"),
              (status = 429, description = "too many requests from this address")))]
async fn join_queue(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, EventId)>,
) -> Result<Response, ApiError> {
    app.kernel.limits.storefront.check(&ip).await?;
    let status = queue::join(&app, &t, path.1).await?;
    Ok((StatusCode::CREATED, axum::Json(status)).into_response())
}

/// Where a queue token stands: the place, the estimated wait, and once the
/// visitor's turn came, the pass a hold takes. A forged token: 404.
#[utoipa::path(get, path = "/api/v1/store/{org}/events/{event_id}/queue/{token}", tag = "storefront",
    params(("org" = String, Path), ("event_id" = EventId, Path), ("token" = String, Path)),
    responses((status = 200, body = QueueStatus, description = "the visitor's place"),
              (status = 409, description = "the event has no waiting room on")))]
async fn queue_status(
    State(app): State<App>,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, EventId, String)>,
) -> Result<axum::Json<QueueStatus>, ApiError> {
    Ok(axum::Json(queue::status(&app, &t, path.1, &path.2).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// The address the orders were placed with.
    #[schema(schema_with = kernel::http::schema::email)]
    email: String,
}

/// A buyer asks for a link to their orders: it is mailed to the address
/// when it has orders here (at most once per ten minutes), and works for a
/// day. The answer is the same either way: no list of orders, and no word
/// on whether the address is known.
#[utoipa::path(post, path = "/api/v1/store/{org}/orders/lookup", tag = "storefront",
    params(("org" = String, Path)), request_body = LookupRequest,
    responses((status = 202, body = LookupAck, description = "a link is on its way if the address has orders"),
              (status = 429, description = "too many requests from this address")))]
async fn lookup_orders(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    StoreTenant(t): StoreTenant,
    ApiJson(req): ApiJson<LookupRequest>,
) -> Result<Response, ApiError> {
    app.kernel.limits.storefront.check(&ip).await?;
    let ack = lookup::request(&app, &t, &req.email).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(ack)).into_response())
}

/// The event's sales limits: tickets per order, and per buyer (by e-mail)
/// across their pending and paid orders of the event.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events/{event_id}/sales-limits", tag = "events",
    params(("org" = String, Path, description = "organization slug"), ("event_id" = EventId, Path)),
    security(("api_key" = [])),
    responses((status = 200, body = SalesLimits, description = "the limits (`null`: none)")))]
async fn get_sales_limits(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
) -> Result<axum::Json<SalesLimits>, ApiError> {
    Ok(axum::Json(limits::get(&app, &actor, path.1).await?))
}

/// Replaces the event's sales limits. A hold over the per-order limit, or a
/// checkout that would take a buyer over theirs, answers 422 `validation`
/// (naming `items` or `buyer.email`); orders already placed stand.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/events/{event_id}/sales-limits", tag = "events",
    params(("org" = String, Path, description = "organization slug"), ("event_id" = EventId, Path)),
    request_body = SalesLimits, security(("api_key" = [])),
    responses((status = 200, body = SalesLimits, description = "the limits as stored")))]
async fn put_sales_limits(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiJson(req): ApiJson<SalesLimits>,
) -> Result<axum::Json<SalesLimits>, ApiError> {
    Ok(axum::Json(limits::put(&app, &actor, path.1, req).await?))
}

/// The seats of a published seated event and what each is now
/// (`available`, `held`, `sold`, `blocked`); 404 without a seat map.
#[utoipa::path(get, path = "/api/v1/store/{org}/events/{event_id}/seats", tag = "storefront",
    params(("org" = String, Path), ("event_id" = String, Path)),
    responses((status = 200, body = super::seats::StoreSeats, description = "the seats")))]
async fn store_seats(
    State(app): State<App>,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, EventId)>,
) -> Result<Response, ApiError> {
    let (_, event) = path;
    match crate::events::catalog(&app, &t, event).await? {
        Some(c) if c.is_published() => {}
        _ => return Err(ApiError::NotFound),
    }
    let seats = super::seats::store_seats(&app, &t, event).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        seats.json(),
    )
        .into_response())
}

/// The seats' states as server-sent events: `event: seats` at once with
/// every seat (`{"seats": [{"id", "status"}]}`), then, within a second of
/// any hold, purchase or release (on any node), one with the seats whose
/// state changed. 404 without a seat map; 503 when the node holds its
/// limit of open streams.
#[utoipa::path(get, path = "/api/v1/store/{org}/events/{event_id}/seats/live", tag = "storefront",
    params(("org" = String, Path), ("event_id" = String, Path)),
    responses((status = 200, content_type = "text/event-stream", body = super::seats::SeatChanges,
               description = "a stream of `seats` events, each `data` the changes as JSON"),
              (status = 503, description = "too many open streams on this node")))]
async fn store_seats_live(
    State(app): State<App>,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, EventId)>,
) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let (_, event) = path;
    match crate::events::catalog(&app, &t, event).await? {
        Some(c) if c.is_published() => {}
        _ => return Err(ApiError::NotFound),
    }
    if crate::events::seating(&app, &t, event).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let Some(place) = app.state::<super::seats::SeatWatchers>().place() else {
        return Err(ApiError::Overloaded {
            retry_after_secs: 5,
        });
    };
    let mut seats = super::seats::SeatWatchers::watch(&app, &t, event).await?;
    let mut shutdown = app.kernel.shutdown.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, std::convert::Infallible>>(8);
    let as_event = |c: &super::seats::SeatChanges| {
        Ok(Event::default()
            .event("seats")
            .data(serde_json::to_string(c).unwrap_or_default()))
    };
    tokio::spawn(async move {
        let _place = place;
        let mut last = seats.borrow_and_update().clone();
        if tx
            .send(as_event(&super::seats::changes(None, &last)))
            .await
            .is_err()
        {
            return;
        }
        loop {
            tokio::select! {
                changed = seats.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now = seats.borrow_and_update().clone();
                    let diff = super::seats::changes(Some(&last), &now);
                    last = now;
                    if !diff.is_empty() && tx.send(as_event(&diff)).await.is_err() {
                        return;
                    }
                }
                _ = tx.closed() => return,
                _ = crate::web::until_down(&mut shutdown) => return,
            }
        }
    });
    Ok(Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response())
}

#[derive(Deserialize, IntoParams)]
pub struct StoreEventQuery {
    /// A voucher code: hidden ticket types it names are shown too.
    voucher: Option<String>,
}

/// A published event with its ticket types (on the storefront's order;
/// retired ones left out, hidden ones only with a voucher that names them)
/// and what is left of each.
#[utoipa::path(get, path = "/api/v1/store/{org}/events/{event_id}", tag = "storefront",
    params(("org" = String, Path), ("event_id" = String, Path), StoreEventQuery),
    responses((status = 200, body = StoreEvent, description = "the event as buyers see it")))]
async fn store_event(
    State(app): State<App>,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiQuery(q): ApiQuery<StoreEventQuery>,
) -> Result<axum::Json<StoreEvent>, ApiError> {
    let (_, event) = path;
    Ok(axum::Json(
        Box::pin(domain::store_event(&app, &t, event, q.voucher.as_deref())).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// One entry per ticket type (at most 20), each type once; general
    /// admission only (a seated type is held by `seats` or
    /// `best_available`). May be left out when seats are asked for.
    #[serde(default)]
    #[schema(max_items = 20)]
    items: Vec<HoldRequestItem>,
    /// Seat ids of the event's map (1 to 50): each must be free, else 409
    /// `seat_unavailable`. An event without a seat map answers 422 naming
    /// `seats`.
    #[schema(max_items = 50)]
    seats: Option<Vec<String>>,
    /// The best free seats of a seated ticket type, side by side in one row
    /// whenever some row has that many together.
    best_available: Option<BestAvailable>,
    /// The waiting room's pass (its queue status gives it once the
    /// visitor's turn came), when the event has a room on: one pass, one
    /// hold; without it, or with a forged, early, expired or used one, 403.
    #[schema(max_length = 200)]
    queue_pass: Option<String>,
    /// A voucher code of the event (any case): each ticket it discounts is
    /// one of its uses. Unknown, expired, not for these ticket types or
    /// used up → 422 naming `voucher`.
    #[schema(max_length = 64)]
    voucher: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BestAvailable {
    #[schema(schema_with = kernel::http::schema::uuid)]
    ticket_type_id: TicketTypeId,
    #[schema(minimum = 1, maximum = 50)]
    quantity: i64,
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
              (status = 403, description = "the event's waiting room: no pass, or a forged, early, expired or used one"),
                            (status = 409, description = "sold_out: not enough tickets left; seat_unavailable: a seat asked for is held, sold or blocked"),
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
    let pick = match (req.seats, req.best_available) {
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                "best_available",
                "ask for seats or best_available, not both",
            ));
        }
        (Some(seats), None) => domain::SeatPick::Seats(seats),
        (None, Some(b)) => domain::SeatPick::Best {
            ticket_type_id: b.ticket_type_id,
            quantity: b.quantity,
        },
        (None, None) => domain::SeatPick::None,
    };
    // Boxed: the handler's own future stays small (moving it is a copy).
    let items = req
        .items
        .into_iter()
        .map(|i| HoldItem {
            ticket_type_id: i.ticket_type_id,
            quantity: i.quantity,
        })
        .collect();
    let hold = Box::pin(domain::create_hold(
        &app,
        &t,
        event,
        items,
        req.queue_pass.as_deref(),
        req.voucher.as_deref(),
        pick,
    ))
    .await?;
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
    /// Answers to the ticket types' questions, one entry per ticket: the
    /// `n`th entry of a type is that type's `n`th ticket. Required
    /// questions must be answered for every ticket of their type.
    #[serde(default)]
    #[schema(max_items = 1000)]
    attendees: Vec<super::attendees::Attendee>,
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
    let fingerprint = Fingerprint::of_json(hold.0.as_bytes(), &body);
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
        req.attendees,
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
