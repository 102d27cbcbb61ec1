//! The durable job queue (the Oban role): jobs are rows, enqueued inside the
//! transaction that causes them, claimed by workers on any node (`SKIP
//! LOCKED` on PostgreSQL; the single writer on SQLite), retried with
//! exponential backoff and jitter, dead-lettered after `max_attempts`,
//! rescued when a node dies mid-job, and pruned when done. Periodic work is
//! enqueued once per time slot, however many nodes schedule it.

use std::{collections::HashMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::{
    clock::{Clock, MICROS_PER_SEC, micros},
    db::{Backend, Db, Stmt},
    db_run,
};

/// The queue that carries events to their reactions.
pub const EVENTS_QUEUE: &str = "events";
/// Upkeep: pruning, rescuing.
pub const MAINTENANCE_QUEUE: &str = "maintenance";

/// A kind of job with a typed payload.
pub trait Job: Serialize + DeserializeOwned + Send + 'static {
    /// Stored in `jobs.kind`: `maintenance.prune`.
    const KIND: &'static str;
    const QUEUE: &'static str;
    const MAX_ATTEMPTS: i64 = 20;
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

    /// The insert, to run inside the transaction that causes the job.
    pub fn stmt(&self, now: i64) -> Stmt {
        Stmt::new(
            "INSERT INTO jobs (id, queue, kind, payload, unique_key, state, attempts, max_attempts, run_at, created_at)
             VALUES ($1, $2, $3, $4, $5, 'available', 0, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(self.queue)
        .bind(self.kind)
        .bind(self.payload.to_string())
        .bind(self.unique_key.clone())
        .bind(self.max_attempts)
        .bind(self.run_at.unwrap_or(now))
        .bind(now)
    }
}

/// Enqueues outside any other transaction.
pub async fn enqueue(db: &Db, clock: &Clock, job: &NewJob) -> Result<(), sqlx::Error> {
    db.write_grouped(vec![job.stmt(clock.now())]).await
}

pub type HandlerResult = Result<(), String>;
type Handler<C> = Arc<
    dyn Fn(C, serde_json::Value) -> Pin<Box<dyn Future<Output = HandlerResult> + Send>>
        + Send
        + Sync,
>;

/// Handlers by job kind; `C` is the context each handler is given.
pub struct Worker<C> {
    handlers: HashMap<&'static str, Handler<C>>,
}

impl<C> Clone for Worker<C> {
    fn clone(&self) -> Self {
        Worker {
            handlers: self.handlers.clone(),
        }
    }
}

impl<C> Default for Worker<C> {
    fn default() -> Self {
        Worker {
            handlers: HashMap::new(),
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

impl<C: Clone + Send + Sync + 'static> Worker<C> {
    pub fn new() -> Worker<C> {
        Worker::default()
    }

    /// Handles jobs of `kind` with an untyped payload.
    pub fn handle<F, Fut>(mut self, kind: &'static str, f: F) -> Worker<C>
    where
        F: Fn(C, serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.handlers
            .insert(kind, Arc::new(move |c, p| Box::pin(f(c, p))));
        self
    }

    /// Handles typed jobs `J`.
    pub fn job<J: Job, F, Fut>(self, f: F) -> Worker<C>
    where
        F: Fn(C, J) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let f = Arc::new(f);
        self.handle(J::KIND, move |c, p| {
            let f = f.clone();
            async move {
                let job: J = serde_json::from_value(p)
                    .map_err(|e| format!("the payload is not a {}: {e}", J::KIND))?;
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
                "UPDATE jobs SET state = 'running', locked_at = $1, attempts = attempts + 1
                 WHERE id = (SELECT id FROM jobs WHERE state = 'available' AND queue = $2 AND run_at <= $1
                             ORDER BY run_at LIMIT 1 FOR UPDATE SKIP LOCKED)
                 RETURNING id, kind, payload, attempts, max_attempts"
            }
            Backend::Sqlite => {
                "UPDATE jobs SET state = 'running', locked_at = $1, attempts = attempts + 1
                 WHERE id = (SELECT id FROM jobs WHERE state = 'available' AND queue = $2 AND run_at <= $1
                             ORDER BY run_at LIMIT 1)
                 RETURNING id, kind, payload, attempts, max_attempts"
            }
        };
        let job: Option<Claimed> = {
            let _queued = db.serial_write().await;
            db_run!(db, p => sqlx::query_as(claim).bind(now).bind(queue).fetch_optional(p).await)?
        };
        let Some(job) = job else { return Ok(false) };
        let outcome = match self.handlers.get(job.kind.as_str()) {
            Some(h) => {
                let payload = serde_json::from_str(&job.payload).unwrap_or(serde_json::Value::Null);
                // A panicking handler is a failed attempt, not a dead worker.
                match tokio::spawn(h(ctx.clone(), payload)).await {
                    Ok(r) => r,
                    Err(e) => Err(format!("handler panicked: {e}")),
                }
            }
            None => Err(format!("no handler for job kind {}", job.kind)),
        };
        let now = clock.now();
        let done = match outcome {
            Ok(()) => Stmt::new(
                "UPDATE jobs SET state = 'done', finished_at = $1, last_error = NULL WHERE id = $2",
            )
            .bind(now)
            .bind(job.id),
            Err(e) if job.attempts >= job.max_attempts => {
                tracing::warn!(job = %job.id, kind = %job.kind, error = %e, "job dead after its last attempt");
                Stmt::new("UPDATE jobs SET state = 'dead', finished_at = $1, last_error = $2 WHERE id = $3")
                    .bind(now)
                    .bind(e)
                    .bind(job.id)
            }
            Err(e) => {
                tracing::info!(job = %job.id, kind = %job.kind, attempt = job.attempts, error = %e, "job failed; retrying");
                Stmt::new("UPDATE jobs SET state = 'available', run_at = $1, last_error = $2, locked_at = NULL WHERE id = $3")
                    .bind(now + backoff_micros(job.attempts))
                    .bind(e)
                    .bind(job.id)
            }
        };
        db.write_grouped(vec![done]).await?;
        Ok(true)
    }

    /// Works `queue` until `stop` turns true: runs jobs while there are
    /// ready ones, otherwise waits `idle` (or until a manual clock moves).
    pub async fn run(
        self,
        ctx: C,
        db: Db,
        clock: Clock,
        queue: &'static str,
        idle: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if *stop.borrow() {
                return;
            }
            match self.run_one(&ctx, &db, &clock, queue).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, queue, "job queue unavailable"),
            }
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = clock.changed() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// Enqueues `job` once per `every`: the slot number is its unique key, so
/// many nodes scheduling the same job add it once.
pub async fn schedule_periodic(
    db: &Db,
    clock: &Clock,
    job: NewJob,
    every: Duration,
) -> Result<(), sqlx::Error> {
    let slot = clock.now() / micros(every).max(1);
    enqueue(db, clock, &job.unique(format!("slot:{slot}"))).await
}

/// Puts jobs left `running` by a node that died back in the queue.
pub async fn rescue(db: &Db, clock: &Clock, stale_after: Duration) -> Result<u64, sqlx::Error> {
    let before = clock.now() - micros(stale_after);
    let _queued = db.serial_write().await;
    db_run!(db, p => sqlx::query("UPDATE jobs SET state = 'available', locked_at = NULL WHERE state = 'running' AND locked_at < $1")
        .bind(before).execute(p).await.map(|r| r.rows_affected()))
}

/// Deletes finished jobs older than `age` (dead ones stay for inspection).
pub async fn prune(db: &Db, clock: &Clock, age: Duration) -> Result<u64, sqlx::Error> {
    let before = clock.now() - micros(age);
    let _queued = db.serial_write().await;
    db_run!(db, p => sqlx::query("DELETE FROM jobs WHERE state = 'done' AND finished_at < $1")
        .bind(before).execute(p).await.map(|r| r.rows_affected()))
}

/// Replays a dead job: back to the queue with a fresh set of attempts.
pub async fn retry_dead(db: &Db, clock: &Clock, id: Uuid) -> Result<bool, sqlx::Error> {
    let _queued = db.serial_write().await;
    let n = db_run!(db, p => sqlx::query(
        "UPDATE jobs SET state = 'available', attempts = 0, run_at = $1, finished_at = NULL WHERE id = $2 AND state = 'dead'")
        .bind(clock.now()).bind(id).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
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
        let worker = Worker::new().handle("t.fail", |(), _| async { Err("boom".to_string()) });
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
        assert!(retry_dead(&db, &clock, id).await.unwrap());
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
        for _ in 0..5 {
            schedule_periodic(
                &db,
                &clock,
                NewJob::new("default", "t.tick", serde_json::json!({})),
                Duration::from_secs(3600),
            )
            .await
            .unwrap();
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
}
