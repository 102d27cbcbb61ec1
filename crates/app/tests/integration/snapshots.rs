//! The contract as integrators see it, pinned: the OpenAPI document and the
//! problem documents of the common errors. A change to either shows up as
//! a snapshot diff to review (`cargo insta review`), never silently.

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_openapi_document_is_pinned() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let doc: Value = t.get("/api/openapi.json", None).await.json().await.unwrap();
    insta::assert_json_snapshot!("openapi", doc);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn problem_documents_are_pinned() {
    let t = TestApp::spawn_with(Backend::Sqlite, |c| c.max_body_bytes = 1024).await;
    let org = t.signup().await;
    let event = t.event(&org, 1).await;
    let raw = |method: reqwest::Method, path: String, ct: &'static str, body: String| {
        t.client
            .request(method, t.url(&path))
            .bearer_auth(&org.key)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let events = format!("/api/v1/orgs/{}/events", org.slug);
    let mut problems = serde_json::Map::new();
    let mut keep = |name: &str, v: Value| {
        problems.insert(name.to_string(), v);
    };
    keep(
        "malformed_json",
        problem(
            raw(
                reqwest::Method::POST,
                events.clone(),
                "application/json",
                "{\"name\": ".into(),
            )
            .await
            .unwrap(),
            400,
            "bad_request",
        )
        .await,
    );
    keep(
        "wrong_type",
        problem(
            raw(
                reqwest::Method::POST,
                events.clone(),
                "application/json",
                json!({"name": 5, "starts_at": "x", "ends_at": "y", "timezone": "UTC"}).to_string(),
            )
            .await
            .unwrap(),
            422,
            "validation",
        )
        .await,
    );
    keep(
        "field_rules",
        problem(
            t.post(
                &events,
                Some(&org.key),
                json!({"name": " ", "starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z", "timezone": "no such zone"}),
            )
            .await,
            422,
            "validation",
        )
        .await,
    );
    keep(
        "unsupported_media_type",
        problem(
            raw(
                reqwest::Method::POST,
                events.clone(),
                "text/plain",
                "{}".into(),
            )
            .await
            .unwrap(),
            415,
            "unsupported_media_type",
        )
        .await,
    );
    keep(
        "payload_too_large",
        problem(
            raw(
                reqwest::Method::POST,
                events.clone(),
                "application/json",
                format!("{{\"name\": \"{}\"}}", "x".repeat(4096)),
            )
            .await
            .unwrap(),
            413,
            "payload_too_large",
        )
        .await,
    );
    keep(
        "method_not_allowed",
        problem(
            raw(
                reqwest::Method::DELETE,
                events.clone(),
                "application/json",
                String::new(),
            )
            .await
            .unwrap(),
            405,
            "method_not_allowed",
        )
        .await,
    );
    keep(
        "not_found",
        problem(t.get("/api/v1/no/such/thing", None).await, 404, "not_found").await,
    );
    keep(
        "unauthorized",
        problem(t.get(&events, None).await, 401, "unauthorized").await,
    );
    keep(
        "unknown_key",
        problem(
            t.get(&events, Some("vg_not_a_key")).await,
            401,
            "unauthorized",
        )
        .await,
    );
    let h: Value = t.hold(&org, &event, 1).await.json().await.unwrap();
    let mut sold_out = problem(t.hold(&org, &event, 1).await, 409, "sold_out").await;
    sold_out["detail"] = "[ticket type id redacted]".into();
    keep("sold_out", sold_out);
    let hold = h["id"].as_str().unwrap();
    assert_eq!(
        t.checkout(&org, hold, Some("k"), "a@example.com")
            .await
            .status(),
        201
    );
    keep(
        "idempotency_conflict",
        problem(
            t.checkout(&org, hold, Some("k"), "b@example.com").await,
            422,
            "idempotency_conflict",
        )
        .await,
    );
    keep(
        "already_checked_out",
        problem(
            t.checkout(&org, hold, None, "a@example.com").await,
            409,
            "conflict",
        )
        .await,
    );
    insta::assert_json_snapshot!("problems", Value::Object(problems));
    t.stop().await;
}
