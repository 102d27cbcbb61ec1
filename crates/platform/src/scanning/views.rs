//! The organizer's gate page: an event's gates (with their rule in words and
//! live figures), its devices (add one and show its pairing code as a QR
//! code, pair again, revoke) and the newest scans.

use askama::Template;
use axum::{
    Form,
    extract::State,
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use kernel::{
    ApiError, Permission, clock,
    http::ApiPath,
    ids::{DeviceId, EventId, GateId, ScanId},
};

use super::{
    domain::{self, DeviceInput, DeviceRole, DeviceStatus},
    rules,
    setup::{self, GateInput, Reentry},
    store,
};
use crate::{
    App,
    identity::SessionActor,
    web::{Fields, asset_with, csrf_matches, csrf_refused, field, page, said},
};

pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route(
            "/dashboard/events/{event_id}/gates",
            get(gates_page).post(add_gate),
        )
        .route(
            "/dashboard/events/{event_id}/gates/{gate_id}",
            get(edit_gate_page).post(edit_gate),
        )
        .route("/dashboard/events/{event_id}/devices", post(add_device))
        .route(
            "/dashboard/events/{event_id}/devices/{device_id}/revoke",
            post(revoke_device),
        )
        .route(
            "/dashboard/events/{event_id}/devices/{device_id}/pairing",
            post(pair_again),
        )
        // The scanner app for gate staff (a static shell; its state is on
        // the phone).
        .route("/scan", get(scanner_page))
        .route("/scan/sw.js", get(scanner_worker))
        .route("/scan/manifest.webmanifest", get(scanner_manifest))
        .route("/scan/icon.svg", get(scanner_icon))
        .route("/assets/scan.js", get(scanner_js))
        .route("/assets/scan.css", get(scanner_css))
        .route("/assets/vendor/jsQR.js", get(jsqr_js))
}

// The scanner app's page, script, style and worker are `no-cache`, so a
// deploy reaches the gate phones on their next load (the service worker's
// cache answers only when the network does not).

async fn scanner_page() -> Response {
    asset_with(
        include_str!("../../templates/scan.html"),
        "text/html; charset=utf-8",
        "no-cache",
    )
}

async fn scanner_js() -> Response {
    asset_with(
        include_str!("../../templates/scan.js"),
        "text/javascript; charset=utf-8",
        "no-cache",
    )
}

async fn scanner_css() -> Response {
    asset_with(
        include_str!("../../templates/scan.css"),
        "text/css; charset=utf-8",
        "no-cache",
    )
}

/// The worker lives at /scan/sw.js but controls /scan itself, one level
/// up: `Service-Worker-Allowed` permits that scope.
async fn scanner_worker() -> Response {
    let mut res = asset_with(
        include_str!("../../templates/scan_sw.js"),
        "text/javascript; charset=utf-8",
        "no-cache",
    );
    res.headers_mut().insert(
        HeaderName::from_static("service-worker-allowed"),
        HeaderValue::from_static("/scan"),
    );
    res
}

async fn scanner_manifest() -> Response {
    asset_with(
        include_str!("../../templates/scan.webmanifest"),
        "application/manifest+json",
        "public, max-age=3600",
    )
}

async fn scanner_icon() -> Response {
    asset_with(
        include_str!("../../templates/scan_icon.svg"),
        "image/svg+xml",
        "public, max-age=3600",
    )
}

/// jsQR 1.4.0 (Apache-2.0), vendored: the scanner app's QR decoder.
async fn jsqr_js() -> Response {
    asset_with(
        include_str!("../../templates/vendor/jsQR.js"),
        "text/javascript; charset=utf-8",
        "public, max-age=86400",
    )
}

struct GateRow {
    id: String,
    name: String,
    admits: String,
    reentry: &'static str,
    rule: String,
    /// When it admits ("from …", "until …"), empty when always.
    open: String,
    capacity: String,
    inside: i64,
    entries: i64,
    per_minute: i64,
}

