//! Scanning's HTTP surface: devices, pairing, gates, scan, the scan log.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use kernel::{
    ApiError,
    http::{ApiJson, ApiPath, ApiQuery, ClientAddr},
    ids::{DeviceId, EventId, GateId, ScanId, TicketId},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    box_office::{self, AdmissionUndoneView, BoxOfficeTicket},
    domain::{
        self, DeviceInput, DeviceRole, DeviceView, Direction, MAX_SCAN_CODE, NewDeviceView,
        PairedView, ScanInput, ScanLogItem, ScanOutcome,
    },
    setup::{self, GateInput, GateView, Reentry},
};
use crate::{
    App,
    identity::{DeviceAuth, OrgActor},
};

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(create_device, list_devices))
        .routes(routes!(get_device, update_device))
        .routes(routes!(revoke_device))
        .routes(routes!(repair_device))
        .routes(routes!(create_gate, list_gates))
        .routes(routes!(get_gate, update_gate))
        .routes(routes!(scan_log))
        .routes(routes!(pair))
        .routes(routes!(me))
        .routes(routes!(scan))
        .routes(routes!(box_office_lookup))
        .routes(routes!(check_in))
        .routes(routes!(undo_admission))
        .routes(routes!(device_lookup))
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
    /// Gates of those events it may scan at; left out or empty: any.
    #[schema(schema_with = gate_ids)]
    gate_ids: Option<Vec<GateId>>,
    /// `steward` (the default) scans; `supervisor` may also override a
    /// refusal with a reason.
    role: Option<DeviceRole>,
}

fn gate_ids() -> utoipa::openapi::Array {
    utoipa::openapi::ArrayBuilder::new()
        .description(Some(
            "Gates of the device's events it may scan at; empty: any.",
        ))
        .items(kernel::http::schema::uuid())
        .max_items(Some(100))
        .build()
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
    let input = DeviceInput {
        name: Some(req.name),
        event_ids: Some(req.event_ids),
        gate_ids: req.gate_ids,
        role: req.role,
    };
    let view = domain::create_device(&app, &actor, input).await?;
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
pub struct DeviceEvent {
    id: EventId,
    name: String,
    starts_at: String,
    ends_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceInfo {
    device_id: String,
    name: String,
    org: String,
    event_ids: Vec<EventId>,
    /// Those events, named (for the app's gate picker).
    events: Vec<DeviceEvent>,
    role: DeviceRole,
    /// The gates it may scan at, with their figures.
    gates: Vec<GateView>,
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
    let gates = domain::device_gates(&app, &d).await?;
    let mut events = Vec::with_capacity(scope.events.len());
    for e in &scope.events {
        if let Some(c) = crate::events::catalog(&app, d.tenant(), *e).await? {
            events.push(DeviceEvent {
                id: *e,
                name: c.event.name.clone(),
                starts_at: c.event.starts_at.clone(),
                ends_at: c.event.ends_at.clone(),
            });
        }
    }
    Ok(axum::Json(DeviceInfo {
        events,
        device_id: d.id.to_string(),
        name: scope.name.clone(),
        org: d.tenant().slug().to_string(),
        event_ids: scope.events.clone(),
        role: if scope.supervisor {
            DeviceRole::Supervisor
        } else {
            DeviceRole::Steward
        },
        gates,
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
    /// The id of the gate the device stands at (an event without gates
    /// also takes a label of the device's own).
    #[schema(max_length = 100)]
    gate: Option<String>,
    /// `in` (the default) or, at an `in_out` gate, `out`.
    direction: Option<ScanDirection>,
    /// A supervisor device admits despite a refusal (`wrong_gate`, `rule`,
    /// `not_valid_now`, `gate_full`), for this reason.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    override_reason: Option<String>,
    /// When the device saw the code (RFC 3339); the server's clock decides.
    #[schema(format = DateTime, pattern = r"^(?:[1-9]\d{3}|0[1-9]\d{2}|00[1-9]\d|000[1-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$")]
    scanned_at: Option<String>,
}

/// Scans a code at the gate. A bad ticket is a 200 with its result; only a
/// malformed request is an error.
#[utoipa::path(post, path = "/api/v1/scan", tag = "scanning", request_body = ScanRequest,
    security(("device_token" = [])),
    responses((status = 200, body = ScanOutcome, description = "the scan's result"),
              (status = 403, description = "the device is not set up for that event or gate, or may not override"),
              (status = 422, description = "invalid: the field is named (an unknown gate, `out` at a gate without exits)")))]
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
    if let Some(r) = &req.override_reason
        && (r.trim().is_empty() || r.chars().count() > 500)
    {
        c.fail("override_reason", "must be 1 to 500 characters");
    }
    c.finish()?;
    let input = ScanInput {
        code: req.code,
        event: req.event_id,
        gate: req.gate,
        direction: match req.direction {
            Some(ScanDirection::Out) => Direction::Out,
            _ => Direction::In,
        },
        override_reason: req.override_reason.map(|r| r.trim().to_string()),
    };
    let out = domain::scan(&app, &d, input).await?;
    metrics::counter!("voelgoed_scans_total", "result" => out.result.as_str()).increment(1);
    Ok(axum::Json(out))
}

#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScanDirection {
    In,
    Out,
}

/// The org's devices, newest first.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/devices", tag = "devices",
    params(("org" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = DeviceList, description = "the devices")))]
