//! The storefront's ticket pages: a ticket handed on, for its new holder
//! (from the link in their mail), and handing a ticket on (from the order
//! page or that one).

use askama::Template;
use axum::{
    Form,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use kernel::{
    ApiError,
    http::{ApiPath, ApiQuery, ClientAddr},
    ids::TicketId,
};
use serde::Deserialize;

use super::{TicketStatus, TicketView, TransferTo};
use crate::{
    App,
    identity::StoreTenant,
    web::{Fields, field, page},
};

pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/s/{org}/tickets/{ticket_id}", get(ticket_page))
        .route("/s/{org}/tickets/{ticket_id}/transfer", post(hand_on))
}

#[derive(Deserialize)]
struct AccessQuery {
    access_token: String,
}

#[derive(Template)]
#[template(path = "ticket.html")]
struct TicketPage {
    org: String,
    access_token: String,
    ticket: TicketView,
    event_name: String,
    when: String,
    type_name: String,
    seat: Option<String>,
    svg: String,
    answers: Vec<(String, String)>,
    /// It may be handed on now.
    transferable: bool,
}

impl TicketPage {
    fn valid(&self) -> bool {
        self.ticket.status == TicketStatus::Valid
    }
}

async fn ticket_page(
    State(app): State<App>,
    StoreTenant(t): StoreTenant,
    ApiPath((org, id)): ApiPath<(String, TicketId)>,
    ApiQuery(q): ApiQuery<AccessQuery>,
) -> Result<Response, ApiError> {
    let ticket = super::for_holder(&app, &t, id, &q.access_token).await?;
    let catalog = crate::events::catalog(&app, &t, ticket.event_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let e = &catalog.event;
    let ty = catalog.ticket_type(ticket.ticket_type_id);
    let questions = ty.map(|t| t.questions.clone()).unwrap_or_default();
    let valid = ticket.status == TicketStatus::Valid;
    let mut res = page(
        StatusCode::OK,
        TicketPage {
            org,
            access_token: q.access_token,
            event_name: e.name.clone(),
            when: crate::events::shown_in(e.starts_at_micros, &e.timezone),
            type_name: ty.map(|t| t.name.clone()).unwrap_or_default(),
            seat: ticket
                .seat
                .as_ref()
                .map(|s| format!("{} · Row {}, seat {}", s.section, s.row, s.label)),
            svg: if valid {
                super::qr_svg(&ticket.code).unwrap_or_default()
            } else {
                String::new()
            },
            answers: crate::events::questions::labelled(&questions, &ticket.answers),
            transferable: valid
                && ticket.admitted_at.is_none()
                && e.transfers_open_at(app.kernel.now()),
            ticket,
        },
    );
    // The link carries the holder's key: no cache may keep it.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

#[derive(Template)]
#[template(path = "transfer_refused.html")]
struct Refused {
    message: String,
    back: String,
}

/// Hands the ticket on (the form of the order page or the ticket's page),
/// then back to where it was asked (which now shows it handed on).
async fn hand_on(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    StoreTenant(t): StoreTenant,
    ApiPath((org, id)): ApiPath<(String, TicketId)>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    let token = field(&form, "access_token").to_string();
    // Back to the order's page (the buyer) or this ticket's (its holder).
    let back = match field(&form, "order_id").parse::<kernel::ids::OrderId>() {
        Ok(order) => format!("/s/{org}/orders/{order}?access_token={token}"),
        Err(_) => format!("/s/{org}/tickets/{id}?access_token={token}"),
    };
    let done = async {
        app.kernel.limits.storefront.check(&ip).await?;
        super::transfer(
            &app,
            &t,
            id,
            &token,
            TransferTo {
                email: field(&form, "email").to_string(),
                name: field(&form, "name").to_string(),
            },
        )
        .await
    }
    .await;
    match done {
        Ok(_) => Ok(Redirect::to(&back).into_response()),
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::NOT_FOUND => Ok(page(
            e.status(),
            Refused {
                message: crate::web::said(&e),
                back,
            },
        )),
        Err(e) => Err(e),
    }
}
