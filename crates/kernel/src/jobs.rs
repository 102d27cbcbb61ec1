//! The durable job queue (the Oban role): jobs are rows, enqueued inside the
//! transaction that causes them, claimed by workers on any node (`SKIP
//! LOCKED` on PostgreSQL; the single writer on SQLite), retried on each
//! kind's own schedule, dead-lettered after its attempt limit, rescued when
//! a node dies mid-job, handed back when a node shuts down, and pruned when
//! done. Queues are named, each with its own number of concurrent workers
//! per node, so one kind of work cannot starve another. Cron and periodic
//! jobs are enqueued once per slot, however many nodes schedule them (the
//! slot is recorded in `job_slots`).

use std::{
    collections::HashMap, future::Future, pin::Pin, str::FromStr, sync::Arc, time::Duration,
};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::{
    clock::{Clock, MICROS_PER_SEC, micros},
    db::{Backend, Db, Stmt},
    db_run,
};

/// The queue that carries events to their reactions.
pub const EVENTS_QUEUE: &str = "events";
/// Upkeep: pruning, rescuing, reconciling.
pub const MAINTENANCE_QUEUE: &str = "maintenance";

/// A named queue and how many of its jobs one node runs at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queue {
    pub name: &'static str,
    pub concurrency: usize,
}

impl Queue {
    pub const fn new(name: &'static str, concurrency: usize) -> Queue {
        Queue { name, concurrency }
    }
}

/// A kind of job with a typed payload.
pub trait Job: Serialize + DeserializeOwned + Send + 'static {
    /// Stored in `jobs.kind`: `maintenance.prune`.
    const KIND: &'static str;
    const QUEUE: &'static str;
    /// Attempts before the job is dead.
    const MAX_ATTEMPTS: i64 = 20;

    /// The wait after `attempts` failed attempts (1 after the first).
    fn retry_in(attempts: i64) -> Duration {
        Duration::from_micros(backoff_micros(attempts) as u64)
    }
}

/// A retry schedule as a table: the wait after the n-th failure is the n-th
/// entry (the last repeats), ± 10% so retries of many jobs spread out.
pub fn from_schedule(schedule: &[Duration], attempts: i64) -> Duration {
    let Some(last) = schedule.last() else {
        return Duration::from_secs(1);
    };
    let base = schedule
        .get((attempts.max(1) - 1) as usize)
        .unwrap_or(last)
        .as_micros() as i64;
    let jitter = (crate::auth::random_bytes::<1>()[0] as i64 - 128) * base / 1280;
    Duration::from_micros((base + jitter).max(0) as u64)
}

/// Why a job did not finish.
#[derive(Debug)]
pub enum JobError {
    /// A failed attempt: retried on the kind's schedule, dead after its limit.
    Failed(String),
    /// Not now, and not a failure: run again after this long without
    /// counting an attempt (a webhook waiting for an earlier one).
    Snooze(Duration),
    /// Never worth retrying: dead at once (a payload that cannot be read).
    Discard(String),
}

impl From<String> for JobError {
    fn from(e: String) -> JobError {
        JobError::Failed(e)
    }
}

impl From<&str> for JobError {
    fn from(e: &str) -> JobError {
        JobError::Failed(e.to_string())
    }
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> JobError {
        JobError::Failed(e.to_string())
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::Failed(e) => write!(f, "{e}"),
            JobError::Snooze(d) => write!(f, "snoozed for {d:?}"),
            JobError::Discard(e) => write!(f, "discarded: {e}"),
        }
    }
}

/// A job to enqueue.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub queue: &'static str,
    pub kind: &'static str,
    pub payload: serde_json::Value,
    /// While a job with this kind and key waits or runs, another is not added.
    pub unique_key: Option<String>,
    /// Microseconds since the epoch; now when `None`.
    pub run_at: Option<i64>,
    pub max_attempts: i64,
    /// The org the job concerns: it sees the job when it fails.
    pub org: Option<Uuid>,
    /// The job's id when the caller needs to know it (a new one otherwise).
    pub id: Option<Uuid>,
}

impl NewJob {
    pub fn new(queue: &'static str, kind: &'static str, payload: serde_json::Value) -> NewJob {
        NewJob {
            queue,
            kind,
            payload,
            unique_key: None,
            run_at: None,
            max_attempts: 20,
            org: None,
            id: None,
        }
    }

    /// A typed job.
    pub fn of<J: Job>(job: &J) -> NewJob {
        NewJob {
            max_attempts: J::MAX_ATTEMPTS,
            ..NewJob::new(
                J::QUEUE,
                J::KIND,
                serde_json::to_value(job).unwrap_or(serde_json::Value::Null),
            )
        }
    }

