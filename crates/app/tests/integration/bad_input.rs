//! Bad input gets a clear 4xx problem+json: never a 500, a panic or a
//! partial write.

use serde_json::{Value, json};

use crate::{both, support::*};

both!(malformed_requests_get_problem_documents);
async fn malformed_requests_get_problem_documents(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 5).await;
    let events = format!("/api/v1/orgs/{}/events", org.slug);
    let raw = |path: String, body: &'static str| {
        t.client
            .post(t.url(&path))
            .bearer_auth(&org.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    // Malformed JSON, wrong types, missing fields, unknown fields.
    problem(
        raw(events.clone(), "{\"name\": ").await.unwrap(),
        400,
        "bad_request",
    )
    .await;
    let v = problem(
        raw(
            events.clone(),
            r#"{"name": 5, "starts_at": "x", "ends_at": "y", "timezone": "UTC"}"#,
        )
        .await
        .unwrap(),
        422,
        "validation",
    )
    .await;
    assert_eq!(v["errors"][0]["field"], "name", "{v}");
    problem(
        raw(events.clone(), r#"{"name": "x"}"#).await.unwrap(),
        422,
        "validation",
    )
    .await;
    problem(raw(events.clone(), r#"{"name": "x", "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-02T00:00:00Z", "timezone": "UTC", "admin": true}"#).await.unwrap(), 422, "validation").await;
    problem(raw(events.clone(), "[]").await.unwrap(), 422, "validation").await;
    // Not JSON at all.
    let r = t
        .client
        .post(t.url(&events))
        .bearer_auth(&org.key)
        .body("name=x")
        .send()
        .await
        .unwrap();
    problem(r, 415, "unsupported_media_type").await;
    // A body over the limit.
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(200 * 1024));
    let r = t
        .client
        .post(t.url(&events))
        .bearer_auth(&org.key)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "a connection whose body was not read is closed, and says so"
    );
    problem(r, 413, "payload_too_large").await;
    // Field rules: end before start, bad time, bad zone.
    let v = problem(
        t.post(&events, Some(&org.key), json!({"name": " ", "starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z", "timezone": "Not A Zone"})).await,
        422,
        "validation",
    )
    .await;
    let mut fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["ends_at", "name", "timezone"]);

    // Negative capacity, zero capacity, bad currency, negative price.
    let tts = format!("/api/v1/orgs/{}/events/{}/ticket-types", org.slug, event.id);
    for (body, field) in [
        (
            json!({"name": "x", "price_cents": 0, "currency": "ZAR", "capacity": -5}),
            "capacity",
        ),
        (
            json!({"name": "x", "price_cents": 0, "currency": "ZAR", "capacity": 0}),
            "capacity",
        ),
        (
            json!({"name": "x", "price_cents": 0, "currency": "rand", "capacity": 5}),
            "currency",
        ),
        (
            json!({"name": "x", "price_cents": -1, "currency": "ZAR", "capacity": 5}),
            "price_cents",
        ),
        (
            json!({"name": "x", "price_cents": 0, "currency": "ZAR", "capacity": "many"}),
            "capacity",
        ),
    ] {
        let v = problem(t.post(&tts, Some(&org.key), body).await, 422, "validation").await;
        assert_eq!(v["errors"][0]["field"], field, "{v}");
    }

    // Holds: zero, negative, unknown type, empty, seats on a GA event.
    for items in [
        json!({"items": [{"ticket_type_id": event.ticket_type, "quantity": 0}]}),
        json!({"items": [{"ticket_type_id": event.ticket_type, "quantity": -3}]}),
        json!({"items": [{"ticket_type_id": uuid::Uuid::now_v7(), "quantity": 1}]}),
        json!({"items": []}),
        json!({"seats": ["A1"]}),
        json!({"items": [{"ticket_type_id": "not-a-uuid", "quantity": 1}]}),
        json!({"items": [{"ticket_type_id": event.ticket_type, "quantity": 1}, {"ticket_type_id": event.ticket_type, "quantity": 1}]}),
    ] {
        problem(
            t.post(
                &format!("/api/v1/store/{}/events/{}/holds", org.slug, event.id),
                None,
                items,
            )
            .await,
            422,
            "validation",
        )
        .await;
    }
    // None of that held anything.
    assert_eq!(t.available(&org, &event).await, 5);

    // Checkout with a bad buyer leaves the hold usable (no partial write).
    let h: Value = t.hold(&org, &event, 1).await.json().await.unwrap();
    let hold = h["id"].as_str().unwrap();
    problem(
        t.checkout(&org, hold, None, "not an email").await,
        422,
        "validation",
    )
    .await;
    assert_eq!(
        t.count("SELECT COUNT(*) FROM orders WHERE hold_id = $1", hold)
            .await,
        0
    );
    assert_eq!(
        t.checkout(&org, hold, None, "ok@example.com")
            .await
            .status(),
        201
    );

    // Unknown and malformed ids: the same 404.
    let random = uuid::Uuid::now_v7();
    for (path, token) in [
        (
            format!("/api/v1/orgs/{}/events/{random}", org.slug),
            Some(org.key.as_str()),
        ),
        (
            format!("/api/v1/orgs/{}/events/not-an-id", org.slug),
            Some(org.key.as_str()),
        ),
        (format!("/api/v1/store/{}/events/{random}", org.slug), None),
        (
            format!("/api/v1/store/no-such-org/events/{}", event.id),
            None,
        ),
    ] {
        problem(t.get(&path, token).await, 404, "not_found").await;
    }
    problem(
        t.checkout(&org, &random.to_string(), None, "a@example.com")
            .await,
        404,
        "not_found",
    )
    .await;
    problem(t.get("/api/v1/nothing-here", None).await, 404, "not_found").await;
    problem(
        t.client
            .delete(t.url("/api/v1/signup"))
            .send()
            .await
            .unwrap(),
        405,
        "method_not_allowed",
    )
    .await;

    // Credentials: none, wrong, a device token where an API key belongs.
    problem(t.get(&events, None).await, 401, "unauthorized").await;
    problem(t.get(&events, Some("vg_forged")).await, 401, "unauthorized").await;
    let device = t.device(&org, &[&event.id]).await;
    problem(t.get(&events, Some(&device)).await, 401, "unauthorized").await;
    problem(
        t.post(
            "/api/v1/scan",
            Some(&org.key),
            json!({"code": "x", "event_id": event.id}),
        )
        .await,
        401,
        "unauthorized",
    )
    .await;
    problem(
        t.post(
            "/api/v1/scan",
            None,
            json!({"code": "x", "event_id": event.id}),
        )
        .await,
        401,
        "unauthorized",
    )
    .await;

    // Duplicate sign-up.
    problem(
        t.post("/api/v1/signup", None, json!({"email": "x@example.com", "password": "a long password", "org_name": "X", "org_slug": org.slug})).await,
        409,
        "conflict",
    )
    .await;
    problem(
        t.post(
            "/api/v1/signup",
            None,
            json!({"email": "x", "password": "short", "org_name": "", "org_slug": "A B"}),
        )
        .await,
        422,
        "validation",
    )
    .await;
    t.stop().await;
}

