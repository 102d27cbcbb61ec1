//! Device pairing and the scan decision.

use std::sync::Arc;

use kernel::{
    Actor, ApiError, ApiResult, Permission,
    auth::{self, PlainToken},
    clock::{self, MICROS_PER_SEC, now_micros},
    error::Checks,
    ids::{DeviceId, EventId, OrgId},
};
use serde::Serialize;
use tokio::sync::oneshot;
use utoipa::ToSchema;

use super::{gate::Job, store};
use crate::{
    App,
    tickets::{self, AdmissionWrite, TicketView},
};

/// A paired device, as authenticated by its token.
#[derive(Debug)]
pub struct DeviceCtx {
    pub org: OrgId,
    pub org_slug: String,
    pub id: DeviceId,
    pub name: String,
    pub events: Vec<EventId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewDeviceView {
    pub id: DeviceId,
    pub name: String,
    pub event_ids: Vec<EventId>,
    /// Shown once; the device sends it to `POST /api/v1/devices/pair`.
    pub pairing_code: String,
    pub pairing_expires_at: String,
}

const PAIRING_TTL_SECS: i64 = 15 * 60;
const PAIRING_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

fn pairing_code() -> String {
    auth::random_bytes::<10>()
        .iter()
        .map(|b| PAIRING_ALPHABET[(*b as usize) % 32] as char)
        .collect()
}

pub async fn create_device(
    app: &App,
    actor: &Actor,
    name: &str,
    events: Vec<EventId>,
) -> ApiResult<NewDeviceView> {
    actor.require(Permission::DevicesManage)?;
    let mut c = Checks::default();
    let name = c.take("name", kernel::parse::name(name, 100));
    if events.is_empty() || events.len() > 100 {
        c.fail("event_ids", "must name 1 to 100 events");
    }
    for (i, e) in events.iter().enumerate() {
        if crate::events::catalog(app, actor.org(), *e)
            .await?
            .is_none()
        {
            c.fail(
                &format!("event_ids[{i}]"),
                "is not an event of this organization",
            );
        }
    }
    c.finish()?;
    let name = name.ok_or_else(|| ApiError::internal("checks passed with a missing value"))?;
    let code = pairing_code();
    let id = DeviceId::new();
    let now = now_micros();
    let expires = now + PAIRING_TTL_SECS * MICROS_PER_SEC;
    store::insert_device(
        app.db(),
        actor.org(),
        id,
        &name,
        &events,
        &PlainToken::from_presented(&code).hash(),
        expires,
        now,
    )
    .await?;
    Ok(NewDeviceView {
        id,
        name,
        event_ids: events,
        pairing_code: code,
        pairing_expires_at: clock::rfc3339(expires),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PairedView {
    /// Shown once: the device's bearer token for scanning.
    pub device_token: String,
    pub device_id: DeviceId,
    pub org: String,
    pub event_ids: Vec<EventId>,
}

/// Spends a pairing code for a device token. A code works once, before it
/// expires; an unknown, spent or expired one answers 404 alike.
pub async fn pair(app: &App, code: &str) -> ApiResult<PairedView> {
    let code = code.trim().to_uppercase();
    if code.is_empty() || code.len() > 64 {
        return Err(ApiError::field(
            "pairing_code",
            "must be the code shown when the device was added",
        ));
    }
    let token = PlainToken::generate("vgd_");
    let paired = store::pair(
        app.db(),
        &PlainToken::from_presented(&code).hash(),
        &token.hash(),
        now_micros(),
    )
    .await?;
    let Some((org_slug, device, events)) = paired else {
        return Err(ApiError::NotFound);
    };
    Ok(PairedView {
        device_token: token.expose().to_string(),
        device_id: device,
        org: org_slug,
        event_ids: events,
    })
}

/// The device behind a bearer token, from the hot tier when warm.
pub async fn device_for_token(app: &App, presented: &str) -> ApiResult<Arc<DeviceCtx>> {
    let hash = PlainToken::from_presented(presented).hash();
    if let Some(d) = app.gates.devices.get(&hash.0).await {
        return Ok(d);
    }
    let Some(d) = store::device_by_token(app.db(), &hash).await? else {
        return Err(ApiError::Unauthorized(
            "unknown or revoked device token".into(),
        ));
    };
    let d = Arc::new(d);
    app.gates.devices.insert(hash.0, d.clone()).await;
    Ok(d)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScanResult {
    Admitted,
    AlreadyAdmitted,
    Invalid,
    Revoked,
    WrongEvent,
    NotValidNow,
}

impl ScanResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanResult::Admitted => "admitted",
            ScanResult::AlreadyAdmitted => "already_admitted",
            ScanResult::Invalid => "invalid",
            ScanResult::Revoked => "revoked",
            ScanResult::WrongEvent => "wrong_event",
            ScanResult::NotValidNow => "not_valid_now",
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScanOutcome {
    pub result: ScanResult,
    pub ticket: Option<TicketView>,
    pub first_admitted_at: Option<String>,
}

fn outcome(
    result: ScanResult,
    ticket: Option<&tickets::TicketRecord>,
    first: Option<i64>,
) -> ScanOutcome {
    ScanOutcome {
        result,
        ticket: ticket.map(|t| {
            let mut v: TicketView = t.clone().into();
            v.admitted_at = first.map(clock::rfc3339);
            v
        }),
        first_admitted_at: first.map(clock::rfc3339),
    }
}

/// Longest code accepted as a request at all; longer is a malformed request.
pub const MAX_SCAN_CODE: usize = 512;

/// Decides one scan. Online, every issued code is in the gate's hot tier, so
/// a scan is a lookup; only a code the gate has not seen is verified (and a
/// genuine one loaded, once).
pub async fn scan(
    app: &App,
    device: &DeviceCtx,
    code: &str,
    event: EventId,
    gate_name: Option<String>,
) -> ApiResult<ScanOutcome> {
    if !device.events.contains(&event) {
        return Err(ApiError::Forbidden(
            "this device is not set up for that event".into(),
        ));
    }
    let gate = app.gates.gate(app, device.org, event).await?;
    let entry = match gate.tickets.get(code).map(|e| e.clone()) {
        Some(e) => e,
        None => {
            let Some(parsed) = tickets::parse_code(code) else {
                return Ok(outcome(ScanResult::Invalid, None, None));
            };
            let genuine = gate
                .keys
                .verifying
                .iter()
                .any(|(kid, key)| *kid == parsed.kid && parsed.verify(key));
            if !genuine {
                return Ok(outcome(ScanResult::Invalid, None, None));
            }
            if parsed.event != event {
                return Ok(outcome(ScanResult::WrongEvent, None, None));
            }
            match tickets::by_id(app, device.org, parsed.ticket).await? {
                Some(rec) if rec.code == code && rec.event_id == event => gate.insert(rec),
                _ => return Ok(outcome(ScanResult::Invalid, None, None)),
            }
        }
    };
    let rec = &entry.record;
    if rec.status != "valid" {
        return Ok(outcome(ScanResult::Revoked, Some(rec), entry.admitted()));
    }
    if let Some(first) = entry.admitted() {
        return Ok(outcome(ScanResult::AlreadyAdmitted, Some(rec), Some(first)));
    }
    let now = now_micros();
    if now > gate.ends_at {
        return Ok(outcome(ScanResult::NotValidNow, Some(rec), None));
    }
    if let Err(first) = entry.claim(now) {
        return Ok(outcome(ScanResult::AlreadyAdmitted, Some(rec), Some(first)));
    }
    // Across nodes the database decides: its conditional update admits once,
    // and the other nodes' hot tiers learn of it from `ticket.admitted`.
    let (reply, rx) = oneshot::channel();
    let job = Job {
        write: AdmissionWrite {
            org: device.org,
            ticket: rec.id,
            at: now,
            device: device.id,
            gate: gate_name,
        },
        event,
        reply,
    };
    if app.gates.writer.try_send(job).is_err() {
        entry.settle(0);
        return Err(ApiError::Overloaded {
            retry_after_secs: 1,
        });
    }
    match rx.await {
        Ok(Ok(None)) => {
            metrics::counter!("voelgoed_admissions_total").increment(1);
            Ok(outcome(ScanResult::Admitted, Some(rec), Some(now)))
        }
        Ok(Ok(Some(first))) => {
            entry.settle(first);
            Ok(outcome(ScanResult::AlreadyAdmitted, Some(rec), Some(first)))
        }
        Ok(Err(_)) | Err(_) => {
            entry.settle(0);
            Err(ApiError::Overloaded {
                retry_after_secs: 1,
            })
        }
    }
}