    pub fn unique(mut self, key: impl Into<String>) -> NewJob {
        self.unique_key = Some(key.into());
        self
    }

    pub fn at(mut self, run_at: i64) -> NewJob {
        self.run_at = Some(run_at);
        self
    }

    pub fn for_org(mut self, org: impl Into<Uuid>) -> NewJob {
        self.org = Some(org.into());
        self
    }

    /// Gives the job a known id (to point at it from the caller's rows).
    pub fn with_id(mut self, id: Uuid) -> NewJob {
        self.id = Some(id);
        self
    }

    /// The insert, to run inside the transaction that causes the job.
    pub fn stmt(&self, now: i64) -> Stmt {
        Stmt::new(
            "INSERT INTO jobs (id, queue, kind, payload, unique_key, state, attempts, max_attempts, run_at, created_at, org_id)
             VALUES ($1, $2, $3, $4, $5, 'available', 0, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        )
        .bind(self.id.unwrap_or_else(Uuid::now_v7))
        .bind(self.queue)
        .bind(self.kind)
        .bind(self.payload.to_string())
        .bind(self.unique_key.clone())
        .bind(self.max_attempts)
        .bind(self.run_at.unwrap_or(now))
        .bind(now)
        .bind(self.org)
    }
}

/// Enqueues outside any other transaction.
pub async fn enqueue(db: &Db, clock: &Clock, job: &NewJob) -> Result<(), sqlx::Error> {
    db.write_grouped(vec![job.stmt(clock.now())]).await?;
    wake(job.queue);
    Ok(())
}

/// The idle workers of each queue in this process, woken when work for it
/// may have been committed here (other nodes' work is found by polling).
static WAKERS: std::sync::LazyLock<dashmap::DashMap<String, Arc<tokio::sync::Notify>>> =
    std::sync::LazyLock::new(dashmap::DashMap::new);

fn waker(queue: &str) -> Arc<tokio::sync::Notify> {
    WAKERS.entry(queue.to_string()).or_default().clone()
}

/// Wakes this process's idle workers of `queue`: call after committing
/// jobs for it (or making waiting ones due).
pub fn wake(queue: &str) {
    if let Some(n) = WAKERS.get(queue) {
        n.notify_waiters();
    }
}

/// Queues that got jobs in a transaction not yet committed (the relay's).
static MARKED: std::sync::LazyLock<dashmap::DashSet<&'static str>> =
    std::sync::LazyLock::new(dashmap::DashSet::new);

/// Asks for `queue`'s workers to be woken after the relay's current batch
/// commits (a consumer that adds jobs calls it).
pub fn wake_after_commit(queue: &'static str) {
    MARKED.insert(queue);
}

/// Wakes the queues marked by [`wake_after_commit`] (the relay, after its
/// commit). Only those: waking every worker on every batch would put a
/// claim per worker on the write path of a busy gate.
pub fn wake_marked() {
    let queues: Vec<&'static str> = MARKED.iter().map(|q| *q).collect();
    for q in queues {
        MARKED.remove(q);
        wake(q);
    }
}

pub type HandlerResult = Result<(), JobError>;
type Handler<C> = Arc<
    dyn Fn(C, serde_json::Value) -> Pin<Box<dyn Future<Output = HandlerResult> + Send>>
        + Send
        + Sync,
>;

struct Registered<C> {
    handler: Handler<C>,
    retry_in: fn(i64) -> Duration,
}

impl<C> Clone for Registered<C> {
    fn clone(&self) -> Self {
        Registered {
            handler: self.handler.clone(),
            retry_in: self.retry_in,
        }
    }
}

/// Handlers by job kind; `C` is the context each handler is given.
pub struct Worker<C> {
    handlers: HashMap<&'static str, Registered<C>>,
    /// Written into `locked_by`, so a node hands back its own jobs.
    node: Arc<str>,
    /// The node's requests in flight: between jobs, a worker waits while
    /// the node is busy (see [`crate::load`]).
    load: Option<crate::load::Load>,
}

impl<C> Clone for Worker<C> {
    fn clone(&self) -> Self {
        Worker {
            handlers: self.handlers.clone(),
            node: self.node.clone(),
            load: self.load.clone(),
        }
    }
}

impl<C> Default for Worker<C> {
    fn default() -> Self {
        Worker {
            handlers: HashMap::new(),
            node: Arc::from("local"),
            load: None,
        }
    }
}

#[derive(sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    kind: String,
    payload: String,
    attempts: i64,
    max_attempts: i64,
}

/// Delay before attempt `n + 1`: 2^n seconds (capped at an hour), ± 25%.
pub fn backoff_micros(attempts: i64) -> i64 {
    let base = (1i64 << attempts.clamp(0, 12)).min(3600) * MICROS_PER_SEC;
    let jitter = (crate::auth::random_bytes::<2>()[0] as i64 - 128) * base / 512;
    base + jitter
}

