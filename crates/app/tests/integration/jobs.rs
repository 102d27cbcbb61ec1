//! The durable job queue on both backends, under contention: each job
//! once, each queue within its concurrency (and not held up by another),
//! a cron slot enqueued once by two nodes.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use kernel::jobs::{NewJob, Worker};

use crate::{both, support::*};

both!(many_workers_run_each_job_exactly_once);
async fn many_workers_run_each_job_exactly_once(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let db = t.app().db().clone();
    let clock = t.clock().clone();
    let queue = "test";
    for n in 0..60 {
        kernel::jobs::enqueue(
            &db,
            &clock,
            &NewJob::new(queue, "test.count", serde_json::json!({ "n": n })),
        )
        .await
        .unwrap();
    }
    // The same unique key from sixteen tasks at once while waiting: one job.
    let once =
        NewJob::new(queue, "test.count", serde_json::json!({ "n": 1000 })).unique("only-once");
    let mut adds = Vec::new();
    for _ in 0..16 {
        let (db, clock, once) = (db.clone(), clock.clone(), once.clone());
        adds.push(tokio::spawn(async move {
            kernel::jobs::enqueue(&db, &clock, &once).await.unwrap()
        }));
    }
    for a in adds {
        a.await.unwrap();
    }

    let seen: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
    let s = seen.clone();
    let worker = Worker::new().handle("test.count", move |(), p| {
        let s = s.clone();
        async move {
            let n = p["n"].as_i64().ok_or("no n")?;
            *s.lock().unwrap().entry(n).or_default() += 1;
            Ok(())
        }
    });
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (worker, db, clock) = (worker.clone(), db.clone(), clock.clone());
        tasks.push(tokio::spawn(async move {
            while worker.run_one(&(), &db, &clock, queue).await.unwrap() {}
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let counts = seen.lock().unwrap().clone();
    assert_eq!(counts.len(), 61);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    t.stop().await;
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Slow;
impl kernel::jobs::Job for Slow {
    const KIND: &'static str = "test.slow";
    const QUEUE: &'static str = "test_slow";
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Quick;
impl kernel::jobs::Job for Quick {
    const KIND: &'static str = "test.quick";
    const QUEUE: &'static str = "test_quick";
}

#[derive(Default)]
struct Gauges {
    running: AtomicUsize,
    most: AtomicUsize,
    slow_done: AtomicUsize,
    quick_done: AtomicUsize,
    /// Slow jobs finished when the last quick one was.
    slow_done_at_quick: AtomicUsize,
}

both!(each_queue_runs_at_most_its_concurrency_and_a_slow_queue_never_holds_up_another);
async fn each_queue_runs_at_most_its_concurrency_and_a_slow_queue_never_holds_up_another(
    backend: Backend,
) {
    use kernel::{
        Slice,
        jobs::{Queue, enqueue},
    };
    let t = TestApp::spawn(backend).await;
    let kernel = t.app().kernel.clone();
    for _ in 0..10 {
        enqueue(&kernel.db, &kernel.clock, &NewJob::of(&Slow))
            .await
            .unwrap();
    }
    for _ in 0..5 {
        enqueue(&kernel.db, &kernel.clock, &NewJob::of(&Quick))
            .await
            .unwrap();
    }
    let g: Arc<Gauges> = Arc::default();
    let (slow, quick) = (g.clone(), g.clone());
    let slice = Slice::<()>::new("test")
        .queue(Queue::new("test_slow", 2))
        .queue(Queue::new("test_quick", 1))
        .job::<Slow, _, _>(move |(), _| {
            let g = slow.clone();
            async move {
                let now = g.running.fetch_add(1, Ordering::SeqCst) + 1;
                g.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                g.running.fetch_sub(1, Ordering::SeqCst);
                g.slow_done.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .job::<Quick, _, _>(move |(), _| {
            let g = quick.clone();
            async move {
                if g.quick_done.fetch_add(1, Ordering::SeqCst) + 1 == 5 {
                    g.slow_done_at_quick
                        .store(g.slow_done.load(Ordering::SeqCst), Ordering::SeqCst);
                }
                Ok(())
            }
        });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = kernel::slice::wire(vec![slice])
        .runtime
        .start(&kernel, (), stopped);
    t.eventually("all ten slow jobs done", || async {
        g.slow_done.load(Ordering::SeqCst) == 10
    })
    .await;
    assert_eq!(
        g.most.load(Ordering::SeqCst),
        2,
        "two at a time, never more"
    );
    assert_eq!(g.quick_done.load(Ordering::SeqCst), 5);
    assert!(
        g.slow_done_at_quick.load(Ordering::SeqCst) < 10,
        "the quick queue finished while the slow one still had work"
    );
    let _ = stop.send(true);
    running.stop(Duration::from_secs(5)).await;
    t.stop().await;
}

both!(two_nodes_enqueue_a_cron_job_once_per_slot);
async fn two_nodes_enqueue_a_cron_job_once_per_slot(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let other = t.another_node().await;
    let count = || async {
        kernel::db_run!(t.app().db(), p => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM jobs WHERE kind = 'sales.reconcile_inventory'").fetch_one(p).await)
        .unwrap()
    };
    // The integrity check runs every 5 minutes ("*/5 * * * *"); both nodes'
    // schedulers wake on each move of the shared clock.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = count().await;
    for slot in 1..=3 {
        t.advance(Duration::from_secs(5 * 60));
        t.eventually(&format!("slot {slot} enqueued"), || async {
            count().await >= start + slot
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            count().await,
            start + slot,
            "one job per slot, not one per node"
        );
    }
    other.stop().await;
    t.stop().await;
}
