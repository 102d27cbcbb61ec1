//! The organizer's exports page (ask, watch progress, download) and an
//! event's sales report page.

use askama::Template;
use axum::{
    Form,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use kernel::{
    ApiError,
    http::{ApiPath, ApiQuery},
    ids::EventId,
};
use serde::Deserialize;

use super::{
    domain::{self, ExportFormat, ExportKind, ExportView},
    report::{self, SalesReport},
};
use crate::{
    App, events,
    identity::SessionActor,
    web::{csrf_matches, page},
};

pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/dashboard/exports", get(exports_page).post(ask))
        .route("/dashboard/events/{event_id}/report", get(report_page))
}

struct EventOption {
    id: String,
    name: String,
}

#[derive(Template)]
#[template(path = "exports.html")]
struct ExportsPage {
    csrf: String,
    events: Vec<EventOption>,
    exports: Vec<ExportView>,
    names: std::collections::HashMap<EventId, String>,
    busy: bool,
}

impl ExportsPage {
    fn event_name(&self, id: &EventId) -> &str {
        self.names.get(id).map(String::as_str).unwrap_or("")
    }
}

async fn exports_page(State(app): State<App>, session: SessionActor) -> Result<Response, ApiError> {
    let (list, _) = events::list_events(&app, &session.actor, 200, None).await?;
    let exports = domain::list(&app, &session.actor, None, 50).await?;
    let busy = exports
        .iter()
        .any(|e| e.status == "queued" || e.status == "running");
    let names = list.iter().map(|e| (e.id, e.name.clone())).collect();
    let mut res = page(
        StatusCode::OK,
        ExportsPage {
            csrf: session.csrf.clone(),
            events: list
                .into_iter()
                .map(|e| EventOption {
                    id: e.id.to_string(),
                    name: e.name,
                })
                .collect(),
            exports,
            names,
            busy,
        },
    );
    // The download links are credentials.
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(res)
}

#[derive(Deserialize)]
struct AskForm {
    csrf: String,
    event_id: String,
    kind: String,
    format: String,
}

async fn ask(State(app): State<App>, session: SessionActor, Form(f): Form<AskForm>) -> Response {
    if !csrf_matches(&session.csrf, &f.csrf) {
        return (StatusCode::FORBIDDEN, "invalid CSRF token").into_response();
    }
    let (Ok(event), Some(kind), Some(format)) = (
        f.event_id.parse::<EventId>(),
        ExportKind::parse(&f.kind),
        ExportFormat::parse(&f.format),
    ) else {
        return ApiError::BadRequest("choose an event, what to export and a format".into())
            .into_response();
    };
    match domain::create(&app, &session.actor, event, kind, format).await {
        Ok(_) => Redirect::to("/dashboard/exports").into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage {
    event_id: String,
    report: SalesReport,
}

impl ReportPage {
    fn money(&self, cents: &i64, currency: &str) -> String {
        crate::money::amount(*cents, currency)
    }
}

#[derive(Deserialize)]
struct ReportQuery {
    #[serde(default)]
    format: Option<String>,
}

async fn report_page(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let r = report::sales(&app, &session.actor, event).await?;
    if q.format.as_deref() == Some("csv") {
        let body = report::csv(&r).map_err(ApiError::internal)?;
        let name = format!("attachment; filename=\"sales-{event}.csv\"");
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, name),
            ],
            body,
        )
            .into_response());
    }
    Ok(page(
        StatusCode::OK,
        ReportPage {
            event_id: event.to_string(),
            report: r,
        },
    ))
}