fn default_retry(attempts: i64) -> Duration {
    Duration::from_micros(backoff_micros(attempts) as u64)
}

impl<C: Clone + Send + Sync + 'static> Worker<C> {
    pub fn new() -> Worker<C> {
        Worker::default()
    }

    /// Names the node this worker runs on (its `locked_by`).
    pub fn on_node(mut self, node: &str) -> Worker<C> {
        self.node = Arc::from(node);
        self
    }

    /// Steps aside between jobs while `load` says the node is busy.
    pub fn yielding_to(mut self, load: crate::load::Load) -> Worker<C> {
        self.load = Some(load);
        self
    }

    /// Handles jobs of `kind` with an untyped payload (default backoff).
    pub fn handle<F, Fut>(self, kind: &'static str, f: F) -> Worker<C>
    where
        F: Fn(C, serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.register(kind, default_retry, f)
    }

    fn register<F, Fut>(
        mut self,
        kind: &'static str,
        retry_in: fn(i64) -> Duration,
        f: F,
    ) -> Worker<C>
    where
        F: Fn(C, serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.handlers.insert(
            kind,
            Registered {
                handler: Arc::new(move |c, p| Box::pin(f(c, p))),
                retry_in,
            },
        );
        self
    }

    /// Handles typed jobs `J`, retried on `J`'s schedule.
    pub fn job<J: Job, F, Fut>(self, f: F) -> Worker<C>
    where
        F: Fn(C, J) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let f = Arc::new(f);
        self.register(J::KIND, J::retry_in, move |c, p| {
            let f = f.clone();
            async move {
                let job: J = serde_json::from_value(p).map_err(|e| {
                    JobError::Discard(format!("the payload is not a {}: {e}", J::KIND))
                })?;
                f(c, job).await
            }
        })
    }

    pub fn kinds(&self) -> impl Iterator<Item = &&'static str> {
        self.handlers.keys()
    }

    /// Claims and runs one job of `queue`; false when none was ready.
    pub async fn run_one(
        &self,
        ctx: &C,
        db: &Db,
        clock: &Clock,
        queue: &str,
    ) -> Result<bool, sqlx::Error> {
        let now = clock.now();
        let claim = match db.backend() {
            Backend::Postgres => {
                "UPDATE jobs SET state = 'running', locked_at = $1, locked_by = $3, attempts = attempts + 1
                 WHERE id = (SELECT id FROM jobs WHERE state = 'available' AND queue = $2 AND run_at <= $1
                             ORDER BY run_at LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING id, kind, payload, attempts, max_attempts"
            }
            Backend::Sqlite => {
                "UPDATE jobs SET state = 'running', locked_at = $1, locked_by = $3, attempts = attempts + 1
                 WHERE id = (SELECT id FROM jobs WHERE state = 'available' AND queue = $2 AND run_at <= $1
                             ORDER BY run_at LIMIT 1)
                 RETURNING id, kind, payload, attempts, max_attempts"
            }
        };
        let job: Option<Claimed> = {
            let _queued = db.serial_write().await;
            db_run!(db, p => sqlx::query_as(claim).bind(now).bind(queue).bind(&*self.node).fetch_optional(p).await)?
        };
        let Some(job) = job else { return Ok(false) };
        let registered = self.handlers.get(job.kind.as_str());
        let outcome = match registered {
            Some(r) => {
                let payload = serde_json::from_str(&job.payload).unwrap_or(serde_json::Value::Null);
                // A panicking handler is a failed attempt, not a dead worker.
                match tokio::spawn((r.handler)(ctx.clone(), payload)).await {
                    Ok(r) => r,
                    Err(e) => Err(JobError::Failed(format!("handler panicked: {e}"))),
                }
            }
            None => Err(JobError::Failed(format!(
                "no handler for job kind {}",
                job.kind
            ))),
        };
        let now = clock.now();
        metrics::counter!("voelgoed_jobs_run_total", "queue" => queue.to_string(), "outcome" => match &outcome {
            Ok(()) => "done",
            Err(JobError::Snooze(_)) => "snoozed",
            Err(_) => "failed",
        })
        .increment(1);
        let done = match outcome {
            Ok(()) => Stmt::new(
                "UPDATE jobs SET state = 'done', finished_at = $1, last_error = NULL, locked_by = NULL WHERE id = $2",
            )
            .bind(now)
            .bind(job.id),
            Err(JobError::Snooze(d)) => Stmt::new(
                "UPDATE jobs SET state = 'available', run_at = $1, attempts = attempts - 1, locked_at = NULL, locked_by = NULL WHERE id = $2",
            )
            .bind(now + micros(d))
            .bind(job.id),
            Err(e) if job.attempts >= job.max_attempts || matches!(e, JobError::Discard(_)) => {
                tracing::warn!(job = %job.id, kind = %job.kind, error = %e, "job dead after its last attempt");
                Stmt::new("UPDATE jobs SET state = 'dead', finished_at = $1, last_error = $2, locked_by = NULL WHERE id = $3")
                    .bind(now)
                    .bind(e.to_string())
                    .bind(job.id)
            }
            Err(e) => {
                let retry_in = registered.map(|r| r.retry_in).unwrap_or(default_retry);
                tracing::info!(job = %job.id, kind = %job.kind, attempt = job.attempts, error = %e, "job failed; retrying");
                Stmt::new("UPDATE jobs SET state = 'available', run_at = $1, last_error = $2, locked_at = NULL, locked_by = NULL WHERE id = $3")
                    .bind(now + micros(retry_in(job.attempts)))
                    .bind(e.to_string())
                    .bind(job.id)
            }
        };
        db.write_grouped(vec![done]).await?;
        Ok(true)
    }

    /// Works `queue` until `stop` turns true: runs jobs while there are
    /// ready ones, otherwise waits `idle` (or until a manual clock moves).
    /// A job that has started is finished before the loop returns.
    pub async fn run(
        self,
        ctx: C,
        db: Db,
        clock: Clock,
        queue: &'static str,
        idle: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let waker = waker(queue);
        loop {
            if *stop.borrow() {
                return;
            }
            // Listening before looking, so a wake between the two counts.
            let woken = waker.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match self.run_one(&ctx, &db, &clock, queue).await {
                Ok(true) => {
                    if let Some(pause) = self.load.as_ref().and_then(|l| l.pause()) {
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = stop.wait_for(|s| *s) => return,
                        }
                    }
                    continue;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, queue, "job queue unavailable"),
            }
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = &mut woken => {}
                _ = clock.changed() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// When a scheduled job runs: a cron expression or a fixed period.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// Five fields (minute hour day month weekday), UTC; `@hourly` and the
    /// like too.
    Cron(Arc<croner::Cron>),
    Every(Duration),
}

impl Schedule {
    /// Parses a cron expression; the error says what is wrong with it.
    pub fn cron(expr: &str) -> Result<Schedule, String> {
        croner::Cron::from_str(expr)
            .map(|c| Schedule::Cron(Arc::new(c)))
            .map_err(|e| format!("not a cron expression ({expr}): {e}"))
    }

    /// The latest slot at or before `now` (microseconds), if any.
    pub fn slot_at(&self, now: i64) -> Option<i64> {
        match self {
            Schedule::Every(every) => {
                let every = micros(*every).max(1);
                Some(now / every * every)
            }
            Schedule::Cron(cron) => {
                let at = chrono::DateTime::from_timestamp_micros(now)?;
                cron.find_previous_occurrence(&at, true)
                    .ok()
                    .map(|t| t.timestamp_micros())
            }
        }
    }
}

/// A job enqueued on a schedule.
#[derive(Clone, Debug)]
pub struct Scheduled {
    /// Distinguishes two schedules of one kind; the kind itself by default.
    pub name: String,
    pub schedule: Schedule,
    pub job: NewJob,
}

/// A cron slot older than this when a node first looks is not run late (a
/// node that was down all night does not run last night's jobs at start).
/// A periodic job's slot is the current period, always due.
const SLOT_GRACE: Duration = Duration::from_secs(300);

/// Enqueues `s`'s job for its latest slot if no node has yet: the slot is
/// recorded in the same transaction. True when this call enqueued it.
pub async fn schedule_once(db: &Db, clock: &Clock, s: &Scheduled) -> Result<bool, sqlx::Error> {
    let now = clock.now();
    let Some(slot) = s.schedule.slot_at(now) else {
        return Ok(false);
    };
    if matches!(s.schedule, Schedule::Cron(_)) && slot < now - micros(SLOT_GRACE) {
        return Ok(false);
    }
    let mut tx = db.begin().await?;
    let taken = Stmt::new(
        "INSERT INTO job_slots (name, slot, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(s.name.clone())
    .bind(slot)
    .bind(now)
    .execute_in(&mut tx)
    .await?;
    if taken == 1 {
        s.job
            .clone()
            .unique(format!("slot:{slot}"))
            .stmt(now)
            .execute_in(&mut tx)
            .await?;
    }
    tx.commit().await?;
    Ok(taken == 1)
}

/// Puts jobs left `running` by a node that died back in the queue.
pub async fn rescue(db: &Db, clock: &Clock, stale_after: Duration) -> Result<u64, sqlx::Error> {
    let before = clock.now() - micros(stale_after);
    let _queued = db.serial_write().await;
    db_run!(db, p => sqlx::query("UPDATE jobs SET state = 'available', locked_at = NULL, locked_by = NULL WHERE state = 'running' AND locked_at < $1")
        .bind(before).execute(p).await.map(|r| r.rows_affected()))
}

/// Gives the jobs `node` is still running back to the queue, uncounted:
/// for a node that shuts down before they finish.
pub async fn hand_back(db: &Db, node: &str) -> Result<u64, sqlx::Error> {
    let _queued = db.serial_write().await;
    db_run!(db, p => sqlx::query("UPDATE jobs SET state = 'available', locked_at = NULL, locked_by = NULL, attempts = attempts - 1 WHERE state = 'running' AND locked_by = $1")
        .bind(node).execute(p).await.map(|r| r.rows_affected()))
}

/// Deletes finished jobs older than `age`, and slot records older than a
/// week (dead and discarded jobs stay for inspection).
pub async fn prune(db: &Db, clock: &Clock, age: Duration) -> Result<u64, sqlx::Error> {
    let before = clock.now() - micros(age);
    let week = clock.now() - 7 * 24 * 3600 * MICROS_PER_SEC;
    let _queued = db.serial_write().await;
    db_run!(db, p => sqlx::query("DELETE FROM job_slots WHERE created_at < $1").bind(week).execute(p).await.map(|_| ()))?;
    db_run!(db, p => sqlx::query("DELETE FROM jobs WHERE state = 'done' AND finished_at < $1")
        .bind(before).execute(p).await.map(|r| r.rows_affected()))
}

/// A job as the operator and an org see it.
#[derive(Clone, Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct JobInfo {
    pub id: Uuid,
    pub queue: String,
    pub kind: String,
    /// `available`, `running`, `done`, `dead` or `discarded`.
    pub state: String,
    pub attempts: i64,
    pub max_attempts: i64,
    /// Microseconds since the epoch.
    pub run_at: i64,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub last_error: Option<String>,
    #[serde(skip)]
    #[schema(ignore)]
    pub payload: String,
}

/// Which jobs to list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub org: Option<Uuid>,
    /// `failed` means dead or discarded.
    pub state: Option<String>,
    pub queue: Option<String>,
    /// Only jobs created before this id (the cursor), newest first.
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// Lists jobs, newest first.
pub async fn list(db: &Db, f: &Filter) -> Result<Vec<JobInfo>, sqlx::Error> {
    let (s1, s2) = match f.state.as_deref() {
        Some("failed") => (Some("dead".to_string()), Some("discarded".to_string())),
        Some(s) => (Some(s.to_string()), Some(s.to_string())),
        None => (None, None),
    };
    db_run!(db, p => sqlx::query_as(
        "SELECT id, queue, kind, state, attempts, max_attempts, run_at, created_at, finished_at, last_error, payload
         FROM jobs
         WHERE ($1 IS NULL OR org_id = $1) AND ($2 IS NULL OR state = $2 OR state = $3)
           AND ($4 IS NULL OR queue = $4) AND ($5 IS NULL OR id < $5)
         ORDER BY id DESC LIMIT $6")
        .bind(f.org).bind(s1).bind(s2).bind(f.queue.clone()).bind(f.before).bind(f.limit.clamp(1, 500))
        .fetch_all(p).await)
}

/// One job, if it exists (and concerns `org`, when given).
pub async fn get(db: &Db, id: Uuid, org: Option<Uuid>) -> Result<Option<JobInfo>, sqlx::Error> {
    db_run!(db, p => sqlx::query_as(
        "SELECT id, queue, kind, state, attempts, max_attempts, run_at, created_at, finished_at, last_error, payload
         FROM jobs WHERE id = $1 AND ($2 IS NULL OR org_id = $2)")
        .bind(id).bind(org).fetch_optional(p).await)
}

/// Puts a dead or discarded job back in the queue with a fresh set of
/// attempts. False when there is no such failed job (for `org`).
pub async fn retry(
    db: &Db,
    clock: &Clock,
    id: Uuid,
    org: Option<Uuid>,
) -> Result<bool, sqlx::Error> {
    retry_recorded(db, clock, id, org, None).await
}

/// [`retry`], with `record` (an audit entry) in the same transaction.
pub async fn retry_recorded(
    db: &Db,
    clock: &Clock,
    id: Uuid,
    org: Option<Uuid>,
    record: Option<Stmt>,
) -> Result<bool, sqlx::Error> {
    let change = Stmt::new(
        "UPDATE jobs SET state = 'available', attempts = 0, run_at = $1, finished_at = NULL
         WHERE id = $2 AND state IN ('dead', 'discarded') AND ($3 IS NULL OR org_id = $3)",
    )
    .bind(clock.now())
    .bind(id)
    .bind(org);
    changed_with(db, change, record).await
}

/// Gives up on a waiting or dead job: it stays, `discarded`, for the record.
/// False when there is no such job (for `org`) or it is running or done.
pub async fn discard(
    db: &Db,
    clock: &Clock,
    id: Uuid,
    org: Option<Uuid>,
) -> Result<bool, sqlx::Error> {
    discard_recorded(db, clock, id, org, None).await
}

/// [`discard`], with `record` (an audit entry) in the same transaction.
pub async fn discard_recorded(
    db: &Db,
    clock: &Clock,
    id: Uuid,
    org: Option<Uuid>,
    record: Option<Stmt>,
) -> Result<bool, sqlx::Error> {
    let change = Stmt::new(
        "UPDATE jobs SET state = 'discarded', finished_at = $1
         WHERE id = $2 AND state IN ('available', 'dead') AND ($3 IS NULL OR org_id = $3)",
    )
    .bind(clock.now())
    .bind(id)
    .bind(org);
    changed_with(db, change, record).await
}

/// Runs `change`; when it changed one row, `record` too, in one
/// transaction.
async fn changed_with(db: &Db, change: Stmt, record: Option<Stmt>) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    if change.execute_in(&mut tx).await? != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    if let Some(r) = record {
        r.execute_in(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// A queue's figures, for `/readyz` and `/metrics`.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct QueueStats {
    pub queue: String,
    /// Jobs due now and not yet claimed.
    pub waiting: i64,
    pub running: i64,
    pub dead: i64,
    /// How long the oldest due job has waited, in seconds.
    pub oldest_wait_secs: f64,
}

/// Depth and age per queue.
pub async fn stats(db: &Db, clock: &Clock) -> Result<Vec<QueueStats>, sqlx::Error> {
    let now = clock.now();
    let rows: Vec<(String, i64, i64, i64, Option<i64>)> = db_run!(db, p => sqlx::query_as(
        "SELECT queue,
                SUM(CASE WHEN state = 'available' AND run_at <= $1 THEN 1 ELSE 0 END),
                SUM(CASE WHEN state = 'running' THEN 1 ELSE 0 END),
                SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END),
                MIN(CASE WHEN state = 'available' AND run_at <= $1 THEN run_at END)
         FROM jobs WHERE state IN ('available', 'running', 'dead') GROUP BY queue ORDER BY queue")
        .bind(now).fetch_all(p).await)?;
    Ok(rows
        .into_iter()
        .map(|(queue, waiting, running, dead, oldest)| QueueStats {
            queue,
            waiting,
            running,
            dead,
            oldest_wait_secs: oldest
                .map(|t| (now - t).max(0) as f64 / MICROS_PER_SEC as f64)
                .unwrap_or(0.0),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::Config;

    async fn sqlite() -> (Db, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("vg-jobs-{}", Uuid::now_v7()));
        let db = Db::connect(&Config {
            data_dir: dir.clone(),
            ..Config::default()
        })
        .await
        .unwrap();
        db.migrate().await.unwrap();
        (db, dir)
    }

    async fn state(db: &Db, kind: &str) -> Vec<(String, i64)> {
        db_run!(db, p => sqlx::query_as("SELECT state, attempts FROM jobs WHERE kind = $1 ORDER BY created_at")
            .bind(kind).fetch_all(p).await)
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_runs_once_and_is_done() {
        let (db, dir) = sqlite().await;
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let clock = Clock::system();
        let worker = Worker::new().handle("t.ok", move |(), p| {
            let r = r.clone();
            async move {
                assert_eq!(p["n"], 7);
                r.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        });
        enqueue(
            &db,
            &clock,
            &NewJob::new("default", "t.ok", serde_json::json!({"n": 7})),
        )
        .await
        .unwrap();
        assert!(worker.run_one(&(), &db, &clock, "default").await.unwrap());
        assert!(!worker.run_one(&(), &db, &clock, "default").await.unwrap());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(state(&db, "t.ok").await, vec![("done".to_string(), 1)]);
        assert_eq!(prune(&db, &clock, Duration::ZERO).await.unwrap(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_backs_off_then_dies_and_can_be_replayed() {
        let (db, dir) = sqlite().await;
        let clock = Clock::manual_from_now();
        let worker = Worker::new().handle("t.fail", |(), _| async { Err("boom".into()) });
        let mut job = NewJob::new("default", "t.fail", serde_json::json!({}));
        job.max_attempts = 2;
        enqueue(&db, &clock, &job).await.unwrap();
        assert!(worker.run_one(&(), &db, &clock, "default").await.unwrap());
        // Backed off: not ready again at once, but after the backoff.
        assert!(!worker.run_one(&(), &db, &clock, "default").await.unwrap());
        assert_eq!(
            state(&db, "t.fail").await,
            vec![("available".to_string(), 1)]
        );
        clock.advance(Duration::from_secs(3));
        assert!(worker.run_one(&(), &db, &clock, "default").await.unwrap());
        assert_eq!(state(&db, "t.fail").await, vec![("dead".to_string(), 2)]);
        let id: Uuid =
            db_run!(&db, p => sqlx::query_scalar("SELECT id FROM jobs").fetch_one(p).await)
                .unwrap();
        assert!(retry(&db, &clock, id, None).await.unwrap());
        assert_eq!(
            state(&db, "t.fail").await,
            vec![("available".to_string(), 0)]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unique_and_periodic_jobs_are_added_once_and_orphans_are_rescued() {
        let (db, dir) = sqlite().await;
        let clock = Clock::system();
        let tick = Scheduled {
            name: "t.tick".into(),
            schedule: Schedule::Every(Duration::from_secs(3600)),
            job: NewJob::new("default", "t.tick", serde_json::json!({})),
        };
        for _ in 0..5 {
            schedule_once(&db, &clock, &tick).await.unwrap();
        }
        assert_eq!(state(&db, "t.tick").await.len(), 1);
        // A node claims it and dies.
        db_run!(&db, p => sqlx::query("UPDATE jobs SET state = 'running', locked_at = 1").execute(p).await.map(|_| ()))
            .unwrap();
        assert_eq!(
            rescue(&db, &clock, Duration::from_secs(60)).await.unwrap(),
            1
        );
        assert_eq!(state(&db, "t.tick").await[0].0, "available");
        let unknown = Worker::<()>::new();
        assert!(
            unknown.run_one(&(), &db, &clock, "default").await.unwrap(),
            "a job without a handler fails, not hangs"
        );
        assert!(backoff_micros(3) > 5 * MICROS_PER_SEC && backoff_micros(3) < 11 * MICROS_PER_SEC);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[derive(Serialize, Deserialize)]
    struct Flaky {}
    impl Job for Flaky {
        const KIND: &'static str = "t.flaky";
        const QUEUE: &'static str = "default";
        const MAX_ATTEMPTS: i64 = 3;
        fn retry_in(attempts: i64) -> Duration {
            from_schedule(
                &[Duration::from_secs(5), Duration::from_secs(300)],
                attempts,
            )
        }
    }

    async fn run_at(db: &Db, kind: &str) -> i64 {
        db_run!(db, p => sqlx::query_scalar("SELECT run_at FROM jobs WHERE kind = $1").bind(kind).fetch_one(p).await).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kind_retries_on_its_own_schedule_and_snoozes_without_spending_attempts() {
        let (db, dir) = sqlite().await;
        let clock = Clock::manual_from_now();
        let snoozes = Arc::new(AtomicUsize::new(0));
        let sn = snoozes.clone();
        let worker = Worker::new()
            .job::<Flaky, _, _>(|(), _| async { Err("down".into()) })
            .handle("t.snooze", move |(), _| {
                let sn = sn.clone();
                async move {
                    if sn.fetch_add(1, Ordering::SeqCst) < 5 {
                        Err(JobError::Snooze(Duration::from_secs(1)))
                    } else {
                        Ok(())
                    }
                }
            })
            .handle("t.discard", |(), _| async {
                Err(JobError::Discard("unreadable".into()))
            });
        enqueue(&db, &clock, &NewJob::of(&Flaky {})).await.unwrap();
        let t0 = clock.now();
        assert!(worker.run_one(&(), &db, &clock, "default").await.unwrap());
        let wait = run_at(&db, "t.flaky").await - t0;
        assert!(
            (4_500_000..=5_500_000).contains(&wait),
            "first retry after ~5 s, not {wait}"
        );
        clock.advance(Duration::from_secs(6));
        assert!(worker.run_one(&(), &db, &clock, "default").await.unwrap());
        let wait = run_at(&db, "t.flaky").await - clock.now();
        assert!(
            (270_000_000..=330_000_000).contains(&wait),
            "second retry after ~5 min, not {wait}"
        );
        clock.advance(Duration::from_secs(400));
        assert!(worker.run_one(&(), &db, &clock, "default").await.unwrap());
        assert_eq!(
            state(&db, "t.flaky").await,
            vec![("dead".to_string(), 3)],
            "dead after its own limit"
        );

        enqueue(
            &db,
            &clock,
            &NewJob::new("default", "t.snooze", serde_json::json!({})),
        )
        .await
        .unwrap();
        for _ in 0..6 {
            assert!(worker.run_one(&(), &db, &clock, "default").await.unwrap());
            clock.advance(Duration::from_secs(2));
        }
        assert_eq!(
            state(&db, "t.snooze").await,
            vec![("done".to_string(), 1)],
            "snoozes are not attempts"
        );

        enqueue(
            &db,
            &clock,
            &NewJob::new("default", "t.discard", serde_json::json!({})),
        )
        .await
        .unwrap();
        assert!(worker.run_one(&(), &db, &clock, "default").await.unwrap());
        assert_eq!(
            state(&db, "t.discard").await,
            vec![("dead".to_string(), 1)],
            "dead at once"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cron_slot_is_enqueued_once_even_after_its_job_is_done() {
        let (db, dir) = sqlite().await;
        // 10:00:30 UTC on some day: the "*/15 * * * *" slot is 10:00.
        let clock =
            Clock::manual(1_800_000_000 * MICROS_PER_SEC / 3600 * 3600 + 30 * MICROS_PER_SEC);
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let worker = Worker::new().handle("t.cron", move |(), _| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        });
        let cron = Scheduled {
            name: "t.cron".into(),
            schedule: Schedule::cron("*/15 * * * *").unwrap(),
            job: NewJob::new("default", "t.cron", serde_json::json!({})),
        };
        assert!(Schedule::cron("61 * * * *").is_err());
        assert!(Schedule::cron("every day").is_err());
        // Two nodes, each scheduling twice, a run between them.
        assert!(schedule_once(&db, &clock, &cron).await.unwrap());
        while worker.run_one(&(), &db, &clock, "default").await.unwrap() {}
        assert!(!schedule_once(&db, &clock, &cron).await.unwrap());
        assert!(!schedule_once(&db, &clock, &cron).await.unwrap());
        while worker.run_one(&(), &db, &clock, "default").await.unwrap() {}
        assert_eq!(runs.load(Ordering::SeqCst), 1, "once per slot");
        clock.advance(Duration::from_secs(15 * 60));
        assert!(
            schedule_once(&db, &clock, &cron).await.unwrap(),
            "the next slot"
        );
        while worker.run_one(&(), &db, &clock, "default").await.unwrap() {}
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_hands_back_its_running_jobs_and_failed_ones_can_be_listed_retried_discarded() {
        let (db, dir) = sqlite().await;
        let clock = Clock::manual_from_now();
        let org = Uuid::now_v7();
        enqueue(
            &db,
            &clock,
            &NewJob::new("default", "t.slow", serde_json::json!({})).for_org(org),
        )
        .await
        .unwrap();
        let worker = Worker::<()>::new()
            .on_node("node-a")
            .handle("t.slow", |(), _| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            });
        let running = tokio::spawn({
            let (db, clock) = (db.clone(), clock.clone());
            async move { worker.run_one(&(), &db, &clock, "default").await }
        });
        while state(&db, "t.slow").await[0].0 != "running" {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(stats(&db, &clock).await.unwrap()[0].running, 1);
        running.abort();
        assert_eq!(
            hand_back(&db, "node-b").await.unwrap(),
            0,
            "not another node's"
        );
        assert_eq!(hand_back(&db, "node-a").await.unwrap(), 1);
        assert_eq!(
            state(&db, "t.slow").await,
            vec![("available".to_string(), 0)],
            "uncounted"
        );
        clock.advance(Duration::from_secs(90));
        let s = stats(&db, &clock).await.unwrap();
        assert_eq!((s[0].queue.as_str(), s[0].waiting), ("default", 1));
        assert!(s[0].oldest_wait_secs >= 90.0);

        let id = list(
            &db,
            &Filter {
                org: Some(org),
                limit: 10,
                ..Filter::default()
            },
        )
        .await
        .unwrap()[0]
            .id;
        assert!(
            list(
                &db,
                &Filter {
                    org: Some(Uuid::now_v7()),
                    limit: 10,
                    ..Filter::default()
                }
            )
            .await
            .unwrap()
            .is_empty()
        );
        assert!(
            !discard(&db, &clock, id, Some(Uuid::now_v7()))
                .await
                .unwrap(),
            "another org's job"
        );
        assert!(discard(&db, &clock, id, Some(org)).await.unwrap());
        let failed = list(
            &db,
            &Filter {
                state: Some("failed".into()),
                limit: 10,
                ..Filter::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(failed.len(), 1);
        assert!(retry(&db, &clock, id, Some(org)).await.unwrap());
        assert_eq!(
            get(&db, id, None).await.unwrap().unwrap().state,
            "available"
        );
        assert!(
            !retry(&db, &clock, id, None).await.unwrap(),
            "only failed jobs are retried"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