struct DeviceRow {
    id: String,
    name: String,
    role: &'static str,
    gates: String,
    status: &'static str,
}

struct ScanRow {
    at: String,
    result: String,
    reason: String,
    gate: String,
    device: String,
}

struct Pairing {
    name: String,
    code: String,
    expires: String,
    /// The QR code (SVG) of the scanner app's pairing link.
    qr: String,
}

#[derive(Template)]
#[template(path = "gates.html")]
struct GatesPage {
    event_id: String,
    event_name: String,
    csrf: String,
    timezone: String,
    ticket_types: Vec<(String, String)>,
    gates: Vec<GateRow>,
    devices: Vec<DeviceRow>,
    scans: Vec<ScanRow>,
    /// The cursor of the next older page of the scan log, if there is one.
    older: Option<String>,
    /// Whether this is an older page (not the newest scans).
    paged: bool,
    pairing: Option<Pairing>,
    error: Option<String>,
}

/// Scan-log rows on one page of the gates page.
const SCANS_PER_PAGE: i64 = 100;

async fn build(
    app: &App,
    session: &SessionActor,
    event: EventId,
    before: Option<ScanId>,
) -> Result<GatesPage, ApiError> {
    let actor = &session.actor;
    let t = actor.require(Permission::EventsRead)?;
    let catalog = crate::events::catalog(app, t, event)
        .await?
        .ok_or(ApiError::NotFound)?;
    let type_name = |id: &kernel::ids::TicketTypeId| {
        catalog
            .ticket_type(*id)
            .map_or_else(|| id.to_string(), |tt| tt.name.clone())
    };
    let gates = setup::list(app, actor, event).await?;
    let gate_name = |id: Option<GateId>| {
        id.and_then(|id| gates.iter().find(|g| g.id == id))
            .map_or_else(String::new, |g| g.name.clone())
    };
    let devices = if actor.require(Permission::DevicesManage).is_ok() {
        domain::devices(app, actor).await?
    } else {
        Vec::new()
    };
    let devices: Vec<_> = devices
        .into_iter()
        .filter(|d| d.event_ids.contains(&event))
        .collect();
    let device_name = |id: Option<DeviceId>| {
        id.and_then(|id| devices.iter().find(|d| d.id == id))
            .map_or_else(String::new, |d| d.name.clone())
    };
    let tz = jiff::tz::TimeZone::get(&catalog.event.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    let local = |us: i64| {
        jiff::Timestamp::from_microsecond(us)
            .map(|ts| tz.to_datetime(ts).strftime("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|_| clock::rfc3339(us))
    };
    let mut scans = store::recent_scans(app.db(), t, event, before, SCANS_PER_PAGE + 1).await?;
    let older = (scans.len() as i64 > SCANS_PER_PAGE)
        .then(|| {
            scans.truncate(SCANS_PER_PAGE as usize);
            scans.last().map(|s| s.id.to_string())
        })
        .flatten();
    let scans = scans
        .into_iter()
        .map(|s| ScanRow {
            at: local(s.scanned_at),
            result: s.result,
            reason: s.reason,
            gate: gate_name(s.gate_id),
            device: device_name(s.device_id),
        })
        .collect();
    Ok(GatesPage {
        event_id: event.to_string(),
        event_name: catalog.event.name.clone(),
        csrf: session.csrf.clone(),
        timezone: catalog.event.timezone.clone(),
        ticket_types: catalog
            .event
            .ticket_types
            .iter()
            .map(|tt| (tt.id.to_string(), tt.name.clone()))
            .collect(),
        gates: gates
            .iter()
            .map(|g| GateRow {
                id: g.id.to_string(),
                name: g.name.clone(),
                admits: g.ticket_type_ids.as_ref().map_or_else(
                    || "every ticket type".to_string(),
                    |ids| ids.iter().map(type_name).collect::<Vec<_>>().join(", "),
                ),
                reentry: match g.reentry {
                    Reentry::Single => "once",
                    Reentry::InOut => "in and out",
                },
                rule: g.rules.as_ref().map(rules::describe).unwrap_or_default(),
                open: {
                    let at = |s: &Option<String>| {
                        s.as_deref()
                            .and_then(clock::parse_rfc3339)
                            .map(|us| crate::events::shown_in(us, &catalog.event.timezone))
                    };
                    match (at(&g.opens_at), at(&g.closes_at)) {
                        (Some(o), Some(c)) => format!("from {o} until {c}"),
                        (Some(o), None) => format!("from {o}"),
                        (None, Some(c)) => format!("until {c}"),
                        (None, None) => String::new(),
                    }
                },
                capacity: g.capacity.map(|c| c.to_string()).unwrap_or_default(),
                inside: g.figures.inside,
                entries: g.figures.entries,
                per_minute: g.figures.scans_last_minute,
            })
            .collect(),
        devices: devices
            .iter()
            .map(|d| DeviceRow {
                id: d.id.to_string(),
                name: d.name.clone(),
                role: match d.role {
                    DeviceRole::Steward => "steward",
                    DeviceRole::Supervisor => "supervisor",
                },
                gates: if d.gate_ids.is_empty() {
                    "any".to_string()
                } else {
                    d.gate_ids
                        .iter()
                        .map(|g| gate_name(Some(*g)))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                status: match d.status {
                    DeviceStatus::Pairing => "waiting to pair",
                    DeviceStatus::Paired => "paired",
                    DeviceStatus::Unpaired => "code expired",
                    DeviceStatus::Revoked => "revoked",
                },
            })
            .collect(),
        scans,
        older,
        paged: before.is_some(),
        pairing: None,
        error: None,
    })
}

fn csrf_ok(session: &SessionActor, form: &Fields) -> bool {
    csrf_matches(&session.csrf, field(form, "csrf"))
}

fn back(event: EventId) -> Response {
    Redirect::to(&format!("/dashboard/events/{event}/gates")).into_response()
}

/// The page again with what went wrong (a client error), or the error.
async fn refused(
    app: &App,
    session: &SessionActor,
    event: EventId,
    e: ApiError,
) -> Result<Response, ApiError> {
    if !e.status().is_client_error() || e.status() == StatusCode::NOT_FOUND {
        return Err(e);
    }
    let mut p = build(app, session, event, None).await?;
    p.error = Some(said(&e));
    Ok(page(e.status(), p))
}

#[derive(serde::Deserialize)]
struct LogPage {
    /// Scans older than this one (the scan log's next page).
    before: Option<String>,
}

async fn gates_page(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    kernel::http::ApiQuery(q): kernel::http::ApiQuery<LogPage>,
) -> Result<Response, ApiError> {
    let before = match q.before.as_deref().map(str::parse::<ScanId>) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => return Err(ApiError::field("before", "is not a scan id")),
    };
    Ok(page(
        StatusCode::OK,
        build(&app, &session, event, before).await?,
    ))
}

async fn add_gate(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_ok(&session, &form) {
        return Ok(csrf_refused());
    }
    let input = match gate_form(&app, &session, event, &form).await {
        Ok(input) => input,
        Err(e) => return refused(&app, &session, event, e).await,
    };
    match setup::create(&app, &session.actor, event, input).await {
        Ok(_) => Ok(back(event)),
        Err(e) => refused(&app, &session, event, e.into()).await,
    }
}

/// A gate's form (the new-gate form and the edit page send the same
/// fields): every field given, an empty one cleared; opening and closing
/// times typed in the event's time zone.
async fn gate_form(
    app: &App,
    session: &SessionActor,
    event: EventId,
    form: &Fields,
) -> Result<GateInput, ApiError> {
    let t = session.actor.require(Permission::EventsRead)?;
    let catalog = crate::events::catalog(app, t, event)
        .await?
        .ok_or(ApiError::NotFound)?;
    let rules = match field(form, "rules").trim() {
        "" => None,
        text => Some(
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| ApiError::field("rules", &format!("is not JSON: {e}")))?,
        ),
    };
    let capacity = match field(form, "capacity").trim() {
        "" => None,
        c => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::field("capacity", "must be a whole number, or empty"))?,
        ),
    };
    let mut times = [None, None];
    for (slot, name) in times.iter_mut().zip(["opens_at", "closes_at"]) {
        *slot = match field(form, name).trim() {
            "" => None,
            local => Some(
                crate::events::local_to_rfc3339(local, &catalog.event.timezone)
                    .map_err(|e| ApiError::field(name, &e))?,
            ),
        };
    }
    let [opens_at, closes_at] = times;
    let types: Vec<kernel::ids::TicketTypeId> = form
        .iter()
        .filter(|(k, _)| k == "ticket_type_ids")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    Ok(GateInput {
        name: Some(field(form, "name").to_string()),
        ticket_type_ids: Some((!types.is_empty()).then_some(types)),
        reentry: Some(field(form, "reentry").to_string()).filter(|r| !r.is_empty()),
        rules: Some(rules),
        capacity: Some(capacity),
        opens_at: Some(opens_at),
        closes_at: Some(closes_at),
    })
}

