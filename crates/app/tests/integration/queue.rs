//! The waiting room: 5,000 visitors (1,000 before the on-sale opens) are
//! admitted in the documented order — the early ones in a random order
//! among themselves, then the later ones first come, first served — at the
//! configured rate, none before their turn; forged, early, expired and
//! reused passes and tokens are refused.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};

use crate::{both, support::*};

const RATE: i64 = 600; // per minute: 10 a second

async fn join(t: &TestApp, org: &Org, event: &Event) -> Value {
    let r = t
        .post(
            &format!("/api/v1/store/{}/events/{}/queue", org.slug, event.id),
            None,
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn put_room(t: &TestApp, org: &Org, event: &Event, body: Value) -> u16 {
    t.api
        .client
        .put(t.url(&format!(
            "/api/v1/orgs/{}/events/{}/waiting-room",
            org.slug, event.id
        )))
        .bearer_auth(&org.key)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn status(t: &TestApp, org: &Org, event: &Event, token: &str) -> reqwest::Response {
    t.get(
        &format!(
            "/api/v1/store/{}/events/{}/queue/{token}",
            org.slug, event.id
        ),
        None,
    )
    .await
}

async fn hold_with(t: &TestApp, org: &Org, event: &Event, pass: Option<&str>) -> u16 {
    let mut body = json!({"items": [{"ticket_type_id": event.ticket_type, "quantity": 1}]});
    if let Some(p) = pass {
        body["queue_pass"] = json!(p);
    }
    t.post(
        &format!("/api/v1/store/{}/events/{}/holds", org.slug, event.id),
        None,
        body,
    )
    .await
    .status()
    .as_u16()
}

/// Joins `n` visitors, `parallel` at a time; their (token, rank) in the
/// order they were sent, ranks read from the replies (the clock stands
/// still meanwhile, so `admitted_now` is the same for all).
async fn join_many(
    t: &Arc<TestApp>,
    org: &Org,
    event: &Event,
    n: usize,
    admitted_now: u64,
) -> Vec<(String, u64)> {
    let mut out = Vec::with_capacity(n);
    let mut batch = Vec::new();
    for i in 0..n {
        let (t2, org, event) = (t.clone(), org.clone(), event.clone());
        batch.push(tokio::spawn(async move { join(&t2, &org, &event).await }));
        if batch.len() == 32 || i + 1 == n {
            for j in batch.drain(..) {
                let s = j.await.unwrap();
                let rank = s["position"].as_u64().unwrap() + admitted_now - 1;
                assert_eq!(s["admitted"], false);
                out.push((s["token"].as_str().unwrap().to_string(), rank));
            }
        }
    }
    out
}

both!(five_thousand_visitors_are_let_through_in_order_at_the_rate);
async fn five_thousand_visitors_are_let_through_in_order_at_the_rate(backend: Backend) {
    let t = Arc::new(TestApp::spawn(backend).await);
    let org = t.signup().await;
    let event = t.event(&org, 10_000).await;
    let now = t.app().kernel.now();
    let opens = now + 60 * 1_000_000;
    assert_eq!(
        put_room(
            &t,
            &org,
            &event,
            json!({"enabled": true, "per_minute": RATE, "opens_at": kernel::clock::rfc3339(opens)})
        )
        .await,
        200
    );

    // With the room on, a hold needs a pass; the storefront page sends
    // visitors to the room.
    assert_eq!(hold_with(&t, &org, &event, None).await, 403);
    let page = t
        .api
        .client
        .get(t.url(&format!("/s/{}/events/{}", org.slug, event.id)))
        .send()
        .await
        .unwrap();
    assert!(page.url().path().ends_with("/queue"), "{}", page.url());

    // 1,000 before the opening: random places, 0..1000 (each early visitor
    // lands among the others, so the places are read once all are in).
    let joined = join_many(&t, &org, &event, 1000, 0).await;
    let mut early = Vec::with_capacity(joined.len());
    for (token, _) in joined {
        let s: Value = status(&t, &org, &event, &token).await.json().await.unwrap();
        early.push((token, s["position"].as_u64().unwrap() - 1));
    }
    let mut ranks: Vec<u64> = early.iter().map(|(_, r)| *r).collect();
    ranks.sort();
    assert!(
        ranks == (0..1000).collect::<Vec<_>>(),
        "early ones hold 0..1000"
    );
    // Arriving earlier gains nothing: the places do not follow arrival.
    let n = early.len() as f64;
    let mean = (n - 1.0) / 2.0;
    let cov: f64 = early
        .iter()
        .enumerate()
        .map(|(i, (_, r))| (i as f64 - mean) * (*r as f64 - mean))
        .sum();
    let var: f64 = (0..early.len()).map(|i| (i as f64 - mean).powi(2)).sum();
    let rho = cov / var;
    assert!(rho.abs() < 0.15, "early places follow arrival: {rho}");

    // The sale opens; a second in, 10 are through. 4,000 more join, in
    // order behind the early ones.
    t.advance(Duration::from_secs(61));
    let late = join_many(&t, &org, &event, 4000, 10).await;
    let mut ranks: Vec<u64> = late.iter().map(|(_, r)| *r).collect();
    ranks.sort();
    assert!(
        ranks == (1000..5000).collect::<Vec<_>>(),
        "late ones hold 1000..5000"
    );
    // First come, first served: one by one, each behind the one before.
    let mut last = 0;
    for _ in 0..20 {
        let s = join(&t, &org, &event).await;
        let rank = s["position"].as_u64().unwrap() + 9;
        assert!(rank > last || last == 0, "{rank} after {last}");
        last = rank;
    }

    // At the rate, none before their turn: at each step exactly the first
    // `admitted` ranks are through (a sample of 300 visitors, asked each
    // time, with those at the edge).
    let everyone: Vec<(String, u64)> = early.iter().chain(late.iter()).cloned().collect();
    let mut sample: Vec<(String, u64)> = everyone.iter().step_by(17).cloned().collect();
    for edge in [0u64, 9, 10, 599, 600, 1000, 1001, 2999, 3000, 4999] {
        sample.extend(everyone.iter().filter(|(_, r)| *r == edge).cloned());
    }
    let mut through = 10u64;
    for step in [59u64, 240, 300] {
        // `step` seconds later, 10 a second more.
        t.advance(Duration::from_secs(step));
        through += step * 10;
        for (token, rank) in &sample {
            let s: Value = status(&t, &org, &event, token).await.json().await.unwrap();
            assert_eq!(
                s["admitted"].as_bool().unwrap(),
                *rank < through,
                "rank {rank} with {through} through: {s}"
            );
            if *rank < through {
                assert_eq!(s["position"], 0);
            } else {
                assert_eq!(s["position"].as_u64().unwrap(), rank - through + 1);
                assert!(s["pass"].is_null());
            }
        }
    }

    // Rank 0's pass buys once; again, no.
    let first = &everyone.iter().find(|(_, r)| *r == 3000).unwrap().0;
    let s: Value = status(&t, &org, &event, first).await.json().await.unwrap();
    let pass = s["pass"]
        .as_str()
        .expect("a pass once admitted")
        .to_string();
    assert_eq!(hold_with(&t, &org, &event, Some(&pass)).await, 201);
    assert_eq!(
        hold_with(&t, &org, &event, Some(&pass)).await,
        403,
        "reused"
    );
    // A token is not a pass; a forged pass, truncated, or of another event.
    assert_eq!(hold_with(&t, &org, &event, Some(first)).await, 403);
    let mut forged = pass.clone();
    let last_char = forged.pop().unwrap();
    forged.push(if last_char == 'A' { 'B' } else { 'A' });
    assert_eq!(hold_with(&t, &org, &event, Some(&forged)).await, 403);
    assert_eq!(
        hold_with(&t, &org, &event, Some(&pass[..pass.len() - 3])).await,
        403
    );
    for bad in [
        "q1.AAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA",
        "nonsense",
        "q1..",
        "",
    ] {
        assert_eq!(status(&t, &org, &event, bad).await.status(), 404, "{bad}");
    }
    let other = t.event(&org, 10).await;
    assert_eq!(
        status(&t, &org, &other, first).await.status(),
        409,
        "another event has no room"
    );
    // A token of one event is nothing in another's room.
    assert_eq!(
        put_room(
            &t,
            &org,
            &other,
            json!({"enabled": true, "per_minute": RATE, "opens_at": kernel::clock::rfc3339(opens)})
        )
        .await,
        200
    );
    assert_eq!(status(&t, &org, &other, first).await.status(), 404);
    assert_eq!(hold_with(&t, &org, &other, Some(&pass)).await, 403);

    // An unused pass runs out ten minutes after its turn.
    let later = &everyone.iter().find(|(_, r)| *r == 3100).unwrap().0;
    let s: Value = status(&t, &org, &event, later).await.json().await.unwrap();
    let unused = s["pass"].as_str().unwrap().to_string();
    t.advance(Duration::from_secs(700));
    let s: Value = status(&t, &org, &event, later).await.json().await.unwrap();
    assert!(s["pass"].is_null(), "{s}");
    assert_eq!(hold_with(&t, &org, &event, Some(&unused)).await, 403);

    // Off again: holds need no pass.
    assert_eq!(
        put_room(
            &t,
            &org,
            &event,
            json!({"enabled": false, "per_minute": RATE})
        )
        .await,
        200
    );
    assert_eq!(hold_with(&t, &org, &event, None).await, 201);

    // Bad settings.
    for body in [
        json!({"enabled": true, "per_minute": RATE}),
        json!({"enabled": true, "per_minute": 0, "opens_at": "2026-12-01T09:00:00Z"}),
        json!({"enabled": true, "per_minute": RATE, "opens_at": "tomorrow"}),
        json!({"enabled": "yes", "per_minute": RATE}),
        json!({"enabled": true}),
    ] {
        assert_eq!(
            put_room(&t, &org, &event, body.clone()).await,
            422,
            "{body}"
        );
    }
    Arc::try_unwrap(t).ok().expect("sole owner").stop().await;
}
