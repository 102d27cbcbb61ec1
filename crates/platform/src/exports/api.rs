//! Exports' and reports' HTTP surface.

use axum::{
    body::Body,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use kernel::{
    ApiError,
    http::{ApiJson, ApiPath, ApiQuery},
    ids::{EventId, ExportId},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    domain::{self, ExportFormat, ExportKind, ExportView},
    report::{self, SalesReport},
    store,
};
use crate::{App, identity::OrgActor};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(create_export))
        .routes(routes!(list_exports))
        .routes(routes!(get_export))
        .routes(routes!(download_export))
        .routes(routes!(sales_report))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateExport {
    kind: ExportKind,
    format: ExportFormat,
}

/// Asks for an export of the event; a job builds it. Poll the export (or
/// the console's exports page) until it is `ready`, then follow its
/// `download_url`.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/events/{event_id}/exports", tag = "exports",
    params(("org" = String, Path, description = "organization slug"), ("event_id" = EventId, Path)),
    request_body = CreateExport, security(("api_key" = [])),
    responses((status = 202, body = ExportView, description = "queued",
               links(("get_export" = (operation_id = "get_export",
                         parameters(("org" = "$request.path.org"), ("export_id" = "$response.body#/id")))))),
              (status = 429, description = "five exports of the org are queued or running: ask again when one is done")))]
async fn create_export(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiJson(req): ApiJson<CreateExport>,
) -> Result<Response, ApiError> {
    let v = domain::create(&app, &actor, path.1, req.kind, req.format).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(v)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportsQuery {
    /// At most 200; 50 when left out.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ExportList {
    data: Vec<ExportView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// The org's exports, newest first.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/exports", tag = "exports",
    params(("org" = String, Path, description = "organization slug"), ExportsQuery),
    security(("api_key" = [])),
    responses((status = 200, body = ExportList, description = "a page of exports")))]
async fn list_exports(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiQuery(q): ApiQuery<ExportsQuery>,
) -> Result<axum::Json<ExportList>, ApiError> {
    let (limit, before) = kernel::http::page::<ExportId>(q.limit, q.cursor.as_deref())?;
    let data = domain::list(&app, &actor, before, limit).await?;
    let next_cursor = kernel::http::next_cursor(&data, limit, |d| d.id);
    Ok(axum::Json(ExportList { data, next_cursor }))
}

/// One export: its progress, and a fresh download link once it is ready.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/exports/{export_id}", tag = "exports",
    params(("org" = String, Path, description = "organization slug"), ("export_id" = ExportId, Path)),
    security(("api_key" = [])),
    responses((status = 200, body = ExportView, description = "the export")))]
async fn get_export(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, ExportId)>,
) -> Result<Response, ApiError> {
    let v = domain::get(&app, &actor, path.1).await?;
    // The reply carries a credential (the signed link).
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(v)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// Unix seconds after which the link no longer works.
    #[param(minimum = 0)]
    expires: i64,
    /// The link's signature.
    #[param(min_length = 1, max_length = 100, pattern = "^[A-Za-z0-9_-]+$")]
    signature: String,
}

/// The export's file, through the signed link an export's view gives (no
/// other credential). Streamed: a large export starts arriving at once.
#[utoipa::path(get, path = "/api/v1/exports/{export_id}/file", tag = "exports",
    params(("export_id" = ExportId, Path), LinkQuery),
    responses((status = 200, description = "the CSV or XLSX file",
               content(("text/csv"), ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
              (status = 403, description = "the signature does not match"),
              (status = 409, description = "the export is not ready"),
              (status = 410, description = "the link or the export has expired")))]
async fn download_export(
    State(app): State<App>,
    ApiPath(id): ApiPath<ExportId>,
    ApiQuery(q): ApiQuery<LinkQuery>,
) -> Result<Response, ApiError> {
    let (row, name) = domain::by_link(&app, id, q.expires, &q.signature).await?;
    let format = if row.format == "xlsx" {
        ExportFormat::Xlsx
    } else {
        ExportFormat::Csv
    };
    let db = app.db().clone();
    // One chunk in memory at a time.
    let chunks = futures::stream::unfold(0i64, move |seq| {
        let db = db.clone();
        async move {
            match store::chunk(&db, id, seq).await {
                Ok(Some(data)) => Some((Ok::<_, std::io::Error>(data), seq + 1)),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e)), i64::MAX)),
            }
        }
    });
    let mut res = Response::new(Body::from_stream(chunks));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(row.bytes as u64));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// `json` (the default) or `csv` (one row per day and ticket type).
    #[param(inline, value_type = Option<String>, pattern = "^(json|csv)$")]
    format: Option<String>,
}

/// The event's sales per ticket type and per day (days in the venue's time
/// zone).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events/{event_id}/reports/sales", tag = "exports",
    params(("org" = String, Path, description = "organization slug"), ("event_id" = EventId, Path), ReportQuery),
    security(("api_key" = [])),
    responses((status = 200, body = SalesReport, description = "the report",
               content((SalesReport = "application/json"), ("text/csv")))))]
async fn sales_report(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let r = report::sales(&app, &actor, path.1).await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(axum::Json(r).into_response()),
        Some("csv") => {
            let body = report::csv(&r).map_err(ApiError::internal)?;
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response())
        }
        Some(_) => Err(ApiError::field("format", "must be json or csv")),
    }
}
