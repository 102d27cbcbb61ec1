//! The waiting list: buyers of a sold-out type line up; tickets that come
//! back are offered to the first in line (a hold kept 48 h, its link
//! mailed); an offer not taken lapses and goes to the next; never more
//! offered than came back, in the order they joined.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{both, mail::read_messages, support::*};

async fn join(
    t: &TestApp,
    org: &Org,
    event: &Event,
    email: &str,
    quantity: i64,
) -> reqwest::Response {
    t.post(
        &format!(
            "/api/v1/store/{}/events/{}/waiting-list",
            org.slug, event.id
        ),
        None,
        json!({"ticket_type_id": event.ticket_type, "quantity": quantity,
               "email": email, "name": email.split('@').next().unwrap()}),
    )
    .await
}

/// The event's waiting list as the organizer sees it: (email, status, hold).
async fn line(t: &TestApp, org: &Org, event: &Event) -> Vec<(String, String, Option<String>)> {
    let v: Value = t
        .get(
            &format!(
                "/api/v1/orgs/{}/events/{}/waiting-list?limit=200",
                org.slug, event.id
            ),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["email"].as_str().unwrap().to_string(),
                e["status"].as_str().unwrap().to_string(),
                e["hold_id"].as_str().map(String::from),
            )
        })
        .collect()
}

fn status_of(line: &[(String, String, Option<String>)], email: &str) -> String {
    line.iter()
        .find(|(e, _, _)| e == email)
        .map(|(_, s, _)| s.clone())
        .unwrap_or_default()
}

both!(the_first_in_line_is_offered_what_comes_back_and_an_unused_offer_moves_on);
async fn the_first_in_line_is_offered_what_comes_back_and_an_unused_offer_moves_on(
    backend: Backend,
) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 1).await;
    // Tickets left: no line to join.
    problem(
        join(&t, &org, &event, "ann@example.com", 1).await,
        409,
        "conflict",
    )
    .await;
    let first = t.hold(&org, &event, 1).await;
    assert_eq!(first.status(), 201);

    let r = join(&t, &org, &event, "ann@example.com", 1).await;
    assert_eq!(r.status(), 201);
    let ann: Value = r.json().await.unwrap();
    assert_eq!(
        (ann["status"].as_str(), ann["position"].as_i64()),
        (Some("waiting"), Some(1))
    );
    let ben: Value = join(&t, &org, &event, "ben@example.com", 1)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ben["position"], 2);
    // Once per address and type; bad input named; another org's event unknown.
    problem(
        join(&t, &org, &event, "ann@example.com", 1).await,
        409,
        "conflict",
    )
    .await;
    for (body, field) in [
        (
            json!({"ticket_type_id": event.ticket_type, "quantity": 0, "email": "c@example.com", "name": "C"}),
            "quantity",
        ),
        (
            json!({"ticket_type_id": event.ticket_type, "quantity": 1, "email": "nope", "name": "C"}),
            "email",
        ),
        (
            json!({"ticket_type_id": uuid::Uuid::now_v7(), "quantity": 1, "email": "c@example.com", "name": "C"}),
            "ticket_type_id",
        ),
    ] {
        let p = problem(
            t.post(
                &format!(
                    "/api/v1/store/{}/events/{}/waiting-list",
                    org.slug, event.id
                ),
                None,
                body,
            )
            .await,
            422,
            "validation",
        )
        .await;
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    let other = t.signup().await;
    let r = t
        .post(
            &format!("/api/v1/store/{}/events/{}/waiting-list", other.slug, event.id),
            None,
            json!({"ticket_type_id": event.ticket_type, "quantity": 1, "email": "c@example.com", "name": "C"}),
        )
        .await;
    problem(r, 404, "not_found").await;

    // The first hold lapses: its ticket is offered to Ann, not to Ben.
    t.advance(Duration::from_secs(t.config().hold_ttl_secs as u64 + 1));
    t.eventually("Ann offered", || async {
        status_of(&line(&t, &org, &event).await, "ann@example.com") == "offered"
    })
    .await;
    let now = line(&t, &org, &event).await;
    assert_eq!(status_of(&now, "ben@example.com"), "waiting");
    let ann_hold = now[0].2.clone().expect("the hold kept for Ann");
    assert_eq!(store_types(&t, &org, &event, None).await[0].1, 0);
    // Her mail links to the hold.
    let dir = t.config().data_dir.join("mail");
    t.eventually("Ann's offer mail", || async {
        read_messages(&dir)
            .iter()
            .any(|m| m.body.contains(&format!("/holds/{ann_hold}")))
    })
    .await;

    // She lets it lapse (48 h): the ticket goes to Ben, who takes it.
    t.advance(Duration::from_secs(48 * 3600 + 1));
    t.eventually("Ben offered", || async {
        let l = line(&t, &org, &event).await;
        status_of(&l, "ann@example.com") == "lapsed"
            && status_of(&l, "ben@example.com") == "offered"
    })
    .await;
    let ben_hold = line(&t, &org, &event)
        .await
        .into_iter()
        .find(|(e, _, _)| e == "ben@example.com")
        .and_then(|(_, _, h)| h)
        .unwrap();
    assert_eq!(
        t.checkout(&org, &ben_hold, None, "ben@example.com")
            .await
            .status(),
        201
    );
    t.eventually("Ben bought", || async {
        status_of(&line(&t, &org, &event).await, "ben@example.com") == "bought"
    })
    .await;
    t.stop().await;
}

