//! API.md's core flow, from sign-up to the gate and the live stream.

use futures::StreamExt;
use serde_json::{Value, json};

use crate::{both, support::*};

both!(a_draft_is_invisible_until_published_with_a_ticket_type);
async fn a_draft_is_invisible_until_published_with_a_ticket_type(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let e = t
        .post(
            &format!("/api/v1/orgs/{}/events", org.slug),
            Some(&org.key),
            json!({"name": "Launch", "starts_at": "2030-01-01T18:00:00Z", "ends_at": "2030-01-01T23:00:00Z", "timezone": "UTC"}),
        )
        .await;
    assert_eq!(e.status(), 201);
    let e: Value = e.json().await.unwrap();
    assert_eq!(e["status"], "draft");
    let event_id = e["id"].as_str().unwrap().to_string();
    let store = format!("/api/v1/store/{}/events/{event_id}", org.slug);
    problem(t.get(&store, None).await, 404, "not_found").await;
    // Publishing needs a ticket type.
    let publish = format!("/api/v1/orgs/{}/events/{event_id}/publish", org.slug);
    problem(
        t.post(&publish, Some(&org.key), json!({})).await,
        422,
        "validation",
    )
    .await;
    let tt = t
        .post(
            &format!("/api/v1/orgs/{}/events/{event_id}/ticket-types", org.slug),
            Some(&org.key),
            json!({"name": "GA", "price_cents": 0, "currency": "ZAR", "capacity": 10, "max_per_order": 4}),
        )
        .await;
    assert_eq!(tt.status(), 201);
    problem(t.get(&store, None).await, 404, "not_found").await;
    let p = t.post(&publish, Some(&org.key), json!({})).await;
    assert_eq!(p.status(), 200);
    assert_eq!(p.json::<Value>().await.unwrap()["status"], "published");
    let s: Value = t.get(&store, None).await.json().await.unwrap();
    assert_eq!(s["ticket_types"][0]["available"], 10);
    // The organizer's list shows it, one page.
    let list: Value = t
        .get(&format!("/api/v1/orgs/{}/events", org.slug), Some(&org.key))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["id"], event_id);
    assert_eq!(list["data"][0]["ticket_types"][0]["capacity"], 10);
    assert_eq!(list["next_cursor"], Value::Null);
    t.stop().await;
}

