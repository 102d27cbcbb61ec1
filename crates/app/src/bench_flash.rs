//! `voelgoed bench --flash`: a flash sale. `--buyers` visitors race for
//! `--tickets` through the event's waiting room (let through as fast as
//! they come: the room's pass-through rate) → a hold with the room's pass →
//! checkout; once free, once by card through the provider stand-in
//! (`--standin`: the buyer's browser confirms the intent there, as the
//! order page does, and the stand-in's signed webhook pays the order).
//!
//! Reported: orders/s (orders ÷ time to sell out), the buyer's journey p50
//! and p99 (join → order), time to sell out, buyers turned away, and the
//! tickets counted in the database (never more than the capacity). Beside
//! them, when given, the ceilings measured in the same run on the same
//! machine: PostgreSQL's TPC-B (pgbench) and Redis' guarded-decrement EVAL.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use serde_json::{Value, json};

use crate::testkit::{Api, Event, EventSpec, Org};

pub struct FlashRun {
    pub label: &'static str,
    pub event: Event,
    pub orders: usize,
    pub turned_away: usize,
    pub errors: std::collections::BTreeMap<u16, usize>,
    /// From the first join to the last order.
    pub sell_out: Duration,
    /// Journeys (join → order) in microseconds.
    pub journeys: Vec<u32>,
    /// Intents confirmed at the stand-in (card).
    pub confirmed: usize,
}

impl FlashRun {
    pub fn orders_per_sec(&self) -> f64 {
        self.orders as f64 / self.sell_out.as_secs_f64().max(1e-9)
    }
    pub fn pct(&self, p: f64) -> f64 {
        if self.journeys.is_empty() {
            return 0.0;
        }
        let mut l = self.journeys.clone();
        l.sort_unstable();
        l[((l.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
    }
}

/// What one buyer came to.
enum Outcome {
    Ordered(Duration),
    TurnedAway,
    Failed(u16),
}

/// One flash sale of `tickets` to `buyers`, `connections` at a time.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    api: &Api,
    org: &Org,
    label: &'static str,
    tickets: i64,
    buyers: usize,
    connections: usize,
    card: Option<(&str, &str)>,
) -> anyhow::Result<FlashRun> {
    let price = if card.is_some() { 2500 } else { 0 };
    let event = api
        .try_event(
            org,
            &EventSpec::capacity(tickets).priced(price).max_per_order(1),
        )
        .await?;
    // The room: on, opened a minute ago, letting everyone through at once.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros() as i64;
    let opened = kernel::clock::rfc3339(now - 60_000_000);
    let r = api
        .client
        .put(api.url(&format!(
            "/api/v1/orgs/{}/events/{}/waiting-room",
            org.slug, event.id
        )))
        .bearer_auth(&org.key)
        .json(&json!({"enabled": true, "per_minute": 1_000_000, "opens_at": opened}))
        .send()
        .await?;
    anyhow::ensure!(r.status() == 200, "the waiting room: {}", r.status());

    let base = api.url("");
    let next = Arc::new(AtomicUsize::new(0));
    let last_order = Arc::new(AtomicU64::new(0));
    let confirmed = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(std::collections::BTreeMap::<u16, usize>::new()));
    let card = card.map(|(u, k)| (u.to_string(), k.to_string()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, base, slug, event_id, tt) = (
            api.client.clone(),
            base.clone(),
            org.slug.clone(),
            event.id.clone(),
            event.ticket_type.clone(),
        );
        let (next, last_order, confirmed, errors, card) = (
            next.clone(),
            last_order.clone(),
            confirmed.clone(),
            errors.clone(),
            card.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut journeys = Vec::new();
            let (mut ordered, mut away) = (0usize, 0usize);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= buyers {
                    break;
                }
                let buyer = Buyer {
                    client: &client,
                    base: &base,
                    slug: &slug,
                    event_id: &event_id,
                    tt: &tt,
                    card: card.as_ref(),
                    confirmed: &confirmed,
                };
                match buyer.buy(i).await {
                    Outcome::Ordered(took) => {
                        ordered += 1;
                        journeys.push(took.as_micros() as u32);
                        last_order.fetch_max(start.elapsed().as_micros() as u64, Ordering::Relaxed);
                    }
                    Outcome::TurnedAway => away += 1,
                    Outcome::Failed(s) => {
                        if let Ok(mut e) = errors.lock() {
                            *e.entry(s).or_default() += 1;
                        }
                    }
                }
            }
            (journeys, ordered, away)
        }));
    }
    let mut journeys = Vec::new();
    let (mut orders, mut turned_away) = (0, 0);
    for t in tasks {
        let (j, o, a) = t.await.context("a buyer task")?;
        journeys.extend(j);
        orders += o;
        turned_away += a;
    }
    let errors = errors.lock().map(|e| e.clone()).unwrap_or_default();
    Ok(FlashRun {
        label,
        event,
        orders,
        turned_away,
        errors,
        sell_out: Duration::from_micros(last_order.load(Ordering::Relaxed)),
        journeys,
        confirmed: confirmed.load(Ordering::Relaxed),
    })
}