both!(what_comes_back_goes_to_the_first_in_line_and_never_more);
async fn what_comes_back_goes_to_the_first_in_line_and_never_more(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    assert_eq!(t.hold(&org, &event, 10).await.status(), 201);
    // Thirty join; the first one wants two, the rest one each.
    for i in 0..30 {
        let q = if i == 0 { 2 } else { 1 };
        let r = join(&t, &org, &event, &format!("p{i:02}@example.com"), q).await;
        assert_eq!(r.status(), 201, "p{i:02}");
        t.advance(Duration::from_millis(1)); // a clear order of joining
    }
    t.advance(Duration::from_secs(t.config().hold_ttl_secs as u64 + 1));
    // Ten back: p00 (two) and the next eight (one each).
    t.eventually("ten tickets offered", || async {
        line(&t, &org, &event)
            .await
            .iter()
            .filter(|(_, s, _)| s == "offered")
            .count()
            == 9
    })
    .await;
    // A moment more: nothing else is offered (none left).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let l = line(&t, &org, &event).await;
    let offered: Vec<&str> = l
        .iter()
        .filter(|(_, s, _)| s == "offered")
        .map(|(e, _, _)| e.as_str())
        .collect();
    let want: Vec<String> = (0..9).map(|i| format!("p{i:02}@example.com")).collect();
    let mut got: Vec<&str> = offered.clone();
    got.sort_unstable();
    assert_eq!(got, want.iter().map(String::as_str).collect::<Vec<_>>());
    // The ledger: never more held than the capacity.
    let held = taken(&t, &[&event.ticket_type]).await;
    assert_eq!(held, 10);
    assert_eq!(store_types(&t, &org, &event, None).await[0].1, 0);
    t.stop().await;
}

both!(an_event_sets_its_offer_time_and_a_buyer_leaves_the_line_with_their_key);
async fn an_event_sets_its_offer_time_and_a_buyer_leaves_the_line_with_their_key(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 1).await;
    let limits = format!("/api/v1/orgs/{}/events/{}/sales-limits", org.slug, event.id);
    let put = |body: Value| {
        let (t, org, limits) = (&t, &org, limits.clone());
        async move {
            t.api
                .client
                .put(t.url(&limits))
                .bearer_auth(&org.key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    // Offers held two hours; out of range is named.
    for bad in [json!(0), json!(337), json!("two")] {
        let r = put(json!({"waitlist_offer_hours": bad})).await;
        assert!(matches!(r.status().as_u16(), 400 | 422), "{}", r.status());
    }
    let r = put(json!({"waitlist_offer_hours": 2})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["waitlist_offer_hours"], 2);

    assert_eq!(t.hold(&org, &event, 1).await.status(), 201);
    let mut keys = Vec::new();
    for who in ["ann", "ben", "cat"] {
        let r = join(&t, &org, &event, &format!("{who}@example.com"), 1).await;
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        let key = v["leave_key"].as_str().unwrap().to_string();
        assert!(key.starts_with("wl."));
        keys.push((v["id"].as_str().unwrap().to_string(), key));
        t.advance(Duration::from_millis(1));
    }
    let leave = |id: &str, key: &str| {
        let (t, org, id, key) = (&t, &org, id.to_string(), key.to_string());
        async move {
            t.post(
                &format!("/api/v1/store/{}/waiting-list/{id}/leave", org.slug),
                None,
                json!({"key": key}),
            )
            .await
        }
    };
    // Ann leaves: another's key, a forged one, or none opens nothing.
    let (ann, ann_key) = keys[0].clone();
    problem(leave(&ann, &keys[1].1).await, 404, "not_found").await;
    problem(leave(&ann, "wl.forged").await, 404, "not_found").await;
    let r = t
        .post(
            &format!("/api/v1/store/{}/waiting-list/{ann}/leave", org.slug),
            None,
            json!({}),
        )
        .await;
    assert!(matches!(r.status().as_u16(), 400 | 422), "{}", r.status());
    // Another org's storefront does not know the entry.
    let other = t.signup().await;
    let r = t
        .post(
            &format!("/api/v1/store/{}/waiting-list/{ann}/leave", other.slug),
            None,
            json!({"key": ann_key}),
        )
        .await;
    problem(r, 404, "not_found").await;
    for _ in 0..2 {
        let r = leave(&ann, &ann_key).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["status"], "left");
    }
    // Ben is first now: the ticket that comes back is his, held two hours.
    t.advance(Duration::from_secs(t.config().hold_ttl_secs as u64 + 1));
    t.eventually("Ben offered", || async {
        status_of(&line(&t, &org, &event).await, "ben@example.com") == "offered"
    })
    .await;
    let l = line(&t, &org, &event).await;
    assert_eq!(status_of(&l, "ann@example.com"), "left");
    assert_eq!(status_of(&l, "cat@example.com"), "waiting");
    let v: Value = t
        .get(
            &format!("/api/v1/orgs/{}/events/{}/waiting-list", org.slug, event.id),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    let ben = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["email"] == "ben@example.com")
        .unwrap()
        .clone();
    let expires = kernel::clock::parse_rfc3339(ben["offer_expires_at"].as_str().unwrap()).unwrap();
    let held_for = expires - t.clock().now();
    assert!(
        ((2 * 3600 - 60) * 1_000_000..=2 * 3600 * 1_000_000).contains(&held_for),
        "held for {held_for} µs"
    );
    // An offer stands: leaving now is refused (take it or let it run out).
    problem(leave(&keys[1].0, &keys[1].1).await, 409, "conflict").await;
    // Two hours on, it lapses and goes to Cat.
    t.advance(Duration::from_secs(2 * 3600 + 1));
    t.eventually("Cat offered", || async {
        status_of(&line(&t, &org, &event).await, "cat@example.com") == "offered"
    })
    .await;
    t.stop().await;
}
