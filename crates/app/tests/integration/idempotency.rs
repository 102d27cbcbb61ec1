//! Idempotency-Key on checkout, exactly as API.md writes it.

use std::sync::Arc;

use serde_json::Value;

use crate::{both, support::*};

both!(the_same_key_and_body_return_the_first_order_again);
async fn the_same_key_and_body_return_the_first_order_again(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let h: Value = t.hold(&org, &event, 2).await.json().await.unwrap();
    let hold = h["id"].as_str().unwrap();

    let first = t
        .checkout(&org, hold, Some("key-1"), "ada@example.com")
        .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = t
        .checkout(&org, hold, Some("key-1"), "ada@example.com")
        .await;
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.unwrap();
    assert_eq!(first, again, "the replay is the first reply, byte for byte");
    assert_eq!(
        t.count("SELECT COUNT(*) FROM orders WHERE hold_id = $1", hold)
            .await,
        1
    );
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM tickets WHERE event_id = $1",
            &event.id
        )
        .await,
        2
    );

    // Same key, another body: 422 idempotency_conflict, nothing written.
    problem(
        t.checkout(&org, hold, Some("key-1"), "grace@example.com")
            .await,
        422,
        "idempotency_conflict",
    )
    .await;
    assert_eq!(
        t.count("SELECT COUNT(*) FROM orders WHERE hold_id = $1", hold)
            .await,
        1
    );
    t.stop().await;
}

both!(a_body_with_its_members_in_another_order_is_the_same_request);
/// JSON objects are unordered: a retry whose client wrote the members in
/// another order is the same request, answered with the first reply (the
/// binary built for tests keeps members in their order, as a dependency
/// asks of serde_json: seen by the conformance run as a 422).
async fn a_body_with_its_members_in_another_order_is_the_same_request(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let h: Value = t.hold(&org, &event, 1).await.json().await.unwrap();
    let hold = h["id"].as_str().unwrap();
    let send = |text: &'static str| {
        t.client
            .post(t.url(&format!("/api/v1/store/{}/holds/{hold}/checkout", org.slug)))
            .header("Idempotency-Key", "ordered-1")
            .header("Content-Type", "application/json")
            .body(text)
            .send()
    };
    let first =
        send(r#"{"buyer": {"email": "ada@example.com", "name": "Ada"}, "payment_method": "eft"}"#)
            .await
            .unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again =
        send(r#"{"payment_method": "eft", "buyer": {"name": "Ada", "email": "ada@example.com"}}"#)
            .await
            .unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(first, again.json::<Value>().await.unwrap());
    t.stop().await;
}

both!(concurrent_retries_with_one_key_make_one_order);
async fn concurrent_retries_with_one_key_make_one_order(backend: Backend) {
    let t = Arc::new(TestApp::spawn(backend).await);
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let h: Value = t.hold(&org, &event, 1).await.json().await.unwrap();
    let hold = h["id"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (t, org, hold) = (t.clone(), org.clone(), hold.clone());
        tasks.push(tokio::spawn(async move {
            let r = t
                .checkout(&org, &hold, Some("same-key"), "ada@example.com")
                .await;
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            201 => {
                ids.insert(body["id"].as_str().unwrap().to_string());
            }
            409 => assert_eq!(body["type"], "conflict", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM orders WHERE hold_id = $1", &hold)
            .await,
        1
    );
    // After the dust settles, the key replays the order.
    let r: Value = t
        .checkout(&org, &hold, Some("same-key"), "ada@example.com")
        .await
        .json()
        .await
        .unwrap();
    assert!(ids.contains(r["id"].as_str().unwrap()));
    Arc::try_unwrap(t).ok().expect("sole owner").stop().await;
}
