//! The gate's hot tier: per event, every issued code → its ticket and its
//! admission state; the devices' scanning scope; and the admission writer,
//! which makes admissions durable in batches (the kernel's batcher: one
//! commit for many concurrent scans).

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Duration,
};

use dashmap::DashMap;
use kernel::{
    ApiError, ApiResult, Db, Kernel,
    batch::{Batcher, RunBatch},
    events::{Pending, record_many},
    ids::{DeviceId, EventId, OrgId, TicketId},
    pubsub::Message,
    tenant::event_topic,
};
use tokio::sync::broadcast;

use super::TicketAdmitted;
use crate::{
    App,
    identity::Tenant,
    tickets::{self, AdmissionWrite, Admit, OrgKeys, TicketRecord, TicketRevoked},
};

/// One ticket at the gate. `admitted_at` is 0 until admitted, then the
/// admission time in microseconds; it changes from 0 exactly once.
pub struct Entry {
    pub record: TicketRecord,
    pub admitted_at: AtomicI64,
    /// Revoked since it was loaded (its order refunded or cancelled).
    pub revoked: AtomicBool,
}

pub struct Gate {
    pub ends_at: i64,
    pub keys: Arc<OrgKeys>,
    pub tickets: DashMap<String, Arc<Entry>>,
    by_id: DashMap<TicketId, Arc<Entry>>,
}

impl Gate {
    pub fn insert(&self, record: TicketRecord) -> Arc<Entry> {
        let admitted = record.admitted_at.unwrap_or(0);
        let id = record.id;
        let entry = self
            .tickets
            .entry(record.code.clone())
            .or_insert_with(|| {
                Arc::new(Entry {
                    record,
                    admitted_at: AtomicI64::new(admitted),
                    revoked: AtomicBool::new(false),
                })
            })
            .clone();
        self.by_id.insert(id, entry.clone());
        entry
    }
}

/// An admission waiting for the writer.
pub struct Admission {
    pub write: AdmissionWrite,
    pub event: EventId,
    /// The audit log's row for it (`kernel::audit::Entry::row`).
    pub audit: Vec<kernel::db::Val>,
}

/// A device's scanning scope.
#[derive(Debug)]
pub struct DeviceScope {
    pub name: String,
    pub events: Vec<EventId>,
}

pub struct Gates {
    gates: moka::future::Cache<(OrgId, EventId), Arc<Gate>>,
    pub(super) devices: moka::future::Cache<(OrgId, DeviceId), Arc<DeviceScope>>,
    pub(super) writer: Batcher<Admission, Admit, sqlx::Error>,
}

/// How many admissions wait for the writer before scans are shed with 503.
const QUEUE: usize = 16_384;
const BATCH: usize = 512;

impl Gates {
    pub fn new(kernel: &Kernel) -> Gates {
        let writers = match kernel.db.backend() {
            kernel::Backend::Sqlite => 1,
            kernel::Backend::Postgres => 4,
        };
        let (db, clock) = (kernel.db.clone(), kernel.clock.clone());
        let run: RunBatch<Admission, Admit, sqlx::Error> =
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

    async fn load(&self, app: &App, t: &Tenant, event: EventId) -> ApiResult<Arc<Gate>> {
        let (app2, t2) = (app.clone(), t.clone());
        self.gates
            .try_get_with((t.org(), event), async move {
                let catalog = crate::events::catalog(&app2, &t2, event)
                    .await?
                    .ok_or(ApiError::NotFound)?;
                let keys = tickets::org_keys(&app2, &t2).await?;
                // Subscribe before loading, so no admission falls between.
                let rx = app2.kernel.hub.subscribe(&event_topic(t2.org(), event));
                let gate = Gate {
                    ends_at: catalog.event.ends_at_micros,
                    keys,
                    tickets: DashMap::new(),
                    by_id: DashMap::new(),
                };
                for rec in tickets::for_event(&app2, &t2, event).await? {
                    gate.insert(rec);
                }
                let gate = Arc::new(gate);
                tokio::spawn(follow_admissions(Arc::downgrade(&gate), rx));
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

/// Keeps a gate's admission states in step with admissions made on other
/// nodes, from their `ticket.admitted` events (this node's own admissions
/// went through this gate's entries already), and with revocations from
/// any node (`ticket.revoked`). Only a hint: a stale entry costs one trip
/// to the database, which still decides.
async fn follow_admissions(gate: Weak<Gate>, mut rx: broadcast::Receiver<Message>) {
    loop {
        match rx.recv().await {
            Ok(msg) => {
                let Some(gate) = gate.upgrade() else { return };
                if let Some(revoked) = msg.decode::<TicketRevoked>() {
                    if let Some(entry) = gate.by_id.get(&revoked.data().ticket_id) {
                        entry.revoked.store(true, Ordering::Release);
                    }
                    continue;
                }
                if !msg.from_another_node {
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
                    let _ = entry.claim(at);
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Commits a batch of admissions with their `ticket.admitted` events in one
/// transaction; per admission, what the database said.
async fn commit(db: &Db, batch: &[Admission], now: i64) -> Result<Vec<Admit>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let writes: Vec<&AdmissionWrite> = batch.iter().map(|a| &a.write).collect();
    let results = tickets::mark_admitted_batch(&mut tx, &writes).await?;
    let mut events = Vec::new();
    let mut audit = Vec::new();
    for (a, earlier) in batch.iter().zip(&results) {
        if *earlier == Admit::Admitted {
            audit.push(a.audit.clone());
            let admitted = TicketAdmitted {
                org_id: a.write.org,
                event_id: a.event,
                ticket_id: a.write.ticket,
                device_id: a.write.device,
                gate: a.write.gate.clone(),
                admitted_at: kernel::clock::rfc3339(a.write.at),
            };
            events.push(Pending::of(&admitted, now).map_err(|e| sqlx::Error::Encode(Box::new(e)))?);
        }
    }
    record_many(&mut tx, &events).await?;
    if let Some(stmt) = kernel::audit::stmt_many(audit) {
        stmt.execute_in(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(results)
}

impl Entry {
    pub fn admitted(&self) -> Option<i64> {
        match self.admitted_at.load(Ordering::Acquire) {
            0 => None,
            t => Some(t),
        }
    }

    /// Claims the admission for `at`; the earlier time when already taken.
    pub fn claim(&self, at: i64) -> Result<(), i64> {
        self.admitted_at
            .compare_exchange(0, at, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
    }

    pub fn settle(&self, at: i64) {
        self.admitted_at.store(at, Ordering::Release);
    }
}
