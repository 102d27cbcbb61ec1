//! The HTTP surface assembled: every slice's API routes (with their OpenAPI
//! descriptions), pages, and the layers every request passes through.

use std::time::Duration;

use askama::Template;
use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use kernel::ApiError;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;

use crate::{App, events, identity, live, ops, sales, scanning, tickets};

#[derive(OpenApi)]
#[openapi(
    info(title = "VoelgoedEvents API", version = "1", description = "Event ticketing and access control."),
    modifiers(&Security),
    tags((name = "identity"), (name = "events"), (name = "storefront"), (name = "orders"),
         (name = "tickets"), (name = "devices"), (name = "scanning"), (name = "live"))
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "device_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The API routes and the OpenAPI document that describes them.
pub fn api() -> (axum::Router<App>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(identity::routes())
        .merge(events::routes())
        .merge(sales::routes())
        .merge(tickets::routes())
        .merge(scanning::routes())
        .merge(live::routes())
        .split_for_parts()
}

pub fn router(app: App) -> axum::Router {
    let (api, doc) = api();
    let doc = std::sync::Arc::new(doc);
    axum::Router::new()
        .merge(api)
        .route(
            "/api/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json((*doc).clone()) }
            }),
        )
        .merge(ops::routes())
        .merge(identity::views::routes())
        .merge(sales::views::routes())
        .merge(live::views::routes())
        .route("/", get(home))
        .route("/assets/app.css", get(css))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(app)
}

/// Renders a page; a template error is a 500 problem, never a panic.
pub fn page(status: StatusCode, t: impl Template) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage;

async fn home() -> Response {
    page(StatusCode::OK, HomePage)
}

async fn css() -> Response {
    let mut res = include_str!("../templates/app.css").into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    res
}

/// How long a request may take before it is answered 503 (SSE streams are
/// exempt: their headers go out at once).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