both!(forged_truncated_and_garbage_codes_are_invalid_not_errors);
async fn forged_truncated_and_garbage_codes_are_invalid_not_errors(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 5).await;
    let order = t.buy(&org, &event, 2).await;
    let code = order["tickets"][0]["code"].as_str().unwrap().to_string();
    let other = order["tickets"][1]["code"].as_str().unwrap().to_string();
    let device = t.device(&org, &[&event.id]).await;

    // Compact codes: `VG2`, then base32 of a 44-byte payload and a 64-byte
    // signature (the payload ends in the 71st character after the prefix).
    let cut = 3 + 71;
    let mut flipped = code.clone().into_bytes();
    let i = code.len() - 20;
    flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for bad in [
        code[..code.len() - 10].to_string(),          // truncated
        format!("{}{}", &other[..cut], &code[cut..]), // another ticket's payload, this signature
        flipped,                                      // a bit of the signature changed
        "VG1.deadbeef.AAAA.BBBB".to_string(),         // the old shape, nonsense inside
        format!("VG2{}", "A".repeat(code.len() - 3)), // the new shape, nonsense inside
        "hello world".to_string(),
        "🎟️".repeat(20),
        format!("{code}x"),
    ] {
        let r = t.scan(&device, &bad, &event.id).await;
        assert_eq!(r["result"], "invalid", "{bad}: {r}");
    }
    // A malformed request is a 4xx, not a scan result.
    problem(
        t.post(
            "/api/v1/scan",
            Some(&device),
            json!({"code": "", "event_id": event.id}),
        )
        .await,
        422,
        "validation",
    )
    .await;
    problem(
        t.post(
            "/api/v1/scan",
            Some(&device),
            json!({"code": "x".repeat(10_000), "event_id": event.id}),
        )
        .await,
        422,
        "validation",
    )
    .await;
    problem(
        t.post(
            "/api/v1/scan",
            Some(&device),
            json!({"code": code, "event_id": "nope"}),
        )
        .await,
        422,
        "validation",
    )
    .await;
    problem(
        t.post("/api/v1/scan", Some(&device), json!({"event_id": event.id}))
            .await,
        422,
        "validation",
    )
    .await;
    // Nothing above spent the genuine ticket.
    assert_eq!(
        t.scan(&device, &code, &event.id).await["result"],
        "admitted"
    );
    t.stop().await;
}

both!(sign_up_switched_off_answers_403);
async fn sign_up_switched_off_answers_403(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| c.signup_enabled = false).await;
    let r = t
        .post(
            "/api/v1/signup",
            None,
            json!({"email": "a@example.com", "password": "a long password", "org_name": "A", "org_slug": unique("off")}),
        )
        .await;
    problem(r, 403, "forbidden").await;
    t.stop().await;
}

both!(guessing_pairing_codes_is_rate_limited);
async fn guessing_pairing_codes_is_rate_limited(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| c.sensitive_per_minute = 5).await;
    for _ in 0..5 {
        problem(
            t.post(
                "/api/v1/devices/pair",
                None,
                json!({"pairing_code": "WRONGCODE1"}),
            )
            .await,
            404,
            "not_found",
        )
        .await;
    }
    let r = t
        .post(
            "/api/v1/devices/pair",
            None,
            json!({"pairing_code": "WRONGCODE2"}),
        )
        .await;
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    problem(r, 429, "rate_limited").await;
    // Sign-up shares the budget: the same client is still told to wait.
    let r = t
        .post(
            "/api/v1/signup",
            None,
            json!({"email": "a@example.com", "password": "a long password", "org_name": "A", "org_slug": unique("rl")}),
        )
        .await;
    problem(r, 429, "rate_limited").await;
    t.stop().await;
}
