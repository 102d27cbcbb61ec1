//! A real node per test, on a fresh database: a SQLite file in a temporary
//! directory, or a new PostgreSQL database (with Redis) when
//! `VOELGOED_TEST_DATABASE_URL` and `VOELGOED_TEST_REDIS_URL` are set.

use std::path::PathBuf;

use reqwest::{Client, Response};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::net::TcpListener;
use voelgoed::server::{self, Running};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Declares a test that runs once on each backend.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres_and_redis() {
                if $crate::support::postgres_configured() {
                    super::$name($crate::support::Backend::Postgres).await
                } else {
                    eprintln!("VOELGOED_TEST_DATABASE_URL / VOELGOED_TEST_REDIS_URL unset: PostgreSQL variant not run here");
                }
            }
        }
    };
}

pub fn postgres_configured() -> bool {
    std::env::var("VOELGOED_TEST_DATABASE_URL").is_ok()
        && std::env::var("VOELGOED_TEST_REDIS_URL").is_ok()
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub running: Option<Running>,
    config: kernel::Config,
    tmp: PathBuf,
    pg: Option<(String, String)>,
}

#[derive(Clone, Debug)]
pub struct Org {
    pub slug: String,
    pub key: String,
}

#[derive(Clone, Debug)]
pub struct Event {
    pub id: String,
    pub ticket_type: String,
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::now_v7().simple().to_string()[16..]
    )
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut kernel::Config)) -> TestApp {
        let tmp = std::env::temp_dir().join(unique("voelgoed-test"));
        let mut config = kernel::Config {
            data_dir: tmp.clone(),
            db_max_connections: 8,
            ..kernel::Config::default()
        };
        let mut pg = None;
        if backend == Backend::Postgres {
            let admin =
                std::env::var("VOELGOED_TEST_DATABASE_URL").expect("VOELGOED_TEST_DATABASE_URL");
            let name = format!("vg_test_{}", uuid::Uuid::now_v7().simple());
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .expect("PostgreSQL reachable");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create database");
            let (head, _) = admin
                .rsplit_once('/')
                .expect("database URL has a database name");
            config.database_url = Some(format!("{head}/{name}"));
            config.redis_url =
                Some(std::env::var("VOELGOED_TEST_REDIS_URL").expect("VOELGOED_TEST_REDIS_URL"));
            pg = Some((admin, name));
        }
        tweak(&mut config);
        Self::node(config, tmp, pg).await
    }

    async fn node(config: kernel::Config, tmp: PathBuf, pg: Option<(String, String)>) -> TestApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let running = server::start(config.clone(), listener)
            .await
            .expect("server starts");
        TestApp {
            base: format!("http://{}", running.addr),
            client: Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("client"),
            running: Some(running),
            config,
            tmp,
            pg,
        }
    }

    /// Another node on the same PostgreSQL database and Redis.
    pub async fn another_node(&self) -> TestApp {
        Self::node(self.config.clone(), self.tmp.clone(), None).await
    }

    pub fn app(&self) -> &platform::App {
        &self.running.as_ref().expect("running").app
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        if let Some((admin, name)) = self.pg.take()
            && let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await
        {
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&mut conn)
                .await;
        }
        let _ = std::fs::remove_dir_all(&self.tmp);
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

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut r = self.client.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("request")
    }

    pub async fn signup(&self) -> Org {
        let slug = unique("org");
        let r = self
            .post(
                "/api/v1/signup",
                None,
                json!({"email": format!("{slug}@example.com"), "password": "a long password", "org_name": "Test Org", "org_slug": slug}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.expect("json");
        Org {
            slug,
            key: v["api_key"].as_str().expect("api_key").to_string(),
        }
    }

    /// A published event with one free ticket type of `capacity`.
    pub async fn event(&self, org: &Org, capacity: i64) -> Event {
        let e = self
            .post(
                &format!("/api/v1/orgs/{}/events", org.slug),
                Some(&org.key),
                json!({"name": "Test Night", "starts_at": "2030-06-01T18:00:00Z", "ends_at": "2030-06-02T02:00:00Z", "timezone": "Africa/Johannesburg"}),
            )
            .await;
        assert_eq!(e.status(), 201);
        let e: Value = e.json().await.expect("json");
        let id = e["id"].as_str().expect("id").to_string();
        let t = self
            .post(
                &format!("/api/v1/orgs/{}/events/{id}/ticket-types", org.slug),
                Some(&org.key),
                json!({"name": "General", "price_cents": 0, "currency": "ZAR", "capacity": capacity}),
            )
            .await;
        assert_eq!(t.status(), 201);
        let t: Value = t.json().await.expect("json");
        let p = self
            .post(
                &format!("/api/v1/orgs/{}/events/{id}/publish", org.slug),
                Some(&org.key),
                json!({}),
            )
            .await;
        assert_eq!(p.status(), 200);
        Event {
            id,
            ticket_type: t["id"].as_str().expect("id").to_string(),
        }
    }

    /// What the storefront says is left of the event's ticket type.
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

    pub async fn checkout(
        &self,
        org: &Org,
        hold_id: &str,
        key: Option<&str>,
        email: &str,
    ) -> Response {
        let mut r = self
            .client
            .post(self.url(&format!(
                "/api/v1/store/{}/holds/{hold_id}/checkout",
                org.slug
            )))
            .json(&json!({"buyer": {"email": email, "name": "Buyer"}}));
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        r.send().await.expect("request")
    }

    /// Holds and checks out `quantity` tickets; returns the order.
    pub async fn buy(&self, org: &Org, event: &Event, quantity: i64) -> Value {
        let h = self.hold(org, event, quantity).await;
        assert_eq!(h.status(), 201);
        let h: Value = h.json().await.expect("json");
        let o = self
            .checkout(
                org,
                h["id"].as_str().expect("id"),
                None,
                "buyer@example.com",
            )
            .await;
        assert_eq!(o.status(), 201);
        o.json().await.expect("json")
    }

    /// A paired device for `events`; returns its token.
    pub async fn device(&self, org: &Org, events: &[&str]) -> String {
        let d = self
            .post(
                &format!("/api/v1/orgs/{}/devices", org.slug),
                Some(&org.key),
                json!({"name": "Gate 1", "event_ids": events}),
            )
            .await;
        assert_eq!(d.status(), 201);
        let d: Value = d.json().await.expect("json");
        let p = self
            .post(
                "/api/v1/devices/pair",
                None,
                json!({"pairing_code": d["pairing_code"]}),
            )
            .await;
        assert_eq!(p.status(), 201);
        let p: Value = p.json().await.expect("json");
        p["device_token"].as_str().expect("token").to_string()
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

    pub async fn count(&self, sql: &'static str, id: &str) -> i64 {
        let id: uuid::Uuid = id.parse().expect("uuid");
        kernel::db_run!(self.app().db(), p => sqlx::query_scalar::<_, i64>(sql).bind(id).fetch_one(p).await)
            .expect("count query")
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
