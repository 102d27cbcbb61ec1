//! Tickets' HTTP surface.

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use kernel::{
    ApiError, Permission,
    http::{ApiJson, ApiPath, ApiQuery, ClientAddr},
    ids::TicketId,
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{TicketView, TransferTo};
use crate::{
    App,
    identity::{OrgActor, StoreTenant},
};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(qr_svg))
        .routes(routes!(holder_ticket))
        .routes(routes!(transfer))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The order's `access_token` (the buyer), or the key mailed with a
    /// ticket handed on (its holder).
    #[schema(min_length = 1, max_length = 256)]
    access_token: String,
    to: TransferTo,
}

/// Hands the ticket on to someone else: the ticket is revoked at once (its
/// code no longer admits) and a new one, with a new code, is issued to them
/// and mailed. Answers the old ticket, revoked, with `transferred_to`.
/// 404 when the key does not open it; 409 when the event does not allow
/// transfers (any more) or the ticket was used, revoked or handed on.
#[utoipa::path(post, path = "/api/v1/store/{org}/tickets/{ticket_id}/transfer", tag = "storefront",
    params(("org" = String, Path), ("ticket_id" = String, Path)),
    request_body = TransferRequest,
    responses((status = 201, body = TicketView, description = "the ticket handed on (revoked)"),
              (status = 409, description = "transfers closed, or the ticket used, revoked or handed on"),
              (status = 422, description = "invalid: the field is named")))]
async fn transfer(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, TicketId)>,
    ApiJson(req): ApiJson<TransferRequest>,
) -> Result<Response, ApiError> {
    let (_, ticket) = path;
    app.kernel.limits.storefront.check(&ip).await?;
    let view = super::transfer(&app, &t, ticket, &req.access_token, req.to).await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HolderQuery {
    /// The key mailed with the ticket.
    #[param(min_length = 1, max_length = 256)]
    access_token: String,
}

/// A ticket handed on, for its holder (with the key mailed to them).
#[utoipa::path(get, path = "/api/v1/store/{org}/tickets/{ticket_id}", tag = "storefront",
    params(("org" = String, Path), ("ticket_id" = String, Path), HolderQuery),
    responses((status = 200, body = TicketView, description = "the ticket")))]
async fn holder_ticket(
    State(app): State<App>,
    StoreTenant(t): StoreTenant,
    ApiPath(path): ApiPath<(String, TicketId)>,
    ApiQuery(q): ApiQuery<HolderQuery>,
) -> Result<axum::Json<TicketView>, ApiError> {
    let (_, ticket) = path;
    Ok(axum::Json(
        super::for_holder(&app, &t, ticket, &q.access_token).await?,
    ))
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
