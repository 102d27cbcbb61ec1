//! Many callers, one commit: the kernel's one batching primitive.
//!
//! Callers submit jobs; a few workers each take every job waiting at that
//! moment (up to a limit) and run them as one batch — one transaction, one
//! commit — then answer each caller with its own result. If a batch fails,
//! each of its jobs is run again alone, so one bad job fails only itself and
//! every caller gets its own typed error. Group commit of holds and
//! checkouts (`Db::transact_grouped`) and the scan path's admission writer
//! are both built on it.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::{Mutex, mpsc, oneshot};

/// Runs a batch: one result per job, in order, or an error for the batch.
pub type RunBatch<J, R, E> =
    Arc<dyn for<'a> Fn(&'a [J]) -> BoxFuture<'a, Result<Vec<R>, E>> + Send + Sync>;

struct Pending<J, R, E> {
    job: J,
    reply: oneshot::Sender<Result<R, E>>,
}

/// Why a submitted job has no result.
#[derive(Debug, thiserror::Error)]
pub enum BatchError<E> {
    /// The queue is full (only from [`Batcher::try_submit`]): shed the load.
    #[error("the batch queue is full")]
    Full,
    /// The workers are gone (shutting down).
    #[error("the batch workers have stopped")]
    Closed,
    #[error(transparent)]
    Failed(E),
}

pub struct Batcher<J, R, E> {
    queue: mpsc::Sender<Pending<J, R, E>>,
}

impl<J, R, E> Clone for Batcher<J, R, E> {
    fn clone(&self) -> Self {
        Batcher {
            queue: self.queue.clone(),
        }
    }
}

impl<J, R, E> Batcher<J, R, E>
where
    J: Send + Sync + 'static,
    R: Send + 'static,
    E: Send + 'static,
{
    /// Starts `workers` tasks that commit batches of up to `max_batch` jobs;
    /// at most `capacity` jobs wait. The workers stop when every `Batcher`
    /// handle is dropped and the queue is drained.
    pub fn start(
        capacity: usize,
        workers: usize,
        max_batch: usize,
        run: RunBatch<J, R, E>,
    ) -> Self {
        let (queue, rx) = mpsc::channel(capacity.max(1));
        let inbox = Arc::new(Mutex::new(rx));
        for _ in 0..workers.max(1) {
            tokio::spawn(work(inbox.clone(), max_batch.max(1), run.clone()));
        }
        Batcher { queue }
    }

    /// Waits for room in the queue and queues the job; its result comes on
    /// the returned receiver. Dropping this future before it resolves leaves
    /// the job unqueued; once it resolved, the job runs whatever happens to
    /// the receiver (so a caller can hand the receiver on when it is itself
    /// dropped: see `Db::enqueue_writes`).
    pub async fn enqueue(&self, job: J) -> Result<Ticket<R, E>, BatchError<E>> {
        let (reply, rx) = oneshot::channel();
        self.queue
            .send(Pending { job, reply })
            .await
            .map_err(|_| BatchError::Closed)?;
        Ok(Ticket(rx))
    }

    /// Waits for room in the queue, then for the job's result.
    pub async fn submit(&self, job: J) -> Result<R, BatchError<E>> {
        let (reply, rx) = oneshot::channel();
        self.queue
            .send(Pending { job, reply })
            .await
            .map_err(|_| BatchError::Closed)?;
        rx.await
            .map_err(|_| BatchError::Closed)?
            .map_err(BatchError::Failed)
    }

    /// Queues the job only if there is room now ([`BatchError::Full`]
    /// otherwise), then waits for its result.
    pub async fn try_submit(&self, job: J) -> Result<R, BatchError<E>> {
        let (reply, rx) = oneshot::channel();
        self.queue
            .try_send(Pending { job, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => BatchError::Full,
                mpsc::error::TrySendError::Closed(_) => BatchError::Closed,
            })?;
        rx.await
            .map_err(|_| BatchError::Closed)?
            .map_err(BatchError::Failed)
    }
}

/// A queued job's result, to come. A future that can be polled by
/// reference, so a caller dropped while waiting can hand it on.
pub struct Ticket<R, E>(oneshot::Receiver<Result<R, E>>);

impl<R, E> std::future::Future for Ticket<R, E> {
    type Output = Result<R, BatchError<E>>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|r| match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(BatchError::Failed(e)),
            Err(_) => Err(BatchError::Closed),
        })
    }
}

async fn work<J, R, E>(
    inbox: Arc<Mutex<mpsc::Receiver<Pending<J, R, E>>>>,
    max_batch: usize,
    run: RunBatch<J, R, E>,
) {
    let mut pending = Vec::with_capacity(max_batch);
    loop {
        {
            let mut rx = inbox.lock().await;
            if rx.recv_many(&mut pending, max_batch).await == 0 {
                return;
            }
        }
        let (jobs, replies): (Vec<J>, Vec<_>) = pending.drain(..).map(|p| (p.job, p.reply)).unzip();
        match run(&jobs).await {
            Ok(results) if results.len() == jobs.len() => {
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(r));
                }
            }
            Ok(_) | Err(_) if jobs.len() > 1 => {
                // Alone, each job meets only its own fate.
                for (i, reply) in replies.into_iter().enumerate() {
                    match run(std::slice::from_ref(&jobs[i])).await {
                        Ok(mut r) => {
                            // No result for a job alone breaks the runner's
                            // contract: dropping the reply answers `Closed`.
                            if let Some(v) = r.pop() {
                                let _ = reply.send(Ok(v));
                            }
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
            }
            Ok(_) => {
                // One job, no result: the runner broke its contract. Dropping
                // the reply answers `Closed`, never a made-up result.
                drop(replies);
            }
            Err(e) => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doubler() -> RunBatch<i64, i64, String> {
        Arc::new(|jobs: &[i64]| {
            Box::pin(async move {
                if jobs.contains(&13) {
                    return Err(format!("unlucky batch of {}", jobs.len()));
                }
                Ok(jobs.iter().map(|j| j * 2).collect())
            })
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_caller_gets_its_own_result_and_a_bad_job_fails_alone() {
        let b = Batcher::start(1024, 2, 64, doubler());
        let mut tasks = Vec::new();
        for i in 0..200i64 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move { (i, b.submit(i).await) }));
        }
        for t in tasks {
            let (i, r) = t.await.unwrap();
            match r {
                Ok(v) => assert_eq!(v, i * 2),
                Err(BatchError::Failed(e)) => {
                    assert_eq!(i, 13);
                    assert_eq!(e, "unlucky batch of 1");
                }
                Err(other) => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_full_queue_sheds_instead_of_waiting() {
        let slow: RunBatch<i64, i64, String> = Arc::new(|jobs: &[i64]| {
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                Ok(jobs.to_vec())
            })
        });
        let b = Batcher::start(1, 1, 1, slow);
        let first = {
            let b = b.clone();
            tokio::spawn(async move { b.submit(1).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let second = {
            let b = b.clone();
            tokio::spawn(async move { b.submit(2).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(matches!(b.try_submit(3).await, Err(BatchError::Full)));
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(second.await.unwrap().unwrap(), 2);
    }
}
