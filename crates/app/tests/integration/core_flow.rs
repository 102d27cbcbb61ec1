//! API.md's core flow, from sign-up to the gate and the live stream.

use futures::StreamExt;
use serde_json::{Value, json};

use crate::{both, support::*};

both!(a_buyer_takes_a_free_ticket_and_is_admitted_once);
async fn a_buyer_takes_a_free_ticket_and_is_admitted_once(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;

    // A draft event is invisible to buyers.
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
    problem(
        t.get(
            &format!("/api/v1/store/{}/events/{event_id}", org.slug),
            None,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    // Publishing needs a ticket type.
    problem(
        t.post(
            &format!("/api/v1/orgs/{}/events/{event_id}/publish", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await,
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
    let tt: Value = tt.json().await.unwrap();
    let p = t
        .post(
            &format!("/api/v1/orgs/{}/events/{event_id}/publish", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(p.status(), 200);
    assert_eq!(p.json::<Value>().await.unwrap()["status"], "published");
    let event = Event {
        id: event_id.clone(),
        ticket_type: tt["id"].as_str().unwrap().to_string(),
    };

    // The list shows it.
    let list: Value = t
        .get(&format!("/api/v1/orgs/{}/events", org.slug), Some(&org.key))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"][0]["id"], event_id);
    assert_eq!(list["next_cursor"], Value::Null);

    let store = format!("/api/v1/store/{}/events/{event_id}", org.slug);
    let s: Value = t.get(&store, None).await.json().await.unwrap();
    assert_eq!(s["ticket_types"][0]["available"], 10);

    // Hold 3; the storefront counts them at once.
    let h = t.hold(&org, &event, 3).await;
    assert_eq!(h.status(), 201);
    let h: Value = h.json().await.unwrap();
    assert!(h["expires_at"].as_str().unwrap().ends_with('Z'));
    let s: Value = t.get(&store, None).await.json().await.unwrap();
    assert_eq!(s["ticket_types"][0]["available"], 7);
    // More than max_per_order is refused.
    problem(t.hold(&org, &event, 5).await, 422, "validation").await;

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
    let order_id = o["id"].as_str().unwrap();
    let access = o["access_token"].as_str().unwrap();
    // A hold checks out once.
    problem(
        t.checkout(&org, h["id"].as_str().unwrap(), None, "ada@example.com")
            .await,
        409,
        "conflict",
    )
    .await;

    // The buyer sees the order with the token; a wrong token is a 404.
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
    assert_eq!(
        b.json::<Value>().await.unwrap()["tickets"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
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

    // The code verifies offline with the org's public key, as a device would.
    let device = t.device(&org, &[&event_id]).await;
    let me: Value = t
        .get("/api/v1/devices/me", Some(&device))
        .await
        .json()
        .await
        .unwrap();
    let key_b64 = me["signing_keys"][0]["public_key"].as_str().unwrap();
    let key_bytes: [u8; 32] = base64_decode(key_b64).try_into().unwrap();
    let key = kernel::auth::VerifyingKey::from_bytes(&key_bytes).unwrap();
    let code = tickets[0]["code"].as_str().unwrap();
    assert!(platform::tickets::parse_code(code).unwrap().verify(&key));

    // Live stream: the first figures arrive at once; an admission updates them.
    let live = t
        .client
        .get(t.url(&format!("/api/v1/orgs/{}/events/{event_id}/live", org.slug)))
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
            first["sold"].as_i64(),
            first["admitted"].as_i64(),
            first["available"].as_i64()
        ),
        (Some(3), Some(0), Some(7))
    );

    let s1 = t.scan(&device, code, &event_id).await;
    assert_eq!(s1["result"], "admitted");
    assert_eq!(s1["ticket"]["id"], ticket_id);
    let s2 = t.scan(&device, code, &event_id).await;
    assert_eq!(s2["result"], "already_admitted");
    assert_eq!(s2["first_admitted_at"], s1["first_admitted_at"]);

    let updated = figures.until(|f| f["admitted"] == 1).await;
    assert_eq!(updated["sold"], 3);

    // The admission is durable in the database.
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM tickets WHERE order_id = $1 AND admitted_at IS NOT NULL",
            order_id
        )
        .await,
        1
    );

    // Pairing codes are spent once.
    let d: Value = t
        .post(
            &format!("/api/v1/orgs/{}/devices", org.slug),
            Some(&org.key),
            json!({"name": "G2", "event_ids": [event_id]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        t.post(
            "/api/v1/devices/pair",
            None,
            json!({"pairing_code": d["pairing_code"]})
        )
        .await
        .status(),
        201
    );
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

    // Health, readiness, metrics.
    assert_eq!(t.get("/healthz", None).await.status(), 200);
    let ready: Value = t.get("/readyz", None).await.json().await.unwrap();
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
