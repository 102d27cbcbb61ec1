//! The storefront pages: an event where a buyer takes tickets, and the
//! buyer's order with its QR codes.

use askama::Template;
use axum::{
    Form,
    extract::{State, rejection::FormRejection},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use kernel::{
    ApiError,
    http::{ApiPath, ApiQuery, ClientAddr},
    ids::{EventId, OrderId, TicketTypeId},
};
use serde::Deserialize;

use super::domain::{self, HoldItem, StoreEvent};
use crate::{App, identity::StoreTenant, tickets, web::page};

pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/s/{org}/events/{event_id}", get(event_page))
        .route("/s/{org}/events/{event_id}/take", post(take))
        .route("/s/{org}/events/{event_id}/take-seats", post(take_seats))
        .route(
            "/s/{org}/events/{event_id}/queue",
            get(queue_page).post(queue_join),
        )
        .route("/s/{org}/orders/{order_id}", get(order_page))
        .route("/s/{org}/orders/{order_id}/invoice", get(invoice))
        .route("/s/{org}/orders/lookup", get(lookup_page).post(lookup_send))
        .route("/s/{org}/orders/mine", get(my_orders))
}

#[derive(Template)]
#[template(path = "order_lookup.html")]
struct LookupPage {
    org: String,
    email: String,
    sent: bool,
    error: Option<String>,
}

async fn lookup_page(
    StoreTenant(_): StoreTenant,
    ApiPath(org): ApiPath<String>,
) -> Result<Response, ApiError> {
    Ok(page(
        StatusCode::OK,
        LookupPage {
            org,
            email: String::new(),
            sent: false,
            error: None,
        },
    ))
}

#[derive(Deserialize)]
struct LookupForm {
    email: String,
}

async fn lookup_send(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    StoreTenant(t): StoreTenant,
    ApiPath(org): ApiPath<String>,
    form: Result<Form<LookupForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let email = form.map(|Form(f)| f.email).unwrap_or_default();
    let result = match app.kernel.limits.storefront.check(&ip).await {
        Err(e) => Err(e),
        Ok(()) => super::lookup::request(&app, &t, &email)
            .await
            .map_err(ApiError::from),
    };
    let (status, sent, error) = match result {
        Ok(_) => (StatusCode::OK, true, None),
        Err(e) if e.status().is_client_error() => (
            e.status(),
            false,
            Some(match &e {
                ApiError::RateLimited { .. } => "Too many requests; try again in a minute.".into(),
                _ => "That does not look like an e-mail address.".to_string(),
            }),
        ),
        Err(e) => return Err(e),
    };
    Ok(page(
        status,
        LookupPage {
            org,
            email: email.trim().to_lowercase(),
            sent,
            error,
        },
    ))
}

#[derive(Deserialize)]
struct MineQuery {
    token: String,
}

struct MyOrder {
    id: String,
    event: String,
    total: String,
    status: String,
    placed: String,
}

#[derive(Template)]
#[template(path = "my_orders.html")]
struct MyOrdersPage {
    org: String,
    email: String,
    token: String,
    until: String,
    orders: Vec<MyOrder>,
}

/// The orders of the address a mailed look-up link stands for.
async fn my_orders(
    State(app): State<App>,
    StoreTenant(t): StoreTenant,
    ApiPath(org): ApiPath<String>,
    ApiQuery(q): ApiQuery<MineQuery>,
) -> Result<Response, ApiError> {
    let Some((email, expires_at)) = super::lookup::link_of(&app, &t, &q.token).await? else {
        return Err(ApiError::NotFound);
    };
    let orders = super::lookup::orders_of(&app, &t, &email).await?;
    let until = kernel::clock::rfc3339(expires_at);
    Ok(page(
        StatusCode::OK,
        MyOrdersPage {
            org,
            email,
            token: q.token,
            until: format!(
                "{} UTC",
                until.get(..16).unwrap_or(&until).replace('T', " ")
            ),
            orders: orders
                .into_iter()
                .map(|o| MyOrder {
                    id: o.id.to_string(),
                    event: o.event_name,
                    total: money(o.total_cents, &o.currency),
                    status: o.status.as_str().replace('_', " "),
                    placed: kernel::clock::rfc3339(o.created_at)
                        .get(..10)
                        .unwrap_or_default()
                        .to_string(),
                })
                .collect(),
        },
    ))
}

