//! `voelgoed bench --gates`: the gate with its gates and rules on.
//!
//! An event of `--tickets` tickets (sold in orders of 10) with two gates —
//! `Main` (single entry, admits the event's ticket type, a JsonLogic rule
//! evaluated on every scan) and `Bar` (in/out, a capacity, a rule) — and a
//! device allowed at both. Measured over loopback, each beside a
//! `GET /healthz` baseline of the same run:
//!
//! - first admissions at Main, as fast as they come (the peak), over the
//!   first half of the tickets;
//! - first admissions at half that peak rate over the second half, paced
//!   (open loop: a scan's latency counts from when it was due, so a server
//!   falling behind shows in p99 rather than slowing the sender);
//! - repeat scans (`already_admitted`) for `--seconds`;
//! - in and out at Bar for `--seconds` (each connection its own tickets).
//!
//! Then, on one core in this process: compact codes parsed and verified per
//! second beside ed25519-dalek's own benchmark case (`verify_strict` of an
//! empty message), so the code's cost over the bare signature shows.
//! Afterwards the admissions are counted in the database: each ticket once.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::{BenchArgs, Stats, Step, Tally, collect, healthz, sell, timed, until_done};
use crate::testkit::{Api, EventSpec, Org};

const PER_ORDER: i64 = 10;
/// How often a node refreshes its job gauges (`platform::ops`).
const GAUGES_EVERY: Duration = Duration::from_secs(5);

