//! `voelgoed bench`: starts a fresh node on loopback, seeds one event, and
//! drives it over HTTP with N concurrent connections:
//!
//! - baseline: `GET /healthz` on the same server, same run;
//! - holds + checkout until sold out (and checks nothing was oversold);
//! - first admissions: every ticket scanned once;
//! - repeat scans: the same tickets again (`already_admitted`).
//!
//! Each scenario prints requests/s, p50, p99 and its ratio to the baseline.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::{config::ConfigArgs, server};

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Concurrent connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Capacity of the ticket type sold out in the holds scenario.
    #[arg(long, default_value_t = 2000)]
    pub tickets: i64,
    /// Seconds for the baseline and the repeat-scan scenarios.
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
}

struct Stats {
    name: &'static str,
    ok: usize,
    elapsed: Duration,
    latencies: Vec<u32>,
}

impl Stats {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let mut l = self.latencies.clone();
        l.sort_unstable();
        let i = ((l.len() as f64 - 1.0) * p).round() as usize;
        l[i] as f64 / 1000.0
    }
}

pub async fn run(config_args: ConfigArgs, args: BenchArgs) -> anyhow::Result<()> {
    let mut config = config_args.resolve(Some("127.0.0.1:0".parse()?))?;
    let tmp = std::env::temp_dir().join(format!("voelgoed-bench-{}", uuid::Uuid::now_v7()));
    if config.database_url.is_none() {
        config.data_dir = tmp.clone();
    } else {
        config.database_url =
            Some(fresh_pg_database(config.database_url.as_deref().unwrap_or_default()).await?);
    }
    config.db_max_connections = config
        .db_max_connections
        .max(args.connections as u32 / 2)
        .min(64);
    let mode = match (&config.database_url, &config.redis_url) {
        (None, _) => "SQLite (embedded)".to_string(),
        (Some(_), Some(_)) => "PostgreSQL + Redis".to_string(),
        (Some(_), None) => "PostgreSQL".to_string(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let running = server::start(config, listener).await?;
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()?;

    let (org, key) = signup(&client, &base).await?;
    let (event, tt) = seed_event(&client, &base, &org, &key, args.tickets).await?;
    let device = device_token(&client, &base, &org, &key, &event).await?;

    println!(
        "voelgoed bench · {mode} · {} connections · {} tickets",
        args.connections, args.tickets
    );
    let baseline = healthz(
        &client,
        &base,
        args.connections,
        args.seconds,
        "baseline GET /healthz",
    )
    .await;

    // Holds + checkout until sold out.
    let codes = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sold_out = Arc::new(AtomicUsize::new(0));
    let orders = {
        let (base, org, event, tt, codes, sold_out) = (
            base.clone(),
            org.clone(),
            event.clone(),
            tt.clone(),
            codes.clone(),
            sold_out.clone(),
        );
        until_done(
            &client,
            args.connections,
            "hold + checkout (1 ticket)",
            move |c: reqwest::Client| {
                let (base, org, event, tt, codes, sold_out) = (
                    base.clone(),
                    org.clone(),
                    event.clone(),
                    tt.clone(),
                    codes.clone(),
                    sold_out.clone(),
                );
                async move {
                    let r = c
                        .post(format!("{base}/api/v1/store/{org}/events/{event}/holds"))
                        .json(&json!({"items": [{"ticket_type_id": tt, "quantity": 1}]}))
                        .send()
                        .await
                        .ok()?;
                    if r.status().as_u16() == 409 {
                        sold_out.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                    let hold: Value = r.json().await.ok()?;
                    let hold_id = hold["id"].as_str()?.to_string();
                    let r = c
                        .post(format!(
                            "{base}/api/v1/store/{org}/holds/{hold_id}/checkout"
                        ))
                        .header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
                        .json(&json!({"buyer": {"email": "bench@example.com", "name": "Bench"}}))
                        .send()
                        .await
                        .ok()?;
                    let order: Value = r.json().await.ok()?;
                    let code = order["tickets"][0]["code"].as_str()?.to_string();
                    if let Ok(mut c) = codes.lock() {
                        c.push(code);
                    }
                    Some(true)
                }
            },
        )
        .await
    };
    let codes: Vec<String> = codes.lock().map(|c| c.clone()).unwrap_or_default();
    let oversold = codes.len() as i64 > args.tickets;

    tokio::time::sleep(Duration::from_secs(1)).await;
    // First admissions: every code once.
    let codes = Arc::new(codes);
    let first = {
        let (base, event, device, codes) =
            (base.clone(), event.clone(), device.clone(), codes.clone());
        let next = Arc::new(AtomicUsize::new(0));
        until_done(
            &client,
            args.connections,
            "scan: first admissions",
            move |c: reqwest::Client| {
                let (base, event, device, codes, next) = (
                    base.clone(),
                    event.clone(),
                    device.clone(),
                    codes.clone(),
                    next.clone(),
                );
                async move {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let code = codes.get(i)?;
                    Some(
                        scan(&c, &base, &device, code, &event).await.as_deref() == Some("admitted"),
                    )
                }
            },
        )
        .await
    };
    // Let the previous scenario's background work (outbox relay, vacuum)
    // drain, and measure the baseline again under the same conditions: the
    // repeat scans are compared with the baseline next to them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline2 = healthz(
        &client,
        &base,
        args.connections,
        args.seconds,
        "baseline again (before repeats)",
    )
    .await;
    let repeat = {
        let (base, event, device, codes) =
            (base.clone(), event.clone(), device.clone(), codes.clone());
        timed(
            &client,
            args.connections,
            Duration::from_secs(args.seconds),
            "scan: repeat (already admitted)",
            move |c: reqwest::Client, i| {
                let (base, event, device, codes) =
                    (base.clone(), event.clone(), device.clone(), codes.clone());
                async move {
                    if codes.is_empty() {
                        return false;
                    }
                    let code = &codes[i % codes.len()];
                    scan(&c, &base, &device, code, &event).await.as_deref()
                        == Some("already_admitted")
                }
            },
        )
        .await
    };

    println!(
        "\n{:<34} {:>9} {:>11} {:>9} {:>9} {:>10}",
        "scenario", "ok", "req/s", "p50 ms", "p99 ms", "vs base"
    );
    for (s, base) in [
        (&baseline, &baseline),
        (&orders, &baseline),
        (&first, &baseline),
        (&baseline2, &baseline2),
        (&repeat, &baseline2),
    ] {
        println!(
            "{:<34} {:>9} {:>11.0} {:>9.2} {:>9.2} {:>9.1}%",
            s.name,
            s.ok,
            s.rps(),
            s.pct(0.5),
            s.pct(0.99),
            100.0 * s.rps() / base.rps().max(1e-9)
        );
    }
    println!(
        "\norders: {} of capacity {} · sold-out answers: {} · oversold: {} · first admissions: {}",
        codes.len(),
        args.tickets,
        sold_out.load(Ordering::Relaxed),
        if oversold { "YES" } else { "no" },
        first.ok
    );
    running.stop().await;
    let _ = std::fs::remove_dir_all(&tmp);
    if oversold {
        bail!(
            "oversold: {} orders for {} tickets",
            codes.len(),
            args.tickets
        );
    }
    Ok(())
}

/// `GET /healthz` on `n` connections for `seconds`: the baseline.
async fn healthz(
    client: &reqwest::Client,
    base: &str,
    n: usize,
    seconds: u64,
    name: &'static str,
) -> Stats {
    let url = format!("{base}/healthz");
    timed(
        client,
        n,
        Duration::from_secs(seconds),
        name,
        move |c: reqwest::Client, _i| {
            let url = url.clone();
            async move {
                c.get(url)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            }
        },
    )
    .await
}

async fn scan(
    c: &reqwest::Client,
    base: &str,
    device: &str,
    code: &str,
    event: &str,
) -> Option<String> {
    let r = c
        .post(format!("{base}/api/v1/scan"))
        .bearer_auth(device)
        .json(&json!({"code": code, "event_id": event}))
        .send()
        .await
        .ok()?;
    let v: Value = r.json().await.ok()?;
    v["result"].as_str().map(str::to_string)
}

/// Runs `f` on `n` workers for `d`; counts successes and their latencies.
async fn timed<F, Fut>(
    client: &reqwest::Client,
    n: usize,
    d: Duration,
    name: &'static str,
    f: F,
) -> Stats
where
    F: Fn(reqwest::Client, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..n {
        let (c, f) = (client.clone(), f.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = w;
            while start.elapsed() < d {
                let t = Instant::now();
                if f(c.clone(), i).await {
                    lat.push(t.elapsed().as_micros() as u32);
                }
                i += n;
            }
            lat
        }));
    }
    collect(name, start, tasks).await
}

