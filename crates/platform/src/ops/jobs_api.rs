//! The org's failed jobs: the ones that concern it (webhook deliveries,
//! exports) and ran out of attempts, to retry or discard.

use askama::Template;
use axum::{
    Form,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use kernel::{
    ApiError, Permission,
    clock::rfc3339,
    http::{ApiPath, ApiQuery},
    jobs::{self, Filter, JobInfo},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    App,
    identity::{Actor, OrgActor, SessionActor},
    web::{csrf_matches, page},
};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(retry_job))
        .routes(routes!(discard_job))
}

pub fn pages() -> axum::Router<App> {
    axum::Router::new()
        .route("/dashboard/jobs", get(jobs_page))
        .route("/dashboard/jobs/{job_id}/retry", post(retry_form))
        .route("/dashboard/jobs/{job_id}/discard", post(discard_form))
}

/// A job of the org's, as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct JobView {
    id: Uuid,
    queue: String,
    /// What it does: `webhooks.deliver`, ...
    kind: String,
    /// `available`, `running`, `done`, `dead` or `discarded`.
    state: String,
    attempts: i64,
    max_attempts: i64,
    /// When it runs next (while waiting).
    run_at: String,
    created_at: String,
    finished_at: Option<String>,
    last_error: Option<String>,
    /// The job's arguments (ids only).
    args: serde_json::Value,
}

impl From<JobInfo> for JobView {
    fn from(j: JobInfo) -> JobView {
        JobView {
            id: j.id,
            queue: j.queue,
            kind: j.kind,
            state: j.state,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            run_at: rfc3339(j.run_at),
            created_at: rfc3339(j.created_at),
            finished_at: j.finished_at.map(rfc3339),
            last_error: j.last_error,
            args: serde_json::from_str(&j.payload).unwrap_or(serde_json::Value::Null),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// `failed` (dead or discarded; the default), or one state.
    #[param(inline, value_type = Option<String>, pattern = r"^(failed|available|running|done|dead|discarded)$")]
    state: Option<String>,
    /// Only this queue's jobs: `webhooks`, `mail`, ...
    #[param(pattern = r"^[a-z_]{1,40}$")]
    queue: Option<String>,
    /// At most 200; 50 when left out.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct JobList {
    data: Vec<JobView>,
    next_cursor: Option<String>,
}

fn org(actor: &Actor) -> Result<Uuid, ApiError> {
    Ok(actor.require(Permission::WebhooksManage)?.org().0)
}

/// The org's jobs, newest first (its failed ones unless `state` says).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/jobs", tag = "jobs",
    params(("org" = String, Path, description = "organization slug"), JobsQuery),
    security(("api_key" = [])),
    responses((status = 200, body = JobList, description = "a page of jobs")))]
async fn list_jobs(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiQuery(q): ApiQuery<JobsQuery>,
) -> Result<axum::Json<JobList>, ApiError> {
    let org = org(&actor)?;
    let state = q.state.unwrap_or_else(|| "failed".into());
    if ![
        "failed",
        "available",
        "running",
        "done",
        "dead",
        "discarded",
    ]
    .contains(&state.as_str())
    {
        return Err(ApiError::field("state", "is not a job state"));
    }
    let queue_name = |q: &str| {
        (1..=40).contains(&q.len()) && q.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    };
    if q.queue.as_deref().is_some_and(|q| !queue_name(q)) {
        return Err(ApiError::field("queue", "is not a queue name"));
    }
    let (limit, before) = kernel::http::page::<Uuid>(q.limit, q.cursor.as_deref())?;
    let rows = jobs::list(
        app.db(),
        &Filter {
            org: Some(org),
            state: Some(state),
            queue: q.queue.clone(),
            before,
            limit,
        },
    )
    .await?;
    let next_cursor = kernel::http::next_cursor(&rows, limit, |r| r.id);
    Ok(axum::Json(JobList {
        data: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

async fn act(app: &App, actor: &Actor, id: Uuid, retry: bool) -> Result<JobView, ApiError> {
    let org = org(actor)?;
    let job = jobs::get(app.db(), id, Some(org))
        .await?
        .ok_or(ApiError::NotFound)?;
    let audit = actor
        .audit(if retry { "job.retry" } else { "job.discard" }, "job")
        .object(id)
        .before(serde_json::json!({"kind": job.kind, "state": job.state}))
        .stmt(app.kernel.now());
    let done = if retry {
        jobs::retry_recorded(app.db(), &app.kernel.clock, id, Some(org), Some(audit)).await?
    } else {
        jobs::discard_recorded(app.db(), &app.kernel.clock, id, Some(org), Some(audit)).await?
    };
    if !done {
        return Err(ApiError::Conflict(format!(
            "the job is {}; only {} jobs can be {}",
            job.state,
            if retry {
                "dead or discarded"
            } else {
                "waiting or dead"
            },
            if retry { "retried" } else { "discarded" }
        )));
    }
    jobs::get(app.db(), id, Some(org))
        .await?
        .map(Into::into)
        .ok_or(ApiError::NotFound)
}

/// Runs a failed job again, with a fresh set of attempts.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/jobs/{job_id}/retry", tag = "jobs",
    params(("org" = String, Path, description = "organization slug"),
           ("job_id" = Uuid, Path, description = "the job")),
    security(("api_key" = [])),
    responses((status = 200, body = JobView, description = "queued again"),
              (status = 409, description = "the job has not failed")))]
async fn retry_job(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, Uuid)>,
) -> Result<axum::Json<JobView>, ApiError> {
    Ok(axum::Json(act(&app, &actor, path.1, true).await?))
}

/// Gives up on a waiting or failed job (it stays listed, `discarded`).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/jobs/{job_id}/discard", tag = "jobs",
    params(("org" = String, Path, description = "organization slug"),
           ("job_id" = Uuid, Path, description = "the job")),
    security(("api_key" = [])),
    responses((status = 200, body = JobView, description = "discarded"),
              (status = 409, description = "the job is running or done")))]
async fn discard_job(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, Uuid)>,
) -> Result<axum::Json<JobView>, ApiError> {
    Ok(axum::Json(act(&app, &actor, path.1, false).await?))
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    csrf: String,
    jobs: Vec<JobView>,
}

async fn jobs_page(State(app): State<App>, session: SessionActor) -> Result<Response, ApiError> {
    let org = org(&session.actor)?;
    let rows = jobs::list(
        app.db(),
        &Filter {
            org: Some(org),
            state: Some("failed".into()),
            limit: 200,
            ..Filter::default()
        },
    )
    .await?;
    Ok(page(
        StatusCode::OK,
        JobsPage {
            csrf: session.csrf,
            jobs: rows.into_iter().map(Into::into).collect(),
        },
    ))
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn form_act(
    app: App,
    session: SessionActor,
    id: Uuid,
    form: CsrfForm,
    retry: bool,
) -> Response {
    if !csrf_matches(&session.csrf, &form.csrf) {
        return (StatusCode::FORBIDDEN, "invalid CSRF token").into_response();
    }
    match act(&app, &session.actor, id, retry).await {
        Ok(_) => Redirect::to("/dashboard/jobs").into_response(),
        Err(e) => e.into_response(),
    }
}

async fn retry_form(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(id): ApiPath<Uuid>,
    Form(form): Form<CsrfForm>,
) -> Response {
    form_act(app, session, id, form, true).await
}

async fn discard_form(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(id): ApiPath<Uuid>,
    Form(form): Form<CsrfForm>,
) -> Response {
    form_act(app, session, id, form, false).await
}
