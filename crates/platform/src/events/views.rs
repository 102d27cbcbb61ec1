//! The organizer's event actions from the console (the event's dashboard
//! page itself is the live slice's).

use axum::{
    Form,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::post,
};
use kernel::{ApiError, http::ApiPath, ids::EventId};

use crate::{App, identity::SessionActor, web::csrf_matches};

pub fn routes() -> axum::Router<App> {
    axum::Router::new().route("/dashboard/events/{event_id}/cancel", post(cancel))
}

async fn cancel(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    if !csrf_matches(&session.csrf, field("csrf")) {
        return Ok((StatusCode::FORBIDDEN, "invalid CSRF token").into_response());
    }
    if field("confirm") != "yes" {
        return Err(ApiError::field(
            "confirm",
            "tick the box to cancel the event",
        ));
    }
    super::domain::cancel(&app, &session.actor, event).await?;
    Ok(Redirect::to(&format!("/dashboard/events/{event}")).into_response())
}
