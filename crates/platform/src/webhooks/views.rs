//! The organizer's webhook pages: endpoints (add, secret shown once,
//! rotate, enable, disable) and each endpoint's delivery log (redeliver).

use askama::Template;
use axum::{
    Form,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use kernel::{
    ApiError,
    http::ApiPath,
    ids::{DeliveryId, WebhookId},
};

use super::domain::{self, EVENT_TYPES};
use crate::{
    App,
    identity::SessionActor,
    web::{csrf_matches, page},
};

pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/dashboard/webhooks", get(endpoints).post(create))
        .route("/dashboard/webhooks/{webhook_id}", get(deliveries))
        .route("/dashboard/webhooks/{webhook_id}/rotate", post(rotate))
        .route("/dashboard/webhooks/{webhook_id}/enable", post(enable))
        .route("/dashboard/webhooks/{webhook_id}/disable", post(disable))
        .route(
            "/dashboard/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
            post(redeliver),
        )
}

type Fields = Vec<(String, String)>;

fn field<'a>(form: &'a Fields, name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The form's CSRF token matches the session's, or a 403 to return.
fn csrf_ok(session: &SessionActor, form: &Fields) -> Result<(), Box<Response>> {
    match field(form, "csrf") {
        Some(c) if csrf_matches(&session.csrf, c) => Ok(()),
        _ => Err(Box::new(
            (StatusCode::FORBIDDEN, "invalid CSRF token").into_response(),
        )),
    }
}

struct Row {
    id: String,
    url: String,
    types: String,
    status: String,
    reason: Option<String>,
}

struct NewSecret {
    url: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct EndpointsPage {
    org_slug: String,
    csrf: String,
    endpoints: Vec<Row>,
    event_types: &'static [&'static str],
    new_secret: Option<NewSecret>,
    error: Option<String>,
}

async fn render(
    app: &App,
    session: &SessionActor,
    status: StatusCode,
    new_secret: Option<NewSecret>,
    error: Option<String>,
) -> Response {
    let list = match domain::list(app, &session.actor).await {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let endpoints = list
        .into_iter()
        .map(|w| Row {
            id: w.id.to_string(),
            url: w.url,
            types: w.event_types.join(", "),
            status: w.status,
            reason: w.disabled_reason,
        })
        .collect();
    let mut res = page(
        status,
        EndpointsPage {
            org_slug: session.actor.org_slug().to_string(),
            csrf: session.csrf.clone(),
            endpoints,
            event_types: &EVENT_TYPES,
            new_secret,
            error,
        },
    );
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    res
}

async fn endpoints(State(app): State<App>, session: SessionActor) -> Response {
    render(&app, &session, StatusCode::OK, None, None).await
}

async fn create(
    State(app): State<App>,
    session: SessionActor,
    Form(form): Form<Fields>,
) -> Response {
    if let Err(r) = csrf_ok(&session, &form) {
        return *r;
    }
    let url = field(&form, "url").unwrap_or("").trim().to_string();
    let types: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "event_types")
        .map(|(_, v)| v.clone())
        .collect();
    match domain::create(&app, &session.actor, url.clone(), types).await {
        Ok((_, secret)) => {
            render(
                &app,
                &session,
                StatusCode::CREATED,
                Some(NewSecret { url, secret }),
                None,
            )
            .await
        }
        Err(ApiError::Validation { detail, .. }) => {
            render(
                &app,
                &session,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(detail),
            )
            .await
        }
        Err(e) => e.into_response(),
    }
}

async fn rotate(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(id): ApiPath<WebhookId>,
    Form(form): Form<Fields>,
) -> Response {
    if let Err(r) = csrf_ok(&session, &form) {
        return *r;
    }
    let secret = match domain::rotate(&app, &session.actor, id).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let url = domain::get(&app, &session.actor, id)
        .await
        .map(|w| w.url)
        .unwrap_or_default();
    render(
        &app,
        &session,
        StatusCode::OK,
        Some(NewSecret { url, secret }),
        None,
    )
    .await
}

async fn switch(
    app: App,
    session: SessionActor,
    id: WebhookId,
    form: Fields,
    on: bool,
) -> Response {
    if let Err(r) = csrf_ok(&session, &form) {
        return *r;
    }
    match domain::set_active(&app, &session.actor, id, on).await {
        Ok(_) => Redirect::to("/dashboard/webhooks").into_response(),
        Err(e) => e.into_response(),
    }
}

async fn enable(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(id): ApiPath<WebhookId>,
    Form(form): Form<Fields>,
) -> Response {
    switch(app, session, id, form, true).await
}

async fn disable(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(id): ApiPath<WebhookId>,
    Form(form): Form<Fields>,
) -> Response {
    switch(app, session, id, form, false).await
}

struct DeliveryRow {
    id: String,
    event_id: String,
    event_type: String,
    status: String,
    attempts: i64,
    last: String,
    latency: String,
    next: String,
}

#[derive(Template)]
#[template(path = "webhook.html")]
struct DeliveriesPage {
    csrf: String,
    endpoint_id: String,
    url: String,
    status: String,
    reason: Option<String>,
    deliveries: Vec<DeliveryRow>,
}

async fn deliveries(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(id): ApiPath<WebhookId>,
) -> Result<Response, ApiError> {
    let w = domain::get(&app, &session.actor, id).await?;
    let list = domain::deliveries(&app, &session.actor, id, None, 100, false).await?;
    let deliveries = list
        .into_iter()
        .map(|d| DeliveryRow {
            id: d.id.to_string(),
            event_id: d.event_id.to_string(),
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            last: match (d.last_status, d.last_error) {
                (Some(s), _) => s.to_string(),
                (None, Some(e)) => e,
                (None, None) => "—".into(),
            },
            latency: d
                .last_latency_ms
                .map(|ms| format!("{ms} ms"))
                .unwrap_or_else(|| "—".into()),
            next: d.next_attempt_at.unwrap_or_else(|| "—".into()),
        })
        .collect();
    Ok(page(
        StatusCode::OK,
        DeliveriesPage {
            csrf: session.csrf,
            endpoint_id: id.to_string(),
            url: w.url,
            status: w.status,
            reason: w.disabled_reason,
            deliveries,
        },
    ))
}

async fn redeliver(
    State(app): State<App>,
    session: SessionActor,
    ApiPath((id, delivery)): ApiPath<(WebhookId, DeliveryId)>,
    Form(form): Form<Fields>,
) -> Response {
    if let Err(r) = csrf_ok(&session, &form) {
        return *r;
    }
    match domain::redeliver(&app, &session.actor, id, delivery).await {
        Ok(_) => Redirect::to(&format!("/dashboard/webhooks/{id}")).into_response(),
        Err(e) => e.into_response(),
    }
}
