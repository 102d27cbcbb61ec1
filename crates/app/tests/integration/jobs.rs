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

/// A webhook receiver that never answers its first connection (so the
/// delivery is mid-flight when its node dies) and answers 200 after that.
struct Stalling {
    url: String,
    accepted: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
}

async fn stalling_receiver() -> Stalling {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (accepted, answered) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (a, b) = (accepted.clone(), answered.clone());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut sock, _)) = listener.accept().await {
            if a.fetch_add(1, Ordering::SeqCst) == 0 {
                held.push(sock);
                continue;
            }
            let b = b.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                if sock.read(&mut buf).await.unwrap_or(0) > 0 {
                    let _ = sock
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    b.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    Stalling {
        url,
        accepted,
        answered,
    }
}

/// A node of the rescue test: delivers to private addresses, rescues a
/// dead node's jobs after 2 s.
async fn start_binary(dir: &std::path::Path) -> Binary {
    Binary::start(
        dir,
        &[
            ("VOELGOED_STOREFRONT_PER_MINUTE", "0"),
            ("VOELGOED_WEBHOOKS_ALLOW_PRIVATE", "true"),
            ("VOELGOED_JOBS_RESCUE_SECS", "2"),
        ],
    )
    .await
}

async fn wait_until(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    for _ in 0..secs * 10 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within {secs} s: {what}");
}

/// A node killed (SIGKILL) in the middle of a webhook delivery: the job
/// stays `running` under the dead node's name until the next node rescues
/// it (`--jobs-rescue-secs`) and delivers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_a_killed_process_is_rescued_by_the_next() {
    let sink = stalling_receiver().await;
    let dir = std::env::temp_dir().join(unique("voelgoed-killed"));
    let first = start_binary(&dir).await;
    let api = first.api.clone();
    let org = api.signup().await;
    let r = api
        .post(
            &format!("/api/v1/orgs/{}/webhooks", org.slug),
            Some(&org.key),
            serde_json::json!({"url": sink.url, "event_types": ["order.paid"]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let event = api.event(&org, 5).await;
    api.buy(&org, &event, 1).await;
    let accepted = sink.accepted.clone();
    wait_until("the delivery is in flight", 20, || {
        accepted.load(Ordering::SeqCst) >= 1
    })
    .await;
    drop(first); // SIGKILL, mid-delivery

    let db = sqlx::sqlite::SqlitePoolOptions::new()
        .connect(&format!("sqlite://{}", dir.join("voelgoed.db").display()))
        .await
        .unwrap();
    let states = || async {
        sqlx::query_as::<_, (String,)>("SELECT state FROM jobs WHERE kind = 'webhooks.deliver'")
            .fetch_all(&db)
            .await
            .unwrap()
    };
    assert_eq!(
        states().await,
        vec![("running".to_string(),)],
        "orphaned by the dead node"
    );
    assert_eq!(sink.answered.load(Ordering::SeqCst), 0);

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let _second = start_binary(&dir).await;
    let answered = sink.answered.clone();
    wait_until("the rescued delivery arrives", 40, || {
        answered.load(Ordering::SeqCst) >= 1
    })
    .await;
    let mut done = false;
    for _ in 0..50 {
        if states().await == vec![("done".to_string(),)] {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(done, "the job is done: {:?}", states().await);
    db.close().await;
    let _ = std::fs::remove_dir_all(dir);
}
