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

use super::domain::{self, Buyer, HoldItem, StoreEvent};
use crate::{App, identity::StoreTenant, tickets, web::page};

pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/s/{org}/events/{event_id}", get(event_page))
        .route("/s/{org}/events/{event_id}/take", post(take))
        .route("/s/{org}/orders/{order_id}", get(order_page))
        .route("/s/{org}/orders/{order_id}/invoice", get(invoice))
}

#[derive(Template)]
#[template(path = "storefront_event.html")]
struct EventPage {
    org: String,
    event: StoreEvent,
    error: Option<String>,
    /// Card payments are configured (else priced tickets are paid by EFT).
    card: bool,
}

fn money(cents: i64, currency: &str) -> String {
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
}

async fn event_page(
    State(app): State<App>,
    StoreTenant(t): StoreTenant,
    ApiPath((org, event)): ApiPath<(String, EventId)>,
) -> Result<Response, ApiError> {
    let event = domain::store_event(&app, &t, event).await?;
    Ok(page(
        StatusCode::OK,
        EventPage {
            org,
            event,
            error: None,
            card: card_configured(&app),
        },
    ))
}

#[derive(Deserialize)]
struct TakeForm {
    ticket_type_id: TicketTypeId,
    quantity: i64,
    email: String,
    name: String,
    /// `card` or `eft` for priced tickets.
    payment_method: Option<String>,
}

fn card_configured(app: &App) -> bool {
    app.state::<super::money::Payments>().stripe.is_some()
}

/// Holds and checks out in one step, then shows the order (free: with its
/// tickets; priced: waiting for its payment).
async fn take(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, EventId)>,
    form: Result<Form<TakeForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let (org, event) = path;
    let result = match app.kernel.limits.storefront.check(&ip).await {
        Err(e) => Err(e),
        Ok(()) => match form {
            Err(_) => Err(ApiError::BadRequest(
                "choose a ticket and fill in your e-mail and name".into(),
            )),
            Ok(Form(f)) => {
                let item = HoldItem {
                    ticket_type_id: f.ticket_type_id,
                    quantity: f.quantity,
                };
                let method = match f.payment_method.as_deref() {
                    Some("card") => domain::PaymentMethod::Card,
                    _ => domain::PaymentMethod::Eft,
                };
                domain::take_now(
                    &app,
                    &t,
                    event,
                    item,
                    Buyer {
                        email: f.email,
                        name: f.name,
                    },
                    method,
                )
                .await
                .map_err(ApiError::from)
            }
        },
    };
    match result {
        Ok(order) => {
            let token = order.access_token.unwrap_or_default();
            Ok(Redirect::to(&format!(
                "/s/{org}/orders/{}?access_token={token}",
                order.id
            ))
            .into_response())
        }
        Err(e) if e.status().is_client_error() => {
            let status = e.status();
            let event = domain::store_event(&app, &t, event).await?;
            let message = match &e {
                ApiError::SoldOut(_) => "Sorry, not enough tickets are left.".to_string(),
                other => other.problem().detail,
            };
            Ok(page(
                status,
                EventPage {
                    org,
                    event,
                    error: Some(message),
                    card: card_configured(&app),
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
    /// The mail slice's PDF of this ticket (same key as this page).
    pdf: String,
}

#[derive(Template)]
#[template(path = "order.html")]
struct OrderPage {
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
    // The token is URL-safe base64; anything else was refused above.
    let tickets = order
        .tickets
        .iter()
        .map(|t| TicketCard {
            code: t.code.clone(),
            svg: tickets::qr_svg(&t.code).unwrap_or_default(),
            pdf: format!(
                "/s/{org}/orders/{}/tickets/{}/pdf?access_token={}",
                order.id, t.id, q.access_token
            ),
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