#[derive(Template)]
#[template(path = "gate_edit.html")]
struct GateEditPage {
    event_id: String,
    event_name: String,
    csrf: String,
    gate_id: String,
    name: String,
    in_out: bool,
    /// (id, name, ticked)
    ticket_types: Vec<(String, String, bool)>,
    rules: String,
    rules_text: String,
    capacity: String,
    opens_at: String,
    closes_at: String,
    timezone: String,
    error: Option<String>,
}

async fn edit_page(
    app: &App,
    session: &SessionActor,
    event: EventId,
    gate: GateId,
) -> Result<GateEditPage, ApiError> {
    let actor = &session.actor;
    let t = actor.require(Permission::EventsRead)?;
    let catalog = crate::events::catalog(app, t, event)
        .await?
        .ok_or(ApiError::NotFound)?;
    let g = setup::get(app, actor, event, gate).await?;
    let tz = catalog.event.timezone.clone();
    let local = |at: &Option<String>| {
        at.as_deref()
            .and_then(clock::parse_rfc3339)
            .map(|us| crate::events::local_input(us, &tz))
            .unwrap_or_default()
    };
    Ok(GateEditPage {
        event_id: event.to_string(),
        event_name: catalog.event.name.clone(),
        csrf: session.csrf.clone(),
        gate_id: g.id.to_string(),
        name: g.name.clone(),
        in_out: g.reentry == Reentry::InOut,
        ticket_types: catalog
            .event
            .ticket_types
            .iter()
            .map(|tt| {
                let ticked = g
                    .ticket_type_ids
                    .as_ref()
                    .is_some_and(|ids| ids.contains(&tt.id));
                (tt.id.to_string(), tt.name.clone(), ticked)
            })
            .collect(),
        rules: g
            .rules
            .as_ref()
            .and_then(|r| serde_json::to_string_pretty(r).ok())
            .unwrap_or_default(),
        rules_text: g.rules_text.clone().unwrap_or_default(),
        capacity: g.capacity.map(|c| c.to_string()).unwrap_or_default(),
        opens_at: local(&g.opens_at),
        closes_at: local(&g.closes_at),
        timezone: tz.clone(),
        error: None,
    })
}

