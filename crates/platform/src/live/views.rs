//! The organizer's dashboards: the event list and one event's live figures.

use askama::Template;
use axum::{extract::State, http::StatusCode, response::Response, routing::get};
use kernel::{http::ApiPath, ids::EventId};

use crate::{App, events, identity::SessionActor, web::page};

pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/dashboard", get(dashboard))
        .route("/dashboard/events/{event_id}", get(event_dashboard))
}

struct EventRow {
    id: String,
    name: String,
    starts_at: String,
    status: &'static str,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    org_slug: String,
    csrf: String,
    events: Vec<EventRow>,
}

async fn dashboard(
    State(app): State<App>,
    session: SessionActor,
) -> Result<Response, kernel::ApiError> {
    let (list, _) = events::list_events(&app, &session.actor, 200, None).await?;
    let events = list
        .into_iter()
        .map(|e| EventRow {
            id: e.id.to_string(),
            name: e.name,
            starts_at: events::shown_in(e.starts_at_micros, &e.timezone),
            status: e.status.as_str(),
        })
        .collect();
    Ok(page(
        StatusCode::OK,
        DashboardPage {
            org_slug: session.actor.org_slug().to_string(),
            csrf: session.csrf,
            events,
        },
    ))
}

#[derive(Template)]
#[template(path = "event_dashboard.html")]
struct EventDashboardPage {
    org_slug: String,
    event_id: String,
    name: String,
    starts_at: String,
    store_url: String,
    figures: super::Figures,
    status: &'static str,
    csrf: String,
}

async fn event_dashboard(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
) -> Result<Response, kernel::ApiError> {
    let e = events::get_event(&app, &session.actor, event).await?;
    let figures = super::figures(&app, session.actor.tenant(), event).await?;
    let slug = session.actor.org_slug().to_string();
    Ok(page(
        StatusCode::OK,
        EventDashboardPage {
            store_url: format!("/s/{slug}/events/{}", e.id),
            org_slug: slug,
            event_id: e.id.to_string(),
            name: e.name,
            starts_at: events::shown_in(e.starts_at_micros, &e.timezone),
            figures,
            status: e.status.as_str(),
            csrf: session.csrf.clone(),
        },
    ))
}
