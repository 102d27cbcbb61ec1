//! The slice contract: one place where a slice declares everything it
//! brings — API routes (with their OpenAPI descriptions), pages, the state
//! it keeps in memory (its hot tier), the events it consumes, the jobs it
//! runs and its periodic duties. The application holds a list of slices and
//! nothing else about them; [`Runtime`] runs what the list declares.
//!
//! `C` is the application context every handler, consumer and job is given
//! (the platform's `App`).

use std::{
    any::{Any, TypeId},
    sync::Arc,
    time::Duration,
};

use futures::future::BoxFuture;
use tokio::{sync::watch, task::JoinHandle};
use utoipa_axum::router::OpenApiRouter;

use crate::{
    Kernel,
    events::{Consumers, DomainEvent, Envelope, TxFuture},
    jobs::{self, HandlerResult, Job, NewJob, Queue, Schedule, Scheduled, Worker},
    outbox,
};

type RegisterConsumer<C> = Box<dyn FnOnce(&mut Consumers<C>) + Send>;
type AddJob<C> = Box<dyn FnOnce(Worker<C>) -> Worker<C> + Send>;
type DutyFn<C> = Arc<dyn Fn(C) -> BoxFuture<'static, Result<usize, String>> + Send + Sync>;

/// Work a slice does every so often on every node (it must be safe to run
/// on many nodes at once: decided by database state, idempotent).
pub struct Duty<C> {
    pub name: &'static str,
    pub every: Duration,
    run: DutyFn<C>,
}

/// What one slice brings to the application.
pub struct Slice<C> {
    pub name: &'static str,
    api: OpenApiRouter<C>,
    pages: axum::Router<C>,
    states: Vec<(TypeId, Arc<dyn Any + Send + Sync>)>,
    consumers: Vec<RegisterConsumer<C>>,
    worker: Vec<AddJob<C>>,
    queues: Vec<Queue>,
    duties: Vec<Duty<C>>,
    periodic: Vec<Scheduled>,
}

