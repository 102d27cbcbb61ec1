//! `voelgoed bench`: drives a node over loopback HTTP with N concurrent
//! connections — a fresh node in this process, or (`--target URL`) a node
//! started separately, so server and load generator do not share a runtime.
//!
//! - baseline: `GET /healthz`, at the start and again before the repeats;
//! - holds + checkout until sold out;
//! - first admissions: every ticket scanned once;
//! - repeat scans: the same tickets again (`already_admitted`).
//!
//! Each scenario prints requests/s, p50, p99, its ratio to the baseline of
//! the start and to the baseline measured next to it, and every non-2xx
//! answer by status. Afterwards the tickets sold are counted in the
//! database (not from the client's tally) and compared with the capacity.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use tokio::net::TcpListener;

mod gates;

use crate::{
    config::ConfigArgs,
    server,
    testkit::{Api, EventSpec, drop_pg_database, fresh_pg_database},
};

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
    /// Drive a node already running at this URL (start it with
    /// VOELGOED_STOREFRONT_PER_MINUTE=0). The oversell check then reads the
    /// target's database from DATABASE_URL or --data-dir when given.
    #[arg(long)]
    pub target: Option<String>,
    /// The flash sale instead (see `bench_flash`): `--buyers` visitors for
    /// `--tickets` through a waiting room, free, then by card when
    /// `--standin` is given.
    #[arg(long)]
    pub flash: bool,
    /// Visitors in the flash sale.
    #[arg(long, default_value_t = 50_000)]
    pub buyers: usize,
    /// The card provider stand-in the node pays through (its base URL), for
    /// the flash sale's card run; its publishable key is `--standin-pk`.
    #[arg(long)]
    pub standin: Option<String>,
    #[arg(long, default_value = "pk_test_standin")]
    pub standin_pk: String,
    /// Ceilings measured beside, to report against: PostgreSQL's TPC-B
    /// (pgbench, transactions/s) and Redis' guarded-decrement EVAL/s.
    #[arg(long)]
    pub tpcb: Option<f64>,
    #[arg(long)]
    pub redis_eval: Option<f64>,
    /// The seated scenario instead: a map of this many seats (rows of 200);
    /// half sold seat by seat, half best available, the storefront's seat
    /// read timed beside the baseline.
    #[arg(long, default_value_t = 0)]
    pub seats: usize,
    /// The gate instead (see `bench/gates.rs`): `--tickets` tickets
    /// scanned through gates with rules, at the peak and at half of it,
    /// and code verifications per second on one core.
    #[arg(long)]
    pub gates: bool,
}

/// Non-2xx answers by status.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<u16, usize>>);

