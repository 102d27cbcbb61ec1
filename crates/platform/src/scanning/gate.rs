//! The gate's hot tier: per event, every issued code → its ticket and its
//! presence (first admission, inside or not, entry times); the event's gate
//! setups and how many are inside through each; the devices' scanning scope;
//! and the writer, which makes admissions, exits and the scan log durable in
//! batches (the kernel's batcher: one commit for many concurrent scans).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock, Weak,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Duration,
};

use dashmap::DashMap;
use kernel::{
    ApiError, ApiResult, Db, Kernel, Stmt,
    batch::{Batcher, RunBatch},
    db::Val,
    events::{Pending, record_many},
    ids::{DeviceId, EventId, GateId, OrgId, ScanId, TicketId, TicketTypeId},
    pubsub::Message,
    tenant::event_topic,
};
use tokio::sync::broadcast;

use super::{
    GateChanged, TicketAdmissionUndone, TicketAdmitted, TicketExited, setup::GateSetup, store,
};
use crate::{
    App,
    identity::Tenant,
    tickets::{self, AdmissionWrite, Admit, TicketRecord, TicketRevoked},
};

/// Where a ticket stands at the event.
#[derive(Clone, Debug, Default)]
pub struct Presence {
    /// The first admission ever (microseconds), 0 until then.
    pub first: i64,
    /// Came in and has not gone out through an `in_out` gate.
    pub inside: bool,
    /// The gate it came in through, while inside.
    pub gate: Option<GateId>,
    /// Every entry's time, oldest first.
    pub entries: Vec<i64>,
}

/// One ticket at the gate. Its presence changes under its lock: a claim
/// marks it inside before the write is durable, so a second scan of the
/// same ticket on this node is refused at once; a failed write undoes it.
pub struct Entry {
    pub record: TicketRecord,
    presence: Mutex<Presence>,
    /// Revoked since it was loaded (its order refunded or cancelled).
    pub revoked: AtomicBool,
}

/// An event's setup at the gate: when it ends, its time zone, its gates.
pub struct EventSetup {
    pub ends_at: i64,
    pub tz: jiff::tz::TimeZone,
    pub gates: Vec<GateSetup>,
    /// Ticket types with a validity window of their own: (from, until).
    pub windows: HashMap<TicketTypeId, (Option<i64>, Option<i64>)>,
}

impl EventSetup {
    pub fn gate(&self, id: GateId) -> Option<&GateSetup> {
        self.gates.iter().find(|g| g.id == id)
    }
}

pub struct Gate {
    setup: RwLock<Arc<EventSetup>>,
    pub tickets: DashMap<String, Arc<Entry>>,
    by_id: DashMap<TicketId, Arc<Entry>>,
    /// Per gate, the tickets inside that came in through it.
    inside: DashMap<GateId, AtomicI64>,
}

impl Gate {
    pub fn insert(&self, record: TicketRecord) -> Arc<Entry> {
        let first = record.admitted_at.unwrap_or(0);
        let id = record.id;
        let entry = self
            .tickets
            .entry(record.code.clone())
            .or_insert_with(|| {
                Arc::new(Entry {
                    record,
                    presence: Mutex::new(Presence {
                        first,
                        entries: if first != 0 { vec![first] } else { Vec::new() },
                        ..Presence::default()
                    }),
                    revoked: AtomicBool::new(false),
                })
            })
            .clone();
        self.by_id.insert(id, entry.clone());
        entry
    }