#[derive(Template)]
#[template(path = "storefront_event.html")]
struct EventPage {
    org: String,
    event: StoreEvent,
    /// The waiting room's pass the page was opened with (its forms carry it).
    queue_pass: Option<String>,
    error: Option<String>,
    /// The seat map, for seated events.
    seating: Option<SeatSvg>,
    /// How long a waiting-list offer is held (hours).
    offer_hours: i64,
    /// The voucher code the page was opened with (it shows the hidden
    /// ticket types it unlocks, and fills the cart's voucher field).
    voucher: String,
}

/// A seat map drawn as SVG, each seat with its state.
struct SeatSvg {
    drawing: crate::events::Drawing,
    status: Vec<&'static str>,
    /// Seated ticket types: (id, name, price).
    types: Vec<(String, String, String)>,
    /// General-admission areas, as drawn, with what is left and the ticket
    /// types sold into each.
    areas: Vec<AreaChoice>,
    live: String,
}

struct AreaChoice {
    drawn: crate::events::DrawnArea,
    available: i64,
    types: Vec<domain::StoreTicketType>,
}

impl SeatSvg {
    fn seats(&self) -> impl Iterator<Item = (&crate::events::DrawnSeat, &&'static str)> {
        self.drawing.seats.iter().zip(&self.status)
    }
}

/// The event's map as the storefront draws it, with each seat's state.
async fn seat_svg(
    app: &App,
    t: &crate::identity::Tenant,
    org: &str,
    event: &StoreEvent,
) -> Result<Option<SeatSvg>, ApiError> {
    let Some(map) = crate::events::seating(app, t, event.id).await? else {
        return Ok(None);
    };
    let states = super::seats::store_seats(app, t, event.id).await?;
    let by_id: std::collections::HashMap<&str, super::seats::SeatStatus> = states
        .seats
        .iter()
        .map(|s| (s.id.as_str(), s.status))
        .collect();
    let mut drawing = crate::events::draw(&map);
    let areas = std::mem::take(&mut drawing.areas)
        .into_iter()
        .map(|drawn| AreaChoice {
            available: states
                .areas
                .iter()
                .find(|a| a.id == drawn.id)
                .map(|a| a.available)
                .unwrap_or(0),
            types: event
                .ticket_types
                .iter()
                .filter(|ty| drawn.ticket_type_ids.contains(&ty.id))
                .cloned()
                .collect(),
            drawn,
        })
        .collect();
    let status = drawing
        .seats
        .iter()
        .map(|s| match by_id.get(s.id.as_str()) {
            Some(super::seats::SeatStatus::Held) => "held",
            Some(super::seats::SeatStatus::Sold) => "sold",
            Some(super::seats::SeatStatus::Blocked) => "blocked",
            _ => "available",
        })
        .collect();
    let types: Vec<(String, String, String)> = event
        .ticket_types
        .iter()
        .filter(|ty| map.types.contains(&ty.id))
        .map(|ty| {
            (
                ty.id.to_string(),
                ty.name.clone(),
                money(ty.price_cents, &ty.currency),
            )
        })
        .collect();
    Ok(Some(SeatSvg {
        drawing,
        status,
        types,
        areas,
        live: format!("/api/v1/store/{org}/events/{}/seats/live", event.id),
    }))
}

pub(super) fn money(cents: i64, currency: &str) -> String {
    if cents == 0 {
        "Free".into()
    } else {
        crate::money::format(cents, currency)
    }
}

impl EventPage {
    fn price(&self, cents: &i64, currency: &str) -> String {
        money(*cents, currency)
    }