impl Tally {
    fn add(&self, status: u16) {
        if let Ok(mut t) = self.0.lock() {
            *t.entry(status).or_default() += 1;
        }
    }
    fn text(&self) -> String {
        let t = self.0.lock().map(|t| t.clone()).unwrap_or_default();
        if t.is_empty() {
            return "-".into();
        }
        t.iter()
            .map(|(s, n)| format!("{s}×{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

struct Stats {
    name: &'static str,
    ok: usize,
    elapsed: Duration,
    latencies: Vec<u32>,
    errors: Arc<Tally>,
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

/// What one step of a scenario came to.
enum Step {
    Done,
    Failed(u16),
    /// No more work (sold out, codes used up).
    Finished,
}

pub async fn run(config_args: ConfigArgs, args: BenchArgs) -> anyhow::Result<()> {
    let mut config = config_args.resolve(Some("127.0.0.1:0".parse()?))?;
    let tmp = std::env::temp_dir().join(format!("voelgoed-bench-{}", uuid::Uuid::now_v7()));
    let mut node = None;
    let mut pg_made = None;
    let base = match &args.target {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => {
            if let Some(admin) = config.database_url.clone() {
                let (url, name) = fresh_pg_database(&admin, "vg_bench").await?;
                config.database_url = Some(url);
                pg_made = Some((admin, name));
            } else {
                config.data_dir = tmp.clone();
            }
            config.db_max_connections = config
                .db_max_connections
                .max(args.connections as u32 / 2)
                .min(64);
            config.storefront_per_minute = 0;
            config.buyer_per_minute = 0;
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let n = server::start(config.clone(), listener).await?;
            let base = format!("http://{}", n.addr);
            node = Some(n);
            base
        }
    };
    let mode = match (&args.target, &config.database_url, &config.redis_url) {
        (Some(t), _, _) => format!("target {t}"),
        (None, None, _) => format!(
            "SQLite (embedded, synchronous={})",
            if config.sqlite_synchronous_full {
                "FULL"
            } else {
                "NORMAL"
            }
        ),
        (None, Some(_), Some(_)) => "PostgreSQL + Redis".to_string(),
        (None, Some(_), None) => "PostgreSQL".to_string(),
    };
    let api = Api::new(base.clone());
    let org = api.try_signup().await.context("signing up the bench org")?;
    if args.seats > 0 {
        let result = seated(&api, &org, &mode, &args, node.as_ref()).await;
        if let Some(n) = node {
            n.stop().await;
        }
        if let Some((admin, name)) = pg_made {
            drop_pg_database(&admin, &name).await;
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return result;
    }
    if args.gates {
        let target_db = match (&node, &args.target) {
            (None, Some(_))
                if config_args.database_url.is_some() || config_args.data_dir.is_some() =>
            {
                Some(
                    kernel::Db::connect(&config)
                        .await
                        .context("opening the target's database")?,
                )
            }
            _ => None,
        };
        let db = node.as_ref().map(|n| n.app.db()).or(target_db.as_ref());
        let result = gates::run(&api, &org, &mode, &args, db).await;
        if let Some(db) = target_db {
            db.close().await;
        }
        if let Some(n) = node {
            n.stop().await;
        }
        if let Some((admin, name)) = pg_made {
            drop_pg_database(&admin, &name).await;
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return result;
    }
    if args.flash {
        let result = flash(
            &api,
            &org,
            &mode,
            &args,
            &config,
            &config_args,
            node.as_ref(),
        )
        .await;
        if let Some(n) = node {
            n.stop().await;
        }
        if let Some((admin, name)) = pg_made {
            drop_pg_database(&admin, &name).await;
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return result;
    }
    let event = api
        .try_event(&org, &EventSpec::capacity(args.tickets).max_per_order(1))
        .await?;
    let device = api.try_device(&org, &[&event.id]).await?;
    let client = api.client.clone();

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
    let (orders, codes, sold_out) = sell(
        &client,
        &base,
        &org,
        &event,
        args.connections,
        1,
        "hold + checkout (1 ticket)",
    )
    .await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    // First admissions: every code once.
    let codes = Arc::new(codes);
    let first = {
        let (base, event_id, device, codes) = (
            base.clone(),
            event.id.clone(),
            device.clone(),
            codes.clone(),
        );
        let next = Arc::new(AtomicUsize::new(0));
        until_done(
            &client,
            args.connections,
            "scan: first admissions",
            move |c| {
                let (base, event_id, device, codes, next) = (
                    base.clone(),
                    event_id.clone(),
                    device.clone(),
                    codes.clone(),
                    next.clone(),
                );
                async move {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(code) = codes.get(i) else {
                        return Step::Finished;
                    };
                    scan(&c, &base, &device, code, &event_id, "admitted").await
                }
            },
        )
        .await
    };
    // Let the previous scenario's background work (outbox relay, vacuum)
    // drain, and measure the baseline again under the same conditions.
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
        let (base, event_id, device, codes) = (
            base.clone(),
            event.id.clone(),
            device.clone(),
            codes.clone(),
        );
        timed(
            &client,
            args.connections,
            Duration::from_secs(args.seconds),
            "scan: repeat (already admitted)",
            move |c, i| {
                let (base, event_id, device, codes) = (
                    base.clone(),
                    event_id.clone(),
                    device.clone(),
                    codes.clone(),
                );
                async move {
                    if codes.is_empty() {
                        return Step::Finished;
                    }
                    let code = &codes[i % codes.len()];
                    scan(&c, &base, &device, code, &event_id, "already_admitted").await
                }
            },
        )
        .await
    };

    println!(
        "\n{:<34} {:>8} {:>9} {:>8} {:>8} {:>9} {:>9}  non-2xx",
        "scenario", "ok", "req/s", "p50 ms", "p99 ms", "vs start", "vs next"
    );
    for (s, next) in [
        (&baseline, &baseline),
        (&orders, &baseline),
        (&first, &baseline),
        (&baseline2, &baseline2),
        (&repeat, &baseline2),
    ] {
        println!(
            "{:<34} {:>8} {:>9.0} {:>8.2} {:>8.2} {:>8.1}% {:>8.1}%  {}",
            s.name,
            s.ok,
            s.rps(),
            s.pct(0.5),
            s.pct(0.99),
            100.0 * s.rps() / baseline.rps().max(1e-9),
            100.0 * s.rps() / next.rps().max(1e-9),
            s.errors.text(),
        );
    }

    // Oversell: counted where it is true, in the database.
    let sold_in_db = match &node {
        Some(n) => Some(tickets_of_event(n.app.db(), &event.id).await?),
        None if args.target.is_some()
            && (config_args.database_url.is_some() || config_args.data_dir.is_some()) =>
        {
            let db = kernel::Db::connect(&config)
                .await
                .context("opening the target's database")?;
            let n = tickets_of_event(&db, &event.id).await?;
            db.close().await;
            Some(n)
        }
        None => None,
    };
    println!(
        "\norders answered: {} of capacity {} · sold-out answers: {} · first admissions: {}",
        codes.len(),
        args.tickets,
        sold_out,
        first.ok
    );
    let oversold = match sold_in_db {
        Some(n) => {
            println!(
                "tickets in the database: {n} of capacity {} · oversold: {}",
                args.tickets,
                if n > args.tickets { "YES" } else { "no" }
            );
            n > args.tickets
        }
        None => {
            println!(
                "tickets in the database: not checked (give the target's DATABASE_URL or --data-dir)"
            );
            codes.len() as i64 > args.tickets
        }
    };
    if let Some(n) = node {
        n.stop().await;
    }
    if let Some((admin, name)) = pg_made {
        drop_pg_database(&admin, &name).await;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    if oversold {
        bail!(
            "oversold: more tickets than the capacity of {}",
            args.tickets
        );
    }
    Ok(())
}

/// The seated scenario: a map of `--seats` seats (rows of 200); workers
/// hold the first half seat by seat (each its own seats, one or two at a
/// time), then best available (two at a time) until sold out; the
/// storefront's `/seats` read timed on its own. Every figure beside
/// `GET /healthz` measured in the same run; the database checked for a seat
/// in two holds.
async fn seated(
    api: &Api,
    org: &crate::testkit::Org,
    mode: &str,
    args: &BenchArgs,
    node: Option<&server::Node>,
) -> anyhow::Result<()> {
    let n = args.seats;
    let per_row = 200.min(n).max(1);
    let event = api
        .try_event(
            org,
            &EventSpec::capacity(n as i64).max_per_order(50).draft(),
        )
        .await?;
    let rows: Vec<Value> = (0..n.div_ceil(per_row))
        .map(|r| {
            let seats: Vec<Value> = (0..per_row.min(n - r * per_row))
                .map(|s| json!({"label": (s + 1).to_string(), "x": s, "y": r, "ticket_type_id": event.ticket_type}))
                .collect();
            json!({"label": format!("R{}", r + 1), "seats": seats})
        })
        .collect();
    let map: Value = api
        .client
        .put(api.url(&format!(
            "/api/v1/orgs/{}/events/{}/seating",
            org.slug, event.id
        )))
        .bearer_auth(&org.key)
        .json(&json!({"sections": [{"name": "Hall", "rows": rows}]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    api.client
        .post(api.url(&format!(
            "/api/v1/orgs/{}/events/{}/publish",
            org.slug, event.id
        )))
        .bearer_auth(&org.key)
        .json(&json!({}))
        .send()
        .await?
        .error_for_status()?;
    let ids: Vec<String> = map["sections"][0]["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .flat_map(|r| r["seats"].as_array().cloned().unwrap_or_default())
                .filter_map(|s| s["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let base = api.base.clone();
    let client = api.client.clone();
    println!(
        "voelgoed bench --seats · {mode} · {} connections · {n} seats",
        args.connections
    );
    let baseline = healthz(
        &client,
        &base,
        args.connections,
        args.seconds,
        "baseline GET /healthz",
    )
    .await;
    let holds_url = format!("{base}/api/v1/store/{}/events/{}/holds", org.slug, event.id);
    // Seat by seat: the first half, each worker its own seats, in ones and
    // twos side by side.
    let half: Arc<Vec<String>> = Arc::new(ids[..ids.len() / 2].to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let specific = {
        let (url, half, next) = (holds_url.clone(), half.clone(), next.clone());
        until_done(&client, args.connections, "hold: seats by id", move |c| {
            let (url, half, next) = (url.clone(), half.clone(), next.clone());
            async move {
                let at = next.fetch_add(2, Ordering::Relaxed);
                if at >= half.len() {
                    return Step::Finished;
                }
                let seats: Vec<&String> = half[at..(at + 2).min(half.len())].iter().collect();
                match c.post(&url).json(&json!({"seats": seats})).send().await {
                    Ok(r) if r.status().is_success() => Step::Done,
                    Ok(r) => Step::Failed(r.status().as_u16()),
                    Err(_) => Step::Failed(0),
                }
            }
        })
        .await
    };
    let best = {
        let (url, tt) = (holds_url.clone(), event.ticket_type.clone());
        until_done(
            &client,
            args.connections,
            "hold: best available ×2",
            move |c| {
                let (url, tt) = (url.clone(), tt.clone());
                async move {
                    match c
                        .post(&url)
                        .json(&json!({"best_available": {"ticket_type_id": tt, "quantity": 2}}))
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => Step::Done,
                        Ok(r) if r.status().as_u16() == 409 => Step::Finished,
                        Ok(r) => Step::Failed(r.status().as_u16()),
                        Err(_) => Step::Failed(0),
                    }
                }
            },
        )
        .await
    };
    let board = {
        let url = format!("{base}/api/v1/store/{}/events/{}/seats", org.slug, event.id);
        timed(
            &client,
            args.connections,
            Duration::from_secs(args.seconds),
            "GET /seats (whole map)",
            move |c, _| {
                let url = url.clone();
                async move {
                    match c.get(&url).send().await {
                        Ok(r) if r.status().is_success() => match r.bytes().await {
                            Ok(_) => Step::Done,
                            Err(_) => Step::Failed(0),
                        },
                        Ok(r) => Step::Failed(r.status().as_u16()),
                        Err(_) => Step::Failed(0),
                    }
                }
            },
        )
        .await
    };
    println!(
        "\n{:<34} {:>8} {:>9} {:>8} {:>8} {:>9}  non-2xx",
        "scenario", "ok", "req/s", "p50 ms", "p99 ms", "vs base"
    );
    for s in [&baseline, &specific, &best, &board] {
        println!(
            "{:<34} {:>8} {:>9.0} {:>8.2} {:>8.2} {:>8.1}%  {}",
            s.name,
            s.ok,
            s.rps(),
            s.pct(0.5),
            s.pct(0.99),
            100.0 * s.rps() / baseline.rps().max(1e-9),
            s.errors.text(),
        );
    }
    if let Some(node) = node {
        let id: uuid::Uuid = event.id.parse()?;
        let (claims, held): (i64, i64) = kernel::db_run!(node.app.db(), p => sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM seat_claims WHERE event_id = $1),
                    (SELECT CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT) FROM hold_items i
                     JOIN holds h ON h.org_id = i.org_id AND h.id = i.hold_id
                     WHERE h.event_id = $1 AND h.status IN ('active', 'consumed'))")
            .bind(id).fetch_one(p).await)?;
        println!(
            "\nseats claimed: {claims} of {n} · seats the holds count: {held} · a seat twice: {}",
            if claims != held || claims > n as i64 {
                "YES"
            } else {
                "no"
            }
        );
        if claims != held || claims > n as i64 {
            bail!("seat claims and holds disagree");
        }
    }
    Ok(())
}

/// The flash sale (free, then by card), its figures beside the ceilings,
/// and the oversell check in the database.
async fn flash(
    api: &Api,
    org: &crate::testkit::Org,
    mode: &str,
    args: &BenchArgs,
    config: &kernel::Config,
    config_args: &ConfigArgs,
    node: Option<&server::Node>,
) -> anyhow::Result<()> {
    println!(
        "voelgoed bench --flash · {mode} · {} connections · {} tickets · {} buyers",
        args.connections, args.tickets, args.buyers
    );
    let mut runs = vec![
        crate::bench_flash::run(
            api,
            org,
            "free",
            args.tickets,
            args.buyers,
            args.connections,
            None,
        )
        .await?,
    ];
    if let Some(standin) = &args.standin {
        runs.push(
            crate::bench_flash::run(
                api,
                org,
                "card (stand-in)",
                args.tickets,
                args.buyers,
                args.connections,
                Some((standin, &args.standin_pk)),
            )
            .await?,
        );
    }
    let db = match node {
        Some(n) => Some(n.app.db().clone()),
        None if config_args.database_url.is_some() || config_args.data_dir.is_some() => Some(
            kernel::Db::connect(config)
                .await
                .context("opening the target's database")?,
        ),
        None => None,
    };
    println!(
        "\n{:<16} {:>7} {:>9} {:>9} {:>9} {:>11} {:>10} {:>9}  non-2xx",
        "checkout", "orders", "orders/s", "p50 ms", "p99 ms", "sold out s", "turned", "in db"
    );
    let mut oversold = false;
    for r in &runs {
        let in_db = match &db {
            Some(db) => {
                let n = tickets_or_orders(db, &r.event.id).await?;
                oversold |= n > args.tickets;
                n.to_string()
            }
            None => "-".into(),
        };
        let errors = if r.errors.is_empty() {
            "-".to_string()
        } else {
            r.errors
                .iter()
                .map(|(s, n)| format!("{s}×{n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "{:<16} {:>7} {:>9.0} {:>9.1} {:>9.1} {:>11.1} {:>10} {:>9}  {}",
            r.label,
            r.orders,
            r.orders_per_sec(),
            r.pct(0.5),
            r.pct(0.99),
            r.sell_out.as_secs_f64(),
            r.turned_away,
            in_db,
            errors
        );
    }
    if let (Some(db), Some(card)) = (&db, runs.iter().find(|r| r.confirmed > 0)) {
        let paid =
            crate::bench_flash::paid_orders(db, &card.event.id, Duration::from_secs(120)).await?;
        println!(
            "card: {} intents confirmed at the stand-in · {paid} orders paid by its webhooks",
            card.confirmed
        );
    }
    if let Some(tpcb) = args.tpcb {
        for r in &runs {
            println!(
                "{}: {:.0} orders/s = {:.0}% of PostgreSQL's TPC-B ({tpcb:.0} tps, pgbench, same run)",
                r.label,
                r.orders_per_sec(),
                100.0 * r.orders_per_sec() / tpcb.max(1e-9)
            );
        }
    }
    if let Some(eval) = args.redis_eval {
        println!("Redis guarded-decrement EVAL ceiling: {eval:.0}/s (redis-benchmark, same run)");
    }
    if let (Some(db), None) = (db, node) {
        db.close().await;
    }
    if oversold {
        bail!("oversold: more than the capacity of {}", args.tickets);
    }
    println!("oversold: no (counted in the database)");
    Ok(())
}

/// Tickets issued for the event, or (priced orders pay later) orders made.
async fn tickets_or_orders(db: &kernel::Db, event: &str) -> anyhow::Result<i64> {
    let id: uuid::Uuid = event.parse()?;
    let orders = kernel::db_run!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM orders WHERE event_id = $1 AND status IN ('pending', 'paid')")
        .bind(id).fetch_one(p).await)?;
    Ok(tickets_of_event(db, event).await?.max(orders))
}

async fn tickets_of_event(db: &kernel::Db, event: &str) -> anyhow::Result<i64> {
    let id: uuid::Uuid = event.parse()?;
    Ok(kernel::db_run!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM tickets WHERE event_id = $1").bind(id).fetch_one(p).await)?)
}

/// Holds of `per_order` tickets and checkout, on `n` connections, until
/// sold out: the figures, the ticket codes, and the sold-out answers.
async fn sell(
    client: &reqwest::Client,
    base: &str,
    org: &crate::testkit::Org,
    event: &crate::testkit::Event,
    n: usize,
    per_order: i64,
    name: &'static str,
) -> (Stats, Vec<String>, usize) {
    let codes = Arc::new(Mutex::new(Vec::<String>::new()));
    let sold_out = Arc::new(AtomicUsize::new(0));
    let (base, slug, event_id, tt, sink, out) = (
        base.to_string(),
        org.slug.clone(),
        event.id.clone(),
        event.ticket_type.clone(),
        codes.clone(),
        sold_out.clone(),
    );
    let stats = until_done(client, n, name, move |c| {
        let (base, slug, event_id, tt, sink, out) = (
            base.clone(),
            slug.clone(),
            event_id.clone(),
            tt.clone(),
            sink.clone(),
            out.clone(),
        );
        async move {
            let Ok(r) = c
                .post(format!(
                    "{base}/api/v1/store/{slug}/events/{event_id}/holds"
                ))
                .json(&json!({"items": [{"ticket_type_id": tt, "quantity": per_order}]}))
                .send()
                .await
            else {
                return Step::Failed(0);
            };
            if r.status().as_u16() == 409 {
                out.fetch_add(1, Ordering::Relaxed);
                return Step::Finished;
            }
            if !r.status().is_success() {
                return Step::Failed(r.status().as_u16());
            }
            let Some(hold) = r
                .json::<Value>()
                .await
                .ok()
                .and_then(|h| h["id"].as_str().map(str::to_string))
            else {
                return Step::Failed(0);
            };
            let Ok(r) = c
                .post(format!("{base}/api/v1/store/{slug}/holds/{hold}/checkout"))
                .header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
                .json(&json!({"buyer": {"email": "bench@example.com", "name": "Bench"}}))
                .send()
                .await
            else {
                return Step::Failed(0);
            };
            if !r.status().is_success() {
                return Step::Failed(r.status().as_u16());
            }
            let Ok(o) = r.json::<Value>().await else {
                return Step::Failed(0);
            };
            let got: Vec<String> = o["tickets"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(|t| t["code"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if got.is_empty() {
                return Step::Failed(0);
            }
            if let Ok(mut s) = sink.lock() {
                s.extend(got);
            }
            Step::Done
        }
    })
    .await;
    let codes = codes.lock().map(|c| c.clone()).unwrap_or_default();
    (stats, codes, sold_out.load(Ordering::Relaxed))
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
        move |c, _i| {
            let url = url.clone();
            async move {
                match c.get(url).send().await {
                    Ok(r) if r.status().is_success() => Step::Done,
                    Ok(r) => Step::Failed(r.status().as_u16()),
                    Err(_) => Step::Failed(0),
                }
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
    expect: &str,
) -> Step {
    let r = match c
        .post(format!("{base}/api/v1/scan"))
        .bearer_auth(device)
        .json(&json!({"code": code, "event_id": event}))
        .send()
        .await
    {
        Ok(r) => r,
        Err(_) => return Step::Failed(0),
    };
    if !r.status().is_success() {
        return Step::Failed(r.status().as_u16());
    }
    match r.json::<Value>().await {
        Ok(v) if v["result"] == expect => Step::Done,
        // A 200 with another result than expected: counted as a failure.
        _ => Step::Failed(200),
    }
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
    Fut: std::future::Future<Output = Step> + Send,
{
    let start = Instant::now();
    let errors = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for w in 0..n {
        let (c, f, errors) = (client.clone(), f.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = w;
            while start.elapsed() < d {
                let t = Instant::now();
                match f(c.clone(), i).await {
                    Step::Done => lat.push(t.elapsed().as_micros() as u32),
                    Step::Failed(s) => errors.add(s),
                    Step::Finished => break,
                }
                i += n;
            }
            lat
        }));
    }
    collect(name, start, tasks, errors).await
}

/// Runs `f` on `n` workers until it says it is finished.
async fn until_done<F, Fut>(client: &reqwest::Client, n: usize, name: &'static str, f: F) -> Stats
where
    F: Fn(reqwest::Client) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Step> + Send,
{
    let start = Instant::now();
    let errors = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (c, f, errors) = (client.clone(), f.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failures = 0usize;
            loop {
                let t = Instant::now();
                match f(c.clone()).await {
                    Step::Done => lat.push(t.elapsed().as_micros() as u32),
                    Step::Failed(s) => {
                        errors.add(s);
                        failures += 1;
                        // A node that keeps failing is not sold out: stop.
                        if failures > 10_000 {
                            break;
                        }
                    }
                    Step::Finished => break,
                }
            }
            lat
        }));
    }
    collect(name, start, tasks, errors).await
}

async fn collect(
    name: &'static str,
    start: Instant,
    tasks: Vec<tokio::task::JoinHandle<Vec<u32>>>,
    errors: Arc<Tally>,
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
        errors,
    }
}