    pub fn setup(&self) -> Arc<EventSetup> {
        self.setup
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_setup(&self, s: EventSetup) {
        *self
            .setup
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(s);
    }

    /// The ticket `id`, if this gate has it.
    pub fn entry(&self, id: TicketId) -> Option<Arc<Entry>> {
        self.by_id.get(&id).map(|e| e.clone())
    }

    /// How many are inside through `gate`.
    pub fn inside(&self, gate: GateId) -> i64 {
        self.inside
            .get(&gate)
            .map_or(0, |n| n.load(Ordering::Acquire))
    }

    fn count(&self, gate: Option<GateId>, by: i64) {
        if let Some(g) = gate {
            self.inside
                .entry(g)
                .or_insert_with(|| AtomicI64::new(0))
                .fetch_add(by, Ordering::AcqRel);
        }
    }
}

/// What a claim found or did.
pub enum Claim {
    /// Claimed: the write decides; `undo` puts it back if the write fails.
    Claimed(Presence),
    /// Admitted before, at a `single` gate: when first.
    Already(i64),
    /// Inside, as this node knows, at an `in_out` gate: the database is
    /// asked (an exit on another node may not have reached this one yet).
    Recheck,
    /// The gate is full.
    Full,
}

impl Entry {
    pub fn presence(&self) -> Presence {
        self.presence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Presence) -> T) -> T {
        f(&mut self
            .presence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Claims an entry at `at` through `gate`: once ever when `single`,
    /// else whenever it is not inside; refused when `capacity` is reached.
    pub fn claim(
        &self,
        gate: &Gate,
        at: i64,
        via: Option<GateId>,
        single: bool,
        capacity: Option<i64>,
    ) -> Claim {
        self.with(|p| {
            if single && p.first != 0 {
                return Claim::Already(p.first);
            }
            if !single && p.inside {
                return Claim::Recheck;
            }
            if let (Some(cap), Some(g)) = (capacity, via)
                && gate.inside(g) >= cap
            {
                return Claim::Full;
            }
            let before = p.clone();
            if p.first == 0 {
                p.first = at;
            }
            p.inside = true;
            p.gate = via;
            p.entries.push(at);
            gate.count(via, 1);
            Claim::Claimed(before)
        })
    }

    /// Puts back the presence a failed claim changed.
    pub fn undo(&self, gate: &Gate, before: Presence, via: Option<GateId>) {
        self.with(|p| *p = before);
        gate.count(via, -1);
    }

    /// The database said it was admitted before (at `first`), or is inside
    /// already: the claim's entry did not happen.
    pub fn settle_before(&self, gate: &Gate, first: i64, via: Option<GateId>) {
        self.with(|p| {
            p.first = first;
            p.entries.pop();
            p.inside = true;
        });
        gate.count(via, -1);
    }

    /// Gone out (an exit scan, here or on another node).
    pub fn exit(&self, gate: &Gate) {
        let via = self.with(|p| {
            let via = p.gate.take().filter(|_| p.inside);
            let was = p.inside;
            p.inside = false;
            (was, via)
        });
        if let (true, via) = via {
            gate.count(via, -1);
        }
    }

    /// Came in at `at` through `via` while this node thought it inside
    /// (it went out elsewhere, and the database let it in again).
    pub fn reentered(&self, gate: &Gate, at: i64, via: Option<GateId>) {
        let old = self.with(|p| {
            let old = p.gate.filter(|_| p.inside);
            let was = p.inside;
            p.inside = true;
            p.gate = via;
            p.entries.push(at);
            (was, old)
        });
        if let (true, old) = old {
            gate.count(old, -1);
        }
        gate.count(via, 1);
    }

    /// Came in on another node.
    fn entered_elsewhere(&self, gate: &Gate, at: i64, via: Option<GateId>) {
        let counted = self.with(|p| {
            if p.first == 0 || at < p.first {
                p.first = at;
            }
            if !p.entries.contains(&at) {
                p.entries.push(at);
                p.entries.sort_unstable();
            }
            let was = p.inside;
            p.inside = true;
            p.gate = via;
            !was
        });
        if counted {
            gate.count(via, 1);
        }
    }

    /// Its admission was undone at the box office: as if never scanned.
    fn undone(&self, gate: &Gate) {
        let via = self.with(|p| {
            let via = (p.inside, p.gate.take());
            *p = Presence::default();
            via
        });
        if let (true, via) = via {
            gate.count(via, -1);
        }
    }

    pub fn admitted(&self) -> Option<i64> {
        match self.with(|p| p.first) {
            0 => None,
            t => Some(t),
        }
    }
}

/// What the writer makes durable for one scan.
pub enum Write {
    /// An entry: the database decides whether it happens.
    Enter(AdmissionWrite),
    /// An exit at an `in_out` gate.
    Exit,
}

/// A scan waiting for the writer.
pub struct Admission {
    pub write: Write,
    pub org: OrgId,
    pub event: EventId,
    pub ticket: Option<TicketId>,
    /// `None`: checked in at the box office.
    pub device: Option<DeviceId>,
    pub gate_id: Option<GateId>,
    /// An entry after an exit (the ticket was admitted before).
    pub reentry: bool,
    /// The audit log's row for an entry or an override (`kernel::audit::Entry::row`).
    pub audit: Option<Vec<Val>>,
    /// The scan log's row, less its result, reason and explanation
    /// (an entry's are known only after the write).
    pub log: LogRow,
}

/// A scan as the log keeps it.
#[derive(Clone, Debug)]
pub struct LogRow {
    pub id: ScanId,
    pub direction: &'static str,
    pub result: &'static str,
    pub reason: String,
    pub explanation: Option<String>,
    pub override_reason: Option<String>,
    pub at: i64,
}

/// What the writer says to one scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written {
    Entry(Admit),
    Done,
}

/// A device's scanning scope.
#[derive(Debug)]
pub struct DeviceScope {
    pub name: String,
    pub events: Vec<EventId>,
    /// Empty: any gate of its events.
    pub gates: Vec<GateId>,
    pub supervisor: bool,
}

pub struct Gates {
    gates: moka::future::Cache<(OrgId, EventId), Arc<Gate>>,
    pub(super) devices: moka::future::Cache<(OrgId, DeviceId), Arc<DeviceScope>>,
    pub(super) writer: Batcher<Admission, Written, sqlx::Error>,
    /// Scan log rows of scans decided in memory (refusals), written behind
    /// the answers in large batches.
    pub(super) log: tokio::sync::mpsc::Sender<Vec<Val>>,
}

/// How many refusals' log rows wait before more are dropped (and counted).
const LOG_QUEUE: usize = 65_536;
/// Rows per insert (under SQLite's and PostgreSQL's bound-value limits).
const LOG_BATCH: usize = 1_000;

/// Writes refusals' log rows as they come, as many per insert as have
/// queued meanwhile.
async fn write_log(db: Db, mut rx: tokio::sync::mpsc::Receiver<Vec<Val>>) {
    while let Some(first) = rx.recv().await {
        let mut rows = vec![first];
        while rows.len() < LOG_BATCH {
            match rx.try_recv() {
                Ok(r) => rows.push(r),
                Err(_) => break,
            }
        }
        let n = rows.len() as u64;
        if let Err(e) = db
            .write_grouped(vec![Stmt::insert_rows(SCANS_HEAD, rows)])
            .await
        {
            tracing::warn!(error = %e, rows = n, "scan log rows were not written");
            metrics::counter!("voelgoed_scan_log_dropped_total").increment(n);
        }
    }
}

/// How many scans wait for the writer before scans are shed with 503.
const QUEUE: usize = 16_384;
const BATCH: usize = 512;

impl Gates {
    pub fn new(kernel: &Kernel) -> Gates {
        let writers = match kernel.db.backend() {
            kernel::Backend::Sqlite => 1,
            kernel::Backend::Postgres => 4,
        };
        let (db, clock) = (kernel.db.clone(), kernel.clock.clone());
        let run: RunBatch<Admission, Written, sqlx::Error> =
            Arc::new(move |batch: &[Admission]| {
                let (db, now) = (db.clone(), clock.now());
                Box::pin(async move { commit(&db, batch, now).await })
            });
        Gates {
            gates: moka::future::Cache::builder()
                .max_capacity(1_000)
                .time_to_idle(Duration::from_secs(6 * 3600))
                .build(),
            devices: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
            writer: Batcher::start(QUEUE, writers, BATCH, run),
            log: {
                let (tx, rx) = tokio::sync::mpsc::channel(LOG_QUEUE);
                tokio::spawn(write_log(kernel.db.clone(), rx));
                tx
            },
        }
    }

