//! The organizer's mail page (sender name, reply-to, reminder lead, and
//! the mail that went out) and the buyer's PDF tickets.

use askama::Template;
use axum::{
    Form,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use kernel::{
    ApiError,
    http::{ApiPath, ApiQuery},
    ids::{OrderId, TicketId},
};
use serde::Deserialize;

use super::{
    domain::{self, MailSettings, SentMail},
    transport::Transport,
};
use crate::{
    App,
    identity::{SessionActor, StoreTenant},
    sales,
    web::{csrf_matches, page},
};

pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/dashboard/mail", get(mail_page).post(save))
        .route(
            "/s/{org}/orders/{order_id}/tickets/{ticket_id}/pdf",
            get(ticket_pdf),
        )
        .route("/s/{org}/tickets/{ticket_id}/pdf", get(holder_pdf))
}

#[derive(Template)]
#[template(path = "mail.html")]
struct MailPage {
    csrf: String,
    settings: MailSettings,
    transport: String,
    sent: Vec<SentMail>,
    error: Option<String>,
    saved: bool,
}

async fn render(
    app: &App,
    session: &SessionActor,
    status: StatusCode,
    form: Option<MailSettings>,
    error: Option<String>,
    saved: bool,
) -> Response {
    let settings = match form {
        Some(s) => s,
        None => match domain::settings(app, &session.actor).await {
            Ok(s) => s,
            Err(e) => return e.into_response(),
        },
    };
    let sent = match domain::log(app, &session.actor, None, 50).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    page(
        status,
        MailPage {
            csrf: session.csrf.clone(),
            settings,
            transport: app.state::<Transport>().describe(),
            sent,
            error,
            saved,
        },
    )
}

#[derive(Deserialize)]
struct Saved {
    #[serde(default)]
    saved: Option<String>,
}

async fn mail_page(
    State(app): State<App>,
    session: SessionActor,
    ApiQuery(q): ApiQuery<Saved>,
) -> Response {
    render(
        &app,
        &session,
        StatusCode::OK,
        None,
        None,
        q.saved.is_some(),
    )
    .await
}

#[derive(Deserialize)]
struct SettingsForm {
    csrf: String,
    #[serde(default)]
    sender_name: String,
    #[serde(default)]
    reply_to: String,
    #[serde(default)]
    reminder_hours: String,
}

async fn save(
    State(app): State<App>,
    session: SessionActor,
    Form(form): Form<SettingsForm>,
) -> Response {
    if !csrf_matches(&session.csrf, &form.csrf) {
        return (StatusCode::FORBIDDEN, "invalid CSRF token").into_response();
    }
    let hours = form.reminder_hours.trim().parse::<i64>();
    let settings = MailSettings {
        sender_name: Some(form.sender_name),
        reply_to: Some(form.reply_to),
        reminder_hours: *hours.as_ref().unwrap_or(&-1),
    };
    let refused = match hours {
        Err(_) => "reminder_hours: a whole number of hours".to_string(),
        Ok(_) => match domain::put_settings(&app, &session.actor, settings.clone()).await {
            Ok(_) => return Redirect::to("/dashboard/mail?saved=1").into_response(),
            Err(ApiError::Validation { errors, .. }) => errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            Err(e) => return e.into_response(),
        },
    };
    render(
        &app,
        &session,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some(settings),
        Some(refused),
        false,
    )
    .await
}

#[derive(Deserialize)]
struct AccessQuery {
    access_token: String,
}

/// One ticket of the buyer's order as a PDF; the order's access token is
/// the key, as for the order page.
async fn ticket_pdf(
    State(app): State<App>,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, OrderId, TicketId)>,
    ApiQuery(q): ApiQuery<AccessQuery>,
) -> Result<Response, ApiError> {
    let (_, order, ticket) = path;
    let order = sales::get_order_for_buyer(&app, &t, order, &q.access_token).await?;
    let Some(pdf) = domain::ticket_pdf(&app, &t, &order, ticket).await? else {
        return Err(ApiError::NotFound);
    };
    Ok(pdf_response(ticket, pdf))
}

/// A ticket handed on, as a PDF for its holder (with their key).
async fn holder_pdf(
    State(app): State<App>,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, TicketId)>,
    ApiQuery(q): ApiQuery<AccessQuery>,
) -> Result<Response, ApiError> {
    let (_, ticket) = path;
    crate::tickets::for_holder(&app, &t, ticket, &q.access_token).await?;
    let rec = crate::tickets::by_id(&app, &t, ticket)
        .await?
        .ok_or(ApiError::NotFound)?;
    let order = sales::order_for_upkeep(&app, &t, rec.order_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let Some(pdf) = domain::ticket_pdf(&app, &t, &order, ticket).await? else {
        return Err(ApiError::NotFound);
    };
    Ok(pdf_response(ticket, pdf))
}

fn pdf_response(ticket: TicketId, pdf: Vec<u8>) -> Response {
    let name = format!("attachment; filename=\"ticket-{ticket}.pdf\"");
    let mut res = (StatusCode::OK, pdf).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    res
}
