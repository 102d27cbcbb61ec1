//! Tickets' HTTP surface.

use axum::{
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use kernel::{ApiError, Permission, http::ApiPath, ids::TicketId};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{App, identity::OrgActor};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(qr_svg))
}

/// The ticket's QR code as SVG.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/tickets/{ticket_id}/qr.svg", tag = "tickets",
    params(("org" = String, Path), ("ticket_id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, content_type = "image/svg+xml", body = String, description = "the QR code")))]
async fn qr_svg(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, TicketId)>,
) -> Result<Response, ApiError> {
    let (_, ticket) = path;
    let t = actor.require(Permission::OrdersRead)?;
    let rec = super::by_id(&app, t, ticket)
        .await?
        .ok_or(ApiError::NotFound)?;
    let svg = super::qr_svg(&rec.code).ok_or_else(|| ApiError::internal("QR rendering failed"))?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}