struct Buyer<'a> {
    client: &'a reqwest::Client,
    base: &'a str,
    slug: &'a str,
    event_id: &'a str,
    tt: &'a str,
    /// The stand-in's base URL and publishable key, for card orders.
    card: Option<&'a (String, String)>,
    confirmed: &'a AtomicUsize,
}

impl Buyer<'_> {
    async fn buy(&self, i: usize) -> Outcome {
        let t0 = Instant::now();
        // Join the room; at the pass-through rate the pass comes at once.
        let Ok(r) = self
            .client
            .post(format!(
                "{}/api/v1/store/{}/events/{}/queue",
                self.base, self.slug, self.event_id
            ))
            .send()
            .await
        else {
            return Outcome::Failed(0);
        };
        if r.status() != 201 {
            return Outcome::Failed(r.status().as_u16());
        }
        let mut status: Value = r.json().await.unwrap_or_default();
        for _ in 0..100 {
            if status["pass"].is_string() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            let Ok(r) = self
                .client
                .get(format!(
                    "{}/api/v1/store/{}/events/{}/queue/{}",
                    self.base,
                    self.slug,
                    self.event_id,
                    status["token"].as_str().unwrap_or_default()
                ))
                .send()
                .await
            else {
                return Outcome::Failed(0);
            };
            status = r.json().await.unwrap_or_default();
        }
        let Some(pass) = status["pass"].as_str() else {
            return Outcome::Failed(0);
        };
        let Ok(r) = self
            .client
            .post(format!(
                "{}/api/v1/store/{}/events/{}/holds",
                self.base, self.slug, self.event_id
            ))
            .json(
                &json!({"items": [{"ticket_type_id": self.tt, "quantity": 1}], "queue_pass": pass}),
            )
            .send()
            .await
        else {
            return Outcome::Failed(0);
        };
        match r.status().as_u16() {
            201 => {}
            409 => return Outcome::TurnedAway,
            s => return Outcome::Failed(s),
        }
        let Some(hold) = r
            .json::<Value>()
            .await
            .ok()
            .and_then(|h| h["id"].as_str().map(str::to_string))
        else {
            return Outcome::Failed(0);
        };
        let method = if self.card.is_some() { "card" } else { "eft" };
        let Ok(r) = self
            .client
            .post(format!(
                "{}/api/v1/store/{}/holds/{hold}/checkout",
                self.base, self.slug
            ))
            .header("Idempotency-Key", format!("flash-{i}-{hold}"))
            .json(&json!({"buyer": {"email": format!("buyer{i}@example.com"), "name": "Flash Buyer"}, "payment_method": method}))
            .send()
            .await
        else {
            return Outcome::Failed(0);
        };
        if r.status() != 201 {
            return Outcome::Failed(r.status().as_u16());
        }
        let order: Value = r.json().await.unwrap_or_default();
        if let Some((standin, pk)) = self.card {
            // The order page's confirmation, at the provider.
            let secret = order["payment"]["client_secret"]
                .as_str()
                .unwrap_or_default();
            let intent = secret.split("_secret_").next().unwrap_or_default();
            let confirm = self
                .client
                .post(format!("{standin}/v1/payment_intents/{intent}/confirm"))
                .form(&[
                    ("key", pk.as_str()),
                    ("client_secret", secret),
                    ("payment_method", "pm_card_visa"),
                ])
                .send()
                .await;
            match confirm {
                Ok(c) if c.status().is_success() => {
                    self.confirmed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(c) => return Outcome::Failed(c.status().as_u16()),
                Err(_) => return Outcome::Failed(0),
            }
        }
        Outcome::Ordered(t0.elapsed())
    }
}

/// Waits (up to `limit`) until the event's paid orders stop growing; how
/// many there are.
pub async fn paid_orders(db: &kernel::Db, event: &str, limit: Duration) -> anyhow::Result<i64> {
    let id: uuid::Uuid = event.parse()?;
    let start = Instant::now();
    let mut last = -1;
    loop {
        let n: i64 = kernel::db_run!(db, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM orders WHERE event_id = $1 AND status = 'paid'")
            .bind(id).fetch_one(p).await)?;
        if n == last || start.elapsed() > limit {
            return Ok(n);
        }
        last = n;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
