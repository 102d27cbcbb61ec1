//! Devices and the scan decision.

use std::sync::Arc;

use kernel::{
    Permission, clock,
    error::Checks,
    ids::{DeviceId, EventId, GateId, ScanId},
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    error::{Error, Result},
    gate::{Admission, Claim, DeviceScope, Entry, EventSetup, Gate, Gates, LogRow, Write, Written},
    rules,
    setup::{GateSetup, Reentry},
    store::{self, DeviceRow},
};
use crate::{
    App,
    identity::{self, Actor, Device, Tenant},
    tickets::{self, TicketRecord, TicketStatus, TicketView},
};

/// What a device may do at the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceRole {
    /// Scans.
    Steward,
    /// Scans, and may override a refusal with a reason.
    Supervisor,
}

impl DeviceRole {
    fn as_str(self) -> &'static str {
        match self {
            DeviceRole::Steward => "steward",
            DeviceRole::Supervisor => "supervisor",
        }
    }
    fn of(s: &str) -> DeviceRole {
        if s == "supervisor" {
            DeviceRole::Supervisor
        } else {
            DeviceRole::Steward
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewDeviceView {
    pub id: DeviceId,
    pub name: String,
    pub role: DeviceRole,
    pub event_ids: Vec<EventId>,
    pub gate_ids: Vec<GateId>,
    /// Shown once; the device sends it to `POST /api/v1/devices/pair`.
    pub pairing_code: String,
    pub pairing_expires_at: String,
}

/// Where a device stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// Waiting for its pairing code.
    Pairing,
    Paired,
    /// Its pairing code expired unspent: pair it again.
    Unpaired,
    Revoked,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    pub id: DeviceId,
    pub name: String,
    pub role: DeviceRole,
    pub event_ids: Vec<EventId>,
    /// The gates it may scan at; empty: any gate of its events.
    pub gate_ids: Vec<GateId>,
    pub status: DeviceStatus,
    pub paired_at: Option<String>,
    pub revoked_at: Option<String>,
    pub pairing_expires_at: Option<String>,
    pub created_at: String,
}

fn view(d: &DeviceRow, c: identity::CredentialState, now: i64) -> DeviceView {
    let status = if c.revoked_at.is_some() {
        DeviceStatus::Revoked
    } else if c.paired_at.is_some() {
        DeviceStatus::Paired
    } else if c.pairing_expires_at.is_some_and(|e| e > now) {
        DeviceStatus::Pairing
    } else {
        DeviceStatus::Unpaired
    };
    DeviceView {
        id: d.id,
        name: d.name.clone(),
        role: DeviceRole::of(&d.role),
        event_ids: d.events.clone(),
        gate_ids: d.gates.clone(),
        status,
        paired_at: c.paired_at.map(clock::rfc3339),
        revoked_at: c.revoked_at.map(clock::rfc3339),
        pairing_expires_at: c
            .pairing_expires_at
            .filter(|_| status == DeviceStatus::Pairing)
            .map(clock::rfc3339),
        created_at: clock::rfc3339(d.created_at),
    }
}

/// A device's setup as given (a create, or a patch).
#[derive(Debug, Default)]
pub struct DeviceInput {
    pub name: Option<String>,
    pub event_ids: Option<Vec<EventId>>,
    pub gate_ids: Option<Vec<GateId>>,
    pub role: Option<DeviceRole>,
}

async fn apply(app: &App, t: &Tenant, mut d: DeviceRow, input: DeviceInput) -> Result<DeviceRow> {
    let mut c = Checks::default();
    if let Some(name) = input.name
        && let Some(n) = c.take("name", kernel::parse::name(&name, 100))
    {
        d.name = n;
    }
    if let Some(events) = input.event_ids {
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
        d.events = events;
    }
    if let Some(gates) = input.gate_ids {
        if gates.len() > 100 {
            c.fail("gate_ids", "must name at most 100 gates");
        }
        d.gates = gates;
    }
    // Every gate must belong to one of the device's events.
    let mut known = Vec::new();
    for e in &d.events {
        known.extend(
            super::setup::for_event(app.db(), t, *e)
                .await?
                .into_iter()
                .map(|g| g.id),
        );
    }
    for (i, g) in d.gates.iter().enumerate() {
        if !known.contains(g) {
            c.fail(
                &format!("gate_ids[{i}]"),
                "is not a gate of the device's events",
            );
        }
    }
    if let Some(role) = input.role {
        d.role = role.as_str().to_string();
    }
    c.finish()?;
    Ok(d)
}

/// Adds a scanning device for some of the tenant's events; it pairs with
/// the code in the reply.
pub async fn create_device(app: &App, actor: &Actor, input: DeviceInput) -> Result<NewDeviceView> {
    let t = actor.require(Permission::DevicesManage)?;
    let mut c = Checks::default();
    if input.name.is_none() {
        c.fail("name", "is required");
    }
    if input.event_ids.is_none() {
        c.fail("event_ids", "is required");
    }
    c.finish()?;
    let now = app.kernel.now();
    let base = DeviceRow {
        id: DeviceId::new(),
        name: String::new(),
        events: Vec::new(),
        gates: Vec::new(),
        role: DeviceRole::Steward.as_str().to_string(),
        created_at: now,
    };
    let d = apply(app, t, base, input).await?;
    let pairing = identity::new_pairing(app, t, d.id);
    let audit = actor
        .audit("device.create", "device")
        .object(d.id)
        .after(serde_json::json!({"name": d.name, "event_ids": d.events, "gate_ids": d.gates, "role": d.role}))
        .stmt(now);
    app.db()
        .write_grouped(vec![store::insert_device(t, &d), pairing.stmt, audit])
        .await?;
    Ok(NewDeviceView {
        id: d.id,
        name: d.name,
        role: DeviceRole::of(&d.role),
        event_ids: d.events,
        gate_ids: d.gates,
        pairing_code: pairing.code,
        pairing_expires_at: clock::rfc3339(pairing.expires_at),
    })
}

/// The org's devices, newest first.
pub async fn devices(app: &App, actor: &Actor) -> Result<Vec<DeviceView>> {
    let t = actor.require(Permission::DevicesManage)?;
    let creds = identity::device_credentials(app, t)
        .await
        .map_err(kernel::ApiError::from)?;
    let now = app.kernel.now();
    Ok(store::devices(app.db(), t)
        .await?
        .iter()
        .map(|d| view(d, creds.get(&d.id).copied().unwrap_or_default(), now))
        .collect())
}

pub async fn device(app: &App, actor: &Actor, id: DeviceId) -> Result<DeviceView> {
    let t = actor.require(Permission::DevicesManage)?;
    let d = store::device(app.db(), t, id)
        .await?
        .ok_or(Error::NotFound)?;
    let creds = identity::device_credentials(app, t)
        .await
        .map_err(kernel::ApiError::from)?;
    Ok(view(
        &d,
        creds.get(&id).copied().unwrap_or_default(),
        app.kernel.now(),
    ))
}

/// Renames a device, changes its role, events or gates.
pub async fn update_device(
    app: &App,
    actor: &Actor,
    id: DeviceId,
    input: DeviceInput,
) -> Result<DeviceView> {
    let t = actor.require(Permission::DevicesManage)?;
    let before = store::device(app.db(), t, id)
        .await?
        .ok_or(Error::NotFound)?;
    let d = apply(app, t, before.clone(), input).await?;
    let now = app.kernel.now();
    let audit = actor
        .audit("device.update", "device")
        .object(id)
        .before(serde_json::json!({"name": before.name, "event_ids": before.events, "gate_ids": before.gates, "role": before.role}))
        .after(serde_json::json!({"name": d.name, "event_ids": d.events, "gate_ids": d.gates, "role": d.role}))
        .stmt(now);
    app.db()
        .write_grouped(vec![store::update_device(t, &d), audit])
        .await?;
    changed(app, t, id).await;
    device(app, actor, id).await
}

/// Revokes a device: every node refuses its token from its next request.
pub async fn revoke_device(app: &App, actor: &Actor, id: DeviceId) -> Result<DeviceView> {
    let t = actor.require(Permission::DevicesManage)?;
    store::device(app.db(), t, id)
        .await?
        .ok_or(Error::NotFound)?;
    let now = app.kernel.now();
    let audit = actor.audit("device.revoke", "device").object(id).stmt(now);
    app.db()
        .write_grouped(vec![identity::revoke_device(t, id, now), audit])
        .await?;
    changed(app, t, id).await;
    device(app, actor, id).await
}

/// A new pairing code for a device (a new phone, or a revoked one back):
/// its old token stops working at once.
pub async fn repair_device(app: &App, actor: &Actor, id: DeviceId) -> Result<NewDeviceView> {
    let t = actor.require(Permission::DevicesManage)?;
    let d = store::device(app.db(), t, id)
        .await?
        .ok_or(Error::NotFound)?;
    let now = app.kernel.now();
    let pairing = identity::repairing(app, t, id);
    let audit = actor.audit("device.repair", "device").object(id).stmt(now);
    app.db().write_grouped(vec![pairing.stmt, audit]).await?;
    changed(app, t, id).await;
    Ok(NewDeviceView {
        id,
        name: d.name,
        role: DeviceRole::of(&d.role),
        event_ids: d.events,
        gate_ids: d.gates,
        pairing_code: pairing.code,
        pairing_expires_at: clock::rfc3339(pairing.expires_at),
    })
}

/// Every node forgets the device's token and scope.
async fn changed(app: &App, t: &Tenant, id: DeviceId) {
    app.state::<Gates>().forget_device(t.org(), id).await;
    identity::announce_device_changed(app, t.org(), id).await;
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PairedView {
    /// Shown once: the device's bearer token for scanning.
    pub device_token: String,
    pub device_id: DeviceId,
    pub org: String,
    pub event_ids: Vec<EventId>,
    pub gate_ids: Vec<GateId>,
    pub role: DeviceRole,
}

/// Spends a pairing code for the device's token.
pub async fn pair(app: &App, code: &str) -> Result<PairedView> {
    let paired = identity::pair(app, code)
        .await
        .map_err(kernel::ApiError::from)?;
    let scope = load_scope(app, &paired.tenant, paired.device).await?;
    Ok(PairedView {
        device_token: paired.device_token,
        device_id: paired.device,
        org: paired.tenant.slug().to_string(),
        event_ids: scope.events.clone(),
        gate_ids: scope.gates.clone(),
        role: if scope.supervisor {
            DeviceRole::Supervisor
        } else {
            DeviceRole::Steward
        },
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
    let d = store::device(app.db(), t, device)
        .await?
        .ok_or(Error::NotFound)?;
    let scope = Arc::new(DeviceScope {
        name: d.name,
        events: d.events,
        gates: d.gates,
        supervisor: DeviceRole::of(&d.role) == DeviceRole::Supervisor,
    });
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
    /// This gate does not admit the ticket's type.
    WrongGate,
    /// The gate's rule refused it (`explanation` says which part).
    Rule,
    /// Its order is not paid.
    Unpaid,
    /// The gate has its capacity inside.
    GateFull,
    /// Went out through an `in_out` gate.
    Exited,
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
            ScanResult::WrongGate => "wrong_gate",
            ScanResult::Rule => "rule",
            ScanResult::Unpaid => "unpaid",
            ScanResult::GateFull => "gate_full",
            ScanResult::Exited => "exited",
        }
    }

    /// A supervisor may override this refusal.
    fn overridable(self) -> bool {
        matches!(
            self,
            ScanResult::WrongGate
                | ScanResult::NotValidNow
                | ScanResult::Rule
                | ScanResult::GateFull
        )
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScanOutcome {
    pub result: ScanResult,
    /// In words, for the person at the gate.
    pub reason: String,
    /// A `rule` refusal: the part of the gate's rule that failed.
    pub explanation: Option<String>,
    pub ticket: Option<TicketView>,
    pub first_admitted_at: Option<String>,
    /// The gate scanned at, if any.
    pub gate_id: Option<GateId>,
    /// Inside through that gate now (this node's count).
    pub inside: Option<i64>,
    /// Admitted by a supervisor's override of a refusal.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub overridden: bool,
}

/// Longest code accepted as a request at all; longer is a malformed request.
pub const MAX_SCAN_CODE: usize = 512;

/// Which way through an `in_out` gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

/// One scan as the device sent it.
#[derive(Debug)]
pub struct ScanInput {
    pub code: String,
    pub event: EventId,
    pub gate: Option<String>,
    pub direction: Direction,
    /// A supervisor admitting despite a refusal, and why.
    pub override_reason: Option<String>,
}

/// A scan under way: who, where, when.
pub(super) struct Ctx<'a> {
    pub(super) app: &'a App,
    pub(super) tenant: &'a Tenant,
    /// The scanning device; `None` for a check-in at the box office.
    pub(super) device: Option<DeviceId>,
    /// Who, for the audit log: a device, or a member at the box office.
    pub(super) by: (&'static str, Option<String>),
    pub(super) event: EventId,
    pub(super) gate: &'a Gate,
    pub(super) setup: &'a EventSetup,
    pub(super) at: Option<&'a GateSetup>,
    pub(super) label: Option<String>,
    pub(super) direction: Direction,
    pub(super) now: i64,
    pub(super) override_reason: Option<String>,
}

impl Ctx<'_> {
    fn outcome(&self, result: ScanResult, entry: Option<&Entry>, reason: String) -> ScanOutcome {
        let first = entry.and_then(Entry::admitted);
        ScanOutcome {
            result,
            reason,
            explanation: None,
            ticket: entry.map(|e| {
                let mut v: TicketView = e.record.clone().into();
                v.admitted_at = first.map(clock::rfc3339);
                v
            }),
            first_admitted_at: first.map(clock::rfc3339),
            gate_id: self.at.map(|g| g.id),
            inside: self.at.map(|g| self.gate.inside(g.id)),
            overridden: false,
        }
    }

    fn log(&self, out: &ScanOutcome) -> LogRow {
        LogRow {
            id: ScanId::new(),
            direction: match self.direction {
                Direction::In => "in",
                Direction::Out => "out",
            },
            result: out.result.as_str(),
            reason: out.reason.clone(),
            explanation: out.explanation.clone(),
            // A check-in by hand always says why; a device's scan, when it
            // overrode a refusal.
            override_reason: self
                .override_reason
                .clone()
                .filter(|_| out.overridden || self.device.is_none()),
            at: self.now,
        }
    }

    fn admission(&self, write: Write, entry: Option<&Entry>, out: &ScanOutcome) -> Admission {
        Admission {
            write,
            org: self.tenant.org(),
            event: self.event,
            ticket: entry.map(|e| e.record.id),
            device: self.device,
            gate_id: self.at.map(|g| g.id),
            reentry: false,
            audit: None,
            log: self.log(out),
        }
    }

    /// Answers a scan decided in memory; its log row is written behind
    /// (dropped, and counted, only when the log's queue is full).
    fn answer(&self, out: ScanOutcome, entry: Option<&Entry>) -> ScanOutcome {
        let log = self.log(&out);
        let row = super::gate::scan_row(
            self.tenant.org(),
            self.event,
            self.device,
            self.at.map(|g| g.id),
            entry.map(|e| e.record.id),
            &log,
            log.result,
            &log.reason,
        );
        if self.app.state::<Gates>().log.try_send(row).is_err() {
            metrics::counter!("voelgoed_scan_log_dropped_total").increment(1);
        }
        out
    }

    fn when(&self, at: i64) -> String {
        local_time(&self.setup.tz, at, self.now)
    }
}

/// `HH:MM` in the event's zone, with the date when it is not today there.
fn local_time(tz: &jiff::tz::TimeZone, at: i64, now: i64) -> String {
    let z = |us: i64| jiff::Timestamp::from_microsecond(us).map(|t| tz.to_datetime(t));
    match (z(at), z(now)) {
        (Ok(a), Ok(n)) if a.date() == n.date() => a.strftime("%H:%M").to_string(),
        (Ok(a), _) => a.strftime("%Y-%m-%d %H:%M").to_string(),
        _ => clock::rfc3339(at),
    }
}

/// The facts a gate's rule sees for a ticket about to enter.
fn facts(ctx: &Ctx<'_>, rec: &TicketRecord, entries: &[i64]) -> serde_json::Value {
    let tz = &ctx.setup.tz;
    let now = tz.to_datetime(
        jiff::Timestamp::from_microsecond(ctx.now).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    );
    let today = now.date();
    let entries_today = entries
        .iter()
        .filter(|&&e| {
            jiff::Timestamp::from_microsecond(e).is_ok_and(|t| tz.to_datetime(t).date() == today)
        })
        .count();
    serde_json::json!({
        "ticket_type_id": rec.ticket_type_id.to_string(),
        "now": clock::rfc3339(ctx.now),
        "minutes_of_day": i64::from(now.hour()) * 60 + i64::from(now.minute()),
        "weekday": now.weekday().to_monday_one_offset(),
        "entries_today": entries_today,
        "entries_total": entries.len(),
        "minutes_since_last_entry": entries.last().map(|l| (ctx.now - l).max(0) / (60 * clock::MICROS_PER_SEC)),
    })
}

/// The gate a scan names: a gate of the event by id; a device's own label
/// when the event has no gates (as before gates existed); the device's one
/// gate when it names none.
fn resolve_gate<'a>(
    setup: &'a EventSetup,
    scope: &DeviceScope,
    named: Option<String>,
) -> Result<(Option<&'a GateSetup>, Option<String>)> {
    let field = |m: &str| Error::Invalid(vec![kernel::FieldError::new("gate", m)]);
    let at = match named {
        Some(s) => match s.parse::<GateId>().ok().and_then(|id| setup.gate(id)) {
            Some(g) => Some(g),
            None if setup.gates.is_empty() => return Ok((None, Some(s))),
            None => return Err(field("is not a gate of this event")),
        },
        None => {
            let mine: Vec<&GateSetup> = setup
                .gates
                .iter()
                .filter(|g| scope.gates.contains(&g.id))
                .collect();
            match mine.as_slice() {
                [] if scope.gates.is_empty() => None,
                [one] => Some(*one),
                _ => return Err(field("is required: this device scans at some gates only")),
            }
        }
    };
    if let Some(g) = at
        && !scope.gates.is_empty()
        && !scope.gates.contains(&g.id)
    {
        return Err(Error::NotThisDevicesGate);
    }
    Ok((at, at.map(|g| g.id.to_string())))
}

/// Decides one scan. Online, every issued code is in the gate's hot tier, so
/// a scan is a lookup; only a code the gate has not seen is verified (and a
/// genuine one loaded, once). Rules, gates and presence are in memory too;
/// an entry or exit is answered only once the database has it.
pub async fn scan(app: &App, device: &Device, input: ScanInput) -> Result<ScanOutcome> {
    let t = device.tenant();
    let scope = device_scope(app, device).await?;
    if !scope.events.contains(&input.event) {
        return Err(Error::NotThisDevicesEvent);
    }
    if input.override_reason.is_some() && !scope.supervisor {
        return Err(Error::NotSupervisor);
    }
    let gates = app.state::<Gates>();
    let gate = gates.gate(app, t, input.event).await?;
    let setup = gate.setup();
    let (at, label) = resolve_gate(&setup, &scope, input.gate)?;
    if input.direction == Direction::Out && at.is_none_or(|g| g.reentry != Reentry::InOut) {
        return Err(Error::Invalid(vec![kernel::FieldError::new(
            "direction",
            "\"out\" is only for a gate whose reentry is \"in_out\"",
        )]));
    }
    let ctx = Ctx {
        app,
        tenant: t,
        device: Some(device.id),
        // The device's id is written out only if the scan admits.
        by: ("device", None),
        event: input.event,
        gate: &gate,
        setup: &setup,
        at,
        label,
        direction: input.direction,
        now: app.kernel.now(),
        override_reason: input.override_reason,
    };
    // A compact code typed by hand may come in any case.
    let upper;
    let code = if input.code.len() > 3
        && input.code.is_char_boundary(3)
        && input.code[..3].eq_ignore_ascii_case("VG2")
        && input.code.bytes().any(|b| b.is_ascii_lowercase())
    {
        upper = input.code.to_ascii_uppercase();
        upper.as_str()
    } else {
        input.code.as_str()
    };
    let entry = match gate.tickets.get(code).map(|e| e.clone()) {
        Some(e) => e,
        None => {
            let invalid = || {
                ctx.answer(
                    ctx.outcome(ScanResult::Invalid, None, "not a valid ticket code".into()),
                    None,
                )
            };
            let Some(parsed) = tickets::parse_code(code) else {
                return Ok(invalid());
            };
            // The org's keys as they are now (a rotation or a retirement
            // reaches every node at once).
            let keys = tickets::org_keys(app, t).await?;
            let genuine = keys
                .verifying
                .iter()
                .any(|(kid, key)| *kid == parsed.kid && parsed.verify(key));
            if !genuine {
                return Ok(invalid());
            }
            if !parsed.is_for(input.event) {
                let out = ctx.outcome(
                    ScanResult::WrongEvent,
                    None,
                    "a ticket for another event".into(),
                );
                return Ok(ctx.answer(out, None));
            }
            match Box::pin(tickets::by_id(app, t, parsed.ticket)).await? {
                Some(rec)
                    if rec.code == code
                        && rec.event_id == input.event
                        && parsed.is_of_type(rec.ticket_type_id) =>
                {
                    gate.insert(rec)
                }
                _ => return Ok(invalid()),
            }
        }
    };
    Box::pin(decide(&ctx, &entry)).await
}

pub(super) async fn decide(ctx: &Ctx<'_>, entry: &Entry) -> Result<ScanOutcome> {
    let rec = &entry.record;
    if rec.status != TicketStatus::Valid || entry.revoked.load(std::sync::atomic::Ordering::Acquire)
    {
        let out = ctx.outcome(
            ScanResult::Revoked,
            Some(entry),
            "the ticket was revoked (refunded, cancelled, handed on or re-issued)".into(),
        );
        return Ok(ctx.answer(out, Some(entry)));
    }
    if ctx.direction == Direction::Out {
        return exit(ctx, entry).await;
    }
    let single = ctx.at.is_none_or(|g| g.reentry == Reentry::Single);
    let presence = entry.presence();
    // Admitted once at a single gate is for good: memory may answer. Inside
    // at an in/out gate may be stale (an exit on another node a moment
    // ago): the database answers that (below).
    if single && presence.first != 0 {
        let out = ctx.outcome(
            ScanResult::AlreadyAdmitted,
            Some(entry),
            format!("already admitted at {}", ctx.when(presence.first)),
        );
        return Ok(ctx.answer(out, Some(entry)));
    }
    // Refusals a supervisor may override.
    let mut refusal: Option<(ScanResult, String, Option<String>)> = None;
    if ctx.now > ctx.setup.ends_at {
        refusal = Some((ScanResult::NotValidNow, "the event has ended".into(), None));
    }
    if refusal.is_none()
        && !ctx.setup.windows.is_empty()
        && let Some(&(from, until)) = ctx.setup.windows.get(&rec.ticket_type_id)
    {
        if let Some(f) = from.filter(|&f| ctx.now < f) {
            refusal = Some((
                ScanResult::NotValidNow,
                format!("this ticket admits from {}", ctx.when(f)),
                None,
            ));
        } else if let Some(u) = until.filter(|&u| ctx.now > u) {
            refusal = Some((
                ScanResult::NotValidNow,
                format!("this ticket admitted until {}", ctx.when(u)),
                None,
            ));
        }
    }
    if let Some(g) = ctx.at {
        if refusal.is_none() && !g.admits_type(rec.ticket_type_id) {
            refusal = Some((
                ScanResult::WrongGate,
                "this gate does not admit this ticket type".into(),
                None,
            ));
        }
        if refusal.is_none()
            && let Some(o) = g.opens_at.filter(|&o| ctx.now < o)
        {
            refusal = Some((
                ScanResult::NotValidNow,
                format!("the gate opens at {}", ctx.when(o)),
                None,
            ));
        }
        if refusal.is_none()
            && let Some(c) = g.closes_at.filter(|&c| ctx.now > c)
        {
            refusal = Some((
                ScanResult::NotValidNow,
                format!("the gate closed at {}", ctx.when(c)),
                None,
            ));
        }
        if refusal.is_none()
            && let Some(rule) = &g.rules
            && let Some(why) = rules::explain(rule, &facts(ctx, rec, &presence.entries))
        {
            refusal = Some((ScanResult::Rule, format!("not admitted: {why}"), Some(why)));
        }
    }
    let overridden = refusal.is_some() && ctx.override_reason.is_some();
    if let Some((result, reason, explanation)) = refusal.clone()
        && !(result.overridable() && ctx.override_reason.is_some())
    {
        let mut out = ctx.outcome(result, Some(entry), reason);
        out.explanation = explanation;
        return Ok(ctx.answer(out, Some(entry)));
    }
    let capacity = ctx
        .at
        .and_then(|g| g.capacity)
        .filter(|_| ctx.override_reason.is_none());
    let via = ctx.at.map(|g| g.id);
    // `None`: memory says inside already; the write asks the database.
    let before = match entry.claim(ctx.gate, ctx.now, via, single, capacity) {
        Claim::Claimed(before) => Some(before),
        Claim::Recheck => None,
        Claim::Already(first) => {
            let out = ctx.outcome(
                ScanResult::AlreadyAdmitted,
                Some(entry),
                format!("already admitted at {}", ctx.when(first)),
            );
            return Ok(ctx.answer(out, Some(entry)));
        }
        Claim::Full => {
            let cap = capacity.unwrap_or_default();
            let out = ctx.outcome(
                ScanResult::GateFull,
                Some(entry),
                format!("the gate is full ({cap} inside)"),
            );
            return Ok(ctx.answer(out, Some(entry)));
        }
    };
    let t = ctx.tenant;
    let mut out = ctx.outcome(
        ScanResult::Admitted,
        Some(entry),
        match presence.entries.len() {
            0 if ctx.device.is_none() => "checked in at the box office".to_string(),
            0 => "admitted".to_string(),
            n => format!("admitted again (entry {})", n + 1),
        },
    );
    out.overridden = overridden;
    if let Some(first) = entry.admitted() {
        out.first_admitted_at = Some(clock::rfc3339(first));
    }
    // The device's change, for the audit log: written with the admission,
    // in its batch's transaction, only if it admits.
    let audit = kernel::audit::Entry {
        org: t.org().0,
        actor_kind: ctx.by.0,
        actor_id: ctx
            .by
            .1
            .clone()
            .or_else(|| ctx.device.map(|d| d.to_string())),
        action: if ctx.device.is_none() {
            "ticket.check_in"
        } else if overridden {
            "ticket.admit_override"
        } else {
            "ticket.admit"
        },
        object_type: "ticket",
        object_id: Some(rec.id.to_string()),
        before: None,
        after: Some(serde_json::json!({
            "event_id": ctx.event,
            "gate": ctx.label,
            "overrode": refusal.as_ref().map(|r| r.0.as_str()),
            "override_reason": ctx.override_reason.as_ref().filter(|_| overridden || ctx.device.is_none()),
        })),
    }
    .row(&kernel::audit::context(), ctx.now);
    let write = tickets::admission(
        t,
        rec.id,
        ctx.now,
        ctx.device,
        ctx.label.clone(),
        via,
        single,
    );
    let mut job = ctx.admission(Write::Enter(write), Some(entry), &out);
    job.audit = Some(audit);
    job.reentry = before.as_ref().is_none_or(|b| b.first != 0);
    let gates = ctx.app.state::<Gates>();
    match Box::pin(gates.writer.try_submit(job)).await {
        Ok(Written::Entry(tickets::Admit::Admitted)) => {
            metrics::counter!("voelgoed_admissions_total").increment(1);
            if before.is_none() {
                entry.reentered(ctx.gate, ctx.now, via);
            }
            out.inside = ctx.at.map(|g| ctx.gate.inside(g.id));
            Ok(out)
        }
        Ok(Written::Entry(tickets::Admit::Before(first))) => {
            if before.is_some() {
                entry.settle_before(ctx.gate, first, via);
            }
            Ok(ctx.outcome(
                ScanResult::AlreadyAdmitted,
                Some(entry),
                format!("already admitted at {}", ctx.when(first)),
            ))
        }
        Ok(Written::Entry(tickets::Admit::Revoked)) => {
            if let Some(before) = before {
                entry.undo(ctx.gate, before, via);
            }
            entry
                .revoked
                .store(true, std::sync::atomic::Ordering::Release);
            Ok(ctx.outcome(
                ScanResult::Revoked,
                Some(entry),
                "the ticket was revoked".into(),
            ))
        }
        Ok(Written::Done) | Err(_) => {
            if let Some(before) = before {
                entry.undo(ctx.gate, before, via);
            }
            tracing::warn!("an admission was not written");
            Err(Error::Busy)
        }
    }
}

/// An exit at an `in_out` gate: always recorded, answered once durable.
/// Should the write fail, memory says "out" while the database says
/// "inside": the next entry's write is refused and puts memory right.
async fn exit(ctx: &Ctx<'_>, entry: &Entry) -> Result<ScanOutcome> {
    entry.exit(ctx.gate);
    let out = ctx.outcome(ScanResult::Exited, Some(entry), "exited".into());
    let job = ctx.admission(Write::Exit, Some(entry), &out);
    match Box::pin(ctx.app.state::<Gates>().writer.try_submit(job)).await {
        Ok(_) => Ok(ScanOutcome {
            inside: ctx.at.map(|g| ctx.gate.inside(g.id)),
            ..out
        }),
        Err(_) => Err(Error::Busy),
    }
}

/// A scan as the log shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScanLogItem {
    pub id: ScanId,
    pub device_id: Option<DeviceId>,
    pub gate_id: Option<GateId>,
    pub ticket_id: Option<kernel::ids::TicketId>,
    /// `in` or `out`.
    pub direction: String,
    pub result: String,
    pub reason: String,
    pub explanation: Option<String>,
    /// A supervisor admitted despite a refusal, for this reason.
    pub override_reason: Option<String>,
    pub scanned_at: String,
}

/// A page of an event's scan log, oldest first (a cursor follows it as
/// it grows).
pub async fn scan_log(
    app: &App,
    actor: &Actor,
    event: EventId,
    after: Option<ScanId>,
    ticket: Option<kernel::ids::TicketId>,
    limit: i64,
) -> Result<Vec<ScanLogItem>> {
    let t = actor.require(Permission::EventsRead)?;
    if crate::events::catalog(app, t, event).await?.is_none() {
        return Err(Error::NotFound);
    }
    Ok(store::scans(app.db(), t, event, after, ticket, limit)
        .await?
        .into_iter()
        .map(|r| ScanLogItem {
            id: r.id,
            device_id: r.device_id,
            gate_id: r.gate_id,
            ticket_id: r.ticket_id,
            direction: r.direction,
            result: r.result,
            reason: r.reason,
            explanation: r.explanation,
            override_reason: r.override_reason,
            scanned_at: clock::rfc3339(r.scanned_at),
        })
        .collect())
}

/// A supervisor device's lookup (see the box office's).
pub async fn device_lookup(
    app: &App,
    device: &Device,
    event: EventId,
    q: &str,
    limit: i64,
) -> Result<Vec<super::box_office::BoxOfficeTicket>> {
    let scope = device_scope(app, device).await?;
    if !scope.events.contains(&event) {
        return Err(Error::NotThisDevicesEvent);
    }
    if !scope.supervisor {
        return Err(Error::Api(kernel::ApiError::Forbidden(
            "only a supervisor device may look tickets up".into(),
        )));
    }
    super::box_office::find_for(app, device.tenant(), event, q, limit).await
}

/// The gates a device may scan at, for its app to choose from.
pub async fn device_gates(app: &App, d: &Device) -> Result<Vec<super::setup::GateView>> {
    let scope = device_scope(app, d).await?;
    let now = app.kernel.now();
    let mut out = Vec::new();
    for e in &scope.events {
        let gates = super::setup::for_event(app.db(), d.tenant(), *e).await?;
        if gates.is_empty() {
            continue;
        }
        let figures = super::setup::figures(app.db(), d.tenant(), *e, now).await?;
        for g in gates {
            if scope.gates.is_empty() || scope.gates.contains(&g.id) {
                out.push(g.view(figures.get(&g.id).cloned().unwrap_or_default()));
            }
        }
    }
    Ok(out)
}
