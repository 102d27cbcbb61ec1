//! The waiting list's pages: joining from the storefront (for a sold-out
//! ticket type), and the organizer's view of who waits, who was offered
//! what, who bought.

use askama::Template;
use axum::{
    Form,
    extract::State,
    http::StatusCode,
    response::Response,
    routing::{get, post},
};
use kernel::{
    ApiError,
    http::{ApiPath, ClientAddr},
    ids::{EventId, TicketTypeId},
};

use super::waitlist::{self, Join};
use crate::{
    App,
    identity::{SessionActor, StoreTenant},
    web::{Fields, field, page},
};

pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/s/{org}/events/{event_id}/waiting-list", post(join))
        .route(
            "/dashboard/events/{event_id}/waiting-list",
            get(organizer_page),
        )
}

#[derive(Template)]
#[template(path = "waitlist_joined.html")]
struct Joined {
    org: String,
    event_id: String,
    event_name: String,
    type_name: String,
    position: i64,
    error: Option<String>,
}

/// Joins the line (the event page's form); says where they stand, or why
/// not.
async fn join(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    StoreTenant(t): StoreTenant,
    ApiPath((org, event)): ApiPath<(String, EventId)>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    let catalog = super::domain::published_catalog(&app, &t, event).await?;
    let tt: Option<TicketTypeId> = field(&form, "ticket_type_id").parse().ok();
    let joined = async {
        app.kernel.limits.storefront.check(&ip).await?;
        let quantity = field(&form, "quantity")
            .trim()
            .parse()
            .map_err(|_| ApiError::field("quantity", "must be a whole number"))?;
        let ticket_type_id =
            tt.ok_or_else(|| ApiError::field("ticket_type_id", "choose a ticket type"))?;
        waitlist::join(
            &app,
            &t,
            event,
            Join {
                ticket_type_id,
                quantity,
                email: field(&form, "email").to_string(),
                name: field(&form, "name").to_string(),
            },
        )
        .await
        .map_err(ApiError::from)
    }
    .await;
    let mut p = Joined {
        org,
        event_id: event.to_string(),
        event_name: catalog.event.name.clone(),
        type_name: tt
            .and_then(|tt| catalog.ticket_type(tt))
            .map(|t| t.name.clone())
            .unwrap_or_default(),
        position: 0,
        error: None,
    };
    match joined {
        Ok((_, position)) => {
            p.position = position;
            Ok(page(StatusCode::CREATED, p))
        }
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::NOT_FOUND => {
            p.error = Some(crate::web::said(&e));
            Ok(page(e.status(), p))
        }
        Err(e) => Err(e),
    }
}

struct EntryRow {
    email: String,
    name: String,
    type_name: String,
    quantity: i64,
    status: &'static str,
    joined: String,
    offered_until: String,
}

#[derive(Template)]
#[template(path = "waiting_list.html")]
struct OrganizerPage {
    event_id: String,
    event_name: String,
    entries: Vec<EntryRow>,
    more: bool,
}

async fn organizer_page(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
) -> Result<Response, ApiError> {
    let t = session.actor.require(kernel::Permission::OrdersRead)?;
    let catalog = crate::events::catalog(&app, t, event)
        .await?
        .ok_or(ApiError::NotFound)?;
    let (entries, next) = waitlist::list(&app, &session.actor, event, 200, None).await?;
    let tz = catalog.event.timezone.as_str();
    let at = |s: &str| {
        kernel::clock::parse_rfc3339(s)
            .map(|m| crate::events::shown_in(m, tz))
            .unwrap_or_default()
    };
    Ok(page(
        StatusCode::OK,
        OrganizerPage {
            event_id: event.to_string(),
            event_name: catalog.event.name.clone(),
            entries: entries
                .iter()
                .map(|e| EntryRow {
                    email: e.email.clone(),
                    name: e.name.clone(),
                    type_name: catalog
                        .ticket_type(e.ticket_type_id)
                        .map(|t| t.name.clone())
                        .unwrap_or_default(),
                    quantity: e.quantity,
                    status: e.status.as_str(),
                    joined: at(&e.joined_at),
                    offered_until: e.offer_expires_at.as_deref().map(at).unwrap_or_default(),
                })
                .collect(),
            more: next.is_some(),
        },
    ))
}
