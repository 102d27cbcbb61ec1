//! The audit log as an org's owners and admins read it: every change made
//! by a user, API key or device (who, with which credential, what, before
//! and after where it matters, when, from which address, in which request),
//! newest first, through the API with cursors and on a page with filters.
//!
//! Owns nothing: the entries are written by each slice in the transaction
//! of its change (`Actor::audit`), and sealed into a per-org hash chain by
//! the kernel (`kernel::audit`); this slice runs the sealer every second on
//! every node (safe: sealing is serialised per org by its head row).

use std::time::Duration;

use askama::Template;
use axum::{extract::State, http::StatusCode, response::Response, routing::get};
use kernel::{
    ApiError, Kernel, Permission, Slice,
    audit::{self, Query},
    clock::rfc3339,
    http::ApiQuery,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    App,
    identity::{Actor, OrgActor, SessionActor},
    web::page,
};

pub fn slice(_kernel: &Kernel) -> Slice<App> {
    Slice::new("audit")
        .routes(OpenApiRouter::new().routes(routes!(list_audit)))
        .pages(axum::Router::new().route("/dashboard/audit", get(audit_page)))
        .every(
            "audit.seal",
            Duration::from_secs(1),
            |app: App| async move {
                // One batch per org while requests are busy, ten otherwise.
                let batches = if app.kernel.load.pause().is_some() {
                    1
                } else {
                    10
                };
                audit::seal_up_to(app.db(), batches)
                    .await
                    .map_err(|e| e.to_string())
            },
        )
}

/// One audited change.
#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    id: Uuid,
    at: String,
    /// `user`, `api_key`, `device` or `operator`.
    actor_kind: String,
    /// The user, API key or device.
    actor_id: Option<String>,
    /// What was done: `event.create`, `webhook.rotate_secret`, ...
    action: String,
    object_type: String,
    object_id: Option<String>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
    client_ip: Option<String>,
    request_id: Option<String>,
    /// Its place in the org's hash chain (absent for the second or so
    /// before it is sealed).
    seq: Option<i64>,
}

impl From<audit::Row> for AuditEntry {
    fn from(r: audit::Row) -> AuditEntry {
        let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
        AuditEntry {
            id: r.id,
            at: rfc3339(r.at),
            actor_kind: r.actor_kind,
            actor_id: r.actor_id,
            action: r.action,
            object_type: r.object_type,
            object_id: r.object_id,
            before: json(r.before),
            after: json(r.after),
            client_ip: r.client_ip,
            request_id: r.request_id,
            seq: r.seq,
        }
    }
}

#[derive(Deserialize, IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only changes by this user, API key or device.
    #[param(max_length = 64)]
    actor_id: Option<String>,
    /// Only changes to this kind of object (`event`, `webhook`, ...).
    #[param(max_length = 64)]
    object_type: Option<String>,
    /// Only changes to this object.
    #[param(max_length = 64)]
    object_id: Option<String>,
    /// At most 200; 50 when left out.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    data: Vec<AuditEntry>,
    next_cursor: Option<String>,
}

fn too_long(name: &str, v: &Option<String>) -> Result<(), ApiError> {
    match v {
        Some(s) if s.chars().count() > 64 => {
            Err(ApiError::field(name, "is longer than 64 characters"))
        }
        _ => Ok(()),
    }
}

async fn entries(app: &App, actor: &Actor, q: AuditQuery) -> Result<AuditList, ApiError> {
    let t = actor.require(Permission::AuditRead)?;
    let (limit, before) = kernel::http::page::<Uuid>(q.limit, q.cursor.as_deref())?;
    too_long("actor_id", &q.actor_id)?;
    too_long("object_type", &q.object_type)?;
    too_long("object_id", &q.object_id)?;
    let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let rows = audit::read(
        app.db(),
        t.org().0,
        &Query {
            actor_id: nonempty(q.actor_id),
            object_type: nonempty(q.object_type),
            object_id: nonempty(q.object_id),
            before,
            limit,
        },
    )
    .await?;
    let next_cursor = kernel::http::next_cursor(&rows, limit, |r| r.id);
    Ok(AuditList {
        data: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    })
}

/// The org's audit log, newest first (owners and admins).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/audit", tag = "audit",
    params(("org" = String, Path, description = "organization slug"), AuditQuery),
    security(("api_key" = [])),
    responses((status = 200, body = AuditList, description = "a page of entries")))]
async fn list_audit(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<axum::Json<AuditList>, ApiError> {
    Ok(axum::Json(entries(&app, &actor, q).await?))
}

struct Line {
    at: String,
    who: String,
    action: String,
    object: String,
    change: String,
    from: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    actor_id: String,
    object_type: String,
    object_id: String,
    lines: Vec<Line>,
}

async fn audit_page(
    State(app): State<App>,
    session: SessionActor,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    let (actor_id, object_type, object_id) = (
        q.actor_id.clone().unwrap_or_default(),
        q.object_type.clone().unwrap_or_default(),
        q.object_id.clone().unwrap_or_default(),
    );
    let list = entries(
        &app,
        &session.actor,
        AuditQuery {
            limit: Some(200),
            ..q
        },
    )
    .await?;
    let lines = list
        .data
        .into_iter()
        .map(|e| Line {
            at: e.at,
            who: format!("{} {}", e.actor_kind, e.actor_id.unwrap_or_default()),
            action: e.action,
            object: format!("{} {}", e.object_type, e.object_id.unwrap_or_default()),
            change: match (e.before, e.after) {
                (Some(b), Some(a)) => format!("{b} → {a}"),
                (None, Some(a)) => a.to_string(),
                (Some(b), None) => format!("{b} → (gone)"),
                (None, None) => String::new(),
            },
            from: e.client_ip.unwrap_or_default(),
        })
        .collect();
    Ok(page(
        StatusCode::OK,
        AuditPage {
            actor_id,
            object_type,
            object_id,
            lines,
        },
    ))
}
