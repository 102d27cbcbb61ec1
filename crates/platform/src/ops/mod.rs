//! Operations: liveness and readiness.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use crate::App;

pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> Response {
    (StatusCode::OK, Json(json!({ "status": "ok" }))).into_response()
}

/// 200 only when the database (and Redis, when configured) answer.
async fn readyz(State(app): State<App>) -> Response {
    let db = app.db().ping().await.is_ok();
    let redis = match &app.kernel.warm {
        Some(w) => Some(w.ping().await.is_ok()),
        None => None,
    };
    let ready = db && redis.unwrap_or(true);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "not_ready" },
            "database": if db { "ok" } else { "down" },
            "redis": redis.map(|ok| if ok { "ok" } else { "down" }).unwrap_or("not_configured"),
        })),
    )
        .into_response()
}