    /// The event's gate, loading its tickets once however many scan at once.
    pub(super) async fn gate(&self, app: &App, t: &Tenant, event: EventId) -> ApiResult<Arc<Gate>> {
        // The hit path: no loader future is built, and the (large) loading
        // future lives on the heap, so a scan's own future stays small.
        if let Some(gate) = self.gates.get(&(t.org(), event)).await {
            return Ok(gate);
        }
        Box::pin(self.load(app, t, event)).await
    }

    /// Forgets a device's scope on this node (it changed).
    pub(super) async fn forget_device(&self, org: OrgId, device: DeviceId) {
        self.devices.invalidate(&(org, device)).await;
    }

    async fn load(&self, app: &App, t: &Tenant, event: EventId) -> ApiResult<Arc<Gate>> {
        let (app2, t2) = (app.clone(), t.clone());
        self.gates
            .try_get_with((t.org(), event), async move {
                // Subscribe before loading, so no admission falls between.
                let rx = app2.kernel.hub.subscribe(&event_topic(t2.org(), event));
                let setup = event_setup(&app2, &t2, event).await?;
                let gate = Gate {
                    setup: RwLock::new(Arc::new(setup)),
                    tickets: DashMap::new(),
                    by_id: DashMap::new(),
                    inside: DashMap::new(),
                };
                for rec in tickets::for_event(&app2, &t2, event).await? {
                    gate.insert(rec);
                }
                let mut entries: HashMap<TicketId, Vec<i64>> = HashMap::new();
                for (ticket, at, undone) in store::entries_for_event(app2.db(), &t2, event).await? {
                    let times = entries.entry(ticket).or_default();
                    if undone {
                        // Undone at the box office: as if never scanned.
                        times.clear();
                    } else {
                        times.push(at);
                    }
                }
                for (ticket, times) in entries {
                    if let Some(e) = gate.by_id.get(&ticket) {
                        e.with(|p| p.entries = times);
                    }
                }
                for (ticket, via) in tickets::presence_for_event(&app2, &t2, event).await? {
                    if let Some(e) = gate.by_id.get(&ticket) {
                        e.with(|p| {
                            p.inside = true;
                            p.gate = via;
                        });
                        gate.count(via, 1);
                    }
                }
                let gate = Arc::new(gate);
                tokio::spawn(follow(
                    app2.clone(),
                    t2.clone(),
                    event,
                    Arc::downgrade(&gate),
                    rx,
                ));
                Ok::<_, ApiError>(gate)
            })
            .await
            .map_err(|e| match &*e {
                ApiError::NotFound => ApiError::NotFound,
                ApiError::Overloaded { retry_after_secs } => ApiError::Overloaded {
                    retry_after_secs: *retry_after_secs,
                },
                other => ApiError::internal(other),
            })
    }
}

async fn event_setup(app: &App, t: &Tenant, event: EventId) -> ApiResult<EventSetup> {
    let catalog = crate::events::catalog(app, t, event)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(EventSetup {
        ends_at: catalog.event.ends_at_micros,
        tz: jiff::tz::TimeZone::get(&catalog.event.timezone).unwrap_or(jiff::tz::TimeZone::UTC),
        gates: super::setup::for_event(app.db(), t, event).await?,
        windows: crate::events::validity_windows(app, t, event)
            .await?
            .into_iter()
            .collect(),
    })
}

/// Keeps a gate in step with what other nodes did (`ticket.admitted`,
/// `ticket.exited`; this node's own went through this gate's entries
/// already), with revocations from any node (`ticket.revoked`), and with
/// its setup (`gate.changed`, reloaded from the database). Only a hint for
/// admissions: a stale entry costs one trip to the database, which decides.
async fn follow(
    app: App,
    t: Tenant,
    event: EventId,
    gate: Weak<Gate>,
    mut rx: broadcast::Receiver<Message>,
) {
    loop {
        match rx.recv().await {
            Ok(msg) => {
                let Some(gate) = gate.upgrade() else { return };
                if msg.decode::<GateChanged>().is_some()
                    || msg.decode::<crate::events::TicketTypeUpdated>().is_some()
                {
                    match event_setup(&app, &t, event).await {
                        Ok(s) => gate.set_setup(s),
                        Err(e) => tracing::warn!(error = %e, "a gate's setup did not reload"),
                    }
                    continue;
                }
                if let Some(revoked) = msg.decode::<TicketRevoked>() {
                    if let Some(entry) = gate.by_id.get(&revoked.data().ticket_id) {
                        entry.revoked.store(true, Ordering::Release);
                    }
                    continue;
                }
                if let Some(undone) = msg.decode::<TicketAdmissionUndone>() {
                    if let Some(entry) = gate.by_id.get(&undone.data().ticket_id) {
                        entry.undone(&gate);
                    }
                    continue;
                }
                if !msg.from_another_node {
                    continue;
                }
                if let Some(exited) = msg.decode::<TicketExited>() {
                    if let Some(entry) = gate.by_id.get(&exited.data().ticket_id) {
                        entry.exit(&gate);
                    }
                    continue;
                }
                let Some(admitted) = msg.decode::<TicketAdmitted>() else {
                    continue;
                };
                let a = admitted.data();
                if let (Some(at), Some(entry)) = (
                    kernel::clock::parse_rfc3339(&a.admitted_at),
                    gate.by_id.get(&a.ticket_id),
                ) {
                    entry.entered_elsewhere(&gate, at, a.gate_id);
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

pub(super) const SCANS_HEAD: &str = "INSERT INTO scans (org_id, id, event_id, device_id, gate_id, ticket_id, direction, result, reason, explanation, override_reason, scanned_at)";

/// A scan log row (`SCANS_HEAD`'s columns), with its result and reason.
#[allow(clippy::too_many_arguments)]
pub(super) fn scan_row(
    org: OrgId,
    event: EventId,
    device: Option<DeviceId>,
    gate: Option<GateId>,
    ticket: Option<TicketId>,
    log: &LogRow,
    result: &str,
    reason: &str,
) -> Vec<Val> {
    vec![
        org.into(),
        log.id.into(),
        event.into(),
        Val::Uuid(device.map(|d| d.0)),
        Val::Uuid(gate.map(|g| g.0)),
        Val::Uuid(ticket.map(|t| t.0)),
        log.direction.into(),
        result.into(),
        reason.into(),
        log.explanation.clone().into(),
        log.override_reason.clone().into(),
        log.at.into(),
    ]
}

/// The log row of a scan the writer makes durable, with its result.
fn log_row(a: &Admission, result: &str, reason: &str) -> Vec<Val> {
    scan_row(
        a.org, a.event, a.device, a.gate_id, a.ticket, &a.log, result, reason,
    )
}

/// Commits a batch of scans in one transaction: the entries (the database
/// decides each), the exits, every scan's log row, the `ticket.admitted` and
/// `ticket.exited` events and the audit rows; per scan, what happened.
async fn commit(db: &Db, batch: &[Admission], now: i64) -> Result<Vec<Written>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let enters: Vec<&AdmissionWrite> = batch
        .iter()
        .filter_map(|a| match &a.write {
            Write::Enter(w) => Some(w),
            _ => None,
        })
        .collect();
    let mut results = tickets::mark_admitted_batch(&mut tx, &enters)
        .await?
        .into_iter();
    let exits: Vec<(OrgId, TicketId)> = batch
        .iter()
        .filter(|a| matches!(a.write, Write::Exit))
        .filter_map(|a| Some((a.org, a.ticket?)))
        .collect();
    tickets::mark_exited_batch(&mut tx, &exits).await?;
    let mut out = Vec::with_capacity(batch.len());
    let mut events = Vec::new();
    let mut audit = Vec::new();
    let mut log = Vec::with_capacity(batch.len());
    let pending =
        |e: Result<Pending, serde_json::Error>| e.map_err(|e| sqlx::Error::Encode(Box::new(e)));
    for a in batch {
        match &a.write {
            Write::Enter(w) => {
                let r = results.next().unwrap_or(Admit::Before(w.at));
                match r {
                    Admit::Admitted => {
                        audit.extend(a.audit.clone());
                        log.push(log_row(a, a.log.result, &a.log.reason));
                        events.push(pending(Pending::of(
                            &TicketAdmitted {
                                org_id: w.org,
                                event_id: a.event,
                                ticket_id: w.ticket,
                                device_id: w.device,
                                gate: w.gate.clone(),
                                gate_id: w.gate_id,
                                admitted_at: kernel::clock::rfc3339(w.at),
                                reentry: a.reentry,
                            },
                            now,
                        ))?);
                    }
                    Admit::Before(_) => log.push(log_row(a, "already_admitted", "already inside")),
                    Admit::Revoked => log.push(log_row(a, "revoked", "the ticket was revoked")),
                }
                out.push(Written::Entry(r));
            }
            Write::Exit => {
                log.push(log_row(a, a.log.result, &a.log.reason));
                if let (Some(ticket), Some(device)) = (a.ticket, a.device) {
                    events.push(pending(Pending::of(
                        &TicketExited {
                            org_id: a.org,
                            event_id: a.event,
                            ticket_id: ticket,
                            device_id: device,
                            gate_id: a.gate_id,
                            exited_at: kernel::clock::rfc3339(a.log.at),
                        },
                        now,
                    ))?);
                }
                out.push(Written::Done);
            }
        }
    }
    record_many(&mut tx, &events).await?;
    if let Some(stmt) = kernel::audit::stmt_many(audit) {
        stmt.execute_in(&mut tx).await?;
    }
    if !log.is_empty() {
        Stmt::insert_rows(SCANS_HEAD, log)
            .execute_in(&mut tx)
            .await?;
    }
    tx.commit().await?;
    Ok(out)
}