both!(a_buyer_holds_and_checks_out_free_tickets);
async fn a_buyer_holds_and_checks_out_free_tickets(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t
        .try_event(&org, &EventSpec::capacity(10).max_per_order(4))
        .await
        .unwrap();
    // Hold 3; the storefront counts them at once.
    let h = t.hold(&org, &event, 3).await;
    assert_eq!(h.status(), 201);
    let h: Value = h.json().await.unwrap();
    assert!(h["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(t.available(&org, &event).await, 7);
    // More than max_per_order is refused, naming the field.
    let v = problem(t.hold(&org, &event, 5).await, 422, "validation").await;
    assert_eq!(v["errors"][0]["field"], "items[0].quantity");
    // Check out: a free order is paid, with three signed tickets.
    let o = t
        .checkout(
            &org,
            h["id"].as_str().unwrap(),
            Some("k-1"),
            "ada@example.com",
        )
        .await;
    assert_eq!(o.status(), 201);
    let o: Value = o.json().await.unwrap();
    assert_eq!(o["status"], "paid");
    assert_eq!(o["payment"], Value::Null);
    let tickets = o["tickets"].as_array().unwrap().clone();
    assert_eq!(tickets.len(), 3);
    assert!(tickets.iter().all(|t| t["status"] == "valid"));
    assert_eq!(t.available(&org, &event).await, 7);
    // A hold checks out once.
    problem(
        t.checkout(&org, h["id"].as_str().unwrap(), None, "ada@example.com")
            .await,
        409,
        "conflict",
    )
    .await;
    // The buyer sees the order with its token; a wrong token is a 404.
    let order_id = o["id"].as_str().unwrap();
    let access = o["access_token"].as_str().unwrap();
    let b = t
        .get(
            &format!(
                "/api/v1/store/{}/orders/{order_id}?access_token={access}",
                org.slug
            ),
            None,
        )
        .await;
    assert_eq!(b.status(), 200);
    let b: Value = b.json().await.unwrap();
    assert_eq!(b["tickets"].as_array().unwrap().len(), 3);
    assert!(b.get("access_token").is_none(), "the token is shown once");
    problem(
        t.get(
            &format!(
                "/api/v1/store/{}/orders/{order_id}?access_token=nope",
                org.slug
            ),
            None,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    // The organizer sees it too, codes and all, and the QR renders.
    let g: Value = t
        .get(
            &format!("/api/v1/orgs/{}/orders/{order_id}", org.slug),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(g["tickets"][0]["code"], tickets[0]["code"]);
    let ticket_id = tickets[0]["id"].as_str().unwrap();
    let qr = t
        .get(
            &format!("/api/v1/orgs/{}/tickets/{ticket_id}/qr.svg", org.slug),
            Some(&org.key),
        )
        .await;
    assert_eq!(qr.status(), 200);
    assert_eq!(qr.headers()["content-type"], "image/svg+xml");
    assert!(qr.text().await.unwrap().starts_with("<svg"));
    t.stop().await;
}

both!(a_ticket_code_verifies_offline_with_the_orgs_public_key);
async fn a_ticket_code_verifies_offline_with_the_orgs_public_key(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let o = t.buy(&org, &event, 1).await;
    let device = t.device(&org, &[&event.id]).await;
    let me: Value = t
        .get("/api/v1/devices/me", Some(&device))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["event_ids"][0], event.id.as_str());
    let key_b64 = me["signing_keys"][0]["public_key"].as_str().unwrap();
    let key_bytes: [u8; 32] = base64_decode(key_b64).try_into().unwrap();
    let key = kernel::auth::VerifyingKey::from_bytes(&key_bytes).unwrap();
    let code = o["tickets"][0]["code"].as_str().unwrap();
    let parsed = platform::tickets::parse_code(code).unwrap();
    assert!(parsed.verify(&key));
    assert_eq!(
        parsed.ticket.to_string(),
        o["tickets"][0]["id"].as_str().unwrap()
    );
    t.stop().await;
}

both!(a_ticket_is_admitted_once_and_durably);
async fn a_ticket_is_admitted_once_and_durably(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let o = t.buy(&org, &event, 1).await;
    let code = o["tickets"][0]["code"].as_str().unwrap();
    let device = t.device(&org, &[&event.id]).await;
    let s1 = t.scan(&device, code, &event.id).await;
    assert_eq!(s1["result"], "admitted");
    assert_eq!(s1["ticket"]["id"], o["tickets"][0]["id"]);
    let s2 = t.scan(&device, code, &event.id).await;
    assert_eq!(s2["result"], "already_admitted");
    assert_eq!(s2["first_admitted_at"], s1["first_admitted_at"]);
    // Durable in the database, announced once.
    let order_id = o["id"].as_str().unwrap();
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM tickets WHERE order_id = $1 AND admitted_at IS NOT NULL",
            order_id
        )
        .await,
        1
    );
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'ticket.admitted' AND org_id = (SELECT org_id FROM events WHERE id = $1)",
            &event.id
        )
        .await,
        1
    );
    t.stop().await;
}

