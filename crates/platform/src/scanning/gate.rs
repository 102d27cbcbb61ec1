//! The gate's hot tier: per event, every issued code → its ticket and its
//! admission state; and the admission writer, which makes admissions durable
//! in batches (one commit for many concurrent scans).

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use dashmap::DashMap;
use kernel::{
    ApiError, ApiResult, Kernel,
    ids::{EventId, OrgId, TicketId},
    outbox,
    pubsub::Message,
    tenant::event_topic,
};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot};

use crate::{
    App,
    tickets::{self, AdmissionWrite, OrgKeys, TicketRecord},
};

/// One ticket at the gate. `admitted_at` is 0 until admitted, then the
/// admission time in microseconds; it changes from 0 exactly once.
pub struct Entry {
    pub record: TicketRecord,
    pub admitted_at: AtomicI64,
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
                })
            })
            .clone();
        self.by_id.insert(id, entry.clone());
        entry
    }
}

pub(super) struct Job {
    pub write: AdmissionWrite,
    pub event: EventId,
    pub reply: oneshot::Sender<Result<Option<i64>, String>>,
}

pub struct Gates {
    gates: moka::future::Cache<(OrgId, EventId), Arc<Gate>>,
    pub(super) devices: moka::future::Cache<Vec<u8>, Arc<super::domain::DeviceCtx>>,
    pub(super) writer: mpsc::Sender<Job>,
    inbox: Arc<Mutex<mpsc::Receiver<Job>>>,
}

/// How many admissions wait for the writer before scans are shed with 503.
const QUEUE: usize = 16_384;
const BATCH: usize = 512;

impl Gates {
    pub fn new(_kernel: &Kernel) -> Gates {
        let (tx, rx) = mpsc::channel(QUEUE);
        Gates {
            gates: moka::future::Cache::builder()
                .max_capacity(1_000)
                .time_to_idle(Duration::from_secs(6 * 3600))
                .build(),
            devices: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
            writer: tx,
            inbox: Arc::new(Mutex::new(rx)),
        }
    }

    /// The event's gate, loading its tickets once however many scan at once.
    pub(super) async fn gate(&self, app: &App, org: OrgId, event: EventId) -> ApiResult<Arc<Gate>> {
        // The hit path: no loader future is built.
        if let Some(gate) = self.gates.get(&(org, event)).await {
            return Ok(gate);
        }
        let app2 = app.clone();
        self.gates
            .try_get_with((org, event), async move {
                let catalog = crate::events::catalog(&app2, org, event)
                    .await?
                    .ok_or(ApiError::NotFound)?;
                let keys = tickets::org_keys(&app2, org).await?;
                // Subscribe before loading, so no admission falls between.
                let rx = app2.kernel.hub.subscribe(&event_topic(org, event));
                let gate = Gate {
                    ends_at: catalog.event.ends_at_micros,
                    keys,
                    tickets: DashMap::new(),
                    by_id: DashMap::new(),
                };
                for rec in tickets::for_event(&app2, org, event).await? {
                    gate.insert(rec);
                }
                let gate = Arc::new(gate);
                tokio::spawn(follow_admissions(Arc::downgrade(&gate), rx));
                Ok::<_, ApiError>(gate)
            })
            .await
            .map_err(|e| match &*e {
                ApiError::NotFound => ApiError::NotFound,
                other => ApiError::internal(other),
            })
    }
}

/// Keeps a gate's admission states in step with admissions made elsewhere
/// (other nodes, other gates), from `ticket.admitted` events. Only a hint:
/// a stale entry costs one trip to the database, which still decides.
async fn follow_admissions(gate: Weak<Gate>, mut rx: broadcast::Receiver<Message>) {
    loop {
        match rx.recv().await {
            Ok(msg) => {
                let Some(gate) = gate.upgrade() else { return };
                if msg.kind != "ticket.admitted" {
                    continue;
                }
                let id = msg.payload["ticket"]
                    .as_str()
                    .and_then(|s| s.parse::<TicketId>().ok());
                let at = msg.payload["admitted_at"]
                    .as_str()
                    .and_then(kernel::clock::parse_rfc3339);
                if let (Some(id), Some(at)) = (id, at)
                    && let Some(entry) = gate.by_id.get(&id)
                {
                    let _ = entry.claim(at);
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Starts the admission writers: each drains up to `BATCH` waiting
/// admissions and commits them in one transaction.
pub fn start_writers(app: &App, writers: usize) -> Vec<tokio::task::JoinHandle<()>> {
    (0..writers.max(1))
        .map(|_| {
            let app = app.clone();
            let inbox = app.gates.inbox.clone();
            tokio::spawn(async move {
                loop {
                    let mut batch = Vec::with_capacity(BATCH);
                    {
                        let mut rx = inbox.lock().await;
                        if rx.recv_many(&mut batch, BATCH).await == 0 {
                            break;
                        }
                    }
                    write_batch(&app, batch).await;
                }
            })
        })
        .collect()
}

async fn write_batch(app: &App, batch: Vec<Job>) {
    match commit(app, &batch).await {
        Ok(results) => {
            for (job, r) in batch.into_iter().zip(results) {
                let _ = job.reply.send(Ok(r));
            }
            outbox::WAKE.notify_one();
        }
        Err(e) => {
            tracing::error!(error = %e, n = batch.len(), "admission batch failed");
            for job in batch {
                let _ = job.reply.send(Err(e.to_string()));
            }
        }
    }
}

async fn commit(app: &App, batch: &[Job]) -> Result<Vec<Option<i64>>, sqlx::Error> {
    let mut tx = app.db().begin().await?;
    let writes: Vec<&AdmissionWrite> = batch.iter().map(|j| &j.write).collect();
    let results = tickets::mark_admitted_batch(&mut tx, &writes).await?;
    let mut events = Vec::new();
    for (job, earlier) in batch.iter().zip(&results) {
        if earlier.is_none() {
            let payload = serde_json::json!({
                "ticket": job.write.ticket,
                "device": job.write.device,
                "gate": job.write.gate,
                "admitted_at": kernel::clock::rfc3339(job.write.at),
            });
            events.push(outbox::Pending {
                org: job.write.org,
                topic: event_topic(job.write.org, job.event),
                kind: "ticket.admitted",
                payload: payload.to_string(),
            });
        }
    }
    outbox::record_many(&mut tx, &events).await?;
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
