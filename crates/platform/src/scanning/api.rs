//! Scanning's HTTP surface: devices, pairing, scan.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use kernel::{
    ApiError,
    http::{ApiJson, ClientAddr},
    ids::EventId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::domain::{self, MAX_SCAN_CODE, NewDeviceView, PairedView, ScanOutcome};
use crate::{
    App,
    identity::{DeviceAuth, OrgActor},
};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(create_device))
        .routes(routes!(pair))
        .routes(routes!(me))
        .routes(routes!(scan))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDevice {
    /// Not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: String,
    /// Events of this organization the device scans for.
    #[schema(schema_with = event_ids)]
    event_ids: Vec<EventId>,
}

fn event_ids() -> utoipa::openapi::Array {
    utoipa::openapi::ArrayBuilder::new()
        .description(Some("Events of this organization the device scans for."))
        .items(kernel::http::schema::uuid())
        .min_items(Some(1))
        .max_items(Some(100))
        .build()
}

/// Adds a scanning device for some events; it pairs with the code shown.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/devices", tag = "devices",
    params(("org" = String, Path)), request_body = CreateDevice, security(("api_key" = [])),
    responses((status = 201, body = NewDeviceView, description = "the device and its pairing code (shown once)")))]
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
    /// The code shown when the device was added (letters and digits; case
    /// does not matter).
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9]+$",
        example = "V49WJRLN2P"
    )]
    pairing_code: String,
}

/// Spends a pairing code for the device's token (once).
#[utoipa::path(post, path = "/api/v1/devices/pair", tag = "devices", request_body = PairRequest,
    responses((status = 201, body = PairedView, description = "the device token (shown once)"),
              (status = 404, description = "no live, unspent code like this"),
              (status = 429, description = "too many pairing attempts from this address")))]
async fn pair(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    ApiJson(req): ApiJson<PairRequest>,
) -> Result<Response, ApiError> {
    app.kernel.limits.sensitive.check(&ip).await?;
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
    responses((status = 200, body = DeviceInfo, description = "the device")))]
async fn me(
    State(app): State<App>,
    DeviceAuth(d): DeviceAuth,
) -> Result<axum::Json<DeviceInfo>, ApiError> {
    let scope = domain::device_scope(&app, &d).await?;
    let keys = crate::tickets::org_keys(&app, d.tenant()).await?;
    Ok(axum::Json(DeviceInfo {
        device_id: d.id.to_string(),
        name: scope.name.clone(),
        org: d.tenant().slug().to_string(),
        event_ids: scope.events.clone(),
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
    /// The text of the ticket's QR code.
    #[schema(min_length = 1, max_length = 512)]
    code: String,
    #[schema(schema_with = kernel::http::schema::uuid)]
    event_id: EventId,
    /// The gate the device stands at.
    #[schema(max_length = 100)]
    gate: Option<String>,
    /// When the device saw the code (RFC 3339); the server's clock decides.
    #[schema(format = DateTime, pattern = r"^(?:[1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")]
    scanned_at: Option<String>,
}

/// Scans a code at the gate. A bad ticket is a 200 with its result; only a
/// malformed request is an error.
#[utoipa::path(post, path = "/api/v1/scan", tag = "scanning", request_body = ScanRequest,
    security(("device_token" = [])),
    responses((status = 200, body = ScanOutcome, description = "the scan's result"),
              (status = 403, description = "the device is not set up for that event")))]
async fn scan(
    State(app): State<App>,
    DeviceAuth(d): DeviceAuth,
    ApiJson(req): ApiJson<ScanRequest>,
) -> Result<axum::Json<ScanOutcome>, ApiError> {
    let mut c = kernel::error::Checks::default();
    if req.code.is_empty() || req.code.chars().count() > MAX_SCAN_CODE {
        c.fail("code", "must be 1 to 512 characters");
    }
    if req.gate.as_ref().is_some_and(|g| g.chars().count() > 100) {
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