    /// Whether the ticket type is sold by seat (on the map, not a form).
    fn seated(&self, tt: &TicketTypeId) -> bool {
        let id = tt.to_string();
        self.seating
            .as_ref()
            .is_some_and(|m| m.types.iter().any(|(t, _, _)| *t == id))
    }

    /// Whether the ticket type is sold into an area of the seat map (the
    /// seat form takes its quantity, not the cart).
    fn in_area(&self, tt: &TicketTypeId) -> bool {
        self.seating
            .as_ref()
            .is_some_and(|m| m.areas.iter().any(|a| a.drawn.ticket_type_ids.contains(tt)))
    }

    /// A general-admission type on sale with nothing left: its buyers may
    /// wait in line.
    fn waitable(&self, t: &domain::StoreTicketType) -> bool {
        !self.seated(&t.id) && !t.hidden && t.on_sale && t.available <= 0
    }

    fn has_sold_out(&self) -> bool {
        self.event.ticket_types.iter().any(|t| self.waitable(t))
    }

    /// Whether some ticket type is sold without seats (the cart lists them).
    fn has_general(&self) -> bool {
        self.event
            .ticket_types
            .iter()
            .any(|t| !self.seated(&t.id) && !self.in_area(&t.id))
    }

    /// The cart's first quantity: one order's least when a single general
    /// ticket type can be bought, else none.
    fn default_quantity(&self, t: &domain::StoreTicketType) -> i64 {
        let buyable = |t: &&domain::StoreTicketType| {
            !self.seated(&t.id) && !self.in_area(&t.id) && t.on_sale && t.available > 0
        };
        if self.event.ticket_types.iter().filter(buyable).count() == 1 && buyable(&t) {
            t.min_per_order.max(1)
        } else {
            0
        }
    }

    /// An instant (RFC 3339) as people at the venue read it.
    fn at(&self, s: &str) -> String {
        kernel::clock::parse_rfc3339(s)
            .map(|m| crate::events::shown_in(m, &self.event.timezone))
            .unwrap_or_else(|| s.to_string())
    }

    fn state_text(&self, s: &domain::SaleState) -> &'static str {
        match s {
            domain::SaleState::NotYetOnSale => "Tickets are not on sale yet.",
            domain::SaleState::OnSale => "On sale.",
            domain::SaleState::SoldOut => "Sold out.",
            domain::SaleState::SalesClosed => "Ticket sales have closed.",
            domain::SaleState::Ended => "This event is over.",
        }
    }

    /// When the event runs, as people at the venue read it.
    fn when(&self) -> String {
        let at = |s: &str| {
            kernel::clock::parse_rfc3339(s)
                .map(|m| crate::events::shown_in(m, &self.event.timezone))
                .unwrap_or_else(|| s.to_string())
        };
        format!(
            "{} – {}",
            at(&self.event.starts_at),
            at(&self.event.ends_at)
        )
    }
}

#[derive(Deserialize)]
struct PassQuery {
    pass: Option<String>,
    /// A voucher code: shows the hidden ticket types it unlocks.
    voucher: Option<String>,
}

async fn event_page(
    State(app): State<App>,
    StoreTenant(t): StoreTenant,
    ApiPath((org, event_id)): ApiPath<(String, EventId)>,
    ApiQuery(q): ApiQuery<PassQuery>,
) -> Result<Response, ApiError> {
    let event = domain::store_event(&app, &t, event_id, q.voucher.as_deref()).await?;
    // With a waiting room on, the page is reached through the room.
    if super::queue::room(&app, t.org(), event_id).await?.is_some() && q.pass.is_none() {
        return Ok(Redirect::to(&format!("/s/{org}/events/{event_id}/queue")).into_response());
    }
    let seating = seat_svg(&app, &t, &org, &event).await?;
    let offer_hours = super::limits::of(&app, t.org(), event_id)
        .await?
        .offer_secs()
        / 3600;
    Ok(page(
        StatusCode::OK,
        EventPage {
            org,
            event,
            queue_pass: q.pass,
            error: None,
            seating,
            offer_hours,
            voucher: q.voucher.unwrap_or_default(),
        },
    ))
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    org: String,
    event_id: EventId,
    event_name: String,
    opens: String,
    status: Option<super::queue::QueueStatus>,
}

