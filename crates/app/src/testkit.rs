//! The test kit, shared by the integration tests and the load driver: a
//! real node per test on a fresh database (a SQLite file, or a new
//! PostgreSQL database with Redis), a controllable clock, an API client
//! with builders for what tests and benchmarks need (org, event, ticket
//! type, order, device), and sinks that record what the platform sends out.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, bail};
use kernel::Clock;
use reqwest::{Client, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::server::{self, Node};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const TEST_DATABASE_URL: &str = "VOELGOED_TEST_DATABASE_URL";
pub const TEST_REDIS_URL: &str = "VOELGOED_TEST_REDIS_URL";

/// Whether the PostgreSQL + Redis variants can run here. Under CI (`CI`
/// set) their absence is a failure, never a silent pass.
pub fn postgres_configured() -> bool {
    let set = std::env::var(TEST_DATABASE_URL).is_ok() && std::env::var(TEST_REDIS_URL).is_ok();
    if !set && std::env::var("CI").is_ok() {
        panic!(
            "CI is set but {TEST_DATABASE_URL} / {TEST_REDIS_URL} are not: the PostgreSQL + Redis variants must run"
        );
    }
    set
}

/// Logs of the nodes under test, captured per test (`VOELGOED_LOG` filters,
/// warnings by default).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VOELGOED_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// A name unique to this run.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::now_v7().simple().to_string()[16..]
    )
}

/// Creates an empty database next to the one `url` names and returns its URL.
pub async fn fresh_pg_database(url: &str, prefix: &str) -> anyhow::Result<(String, String)> {
    use sqlx::Connection;
    let name = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    let (head, _) = url
        .rsplit_once('/')
        .context("the database URL has no database name")?;
    let query = url
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    Ok((format!("{head}/{name}{query}"), name))
}

/// Drops a database made by [`fresh_pg_database`].
pub async fn drop_pg_database(admin_url: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin_url).await {
        let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&mut conn)
            .await;
    }
}

/// A real node on port 0 with its own database and a manual clock, and a
/// client pointed at it.
pub struct TestApp {
    pub api: Api,
    node: Option<Node>,
    config: kernel::Config,
    clock: Clock,
    tmp: PathBuf,
    pg: Option<(String, String)>,
}

impl std::ops::Deref for TestApp {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    /// A node whose configuration `tweak` may change. Storefront rate limits
    /// are off unless a test turns them on (tests buy a lot from one address).
    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut kernel::Config)) -> TestApp {
        init_logs();
        let tmp = std::env::temp_dir().join(unique("voelgoed-test"));
        let mut config = kernel::Config {
            data_dir: tmp.clone(),
            db_max_connections: 8,
            storefront_per_minute: 0,
            buyer_per_minute: 0,
            ..kernel::Config::default()
        };
        let mut pg = None;
        if backend == Backend::Postgres {
            let admin = std::env::var(TEST_DATABASE_URL).expect(TEST_DATABASE_URL);
            let (url, name) = fresh_pg_database(&admin, "vg_test")
                .await
                .expect("a fresh PostgreSQL database");
            config.database_url = Some(url);
            config.redis_url = Some(std::env::var(TEST_REDIS_URL).expect(TEST_REDIS_URL));
            pg = Some((admin, name));
        }
        tweak(&mut config);
        Self::node(config, Clock::manual_from_now(), tmp, pg).await
    }

    async fn node(
        config: kernel::Config,
        clock: Clock,
        tmp: PathBuf,
        pg: Option<(String, String)>,
    ) -> TestApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let node = server::start_with_clock(config.clone(), listener, clock.clone())
            .await
            .expect("the node starts");
        TestApp {
            api: Api::new(format!("http://{}", node.addr)),
            node: Some(node),
            config,
            clock,
            tmp,
            pg,
        }
    }

    /// Another node on the same PostgreSQL database and Redis (and clock).
    pub async fn another_node(&self) -> TestApp {
        Self::node(
            self.config.clone(),
            self.clock.clone(),
            self.tmp.clone(),
            None,
        )
        .await
    }

    pub fn app(&self) -> &platform::App {
        &self.node.as_ref().expect("running").app
    }

    pub fn config(&self) -> &kernel::Config {
        &self.config
    }

    /// The node's clock: move it instead of sleeping.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub async fn stop(mut self) {
        if let Some(n) = self.node.take() {
            n.stop().await;
        }
        if let Some((admin, name)) = self.pg.take() {
            drop_pg_database(&admin, &name).await;
        }
        let _ = std::fs::remove_dir_all(&self.tmp);
    }

    /// A count from the node's own database (invariants are checked there,
    /// not in what the client saw).
    pub async fn count(&self, sql: &'static str, id: &str) -> i64 {
        let id: uuid::Uuid = id.parse().expect("uuid");
        kernel::db_run!(self.app().db(), p => sqlx::query_scalar::<_, i64>(sql).bind(id).fetch_one(p).await)
            .expect("count query")
    }

    /// Polls `check` until it holds (up to 10 s of real time): for effects
    /// the platform makes in the background (relay, sweepers).
    pub async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..200 {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("not within 10 s: {what}");
    }
}

