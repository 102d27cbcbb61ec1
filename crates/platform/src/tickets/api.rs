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
        .routes(routes!(list_keys))
        .routes(routes!(rotate_key))
        .routes(routes!(retire_key))
        .routes(routes!(reissue))
}

#[derive(serde::Serialize, ToSchema)]
pub struct KeyList {
    data: Vec<super::KeyView>,
}

/// The org's ticket-signing keys, newest first: the active one signs new
/// tickets; every key not retired verifies.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/signing-keys", tag = "tickets",
    params(("org" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = KeyList, description = "the keys (public halves only)")))]
async fn list_keys(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
) -> Result<axum::Json<KeyList>, ApiError> {
    Ok(axum::Json(KeyList {
        data: super::keys::list(&app, &actor).await?,
    }))
}

/// Rotates the signing key: a new key signs from now on; the old ones
/// still verify the codes they signed (every node follows at once).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/signing-keys/rotate", tag = "tickets",
    params(("org" = String, Path)), security(("api_key" = [])),
    responses((status = 201, body = super::KeyView, description = "the new active key")))]
async fn rotate_key(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
) -> Result<Response, ApiError> {
    let key = super::keys::rotate(&app, &actor).await?;
    Ok((StatusCode::CREATED, axum::Json(key)).into_response())
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RetireRequest {
    /// Re-issue the valid tickets it signed first (each gets a new code
    /// under the active key; the old codes are revoked).
    #[serde(default)]
    reissue: bool,
}

/// Retires a key that no longer signs: its codes verify nowhere from now
/// on. 409 while valid tickets carry its codes, unless `"reissue": true`.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/signing-keys/{kid}/retire", tag = "tickets",
    params(("org" = String, Path), ("kid" = String, Path)), request_body = RetireRequest,
    security(("api_key" = [])),
    responses((status = 200, body = super::KeyView, description = "the key, retired"),
              (status = 404, description = "no such key"),
              (status = 409, description = "it is the active key, or valid tickets still carry its codes")))]
async fn retire_key(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<RetireRequest>,
) -> Result<axum::Json<super::KeyView>, ApiError> {
    let (_, kid) = path;
    Ok(axum::Json(
        super::keys::retire(&app, &actor, &kid, req.reissue).await?,
    ))
}

/// Re-issues a ticket: a new ticket with a new code under the active key
/// (same order, type, seat, answers and standing at the gate); the old one
/// is revoked at once, on every node.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/tickets/{ticket_id}/reissue", tag = "tickets",
    params(("org" = String, Path), ("ticket_id" = String, Path)), security(("api_key" = [])),
    responses((status = 201, body = TicketView, description = "the new ticket"),
              (status = 404, description = "no such ticket"),
              (status = 409, description = "the ticket was revoked or handed on")))]
async fn reissue(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, TicketId)>,
) -> Result<Response, ApiError> {
    let (_, ticket) = path;
    let view = super::keys::reissue(&app, &actor, ticket).await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
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
