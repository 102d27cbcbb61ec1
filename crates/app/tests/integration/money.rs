//! Orders and money: EFT with mark-paid, card payments through the Stripe
//! stand-in (a server on loopback speaking Stripe's protocol), its signed
//! webhooks, late payments, provider timeouts, refunds and cancellation.

use std::time::Duration;

use serde_json::{Value, json};
use voelgoed::stripe_standin::{self, Standin, StandinHandle};

use crate::{both, support::*};

async fn standin() -> StandinHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    stripe_standin::start(Standin::default(), listener).await
}

/// A node whose card provider is the stand-in, and the stand-in sending its
/// webhooks to the node.
async fn with_card(
    backend: Backend,
    tweak: impl FnOnce(&mut kernel::Config),
) -> (TestApp, StandinHandle) {
    let s = standin().await;
    let cfg = s.config();
    let base = s.base_url();
    let t = TestApp::spawn_with(backend, |c| {
        c.stripe_api_base = base;
        c.stripe_secret_key = Some(cfg.secret_key.clone());
        c.stripe_publishable_key = Some(cfg.publishable_key.clone());
        c.stripe_webhook_secret = Some(cfg.webhook_secret.clone());
        c.stripe_timeout_ms = 1_000;
        tweak(c);
    })
    .await;
    s.set_webhook_url(Some(t.url("/api/v1/payments/stripe/webhook")));
    (t, s)
}

async fn checkout_with(
    t: &TestApp,
    org: &Org,
    event: &Event,
    qty: i64,
    method: &str,
    key: Option<&str>,
) -> reqwest::Response {
    let h: Value = t.hold(org, event, qty).await.json().await.unwrap();
    checkout_hold(t, org, h["id"].as_str().unwrap(), method, key).await
}

async fn checkout_hold(
    t: &TestApp,
    org: &Org,
    hold: &str,
    method: &str,
    key: Option<&str>,
) -> reqwest::Response {
    t.checkout_by(org, hold, key, "ada@example.com", method)
        .await
}

async fn order(t: &TestApp, org: &Org, id: &str) -> Value {
    t.get(
        &format!("/api/v1/orgs/{}/orders/{id}", org.slug),
        Some(&org.key),
    )
    .await
    .json()
    .await
    .unwrap()
}

/// Polls the order until `done` holds (webhooks and jobs are asynchronous).
async fn order_until(t: &TestApp, org: &Org, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    order_until_with(t, org, id, done, None).await
}