async fn edit_gate_page(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(path): ApiPath<(EventId, GateId)>,
) -> Result<Response, ApiError> {
    let (event, gate) = path;
    Ok(page(
        StatusCode::OK,
        edit_page(&app, &session, event, gate).await?,
    ))
}

/// Saves the edit page: the gate as the form has it (a PATCH of every
/// field); on a client error, the form again as it was sent, saying why.
async fn edit_gate(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(path): ApiPath<(EventId, GateId)>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    let (event, gate) = path;
    if !csrf_ok(&session, &form) {
        return Ok(csrf_refused());
    }
    let result = match gate_form(&app, &session, event, &form).await {
        Ok(input) => setup::update(&app, &session.actor, event, gate, input)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(back(event)),
        Err(e) if e.status().is_client_error() && e.status() != StatusCode::NOT_FOUND => {
            let mut p = edit_page(&app, &session, event, gate).await?;
            let ticked: Vec<&str> = form
                .iter()
                .filter(|(k, _)| k == "ticket_type_ids")
                .map(|(_, v)| v.as_str())
                .collect();
            for tt in &mut p.ticket_types {
                tt.2 = ticked.contains(&tt.0.as_str());
            }
            p.name = field(&form, "name").to_string();
            p.in_out = field(&form, "reentry") == "in_out";
            p.rules = field(&form, "rules").to_string();
            p.capacity = field(&form, "capacity").to_string();
            p.opens_at = field(&form, "opens_at").to_string();
            p.closes_at = field(&form, "closes_at").to_string();
            p.error = Some(said(&e));
            Ok(page(e.status(), p))
        }
        Err(e) => Err(e),
    }
}