/// An organization and its owner's API key.
#[derive(Clone, Debug)]
pub struct Org {
    pub slug: String,
    pub key: String,
    pub email: String,
}

/// An event and its first ticket type.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: String,
    pub ticket_type: String,
}

/// What an event is made with: one ticket type.
#[derive(Clone, Debug)]
pub struct EventSpec {
    pub name: String,
    pub capacity: i64,
    pub price_cents: i64,
    pub max_per_order: Option<i64>,
    pub publish: bool,
}

impl EventSpec {
    pub fn capacity(capacity: i64) -> EventSpec {
        EventSpec {
            name: "Test Night".into(),
            capacity,
            price_cents: 0,
            max_per_order: None,
            publish: true,
        }
    }

    pub fn priced(mut self, cents: i64) -> Self {
        self.price_cents = cents;
        self
    }

    pub fn max_per_order(mut self, n: i64) -> Self {
        self.max_per_order = Some(n);
        self
    }

    pub fn draft(mut self) -> Self {
        self.publish = false;
        self
    }
}

/// A client of the public API, with the steps tests and benchmarks repeat.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub client: Client,
}

impl Api {
    pub fn new(base: String) -> Api {
        Api {
            base,
            client: Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .expect("an HTTP client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        let mut r = self.client.post(self.url(path)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("request")
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        let mut r = self.client.patch(self.url(path)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("request")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut r = self.client.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("request")
    }

    async fn expect_json(
        r: reqwest::Result<Response>,
        status: u16,
        what: &str,
    ) -> anyhow::Result<Value> {
        let r = r.with_context(|| format!("{what}: no answer"))?;
        let got = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        if got != status {
            bail!("{what}: expected {status}, got {got}: {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("{what}: not JSON: {body}"))
    }

    /// A new organization through self-service sign-up.
    pub async fn try_signup(&self) -> anyhow::Result<Org> {
        let slug = unique("org");
        let email = format!("{slug}@example.com");
        let v = Self::expect_json(
            self.client
                .post(self.url("/api/v1/signup"))
                .json(&json!({"email": email, "password": "a long password", "org_name": "Test Org", "org_slug": slug}))
                .send()
                .await,
            201,
            "sign-up",
        )
        .await?;
        Ok(Org {
            slug,
            key: v["api_key"].as_str().context("api_key")?.to_string(),
            email,
        })
    }

    /// An event with one ticket type, as `spec` says.
    pub async fn try_event(&self, org: &Org, spec: &EventSpec) -> anyhow::Result<Event> {
        let e = Self::expect_json(
            self.client
                .post(self.url(&format!("/api/v1/orgs/{}/events", org.slug)))
                .bearer_auth(&org.key)
                .json(&json!({"name": spec.name, "starts_at": "2030-06-01T18:00:00Z", "ends_at": "2030-06-02T02:00:00Z", "timezone": "Africa/Johannesburg"}))
                .send()
                .await,
            201,
            "create event",
        )
        .await?;
        let id = e["id"].as_str().context("event id")?.to_string();
        let mut tt = json!({"name": "General", "price_cents": spec.price_cents, "currency": "ZAR", "capacity": spec.capacity});
        if let Some(m) = spec.max_per_order {
            tt["max_per_order"] = m.into();
        }
        let t = Self::expect_json(
            self.client
                .post(self.url(&format!(
                    "/api/v1/orgs/{}/events/{id}/ticket-types",
                    org.slug
                )))
                .bearer_auth(&org.key)
                .json(&tt)
                .send()
                .await,
            201,
            "add ticket type",
        )
        .await?;
        if spec.publish {
            Self::expect_json(
                self.client
                    .post(self.url(&format!("/api/v1/orgs/{}/events/{id}/publish", org.slug)))
                    .bearer_auth(&org.key)
                    .json(&json!({}))
                    .send()
                    .await,
                200,
                "publish",
            )
            .await?;
        }
        Ok(Event {
            id,
            ticket_type: t["id"].as_str().context("ticket type id")?.to_string(),
        })
    }

    /// A paired device for `events`; its token.
    pub async fn try_device(&self, org: &Org, events: &[&str]) -> anyhow::Result<String> {
        self.try_device_as(org, json!({"name": "Gate 1", "event_ids": events}))
            .await
    }

    /// A device made as `body` says (`POST …/devices`), paired; its token.
    pub async fn try_device_as(&self, org: &Org, body: Value) -> anyhow::Result<String> {
        let d = Self::expect_json(
            self.client
                .post(self.url(&format!("/api/v1/orgs/{}/devices", org.slug)))
                .bearer_auth(&org.key)
                .json(&body)
                .send()
                .await,
            201,
            "add device",
        )
        .await?;
        let p = Self::expect_json(
            self.client
                .post(self.url("/api/v1/devices/pair"))
                .json(&json!({"pairing_code": d["pairing_code"]}))
                .send()
                .await,
            201,
            "pair device",
        )
        .await?;
        Ok(p["device_token"]
            .as_str()
            .context("device_token")?
            .to_string())
    }

    pub async fn signup(&self) -> Org {
        self.try_signup().await.expect("sign-up")
    }

    /// A published event with one free ticket type of `capacity`.
    pub async fn event(&self, org: &Org, capacity: i64) -> Event {
        self.try_event(org, &EventSpec::capacity(capacity))
            .await
            .expect("event")
    }

    pub async fn device(&self, org: &Org, events: &[&str]) -> String {
        self.try_device(org, events).await.expect("device")
    }

    /// What the storefront says is left of the event's first ticket type.
    pub async fn available(&self, org: &Org, event: &Event) -> i64 {
        let s: Value = self
            .get(
                &format!("/api/v1/store/{}/events/{}", org.slug, event.id),
                None,
            )
            .await
            .json()
            .await
            .expect("json");
        s["ticket_types"][0]["available"]
            .as_i64()
            .expect("available")
    }

    pub async fn hold(&self, org: &Org, event: &Event, quantity: i64) -> Response {
        self.post(
            &format!("/api/v1/store/{}/events/{}/holds", org.slug, event.id),
            None,
            json!({"items": [{"ticket_type_id": event.ticket_type, "quantity": quantity}]}),
        )
        .await
    }

    /// Checks a hold out (a priced order is paid by EFT).
    pub async fn checkout(
        &self,
        org: &Org,
        hold_id: &str,
        key: Option<&str>,
        email: &str,
    ) -> Response {
        self.checkout_by(org, hold_id, key, email, "eft").await
    }

    /// Checks a hold out, paying by `method` (`card` or `eft`).
    pub async fn checkout_by(
        &self,
        org: &Org,
        hold_id: &str,
        key: Option<&str>,
        email: &str,
        method: &str,
    ) -> Response {
        let mut r = self
            .client
            .post(self.url(&format!(
                "/api/v1/store/{}/holds/{hold_id}/checkout",
                org.slug
            )))
            .json(&json!({"buyer": {"email": email, "name": "Buyer"}, "payment_method": method}));
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        r.send().await.expect("request")
    }

    /// Holds and checks out `quantity` tickets; the order.
    pub async fn buy(&self, org: &Org, event: &Event, quantity: i64) -> Value {
        let h = self.hold(org, event, quantity).await;
        assert_eq!(h.status(), 201, "hold");
        let h: Value = h.json().await.expect("json");
        let o = self
            .checkout(
                org,
                h["id"].as_str().expect("id"),
                None,
                "buyer@example.com",
            )
            .await;
        assert_eq!(o.status(), 201, "checkout");
        o.json().await.expect("json")
    }

    pub async fn scan(&self, device: &str, code: &str, event: &str) -> Value {
        let r = self
            .post(
                "/api/v1/scan",
                Some(device),
                json!({"code": code, "event_id": event}),
            )
            .await;
        assert_eq!(r.status(), 200, "scan answered {}", r.status());
        r.json().await.expect("json")
    }
}

/// Asserts a problem+json reply with this status and `type`; returns it.
pub async fn problem(r: Response, status: u16, kind: &str) -> Value {
    assert_eq!(r.status().as_u16(), status, "status");
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert_eq!(ct, "application/problem+json", "content type");
    let v: Value = r.json().await.expect("problem body");
    assert_eq!(v["type"], kind, "problem type in {v}");
    assert_eq!(v["status"], status);
    v
}

/// One request a sink received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    /// A header's value ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// A loopback HTTP server that records every request it gets and answers
/// with the statuses it is told (200 when the script runs out): the far end
/// of webhooks and other outbound calls in tests.
pub struct HttpSink {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpSink {
    pub async fn start(script: Vec<u16>) -> HttpSink {
        use axum::{body::Bytes, extract::Request, http::StatusCode};
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script = Arc::new(Mutex::new(std::collections::VecDeque::from(script)));
        let (rec, scr) = (received.clone(), script.clone());
        let app = axum::Router::new().fallback(move |req: Request| {
            let (rec, scr) = (rec.clone(), scr.clone());
            async move {
                let (parts, body) = req.into_parts();
                let body: Bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
                    .await
                    .unwrap_or_default();
                if let Ok(mut r) = rec.lock() {
                    r.push(Received {
                        method: parts.method.to_string(),
                        path: parts.uri.to_string(),
                        headers: parts
                            .headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect(),
                        body: body.to_vec(),
                    });
                }
                let status = scr
                    .lock()
                    .ok()
                    .and_then(|mut s| s.pop_front())
                    .unwrap_or(200);
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HttpSink {
            url,
            received,
            task,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}