both!(the_live_stream_counts_sales_and_admissions);
async fn the_live_stream_counts_sales_and_admissions(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let o = t.buy(&org, &event, 3).await;
    let device = t.device(&org, &[&event.id]).await;
    let live = t
        .client
        .get(t.url(&format!(
            "/api/v1/orgs/{}/events/{}/live",
            org.slug, event.id
        )))
        .bearer_auth(&org.key)
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    assert!(
        live.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut figures = Figures::new(live.bytes_stream());
    // The figures are a projection of the events: they catch up within
    // moments of the sale.
    let first = figures.until(|f| f["sold"] == 3).await;
    assert_eq!(
        (
            first["capacity"].as_i64(),
            first["admitted"].as_i64(),
            first["available"].as_i64()
        ),
        (Some(10), Some(0), Some(7))
    );
    let h = t.hold(&org, &event, 2).await;
    assert_eq!(h.status(), 201);
    let held = figures.until(|f| f["held"] == 2).await;
    assert_eq!(held["available"], 5);
    let s = t
        .scan(
            &device,
            o["tickets"][0]["code"].as_str().unwrap(),
            &event.id,
        )
        .await;
    assert_eq!(s["result"], "admitted");
    let updated = figures.until(|f| f["admitted"] == 1).await;
    assert_eq!(updated["sold"], 3);
    t.stop().await;
}

both!(a_pairing_code_is_spent_once);
async fn a_pairing_code_is_spent_once(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let d: Value = t
        .post(
            &format!("/api/v1/orgs/{}/devices", org.slug),
            Some(&org.key),
            json!({"name": "G2", "event_ids": [event.id]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let first = t
        .post(
            "/api/v1/devices/pair",
            None,
            json!({"pairing_code": d["pairing_code"]}),
        )
        .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["event_ids"][0], event.id.as_str());
    problem(
        t.post(
            "/api/v1/devices/pair",
            None,
            json!({"pairing_code": d["pairing_code"]}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    // A pairing code expires after 15 minutes unused.
    let d: Value = t
        .post(
            &format!("/api/v1/orgs/{}/devices", org.slug),
            Some(&org.key),
            json!({"name": "G3", "event_ids": [event.id]}),
        )
        .await
        .json()
        .await
        .unwrap();
    t.advance(std::time::Duration::from_secs(15 * 60 + 1));
    problem(
        t.post(
            "/api/v1/devices/pair",
            None,
            json!({"pairing_code": d["pairing_code"]}),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    t.stop().await;
}

both!(health_readiness_and_metrics_answer);
async fn health_readiness_and_metrics_answer(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    assert_eq!(t.get("/healthz", None).await.status(), 200);
    let ready = t.get("/readyz", None).await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["database"], "ok");
    if backend == Backend::Postgres {
        assert_eq!(ready["redis"], "ok");
    }
    let metrics = t.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains("voelgoed_http_requests_total"));
    t.stop().await;
}

both!(the_openapi_document_describes_every_endpoint);
async fn the_openapi_document_describes_every_endpoint(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let doc: Value = t.get("/api/openapi.json", None).await.json().await.unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/signup", "post"),
        ("/api/v1/orgs/{org}/events", "post"),
        ("/api/v1/orgs/{org}/events", "get"),
        ("/api/v1/orgs/{org}/events/{event_id}", "get"),
        ("/api/v1/orgs/{org}/events/{event_id}/ticket-types", "post"),
        ("/api/v1/orgs/{org}/events/{event_id}/publish", "post"),
        ("/api/v1/store/{org}/events/{event_id}", "get"),
        ("/api/v1/store/{org}/events/{event_id}/holds", "post"),
        ("/api/v1/store/{org}/holds/{hold_id}/checkout", "post"),
        ("/api/v1/store/{org}/orders/{order_id}", "get"),
        ("/api/v1/orgs/{org}/orders/{order_id}", "get"),
        ("/api/v1/orgs/{org}/tickets/{ticket_id}/qr.svg", "get"),
        ("/api/v1/orgs/{org}/devices", "post"),
        ("/api/v1/devices/pair", "post"),
        ("/api/v1/devices/me", "get"),
        ("/api/v1/scan", "post"),
        ("/api/v1/orgs/{org}/events/{event_id}/live", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not described"
        );
    }
    t.stop().await;
}

both!(an_expired_hold_gives_its_tickets_back_and_cannot_be_checked_out);
async fn an_expired_hold_gives_its_tickets_back_and_cannot_be_checked_out(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| c.hold_ttl_secs = 60).await;
    let org = t.signup().await;
    let event = t.event(&org, 5).await;
    let h: Value = t.hold(&org, &event, 5).await.json().await.unwrap();
    problem(t.hold(&org, &event, 1).await, 409, "sold_out").await;
    // A minute later, by the node's clock.
    t.advance(std::time::Duration::from_secs(61));
    problem(
        t.checkout(&org, h["id"].as_str().unwrap(), None, "late@example.com")
            .await,
        410,
        "hold_expired",
    )
    .await;
    // The sweeper, woken by the clock, returns the five.
    t.eventually("the five are back", || async {
        t.available(&org, &event).await == 5
    })
    .await;
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM holds WHERE event_id = $1 AND status = 'released'",
            &event.id
        )
        .await,
        1
    );
    assert_eq!(t.hold(&org, &event, 5).await.status(), 201);
    t.stop().await;
}

/// The `figures` events of a live stream, one at a time, in order.
pub struct Figures<S> {
    stream: S,
    buf: String,
}

impl<S: futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin> Figures<S> {
    pub fn new(stream: S) -> Self {
        Figures {
            stream,
            buf: String::new(),
        }
    }

    pub async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..end + 2).collect();
                if let Some(line) = event.lines().find(|l| l.starts_with("data:")) {
                    return serde_json::from_str(line.trim_start_matches("data:").trim())
                        .expect("figures json");
                }
                continue;
            }
            let chunk =
                tokio::time::timeout(std::time::Duration::from_secs(10), self.stream.next())
                    .await
                    .expect("a live event within 10 s")
                    .expect("stream open")
                    .expect("chunk");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The first figures for which `done` holds.
    pub async fn until(&mut self, done: impl Fn(&Value) -> bool) -> Value {
        loop {
            let f = self.next().await;
            if done(&f) {
                return f;
            }
        }
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}
