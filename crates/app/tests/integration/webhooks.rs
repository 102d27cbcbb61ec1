//! Webhooks as an integrator sees them: signed (checked with the reference
//! Python library, not the server's code), retried on schedule with the
//! clock, in order per order, disabled by 410, refused on private targets,
//! rotated with an overlap, logged and redelivered; and the org's failed
//! jobs.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{both, support::*};

/// Verifies each received request's signature with Python's
/// `standardwebhooks` (the reference library). The manual clock runs ahead
/// of real time in these tests, so the library's 5-minute timestamp
/// tolerance is set aside; the signature check is the library's own.
fn verify_with_reference(secret: &str, received: &[Received]) -> usize {
    let items: Vec<Value> = received
        .iter()
        .map(|r| {
            json!({
                "secret": secret,
                "body": String::from_utf8_lossy(&r.body),
                "headers": {
                    "webhook-id": r.header("webhook-id"),
                    "webhook-timestamp": r.header("webhook-timestamp"),
                    "webhook-signature": r.header("webhook-signature"),
                },
            })
        })
        .collect();
    let file = std::env::temp_dir().join(unique("webhooks-verify"));
    std::fs::write(&file, serde_json::to_vec(&items).unwrap()).unwrap();
    let script = r#"
import json, sys
from datetime import datetime, timezone
from standardwebhooks import Webhook
Webhook._Webhook__verify_timestamp = lambda self, ts: datetime.fromtimestamp(float(ts), tz=timezone.utc)
n = 0
for it in json.load(open(sys.argv[1])):
    Webhook(it["secret"]).verify(it["body"], it["headers"])
    n += 1
print(n)
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&file)
        .output()
        .expect("python3 runs");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "the reference library refused a signature (or is missing: pip install standardwebhooks): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

async fn create_hook(t: &TestApp, org: &Org, url: &str, types: &[&str]) -> Value {
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/webhooks", org.slug),
            Some(&org.key),
            json!({"url": url, "event_types": types}),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

async fn deliveries(t: &TestApp, org: &Org, hook: &str) -> Vec<Value> {
    let v: Value = t
        .get(
            &format!("/api/v1/orgs/{}/webhooks/{hook}/deliveries", org.slug),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    v["data"].as_array().cloned().unwrap_or_default()
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

both!(a_failing_endpoint_gets_retries_on_schedule_signed_as_the_reference_library_expects);
async fn a_failing_endpoint_gets_retries_on_schedule_signed_as_the_reference_library_expects(
    backend: Backend,
) {
    let t = TestApp::spawn_with(backend, |c| c.webhooks_allow_private = true).await;
    let sink = HttpSink::start(vec![500, 500, 200]).await;
    let org = t.signup().await;
    let hook = create_hook(&t, &org, &sink.url, &["event.published"]).await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let id = hook["id"].as_str().unwrap().to_string();
    let shown: Value = t
        .get(
            &format!("/api/v1/orgs/{}/webhooks/{id}", org.slug),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["status"], "active");
    assert!(shown.get("secret").is_none(), "the secret is shown once");

    let event = t.event(&org, 10).await; // published: one event.published
    t.eventually("the first attempt", || async { sink.received().len() == 1 })
        .await;
    // Recorded by the attempt, then rescheduled by the queue.
    t.eventually("the first failure is recorded", || async {
        let d = deliveries(&t, &org, &id).await;
        d[0]["attempts"] == 1 && d[0]["next_attempt_at"].is_string()
    })
    .await;
    let d = deliveries(&t, &org, &id).await;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["status"], "failed");
    assert_eq!(d[0]["last_status"], 500);
    let first_at =
        kernel::clock::parse_rfc3339(d[0]["attempt_log"][0]["attempted_at"].as_str().unwrap())
            .unwrap();
    let next = kernel::clock::parse_rfc3339(d[0]["next_attempt_at"].as_str().unwrap()).unwrap();
    let wait = (next - first_at) as f64 / 1e6;
    assert!(
        (4.4..=5.6).contains(&wait),
        "the first retry about 5 s later, not {wait}"
    );

    t.advance(Duration::from_secs(4));
    settle().await;
    assert_eq!(sink.received().len(), 1, "not before its time");
    t.advance(Duration::from_secs(2));
    t.eventually("the second attempt", || async {
        sink.received().len() == 2
    })
    .await;
    t.eventually("the second failure is recorded", || async {
        let d = deliveries(&t, &org, &id).await;
        d[0]["attempts"] == 2 && d[0]["next_attempt_at"].is_string()
    })
    .await;
    let d = deliveries(&t, &org, &id).await;
    let next = kernel::clock::parse_rfc3339(d[0]["next_attempt_at"].as_str().unwrap()).unwrap();
    let wait = (next - t.clock().now()) as f64 / 1e6;
    assert!(
        (260.0..=340.0).contains(&wait),
        "then about 5 min later, not {wait}"
    );
    t.advance(Duration::from_secs(331));
    t.eventually("the third attempt", || async { sink.received().len() == 3 })
        .await;
    t.eventually("delivered", || async {
        deliveries(&t, &org, &id).await[0]["status"] == "delivered"
    })
    .await;

    let got = sink.received();
    let ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one webhook-id on every attempt: {ids:?}"
    );
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["type"], "event.published");
    assert_eq!(body["version"], 1);
    assert_eq!(body["data"]["event_id"], event.id.as_str());
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(verify_with_reference(&secret, &got), 3);
    // A forged body does not verify with the reference library.
    let mut forged = got[0].clone();
    forged.body = br#"{"type":"order.paid"}"#.to_vec();
    let file_check = std::panic::catch_unwind(|| verify_with_reference(&secret, &[forged]));
    assert!(file_check.is_err(), "a forged body must not verify");
    t.stop().await;
}

