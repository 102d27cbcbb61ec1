//! Operations: liveness, readiness, and the kernel's upkeep — pruning what
//! the kernel's tables keep (delivered events, finished jobs, idempotency
//! keys past their retention) and forgetting idle in-memory state
//! (rate-limit buckets, PubSub topics nobody listens to).
//!
//! Also the org's view of its failed jobs (webhook deliveries that ran out
//! of retries, and later exports): list, retry, discard — API and page.
//!
//! Owns: nothing stored (jobs are the kernel's). Emits, consumes: nothing.

mod jobs_api;

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use kernel::{Kernel, Slice, idempotency, jobs, outbox};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::App;

/// The hourly prune of the kernel's tables (one run per hour across nodes).
#[derive(Serialize, Deserialize)]
pub struct Prune {}

impl jobs::Job for Prune {
    const KIND: &'static str = "maintenance.prune";
    const QUEUE: &'static str = jobs::MAINTENANCE_QUEUE;
    const MAX_ATTEMPTS: i64 = 5;
}

const KEEP_DONE: Duration = Duration::from_secs(24 * 3600);

pub fn slice(_kernel: &Kernel) -> Slice<App> {
    Slice::new("ops")
        .routes(jobs_api::routes())
        .pages(
            axum::Router::new()
                .route("/healthz", get(healthz))
                .route("/readyz", get(readyz))
                .merge(jobs_api::pages()),
        )
        .job::<Prune, _, _>(|app: App, _| async move { Ok(prune(&app).await?) })
        .periodic(Prune {}, Duration::from_secs(3600))
        .every(
            "ops.queue_gauges",
            Duration::from_secs(5),
            |app: App| async move { queue_gauges(&app).await.map_err(|e| e.to_string()) },
        )
        .every(
            "ops.forget_idle",
            Duration::from_secs(30),
            |app: App| async move { Ok(app.kernel.limits.forget_idle() + app.kernel.hub.prune()) },
        )
}

async fn prune(app: &App) -> Result<(), sqlx::Error> {
    let k = &app.kernel;
    let keys = idempotency::prune(&k.db, &k.clock).await?;
    let events = outbox::prune(k, KEEP_DONE).await?;
    let done = jobs::prune(&k.db, &k.clock, KEEP_DONE).await?;
    tracing::info!(keys, events, done, "pruned");
    Ok(())
}

/// Queue depth and the age of the oldest waiting job, per queue, for
/// `/metrics`.
async fn queue_gauges(app: &App) -> Result<usize, sqlx::Error> {
    let stats = jobs::stats(&app.kernel.db, &app.kernel.clock).await?;
    for s in &stats {
        let q = s.queue.clone();
        metrics::gauge!("voelgoed_jobs_waiting", "queue" => q.clone()).set(s.waiting as f64);
        metrics::gauge!("voelgoed_jobs_running", "queue" => q.clone()).set(s.running as f64);
        metrics::gauge!("voelgoed_jobs_dead", "queue" => q.clone()).set(s.dead as f64);
        metrics::gauge!("voelgoed_jobs_oldest_wait_seconds", "queue" => q).set(s.oldest_wait_secs);
    }
    Ok(0)
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
    let queues = jobs::stats(&app.kernel.db, &app.kernel.clock)
        .await
        .unwrap_or_default();
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
            "queues": queues,
        })),
    )
        .into_response()
}