async fn list_devices(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
) -> Result<axum::Json<DeviceList>, ApiError> {
    Ok(axum::Json(DeviceList {
        data: domain::devices(&app, &actor).await?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct DeviceList {
    data: Vec<DeviceView>,
}

/// One device.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/devices/{device_id}", tag = "devices",
    params(("org" = String, Path), ("device_id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = DeviceView, description = "the device"),
              (status = 404, description = "no such device")))]
async fn get_device(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, DeviceId)>,
) -> Result<axum::Json<DeviceView>, ApiError> {
    let (_, id) = path;
    Ok(axum::Json(domain::device(&app, &actor, id).await?))
}

/// A device's changes: a field left out stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDevice {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: Option<String>,
    #[schema(schema_with = event_ids)]
    event_ids: Option<Vec<EventId>>,
    #[schema(schema_with = gate_ids)]
    gate_ids: Option<Vec<GateId>>,
    role: Option<DeviceRole>,
}

/// Renames a device, or changes its role, events or gates (every node
/// follows within a second).
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/devices/{device_id}", tag = "devices",
    params(("org" = String, Path), ("device_id" = String, Path)),
    request_body = UpdateDevice, security(("api_key" = [])),
    responses((status = 200, body = DeviceView, description = "the device as it is now"),
              (status = 404, description = "no such device"),
              (status = 422, description = "invalid: the field is named")))]
async fn update_device(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, DeviceId)>,
    ApiJson(req): ApiJson<UpdateDevice>,
) -> Result<axum::Json<DeviceView>, ApiError> {
    let (_, id) = path;
    let input = DeviceInput {
        name: req.name,
        event_ids: req.event_ids,
        gate_ids: req.gate_ids,
        role: req.role,
    };
    Ok(axum::Json(
        domain::update_device(&app, &actor, id, input).await?,
    ))
}

/// Revokes a device: its token is refused from its next request, on every
/// node. Pair it again to bring it back.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/devices/{device_id}/revoke", tag = "devices",
    params(("org" = String, Path), ("device_id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = DeviceView, description = "the device, revoked"),
              (status = 404, description = "no such device")))]
async fn revoke_device(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, DeviceId)>,
) -> Result<axum::Json<DeviceView>, ApiError> {
    let (_, id) = path;
    Ok(axum::Json(domain::revoke_device(&app, &actor, id).await?))
}

/// A new pairing code for a device (a new phone, or a revoked device back):
/// its old token stops working at once.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/devices/{device_id}/pairing", tag = "devices",
    params(("org" = String, Path), ("device_id" = String, Path)), security(("api_key" = [])),
    responses((status = 201, body = NewDeviceView, description = "the device and its new pairing code (shown once)"),
              (status = 404, description = "no such device")))]
