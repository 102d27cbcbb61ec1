//! Scanning's HTTP surface: device management, pairing, scan.

use std::sync::Arc;

use axum::{
    extract::{FromRequestParts, State},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use kernel::{ApiError, http::ApiJson, ids::EventId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::domain::{self, DeviceCtx, MAX_SCAN_CODE, NewDeviceView, PairedView, ScanOutcome};
use crate::{App, identity::OrgActor};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(create_device))
        .routes(routes!(pair))
        .routes(routes!(me))
        .routes(routes!(scan))
}

type Problem = kernel::error::Problem;

/// The device behind `Authorization: Bearer <device token>`.
pub struct Device(pub Arc<DeviceCtx>);

impl FromRequestParts<App> for Device {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let token = crate::identity::bearer_token(parts).ok_or_else(|| {
            ApiError::Unauthorized("send Authorization: Bearer <device token>".into())
        })?;
        Ok(Device(domain::device_for_token(app, token).await?))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDevice {
    name: String,
    event_ids: Vec<EventId>,
}

/// Adds a scanning device for some events; it pairs with the code shown.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/devices", tag = "devices",
    params(("org" = String, Path)), request_body = CreateDevice, security(("api_key" = [])),
    responses((status = 201, body = NewDeviceView), (status = 422, body = Problem)))]
async fn create_device(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiJson(req): ApiJson<CreateDevice>,
) -> Result<Response, ApiError> {
    let view = domain::create_device(&app, &actor, &req.name, req.event_ids).await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairRequest {
    pairing_code: String,
}

/// Spends a pairing code for the device's token (once).
#[utoipa::path(post, path = "/api/v1/devices/pair", tag = "devices", request_body = PairRequest,
    responses((status = 201, body = PairedView), (status = 404, body = Problem),
              (status = 429, body = Problem, description = "rate_limited, with Retry-After")))]
async fn pair(
    State(app): State<App>,
    kernel::http::ClientAddr(ip): kernel::http::ClientAddr,
    ApiJson(req): ApiJson<PairRequest>,
) -> Result<Response, ApiError> {
    app.kernel.limits.sensitive.check(&ip)?;
    let view = domain::pair(&app, &req.pairing_code).await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct PublicKey {
    kid: String,
    /// Ed25519 public key, base64url without padding.
    public_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceInfo {
    device_id: String,
    name: String,
    org: String,
    event_ids: Vec<EventId>,
    /// Keys that verify this org's ticket codes offline.
    signing_keys: Vec<PublicKey>,
}

/// The device itself, with the public keys to verify codes offline.
#[utoipa::path(get, path = "/api/v1/devices/me", tag = "devices", security(("device_token" = [])),
    responses((status = 200, body = DeviceInfo), (status = 401, body = Problem)))]
async fn me(State(app): State<App>, Device(d): Device) -> Result<axum::Json<DeviceInfo>, ApiError> {
    let keys = crate::tickets::org_keys(&app, d.org).await?;
    Ok(axum::Json(DeviceInfo {
        device_id: d.id.to_string(),
        name: d.name.clone(),
        org: d.org_slug.clone(),
        event_ids: d.events.clone(),
        signing_keys: keys
            .verifying
            .iter()
            .map(|(kid, k)| PublicKey {
                kid: kid.clone(),
                public_key: URL_SAFE_NO_PAD.encode(k.to_bytes()),
            })
            .collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    code: String,
    event_id: EventId,
    gate: Option<String>,
    /// When the device saw the code (RFC 3339); the server's clock decides.
    scanned_at: Option<String>,
}

/// Scans a code at the gate. A bad ticket is a 200 with its result; only a
/// malformed request is an error.
#[utoipa::path(post, path = "/api/v1/scan", tag = "scanning", request_body = ScanRequest,
    security(("device_token" = [])),
    responses((status = 200, body = ScanOutcome), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn scan(
    State(app): State<App>,
    Device(d): Device,
    ApiJson(req): ApiJson<ScanRequest>,
) -> Result<axum::Json<ScanOutcome>, ApiError> {
    let mut c = kernel::error::Checks::default();
    if req.code.is_empty() || req.code.len() > MAX_SCAN_CODE {
        c.fail("code", "must be 1 to 512 characters");
    }
    if req.gate.as_ref().is_some_and(|g| g.len() > 100) {
        c.fail("gate", "must be at most 100 characters");
    }
    if let Some(s) = &req.scanned_at
        && kernel::clock::parse_rfc3339(s).is_none()
    {
        c.fail("scanned_at", "must be an RFC 3339 time");
    }
    c.finish()?;
    let out = domain::scan(&app, &d, &req.code, req.event_id, req.gate).await?;
    metrics::counter!("voelgoed_scans_total", "result" => out.result.as_str()).increment(1);
    Ok(axum::Json(out))
}