async fn order_until_with(
    t: &TestApp,
    org: &Org,
    id: &str,
    done: impl Fn(&Value) -> bool,
    s: Option<&StandinHandle>,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..400 {
        last = order(t, org, id).await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let deliveries = s
        .map(|s| format!("{:?}", s.deliveries()))
        .unwrap_or_default();
    panic!("the order never got there: {last} {deliveries}");
}

async fn refund(
    t: &TestApp,
    org: &Org,
    id: &str,
    body: Value,
    key: Option<&str>,
) -> reqwest::Response {
    let mut r = t
        .api
        .client
        .post(t.url(&format!("/api/v1/orgs/{}/orders/{id}/refunds", org.slug)))
        .bearer_auth(&org.key)
        .json(&body);
    if let Some(k) = key {
        r = r.header("Idempotency-Key", k);
    }
    r.send().await.unwrap()
}

both!(an_eft_order_is_marked_paid_refunded_in_part_then_in_full);
async fn an_eft_order_is_marked_paid_refunded_in_part_then_in_full(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t
        .try_event(&org, &EventSpec::capacity(5).priced(15000))
        .await
        .unwrap();
    let device = t.device(&org, &[&event.id]).await;

    // Without a card provider, card is refused by name; EFT works.
    let r = checkout_with(&t, &org, &event, 1, "card", None).await;
    let p = problem(r, 422, "validation").await;
    assert_eq!(p["errors"][0]["field"], "payment_method", "{p}");
    let r = checkout_with(&t, &org, &event, 2, "eft", None).await;
    assert_eq!(r.status(), 201);
    let o: Value = r.json().await.unwrap();
    let id = o["id"].as_str().unwrap().to_string();
    assert_eq!(o["status"], "pending");
    assert_eq!(o["total_cents"], 30000);
    assert_eq!(
        o["tickets"].as_array().unwrap().len(),
        0,
        "no tickets before payment"
    );
    let pay = &o["payment"];
    assert_eq!(pay["provider"], "manual");
    assert_eq!(pay["status"], "requires_payment");
    assert_eq!(pay["amount_cents"], 30000);
    assert_eq!(pay["currency"], "ZAR");
    assert!(
        pay["reference"].as_str().unwrap().starts_with("VG-"),
        "{pay}"
    );
    assert!(pay["expires_at"].is_string());
    assert_eq!(o["lines"][0]["quantity"], 2);
    assert_eq!(o["lines"][0]["unit_price_cents"], 15000);
    assert_eq!(o["lines"][0]["discount_cents"], 0);
    // Refunding an unpaid order: nothing to refund.
    problem(
        refund(&t, &org, &id, json!({}), None).await,
        409,
        "conflict",
    )
    .await;

    // Another org cannot mark it paid (404, as for an unknown id); no key: 401.
    let other = t.signup().await;
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/orders/{id}/mark-paid", other.slug),
            Some(&other.key),
            json!({}),
        )
        .await;
    problem(r, 404, "not_found").await;
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/orders/{id}/mark-paid", org.slug),
            None,
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 401);

    let mark = format!("/api/v1/orgs/{}/orders/{id}/mark-paid", org.slug);
    let paid: Value = t
        .post(&mark, Some(&org.key), json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(paid["status"], "paid", "{paid}");
    assert_eq!(paid["paid_cents"], 30000);
    assert_eq!(paid["payment"]["status"], "succeeded");
    assert_eq!(paid["tickets"].as_array().unwrap().len(), 2);
    // Marking again changes nothing.
    let again: Value = t
        .post(&mark, Some(&org.key), json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["tickets"], paid["tickets"]);
    // Five, less the two sold and the one still held by the refused card checkout.
    assert_eq!(t.available(&org, &event).await, 2);

    // A partial refund keeps the tickets valid.
    let r = refund(
        &t,
        &org,
        &id,
        json!({"amount_cents": 5000, "reason": "late start"}),
        None,
    )
    .await;
    assert_eq!(r.status(), 201);
    let part: Value = r.json().await.unwrap();
    assert_eq!(part["amount_cents"], 5000);
    assert_eq!(part["status"], "succeeded");
    let code0 = paid["tickets"][0]["code"].as_str().unwrap();
    let code1 = paid["tickets"][1]["code"].as_str().unwrap();
    assert_eq!(
        t.scan(&device, code0, &event.id).await["result"],
        "admitted"
    );
    let o = order(&t, &org, &id).await;
    assert_eq!(o["status"], "partially_refunded");
    assert_eq!(o["refunded_cents"], 5000);

    // Never more than is left; the bad amounts are named.
    let p = problem(
        refund(&t, &org, &id, json!({"amount_cents": 25001}), None).await,
        422,
        "validation",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "amount_cents");
    let p = problem(
        refund(&t, &org, &id, json!({"amount_cents": 0}), None).await,
        422,
        "validation",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "amount_cents");
    problem(
        refund(&t, &org, &id, json!({"amount_cents": "lots"}), None).await,
        422,
        "validation",
    )
    .await;

    // The rest, twice with one key: one refund, the same reply.
    let first = refund(
        &t,
        &org,
        &id,
        json!({"reason": "cancelled trip"}),
        Some("rf-1"),
    )
    .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["amount_cents"], 25000);
    let second: Value = refund(
        &t,
        &org,
        &id,
        json!({"reason": "cancelled trip"}),
        Some("rf-1"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(first, second);
    problem(
        refund(&t, &org, &id, json!({"reason": "other"}), Some("rf-1")).await,
        422,
        "idempotency_conflict",
    )
    .await;
    let o = order(&t, &org, &id).await;
    assert_eq!(o["status"], "refunded");
    assert_eq!(o["refunded_cents"], 30000);
    assert_eq!(o["refunds"].as_array().unwrap().len(), 2);
    assert!(
        o["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["status"] == "revoked"),
        "{o}"
    );
    // The gate refuses both tickets: the one never admitted at once (the
    // database refuses to admit a revoked ticket whatever the gate thinks),
    // the admitted one as soon as the gate hears of the revocation.
    assert_eq!(t.scan(&device, code1, &event.id).await["result"], "revoked");
    let mut last = Value::Null;
    for _ in 0..100 {
        last = t.scan(&device, code0, &event.id).await;
        if last["result"] == "revoked" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(last["result"], "revoked");
    assert_eq!(t.available(&org, &event).await, 4);
    problem(
        refund(&t, &org, &id, json!({}), None).await,
        409,
        "conflict",
    )
    .await;
    t.stop().await;
}

both!(cancelling_gives_tickets_back_once_and_refunds_what_was_paid);
async fn cancelling_gives_tickets_back_once_and_refunds_what_was_paid(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t
        .try_event(&org, &EventSpec::capacity(4).priced(2000))
        .await
        .unwrap();
    let cancel = |id: &str| format!("/api/v1/orgs/{}/orders/{id}/cancel", org.slug);

    // Pending: it stops waiting, its tickets go back, once.
    let o: Value = checkout_with(&t, &org, &event, 2, "eft", None)
        .await
        .json()
        .await
        .unwrap();
    let pending = o["id"].as_str().unwrap().to_string();
    assert_eq!(t.available(&org, &event).await, 2);
    let c: Value = t
        .post(
            &cancel(&pending),
            Some(&org.key),
            json!({"reason": "duplicate"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["status"], "cancelled", "{c}");
    assert_eq!(c["payment"]["status"], "cancelled");
    let again = t.post(&cancel(&pending), Some(&org.key), json!({})).await;
    assert_eq!(again.status(), 200);
    assert_eq!(t.available(&org, &event).await, 4, "given back once");
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/orders/{pending}/mark-paid", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await;
    problem(r, 409, "conflict").await;

    // Paid: refunded in full, tickets revoked and back on sale.
    let o: Value = checkout_with(&t, &org, &event, 3, "eft", None)
        .await
        .json()
        .await
        .unwrap();
    let paid = o["id"].as_str().unwrap().to_string();
    t.post(
        &format!("/api/v1/orgs/{}/orders/{paid}/mark-paid", org.slug),
        Some(&org.key),
        json!({}),
    )
    .await;
    refund(&t, &org, &paid, json!({"amount_cents": 1000}), None).await;
    let r = t.post(&cancel(&paid), Some(&org.key), json!({})).await;
    assert_eq!(r.status(), 200);
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["status"], "cancelled");
    assert_eq!(c["refunded_cents"], 6000);
    let refunds = c["refunds"].as_array().unwrap();
    assert_eq!(refunds.len(), 2);
    assert_eq!(refunds[1]["amount_cents"], 5000, "what was left");
    assert!(
        c["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["status"] == "revoked")
    );
    assert_eq!(t.available(&org, &event).await, 4);
    // An empty body and no body at all both cancel (and change nothing now).
    let r = t
        .api
        .client
        .post(t.url(&cancel(&paid)))
        .bearer_auth(&org.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The org's order list finds them by e-mail and status.
    let list: Value = t
        .get(
            &format!(
                "/api/v1/orgs/{}/orders?q=ADA@example&status=cancelled",
                org.slug
            ),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 2, "{list}");
    let list: Value = t
        .get(
            &format!("/api/v1/orgs/{}/orders?q={paid}", org.slug),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["id"], paid.as_str());
    let r = t
        .get(
            &format!("/api/v1/orgs/{}/orders?status=lost", org.slug),
            Some(&org.key),
        )
        .await;
    problem(r, 422, "validation").await;
    t.stop().await;
}

both!(a_card_payment_is_paid_by_the_providers_signed_webhook_once);
async fn a_card_payment_is_paid_by_the_providers_signed_webhook_once(backend: Backend) {
    let (t, s) = with_card(backend, |_| {}).await;
    let org = t.signup().await;
    let event = t
        .try_event(&org, &EventSpec::capacity(10).priced(12500))
        .await
        .unwrap();
    let r = checkout_with(&t, &org, &event, 2, "card", Some("co-1")).await;
    assert_eq!(r.status(), 201);
    let o: Value = r.json().await.unwrap();
    let id = o["id"].as_str().unwrap().to_string();
    let pay = &o["payment"];
    assert_eq!(pay["provider"], "stripe");
    assert_eq!(pay["publishable_key"], "pk_test_standin");
    let secret = pay["client_secret"].as_str().unwrap();
    // The provider got the right amount, currency and metadata.
    let intents = s.intents();
    assert_eq!(intents.len(), 1);
    let intent = &intents[0];
    assert!(secret.starts_with(intent["id"].as_str().unwrap()));
    assert_eq!(intent["amount"], 25000);
    assert_eq!(intent["currency"], "zar");
    assert_eq!(intent["metadata"]["order_id"], id.as_str());
    assert_eq!(intent["metadata"]["org"], org.slug.as_str());
    let intent_id = intent["id"].as_str().unwrap().to_string();

    // Forged, stale and unsigned callbacks change nothing.
    let hook = t.url("/api/v1/payments/stripe/webhook");
    let body = json!({"id": "evt_forged", "object": "event", "type": "payment_intent.succeeded",
        "data": {"object": {"id": intent_id, "object": "payment_intent", "amount": 25000,
            "amount_received": 25000, "currency": "zar", "status": "succeeded", "metadata": {}}}})
    .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for sig in [
        stripe_standin::signature_header("whsec_wrong", now, body.as_bytes()),
        stripe_standin::signature_header("whsec_standin", now - 301, body.as_bytes()),
        "t=1,v1=00".to_string(),
    ] {
        let r = t
            .api
            .client
            .post(&hook)
            .header("Stripe-Signature", sig)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        problem(r, 400, "bad_request").await;
    }
    let r = t
        .api
        .client
        .post(&hook)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    problem(r, 400, "bad_request").await;
    assert_eq!(order(&t, &org, &id).await["status"], "pending");

    // A declined card is recorded; the order still waits.
    s.fail(&intent_id).unwrap();

    let o = order_until_with(
        &t,
        &org,
        &id,
        |o| o["payment"]["failure"].is_string(),
        Some(&s),
    )
    .await;
    assert_eq!(o["status"], "pending");

    // The buyer pays: the provider's webhook pays the order and issues tickets.
    s.succeed(&intent_id).unwrap();
    let o = order_until(&t, &org, &id, |o| o["status"] == "paid").await;
    assert_eq!(o["tickets"].as_array().unwrap().len(), 2);
    assert_eq!(o["payment"]["status"], "succeeded");
    assert_eq!(o["paid_cents"], 25000);
    // The same event again, and the earlier failure arriving late: nothing.
    let events = s.events();
    let succeeded = events
        .iter()
        .find(|e| e["type"] == "payment_intent.succeeded")
        .unwrap();
    let failed = events
        .iter()
        .find(|e| e["type"] == "payment_intent.payment_failed")
        .unwrap();
    assert_eq!(
        s.resend(succeeded["id"].as_str().unwrap()).await.unwrap(),
        200
    );
    assert_eq!(s.resend(failed["id"].as_str().unwrap()).await.unwrap(), 200);
    let after = order(&t, &org, &id).await;
    assert_eq!(
        after["tickets"], o["tickets"],
        "one payment, one set of tickets"
    );
    assert_eq!(after["status"], "paid");

    // The checkout's reply is replayed with its key (the same intent).
    let h = checkout_with(&t, &org, &event, 1, "card", Some("co-1")).await;
    // A different hold with the same key and another body is a conflict...
    assert_eq!(h.status(), 422);
    t.stop().await;
}

both!(a_retry_while_the_first_checkout_is_in_flight_is_told_so);
/// API.md: while the first request with a key is in flight, the same key
/// answers 409; once it is made, the first reply. Here the first waits on
/// a slow provider while the retry comes.
async fn a_retry_while_the_first_checkout_is_in_flight_is_told_so(backend: Backend) {
    let (t, s) = with_card(backend, |c| c.stripe_timeout_ms = 5_000).await;
    let t = std::sync::Arc::new(t);
    let org = t.signup().await;
    let event = t
        .try_event(&org, &EventSpec::capacity(2).priced(2500))
        .await
        .unwrap();
    let h: Value = t.hold(&org, &event, 1).await.json().await.unwrap();
    let hold = h["id"].as_str().unwrap().to_string();
    s.delay_next_creates(1, Duration::from_millis(1200));
    let first = tokio::spawn({
        let (t, org, hold) = (t.clone(), org.clone(), hold.clone());
        async move {
            let r = checkout_hold(&t, &org, &hold, "card", Some("k-flight")).await;
            (r.status().as_u16(), r.text().await.unwrap())
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    problem(
        checkout_hold(&t, &org, &hold, "card", Some("k-flight")).await,
        409,
        "conflict",
    )
    .await;
    let (status, body) = first.await.unwrap();
    assert_eq!(status, 201, "{body}");
    let again = checkout_hold(&t, &org, &hold, "card", Some("k-flight")).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.text().await.unwrap(), body, "the first reply, again");
    assert_eq!(s.intents().len(), 1);
    std::sync::Arc::try_unwrap(t)
        .ok()
        .expect("sole owner")
        .stop()
        .await;
}

both!(a_provider_that_times_out_leaves_nothing_and_the_retry_gets_the_same_intent);
async fn a_provider_that_times_out_leaves_nothing_and_the_retry_gets_the_same_intent(
    backend: Backend,
) {
    let (t, s) = with_card(backend, |c| c.stripe_timeout_ms = 300).await;
    let org = t.signup().await;
    let event = t
        .try_event(&org, &EventSpec::capacity(3).priced(1000))
        .await
        .unwrap();
    let h: Value = t.hold(&org, &event, 1).await.json().await.unwrap();
    let hold = h["id"].as_str().unwrap();

    s.delay_next_creates(1, Duration::from_millis(1500));
    let r = checkout_hold(&t, &org, hold, "card", Some("k-timeout")).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    problem(r, 503, "provider_unavailable").await;
    // No order was written; the hold still holds.
    let list: Value = t
        .get(&format!("/api/v1/orgs/{}/orders", org.slug), Some(&org.key))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    assert_eq!(t.available(&org, &event).await, 2);

    // A provider that fails outright: the same.
    s.fail_next_creates(1);
    problem(
        checkout_hold(&t, &org, hold, "card", Some("k-timeout")).await,
        503,
        "provider_unavailable",
    )
    .await;

    // The retry with the same key goes through, to the intent made the first time.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = checkout_hold(&t, &org, hold, "card", Some("k-timeout")).await;
    assert_eq!(r.status(), 201);
    let o: Value = r.json().await.unwrap();
    assert_eq!(o["status"], "pending");
    assert_eq!(
        s.intents().len(),
        1,
        "one intent for the order: {:?}",
        s.intents()
    );
    assert!(s.create_calls() >= 3);
    assert!(
        o["payment"]["client_secret"]
            .as_str()
            .unwrap()
            .starts_with(s.intents()[0]["id"].as_str().unwrap())
    );
    t.stop().await;
}

both!(a_late_payment_revives_its_order_or_is_refunded_when_the_tickets_are_gone);
async fn a_late_payment_revives_its_order_or_is_refunded_when_the_tickets_are_gone(
    backend: Backend,
) {
    let (t, s) = with_card(backend, |c| c.payment_timeout_secs = 60).await;
    let org = t.signup().await;
    let event = t
        .try_event(&org, &EventSpec::capacity(1).priced(9900))
        .await
        .unwrap();

    // Expired, tickets still there: the payment revives it.
    let o: Value = checkout_with(&t, &org, &event, 1, "card", None)
        .await
        .json()
        .await
        .unwrap();
    let id = o["id"].as_str().unwrap().to_string();
    t.advance(Duration::from_secs(61));
    order_until(&t, &org, &id, |o| o["status"] == "expired").await;
    assert_eq!(t.available(&org, &event).await, 1);
    s.succeed(s.intents()[0]["id"].as_str().unwrap()).unwrap();
    let o = order_until(&t, &org, &id, |o| o["status"] == "paid").await;
    assert_eq!(o["tickets"].as_array().unwrap().len(), 1);
    assert_eq!(t.available(&org, &event).await, 0);

    // Expired and sold meanwhile: the money goes back by itself.
    let event2 = t
        .try_event(&org, &EventSpec::capacity(1).priced(4000))
        .await
        .unwrap();
    let late: Value = checkout_with(&t, &org, &event2, 1, "card", None)
        .await
        .json()
        .await
        .unwrap();
    let late_id = late["id"].as_str().unwrap().to_string();
    t.advance(Duration::from_secs(61));
    order_until(&t, &org, &late_id, |o| o["status"] == "expired").await;
    let winner: Value = checkout_with(&t, &org, &event2, 1, "eft", None)
        .await
        .json()
        .await
        .unwrap();
    t.post(
        &format!(
            "/api/v1/orgs/{}/orders/{}/mark-paid",
            org.slug,
            winner["id"].as_str().unwrap()
        ),
        Some(&org.key),
        json!({}),
    )
    .await;
    let late_intent = s
        .intents()
        .into_iter()
        .find(|i| i["metadata"]["order_id"] == late_id.as_str())
        .unwrap();
    s.succeed(late_intent["id"].as_str().unwrap()).unwrap();
    let o = order_until(&t, &org, &late_id, |o| {
        o["refunds"][0]["status"] == "succeeded"
    })
    .await;
    assert_eq!(o["status"], "expired", "{o}");
    assert_eq!(o["tickets"].as_array().unwrap().len(), 0);
    assert_eq!(o["paid_cents"], 4000);
    assert_eq!(o["refunded_cents"], 4000);
    let refunds: Vec<Value> = s
        .refunds()
        .into_iter()
        .filter(|r| r["payment_intent"] == late_intent["id"])
        .collect();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["amount"], 4000);
    assert_eq!(t.available(&org, &event2).await, 0, "nothing oversold");
    t.stop().await;
}

both!(a_card_refund_reaches_the_provider_once_with_the_right_amount);
async fn a_card_refund_reaches_the_provider_once_with_the_right_amount(backend: Backend) {
    let (t, s) = with_card(backend, |_| {}).await;
    let org = t.signup().await;
    let event = t
        .try_event(&org, &EventSpec::capacity(10).priced(7000))
        .await
        .unwrap();
    let o: Value = checkout_with(&t, &org, &event, 3, "card", None)
        .await
        .json()
        .await
        .unwrap();
    let id = o["id"].as_str().unwrap().to_string();
    s.succeed(s.intents()[0]["id"].as_str().unwrap()).unwrap();
    order_until(&t, &org, &id, |o| o["status"] == "paid").await;

    // Two refunds at once with one key, and a retry after: one refund.
    let (a, b) = tokio::join!(
        refund(
            &t,
            &org,
            &id,
            json!({"amount_cents": 7000, "reason": "one can't come"}),
            Some("card-rf")
        ),
        refund(
            &t,
            &org,
            &id,
            json!({"amount_cents": 7000, "reason": "one can't come"}),
            Some("card-rf")
        ),
    );
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    assert!(statuses.contains(&201), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    let again = refund(
        &t,
        &org,
        &id,
        json!({"amount_cents": 7000, "reason": "one can't come"}),
        Some("card-rf"),
    )
    .await;
    assert_eq!(again.status(), 201);
    let o = order_until(&t, &org, &id, |o| o["refunds"][0]["status"] == "succeeded").await;
    assert_eq!(o["refunds"].as_array().unwrap().len(), 1);
    assert_eq!(o["status"], "partially_refunded");
    let refunds = s.refunds();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(refunds[0]["amount"], 7000);
    assert_eq!(refunds[0]["payment_intent"], s.intents()[0]["id"]);

    // Cancelling refunds the rest through the provider.
    let c: Value = t
        .post(
            &format!("/api/v1/orgs/{}/orders/{id}/cancel", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["status"], "cancelled");
    order_until(&t, &org, &id, |o| o["refunds"][1]["status"] == "succeeded").await;
    let total: i64 = s
        .refunds()
        .iter()
        .map(|r| r["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 21000, "never more than was paid");
    t.stop().await;
}

both!(a_refund_that_fails_at_the_provider_gives_its_amount_back_to_the_order);
/// Stripe's `pm_card_refundFail`: the refund is answered `succeeded`, then
/// fails (`refund.failed`, `charge.refund.updated`). The money never left:
/// the refund shows failed with the reason, the order holds its amount
/// again (refunded total back down, a full refund's order partially
/// refunded so the rest can be refunded again), the console says finance
/// must act, and the events sent again change nothing.
async fn a_refund_that_fails_at_the_provider_gives_its_amount_back_to_the_order(backend: Backend) {
    let (t, s) = with_card(backend, |_| {}).await;
    let org = t.signup().await;
    let event = t
        .try_event(&org, &EventSpec::capacity(10).priced(5000))
        .await
        .unwrap();
    let o: Value = checkout_with(&t, &org, &event, 2, "card", None)
        .await
        .json()
        .await
        .unwrap();
    let id = o["id"].as_str().unwrap().to_string();
    s.succeed_refunds_fail(s.intents()[0]["id"].as_str().unwrap())
        .unwrap();
    order_until(&t, &org, &id, |o| o["status"] == "paid").await;

    // A part first: answered, then failed.
    let r = refund(
        &t,
        &org,
        &id,
        json!({"amount_cents": 3000, "reason": "one can't come"}),
        None,
    )
    .await;
    assert_eq!(r.status(), 201);
    let o = order_until_with(
        &t,
        &org,
        &id,
        |o| o["refunds"][0]["status"] == "failed",
        Some(&s),
    )
    .await;
    assert_eq!(o["refunded_cents"], 0, "{o}");
    assert_eq!(o["status"], "paid", "{o}");
    assert_eq!(
        o["refunds"][0]["failure"], "expired_or_canceled_card",
        "{o}"
    );

    // All of it: the order is refunded, then holds it all again.
    let r = refund(&t, &org, &id, json!({"reason": "all of it"}), None).await;
    assert_eq!(r.status(), 201);
    let o = order_until_with(
        &t,
        &org,
        &id,
        |o| o["refunds"][1]["status"] == "failed",
        Some(&s),
    )
    .await;
    assert_eq!(o["refunded_cents"], 0, "{o}");
    assert_eq!(o["paid_cents"], 10000, "{o}");
    assert_eq!(o["status"], "partially_refunded", "refundable again: {o}");
    // Every event again (a provider retrying): nothing moves.
    for e in s.events() {
        let kind = e["type"].as_str().unwrap_or_default();
        if kind == "refund.failed" || kind == "charge.refund.updated" {
            assert_eq!(s.resend(e["id"].as_str().unwrap()).await.unwrap(), 200);
        }
    }
    let again = order(&t, &org, &id).await;
    assert_eq!(again["refunded_cents"], 0);
    assert_eq!(again["refunds"].as_array().unwrap().len(), 2);
    // The money held is what the provider holds: paid, and nothing refunded.
    let charges: i64 = s
        .refunds()
        .iter()
        .filter(|r| r["status"] == "succeeded")
        .map(|r| r["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(charges, 0);
    assert_eq!(s.refunds().len(), 2);
    // And a refund of what is left can be asked again (it fails again here).
    let r = refund(
        &t,
        &org,
        &id,
        json!({"amount_cents": 1000, "reason": "try again"}),
        None,
    )
    .await;
    assert_eq!(r.status(), 201);
    t.stop().await;
}

both!(a_refund_the_provider_refuses_at_once_gives_its_amount_back);
/// The provider answers the refund with an error (here: the charge was
/// refunded in full at the provider already, as from its dashboard): the
/// refund is failed with the provider's message and the order holds its
/// amount again.
async fn a_refund_the_provider_refuses_at_once_gives_its_amount_back(backend: Backend) {
    let (t, s) = with_card(backend, |_| {}).await;
    let org = t.signup().await;
    let event = t
        .try_event(&org, &EventSpec::capacity(10).priced(4000))
        .await
        .unwrap();
    let o: Value = checkout_with(&t, &org, &event, 1, "card", None)
        .await
        .json()
        .await
        .unwrap();
    let id = o["id"].as_str().unwrap().to_string();
    let intent = s.intents()[0]["id"].as_str().unwrap().to_string();
    s.succeed(&intent).unwrap();
    order_until(&t, &org, &id, |o| o["status"] == "paid").await;
    // Refunded at the provider, behind our back.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/refunds", s.base_url()))
        .bearer_auth(&s.config().secret_key)
        .form(&[("payment_intent", intent.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = refund(
        &t,
        &org,
        &id,
        json!({"amount_cents": 1500, "reason": "one can't come"}),
        None,
    )
    .await;
    assert_eq!(r.status(), 201);
    let o = order_until_with(
        &t,
        &org,
        &id,
        |o| o["refunds"][0]["status"] == "failed",
        Some(&s),
    )
    .await;
    assert_eq!(o["refunded_cents"], 0, "{o}");
    assert_eq!(o["status"], "paid", "{o}");
    assert!(
        o["refunds"][0]["failure"]
            .as_str()
            .unwrap_or_default()
            .contains("already been refunded"),
        "{o}"
    );
    t.stop().await;
}

both!(two_thousand_buyers_race_for_three_hundred_priced_tickets_and_the_books_balance);
async fn two_thousand_buyers_race_for_three_hundred_priced_tickets_and_the_books_balance(
    backend: Backend,
) {
    use std::sync::Arc;
    let (t, s) = with_card(backend, |c| {
        c.payment_timeout_secs = 120;
        c.storefront_per_minute = 0;
    })
    .await;
    let t = Arc::new(t);
    let org = t.signup().await;
    let event = t
        .try_event(&org, &EventSpec::capacity(300).priced(2500))
        .await
        .unwrap();
    // 2,000 buyers, 64 at a time: hold one ticket, check out by card.
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    for i in 0..2000 {
        let (t, org, event, gate) = (t.clone(), org.clone(), event.clone(), gate.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let r = t.hold(&org, &event, 1).await;
            match r.status().as_u16() {
                201 => {}
                409 => return None,
                other => panic!("hold answered {other}"),
            }
            let h: Value = r.json().await.unwrap();
            let key = format!("race-{i}");
            let r = checkout_hold(&t, &org, h["id"].as_str().unwrap(), "card", Some(&key)).await;
            assert_eq!(r.status(), 201, "checkout");
            let o: Value = r.json().await.unwrap();
            Some(o["id"].as_str().unwrap().to_string())
        }));
    }
    let mut orders = Vec::new();
    for task in tasks {
        if let Some(o) = task.await.unwrap() {
            orders.push(o);
        }
    }
    assert_eq!(orders.len(), 300, "exactly the capacity was sold");
    let intent_of: std::collections::HashMap<String, String> = s
        .intents()
        .into_iter()
        .map(|i| {
            (
                i["metadata"]["order_id"].as_str().unwrap().to_string(),
                i["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(intent_of.len(), 300, "one intent per order");

    // Half pay, a fifth are declined, the rest never pay.
    let (mut paid, mut declined, mut silent) = (Vec::new(), Vec::new(), Vec::new());
    for (i, o) in orders.iter().enumerate() {
        match i % 10 {
            0..=4 => paid.push(o.clone()),
            5 | 6 => declined.push(o.clone()),
            _ => silent.push(o.clone()),
        }
    }
    for o in &paid {
        s.succeed(&intent_of[o]).unwrap();
    }
    for o in &declined {
        s.fail(&intent_of[o]).unwrap();
    }
    let count = |sql: &'static str| {
        let (t, id) = (t.clone(), event.id.clone());
        async move { t.count(sql, &id).await }
    };
    let paid_sql = "SELECT COUNT(*) FROM orders WHERE event_id = $1 AND status = 'paid'";
    for _ in 0..600 {
        if count(paid_sql).await == 150 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if count(paid_sql).await != 150 {
        let mut seen = std::collections::BTreeMap::new();
        for d in s.deliveries() {
            *seen
                .entry(format!("{} {:?} {:?}", d.event_type, d.status, d.error))
                .or_insert(0) += 1;
        }
        panic!(
            "paid {} of 150; deliveries: {seen:#?}",
            count(paid_sql).await
        );
    }

    // The unpaid expire and give their tickets back, once each.
    t.advance(Duration::from_secs(121));
    let expired_sql = "SELECT COUNT(*) FROM orders WHERE event_id = $1 AND status = 'expired'";
    t.eventually("150 orders expired", || async {
        count(expired_sql).await == 150
    })
    .await;
    // The counter follows the ledger right after its commit.
    t.eventually("their tickets back on sale", || async {
        t.available(&org, &event).await == 150
    })
    .await;
    // Twenty of the silent pay late: revived (their tickets are there);
    // the first ten payments' events arrive again: nothing changes.
    for o in silent.iter().take(20) {
        s.succeed(&intent_of[o]).unwrap();
    }
    for e in s
        .events()
        .iter()
        .filter(|e| e["type"] == "payment_intent.succeeded")
        .take(10)
    {
        s.resend(e["id"].as_str().unwrap()).await.unwrap();
    }
    t.eventually("170 paid", || async { count(paid_sql).await == 170 })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The books: every paid order has exactly its one ticket, nothing else
    // has any; the ledger and the counter agree; nothing oversold.
    assert_eq!(count(paid_sql).await, 170);
    assert_eq!(
        count("SELECT COUNT(*) FROM tickets WHERE event_id = $1 AND status = 'valid'").await,
        170
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM orders o WHERE o.event_id = $1 AND o.status = 'paid'
             AND (SELECT COUNT(*) FROM tickets k WHERE k.org_id = o.org_id AND k.order_id = o.id) <> 1"
        )
        .await,
        0,
        "a paid order without exactly its ticket"
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM tickets k JOIN orders o ON o.org_id = k.org_id AND o.id = k.order_id
             WHERE k.event_id = $1 AND o.status <> 'paid'"
        )
        .await,
        0,
        "tickets on an order that is not paid"
    );
    assert_eq!(
        count(
            "SELECT CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT) FROM hold_items i
             JOIN holds h ON h.org_id = i.org_id AND h.id = i.hold_id
             WHERE h.event_id = $1 AND h.status IN ('active', 'consumed')"
        )
        .await,
        170,
        "the ledger holds what was sold"
    );
    assert_eq!(t.available(&org, &event).await, 130, "the counter agrees");
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'order.expired'
             AND org_id = (SELECT org_id FROM events WHERE id = $1)"
        )
        .await,
        150,
        "each expiry announced once"
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'order.paid'
             AND org_id = (SELECT org_id FROM events WHERE id = $1)"
        )
        .await,
        170,
        "each payment applied once"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM orders WHERE event_id = $1 AND paid_cents <> CASE WHEN status = 'paid' THEN total_cents ELSE 0 END")
            .await,
        0,
        "what was paid is what was charged"
    );
    assert!(s.refunds().is_empty(), "no payment needed refunding");
    Arc::try_unwrap(t).ok().expect("sole owner").stop().await;
}

async fn put_money(t: &TestApp, org: &Org, body: Value) -> reqwest::Response {
    t.api
        .client
        .put(t.url(&format!("/api/v1/orgs/{}/money/settings", org.slug)))
        .bearer_auth(&org.key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

both!(fees_and_vat_are_shown_and_each_paid_order_gets_the_next_invoice_number);
async fn fees_and_vat_are_shown_and_each_paid_order_gets_the_next_invoice_number(backend: Backend) {
    use std::sync::Arc;
    let t = Arc::new(TestApp::spawn(backend).await);
    let org = t.signup().await;
    let settings = format!("/api/v1/orgs/{}/money/settings", org.slug);
    let d: Value = t.get(&settings, Some(&org.key)).await.json().await.unwrap();
    assert_eq!(d["tax_bp"], 0);
    assert_eq!(d["invoice_prefix"], "INV");
    // Bad settings are named and change nothing.
    let p = problem(
        put_money(
            &t,
            &org,
            json!({"currency": "zar", "tax_bp": 20000, "tax_name": "VAT",
                "fee_per_ticket_cents": -1, "invoice_prefix": "inv-"}),
        )
        .await,
        422,
        "validation",
    )
    .await;
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "currency",
        "tax_bp",
        "fee_per_ticket_cents",
        "invoice_prefix",
    ] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
    problem(
        put_money(&t, &org, json!({"currency": "ZAR"})).await,
        422,
        "validation",
    )
    .await;
    let r = put_money(
        &t,
        &org,
        json!({"currency": "ZAR", "tax_bp": 1500, "tax_name": "VAT", "fee_per_ticket_cents": 500,
            "seller_name": "Klopse Events (Pty) Ltd", "seller_address": "1 Long Street\nCape Town",
            "seller_tax_number": "4123456789", "invoice_prefix": "KLP"}),
    )
    .await;
    assert_eq!(r.status(), 200);

    let event = t
        .try_event(&org, &EventSpec::capacity(100).priced(15000))
        .await
        .unwrap();
    let o: Value = checkout_with(&t, &org, &event, 2, "eft", None)
        .await
        .json()
        .await
        .unwrap();
    // 2 × 150.00 + 2 × 5.00 fee = 310.00, of which 15% VAT: 40.43.
    assert_eq!(o["fee_cents"], 1000);
    assert_eq!(o["total_cents"], 31000);
    assert_eq!(o["tax_cents"], 4043);
    assert_eq!(o["tax_rate_bp"], 1500);
    assert_eq!(o["payment"]["amount_cents"], 31000);
    assert_eq!(o["invoice_number"], Value::Null);
    let id = o["id"].as_str().unwrap().to_string();
    let invoice = format!("/api/v1/orgs/{}/orders/{id}/invoice", org.slug);
    problem(t.get(&invoice, Some(&org.key)).await, 409, "conflict").await;
    let paid: Value = t
        .post(
            &format!("/api/v1/orgs/{}/orders/{id}/mark-paid", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(paid["invoice_number"], "KLP-000001");
    let r = t.get(&invoice, Some(&org.key)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let text = ticketpdf::decode::text(&r.bytes().await.unwrap()).unwrap();
    for want in [
        "Tax invoice",
        "KLP-000001",
        "Klopse Events (Pty) Ltd",
        "VAT number 4123456789",
        "2 × General at ZAR 150.00",
        "Booking fee",
        "ZAR 310.00",
        "ZAR 40.43",
    ] {
        assert!(text.contains(want), "{want:?} not in {text:?}");
    }
    // The buyer gets it with the order's access token, nobody without.
    let token = o["access_token"].as_str().unwrap();
    let r = t
        .get(
            &format!("/s/{}/orders/{id}/invoice?access_token={token}", org.slug),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = t
        .get(
            &format!("/s/{}/orders/{id}/invoice?access_token=nope", org.slug),
            None,
        )
        .await;
    assert_eq!(r.status(), 404);

    // Thirty orders paid at once: numbers 2..=31, none twice, none skipped.
    let mut ids = Vec::new();
    for _ in 0..30 {
        let o: Value = checkout_with(&t, &org, &event, 1, "eft", None)
            .await
            .json()
            .await
            .unwrap();
        ids.push(o["id"].as_str().unwrap().to_string());
    }
    let mut tasks = Vec::new();
    for id in ids {
        let (t, org) = (t.clone(), org.clone());
        tasks.push(tokio::spawn(async move {
            let r = t
                .post(
                    &format!("/api/v1/orgs/{}/orders/{id}/mark-paid", org.slug),
                    Some(&org.key),
                    json!({}),
                )
                .await;
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            v["invoice_number"].as_str().unwrap().to_string()
        }));
    }
    let mut numbers: Vec<i64> = Vec::new();
    for task in tasks {
        let n = task.await.unwrap();
        numbers.push(n.trim_start_matches("KLP-").parse().unwrap());
    }
    numbers.sort();
    assert_eq!(numbers, (2..=31).collect::<Vec<i64>>());
    // The sales report carries the fees, the VAT inside and the refunds.
    let r = refund(&t, &org, &id, json!({"amount_cents": 1000}), None).await;
    assert_eq!(r.status(), 201);
    let report: Value = t
        .get(
            &format!(
                "/api/v1/orgs/{}/events/{}/reports/sales",
                org.slug, event.id
            ),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    let total = &report["totals"][0];
    assert_eq!(total["currency"], "ZAR");
    assert_eq!(total["sold"], 32);
    assert_eq!(total["fees_cents"], 1000 + 30 * 500, "{report}");
    // 40.43 on the first order, 20.22 on each of the thirty others.
    assert_eq!(total["tax_cents"], 4043 + 30 * 2022);
    assert_eq!(total["refunds_cents"], 1000);
    assert_eq!(report["by_ticket_type"][0]["fees_cents"], 16000);
    // A free order has no invoice, and takes no number.
    let free = t.event(&org, 5).await;
    let f = t.buy(&org, &free, 1).await;
    assert_eq!(f["fee_cents"], 0, "free tickets carry no fee");
    assert_eq!(f["invoice_number"], Value::Null);
    Arc::try_unwrap(t).ok().expect("sole owner").stop().await;
}

both!(cancelling_an_event_cancels_and_refunds_every_order_and_tells_each_buyer);
async fn cancelling_an_event_cancels_and_refunds_every_order_and_tells_each_buyer(
    backend: Backend,
) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t
        .try_event(&org, &EventSpec::capacity(20).priced(4000))
        .await
        .unwrap();
    let o = |p: &str| format!("/api/v1/orgs/{}{p}", org.slug);
    let mut ids = Vec::new();
    for qty in [1, 2, 3] {
        let order: Value = checkout_with(&t, &org, &event, qty, "eft", None)
            .await
            .json()
            .await
            .unwrap();
        ids.push(order["id"].as_str().unwrap().to_string());
    }
    // One stays pending; one is paid; one paid and refunded in part.
    t.post(
        &o(&format!("/orders/{}/mark-paid", ids[1])),
        Some(&org.key),
        json!({}),
    )
    .await;
    t.post(
        &o(&format!("/orders/{}/mark-paid", ids[2])),
        Some(&org.key),
        json!({}),
    )
    .await;
    refund(&t, &org, &ids[2], json!({"amount_cents": 1000}), None).await;

    let r = t
        .post(
            &o(&format!("/events/{}/cancel", event.id)),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["status"], "cancelled");
    // Off the storefront at once.
    let r = t
        .get(
            &format!("/api/v1/store/{}/events/{}", org.slug, event.id),
            None,
        )
        .await;
    assert_eq!(r.status(), 404);
    for id in &ids {
        order_until(&t, &org, id, |o| o["status"] == "cancelled").await;
    }
    let paid = order(&t, &org, &ids[1]).await;
    assert_eq!(paid["refunded_cents"], 8000);
    assert!(
        paid["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["status"] == "revoked")
    );
    let part = order(&t, &org, &ids[2]).await;
    assert_eq!(part["refunded_cents"], 12000, "the rest refunded");
    assert_eq!(
        order(&t, &org, &ids[0]).await["payment"]["status"],
        "cancelled"
    );
    // Each buyer is told.
    let dir = t.config().data_dir.join("mail");
    t.eventually("three cancellation notices", || async {
        crate::mail::read_messages(&dir)
            .iter()
            .filter(|m| {
                m.headers["subject"]
                    .as_str()
                    .unwrap_or("")
                    .contains("was cancelled")
            })
            .count()
            == 3
    })
    .await;
    // Again: no change.
    let r = t
        .post(
            &o(&format!("/events/{}/cancel", event.id)),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    t.stop().await;
}

both!(the_nightly_reconciliation_applies_a_payment_whose_webhook_never_came);
async fn the_nightly_reconciliation_applies_a_payment_whose_webhook_never_came(backend: Backend) {
    let (t, s) = with_card(backend, |_| {}).await;
    let org = t.signup().await;
    let event = t
        .try_event(&org, &EventSpec::capacity(5).priced(3000))
        .await
        .unwrap();
    let o: Value = checkout_with(&t, &org, &event, 1, "card", None)
        .await
        .json()
        .await
        .unwrap();
    let id = o["id"].as_str().unwrap().to_string();
    // The buyer pays; the provider's webhook never reaches us.
    s.set_webhook_url(None);
    s.succeed(s.intents()[0]["id"].as_str().unwrap()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(order(&t, &org, &id).await["status"], "pending");

    let found = platform::sales::money::reconcile_provider(t.app(), 3)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].action, "applied");
    assert_eq!(found[0].provider_status, "succeeded");
    let paid = order(&t, &org, &id).await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["tickets"].as_array().unwrap().len(), 1);
    // Run again: the records agree, nothing to report or apply.
    let again = platform::sales::money::reconcile_provider(t.app(), 3)
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    t.stop().await;
}
