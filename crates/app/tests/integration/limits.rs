//! An event's sales limits: tickets per order at the hold, per buyer (by
//! e-mail) at checkout — held under racing checkouts of one buyer — and
//! what bad input to the settings gets.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::{both, support::*};

async fn put_limits(t: &TestApp, org: &Org, event: &Event, body: Value) -> reqwest::Response {
    t.api
        .client
        .put(t.url(&format!(
            "/api/v1/orgs/{}/events/{}/sales-limits",
            org.slug, event.id
        )))
        .bearer_auth(&org.key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn hold_id(t: &TestApp, org: &Org, event: &Event, n: i64) -> String {
    let h = t.hold(org, event, n).await;
    assert_eq!(h.status(), 201, "hold of {n}");
    let h: Value = h.json().await.unwrap();
    h["id"].as_str().unwrap().to_string()
}

both!(limits_per_order_and_per_buyer);
async fn limits_per_order_and_per_buyer(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 100).await;
    let limits = format!("/api/v1/orgs/{}/events/{}/sales-limits", org.slug, event.id);
    let none: Value = t.get(&limits, Some(&org.key)).await.json().await.unwrap();
    assert_eq!(
        none,
        json!({"max_tickets_per_order": null, "max_tickets_per_buyer": null,
               "waitlist_offer_hours": null})
    );
    let r = put_limits(
        &t,
        &org,
        &event,
        json!({"max_tickets_per_order": 3, "max_tickets_per_buyer": 4}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let got: Value = t.get(&limits, Some(&org.key)).await.json().await.unwrap();
    assert_eq!(got["max_tickets_per_buyer"], 4);

    // Per order, at the hold.
    let r = t.hold(&org, &event, 4).await;
    assert_eq!(r.status(), 422);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["errors"][0]["field"], "items", "{p}");
    assert_eq!(t.available(&org, &event).await, 100, "nothing taken");

    // Per buyer, at checkout: 3, then 2 more is over 4.
    let h = hold_id(&t, &org, &event, 3).await;
    assert_eq!(
        t.checkout(&org, &h, None, "ann@example.com").await.status(),
        201
    );
    let h = hold_id(&t, &org, &event, 2).await;
    let r = t.checkout(&org, &h, None, "Ann@Example.com").await;
    assert_eq!(
        r.status(),
        422,
        "the address is the same, whatever its case"
    );
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["errors"][0]["field"], "buyer.email", "{p}");
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 4"),
        "{p}"
    );
    // The hold is still there for another buyer; one more for Ann fits.
    assert_eq!(
        t.checkout(&org, &h, None, "bob@example.com").await.status(),
        201
    );
    let h = hold_id(&t, &org, &event, 1).await;
    assert_eq!(
        t.checkout(&org, &h, None, "ann@example.com").await.status(),
        201
    );
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM tickets k JOIN orders o ON o.id = k.order_id WHERE o.buyer_email = 'ann@example.com' AND o.event_id = $1",
            &event.id
        )
        .await,
        4
    );

    // Lifted: Ann may buy again.
    assert_eq!(
        put_limits(
            &t,
            &org,
            &event,
            json!({"max_tickets_per_order": 3, "max_tickets_per_buyer": null})
        )
        .await
        .status(),
        200
    );
    let h = hold_id(&t, &org, &event, 3).await;
    assert_eq!(
        t.checkout(&org, &h, None, "ann@example.com").await.status(),
        201
    );

    // Bad input: out of range, wrong type, unknown field, not JSON, an
    // unknown event, another org's event, no key.
    for body in [
        json!({"max_tickets_per_order": 0}),
        json!({"max_tickets_per_buyer": 100001}),
        json!({"max_tickets_per_order": "three"}),
        json!({"max_tickets_per_order": 2.5}),
        json!({"per_order": 3}),
        json!([1]),
    ] {
        let r = put_limits(&t, &org, &event, body.clone()).await;
        assert!(
            r.status() == 422 || r.status() == 400,
            "{body}: {}",
            r.status()
        );
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{body}"
        );
    }
    let r = t
        .api
        .client
        .put(t.url(&limits))
        .bearer_auth(&org.key)
        .header("content-type", "application/json")
        .body("{\"max_tickets_per_order\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let other = t.signup().await;
    let r = put_limits(&t, &other, &event, json!({"max_tickets_per_order": 1})).await;
    assert_eq!(r.status(), 404, "another org's event");
    let ghost = Event {
        id: kernel::ids::EventId::new().to_string(),
        ..event.clone()
    };
    assert_eq!(put_limits(&t, &org, &ghost, json!({})).await.status(), 404);
    let r = t
        .api
        .client
        .put(t.url(&limits))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let got: Value = t.get(&limits, Some(&org.key)).await.json().await.unwrap();
    assert_eq!(
        got,
        json!({"max_tickets_per_order": 3, "max_tickets_per_buyer": null,
               "waitlist_offer_hours": null}),
        "nothing bad was written"
    );
    t.stop().await;
}

both!(one_buyer_racing_checkouts_never_passes_the_limit);
async fn one_buyer_racing_checkouts_never_passes_the_limit(backend: Backend) {
    let t = Arc::new(TestApp::spawn(backend).await);
    let org = t.signup().await;
    let event = t.event(&org, 200).await;
    assert_eq!(
        put_limits(&t, &org, &event, json!({"max_tickets_per_buyer": 5}))
            .await
            .status(),
        200
    );
    // 40 holds (of 1 or 2), then all checked out at once by one address
    // and, beside it, by others.
    let mut holds = Vec::new();
    for i in 0..40 {
        holds.push(hold_id(&t, &org, &event, 1 + i % 2).await);
    }
    let mut tasks = Vec::new();
    for (i, h) in holds.into_iter().enumerate() {
        let (t, org) = (t.clone(), org.clone());
        tasks.push(tokio::spawn(async move {
            let email = if i % 4 == 3 {
                format!("other{i}@example.com")
            } else {
                "racer@example.com".to_string()
            };
            t.checkout(&org, &h, None, &email).await.status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 422),
        "{statuses:?}"
    );
    let racer = t
        .count(
            "SELECT COUNT(*) FROM tickets k JOIN orders o ON o.id = k.order_id WHERE o.buyer_email = 'racer@example.com' AND o.event_id = $1",
            &event.id,
        )
        .await;
    assert!(
        (4..=5).contains(&racer),
        "the racer has {racer} tickets: the limit is 5 (and 4 when the last fit was a pair)"
    );
    let others = t
        .count(
            "SELECT COUNT(*) FROM orders WHERE buyer_email <> 'racer@example.com' AND event_id = $1",
            &event.id,
        )
        .await;
    assert_eq!(others, 10, "other buyers are not held back");
    Arc::try_unwrap(t).ok().expect("sole owner").stop().await;
}