both!(deliveries_about_one_order_arrive_in_order_and_rotation_keeps_both_secrets_valid);
async fn deliveries_about_one_order_arrive_in_order_and_rotation_keeps_both_secrets_valid(
    backend: Backend,
) {
    let t = TestApp::spawn_with(backend, |c| c.webhooks_allow_private = true).await;
    let sink = HttpSink::start(vec![]).await;
    let org = t.signup().await;
    let hook = create_hook(&t, &org, &sink.url, &["*"]).await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    let id = hook["id"].as_str().unwrap().to_string();
    let event = t.event(&org, 100).await;
    let mut orders = Vec::new();
    for _ in 0..5 {
        let o = t.buy(&org, &event, 2).await;
        orders.push(o["id"].as_str().unwrap().to_string());
    }
    // event.published + per order: order.created, order.paid (free), 2 × ticket.issued.
    t.eventually("every event delivered", || async {
        let got = sink.received();
        // A delivery that found an earlier one in flight looks again 2 s
        // later: on this clock, time moves when the test says.
        t.advance(Duration::from_secs(2));
        orders.iter().all(|o| {
            got.iter()
                .filter(|r| {
                    serde_json::from_slice::<Value>(&r.body).unwrap()["data"]["order_id"]
                        == o.as_str()
                })
                .count()
                >= 3
        })
    })
    .await;
    settle().await;
    let got = sink.received();
    let mut per_order: std::collections::HashMap<String, Vec<(String, String)>> =
        Default::default();
    for r in &got {
        let b: Value = serde_json::from_slice(&r.body).unwrap();
        if let Some(o) = b["data"]["order_id"].as_str() {
            per_order.entry(o.to_string()).or_default().push((
                r.header("webhook-id").to_string(),
                b["type"].as_str().unwrap().to_string(),
            ));
        }
    }
    for (order, seen) in &per_order {
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(
            seen, &sorted,
            "order {order}: deliveries in the order the events happened"
        );
        assert_eq!(seen[0].1, "order.created", "order {order}: {seen:?}");
    }
    assert_eq!(verify_with_reference(&secret, &got), got.len());
    // Waiting for an earlier delivery is not a failure: no job erred.
    let erred: i64 = kernel::db_run!(t.app().db(), p => sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'webhooks.deliver' AND last_error IS NOT NULL").fetch_one(p).await).unwrap();
    assert_eq!(erred, 0, "a delivery job failed on its own queries");

    // Rotation: for a day both secrets verify.
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/webhooks/{id}/rotate", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let new_secret = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_secret, secret);
    let before = sink.received().len();
    t.buy(&org, &event, 1).await;
    t.eventually("deliveries after the rotation", || async {
        t.advance(Duration::from_secs(2));
        sink.received().len() >= before + 3
    })
    .await;
    let after: Vec<Received> = sink.received()[before..].to_vec();
    assert!(after[0].header("webhook-signature").split(' ').count() == 2);
    assert_eq!(verify_with_reference(&new_secret, &after), after.len());
    assert_eq!(verify_with_reference(&secret, &after), after.len());
    // A day later only the new one signs.
    t.advance(Duration::from_secs(24 * 3600 + 60));
    let before = sink.received().len();
    t.buy(&org, &event, 1).await;
    t.eventually("deliveries a day later", || async {
        t.advance(Duration::from_secs(2));
        sink.received().len() >= before + 3
    })
    .await;
    let later: Vec<Received> = sink.received()[before..].to_vec();
    assert_eq!(later[0].header("webhook-signature").split(' ').count(), 1);
    assert_eq!(verify_with_reference(&new_secret, &later), later.len());

    // Manual redelivery: the same webhook-id again.
    let d = deliveries(&t, &org, &id).await;
    let first = d.last().unwrap();
    let before = sink.received().len();
    let r = t
        .post(
            &format!(
                "/api/v1/orgs/{}/webhooks/{id}/deliveries/{}/retry",
                org.slug,
                first["id"].as_str().unwrap()
            ),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 202);
    t.eventually("the redelivery", || async {
        sink.received().len() == before + 1
    })
    .await;
    assert_eq!(
        sink.received()[before].header("webhook-id"),
        first["event_id"].as_str().unwrap()
    );
    t.stop().await;
}

both!(gone_disables_and_private_targets_are_refused_at_registration_and_delivery);
async fn gone_disables_and_private_targets_are_refused_at_registration_and_delivery(
    backend: Backend,
) {
    // 410 disables the endpoint.
    let t = TestApp::spawn_with(backend, |c| c.webhooks_allow_private = true).await;
    let sink = HttpSink::start(vec![410]).await;
    let org = t.signup().await;
    let hook = create_hook(&t, &org, &sink.url, &["event.published"]).await;
    let id = hook["id"].as_str().unwrap();
    t.event(&org, 5).await;
    t.eventually("disabled by 410", || async {
        let v: Value = t
            .get(
                &format!("/api/v1/orgs/{}/webhooks/{id}", org.slug),
                Some(&org.key),
            )
            .await
            .json()
            .await
            .unwrap();
        v["status"] == "disabled"
    })
    .await;
    t.event(&org, 5).await;
    settle().await;
    t.advance(Duration::from_secs(3600));
    settle().await;
    assert_eq!(sink.received().len(), 1, "nothing more after 410");
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/webhooks/{id}/enable", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    t.stop().await;

    // Without the allowance: loopback refused at registration...
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    for url in [
        sink.url.clone(),
        "http://localhost:9/x".into(),
        "http://[::1]/x".into(),
        "http://169.254.169.254/".into(),
    ] {
        let r = t
            .post(
                &format!("/api/v1/orgs/{}/webhooks", org.slug),
                Some(&org.key),
                json!({"url": url, "event_types": ["*"]}),
            )
            .await;
        let p = problem(r, 422, "validation").await;
        assert_eq!(p["errors"][0]["field"], "url", "{url}: {p}");
    }
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/webhooks", org.slug),
            Some(&org.key),
            json!({"url": "https://example.com/x", "event_types": ["order.shipped"]}),
        )
        .await;
    let p = problem(r, 422, "validation").await;
    assert_eq!(p["errors"][0]["field"], "event_types");

    // ... and at delivery, when a registered name later resolves to it.
    let org_id: uuid::Uuid = kernel::db_run!(t.app().db(), p => sqlx::query_scalar("SELECT id FROM orgs WHERE slug = $1").bind(&org.slug).fetch_one(p).await).unwrap();
    let hook_id = uuid::Uuid::now_v7();
    kernel::Stmt::new("INSERT INTO webhook_endpoints (id, org_id, url, event_types, secret, status, created_at) VALUES ($1, $2, $3, '[\"*\"]', 'whsec_c2VjcmV0c2VjcmV0c2VjcmV0', 'active', 0)")
        .bind(hook_id)
        .bind(org_id)
        .bind(format!("http://localhost:{}/x", sink.url.rsplit(':').next().unwrap()))
        .execute(t.app().db())
        .await
        .unwrap();
    t.event(&org, 5).await;
    let path = format!("/api/v1/orgs/{}/webhooks/{hook_id}/deliveries", org.slug);
    t.eventually("the refused attempt is logged", || async {
        let v: Value = t.get(&path, Some(&org.key)).await.json().await.unwrap();
        v["data"][0]["attempts"] == 1
    })
    .await;
    let v: Value = t.get(&path, Some(&org.key)).await.json().await.unwrap();
    let err = v["data"][0]["last_error"].as_str().unwrap();
    assert!(err.contains("private") || err.contains("public"), "{err}");
    assert_eq!(
        sink.received().len(),
        1,
        "the loopback sink got nothing more"
    );

    // The org sees the waiting delivery job, and can discard and retry it.
    let jobs: Value = t
        .get(
            &format!(
                "/api/v1/orgs/{}/jobs?state=available&queue=webhooks",
                org.slug
            ),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    let job = jobs["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(jobs["data"][0]["kind"], "webhooks.deliver");
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/jobs/{job}/discard", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let failed: Value = t
        .get(&format!("/api/v1/orgs/{}/jobs", org.slug), Some(&org.key))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(failed["data"][0]["state"], "discarded");
    let other = t.signup().await;
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/jobs/{job}/retry", other.slug),
            Some(&other.key),
            json!({}),
        )
        .await;
    problem(r, 404, "not_found").await;
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/jobs/{job}/retry", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/jobs/{job}/retry", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await;
    problem(r, 409, "conflict").await;
    t.stop().await;
}

both!(an_endpoint_failing_for_three_days_is_disabled_and_the_org_sees_why);
async fn an_endpoint_failing_for_three_days_is_disabled_and_the_org_sees_why(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| c.webhooks_allow_private = true).await;
    let sink = HttpSink::start(vec![500; 50]).await;
    let org = t.signup().await;
    let hook = create_hook(&t, &org, &sink.url, &["event.published"]).await;
    let id = hook["id"].as_str().unwrap().to_string();
    t.event(&org, 5).await;
    t.eventually("the first failure", || async { sink.received().len() == 1 })
        .await;
    let path = format!("/api/v1/orgs/{}/webhooks/{id}", org.slug);
    t.eventually("failing since is recorded", || async {
        let v: Value = t.get(&path, Some(&org.key)).await.json().await.unwrap();
        v["failing_since"].is_string()
    })
    .await;
    // Two days on: still failing, still active.
    t.advance(Duration::from_secs(2 * 24 * 3600));
    t.eventually("a retry two days on", || async {
        sink.received().len() >= 2
    })
    .await;
    settle().await;
    let v: Value = t.get(&path, Some(&org.key)).await.json().await.unwrap();
    assert_eq!(v["status"], "active");
    // Past three days: the next failure disables it.
    t.advance(Duration::from_secs(24 * 3600 + 60));
    t.eventually("disabled after three days of failures", || async {
        let v: Value = t.get(&path, Some(&org.key)).await.json().await.unwrap();
        v["status"] == "disabled"
    })
    .await;
    let v: Value = t.get(&path, Some(&org.key)).await.json().await.unwrap();
    assert_eq!(v["disabled_reason"], "every delivery failed for three days");
    // The org's owner is told by mail (the embedded mode's .eml files).
    let dir = t.config().data_dir.join("mail");
    let told = || {
        crate::mail::read_messages(&dir)
            .into_iter()
            .find(|m| m.headers["subject"] == "A webhook endpoint was disabled")
    };
    t.eventually("the owner is mailed", || async { told().is_some() })
        .await;
    let m = told().unwrap();
    assert!(
        m.headers["to"].as_str().unwrap().contains(&org.email),
        "{:?}",
        m.headers
    );
    assert!(
        m.body.contains("every delivery failed for three days"),
        "{}",
        m.body
    );
    t.stop().await;
}

both!(an_event_called_off_is_delivered_as_event_cancelled);
async fn an_event_called_off_is_delivered_as_event_cancelled(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| c.webhooks_allow_private = true).await;
    let sink = HttpSink::start(vec![]).await;
    let org = t.signup().await;
    create_hook(&t, &org, &sink.url, &["event.cancelled"]).await;
    let event = t.event(&org, 10).await;
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{}/cancel", org.slug, event.id),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    t.eventually("the event.cancelled delivery", || async {
        !sink.received().is_empty()
    })
    .await;
    let got = sink.received();
    assert_eq!(got.len(), 1, "only the type the endpoint asked for");
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["type"], "event.cancelled");
    assert_eq!(body["data"]["event_id"], event.id.as_str());
    t.stop().await;
}
