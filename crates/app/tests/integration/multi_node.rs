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