/// The page with a device's new pairing code, also as a QR code of the
/// scanner app's pairing link.
async fn with_pairing(
    app: &App,
    session: &SessionActor,
    event: EventId,
    d: domain::NewDeviceView,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let link = format!(
        "{}/scan#pair={}",
        app.kernel.config.public_url.trim_end_matches('/'),
        d.pairing_code
    );
    let expires = &d.pairing_expires_at;
    let mut p = build(app, session, event, None).await?;
    p.pairing = Some(Pairing {
        name: d.name.clone(),
        qr: crate::tickets::qr_svg(&link).unwrap_or_default(),
        code: d.pairing_code.clone(),
        expires: expires.get(..16).unwrap_or(expires).replace('T', " "),
    });
    Ok(page(status, p))
}

async fn add_device(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(event): ApiPath<EventId>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    if !csrf_ok(&session, &form) {
        return Ok(csrf_refused());
    }
    let input = DeviceInput {
        name: Some(field(&form, "name").to_string()),
        event_ids: Some(vec![event]),
        gate_ids: Some(
            form.iter()
                .filter(|(k, _)| k == "gate_ids")
                .filter_map(|(_, v)| v.parse().ok())
                .collect(),
        ),
        role: Some(if field(&form, "role") == "supervisor" {
            DeviceRole::Supervisor
        } else {
            DeviceRole::Steward
        }),
    };
    match domain::create_device(&app, &session.actor, input).await {
        Ok(d) => with_pairing(&app, &session, event, d, StatusCode::CREATED).await,
        Err(e) => refused(&app, &session, event, e.into()).await,
    }
}

async fn revoke_device(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(path): ApiPath<(EventId, DeviceId)>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    let (event, device) = path;
    if !csrf_ok(&session, &form) {
        return Ok(csrf_refused());
    }
    match domain::revoke_device(&app, &session.actor, device).await {
        Ok(_) => Ok(back(event)),
        Err(e) => refused(&app, &session, event, e.into()).await,
    }
}

async fn pair_again(
    State(app): State<App>,
    session: SessionActor,
    ApiPath(path): ApiPath<(EventId, DeviceId)>,
    Form(form): Form<Fields>,
) -> Result<Response, ApiError> {
    let (event, device) = path;
    if !csrf_ok(&session, &form) {
        return Ok(csrf_refused());
    }
    match domain::repair_device(&app, &session.actor, device).await {
        Ok(d) => with_pairing(&app, &session, event, d, StatusCode::OK).await,
        Err(e) => refused(&app, &session, event, e.into()).await,
    }
}
