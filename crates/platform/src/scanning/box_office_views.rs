//! The box office page: look an event's tickets up by buyer or order,
//! check one in by hand, undo a mistaken admission.

use askama::Template;
use axum::{
    Form,
    extract::State,
    http::StatusCode,
    response::Response,
    routing::{get, post},
};
use kernel::{
    ApiError, Permission, clock,
    http::{ApiPath, ApiQuery},
    ids::{EventId, GateId, TicketId},
};
use serde::Deserialize;

use super::{box_office, domain::ScanResult};
use crate::{
    App,
    identity::SessionActor,
    web::{Fields, csrf_matches, csrf_refused, field, page, said},
};

pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route(
            "/dashboard/events/{event_id}/box-office",
            get(box_office_page),
        )
        .route(
            "/dashboard/events/{event_id}/box-office/tickets/{ticket_id}/check-in",
            post(check_in),
        )
        .route(
            "/dashboard/events/{event_id}/box-office/tickets/{ticket_id}/undo",
            post(undo),
        )
}

struct Found {
    id: String,
    name: String,
    email: String,
    order_id: String,
    order_short: String,
    type_name: String,
    seat: String,
    status: &'static str,
    presence: String,
    can_check_in: bool,
    can_undo: bool,
}

#[derive(Template)]
#[template(path = "box_office.html")]
struct BoxOfficePage {
    event_id: String,
    event_name: String,
    csrf: String,
    q: String,
    searched: bool,
    found: Vec<Found>,
    gates: Vec<(String, String)>,
    /// A change's outcome: its kind (a scan result, for colour) and words.
    notice: Option<(String, String)>,
    error: Option<String>,
}

async fn build(
    app: &App,
    session: &SessionActor,
    event: EventId,
    q: &str,
) -> Result<BoxOfficePage, ApiError> {
    let actor = &session.actor;
    let t = actor.require(Permission::OrdersRead)?;
    let catalog = crate::events::catalog(app, t, event)
        .await?
        .ok_or(ApiError::NotFound)?;
    let tz = jiff::tz::TimeZone::get(&catalog.event.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    let local = |s: &str| {
        clock::parse_rfc3339(s)
            .and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
            .map_or_else(
                || s.to_string(),
                |ts| tz.to_datetime(ts).strftime("%Y-%m-%d %H:%M").to_string(),
            )
    };
    let q = q.trim();
    let mut error = None;
    let found = if q.is_empty() {
        Vec::new()
    } else {
        match box_office::find(app, actor, event, q, 20).await {
            Ok(f) => f,
            Err(e) => {
                let e = ApiError::from(e);
                if !e.status().is_client_error() {
                    return Err(e);
                }
                error = Some(said(&e));
                Vec::new()
            }
        }
    };
    let may_change = box_office::may_change(actor);
    Ok(BoxOfficePage {
        event_id: event.to_string(),
        event_name: catalog.event.name.clone(),
        csrf: session.csrf.clone(),
        q: q.to_string(),
        searched: !q.is_empty() && error.is_none(),
        found: found
            .into_iter()
            .map(|f| {
                let valid = f.ticket.status == crate::tickets::TicketStatus::Valid;
                let admitted = f.ticket.admitted_at.clone();
                Found {
                    id: f.ticket.id.to_string(),
                    name: f.buyer_name,
                    email: f.buyer_email,
                    order_id: f.order_id.to_string(),
                    order_short: f.order_id.to_string().chars().take(8).collect(),
                    type_name: catalog
                        .ticket_type(f.ticket.ticket_type_id)
                        .map_or_else(String::new, |tt| tt.name.clone()),
                    seat: f
                        .ticket
                        .seat
                        .as_ref()
                        .map(|s| {
                            format!("{} {} {}", s.section, s.row, s.label)
                                .trim()
                                .to_string()
                        })
                        .unwrap_or_default(),
                    status: if valid { "valid" } else { "revoked" },
                    presence: match (&admitted, f.inside) {
                        (Some(a), true) => format!("inside (first in {})", local(a)),
                        (Some(a), false) => format!("admitted {}, not inside now", local(a)),
                        (None, _) => "not yet".to_string(),
                    },
                    can_check_in: may_change && valid && (admitted.is_none() || !f.inside),
                    can_undo: may_change && admitted.is_some(),
                }
            })
            .collect(),
        gates: super::setup::for_event(app.db(), t, event)
            .await?
            .into_iter()
            .map(|g| (g.id.to_string(), g.name))
            .collect(),
        notice: None,
        error,
    })
}

#[derive(Deserialize)]
struct LookupQuery {
    q: Option<String>,
}

async fn box_office_page(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    ApiQuery(query): ApiQuery<LookupQuery>,
) -> Result<Response, ApiError> {
    let p = build(&app, &session, event, query.q.as_deref().unwrap_or("")).await?;
    Ok(page(StatusCode::OK, p))
}

/// The page again, looked up as before, with what the change did.
async fn after(
    app: &App,
    session: &SessionActor,
    event: EventId,
    form: &Fields,
    outcome: Result<(String, String), ApiError>,
) -> Result<Response, ApiError> {
    let mut p = build(app, session, event, field(form, "q")).await?;
    let status = match outcome {
        Ok(n) => {
            p.notice = Some(n);
            StatusCode::OK
        }
        Err(e) if e.status().is_client_error() => {
            p.error = Some(said(&e));
            e.status()
        }
        Err(e) => return Err(e),
    };
    Ok(page(status, p))
}

async fn check_in(
    State(app): State<App>,
    session: SessionActor,
    ApiPath((event, ticket)): ApiPath<(EventId, TicketId)>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let gate: Option<GateId> = match field(&form, "gate_id") {
        "" => None,
        g => match g.parse() {
            Ok(g) => Some(g),
            Err(_) => {
                let e = ApiError::field("gate_id", "is not a gate");
                return after(&app, &session, event, &form, Err(e)).await;
            }
        },
    };
    let outcome = box_office::check_in(
        &app,
        &session.actor,
        event,
        ticket,
        gate,
        field(&form, "reason"),
    )
    .await
    .map(|o| {
        let words = match o.result {
            ScanResult::Admitted => "Checked in.".to_string(),
            _ => format!("Not checked in: {}.", o.reason),
        };
        (o.result.as_str().to_string(), words)
    })
    .map_err(ApiError::from);
    after(&app, &session, event, &form, outcome).await
}

async fn undo(
    State(app): State<App>,
    session: SessionActor,
    ApiPath((event, ticket)): ApiPath<(EventId, TicketId)>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_matches(&session.csrf, field(&form, "csrf")) {
        return Ok(csrf_refused());
    }
    let outcome =
        box_office::undo_admission(&app, &session.actor, event, ticket, field(&form, "reason"))
            .await
            .map(|_| {
                (
                    "undone".to_string(),
                    "Admission undone: the ticket can come in again.".to_string(),
                )
            })
            .map_err(ApiError::from);
    after(&app, &session, event, &form, outcome).await
}
