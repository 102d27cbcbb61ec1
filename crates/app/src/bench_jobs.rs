//! `voelgoed bench-jobs`: the job queue and webhook deliveries, measured
//! beside a baseline of the same database taken in the same run.
//!
//! - **Baseline**: one-row INSERT then UPDATE of that row, each committed on
//!   its own, from as many tasks as the queue has workers: what the
//!   database gives a queue that claims and finishes one job at a time.
//! - **Jobs**: enqueue N no-op jobs (each its own grouped write, from the
//!   same number of tasks), then run them with that many workers; reported
//!   as enqueued/s, run/s and end to end.
//! - **Webhooks**: a node with one endpoint on a loopback receiver; orders
//!   bought through the API, each fanned out to its deliveries (order.created,
//!   order.paid, ticket.issued); deliveries/s from the first order until the
//!   last delivery is acknowledged.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Args;
use kernel::{
    Clock, Db, db_run,
    jobs::{self, NewJob, Worker},
};
use tokio::net::TcpListener;

use crate::{
    config::ConfigArgs,
    server,
    testkit::{Api, EventSpec, drop_pg_database, fresh_pg_database},
};

#[derive(Args, Debug, Clone)]
pub struct BenchJobsArgs {
    /// Jobs to enqueue and run.
    #[arg(long, default_value_t = 5000)]
    pub jobs: usize,
    /// Concurrent enqueuers, workers and baseline tasks.
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// Seconds for the baseline.
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// Orders bought for the webhook scenario (each makes 3 deliveries).
    #[arg(long, default_value_t = 300)]
    pub orders: usize,
}

