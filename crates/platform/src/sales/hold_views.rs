//! The storefront's second step: the buyer's hold (the cart the event page
//! made, or the seats picked on its map), held while they say who they are,
//! answer each ticket's questions and choose how to pay; then the order.

use askama::Template;
use axum::{
    Form,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use kernel::{
    ApiError,
    http::{ApiPath, ClientAddr},
    ids::{HoldId, TicketTypeId},
};

use super::{
    attendees::{Answers, Attendee},
    domain::{self, Buyer, HoldStatus, PaymentMethod},
    store,
};
use crate::{
    App,
    events::{self, Question},
    identity::{StoreTenant, Tenant},
    web::{Fields, field, page},
};

pub fn routes() -> axum::Router<App> {
    axum::Router::new().route("/s/{org}/holds/{hold_id}", get(hold_page).post(check_out))
}

/// One ticket of the hold, with its questions (and what was typed).
struct Slot {
    /// Its place among the hold's tickets (fields `a{n}_{question id}`).
    n: usize,
    ticket_type_id: TicketTypeId,
    type_name: String,
    seat: Option<String>,
    questions: Vec<(Question, String)>,
}

struct Line {
    name: String,
    quantity: i64,
    price: String,
}

#[derive(Template)]
#[template(path = "hold.html")]
struct HoldPage {
    org: String,
    hold_id: String,
    event_id: String,
    event_name: String,
    lines: Vec<Line>,
    voucher: Option<String>,
    /// RFC 3339; the page counts down to it.
    expires_at: String,
    /// How long that is, in words (before the countdown starts).
    left: String,
    /// Still to be checked out (else: expired or done).
    open: bool,
    slots: Vec<Slot>,
    priced: bool,
    card: bool,
    email: String,
    name: String,
    error: Option<String>,
}

impl HoldPage {
    fn kind(&self, q: &Question) -> &'static str {
        match q.kind {
            events::QuestionKind::Email => "email",
            events::QuestionKind::Phone => "tel",
            _ => "text",
        }
    }
}

/// The hold as its page shows it, with the values typed (`form`, when the
/// page comes back with an error).
async fn hold_of(
    app: &App,
    t: &Tenant,
    org: String,
    hold: HoldId,
    form: Option<&Fields>,
) -> Result<HoldPage, ApiError> {
    let h = store::hold_for_checkout(app.db(), t, hold)
        .await?
        .ok_or(ApiError::NotFound)?;
    let now = app.kernel.now();
    let catalog = events::catalog(app, t, h.event)
        .await?
        .ok_or(ApiError::NotFound)?;
    let voucher = match h.voucher {
        Some((v, _)) => events::voucher(app, t, v).await?,
        None => None,
    };
    let seats = domain::held_seats(app, t, h.event, hold).await?;
    let map = if seats.is_empty() {
        None
    } else {
        events::seating(app, t, h.event).await?
    };
    let typed = |name: &str| form.map(|f| field(f, name).to_string()).unwrap_or_default();
    let mut lines = Vec::new();
    let mut slots = Vec::new();
    let mut priced = false;
    for (tt, q) in &h.items {
        let Some(ty) = catalog.ticket_type(*tt) else {
            continue;
        };
        priced |= ty.price_cents > 0;
        lines.push(Line {
            name: ty.name.clone(),
            quantity: *q,
            price: super::views::money(ty.price_cents, &ty.currency),
        });
        let mut its_seats = seats.iter().filter(|(st, _)| st == tt).map(|(_, s)| s);
        for _ in 0..*q {
            let n = slots.len();
            let seat = its_seats.next().and_then(|id| {
                map.as_ref()
                    .and_then(|m| m.seat(id))
                    .map(|s| format!("{} · Row {}, seat {}", s.section, s.row, s.label))
            });
            slots.push(Slot {
                n,
                ticket_type_id: *tt,
                type_name: ty.name.clone(),
                seat,
                questions: ty
                    .questions
                    .iter()
                    .map(|q| (q.clone(), typed(&format!("a{n}_{}", q.id))))
                    .collect(),
            });
        }
    }
    Ok(HoldPage {
        org,
        hold_id: hold.to_string(),
        event_id: h.event.to_string(),
        event_name: catalog.event.name.clone(),
        lines,
        voucher: voucher.map(|v| v.code.clone()),
        expires_at: kernel::clock::rfc3339(h.expires_at),
        left: {
            let mins = ((h.expires_at - now).max(0) + 59_999_999) / 60_000_000;
            match mins {
                m if m < 120 => format!("{m} minutes"),
                m => format!("{} hours", m / 60),
            }
        },
        open: h.status == HoldStatus::Active && h.expires_at > now,
        slots,
        priced,
        card: app.state::<super::money::Payments>().stripe.is_some(),
        email: typed("email"),
        name: typed("name"),
        error: None,
    })
}

async fn hold_page(
    State(app): State<App>,
    StoreTenant(t): StoreTenant,
    ApiPath((org, hold)): ApiPath<(String, HoldId)>,
) -> Result<Response, ApiError> {
    let p = hold_of(&app, &t, org, hold, None).await?;
    let mut res = page(StatusCode::OK, p);
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

/// Each ticket's answers from the form, in the hold's ticket order.
fn attendees_of(p: &HoldPage, form: &Fields) -> Vec<Attendee> {
    p.slots
        .iter()
        .map(|s| {
            let answers: Answers = s
                .questions
                .iter()
                .map(|(q, _)| {
                    (
                        q.id.clone(),
                        field(form, &format!("a{}_{}", s.n, q.id)).to_string(),
                    )
                })
                .filter(|(_, v)| !v.trim().is_empty())
                .collect();
            Attendee {
                ticket_type_id: s.ticket_type_id,
                answers,
            }
        })
        .collect()
}

/// Checks the hold out: the order's page, or this page again with what was
/// wrong (and what was typed).
async fn check_out(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    StoreTenant(t): StoreTenant,
    ApiPath((org, hold)): ApiPath<(String, HoldId)>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    let mut p = hold_of(&app, &t, org.clone(), hold, Some(&form)).await?;
    let result = async {
        app.kernel.limits.storefront.check(&ip).await?;
        let email = field(&form, "email").to_string();
        app.kernel
            .limits
            .buyer
            .check(&email.trim().to_lowercase())
            .await?;
        let method = match field(&form, "payment_method") {
            "card" => PaymentMethod::Card,
            _ => PaymentMethod::Eft,
        };
        let reply = domain::checkout(
            &app,
            &t,
            hold,
            Buyer {
                email,
                name: field(&form, "name").to_string(),
            },
            attendees_of(&p, &form),
            method,
            None,
        )
        .await?;
        serde_json::from_str::<domain::OrderView>(&reply.body).map_err(ApiError::internal)
    }
    .await;
    match result {
        Ok(order) => Ok(Redirect::to(&format!(
            "/s/{org}/orders/{}?access_token={}",
            order.id,
            order.access_token.unwrap_or_default()
        ))
        .into_response()),
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::NOT_FOUND => {
            p.error = Some(match &e {
                ApiError::HoldExpired => {
                    "Your hold has expired and its tickets went back on sale: choose again."
                        .to_string()
                }
                other => crate::web::said(other),
            });
            if matches!(e, ApiError::HoldExpired) {
                p.open = false;
            }
            Ok(page(e.status(), p))
        }
        Err(e) => Err(e),
    }
}
