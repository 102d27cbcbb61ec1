//! The mail slice's HTTP surface: the org's mail settings and its mail log.

use axum::extract::State;
use kernel::{
    ApiError,
    http::{ApiJson, ApiQuery},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::domain::{self, MailSettings, SentMail};
use crate::{App, identity::OrgActor};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(get_mail_settings, put_mail_settings))
        .routes(routes!(list_mail))
}

/// What the org's mail says about its sender, and when reminders go out.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/mail/settings", tag = "mail",
    params(("org" = String, Path, description = "organization slug")), security(("api_key" = [])),
    responses((status = 200, body = MailSettings, description = "the settings (defaults until changed)")))]
async fn get_mail_settings(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
) -> Result<axum::Json<MailSettings>, ApiError> {
    Ok(axum::Json(domain::settings(&app, &actor).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutMailSettings {
    /// The From display name; the organization's name when null or empty.
    /// No control characters.
    #[schema(max_length = 100, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    sender_name: Option<String>,
    /// Where buyers' replies go; none when null or empty. A plain address:
    /// a local part of up to three dot-separated words, a host name.
    #[schema(
        max_length = 254,
        pattern = r"^$|^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,20}){0,2}@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
    )]
    reply_to: Option<String>,
    /// Hours before an event starts that ticket holders get a reminder; 0
    /// sends none.
    #[schema(minimum = 0, maximum = 8760)]
    reminder_hours: i64,
}

/// Replaces the org's mail settings.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/mail/settings", tag = "mail",
    params(("org" = String, Path, description = "organization slug")),
    request_body = PutMailSettings, security(("api_key" = [])),
    responses((status = 200, body = MailSettings, description = "the settings now")))]
async fn put_mail_settings(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiJson(req): ApiJson<PutMailSettings>,
) -> Result<axum::Json<MailSettings>, ApiError> {
    let settings = MailSettings {
        sender_name: req.sender_name,
        reply_to: req.reply_to,
        reminder_hours: req.reminder_hours,
    };
    Ok(axum::Json(
        domain::put_settings(&app, &actor, settings).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MailQuery {
    /// At most 200; 50 when left out.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MailList {
    data: Vec<SentMail>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// The mail sent for the org, newest first.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/mail", tag = "mail",
    params(("org" = String, Path, description = "organization slug"), MailQuery),
    security(("api_key" = [])),
    responses((status = 200, body = MailList, description = "a page of sent mail")))]
async fn list_mail(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiQuery(q): ApiQuery<MailQuery>,
) -> Result<axum::Json<MailList>, ApiError> {
    let (limit, before) = kernel::http::page::<uuid::Uuid>(q.limit, q.cursor.as_deref())?;
    let data = domain::log(&app, &actor, before, limit).await?;
    let next_cursor = kernel::http::next_cursor(&data, limit, |d| d.id);
    Ok(axum::Json(MailList { data, next_cursor }))
}