impl QueuePage {
    fn wait(&self) -> String {
        let secs = self
            .status
            .as_ref()
            .map(|s| s.estimated_wait_secs)
            .unwrap_or(0);
        match secs {
            s if s < 60 => format!("{s} s"),
            s if s < 3600 => format!("{} min", (s + 30) / 60),
            s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        }
    }
    fn expired(&self) -> bool {
        self.status
            .as_ref()
            .is_some_and(|s| s.admitted && s.pass.is_none())
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The waiting room's page: join, then watch the place move (the page asks
/// every two seconds, and goes on to the tickets with the pass).
async fn queue_page(
    State(app): State<App>,
    StoreTenant(t): StoreTenant,
    ApiPath((org, event_id)): ApiPath<(String, EventId)>,
    ApiQuery(q): ApiQuery<TokenQuery>,
) -> Result<Response, ApiError> {
    let event = domain::store_event(&app, &t, event_id, None).await?;
    let Some(room) = super::queue::room(&app, t.org(), event_id).await? else {
        return Ok(Redirect::to(&format!("/s/{org}/events/{event_id}")).into_response());
    };
    let status = match q.token {
        Some(token) => Some(super::queue::status(&app, &t, event_id, &token).await?),
        None => None,
    };
    Ok(page(
        StatusCode::OK,
        QueuePage {
            org,
            event_id,
            event_name: event.name,
            opens: kernel::clock::rfc3339(room.opens_at),
            status,
        },
    ))
}

async fn queue_join(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    StoreTenant(t): StoreTenant,
    ApiPath((org, event_id)): ApiPath<(String, EventId)>,
) -> Result<Response, ApiError> {
    app.kernel.limits.storefront.check(&ip).await?;
    let status = super::queue::join(&app, &t, event_id).await?;
    Ok(Redirect::to(&format!(
        "/s/{org}/events/{event_id}/queue?token={}",
        status.token
    ))
    .into_response())
}

/// Seats (picked on the map, or the best available) held; then the hold's
/// page, like [`take`].
async fn take_seats(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, EventId)>,
    Form(form): Form<crate::web::Fields>,
) -> Result<Response, ApiError> {
    use crate::web::field;
    let (org, event) = path;
    let pass = Some(field(&form, "queue_pass").to_string()).filter(|p| !p.is_empty());
    let voucher = field(&form, "voucher").trim().to_string();
    let result = async {
        app.kernel.limits.storefront.check(&ip).await?;
        let seats: Vec<String> = crate::web::all(&form, "seat").map(str::to_string).collect();
        let best: i64 = field(&form, "best_quantity").trim().parse().unwrap_or(0);
        // Places in the map's general-admission areas, by quantity.
        let items = cart_items(&form)?;
        let pick = if !seats.is_empty() {
            domain::SeatPick::Seats(seats)
        } else if best > 0 {
            let tt = field(&form, "best_type").parse().map_err(|_| {
                ApiError::field("best_available.ticket_type_id", "choose a ticket type")
            })?;
            domain::SeatPick::Best {
                ticket_type_id: tt,
                quantity: best,
            }
        } else if !items.is_empty() {
            domain::SeatPick::None
        } else {
            return Err(ApiError::field(
                "seats",
                "pick seats on the map, a number of best available seats, or places in an area",
            ));
        };
        domain::create_hold(
            &app,
            &t,
            event,
            items,
            pass.as_deref(),
            Some(voucher.as_str()).filter(|v| !v.is_empty()),
            pick,
        )
        .await
        .map_err(ApiError::from)
    }
    .await;
    answer_take(&app, &t, org, event, pass, voucher, result).await
}

/// The cart: a quantity per ticket type (fields `qty_<ticket type id>`;
/// empty or 0: none) and a voucher, held; then the hold's page, where the
/// buyer says who they are and who comes.
async fn take(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, EventId)>,
    Form(form): Form<crate::web::Fields>,
) -> Result<Response, ApiError> {
    use crate::web::field;
    let (org, event) = path;
    let pass = Some(field(&form, "queue_pass").to_string()).filter(|p| !p.is_empty());
    let voucher = field(&form, "voucher").trim().to_string();
    let result = async {
        app.kernel.limits.storefront.check(&ip).await?;
        let items = cart_items(&form)?;
        if items.is_empty() {
            return Err(ApiError::field("items", "choose how many tickets you want"));
        }
        domain::create_hold(
            &app,
            &t,
            event,
            items,
            pass.as_deref(),
            Some(voucher.as_str()).filter(|v| !v.is_empty()),
            domain::SeatPick::None,
        )
        .await
        .map_err(ApiError::from)
    }
    .await;
    answer_take(&app, &t, org, event, pass, voucher, result).await
}

