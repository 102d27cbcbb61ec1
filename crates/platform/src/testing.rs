//! Test support inside the platform crate: an [`App`] on a fresh SQLite
//! database with a manual clock (and the Redis warm tier when asked), for
//! the slices' own tests. Stories across slices over HTTP live in the
//! integration test binary and its test kit.

use std::{path::PathBuf, sync::Arc};

use kernel::{Clock, Config, Db, Kernel, pubsub::Hub, ratelimit::Limits, warm::Warm};

use crate::{
    App,
    identity::{Actor, Tenant},
};

pub const TEST_REDIS_URL: &str = "VOELGOED_TEST_REDIS_URL";

/// The Redis URL for warm-tier tests; under CI its absence fails the test.
pub fn redis_url() -> Option<String> {
    match std::env::var(TEST_REDIS_URL) {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok() => {
            panic!("CI is set but {TEST_REDIS_URL} is not: the warm-tier tests must run")
        }
        Err(_) => {
            eprintln!("{TEST_REDIS_URL} unset: the Redis variant is not run here");
            None
        }
    }
}

pub struct TestPlatform {
    pub app: App,
    pub clock: Clock,
    dir: PathBuf,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for TestPlatform {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A platform (no HTTP, no background work) on a fresh SQLite file.
pub async fn platform(redis: Option<String>, tweak: impl FnOnce(&mut Config)) -> TestPlatform {
    let dir = std::env::temp_dir().join(format!("vg-platform-{}", uuid::Uuid::now_v7()));
    let mut config = Config {
        data_dir: dir.clone(),
        redis_url: redis,
        storefront_per_minute: 0,
        ..Config::default()
    };
    tweak(&mut config);
    let db = Db::connect(&config).await.expect("database");
    db.migrate().await.expect("migrations");
    let warm = match &config.redis_url {
        Some(url) => Some(Warm::connect(url).await.expect("redis")),
        None => None,
    };
    let clock = Clock::manual_from_now();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let kernel = Kernel {
        master: Arc::new(kernel::secrets::MasterKey::random()),
        db,
        warm,
        hub: Hub::local(),
        clock: clock.clone(),
        limits: Limits::new(1000, 0),
        config: Arc::new(config),
        shutdown,
        load: Default::default(),
    };
    TestPlatform {
        app: crate::assemble(kernel).app,
        clock,
        dir,
        _stop: stop,
    }
}

/// A new organization and an actor in it with every permission.
pub async fn org(app: &App) -> Actor {
    let slug = format!("t-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let out = crate::identity::create_org(
        app,
        crate::identity::NewOrg {
            email: format!("{slug}@example.com"),
            password: "a long password".into(),
            owner_name: None,
            org_name: "Test".into(),
            org_slug: slug.clone(),
        },
    )
    .await
    .expect("org");
    Actor::for_tests(Tenant::for_tests(out.org.id, &slug))
}
