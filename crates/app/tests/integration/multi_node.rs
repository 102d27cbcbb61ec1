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

async fn stop(a: Arc<TestApp>, b: Arc<TestApp>) {
    Arc::try_unwrap(b).ok().expect("sole owner").stop().await;
    Arc::try_unwrap(a).ok().expect("sole owner").stop().await;
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