impl<C: Clone + Send + Sync + 'static> Slice<C> {
    pub fn new(name: &'static str) -> Slice<C> {
        Slice {
            name,
            api: OpenApiRouter::new(),
            pages: axum::Router::new(),
            states: Vec::new(),
            consumers: Vec::new(),
            worker: Vec::new(),
            queues: Vec::new(),
            duties: Vec::new(),
            periodic: Vec::new(),
        }
    }

    /// The slice's API routes, described for the OpenAPI document.
    pub fn routes(mut self, api: OpenApiRouter<C>) -> Self {
        self.api = self.api.merge(api);
        self
    }

    /// The slice's pages (HTML).
    pub fn pages(mut self, pages: axum::Router<C>) -> Self {
        self.pages = self.pages.merge(pages);
        self
    }

    /// State the slice keeps in process (its hot tier), found by type.
    pub fn state<T: Any + Send + Sync>(mut self, state: T) -> Self {
        self.states.push((TypeId::of::<T>(), Arc::new(state)));
        self
    }

    /// Applies `f` to `E` events inside the relay's transaction (exactly
    /// once, with the events' delivery mark): for the slice's own tables.
    pub fn consumes<E, F>(mut self, name: &'static str, f: F) -> Self
    where
        E: DomainEvent,
        F: for<'a> Fn(&'a C, &'a mut crate::Tx, Vec<Envelope<E>>) -> TxFuture<'a>
            + Send
            + Sync
            + 'static,
    {
        self.consumers.push(Box::new(move |c: &mut Consumers<C>| {
            c.on_commit::<E, F>(name, f)
        }));
        self
    }

    /// Runs `f` as a durable job per `E` event (at least once, retried):
    /// for effects outside the database.
    pub fn reacts<E, F, Fut>(mut self, name: &'static str, f: F) -> Self
    where
        E: DomainEvent,
        F: Fn(C, Envelope<E>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = HandlerResult> + Send + 'static,
    {
        self.consumers.push(Box::new(move |c: &mut Consumers<C>| {
            c.reacts::<E, F, Fut>(name, f)
        }));
        self.works(jobs::EVENTS_QUEUE)
    }

    /// Handles jobs of type `J` (on `J::QUEUE`, which this node then works).
    pub fn job<J, F, Fut>(mut self, f: F) -> Self
    where
        J: Job,
        F: Fn(C, J) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = HandlerResult> + Send + 'static,
    {
        self.worker
            .push(Box::new(move |w: Worker<C>| w.job::<J, F, Fut>(f)));
        self.works(J::QUEUE)
    }

    /// Enqueues `job` once per `every` across all nodes.
    pub fn periodic<J: Job>(mut self, job: J, every: Duration) -> Self {
        self.periodic.push(Scheduled {
            name: J::KIND.to_string(),
            schedule: Schedule::Every(every),
            job: NewJob::of(&job),
        });
        self
    }

    /// Enqueues `job` at the times a cron expression names (UTC), once per
    /// time across all nodes. The expression is the slice's own constant: a
    /// malformed one stops the node at start, loudly.
    pub fn cron<J: Job>(mut self, expr: &str, job: J) -> Self {
        let schedule = match Schedule::cron(expr) {
            Ok(s) => s,
            Err(e) => panic!("slice {}: {e}", self.name),
        };
        self.periodic.push(Scheduled {
            name: format!("{}@{expr}", J::KIND),
            schedule,
            job: NewJob::of(&job),
        });
        self
    }

    /// Declares how many jobs of `queue` a node runs at once (1 unless
    /// declared; the largest declaration wins).
    pub fn queue(mut self, queue: Queue) -> Self {
        match self.queues.iter_mut().find(|q| q.name == queue.name) {
            Some(q) => q.concurrency = q.concurrency.max(queue.concurrency),
            None => self.queues.push(queue),
        }
        self
    }

    /// Runs `f` every `every` on every node (and at once when a test moves
    /// the clock). It returns how much it did, for the log.
    pub fn every<F, Fut>(mut self, name: &'static str, every: Duration, f: F) -> Self
    where
        F: Fn(C) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<usize, String>> + Send + 'static,
    {
        let f = Arc::new(f);
        self.duties.push(Duty {
            name,
            every,
            run: Arc::new(move |c| {
                let f = f.clone();
                Box::pin(async move { f(c).await })
            }),
        });
        self
    }

    fn works(self, q: &'static str) -> Self {
        self.queue(Queue::new(q, 1))
    }
}

/// The slices of an application, taken apart for wiring.
pub struct Wiring<C> {
    pub api: OpenApiRouter<C>,
    pub pages: axum::Router<C>,
    pub states: Vec<(TypeId, Arc<dyn Any + Send + Sync>)>,
    pub runtime: Runtime<C>,
}

/// Everything the slices run in the background, started by [`Runtime::start`].
pub struct Runtime<C> {
    consumers: Consumers<C>,
    worker: Worker<C>,
    queues: Vec<Queue>,
    duties: Vec<Duty<C>>,
    periodic: Vec<Scheduled>,
}

/// Takes the slices apart: their routes merged, their state, and the
/// runtime that will run their consumers, jobs and duties.
pub fn wire<C: Clone + Send + Sync + 'static>(slices: Vec<Slice<C>>) -> Wiring<C> {
    let mut api = OpenApiRouter::new();
    let mut pages = axum::Router::new();
    let mut states = Vec::new();
    let mut consumers = Consumers::default();
    let mut worker = Worker::new();
    let mut queues = vec![Queue::new(jobs::MAINTENANCE_QUEUE, 1)];
    let mut duties = Vec::new();
    let mut periodic = Vec::new();
    for s in slices {
        api = api.merge(s.api);
        pages = pages.merge(s.pages);
        states.extend(s.states);
        for register in s.consumers {
            register(&mut consumers);
        }
        for add in s.worker {
            worker = add(worker);
        }
        for q in s.queues {
            match queues.iter_mut().find(|have| have.name == q.name) {
                Some(have) => have.concurrency = have.concurrency.max(q.concurrency),
                None => queues.push(q),
            }
        }
        duties.extend(s.duties);
        periodic.extend(s.periodic);
    }
    for r in consumers.reactions() {
        let run = r.run.clone();
        worker = worker.handle(r.kind, move |ctx: C, payload| {
            let run = run.clone();
            async move {
                let rec: crate::events::Recorded = serde_json::from_value(payload)
                    .map_err(|e| jobs::JobError::Discard(format!("not a recorded event: {e}")))?;
                run(ctx, rec).await
            }
        });
    }
    Wiring {
        api,
        pages,
        states,
        runtime: Runtime {
            consumers,
            worker,
            queues,
            duties,
            periodic,
        },
    }
}

/// How often periodic jobs are scheduled and orphaned jobs rescued.
const SCHEDULE_EVERY: Duration = Duration::from_secs(15);

/// The background work of a running node.
pub struct Running {
    loops: Vec<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    node: String,
    db: crate::Db,
}

impl Running {
    /// After `stop` has turned true: lets running jobs finish for up to
    /// `grace`, then stops the rest and hands their jobs back to the queue
    /// (for another node, or this one's next start).
    pub async fn stop(self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        for w in &self.workers {
            while !w.is_finished() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        for h in self.workers.iter().chain(&self.loops) {
            h.abort();
        }
        match jobs::hand_back(&self.db, &self.node).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(jobs = n, "jobs still running at shutdown handed back"),
            Err(e) => {
                tracing::warn!(error = %e, "handing back running jobs failed; they are rescued later")
            }
        }
    }
}

impl<C: Clone + Send + Sync + 'static> Runtime<C> {
    /// The queues this runtime works, with their concurrency.
    pub fn queues(&self) -> &[Queue] {
        &self.queues
    }

    /// Starts the outbox relay, `concurrency` workers per queue, every duty,
    /// and the scheduler of periodic and cron jobs; all stop when `stop`
    /// turns true.
    pub fn start(self, kernel: &Kernel, ctx: C, stop: watch::Receiver<bool>) -> Running {
        let mut loops = Vec::new();
        let mut workers = Vec::new();
        let node = kernel.hub.node().to_string();
        let consumers = Arc::new(self.consumers);
        {
            let mut s = stop.clone();
            loops.push(tokio::spawn(outbox::relay(
                kernel.clone(),
                ctx.clone(),
                consumers,
                async move {
                    let _ = s.wait_for(|v| *v).await;
                },
            )));
        }
        let worker = self.worker.on_node(&node);
        for q in &self.queues {
            for _ in 0..q.concurrency.max(1) {
                workers.push(tokio::spawn(
                    worker.clone().yielding_to(kernel.load.clone()).run(
                        ctx.clone(),
                        kernel.db.clone(),
                        kernel.clock.clone(),
                        q.name,
                        Duration::from_millis(500),
                        stop.clone(),
                    ),
                ));
            }
        }
        for duty in self.duties {
            loops.push(tokio::spawn(run_duty(
                duty,
                kernel.clone(),
                ctx.clone(),
                stop.clone(),
            )));
        }
        loops.push(tokio::spawn(schedule(kernel.clone(), self.periodic, stop)));
        Running {
            loops,
            workers,
            node,
            db: kernel.db.clone(),
        }
    }
}

async fn run_duty<C: Clone + Send + Sync + 'static>(
    duty: Duty<C>,
    kernel: Kernel,
    ctx: C,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(duty.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = kernel.clock.changed() => {}
            _ = stop.wait_for(|v| *v) => return,
        }
        match (duty.run)(ctx.clone()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(duty = duty.name, n, "duty done"),
            Err(e) => tracing::warn!(duty = duty.name, error = %e, "duty failed"),
        }
    }
}

async fn schedule(kernel: Kernel, periodic: Vec<Scheduled>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SCHEDULE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = kernel.clock.changed() => {}
            _ = stop.wait_for(|v| *v) => return,
        }
        for s in &periodic {
            if let Err(e) = jobs::schedule_once(&kernel.db, &kernel.clock, s).await {
                tracing::warn!(schedule = %s.name, error = %e, "scheduling a job failed");
            }
        }
        if let Err(e) = jobs::rescue(
            &kernel.db,
            &kernel.clock,
            Duration::from_secs(kernel.config.jobs_rescue_secs),
        )
        .await
        {
            tracing::warn!(error = %e, "rescuing orphaned jobs failed");
        }
    }
}
