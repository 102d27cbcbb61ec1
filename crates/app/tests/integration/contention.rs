//! Never oversells, admits exactly once: proven under real contention.

use std::sync::Arc;

use serde_json::Value;

use crate::{both, support::*};

both!(four_hundred_buyers_race_for_one_hundred_tickets);
async fn four_hundred_buyers_race_for_one_hundred_tickets(backend: Backend) {
    let t = Arc::new(TestApp::spawn(backend).await);
    let org = t.signup().await;
    let event = t.event(&org, 100).await;
    let mut tasks = Vec::new();
    for _ in 0..400 {
        let (t, org, event) = (t.clone(), org.clone(), event.clone());
        tasks.push(tokio::spawn(async move {
            let r = t.hold(&org, &event, 1).await;
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (status, body["type"].as_str().unwrap_or("").to_string())
        }));
    }
    let mut ok = 0;
    let mut sold_out = 0;
    for task in tasks {
        match task.await.unwrap() {
            (201, _) => ok += 1,
            (409, kind) if kind == "sold_out" => sold_out += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((ok, sold_out), (100, 300));
    // The ledger agrees: exactly 100 held, nothing left.
    let held = t
        .count(
            "SELECT CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT) FROM hold_items i JOIN holds h ON h.org_id = i.org_id AND h.id = i.hold_id
             WHERE h.event_id = $1 AND h.status = 'active'",
            &event.id,
        )
        .await;
    assert_eq!(held, 100);
    assert_eq!(t.available(&org, &event).await, 0);
    Arc::try_unwrap(t).ok().expect("sole owner").stop().await;
}

both!(twenty_devices_scan_one_ticket_at_once_and_one_admits);
async fn twenty_devices_scan_one_ticket_at_once_and_one_admits(backend: Backend) {
    let t = Arc::new(TestApp::spawn(backend).await);
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let order = t.buy(&org, &event, 1).await;
    let code = order["tickets"][0]["code"].as_str().unwrap().to_string();
    let mut devices = Vec::new();
    for _ in 0..20 {
        devices.push(t.device(&org, &[&event.id]).await);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for d in devices {
        let (t, code, event, barrier) =
            (t.clone(), code.clone(), event.id.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            t.scan(&d, &code, &event).await
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let admitted: Vec<&Value> = results
        .iter()
        .filter(|r| r["result"] == "admitted")
        .collect();
    assert_eq!(admitted.len(), 1, "{results:?}");
    let first = admitted[0]["first_admitted_at"].clone();
    for r in &results {
        assert!(
            r["result"] == "admitted" || r["result"] == "already_admitted",
            "{r}"
        );
        assert_eq!(r["first_admitted_at"], first);
    }
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM tickets WHERE event_id = $1 AND admitted_at IS NOT NULL",
            &event.id
        )
        .await,
        1
    );
    Arc::try_unwrap(t).ok().expect("sole owner").stop().await;
}

both!(many_tickets_scanned_at_once_are_each_admitted_once);
async fn many_tickets_scanned_at_once_are_each_admitted_once(backend: Backend) {
    let t = Arc::new(TestApp::spawn(backend).await);
    let org = t.signup().await;
    let event = t.event(&org, 200).await;
    let mut codes = Vec::new();
    for _ in 0..10 {
        let o = t.buy(&org, &event, 10).await;
        for ticket in o["tickets"].as_array().unwrap() {
            codes.push(ticket["code"].as_str().unwrap().to_string());
        }
    }
    let device = t.device(&org, &[&event.id]).await;
    // Every code twice, all at once: the admission writer batches them.
    let mut tasks = Vec::new();
    for code in codes.iter().chain(codes.iter()) {
        let (t, code, event, device) = (t.clone(), code.clone(), event.id.clone(), device.clone());
        tasks.push(tokio::spawn(async move {
            t.scan(&device, &code, &event).await["result"]
                .as_str()
                .unwrap()
                .to_string()
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        if task.await.unwrap() == "admitted" {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 100);
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM tickets WHERE event_id = $1 AND admitted_at IS NOT NULL",
            &event.id
        )
        .await,
        100
    );
    Arc::try_unwrap(t).ok().expect("sole owner").stop().await;
}