/// A form's quantities per ticket type (fields `qty_<ticket type id>`;
/// empty or 0: none).
fn cart_items(form: &crate::web::Fields) -> Result<Vec<HoldItem>, ApiError> {
    let mut items = Vec::new();
    for (k, v) in form {
        let Some(id) = k.strip_prefix("qty_") else {
            continue;
        };
        let v = v.trim();
        let quantity: i64 = if v.is_empty() {
            0
        } else {
            v.parse()
                .map_err(|_| ApiError::field("quantity", "must be a whole number"))?
        };
        if quantity != 0 {
            let ticket_type_id: TicketTypeId = id
                .parse()
                .map_err(|_| ApiError::field("items", "unknown ticket type"))?;
            items.push(HoldItem {
                ticket_type_id,
                quantity,
            });
        }
    }
    Ok(items)
}

/// A take's answer: the hold's page, or the event's page with what went
/// wrong.
async fn answer_take(
    app: &App,
    t: &crate::identity::Tenant,
    org: String,
    event: EventId,
    pass: Option<String>,
    voucher: String,
    result: Result<domain::HoldView, ApiError>,
) -> Result<Response, ApiError> {
    match result {
        Ok(hold) => Ok(Redirect::to(&format!("/s/{org}/holds/{}", hold.id)).into_response()),
        Err(e) if e.status().is_client_error() => {
            let status = e.status();
            let shown = Some(voucher.as_str()).filter(|v| !v.is_empty());
            let event = domain::store_event(app, t, event, shown).await?;
            let message = match &e {
                ApiError::SoldOut(_) => "Sorry, not enough tickets are left.".to_string(),
                ApiError::SeatUnavailable(_) => {
                    "Sorry, a seat you chose was just taken: pick again.".to_string()
                }
                other => crate::web::said(other),
            };
            let seating = seat_svg(app, t, &org, &event).await?;
            let offer_hours = super::limits::of(app, t.org(), event.id)
                .await?
                .offer_secs()
                / 3600;
            Ok(page(
                status,
                EventPage {
                    org,
                    event,
                    queue_pass: pass,
                    error: Some(message),
                    seating,
                    offer_hours,
                    voucher,
                },
            ))
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct AccessQuery {
    access_token: String,
}

struct TicketCard {
    code: String,
    svg: String,
    /// "Stalls · Row A, seat 1" for a seated ticket.
    seat: Option<String>,
    /// The mail slice's PDF of this ticket (same key as this page).
    pdf: String,
    /// The attendee's answers (question, answer).
    answers: Vec<(String, String)>,
    id: String,
    /// "Name (email)" when it was handed on.
    handed_on: Option<String>,
    /// It may be handed on now.
    transferable: bool,
}

#[derive(Template)]
#[template(path = "order.html")]
struct OrderPage {
    org: String,
    access_token: String,
    order: domain::OrderView,
    tickets: Vec<TicketCard>,
    /// The card provider's API base, for the page's client-side confirmation.
    api_base: String,
    /// Where the page asks whether the order is paid yet.
    poll: String,
    /// The invoice's link, once there is one.
    invoice: Option<String>,
}

impl OrderPage {
    fn pending(&self) -> bool {
        self.order.status == domain::OrderStatus::Pending
    }
    fn money(&self, cents: &i64) -> String {
        crate::money::format(*cents, &self.order.currency)
    }
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> String {
    match url.find("://") {
        Some(i) => match url[i + 3..].find('/') {
            Some(j) => url[..i + 3 + j].to_string(),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The buyer's invoice (PDF), with the order's access token.
async fn invoice(
    State(app): State<App>,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, OrderId)>,
    ApiQuery(q): ApiQuery<AccessQuery>,
) -> Result<Response, ApiError> {
    let order = domain::get_order_for_buyer(&app, &t, path.1, &q.access_token).await?;
    let (name, pdf) = super::settings::invoice_pdf(&app, &t, &order).await?;
    Ok(super::money_api::pdf_response(&name, pdf))
}

async fn order_page(
    State(app): State<App>,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, OrderId)>,
    ApiQuery(q): ApiQuery<AccessQuery>,
) -> Result<Response, ApiError> {
    let (org, order) = path;
    let order = domain::get_order_for_buyer(&app, &t, order, &q.access_token).await?;
    let catalog = crate::events::catalog(&app, &t, order.event_id).await?;
    let questions = |tt: TicketTypeId| {
        catalog
            .as_ref()
            .and_then(|c| c.ticket_type(tt))
            .map(|ty| ty.questions.clone())
            .unwrap_or_default()
    };
    let transfers_open = catalog
        .as_ref()
        .is_some_and(|c| c.event.transfers_open_at(app.kernel.now()));
    // The token is URL-safe base64; anything else was refused above.
    let tickets = order
        .tickets
        .iter()
        .map(|t| TicketCard {
            code: t.code.clone(),
            svg: tickets::qr_svg(&t.code).unwrap_or_default(),
            seat: t
                .seat
                .as_ref()
                .map(|s| format!("{} · Row {}, seat {}", s.section, s.row, s.label)),
            pdf: format!(
                "/s/{org}/orders/{}/tickets/{}/pdf?access_token={}",
                order.id, t.id, q.access_token
            ),
            answers: crate::events::questions::labelled(&questions(t.ticket_type_id), &t.answers),
            id: t.id.to_string(),
            handed_on: t
                .transferred_to
                .as_ref()
                .map(|h| format!("{} ({})", h.name, h.email)),
            transferable: t.status == tickets::TicketStatus::Valid
                && t.admitted_at.is_none()
                && transfers_open,
        })
        .collect();
    let api_base = app.kernel.config.stripe_api_base.clone();
    let invoice = order.invoice_number.as_ref().map(|_| {
        format!(
            "/s/{org}/orders/{}/invoice?access_token={}",
            order.id, q.access_token
        )
    });
    let poll = format!(
        "/api/v1/store/{org}/orders/{}?access_token={}",
        order.id, q.access_token
    );
    let card_pending = order.status == domain::OrderStatus::Pending
        && order
            .payment
            .as_ref()
            .is_some_and(|p| p.client_secret.is_some());
    // The link carries the buyer's access token: no cache may keep it.
    let mut res = page(
        StatusCode::OK,
        OrderPage {
            org: org.clone(),
            access_token: q.access_token.clone(),
            order,
            tickets,
            api_base: api_base.clone(),
            poll,
            invoice,
        },
    );
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    if card_pending
        && let Ok(csp) =
            axum::http::HeaderValue::from_str(&crate::web::csp_connecting_to(&origin(&api_base)))
    {
        res.headers_mut()
            .insert(axum::http::header::CONTENT_SECURITY_POLICY, csp);
    }
    Ok(res)
}