async fn repair_device(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, DeviceId)>,
) -> Result<Response, ApiError> {
    let (_, id) = path;
    let view = domain::repair_device(&app, &actor, id).await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

/// A gate: which ticket types it admits, re-entry, a rule, a capacity and
/// an opening window.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGate {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: String,
    /// The ticket types it admits; left out or `null`: every type.
    #[serde(default, deserialize_with = "kernel::http::explicit")]
    #[schema(schema_with = type_ids)]
    ticket_type_ids: Option<Option<Vec<TicketTypeIdText>>>,
    /// `single` (the default): a ticket enters once; `in_out`: it enters
    /// again after an exit scan.
    reentry: Option<Reentry>,
    /// A JsonLogic rule over `ticket_type_id`, `now`, `minutes_of_day`,
    /// `weekday`, `entries_today`, `entries_total`,
    /// `minutes_since_last_entry`.
    #[serde(default, deserialize_with = "kernel::http::explicit")]
    #[schema(value_type = Option<Object>, nullable)]
    rules: Option<Option<serde_json::Value>>,
    /// At most this many inside through this gate at once.
    #[serde(default, deserialize_with = "kernel::http::explicit")]
    #[schema(value_type = Option<i64>, nullable, minimum = 1, maximum = 10_000_000)]
    capacity: Option<Option<i64>>,
    #[serde(default, deserialize_with = "kernel::http::explicit")]
    #[schema(value_type = Option<String>, nullable, format = DateTime)]
    opens_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "kernel::http::explicit")]
    #[schema(value_type = Option<String>, nullable, format = DateTime)]
    closes_at: Option<Option<String>>,
}

/// A gate's changes: a field left out stays as it is; `null` clears one
/// that may be unset.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGate {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: Option<String>,
    /// The ticket types it admits; left out or `null`: every type.
    #[serde(default, deserialize_with = "kernel::http::explicit")]
    #[schema(schema_with = type_ids)]
    ticket_type_ids: Option<Option<Vec<TicketTypeIdText>>>,
    /// `single` (the default): a ticket enters once; `in_out`: it enters
    /// again after an exit scan.
    reentry: Option<Reentry>,
    /// A JsonLogic rule over `ticket_type_id`, `now`, `minutes_of_day`,
    /// `weekday`, `entries_today`, `entries_total`,
    /// `minutes_since_last_entry`.
    #[serde(default, deserialize_with = "kernel::http::explicit")]
    #[schema(value_type = Option<Object>, nullable)]
    rules: Option<Option<serde_json::Value>>,
    /// At most this many inside through this gate at once.
    #[serde(default, deserialize_with = "kernel::http::explicit")]
    #[schema(value_type = Option<i64>, nullable, minimum = 1, maximum = 10_000_000)]
    capacity: Option<Option<i64>>,
    #[serde(default, deserialize_with = "kernel::http::explicit")]
    #[schema(value_type = Option<String>, nullable, format = DateTime)]
    opens_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "kernel::http::explicit")]
    #[schema(value_type = Option<String>, nullable, format = DateTime)]
    closes_at: Option<Option<String>>,
}

type TicketTypeIdText = kernel::ids::TicketTypeId;

fn type_ids() -> utoipa::openapi::Array {
    utoipa::openapi::ArrayBuilder::new()
        .description(Some(
            "Ticket types of the event it admits; null: every type.",
        ))
        .items(kernel::http::schema::uuid())
        .min_items(Some(1))
        .max_items(Some(100))
        .build()
}

impl From<CreateGate> for GateInput {
    fn from(r: CreateGate) -> GateInput {
        GateInput {
            name: Some(r.name),
            ticket_type_ids: r.ticket_type_ids,
            reentry: r.reentry.map(|r| r.as_str().to_string()),
            rules: r.rules,
            capacity: r.capacity,
            opens_at: r.opens_at,
            closes_at: r.closes_at,
        }
    }
}

impl From<UpdateGate> for GateInput {
    fn from(r: UpdateGate) -> GateInput {
        GateInput {
            name: r.name,
            ticket_type_ids: r.ticket_type_ids,
            reentry: r.reentry.map(|r| r.as_str().to_string()),
            rules: r.rules,
            capacity: r.capacity,
            opens_at: r.opens_at,
            closes_at: r.closes_at,
        }
    }
}

/// Adds a gate to an event (every node's scanners follow within a second).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/events/{event_id}/gates", tag = "scanning",
    params(("org" = String, Path), ("event_id" = String, Path)),
    request_body = CreateGate, security(("api_key" = [])),
    responses((status = 201, body = GateView, description = "the gate"),
              (status = 404, description = "no such event"),
              (status = 422, description = "invalid: the field is named")))]
async fn create_gate(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiJson(req): ApiJson<CreateGate>,
) -> Result<Response, ApiError> {
    let (_, event) = path;
    let view = setup::create(&app, &actor, event, req.into()).await?;
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct GateList {
    data: Vec<GateView>,
}

/// An event's gates with their figures (inside, entries, scans in the
/// last minute).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events/{event_id}/gates", tag = "scanning",
    params(("org" = String, Path), ("event_id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = GateList, description = "the gates"),
              (status = 404, description = "no such event")))]
