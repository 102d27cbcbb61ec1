//! Devices and the scan decision.

use std::sync::Arc;

use kernel::{
    Permission, clock,
    error::Checks,
    ids::{DeviceId, EventId},
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    error::{Error, Result},
    gate::{Admission, DeviceScope, Gates},
    store,
};
use crate::{
    App,
    identity::{self, Actor, Device, Tenant},
    tickets::{self, TicketRecord, TicketStatus, TicketView},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct NewDeviceView {
    pub id: DeviceId,
    pub name: String,
    pub event_ids: Vec<EventId>,
    /// Shown once; the device sends it to `POST /api/v1/devices/pair`.
    pub pairing_code: String,
    pub pairing_expires_at: String,
}

/// Adds a scanning device for some of the tenant's events; it pairs with
/// the code in the reply.
pub async fn create_device(
    app: &App,
    actor: &Actor,
    name: &str,
    events: Vec<EventId>,
) -> Result<NewDeviceView> {
    let t = actor.require(Permission::DevicesManage)?;
    let mut c = Checks::default();
    let name = c.take("name", kernel::parse::name(name, 100));
    if events.is_empty() || events.len() > 100 {
        c.fail("event_ids", "must name 1 to 100 events");
    }
    for (i, e) in events.iter().enumerate() {
        if crate::events::catalog(app, t, *e).await?.is_none() {
            c.fail(
                &format!("event_ids[{i}]"),
                "is not an event of this organization",
            );
        }
    }
    c.finish()?;
    let name = name.ok_or(Error::Invalid(Vec::new()))?;
    let id = DeviceId::new();
    let pairing = identity::new_pairing(app, t, id);
    let now = app.kernel.now();
    let audit = actor
        .audit("device.create", "device")
        .object(id)
        .after(serde_json::json!({"name": name, "event_ids": events}))
        .stmt(now);
    app.db()
        .write_grouped(vec![
            store::insert_device(t, id, &name, &events, now),
            pairing.stmt,
            audit,
        ])
        .await?;
    Ok(NewDeviceView {
        id,
        name,
        event_ids: events,
        pairing_code: pairing.code,
        pairing_expires_at: clock::rfc3339(pairing.expires_at),
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

/// Spends a pairing code for the device's token.
pub async fn pair(app: &App, code: &str) -> Result<PairedView> {
    let paired = identity::pair(app, code)
        .await
        .map_err(kernel::ApiError::from)?;
    let scope = scope_of(app, &paired.tenant, paired.device).await?;
    Ok(PairedView {
        device_token: paired.device_token,
        device_id: paired.device,
        org: paired.tenant.slug().to_string(),
        event_ids: scope.events.clone(),
    })
}

async fn scope_of(app: &App, t: &Tenant, device: DeviceId) -> Result<Arc<DeviceScope>> {
    let gates = app.state::<Gates>();
    if let Some(s) = gates.devices.get(&(t.org(), device)).await {
        return Ok(s);
    }
    Box::pin(load_scope(app, t, device)).await
}

async fn load_scope(app: &App, t: &Tenant, device: DeviceId) -> Result<Arc<DeviceScope>> {
    let gates = app.state::<Gates>();
    let (name, events) = store::device(app.db(), t, device)
        .await?
        .ok_or(Error::NotFound)?;
    let scope = Arc::new(DeviceScope { name, events });
    gates.devices.insert((t.org(), device), scope.clone()).await;
    Ok(scope)
}

/// What a device may scan for, and its name.
pub async fn device_scope(app: &App, d: &Device) -> Result<Arc<DeviceScope>> {
    scope_of(app, d.tenant(), d.id).await
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

fn outcome(result: ScanResult, ticket: Option<&TicketRecord>, first: Option<i64>) -> ScanOutcome {
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
    device: &Device,
    code: &str,
    event: EventId,
    gate_name: Option<String>,
) -> Result<ScanOutcome> {
    let t = device.tenant();
    if !device_scope(app, device).await?.events.contains(&event) {
        return Err(Error::NotThisDevicesEvent);
    }
    let gates = app.state::<Gates>();
    let gate = gates.gate(app, t, event).await?;
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
            match Box::pin(tickets::by_id(app, t, parsed.ticket)).await? {
                Some(rec) if rec.code == code && rec.event_id == event => gate.insert(rec),
                _ => return Ok(outcome(ScanResult::Invalid, None, None)),
            }
        }
    };
    let rec = &entry.record;
    if rec.status != TicketStatus::Valid || entry.revoked.load(std::sync::atomic::Ordering::Acquire)
    {
        return Ok(outcome(ScanResult::Revoked, Some(rec), entry.admitted()));
    }
    if let Some(first) = entry.admitted() {
        return Ok(outcome(ScanResult::AlreadyAdmitted, Some(rec), Some(first)));
    }
    let now = app.kernel.now();
    if now > gate.ends_at {
        return Ok(outcome(ScanResult::NotValidNow, Some(rec), None));
    }
    if let Err(first) = entry.claim(now) {
        return Ok(outcome(ScanResult::AlreadyAdmitted, Some(rec), Some(first)));
    }
    // Across nodes the database decides: its conditional update admits once,
    // and the other nodes' hot tiers learn of it from `ticket.admitted`.
    // The device's change, for the audit log: written with the admission,
    // in its batch's transaction, only if it admits.
    let audit = kernel::audit::Entry {
        org: t.org().0,
        actor_kind: "device",
        actor_id: Some(device.id.to_string()),
        action: "ticket.admit",
        object_type: "ticket",
        object_id: Some(rec.id.to_string()),
        before: None,
        after: Some(serde_json::json!({"event_id": event, "gate": gate_name})),
    }
    .row(&kernel::audit::context(), now);
    let admission = Admission {
        write: tickets::admission(t, rec.id, now, device.id, gate_name),
        event,
        audit,
    };
    match Box::pin(gates.writer.try_submit(admission)).await {
        Ok(tickets::Admit::Admitted) => {
            metrics::counter!("voelgoed_admissions_total").increment(1);
            Ok(outcome(ScanResult::Admitted, Some(rec), Some(now)))
        }
        Ok(tickets::Admit::Before(first)) => {
            entry.settle(first);
            Ok(outcome(ScanResult::AlreadyAdmitted, Some(rec), Some(first)))
        }
        Ok(tickets::Admit::Revoked) => {
            entry.settle(0);
            entry
                .revoked
                .store(true, std::sync::atomic::Ordering::Release);
            Ok(outcome(ScanResult::Revoked, Some(rec), None))
        }
        Err(e) => {
            entry.settle(0);
            tracing::warn!(error = %e, "an admission was not written");
            Err(Error::Busy)
        }
    }
}
