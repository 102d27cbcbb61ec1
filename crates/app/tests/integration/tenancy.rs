//! One organization can never reach another's objects.

use serde_json::{Value, json};

use crate::{both, support::*};

both!(a_second_orgs_key_finds_nothing_of_the_first);
async fn a_second_orgs_key_finds_nothing_of_the_first(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let a = t.signup().await;
    let b = t.signup().await;
    let event = t.event(&a, 10).await;
    let order = t.buy(&a, &event, 1).await;
    let order_id = order["id"].as_str().unwrap();
    let ticket_id = order["tickets"][0]["id"].as_str().unwrap();
    let e = &event.id;
    let sa = &a.slug;

    // B's key on A's routes: 404, exactly as for a missing object.
    let gets = [
        format!("/api/v1/orgs/{sa}/events"),
        format!("/api/v1/orgs/{sa}/events/{e}"),
        format!("/api/v1/orgs/{sa}/orders/{order_id}"),
        format!("/api/v1/orgs/{sa}/tickets/{ticket_id}/qr.svg"),
        format!("/api/v1/orgs/{sa}/events/{e}/live"),
    ];
    for path in &gets {
        problem(t.get(path, Some(&b.key)).await, 404, "not_found").await;
    }
    let posts = [
        (
            format!("/api/v1/orgs/{sa}/events"),
            json!({"name": "x", "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-02T00:00:00Z", "timezone": "UTC"}),
        ),
        (
            format!("/api/v1/orgs/{sa}/events/{e}/ticket-types"),
            json!({"name": "x", "price_cents": 0, "currency": "ZAR", "capacity": 1}),
        ),
        (format!("/api/v1/orgs/{sa}/events/{e}/publish"), json!({})),
        (
            format!("/api/v1/orgs/{sa}/devices"),
            json!({"name": "x", "event_ids": [e]}),
        ),
    ];
    for (path, body) in &posts {
        problem(
            t.post(path, Some(&b.key), body.clone()).await,
            404,
            "not_found",
        )
        .await;
    }
    // B's key on its own org with A's ids: the same 404.
    let sb = &b.slug;
    for path in [
        format!("/api/v1/orgs/{sb}/events/{e}"),
        format!("/api/v1/orgs/{sb}/orders/{order_id}"),
        format!("/api/v1/orgs/{sb}/tickets/{ticket_id}/qr.svg"),
        format!("/api/v1/orgs/{sb}/events/{e}/live"),
    ] {
        problem(t.get(&path, Some(&b.key)).await, 404, "not_found").await;
    }
    problem(
        t.post(
            &format!("/api/v1/orgs/{sb}/events/{e}/ticket-types"),
            Some(&b.key),
            json!({"name": "x", "price_cents": 0, "currency": "ZAR", "capacity": 1}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    // A's event id is not one of B's for a device either.
    problem(
        t.post(
            &format!("/api/v1/orgs/{sb}/devices"),
            Some(&b.key),
            json!({"name": "x", "event_ids": [e]}),
        )
        .await,
        422,
        "validation",
    )
    .await;
    // A's order on B's storefront.
    let access = order["access_token"].as_str().unwrap();
    problem(
        t.get(
            &format!("/api/v1/store/{sb}/orders/{order_id}?access_token={access}"),
            None,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    t.stop().await;
}

both!(a_device_of_another_org_never_admits_a_ticket);
async fn a_device_of_another_org_never_admits_a_ticket(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let a = t.signup().await;
    let b = t.signup().await;
    let event_a = t.event(&a, 10).await;
    let event_b = t.event(&b, 10).await;
    let order = t.buy(&a, &event_a, 1).await;
    let code = order["tickets"][0]["code"].as_str().unwrap();
    let device_b = t.device(&b, &[&event_b.id]).await;

    // At B's own event, A's ticket is not B's.
    let r = t.scan(&device_b, code, &event_b.id).await;
    assert!(
        r["result"] == "invalid" || r["result"] == "wrong_event",
        "{r}"
    );
    assert_eq!(r["ticket"], Value::Null);
    // B's device cannot even ask about A's event.
    problem(
        t.post(
            "/api/v1/scan",
            Some(&device_b),
            json!({"code": code, "event_id": event_a.id}),
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    // A's own device still admits it: nothing was spent.
    let device_a = t.device(&a, &[&event_a.id]).await;
    assert_eq!(
        t.scan(&device_a, code, &event_a.id).await["result"],
        "admitted"
    );

    // A ticket of another event of the same org is the wrong event.
    let event_a2 = t.event(&a, 10).await;
    let device_a2 = t.device(&a, &[&event_a2.id]).await;
    let r = t.scan(&device_a2, code, &event_a2.id).await;
    assert_eq!(r["result"], "wrong_event");
    t.stop().await;
}