pub(super) async fn run(
    api: &Api,
    org: &Org,
    mode: &str,
    args: &BenchArgs,
    db: Option<&kernel::Db>,
) -> anyhow::Result<()> {
    let base = api.url("");
    let base = base.trim_end_matches('/').to_string();
    let client = api.client.clone();
    let event = api
        .try_event(
            org,
            &EventSpec::capacity(args.tickets).max_per_order(PER_ORDER),
        )
        .await?;
    let gates = format!("/api/v1/orgs/{}/events/{}/gates", org.slug, event.id);
    let main = gate(
        api,
        org,
        &gates,
        json!({
            "name": "Main",
            "ticket_type_ids": [event.ticket_type],
            "reentry": "single",
            "rules": {"and": [
                {">=": [{"var": "minutes_of_day"}, 0]},
                {"<": [{"var": "entries_today"}, 3]},
            ]},
        }),
    )
    .await?;
    let bar = gate(
        api,
        org,
        &gates,
        json!({
            "name": "Bar",
            "reentry": "in_out",
            "capacity": args.tickets,
            "rules": {"<": [{"var": "entries_today"}, 1_000_000]},
        }),
    )
    .await?;
    let device = api
        .try_device_as(
            org,
            json!({"name": "Bench gate", "event_ids": [event.id], "gate_ids": [main, bar]}),
        )
        .await?;

    println!(
        "voelgoed bench --gates · {mode} · {} connections · {} tickets · gates Main (single, type + rule) and Bar (in/out, capacity, rule)",
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
    let (orders, codes, _) = sell(
        &client,
        &base,
        org,
        &event,
        args.connections,
        PER_ORDER,
        "issue tickets (orders of 10)",
    )
    .await;
    if codes.is_empty() {
        bail!("no tickets were sold ({})", orders.errors.text());
    }
    // The sale's background work (mail with PDF tickets, webhooks) is done
    // before the doors open: let it finish, so the gate is measured alone.
    let drained = drain(api, Duration::from_secs(300)).await;
    println!(
        "background work after the sale: {}",
        match drained {
            Some(d) => format!("drained in {:.1} s", d.as_secs_f64()),
            None => "still running after 300 s (measured anyway)".to_string(),
        }
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline2 = healthz(
        &client,
        &base,
        args.connections,
        args.seconds,
        "baseline again (before scans)",
    )
    .await;
    let scan = Scan {
        base: base.clone(),
        device: device.clone(),
        event: event.id.clone(),
        gate: main.clone(),
    };
    // The first scan loads the event's tickets into the gate (a door
    // steward's first scan before the doors open): timed on its own.
    let warm = Instant::now();
    let warmed = scan.send(&client, &codes[0], "in", "admitted").await;
    println!(
        "first scan (loads {} tickets into the gate): {:.0} ms{}",
        codes.len(),
        warm.elapsed().as_secs_f64() * 1000.0,
        if matches!(warmed, Step::Done) {
            ""
        } else {
            " (not admitted!)"
        }
    );
    let codes = Arc::new(codes[1..].to_vec());
    let half = codes.len() / 2;

    // The peak: the first half as fast as it goes.
    let peak = {
        let (scan, codes) = (scan.clone(), codes.clone());
        let next = Arc::new(AtomicUsize::new(0));
        until_done(
            &client,
            args.connections,
            "gate scan: first admissions (peak)",
            move |c| {
                let (scan, codes, next) = (scan.clone(), codes.clone(), next.clone());
                async move {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= half {
                        return Step::Finished;
                    }
                    scan.send(&c, &codes[i], "in", "admitted").await
                }
            },
        )
        .await
    };
    // Half the peak rate, paced, over the second half.
    let rate = (peak.rps() / 2.0).max(1.0);
    let paced = {
        let (scan, codes) = (scan.clone(), codes.clone());
        paced(
            &client,
            args.connections,
            rate,
            codes.len() - half,
            "gate scan: at half the peak rate",
            move |c, i| {
                let (scan, codes) = (scan.clone(), codes.clone());
                async move { scan.send(&c, &codes[half + i], "in", "admitted").await }
            },
        )
        .await
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline3 = healthz(
        &client,
        &base,
        args.connections,
        args.seconds,
        "baseline again (before repeats)",
    )
    .await;
    let repeat = {
        let (scan, codes) = (scan.clone(), codes.clone());
        timed(
            &client,
            args.connections,
            Duration::from_secs(args.seconds),
            "gate scan: repeat (already in)",
            move |c, i| {
                let (scan, codes) = (scan.clone(), codes.clone());
                async move {
                    scan.send(&c, &codes[i % codes.len()], "in", "already_admitted")
                        .await
                }
            },
        )
        .await
    };
    // In and out at Bar: connection w owns the tickets w, w + n, …; each
    // goes out, then in again, then the next of its own.
    let in_out = {
        let scan = Scan {
            gate: bar.clone(),
            ..scan.clone()
        };
        let codes = codes.clone();
        let n = args.connections;
        timed(
            &client,
            n,
            Duration::from_secs(args.seconds),
            "gate scan: in/out at Bar",
            move |c, i| {
                let (scan, codes) = (scan.clone(), codes.clone());
                async move {
                    // i runs w, w + n, w + 2n, …: step k of connection w.
                    let (w, k) = (i % n, i / n);
                    let code = &codes[(w + (k / 2) * n) % codes.len()];
                    // Every ticket is inside already (through Main).
                    let (dir, expect) = if k % 2 == 0 {
                        ("out", "exited")
                    } else {
                        ("in", "admitted")
                    };
                    scan.send(&c, code, dir, expect).await
                }
            },
        )
        .await
    };

    println!(
        "\n{:<38} {:>8} {:>9} {:>8} {:>8} {:>9}  non-2xx",
        "scenario", "ok", "req/s", "p50 ms", "p99 ms", "vs base"
    );
    for (s, b) in [
        (&baseline, &baseline),
        (&orders, &baseline),
        (&baseline2, &baseline2),
        (&peak, &baseline2),
        (&paced, &baseline2),
        (&baseline3, &baseline3),
        (&repeat, &baseline3),
        (&in_out, &baseline3),
    ] {
        println!(
            "{:<38} {:>8} {:>9.0} {:>8.2} {:>8.2} {:>8.1}%  {}",
            s.name,
            s.ok,
            s.rps(),
            s.pct(0.5),
            s.pct(0.99),
            100.0 * s.rps() / b.rps().max(1e-9),
            s.errors.text(),
        );
    }
    println!(
        "half the peak rate: {rate:.0} scans/s asked, {:.0} answered; p99 {:.2} ms (from when each scan was due)",
        paced.rps(),
        paced.pct(0.99)
    );

    let verify = tokio::task::spawn_blocking(|| verify_rates(Duration::from_secs(1)))
        .await
        .context("the verification bench")??;
    println!(
        "\nverifications on one core: compact code (parse + verify_strict) {:.0}/s · ed25519-dalek verify_strict, empty message (its own benchmark's case) {:.0}/s · {:.1}%",
        verify.0,
        verify.1,
        100.0 * verify.0 / verify.1.max(1e-9)
    );

    let admitted = match db {
        Some(db) => Some(admitted_of_event(db, &event.id).await?),
        None => None,
    };
    let expected = peak.ok + paced.ok + usize::from(matches!(warmed, Step::Done));
    println!(
        "tickets sold: {} · admitted answers: {expected} · admitted in the database: {}",
        codes.len() + 1,
        admitted.map_or("not checked".to_string(), |n| n.to_string())
    );
    if let Some(n) = admitted
        && n as usize > codes.len() + 1
    {
        bail!("more admissions ({n}) than tickets ({})", codes.len() + 1);
    }
    Ok(())
}

/// Waits until no job is due or running (the node's `/metrics` gauges;
/// a job scheduled for later, such as the nightly reconciliation, does not
/// count); how long that took, or `None` after `limit`.
async fn drain(api: &Api, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    // The gauges are refreshed every 5 s: a reading from before the sale
    // ended would say zero.
    tokio::time::sleep(GAUGES_EVERY + Duration::from_secs(1)).await;
    while start.elapsed() < limit {
        let text = match api.client.get(api.url("/metrics")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let busy: f64 = text
            .lines()
            .filter(|l| {
                l.starts_with("voelgoed_jobs_waiting{") || l.starts_with("voelgoed_jobs_running{")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if !text.is_empty() && busy == 0.0 {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    None
}

#[derive(Clone)]
struct Scan {
    base: String,
    device: String,
    event: String,
    gate: String,
}

impl Scan {
    async fn send(&self, c: &reqwest::Client, code: &str, dir: &str, expect: &str) -> Step {
        let r = match c
            .post(format!("{}/api/v1/scan", self.base))
            .bearer_auth(&self.device)
            .json(
                &json!({"code": code, "event_id": self.event, "gate": self.gate, "direction": dir}),
            )
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
            _ => Step::Failed(200),
        }
    }
}

async fn gate(api: &Api, org: &Org, path: &str, body: Value) -> anyhow::Result<String> {
    let r = api
        .client
        .post(api.url(path))
        .bearer_auth(&org.key)
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await?;
    if status != 201 {
        bail!("creating a gate: {status} {v}");
    }
    Ok(v["id"].as_str().context("gate id")?.to_string())
}

/// `count` calls of `f`, the i-th due at `start + i / rate`, on `n`
/// connections; a call's latency runs from when it was due.
async fn paced<F, Fut>(
    client: &reqwest::Client,
    n: usize,
    rate: f64,
    count: usize,
    name: &'static str,
    f: F,
) -> Stats
where
    F: Fn(reqwest::Client, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Step> + Send,
{
    let start = Instant::now();
    let errors = Arc::new(Tally::default());
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (c, f, errors, next) = (client.clone(), f.clone(), errors.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                match f(c.clone(), i).await {
                    Step::Done => lat.push(due.elapsed().as_micros() as u32),
                    Step::Failed(s) => errors.add(s),
                    Step::Finished => break,
                }
            }
            lat
        }));
    }
    collect(name, start, tasks, errors).await
}

/// Compact codes parsed and verified per second on this thread, and
/// ed25519-dalek's `verify_strict` of an empty message (the case its own
/// benchmark times), each for `d`.
fn verify_rates(d: Duration) -> anyhow::Result<(f64, f64)> {
    use kernel::auth::Signer;
    use kernel::ids::{EventId, TicketId, TicketTypeId};
    let key = kernel::auth::generate_signing_key();
    let vk = key.verifying_key();
    let code = platform::tickets::sign_compact(
        "0a1b2c3d",
        &key,
        TicketId(uuid::Uuid::now_v7()),
        EventId(uuid::Uuid::now_v7()),
        TicketTypeId(uuid::Uuid::now_v7()),
        platform::tickets::Window::default(),
    );
    let rate = |f: &dyn Fn() -> bool| -> anyhow::Result<f64> {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < d {
            for _ in 0..64 {
                if !f() {
                    bail!("a genuine signature did not verify");
                }
            }
            n += 64;
        }
        Ok(n as f64 / start.elapsed().as_secs_f64())
    };
    let ours = rate(&|| {
        platform::tickets::parse_code(std::hint::black_box(&code)).is_some_and(|p| p.verify(&vk))
    })?;
    let msg: &[u8] = b"";
    let sig = key.sign(msg);
    let bare = rate(&|| vk.verify_strict(std::hint::black_box(msg), &sig).is_ok())?;
    Ok((ours, bare))
}

/// Tickets of the event admitted (each ticket row once, whatever its scans).
async fn admitted_of_event(db: &kernel::Db, event: &str) -> anyhow::Result<i64> {
    let id: uuid::Uuid = event.parse()?;
    Ok(kernel::db_run!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM tickets WHERE event_id = $1 AND admitted_at IS NOT NULL")
        .bind(id).fetch_one(p).await)?)
}
