//! A buyer finds their orders by e-mail: the storefront answers the same
//! for any address, a link goes to an address that has orders (once per ten
//! minutes), and the link opens that address's orders — and no one
//! else's — for a day.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{both, mail::read_messages, support::*};

async fn ask(t: &TestApp, org: &Org, body: Value) -> reqwest::Response {
    t.post(
        &format!("/api/v1/store/{}/orders/lookup", org.slug),
        None,
        body,
    )
    .await
}

fn token_in(body: &str) -> String {
    let at = body.find("token=").expect("a link in the mail") + "token=".len();
    body[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .collect()
}

both!(a_buyer_finds_their_orders_through_a_mailed_link);
async fn a_buyer_finds_their_orders_through_a_mailed_link(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 20).await;
    let mut ann = Vec::new();
    for _ in 0..2 {
        let h: Value = t.hold(&org, &event, 1).await.json().await.unwrap();
        let o: Value = t
            .checkout(&org, h["id"].as_str().unwrap(), None, "ann@example.com")
            .await
            .json()
            .await
            .unwrap();
        ann.push(o["id"].as_str().unwrap().to_string());
    }
    let bob = t.buy(&org, &event, 1).await; // buyer@example.com
    let bob = bob["id"].as_str().unwrap().to_string();

    // The same answer for a known and an unknown address.
    let known = ask(&t, &org, json!({"email": "Ann@Example.com"})).await;
    assert_eq!(known.status(), 202);
    let known: Value = known.json().await.unwrap();
    let unknown = ask(&t, &org, json!({"email": "nobody@example.com"})).await;
    assert_eq!(unknown.status(), 202);
    assert_eq!(known, unknown.json::<Value>().await.unwrap());

    // One mail, to Ann, listing her two orders.
    let dir = t.config().data_dir.join("mail");
    let to_ann = |dir: &std::path::Path| {
        read_messages(dir)
            .into_iter()
            .filter(|m| {
                m.headers["to"]
                    .as_str()
                    .unwrap_or("")
                    .contains("ann@example.com")
            })
            .filter(|m| {
                m.headers["subject"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("Your orders")
            })
            .collect::<Vec<_>>()
    };
    t.eventually("the look-up mail", || async { !to_ann(&dir).is_empty() })
        .await;
    let mails = to_ann(&dir);
    assert_eq!(mails.len(), 1);
    for id in &ann {
        assert!(mails[0].body.contains(id.as_str()), "{}", mails[0].body);
    }
    assert!(!mails[0].body.contains(bob.as_str()));
    let token = token_in(&mails[0].body);
    assert!(token.starts_with("lk."), "{token}");

    // The link: her orders, each openable, nobody else's.
    let mine = t
        .get(&format!("/s/{}/orders/mine?token={token}", org.slug), None)
        .await;
    assert_eq!(mine.status(), 200);
    let html = mine.text().await.unwrap();
    for id in &ann {
        assert!(html.contains(id.as_str()));
    }
    assert!(!html.contains(bob.as_str()));
    let page = t
        .get(
            &format!("/s/{}/orders/{}?access_token={token}", org.slug, ann[0]),
            None,
        )
        .await;
    assert_eq!(page.status(), 200);
    let api: Value = t
        .get(
            &format!(
                "/api/v1/store/{}/orders/{}?access_token={token}",
                org.slug, ann[1]
            ),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(api["buyer"]["email"], "ann@example.com");
    for (path, what) in [
        (
            format!("/s/{}/orders/{bob}?access_token={token}", org.slug),
            "another buyer's order",
        ),
        (
            format!(
                "/api/v1/store/{}/orders/{bob}?access_token={token}",
                org.slug
            ),
            "another buyer's order (API)",
        ),
        (
            format!("/s/{}/orders/mine?token=lk.forged", org.slug),
            "a forged token",
        ),
        (
            format!(
                "/s/{}/orders/mine?token={}",
                org.slug,
                &token[..token.len() - 2]
            ),
            "a truncated token",
        ),
        (
            format!("/s/{}/orders/mine?token={}", org.slug, ann[0]),
            "an order id for a token",
        ),
        (format!("/s/{}/orders/mine", org.slug), "no token"),
    ] {
        let r = t.get(&path, None).await;
        assert!(
            [400, 404, 422].contains(&r.status().as_u16()),
            "{what}: {}",
            r.status()
        );
    }
    let other = t.signup().await;
    let r = t
        .get(
            &format!("/s/{}/orders/mine?token={token}", other.slug),
            None,
        )
        .await;
    assert_eq!(r.status(), 404, "another org's storefront");

    // Asked again at once: no second mail; ten minutes on, another.
    assert_eq!(
        ask(&t, &org, json!({"email": "ann@example.com"}))
            .await
            .status(),
        202
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(to_ann(&dir).len(), 1, "one mail per ten minutes");
    t.advance(Duration::from_secs(11 * 60));
    assert_eq!(
        ask(&t, &org, json!({"email": "ann@example.com"}))
            .await
            .status(),
        202
    );
    t.eventually("a second look-up mail", || async {
        to_ann(&dir).len() == 2
    })
    .await;

    // A day on, the first link no longer works.
    t.advance(Duration::from_secs(24 * 3600));
    let r = t
        .get(&format!("/s/{}/orders/mine?token={token}", org.slug), None)
        .await;
    assert_eq!(r.status(), 404);

    // Bad input.
    for body in [
        json!({"email": "not an address"}),
        json!({}),
        json!({"email": 42}),
        json!({"email": "a@example.com", "extra": 1}),
        json!(["ann@example.com"]),
    ] {
        let r = ask(&t, &org, body.clone()).await;
        assert_eq!(r.status(), 422, "{body}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    t.stop().await;
}