async fn list_gates(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
) -> Result<axum::Json<GateList>, ApiError> {
    let (_, event) = path;
    Ok(axum::Json(GateList {
        data: setup::list(&app, &actor, event).await?,
    }))
}

/// One gate, with its figures.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events/{event_id}/gates/{gate_id}", tag = "scanning",
    params(("org" = String, Path), ("event_id" = String, Path), ("gate_id" = String, Path)),
    security(("api_key" = [])),
    responses((status = 200, body = GateView, description = "the gate"),
              (status = 404, description = "no such gate")))]
async fn get_gate(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId, GateId)>,
) -> Result<axum::Json<GateView>, ApiError> {
    let (_, event, gate) = path;
    Ok(axum::Json(setup::get(&app, &actor, event, gate).await?))
}

/// Changes a gate.
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/events/{event_id}/gates/{gate_id}", tag = "scanning",
    params(("org" = String, Path), ("event_id" = String, Path), ("gate_id" = String, Path)),
    request_body = UpdateGate, security(("api_key" = [])),
    responses((status = 200, body = GateView, description = "the gate as it is now"),
              (status = 404, description = "no such gate"),
              (status = 422, description = "invalid: the field is named")))]
async fn update_gate(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId, GateId)>,
    ApiJson(req): ApiJson<UpdateGate>,
) -> Result<axum::Json<GateView>, ApiError> {
    let (_, event, gate) = path;
    Ok(axum::Json(
        setup::update(&app, &actor, event, gate, req.into()).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScanLogQuery {
    /// At most 500; 100 when left out.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page (the log is oldest first: keep
    /// the last cursor to follow it as it grows).
    #[param(format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    cursor: Option<String>,
    /// Only this ticket's scans.
    #[param(format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    ticket_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ScanLog {
    data: Vec<ScanLogItem>,
    /// Where the next page starts; also when this page is short, so a
    /// reader can come back for scans made since.
    next_cursor: Option<String>,
}

/// An event's scan log: every scan, admitted or not, with its device, gate,
/// result and reason, oldest first.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events/{event_id}/scans", tag = "scanning",
    params(("org" = String, Path), ("event_id" = String, Path), ScanLogQuery),
    security(("api_key" = [])),
    responses((status = 200, body = ScanLog, description = "a page of the scan log"),
              (status = 404, description = "no such event")))]
async fn scan_log(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiQuery(q): ApiQuery<ScanLogQuery>,
) -> Result<axum::Json<ScanLog>, ApiError> {
    let (_, event) = path;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 500"));
    }
    let after: Option<ScanId> = match q.cursor.as_deref() {
        Some(c) => Some(
            c.parse()
                .map_err(|_| ApiError::field("cursor", "is not a cursor"))?,
        ),
        None => None,
    };
    let ticket: Option<TicketId> = match q.ticket_id.as_deref() {
        Some(c) => Some(
            c.parse()
                .map_err(|_| ApiError::field("ticket_id", "is not an id"))?,
        ),
        None => None,
    };
    let data = domain::scan_log(&app, &actor, event, after, ticket, limit).await?;
    let next_cursor = data
        .last()
        .map(|s| s.id.to_string())
        .or_else(|| q.cursor.clone());
    Ok(axum::Json(ScanLog { data, next_cursor }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LookupQuery {
    /// Part of the buyer's name or e-mail, or an order id (2 to 200
    /// characters).
    #[param(min_length = 2, max_length = 200)]
    q: String,
    /// Orders at most (each with its tickets); 20 when left out.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct LookupList {
    data: Vec<BoxOfficeTicket>,
}

fn lookup_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 100"));
    }
    Ok(limit)
}

/// The box office's lookup: the event's tickets by the buyer's name or
/// e-mail, or by order id, newest orders first, each with whether it is
/// inside.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events/{event_id}/box-office", tag = "scanning",
    params(("org" = String, Path), ("event_id" = String, Path), LookupQuery),
    security(("api_key" = [])),
    responses((status = 200, body = LookupList, description = "the tickets found"),
              (status = 404, description = "no such event"),
              (status = 422, description = "invalid: the field is named")))]
