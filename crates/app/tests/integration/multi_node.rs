//! Two nodes sharing PostgreSQL and Redis: the scale-out claims, hammered.

use std::sync::Arc;

use crate::support::*;

async fn two_nodes() -> Option<(Arc<TestApp>, Arc<TestApp>)> {
    if !postgres_configured() {
        eprintln!(
            "VOELGOED_TEST_DATABASE_URL / VOELGOED_TEST_REDIS_URL unset: multi-node test not run here"
        );
        return None;
    }
    let a = TestApp::spawn(Backend::Postgres).await;
    let b = a.another_node().await;
    Some((Arc::new(a), Arc::new(b)))
}

/// `voelgoed reconcile --window-secs 1` as an operator runs it, with a
/// node's environment.
fn reconcile(data_dir: &std::path::Path, env: &[(&str, &str)]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voelgoed"))
        .args(["reconcile", "--window-secs", "1"])
        .env("VOELGOED_DATA_DIR", data_dir)
        .env("VOELGOED_LOG", "error")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn stop(a: Arc<TestApp>, b: Arc<TestApp>) {
    Arc::try_unwrap(b).ok().expect("sole owner").stop().await;
    Arc::try_unwrap(a).ok().expect("sole owner").stop().await;
}

/// One waiting room across two nodes (the line is in Redis): visitors who
/// join on either node stand in one line, in the order they came, and a
/// pass used on one node is used on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_room_is_one_line_across_nodes() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    let org = a.signup().await;
    let event = a.event(&org, 100).await;
    // Opened a minute ago, 6 a minute: the first 6 are through.
    let opens = a.app().kernel.now() - 60 * 1_000_000;
    let r = a
        .api
        .client
        .put(a.url(&format!(
            "/api/v1/orgs/{}/events/{}/waiting-room",
            org.slug, event.id
        )))
        .bearer_auth(&org.key)
        .json(&serde_json::json!({"enabled": true, "per_minute": 6, "opens_at": kernel::clock::rfc3339(opens)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let queue = format!("/api/v1/store/{}/events/{}/queue", org.slug, event.id);
    let mut places = Vec::new();
    for i in 0..20 {
        let node = if i % 2 == 0 { &a } else { &b };
        let s: serde_json::Value = node
            .post(&queue, None, serde_json::json!({}))
            .await
            .json()
            .await
            .unwrap();
        places.push((
            s["token"].as_str().unwrap().to_string(),
            s["position"].as_u64().unwrap(),
            s["pass"].clone(),
        ));
    }
    // One line: ranks 0..20 in the order of arrival, whichever node.
    let ranks: Vec<u64> = places
        .iter()
        .map(|(_, position, pass)| if pass.is_string() { 0 } else { *position + 5 })
        .collect();
    assert!(
        places.iter().take(6).all(|p| p.2.is_string()),
        "the first 6 are through"
    );
    assert_eq!(ranks[6..].to_vec(), (6..20).collect::<Vec<u64>>());
    // A token taken on one node is known on the other; its pass is one hold.
    let pass = places[1].2.as_str().unwrap().to_string();
    let s: serde_json::Value = a
        .get(&format!("{queue}/{}", places[1].0), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s["pass"], pass.as_str());
    let hold = |node: &TestApp| {
        let body = serde_json::json!({"items": [{"ticket_type_id": event.ticket_type, "quantity": 1}], "queue_pass": pass});
        let path = format!("/api/v1/store/{}/events/{}/holds", org.slug, event.id);
        let node = node.api.clone();
        async move { node.post(&path, None, body).await.status().as_u16() }
    };
    assert_eq!(hold(&a).await, 201);
    assert_eq!(hold(&b).await, 403, "used on the other node");
    stop(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buyers_on_two_nodes_never_oversell() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    let org = a.signup().await;
    let event = a.event(&org, 60).await;
    let mut tasks = Vec::new();
    for i in 0..240 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (org, event) = (org.clone(), event.clone());
        tasks.push(tokio::spawn(async move {
            node.hold(&org, &event, 1).await.status().as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            201 => ok += 1,
            409 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 60);
    // Both nodes see the same nothing-left.
    for node in [&a, &b] {
        assert_eq!(node.available(&org, &event).await, 0);
    }
    stop(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_ticket_scanned_on_two_nodes_at_once_admits_once() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    let org = a.signup().await;
    let event = a.event(&org, 50).await;
    let order = a.buy(&org, &event, 10).await;
    let codes: Vec<String> = order["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["code"].as_str().unwrap().to_string())
        .collect();
    let device = a.device(&org, &[&event.id]).await;
    // Warm both nodes' gates first, so each decides from its own hot tier.
    let warm = a.buy(&org, &event, 1).await;
    let warm_code = warm["tickets"][0]["code"].as_str().unwrap();
    assert_eq!(
        a.scan(&device, warm_code, &event.id).await["result"],
        "admitted"
    );
    assert_eq!(
        b.scan(&device, warm_code, &event.id).await["result"],
        "already_admitted"
    );

    let mut tasks = Vec::new();
    for code in &codes {
        for node in [&a, &b, &a, &b] {
            let (node, code, event, device) =
                (node.clone(), code.clone(), event.id.clone(), device.clone());
            tasks.push(tokio::spawn(async move {
                (
                    code.clone(),
                    node.scan(&device, &code, &event).await["result"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            }));
        }
    }
    let mut admitted = std::collections::HashMap::<String, usize>::new();
    for t in tasks {
        let (code, result) = t.await.unwrap();
        assert!(
            result == "admitted" || result == "already_admitted",
            "{result}"
        );
        if result == "admitted" {
            *admitted.entry(code).or_default() += 1;
        }
    }
    assert_eq!(admitted.len(), codes.len(), "every ticket admitted");
    assert!(
        admitted.values().all(|&n| n == 1),
        "each exactly once: {admitted:?}"
    );
    stop(a, b).await;
}

/// The storefront's per-address limit and the per-buyer limit hold across
/// nodes (one GCRA bucket in Redis), and a refusal says when to come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_hold_across_nodes() {
    if !postgres_configured() {
        eprintln!("VOELGOED_TEST_DATABASE_URL / VOELGOED_TEST_REDIS_URL unset: not run here");
        return;
    }
    let a = TestApp::spawn_with(Backend::Postgres, |c| {
        c.storefront_per_minute = 6;
        c.buyer_per_minute = 0;
    })
    .await;
    let b = a.another_node().await;
    let org = a.signup().await;
    let event = a.event(&org, 100).await;
    let mut statuses = Vec::new();
    let mut refused = None;
    for i in 0..12 {
        let node = if i % 2 == 0 { &a } else { &b };
        let r = node.hold(&org, &event, 1).await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            refused = Some(r);
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        6,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        6,
        "{statuses:?}"
    );
    let r = refused.unwrap();
    let h = r.headers().clone();
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(h["ratelimit-limit"], "6");
    assert_eq!(h["ratelimit-remaining"], "0");
    assert_eq!(h["ratelimit-reset"].to_str().unwrap(), retry.to_string());
    problem(r, 429, "rate_limited").await;
    b.stop().await;
    a.stop().await;

    // One buyer, many addresses' worth of checkouts, two nodes: three a minute.
    let a = TestApp::spawn_with(Backend::Postgres, |c| {
        c.storefront_per_minute = 0;
        c.buyer_per_minute = 3;
    })
    .await;
    let b = a.another_node().await;
    let org = a.signup().await;
    let event = a.event(&org, 100).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let node = if i % 2 == 0 { &a } else { &b };
        let h: serde_json::Value = node.hold(&org, &event, 1).await.json().await.unwrap();
        // The same buyer, spelt differently.
        let email = if i % 2 == 0 {
            "Zoe@Example.com"
        } else {
            "zoe@example.com"
        };
        let r = node
            .checkout(&org, h["id"].as_str().unwrap(), None, email)
            .await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, vec![201, 201, 201, 429, 429, 429]);
    b.stop().await;
    a.stop().await;
}

/// Production mode, two real nodes sharing PostgreSQL and Redis; one is
/// killed (SIGKILL) in the middle of a sale and started again. No order
/// that was confirmed is lost, nothing is oversold, the dead node's holds
/// expire, its jobs are rescued, and the counters agree with the ledger
/// once reconciled (a reservation the kill cut off errs on the safe side
/// until then).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_sale_loses_no_order_and_oversells_nothing() {
    use std::time::Duration;
    if !postgres_configured() {
        eprintln!("VOELGOED_TEST_DATABASE_URL / VOELGOED_TEST_REDIS_URL unset: not run here");
        return;
    }
    let admin = std::env::var("VOELGOED_TEST_DATABASE_URL").unwrap();
    let redis = std::env::var("VOELGOED_TEST_REDIS_URL").unwrap();
    let (db_url, db_name) = fresh_pg_database(&admin, "vg_test_kill").await.unwrap();
    let env: Vec<(&str, &str)> = vec![
        ("DATABASE_URL", &db_url),
        ("REDIS_URL", &redis),
        ("VOELGOED_STOREFRONT_PER_MINUTE", "0"),
        ("VOELGOED_BUYER_PER_MINUTE", "0"),
        ("VOELGOED_HOLD_TTL_SECS", "3"),
        ("VOELGOED_JOBS_RESCUE_SECS", "2"),
    ];
    let dir_a = std::env::temp_dir().join(unique("voelgoed-kill-a"));
    let dir_b = std::env::temp_dir().join(unique("voelgoed-kill-b"));
    let a = Binary::start(&dir_a, &env).await;
    let b = Binary::start(&dir_b, &env).await;
    let org = a.api.signup().await;
    let event = a.api.event(&org, 150).await;

    // 600 buyers on both nodes; node A dies a moment into the sale.
    let (api_a, api_b) = (Arc::new(a.api.clone()), Arc::new(b.api.clone()));
    let mut tasks = Vec::new();
    for i in 0..600 {
        let api = if i % 2 == 0 {
            api_a.clone()
        } else {
            api_b.clone()
        };
        let (org, event) = (org.clone(), event.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((i % 60) * 5)).await;
            let h = api
                .client
                .post(api.url(&format!("/api/v1/store/{}/events/{}/holds", org.slug, event.id)))
                .json(&serde_json::json!({"items": [{"ticket_type_id": event.ticket_type, "quantity": 1}]}))
                .send()
                .await
                .ok()?;
            if h.status() != 201 {
                return None;
            }
            let h: serde_json::Value = h.json().await.ok()?;
            let r = api
                .client
                .post(api.url(&format!(
                    "/api/v1/store/{}/holds/{}/checkout",
                    org.slug,
                    h["id"].as_str()?
                )))
                .json(&serde_json::json!({"buyer": {"email": "buyer@example.com", "name": "B"}}))
                .send()
                .await
                .ok()?;
            if r.status() != 201 {
                return None;
            }
            let o: serde_json::Value = r.json().await.ok()?;
            Some(o["id"].as_str()?.to_string())
        }));
    }
    tokio::time::sleep(Duration::from_millis(120)).await;
    drop(a); // SIGKILL
    let mut confirmed = Vec::new();
    for t in tasks {
        if let Some(id) = t.await.unwrap() {
            confirmed.push(id);
        }
    }
    let a = Binary::start(&dir_a, &env).await;

    let pool = sqlx::PgPool::connect(&db_url).await.unwrap();
    let scalar = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    // Every confirmed order is there, paid, with its ticket.
    for id in &confirmed {
        let id: uuid::Uuid = id.parse().unwrap();
        let (status, tickets): (String, i64) = sqlx::query_as(
            "SELECT o.status, (SELECT COUNT(*) FROM tickets k WHERE k.org_id = o.org_id AND k.order_id = o.id)
             FROM orders o WHERE o.id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("a confirmed order survives the kill");
        assert_eq!((status.as_str(), tickets), ("paid", 1));
    }
    let sold = scalar("SELECT COUNT(*) FROM tickets").await;
    assert!(sold <= 150, "oversold: {sold}");
    assert!(sold >= confirmed.len() as i64);
    // The dead node's holds expire.
    let active = "SELECT COUNT(*) FROM holds WHERE status = 'active'";
    for _ in 0..100 {
        if scalar(active).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(scalar(active).await, 0, "a hold outlived its time");
    // Its jobs are rescued: nothing stays running, the mail all goes out.
    for _ in 0..150 {
        if scalar("SELECT COUNT(*) FROM jobs WHERE state IN ('running', 'available') AND kind = 'mail.send'").await
            == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        scalar("SELECT COUNT(*) FROM jobs WHERE state IN ('running', 'available') AND kind = 'mail.send'").await,
        0,
        "mail jobs stuck after the kill"
    );
    // The counters never promise more than the ledger allows; reconciled,
    // they agree with it exactly on both nodes.
    let left_by_ledger = 150 - sold;
    for node in [&a.api, &b.api] {
        let left = node.available(&org, &event).await;
        assert!(
            left <= left_by_ledger,
            "{left} > {left_by_ledger}: would oversell"
        );
    }
    reconcile(&dir_a, &env);
    for node in [&a.api, &b.api] {
        assert_eq!(node.available(&org, &event).await, left_by_ledger);
    }
    drop(a);
    drop(b);
    pool.close().await;
    drop_pg_database(&admin, &db_name).await;
}

/// A Redis server of the test's own, on a free port, that it can stop and
/// start again (empty, as a restarted cache is).
struct OwnRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = OwnRedis { port, child: None };
        r.restart();
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/test.sh installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("redis-server did not come up");
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One buyer: hold a ticket, check out. The hold's and the checkout's
/// statuses, and the order's id when it was made.
async fn buy(api: &Api, org: &Org, event: &Event, i: usize) -> (u16, u16, Option<String>) {
    let h = match api
        .client
        .post(api.url(&format!("/api/v1/store/{}/events/{}/holds", org.slug, event.id)))
        .json(&serde_json::json!({"items": [{"ticket_type_id": event.ticket_type, "quantity": 1 + (i % 2)}]}))
        .send()
        .await
    {
        Ok(h) => h,
        Err(_) => return (0, 0, None),
    };
    let status = h.status().as_u16();
    if status != 201 {
        if status != 409 {
            eprintln!("hold {status}: {}", h.text().await.unwrap_or_default());
        }
        return (status, 0, None);
    }
    if i.is_multiple_of(7) {
        return (status, 0, None); // walks away: the hold expires
    }
    let h: serde_json::Value = h.json().await.unwrap();
    let r = api
        .client
        .post(api.url(&format!(
            "/api/v1/store/{}/holds/{}/checkout",
            org.slug,
            h["id"].as_str().unwrap()
        )))
        .json(&serde_json::json!({"buyer": {"email": format!("b{i}@example.com"), "name": "B"}}))
        .send()
        .await
        .unwrap();
    let cs = r.status().as_u16();
    let o: serde_json::Value = r.json().await.unwrap_or_default();
    (status, cs, o["id"].as_str().map(str::to_string))
}

/// ARCHITECTURE.md §3: losing Redis degrades speed, never correctness.
/// Two nodes sell on PostgreSQL + a Redis that is stopped mid-sale: holds
/// go on from the ledger (none answers 503), Redis comes back empty and
/// counters are rebuilt from the ledger in a new epoch, and at the end
/// nothing is oversold, every order has its tickets, and the counters
/// agree with the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stopped_mid_sale_sales_go_on_and_never_oversell() {
    use std::time::Duration;
    if !postgres_configured() {
        eprintln!("VOELGOED_TEST_DATABASE_URL / VOELGOED_TEST_REDIS_URL unset: not run here");
        return;
    }
    let admin = std::env::var("VOELGOED_TEST_DATABASE_URL").unwrap();
    let mut redis = OwnRedis::start();
    let redis_url = redis.url();
    let (db_url, db_name) = fresh_pg_database(&admin, "vg_test_redis_lost")
        .await
        .unwrap();
    let env: Vec<(&str, &str)> = vec![
        ("DATABASE_URL", &db_url),
        ("REDIS_URL", &redis_url),
        ("VOELGOED_STOREFRONT_PER_MINUTE", "0"),
        ("VOELGOED_BUYER_PER_MINUTE", "0"),
        ("VOELGOED_HOLD_TTL_SECS", "4"),
    ];
    let dir_a = std::env::temp_dir().join(unique("voelgoed-redis-a"));
    let dir_b = std::env::temp_dir().join(unique("voelgoed-redis-b"));
    let a = Binary::start(&dir_a, &env).await;
    let b = Binary::start(&dir_b, &env).await;
    let org = a.api.signup().await;
    const CAPACITY: i64 = 500;
    let event = a.api.event(&org, CAPACITY).await;
    let apis = [Arc::new(a.api.clone()), Arc::new(b.api.clone())];

    // Three waves of 150 buyers (1 or 2 tickets each; one in seven walks
    // away from its hold) on both nodes: Redis up, Redis stopped during the
    // second, started again (empty) during the third.
    let mut outcomes = Vec::new();
    for wave in 0..3 {
        let mut tasks = Vec::new();
        for i in 0..150 {
            let api = apis[i % 2].clone();
            let (org, event) = (org.clone(), event.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis((i as u64 % 30) * 5)).await;
                buy(&api, &org, &event, wave * 1000 + i).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        match wave {
            1 => redis.stop(),
            2 => redis.restart(),
            _ => {}
        }
        let mut wave_out = Vec::new();
        for t in tasks {
            wave_out.push(t.await.unwrap());
        }
        outcomes.push(wave_out);
    }
    for (wave, out) in outcomes.iter().enumerate() {
        for (hold, checkout, _) in out {
            assert!(
                *hold == 201 || *hold == 409,
                "wave {wave}: a hold answered {hold}"
            );
            assert!(
                *hold != 201 || *checkout == 201 || *checkout == 0,
                "wave {wave}: a checkout answered {checkout}"
            );
        }
    }
    let sold_in = |w: usize| outcomes[w].iter().filter(|o| o.2.is_some()).count();
    eprintln!(
        "orders per wave: {} {} {}",
        sold_in(0),
        sold_in(1),
        sold_in(2)
    );
    assert!(sold_in(0) > 0, "nothing sold with Redis up");
    assert!(sold_in(1) > 0, "nothing sold while Redis was stopped");
    assert!(sold_in(2) > 0, "nothing sold once Redis was back");

    let pool = sqlx::PgPool::connect(&db_url).await.unwrap();
    let scalar = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert!(
        scalar("SELECT COUNT(*) FROM holds WHERE epoch IS NULL").await > 0,
        "no hold was taken from the ledger"
    );
    // Nothing oversold; every order has its tickets.
    let sold = scalar("SELECT COUNT(*) FROM tickets").await;
    assert!(sold <= CAPACITY, "oversold: {sold}");
    let taken = scalar(
        "SELECT CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT) FROM hold_items i JOIN holds h ON h.id = i.hold_id
         WHERE h.status IN ('active', 'consumed')",
    )
    .await;
    assert!(taken <= CAPACITY, "the ledger holds {taken} > {CAPACITY}");
    assert_eq!(
        scalar(
            "SELECT COUNT(*) FROM orders o WHERE (SELECT COUNT(*) FROM tickets k WHERE k.order_id = o.id)
               <> (SELECT SUM(i.quantity) FROM hold_items i WHERE i.hold_id = o.hold_id)"
        )
        .await,
        0,
        "an order without all its tickets"
    );
    let confirmed: usize = (0..3).map(sold_in).sum();
    assert_eq!(
        scalar("SELECT COUNT(*) FROM orders").await,
        confirmed as i64
    );
    assert!(
        scalar("SELECT epoch FROM inventory_epoch").await > 2,
        "the epoch did not move on"
    );
    // The walked-away holds expire; the counters never promise more than
    // the ledger allows, and reconciled they agree with it on both nodes.
    let active = "SELECT COUNT(*) FROM holds WHERE status = 'active'";
    for _ in 0..100 {
        if scalar(active).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(scalar(active).await, 0, "a hold outlived its time");
    let left_by_ledger = CAPACITY - sold;
    for node in [&a.api, &b.api] {
        let left = node.available(&org, &event).await;
        assert!(
            left <= left_by_ledger,
            "{left} > {left_by_ledger}: would oversell"
        );
    }
    reconcile(&dir_a, &env);
    for node in [&a.api, &b.api] {
        assert_eq!(node.available(&org, &event).await, left_by_ledger);
    }
    // And the rest sells, exactly.
    let mut left = left_by_ledger;
    while left > 0 {
        let n = left.min(10);
        assert_eq!(b.api.hold(&org, &event, n).await.status(), 201);
        left -= n;
    }
    assert_eq!(a.api.hold(&org, &event, 1).await.status(), 409);
    drop(a);
    drop(b);
    pool.close().await;
    drop_pg_database(&admin, &db_name).await;
}

/// One priced buyer on `api`: holds one or two tickets, checks out by card
/// and, at the provider at once, pays (half of them), is declined (a
/// fifth) or never pays. The hold's and the checkout's statuses (0: no
/// answer, the node died), and the order with whether it was paid for.
async fn priced_buyer(
    api: &Api,
    org: &Org,
    event: &Event,
    s: &voelgoed::stripe_standin::StandinHandle,
    tag: &str,
    i: usize,
) -> (u16, u16, Option<(String, bool)>) {
    let Ok(h) = api
        .client
        .post(api.url(&format!("/api/v1/store/{}/events/{}/holds", org.slug, event.id)))
        .json(&serde_json::json!({"items": [{"ticket_type_id": event.ticket_type, "quantity": 1 + (i % 2)}]}))
        .send()
        .await
    else {
        return (0, 0, None);
    };
    let hold = h.status().as_u16();
    if hold != 201 {
        return (hold, 0, None);
    }
    let Ok(h) = h.json::<serde_json::Value>().await else {
        return (0, 0, None);
    };
    let Ok(r) = api
        .client
        .post(api.url(&format!(
            "/api/v1/store/{}/holds/{}/checkout",
            org.slug,
            h["id"].as_str().unwrap()
        )))
        .json(&serde_json::json!({"buyer": {"email": format!("{tag}-{i}@example.com"), "name": "P"}, "payment_method": "card"}))
        .send()
        .await
    else {
        return (hold, 0, None);
    };
    let cs = r.status().as_u16();
    let o: serde_json::Value = r.json().await.unwrap_or_default();
    let Some(id) = o["id"].as_str() else {
        return (hold, cs, None);
    };
    let intent = o["payment"]["client_secret"]
        .as_str()
        .and_then(|c| c.split("_secret_").next())
        .expect("a card order has its intent")
        .to_string();
    let pays = match i % 10 {
        0..=4 => {
            s.succeed(&intent).unwrap();
            true
        }
        5 | 6 => {
            s.fail(&intent).unwrap();
            false
        }
        _ => false,
    };
    (hold, cs, Some((id.to_string(), pays)))
}

/// Two binaries on one fresh PostgreSQL database (and `redis`), paying
/// through a stand-in whose webhooks go to the first.
struct PricedSale {
    admin: String,
    db_name: String,
    db_url: String,
    s: voelgoed::stripe_standin::StandinHandle,
    env: Vec<(String, String)>,
    dir_a: std::path::PathBuf,
    dir_b: std::path::PathBuf,
}

impl PricedSale {
    async fn new(name: &str, redis_url: &str) -> PricedSale {
        let admin = std::env::var("VOELGOED_TEST_DATABASE_URL").unwrap();
        let (db_url, db_name) = fresh_pg_database(&admin, name).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s =
            voelgoed::stripe_standin::start(voelgoed::stripe_standin::Standin::default(), listener)
                .await;
        let cfg = s.config();
        let env = [
            ("DATABASE_URL", db_url.clone()),
            ("REDIS_URL", redis_url.to_string()),
            ("VOELGOED_STOREFRONT_PER_MINUTE", "0".into()),
            ("VOELGOED_BUYER_PER_MINUTE", "0".into()),
            ("VOELGOED_HOLD_TTL_SECS", "5".into()),
            ("VOELGOED_PAYMENT_TIMEOUT_SECS", "10".into()),
            ("VOELGOED_JOBS_RESCUE_SECS", "2".into()),
            ("VOELGOED_STRIPE_API_BASE", s.base_url()),
            ("VOELGOED_STRIPE_SECRET_KEY", cfg.secret_key.clone()),
            (
                "VOELGOED_STRIPE_PUBLISHABLE_KEY",
                cfg.publishable_key.clone(),
            ),
            ("VOELGOED_STRIPE_WEBHOOK_SECRET", cfg.webhook_secret.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        PricedSale {
            admin,
            db_name,
            db_url,
            s,
            env,
            dir_a: std::env::temp_dir().join(unique(&format!("{name}-a"))),
            dir_b: std::env::temp_dir().join(unique(&format!("{name}-b"))),
        }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    async fn start_a(&self) -> Binary {
        let a = Binary::start(&self.dir_a, &self.env()).await;
        self.s
            .set_webhook_url(Some(a.api.url("/api/v1/payments/stripe/webhook")));
        a
    }

    async fn start_b(&self) -> Binary {
        Binary::start(&self.dir_b, &self.env()).await
    }

    /// Both nodes, an org, and its event of `capacity` tickets at 25.00.
    async fn open(&self, capacity: i64) -> (Binary, Binary, Org, Event) {
        let a = self.start_a().await;
        let b = self.start_b().await;
        let org = a.api.signup().await;
        let event = a
            .api
            .try_event(
                &org,
                &voelgoed::testkit::EventSpec::capacity(capacity).priced(2500),
            )
            .await
            .unwrap();
        (a, b, org, event)
    }

    /// The books after the sale: every order paid or expired; paid exactly
    /// those paid for; paid orders with all their tickets, unpaid ones
    /// none and their holds given back; the ledger holding exactly what
    /// was sold, never more than the capacity; the counters never promising
    /// more than the ledger, agreeing with it once reconciled, and the rest
    /// selling exactly.
    async fn books_balance(
        &self,
        a: &Binary,
        b: &Binary,
        org: &Org,
        event: &Event,
        capacity: i64,
        paid: i64,
    ) {
        use std::time::Duration;
        let pool = sqlx::PgPool::connect(&self.db_url).await.unwrap();
        let scalar = |sql: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        let unsettled = "SELECT COUNT(*) FROM orders WHERE status NOT IN ('paid', 'expired')";
        let paid_sql = "SELECT COUNT(*) FROM orders WHERE status = 'paid'";
        for _ in 0..300 {
            if scalar(unsettled).await == 0 && scalar(paid_sql).await == paid {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(scalar(unsettled).await, 0, "every order paid or expired");
        assert_eq!(scalar(paid_sql).await, paid, "paid exactly those paid for");
        assert_eq!(
            scalar(
                "SELECT COUNT(*) FROM orders o WHERE o.status = 'paid' AND (SELECT COUNT(*) FROM tickets k WHERE k.order_id = o.id)
                   <> (SELECT SUM(i.quantity) FROM hold_items i WHERE i.hold_id = o.hold_id)"
            )
            .await,
            0,
            "a paid order without all its tickets"
        );
        assert_eq!(
            scalar("SELECT COUNT(*) FROM tickets k JOIN orders o ON o.id = k.order_id WHERE o.status <> 'paid'").await,
            0,
            "tickets issued for an unpaid order"
        );
        assert_eq!(
            scalar("SELECT COUNT(*) FROM orders o JOIN holds h ON h.id = o.hold_id WHERE o.status = 'expired' AND h.status <> 'released'").await,
            0,
            "an expired order kept its hold"
        );
        let active = "SELECT COUNT(*) FROM holds WHERE status = 'active'";
        for _ in 0..400 {
            if scalar(active).await == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(scalar(active).await, 0, "a hold outlived its time");
        let sold = scalar("SELECT COUNT(*) FROM tickets").await;
        assert!(sold <= capacity, "oversold: {sold}");
        let taken = scalar(
            "SELECT CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT) FROM hold_items i JOIN holds h ON h.id = i.hold_id
             WHERE h.status IN ('active', 'consumed')",
        )
        .await;
        assert_eq!(taken, sold, "the ledger holds exactly what was sold");
        let left_by_ledger = capacity - sold;
        for node in [&a.api, &b.api] {
            let left = node.available(org, event).await;
            assert!(
                left <= left_by_ledger,
                "{left} > {left_by_ledger}: would oversell"
            );
        }
        reconcile(&self.dir_a, &self.env());
        for node in [&a.api, &b.api] {
            assert_eq!(node.available(org, event).await, left_by_ledger);
        }
        let mut left = left_by_ledger;
        while left > 0 {
            let n = left.min(10);
            assert_eq!(b.api.hold(org, event, n).await.status(), 201);
            left -= n;
        }
        assert_eq!(a.api.hold(org, event, 1).await.status(), 409);
        pool.close().await;
    }

    async fn drop_database(self) {
        drop_pg_database(&self.admin, &self.db_name).await;
    }
}

/// The money test's race with Redis stopped mid-sale: two nodes sell priced
/// tickets by card through the provider stand-in while a Redis of the
/// test's own is stopped, then started again empty. Half the buyers pay,
/// a fifth are declined, the rest never pay: the books balance
/// (`PricedSale::books_balance`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stopped_mid_sale_priced_orders_are_paid_or_expire_and_the_books_balance() {
    use std::time::Duration;
    if !postgres_configured() {
        eprintln!("VOELGOED_TEST_DATABASE_URL / VOELGOED_TEST_REDIS_URL unset: not run here");
        return;
    }
    let mut redis = OwnRedis::start();
    let sale = PricedSale::new("vg_test_redis_priced", &redis.url()).await;
    const CAPACITY: i64 = 400;
    let (a, b, org, event) = sale.open(CAPACITY).await;
    let apis = [Arc::new(a.api.clone()), Arc::new(b.api.clone())];

    // Three waves of 100 buyers on both nodes: Redis up, stopped during the
    // second, started again (empty) during the third.
    let mut outcomes = Vec::new();
    for wave in 0..3 {
        let mut tasks = Vec::new();
        for i in 0..100usize {
            let api = apis[i % 2].clone();
            let (org, event, s) = (org.clone(), event.clone(), sale.s.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis((i as u64 % 30) * 5)).await;
                priced_buyer(&api, &org, &event, &s, &format!("w{wave}"), i).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        match wave {
            1 => redis.stop(),
            2 => redis.restart(),
            _ => {}
        }
        let mut wave_out = Vec::new();
        for t in tasks {
            wave_out.push(t.await.unwrap());
        }
        outcomes.push(wave_out);
    }
    let mut paid = 0;
    for (wave, out) in outcomes.iter().enumerate() {
        for (hold, checkout, order) in out {
            assert!(
                *hold == 201 || *hold == 409,
                "wave {wave}: a hold answered {hold}"
            );
            assert!(
                *hold != 201 || *checkout == 201,
                "wave {wave}: a checkout answered {checkout}"
            );
            paid += i64::from(order.as_ref().is_some_and(|(_, pays)| *pays));
        }
    }
    let sold_in = |w: usize| outcomes[w].iter().filter(|o| o.2.is_some()).count();
    assert!(
        sold_in(0) > 0 && sold_in(1) > 0 && sold_in(2) > 0,
        "orders per wave: {} {} {}",
        sold_in(0),
        sold_in(1),
        sold_in(2)
    );
    let pool = sqlx::PgPool::connect(&sale.db_url).await.unwrap();
    let from_ledger: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM holds WHERE epoch IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert!(from_ledger > 0, "no hold was taken from the ledger");
    sale.books_balance(&a, &b, &org, &event, CAPACITY, paid)
        .await;
    drop(a);
    drop(b);
    sale.drop_database().await;
}

/// The money test's race with a node killed (SIGKILL) mid-sale and started
/// again: what its buyers were told was confirmed is there; payments the
/// provider could not deliver while it was down arrive when the provider
/// retries; the dead node's unpaid orders expire and its holds come back.
/// The books balance as above.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_priced_sale_loses_no_payment_and_the_books_balance() {
    use std::time::Duration;
    if !postgres_configured() {
        eprintln!("VOELGOED_TEST_DATABASE_URL / VOELGOED_TEST_REDIS_URL unset: not run here");
        return;
    }
    let redis = std::env::var("VOELGOED_TEST_REDIS_URL").unwrap();
    let sale = PricedSale::new("vg_test_kill_priced", &redis).await;
    const CAPACITY: i64 = 300;
    let (a, b, org, event) = sale.open(CAPACITY).await;
    let apis = [Arc::new(a.api.clone()), Arc::new(b.api.clone())];
    let mut tasks = Vec::new();
    for i in 0..300usize {
        let api = apis[i % 2].clone();
        let (org, event, s) = (org.clone(), event.clone(), sale.s.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((i as u64 % 100) * 15)).await;
            let out = priced_buyer(&api, &org, &event, &s, "k", i).await;
            (i % 2 == 0, out)
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    drop(a); // SIGKILL
    let mut paid = 0;
    let mut confirmed = Vec::new();
    let (mut cut_off, mut on_a) = (0, 0);
    for t in tasks {
        let (at_a, (hold, checkout, order)) = t.await.unwrap();
        cut_off += usize::from(hold == 0 || (hold == 201 && checkout == 0));
        on_a += usize::from(at_a && order.is_some());
        assert!(matches!(hold, 0 | 201 | 409), "a hold answered {hold}");
        assert!(
            hold != 201 || matches!(checkout, 0 | 201),
            "a checkout answered {checkout}"
        );
        if let Some((id, pays)) = order {
            paid += i64::from(pays);
            confirmed.push(id);
        }
    }
    assert!(!confirmed.is_empty(), "nothing was sold");
    assert!(cut_off > 0, "the node died after the sale, not during it");
    assert!(on_a > 0, "the node died before it sold anything");
    eprintln!(
        "{} orders confirmed ({on_a} by the killed node), {cut_off} buyers cut off by the kill",
        confirmed.len()
    );
    let a = sale.start_a().await;
    // The provider retries what it could not deliver while the node was
    // down (Stripe for days; the stand-in's own retries may be over).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered: std::collections::HashSet<String> = sale
        .s
        .deliveries()
        .into_iter()
        .filter(|d| d.status == Some(200))
        .map(|d| d.event_id)
        .collect();
    for e in sale.s.events() {
        let id = e["id"].as_str().unwrap().to_string();
        if !delivered.contains(&id) {
            sale.s.resend(&id).await.unwrap();
        }
    }
    // Every order a buyer was told of is there.
    let pool = sqlx::PgPool::connect(&sale.db_url).await.unwrap();
    for id in &confirmed {
        let id: uuid::Uuid = id.parse().unwrap();
        let found: Option<i64> = sqlx::query_scalar("SELECT 1::BIGINT FROM orders WHERE id = $1")
            .bind(id)
            .fetch_optional(&pool)
            .await
            .unwrap();
        assert!(found.is_some(), "a confirmed order was lost");
    }
    pool.close().await;
    sale.books_balance(&a, &b, &org, &event, CAPACITY, paid)
        .await;
    drop(a);
    drop(b);
    sale.drop_database().await;
}

/// Capacity raised on one node while buyers hold on the other and both
/// nodes' sweeps offer what comes back to a waiting list: never more held
/// than the capacity, both nodes' counters agree with the ledger (a raise
/// is counted once), each place in line is offered once, in line order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_capacity_raised_on_one_node_is_counted_once_and_offered_in_line_order() {
    let Some((a, b)) = two_nodes().await else {
        return;
    };
    let org = a.signup().await;
    let event = a.event(&org, 10).await;
    for i in 0..10 {
        let node = if i % 2 == 0 { &a } else { &b };
        assert_eq!(node.hold(&org, &event, 1).await.status(), 201);
    }
    // Twelve in line, in a clear order.
    let mut line = Vec::new();
    for i in 0..12 {
        let email = format!("w{i:02}@example.com");
        let r = a
            .post(
                &format!(
                    "/api/v1/store/{}/events/{}/waiting-list",
                    org.slug, event.id
                ),
                None,
                serde_json::json!({"ticket_type_id": event.ticket_type, "quantity": 1,
                                   "email": email, "name": "W"}),
            )
            .await;
        assert_eq!(r.status(), 201, "{email}");
        line.push(email);
        a.advance(std::time::Duration::from_millis(1));
    }
    // Node A raises the capacity ten times by one while six buyers hold on
    // node B (so at least four go to the line).
    let patch = format!(
        "/api/v1/orgs/{}/events/{}/ticket-types/{}",
        org.slug, event.id, event.ticket_type
    );
    let raiser = {
        let (a, patch, key) = (a.clone(), patch.clone(), org.key.clone());
        tokio::spawn(async move {
            for cap in 11..=20 {
                let r = a
                    .patch(&patch, Some(&key), serde_json::json!({"capacity": cap}))
                    .await;
                assert_eq!(r.status(), 200, "capacity {cap}");
            }
        })
    };
    let mut buyers = Vec::new();
    for _ in 0..6 {
        let (b, org, event) = (b.clone(), org.clone(), event.clone());
        buyers.push(tokio::spawn(async move {
            b.hold(&org, &event, 1).await.status().as_u16()
        }));
    }
    raiser.await.unwrap();
    let mut bought = 0;
    for t in buyers {
        match t.await.unwrap() {
            201 => bought += 1,
            409 => {}
            other => panic!("hold answered {other}"),
        }
    }
    // Both sweeps offer what the buyers left, in line order; then nothing
    // more moves.
    let offered = || async {
        let v: serde_json::Value = a
            .get(
                &format!(
                    "/api/v1/orgs/{}/events/{}/waiting-list?limit=200",
                    org.slug, event.id
                ),
                Some(&org.key),
            )
            .await
            .json()
            .await
            .unwrap();
        v["data"].as_array().unwrap().clone()
    };
    let want = (10 - bought).max(0) as usize;
    a.eventually("the line offered what is left", || async {
        let l = offered().await;
        l.iter().filter(|e| e["status"] == "offered").count() == want
            && !l.iter().any(|e| e["status"] == "offering")
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let l = offered().await;
    let got: Vec<&str> = l
        .iter()
        .filter(|e| e["status"] == "offered")
        .map(|e| e["email"].as_str().unwrap())
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort_unstable();
    assert_eq!(
        got_sorted,
        line[..want].iter().map(String::as_str).collect::<Vec<_>>(),
        "offered strictly in line order"
    );
    // Each offer its own live hold.
    let holds: std::collections::BTreeSet<&str> = l
        .iter()
        .filter(|e| e["status"] == "offered")
        .map(|e| e["hold_id"].as_str().unwrap())
        .collect();
    assert_eq!(holds.len(), want);
    // The ledger: exactly the capacity held; both nodes' counters say the
    // same nothing-left (a raise counted twice would show more).
    assert_eq!(taken(&a, &[&event.ticket_type]).await, 20);
    for node in [&a, &b] {
        assert_eq!(node.available(&org, &event).await, 0);
    }
    stop(a, b).await;
}
