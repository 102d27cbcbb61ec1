//! The edges a hostile or careless client finds first: slow headers and
//! slow bodies, handlers that run too long, thousands of idle connections,
//! the headers every page and secret-carrying reply needs, unpaid orders
//! that must give their tickets back, and per-address limits.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{both, support::*};

async fn connect(t: &TestApp) -> TcpStream {
    let addr = t.base.trim_start_matches("http://").to_string();
    TcpStream::connect(addr).await.expect("connect")
}

/// Reads until the server closes the connection (or `limit` passes):
/// what it sent, and whether it closed.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
        }
    }
}

both!(a_client_that_never_finishes_its_headers_is_cut_off);
async fn a_client_that_never_finishes_its_headers_is_cut_off(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| c.header_timeout_secs = 1).await;
    let mut slow = connect(&t).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (_, closed) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(closed, "a connection without complete headers stays open");
    // One that says nothing at all is closed too.
    let mut silent = connect(&t).await;
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(closed, "a silent connection stays open");
    // Everyone else is served.
    assert_eq!(t.get("/healthz", None).await.status(), 200);
    t.stop().await;
}

both!(a_body_that_does_not_arrive_in_time_gets_408);
async fn a_body_that_does_not_arrive_in_time_gets_408(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| c.body_timeout_secs = 1).await;
    let mut slow = connect(&t).await;
    slow.write_all(
        b"POST /api/v1/signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"email\":",
    )
    .await
    .unwrap();
    let (reply, _) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("application/problem+json"), "{reply}");
    assert!(reply.contains("request_timeout"), "{reply}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handler_that_runs_too_long_answers_503() {
    let t = TestApp::spawn_with(Backend::Sqlite, |c| c.handler_timeout_secs = 1).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    // Hold SQLite's single writer: the next hold waits for it past the limit.
    let tx = t.app().db().begin().await.unwrap();
    let r = t.hold(&org, &event, 1).await;
    let retry = r.headers().get("retry-after").cloned();
    problem(r, 503, "overloaded").await;
    assert!(retry.is_some(), "503 without Retry-After");
    drop(tx);
    // The hold whose request timed out was queued before the limit: it is
    // written once the writer is free, and its tickets stay taken — the
    // counter agrees with the ledger, not with the 503.
    let held_in_ledger = || async {
        t.count(
            "SELECT CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT) FROM hold_items i JOIN holds h ON h.org_id = i.org_id AND h.id = i.hold_id
             WHERE h.event_id = $1 AND h.status = 'active'",
            &event.id,
        )
        .await
    };
    t.eventually("the queued hold is written", || async {
        held_in_ledger().await == 1
    })
    .await;
    assert_eq!(t.available(&org, &event).await, 9);
    // And the node sells again.
    assert_eq!(t.hold(&org, &event, 1).await.status(), 201);
    assert_eq!(t.available(&org, &event).await, 10 - held_in_ledger().await);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_idle_and_trickling_connections_do_not_stop_the_gate() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let order = t.buy(&org, &event, 1).await;
    let code = order["tickets"][0]["code"].as_str().unwrap().to_string();
    let device = t.device(&org, &[&event.id]).await;
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let mut idle = Vec::new();
    for i in 0..2000 {
        let mut s = connect(&t).await;
        if i % 2 == 0 {
            // Half of them trickle the start of a request.
            let _ = s.write_all(b"POST /api/v1/scan HTTP/1.1\r\n").await;
        }
        idle.push(s);
    }
    // With all of them open, health and a scan still answer at once (the
    // bound only catches a hang, it is not a speed claim).
    for _ in 0..5 {
        let start = std::time::Instant::now();
        assert_eq!(t.get("/healthz", None).await.status(), 200);
        let r = t.scan(&device, &code, &event.id).await;
        assert!(r["result"] == "admitted" || r["result"] == "already_admitted");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }
    drop(idle);
    t.stop().await;
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

both!(pages_and_secret_replies_carry_the_right_headers);
async fn pages_and_secret_replies_carry_the_right_headers(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    for path in [
        "/login",
        "/",
        "/s/nobody/events/00000000-0000-0000-0000-000000000000",
    ] {
        let r = t.get(path, None).await;
        let csp = header(&r, "content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert_eq!(header(&r, "x-frame-options"), "DENY", "{path}");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&r, "referrer-policy"), "no-referrer", "{path}");
        assert_eq!(
            header(&r, "strict-transport-security"),
            "",
            "plain HTTP: no HSTS"
        );
    }
    // Pages carry no inline script.
    let login = t.get("/login", None).await.text().await.unwrap();
    assert!(!login.contains("<script>"), "inline script on /login");
    // Every reply that carries a secret says no-store.
    let signup = t
        .post(
            "/api/v1/signup",
            None,
            json!({"email": "h@example.com", "password": "a long password", "org_name": "H", "org_slug": unique("h")}),
        )
        .await;
    assert_eq!(signup.status(), 201);
    assert_eq!(header(&signup, "cache-control"), "no-store");
    let org = t.signup().await;
    let event = t.event(&org, 5).await;
    let d: Value = t
        .post(
            &format!("/api/v1/orgs/{}/devices", org.slug),
            Some(&org.key),
            json!({"name": "Gate", "event_ids": [event.id]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let pair = t
        .post(
            "/api/v1/devices/pair",
            None,
            json!({"pairing_code": d["pairing_code"]}),
        )
        .await;
    assert_eq!(pair.status(), 201);
    assert_eq!(header(&pair, "cache-control"), "no-store");
    let h: Value = t.hold(&org, &event, 1).await.json().await.unwrap();
    let checkout = t
        .checkout(&org, h["id"].as_str().unwrap(), Some("k"), "b@example.com")
        .await;
    assert_eq!(checkout.status(), 201);
    assert_eq!(header(&checkout, "cache-control"), "no-store");
    let order: Value = checkout.json().await.unwrap();
    let page = t
        .get(
            &format!(
                "/s/{}/orders/{}?access_token={}",
                org.slug,
                order["id"].as_str().unwrap(),
                order["access_token"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, "cache-control"), "no-store");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behind_https_there_is_hsts_and_cookies_are_secure() {
    let t = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.public_url = "https://tickets.example.com".into();
        c.secure_cookies = true;
    })
    .await;
    let r = t.get("/login", None).await;
    assert!(header(&r, "strict-transport-security").starts_with("max-age="));
    let set_cookie = header(&r, "set-cookie");
    assert!(
        set_cookie.contains("Secure") && set_cookie.contains("HttpOnly"),
        "{set_cookie}"
    );
    t.stop().await;
}

both!(a_login_without_the_forms_csrf_token_is_refused);
async fn a_login_without_the_forms_csrf_token_is_refused(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    // A cross-site form post: no token cookie, a made-up token.
    let r = t
        .client
        .post(t.url("/login"))
        .form(&[
            ("email", org.email.as_str()),
            ("password", "a long password"),
            ("csrf", "forged"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        header(&r, "set-cookie").contains("vg_login_csrf"),
        "a fresh form comes back"
    );
    assert!(!header(&r, "set-cookie").contains("vg_session="));
    // The same post with the token the form carried (and its cookie) works.
    let form = t.get("/login", None).await;
    let cookie = header(&form, "set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = form.text().await.unwrap();
    let token = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(t.url("/login"))
        .header("cookie", cookie)
        .form(&[
            ("email", org.email.as_str()),
            ("password", "a long password"),
            ("csrf", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(header(&r, "set-cookie").starts_with("vg_session="));
    t.stop().await;
}

both!(an_unpaid_order_expires_and_gives_its_tickets_back_once);
async fn an_unpaid_order_expires_and_gives_its_tickets_back_once(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| c.payment_timeout_secs = 1800).await;
    let org = t.signup().await;
    let event = t
        .try_event(&org, &EventSpec::capacity(3).priced(15_000))
        .await
        .unwrap();
    let h: Value = t.hold(&org, &event, 3).await.json().await.unwrap();
    let o = t
        .checkout(&org, h["id"].as_str().unwrap(), None, "late@example.com")
        .await;
    assert_eq!(o.status(), 201);
    let o: Value = o.json().await.unwrap();
    assert_eq!(o["status"], "pending");
    assert_eq!(o["tickets"].as_array().unwrap().len(), 0);
    assert!(o["payment"]["expires_at"].is_string());
    assert_eq!(t.available(&org, &event).await, 0);
    problem(t.hold(&org, &event, 1).await, 409, "sold_out").await;
    // Not a second before the deadline…
    t.advance(Duration::from_secs(1799));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.available(&org, &event).await, 0);
    // …but past it, the order expires and its three tickets are back.
    t.advance(Duration::from_secs(2));
    t.eventually("the three are back", || async {
        t.available(&org, &event).await == 3
    })
    .await;
    let order: Value = t
        .get(
            &format!(
                "/api/v1/orgs/{}/orders/{}",
                org.slug,
                o["id"].as_str().unwrap()
            ),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(order["status"], "expired");
    // Once: more sweeps give nothing more back.
    t.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.available(&org, &event).await, 3);
    let released = t
        .count(
            "SELECT COUNT(*) FROM holds WHERE event_id = $1 AND status = 'released'",
            &event.id,
        )
        .await;
    assert_eq!(released, 1);
    assert_eq!(t.hold(&org, &event, 3).await.status(), 201);
    t.stop().await;
}

both!(one_address_cannot_drain_the_storefront);
async fn one_address_cannot_drain_the_storefront(backend: Backend) {
    let t = TestApp::spawn_with(backend, |c| c.storefront_per_minute = 5).await;
    let org = t.signup().await;
    let event = t.event(&org, 100).await;
    for _ in 0..5 {
        assert_eq!(t.hold(&org, &event, 1).await.status(), 201);
    }
    let r = t.hold(&org, &event, 1).await;
    let retry: u64 = header(&r, "retry-after").parse().expect("Retry-After");
    assert!((1..=60).contains(&retry));
    problem(r, 429, "rate_limited").await;
    // Checkout counts against the same address.
    problem(
        t.checkout(
            &org,
            "00000000-0000-0000-0000-000000000000",
            None,
            "x@example.com",
        )
        .await,
        429,
        "rate_limited",
    )
    .await;
    assert_eq!(t.available(&org, &event).await, 95);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_org_holds_a_bounded_number_of_live_streams() {
    let t = TestApp::spawn_with(Backend::Sqlite, |c| c.live_streams_per_org = 2).await;
    let org = t.signup().await;
    let event = t.event(&org, 5).await;
    let path = format!("/api/v1/orgs/{}/events/{}/live", org.slug, event.id);
    let a = t.get(&path, Some(&org.key)).await;
    let b = t.get(&path, Some(&org.key)).await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    problem(t.get(&path, Some(&org.key)).await, 429, "rate_limited").await;
    // Another org is not affected; a closed stream frees its place.
    let other = t.signup().await;
    let other_event = t.event(&other, 5).await;
    let c = t
        .get(
            &format!("/api/v1/orgs/{}/events/{}/live", other.slug, other_event.id),
            Some(&other.key),
        )
        .await;
    assert_eq!(c.status(), 200);
    drop(a);
    t.eventually("a place is free again", || async {
        t.get(&path, Some(&org.key)).await.status() == 200
    })
    .await;
    drop(b);
    t.stop().await;
}