/// Runs `f` on `n` workers until it answers `None`; counts `Some(true)`.
async fn until_done<F, Fut>(client: &reqwest::Client, n: usize, name: &'static str, f: F) -> Stats
where
    F: Fn(reqwest::Client) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Option<bool>> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (c, f) = (client.clone(), f.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let t = Instant::now();
                match f(c.clone()).await {
                    Some(true) => lat.push(t.elapsed().as_micros() as u32),
                    Some(false) => {}
                    None => break,
                }
            }
            lat
        }));
    }
    collect(name, start, tasks).await
}

async fn collect(
    name: &'static str,
    start: Instant,
    tasks: Vec<tokio::task::JoinHandle<Vec<u32>>>,
) -> Stats {
    let mut latencies = Vec::new();
    for t in tasks {
        if let Ok(l) = t.await {
            latencies.extend(l);
        }
    }
    Stats {
        name,
        ok: latencies.len(),
        elapsed: start.elapsed(),
        latencies,
    }
}

async fn signup(c: &reqwest::Client, base: &str) -> anyhow::Result<(String, String)> {
    let slug = format!("bench-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let r: Value = c
        .post(format!("{base}/api/v1/signup"))
        .json(&json!({"email": format!("{slug}@example.com"), "password": "bench-password", "org_name": "Bench", "org_slug": slug}))
        .send()
        .await?
        .json()
        .await?;
    let key = r["api_key"]
        .as_str()
        .context("signup gave no api_key")?
        .to_string();
    Ok((slug, key))
}

async fn seed_event(
    c: &reqwest::Client,
    base: &str,
    org: &str,
    key: &str,
    capacity: i64,
) -> anyhow::Result<(String, String)> {
    let e: Value = c
        .post(format!("{base}/api/v1/orgs/{org}/events"))
        .bearer_auth(key)
        .json(&json!({"name": "Bench", "starts_at": "2030-01-01T18:00:00Z", "ends_at": "2030-01-02T02:00:00Z", "timezone": "UTC"}))
        .send()
        .await?
        .json()
        .await?;
    let event = e["id"].as_str().context("no event id")?.to_string();
    let t: Value = c
        .post(format!(
            "{base}/api/v1/orgs/{org}/events/{event}/ticket-types"
        ))
        .bearer_auth(key)
        .json(&json!({"name": "GA", "price_cents": 0, "currency": "ZAR", "capacity": capacity}))
        .send()
        .await?
        .json()
        .await?;
    let tt = t["id"].as_str().context("no ticket type id")?.to_string();
    c.post(format!("{base}/api/v1/orgs/{org}/events/{event}/publish"))
        .bearer_auth(key)
        .send()
        .await?;
    Ok((event, tt))
}

async fn device_token(
    c: &reqwest::Client,
    base: &str,
    org: &str,
    key: &str,
    event: &str,
) -> anyhow::Result<String> {
    let d: Value = c
        .post(format!("{base}/api/v1/orgs/{org}/devices"))
        .bearer_auth(key)
        .json(&json!({"name": "bench", "event_ids": [event]}))
        .send()
        .await?
        .json()
        .await?;
    let code = d["pairing_code"].as_str().context("no pairing code")?;
    let p: Value = c
        .post(format!("{base}/api/v1/devices/pair"))
        .json(&json!({"pairing_code": code}))
        .send()
        .await?
        .json()
        .await?;
    Ok(p["device_token"]
        .as_str()
        .context("no device token")?
        .to_string())
}

/// Creates an empty database next to the one `url` names and returns its URL.
pub async fn fresh_pg_database(url: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let name = format!("vg_bench_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let (head, _) = url
        .rsplit_once('/')
        .context("DATABASE_URL has no database name")?;
    let query = url
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    Ok(format!("{head}/{name}{query}"))
}