async fn box_office_lookup(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId)>,
    ApiQuery(q): ApiQuery<LookupQuery>,
) -> Result<axum::Json<LookupList>, ApiError> {
    let (_, event) = path;
    let limit = lookup_limit(q.limit)?;
    Ok(axum::Json(LookupList {
        data: box_office::find(&app, &actor, event, &q.q, limit).await?,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInRequest {
    /// Why by hand (a flat phone, a lost code): kept in the audit and scan
    /// logs.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: String,
    /// The gate it comes in through, if the event has gates.
    #[schema(schema_with = kernel::http::schema::uuid)]
    gate_id: Option<GateId>,
}

/// Checks a ticket in by hand at the box office (the box office role, an
/// admin or the owner). It admits despite a gate's ticket types, rule or
/// opening hours, never a revoked ticket nor one admitted already: the
/// result says which, as a scan's does.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/events/{event_id}/tickets/{ticket_id}/check-in", tag = "scanning",
    params(("org" = String, Path), ("event_id" = String, Path), ("ticket_id" = String, Path)),
    request_body = CheckInRequest, security(("api_key" = [])),
    responses((status = 200, body = ScanOutcome, description = "the check-in's result"),
              (status = 403, description = "this credential may not check in"),
              (status = 404, description = "no such ticket of this event"),
              (status = 422, description = "invalid: the field is named")))]
async fn check_in(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId, TicketId)>,
    ApiJson(req): ApiJson<CheckInRequest>,
) -> Result<axum::Json<ScanOutcome>, ApiError> {
    let (_, event, ticket) = path;
    let out = box_office::check_in(&app, &actor, event, ticket, req.gate_id, &req.reason).await?;
    metrics::counter!("voelgoed_scans_total", "result" => out.result.as_str()).increment(1);
    Ok(axum::Json(out))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UndoAdmissionRequest {
    /// Why (the wrong ticket was scanned, say): kept in the audit and scan
    /// logs.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: String,
}

/// Undoes a mistaken admission (the box office role, an admin or the
/// owner): the ticket is as if never scanned, on every node within a
/// second. Its scans stay in the log, followed by the undo.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/events/{event_id}/tickets/{ticket_id}/undo-admission", tag = "scanning",
    params(("org" = String, Path), ("event_id" = String, Path), ("ticket_id" = String, Path)),
    request_body = UndoAdmissionRequest, security(("api_key" = [])),
    responses((status = 200, body = AdmissionUndoneView, description = "the admission undone"),
              (status = 403, description = "this credential may not undo admissions"),
              (status = 404, description = "no such ticket of this event"),
              (status = 409, description = "the ticket is not admitted"),
              (status = 422, description = "invalid: the field is named")))]
async fn undo_admission(
    State(app): State<App>,
    OrgActor(actor): OrgActor,
    ApiPath(path): ApiPath<(String, EventId, TicketId)>,
    ApiJson(req): ApiJson<UndoAdmissionRequest>,
) -> Result<axum::Json<AdmissionUndoneView>, ApiError> {
    let (_, event, ticket) = path;
    Ok(axum::Json(
        box_office::undo_admission(&app, &actor, event, ticket, &req.reason).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceLookupQuery {
    #[param(format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    event_id: String,
    /// Part of the buyer's name or e-mail, or an order id (2 to 200
    /// characters).
    #[param(min_length = 2, max_length = 200)]
    q: String,
    /// Orders at most (each with its tickets); 20 when left out.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// A supervisor device's lookup at the gate: the event's tickets by the
/// buyer's name or e-mail, or by order id.
#[utoipa::path(get, path = "/api/v1/devices/lookup", tag = "devices",
    params(DeviceLookupQuery), security(("device_token" = [])),
    responses((status = 200, body = LookupList, description = "the tickets found"),
              (status = 403, description = "not a supervisor device, or not set up for that event"),
              (status = 422, description = "invalid: the field is named")))]
async fn device_lookup(
    State(app): State<App>,
    DeviceAuth(d): DeviceAuth,
    ApiQuery(q): ApiQuery<DeviceLookupQuery>,
) -> Result<axum::Json<LookupList>, ApiError> {
    let event: EventId = q
        .event_id
        .parse()
        .map_err(|_| ApiError::field("event_id", "is not an id"))?;
    let limit = lookup_limit(q.limit)?;
    Ok(axum::Json(LookupList {
        data: domain::device_lookup(&app, &d, event, &q.q, limit).await?,
    }))
}