pub async fn run(config_args: ConfigArgs, args: BenchJobsArgs) -> anyhow::Result<()> {
    let mut config = config_args.resolve(Some("127.0.0.1:0".parse()?))?;
    let tmp = std::env::temp_dir().join(format!("voelgoed-bench-jobs-{}", uuid::Uuid::now_v7()));
    let mut pg_made = None;
    if let Some(admin) = config.database_url.clone() {
        let (url, name) = fresh_pg_database(&admin, "vg_bench").await?;
        config.database_url = Some(url);
        pg_made = Some((admin, name));
    } else {
        config.data_dir = tmp.clone();
    }
    config.storefront_per_minute = 0;
    config.webhooks_allow_private = true;
    let mode = if config.database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite (embedded)"
    };
    println!(
        "voelgoed bench-jobs · {mode} · {} workers · {} jobs",
        args.workers, args.jobs
    );

    let db = Db::connect(&config).await?;
    db.migrate().await?;
    let baseline = raw_baseline(&db, args.workers, args.seconds).await?;
    println!("baseline  insert+update (own commits)   {baseline:>9.0} pairs/s");
    let (enq, ran, total) = jobs_through_queue(&db, args.jobs, args.workers).await?;
    println!(
        "jobs      enqueue {:>8.0}/s · run {:>8.0}/s · end to end {:>8.0}/s ({:.0}% of the baseline)",
        enq,
        ran,
        total,
        100.0 * total / baseline
    );
    db.close().await;

    let deliveries = webhooks(config.clone(), args.orders).await?;
    println!("webhooks  {deliveries:>9.0} deliveries/s (fan-out, signing, POST, acknowledgement)");

    if let Some((admin, name)) = pg_made {
        drop_pg_database(&admin, &name).await;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

async fn raw_baseline(db: &Db, tasks: usize, seconds: u64) -> anyhow::Result<f64> {
    db_run!(db, p => sqlx::query("CREATE TABLE IF NOT EXISTS bench_scratch (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)").execute(p).await.map(|_| ()))?;
    let next = Arc::new(AtomicU64::new(1));
    let done = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (db, next, done) = (db.clone(), next.clone(), done.clone());
        handles.push(tokio::spawn(async move {
            while Instant::now() < until {
                let id = next.fetch_add(1, Ordering::Relaxed) as i64;
                let ins = {
                    let _w = db.serial_write().await;
                    db_run!(&db, p => sqlx::query("INSERT INTO bench_scratch (id, n) VALUES ($1, 0)").bind(id).execute(p).await.map(|_| ()))
                };
                if ins.is_err() {
                    continue;
                }
                let _w = db.serial_write().await;
                if db_run!(&db, p => sqlx::query("UPDATE bench_scratch SET n = n + 1 WHERE id = $1").bind(id).execute(p).await.map(|_| ())).is_ok() {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for h in handles {
        h.await?;
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    db_run!(db, p => sqlx::query("DROP TABLE bench_scratch").execute(p).await.map(|_| ()))?;
    Ok(rate)
}

async fn jobs_through_queue(db: &Db, n: usize, workers: usize) -> anyhow::Result<(f64, f64, f64)> {
    let clock = Clock::system();
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (db, clock, next) = (db.clone(), clock.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                jobs::enqueue(
                    &db,
                    &clock,
                    &NewJob::new("bench", "bench.noop", serde_json::json!({})),
                )
                .await?;
            }
            Ok::<_, sqlx::Error>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let enqueued = started.elapsed();
    let ran = Arc::new(AtomicUsize::new(0));
    let worker = Worker::<()>::new().handle("bench.noop", |(), _| async { Ok(()) });
    let run_started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (db, clock, worker, ran) = (db.clone(), clock.clone(), worker.clone(), ran.clone());
        handles.push(tokio::spawn(async move {
            while worker.run_one(&(), &db, &clock, "bench").await? {
                ran.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, sqlx::Error>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let run = run_started.elapsed();
    anyhow::ensure!(ran.load(Ordering::Relaxed) == n, "every job ran once");
    Ok((
        n as f64 / enqueued.as_secs_f64(),
        n as f64 / run.as_secs_f64(),
        n as f64 / started.elapsed().as_secs_f64(),
    ))
}

async fn webhooks(config: kernel::Config, orders: usize) -> anyhow::Result<f64> {
    let acked = Arc::new(AtomicUsize::new(0));
    let a = acked.clone();
    let receiver = axum::Router::new().fallback(move || {
        let a = a.clone();
        async move {
            a.fetch_add(1, Ordering::Relaxed);
            axum::http::StatusCode::NO_CONTENT
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let recv = tokio::spawn(async move {
        let _ = axum::serve(listener, receiver).await;
    });
    let node = server::start(config, TcpListener::bind("127.0.0.1:0").await?).await?;
    let api = Api::new(format!("http://{}", node.addr));
    let org = api.try_signup().await?;
    let event = api
        .try_event(&org, &EventSpec::capacity(orders as i64 + 10))
        .await?;
    let r = api
        .post(
            &format!("/api/v1/orgs/{}/webhooks", org.slug),
            Some(&org.key),
            serde_json::json!({"url": url, "event_types": ["order.created", "order.paid", "ticket.issued"]}),
        )
        .await;
    anyhow::ensure!(r.status() == 201, "webhook endpoint: {}", r.status());
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..8 {
        let (api, org, event, next) = (api.clone(), org.clone(), event.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < orders {
                api.buy(&org, &event, 1).await;
            }
        }));
    }
    for h in handles {
        h.await?;
    }
    let want = orders * 3;
    let deadline = Instant::now() + Duration::from_secs(30 + orders as u64 / 2);
    while acked.load(Ordering::Relaxed) < want {
        if Instant::now() > deadline {
            let db = node.app.db();
            let d: Vec<(String, i64)> = db_run!(db, p => sqlx::query_as("SELECT status, COUNT(*) FROM webhook_deliveries GROUP BY status").fetch_all(p).await)?;
            let j: Vec<(String, i64)> = db_run!(db, p => sqlx::query_as("SELECT state, COUNT(*) FROM jobs WHERE kind = 'webhooks.deliver' GROUP BY state").fetch_all(p).await)?;
            let o: i64 = db_run!(db, p => sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL").fetch_one(p).await)?;
            let w: Vec<(String, uuid::Uuid, String, i64, i64, Option<String>)> = db_run!(db, p => sqlx::query_as("SELECT d.event_type, d.event_id, d.subject, j.run_at, j.attempts, j.last_error FROM webhook_deliveries d JOIN jobs j ON j.id = d.job_id WHERE d.status <> 'delivered'").fetch_all(p).await)?;
            eprintln!("waiting: {w:?} now {}", node.app.kernel.now());
            anyhow::bail!(
                "deliveries did not finish: {} of {want} acknowledged; deliveries {d:?}; jobs {j:?}; undelivered events {o}",
                acked.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = want as f64 / started.elapsed().as_secs_f64();
    node.stop().await;
    recv.abort();
    Ok(rate)
}
