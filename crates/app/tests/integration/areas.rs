//! General-admission areas inside a seat map: a place on the map with a
//! capacity, sold by quantity through ticket types without seats, kept by a
//! quota the map owns. Never sold past its capacity under contention; its
//! capacity changed by storing the map again; bad areas refused naming the
//! area, nothing stored.

use serde_json::{Value, json};

use crate::{both, support::*};

async fn put_map(t: &TestApp, org: &Org, event: &str, map: &Value) -> reqwest::Response {
    t.api
        .client
        .put(t.url(&format!("/api/v1/orgs/{}/events/{event}/seating", org.slug)))
        .bearer_auth(&org.key)
        .json(map)
        .send()
        .await
        .unwrap()
}

async fn ticket_type(t: &TestApp, org: &Org, event: &str, name: &str, capacity: i64) -> String {
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{event}/ticket-types", org.slug),
            Some(&org.key),
            json!({"name": name, "price_cents": 0, "currency": "ZAR", "capacity": capacity}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// One row of three seats of `seated`, and an area "Floor" of `capacity`
/// sold as `standing`.
fn map(seated: &str, standing: &[&str], capacity: i64) -> Value {
    let seats: Vec<Value> = (0..3)
        .map(|i| json!({"label": (i + 1).to_string(), "x": i as f64, "y": 0.0, "ticket_type_id": seated}))
        .collect();
    json!({"sections": [{"name": "Stalls", "rows": [{"label": "A", "seats": seats}]}],
           "areas": [{"name": "Floor", "x": 0.0, "y": 3.0, "width": 8.0, "height": 4.0,
                      "capacity": capacity, "ticket_type_ids": standing}]})
}

async fn store_seats(t: &TestApp, org: &Org, event: &str) -> Value {
    let r = t
        .get(
            &format!("/api/v1/store/{}/events/{event}/seats", org.slug),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn quotas(t: &TestApp, org: &Org, event: &str) -> Vec<Value> {
    let v: Value = t
        .get(
            &format!("/api/v1/orgs/{}/events/{event}/quotas", org.slug),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    v["data"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| v.as_array().cloned().unwrap())
}

async fn hold(t: &TestApp, org: &Org, event: &str, body: Value) -> reqwest::Response {
    t.post(
        &format!("/api/v1/store/{}/events/{event}/holds", org.slug),
        None,
        body,
    )
    .await
}

/// Places the area has left, once the storefront's reading (kept half a
/// second) shows `want`.
async fn area_left_is(t: &TestApp, org: &Org, event: &str, want: i64) {
    let mut last = Value::Null;
    for _ in 0..40 {
        let s = store_seats(t, org, event).await;
        last = s["areas"][0]["available"].clone();
        if last == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("area left: {last}, wanted {want}");
}

both!(a_standing_area_sells_its_places_and_never_more);
async fn a_standing_area_sells_its_places_and_never_more(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 100).await;
    let (e, adult) = (event.id.as_str(), event.ticket_type.as_str());
    let student = ticket_type(&t, &org, e, "Student standing", 100).await;
    let seated = ticket_type(&t, &org, e, "Stalls", 10).await;

    let r = put_map(&t, &org, e, &map(&seated, &[adult, &student], 6)).await;
    assert_eq!(r.status(), 200);
    let stored: Value = r.json().await.unwrap();
    let area = &stored["areas"][0];
    assert_eq!(area["name"], "Floor");
    assert_eq!(area["capacity"], 6);
    let quota = area["quota_id"].as_str().unwrap().to_string();
    let q = quotas(&t, &org, e).await;
    let q = q
        .iter()
        .find(|q| q["id"] == quota.as_str())
        .expect("area quota");
    assert_eq!(q["capacity"], 6);
    assert_eq!(q["name"], "Floor (area)");

    // The storefront sees the area, with its places.
    let s = store_seats(&t, &org, e).await;
    assert_eq!(s["seats"].as_array().unwrap().len(), 3);
    assert_eq!(s["areas"][0]["available"], 6);
    assert_eq!(s["areas"][0]["capacity"], 6);
    let seat = s["seats"][0]["id"].as_str().unwrap().to_string();

    // One hold takes a seat and a place on the floor together.
    let r = hold(
        &t,
        &org,
        e,
        json!({"seats": [seat], "items": [{"ticket_type_id": adult, "quantity": 1}]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["seats"].as_array().unwrap().len(), 1);
    area_left_is(&t, &org, e, 5).await;

    // Thirty buyers at once, both standing types, for the five places left.
    let mut tasks = Vec::new();
    for i in 0..30 {
        let (api, slug, e, tt) = (
            t.api.clone(),
            org.slug.clone(),
            e.to_string(),
            if i % 2 == 0 {
                adult.to_string()
            } else {
                student.clone()
            },
        );
        tasks.push(tokio::spawn(async move {
            api.post(
                &format!("/api/v1/store/{slug}/events/{e}/holds"),
                None,
                json!({"items": [{"ticket_type_id": tt, "quantity": 1}]}),
            )
            .await
            .status()
            .as_u16()
        }));
    }
    let mut made = 0;
    for task in tasks {
        match task.await.unwrap() {
            201 => made += 1,
            409 => {}
            other => panic!("hold answered {other}"),
        }
    }
    assert_eq!(made, 5, "the floor holds six");
    area_left_is(&t, &org, e, 0).await;
    // The storefront says what each standing type has left: nothing.
    let ev: Value = t
        .get(&format!("/api/v1/store/{}/events/{e}", org.slug), None)
        .await
        .json()
        .await
        .unwrap();
    for ty in ev["ticket_types"].as_array().unwrap() {
        if ty["id"] == adult || ty["id"] == student.as_str() {
            assert_eq!(ty["available"], 0, "{ty}");
        }
    }
    // The ledger agrees: six places held, none more.
    let held = taken(&t, &[adult, &student]).await;
    assert_eq!(held, 6);

    // The area's quota is the map's: not removed by hand.
    problem(
        t.api
            .client
            .delete(t.url(&format!(
                "/api/v1/orgs/{}/events/{e}/quotas/{quota}",
                org.slug
            )))
            .bearer_auth(&org.key)
            .send()
            .await
            .unwrap(),
        409,
        "conflict",
    )
    .await;

    // Two more places: the map stored again with a capacity of 8 (a new
    // quota, counted from the ledger).
    let r = put_map(&t, &org, e, &map(&seated, &[adult, &student], 8)).await;
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["areas"][0]["id"], area["id"], "the area keeps its id");
    assert_ne!(again["areas"][0]["quota_id"], quota.as_str());
    let q = quotas(&t, &org, e).await;
    assert!(
        !q.iter().any(|q| q["id"] == quota.as_str()),
        "old quota gone"
    );
    area_left_is(&t, &org, e, 2).await;
    for want in [201, 201, 409] {
        let r = hold(
            &t,
            &org,
            e,
            json!({"items": [{"ticket_type_id": student, "quantity": 1}]}),
        )
        .await;
        assert_eq!(r.status(), want);
    }

    // The area's types are not held by seat, and seats not by quantity.
    problem(
        hold(
            &t,
            &org,
            e,
            json!({"best_available": {"ticket_type_id": adult, "quantity": 1}}),
        )
        .await,
        422,
        "validation",
    )
    .await;

    // Removed from the map: its quota goes with it.
    let mut without = map(&seated, &[adult], 8);
    without["areas"] = json!([]);
    assert_eq!(put_map(&t, &org, e, &without).await.status(), 200);
    let q = quotas(&t, &org, e).await;
    assert!(!q.iter().any(|q| q["name"] == "Floor (area)"), "{q:?}");
    // The storefront's reading is kept half a second.
    let mut left = usize::MAX;
    for _ in 0..40 {
        left = store_seats(&t, &org, e).await["areas"]
            .as_array()
            .unwrap()
            .len();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0);
    t.stop().await;
}

both!(bad_areas_are_refused_naming_the_area_nothing_stored);
async fn bad_areas_are_refused_naming_the_area_nothing_stored(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let other = t.signup().await;
    let event = t.event(&org, 100).await;
    let theirs = t.event(&other, 10).await;
    let (e, adult) = (event.id.as_str(), event.ticket_type.as_str());
    let seated = ticket_type(&t, &org, e, "Stalls", 10).await;
    let student = ticket_type(&t, &org, e, "Student", 10).await;
    assert_eq!(
        put_map(&t, &org, e, &map(&seated, &[adult], 5))
            .await
            .status(),
        200
    );
    let quotas_before = quotas(&t, &org, e).await.len();

    let with = |f: &dyn Fn(&mut Value)| {
        let mut m = map(&seated, &[adult], 5);
        f(&mut m);
        m
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            with(&|m| m["areas"][0]["ticket_type_ids"] = json!([seated])),
            "areas[0].ticket_type_ids[0]",
        ),
        (
            with(&|m| m["areas"][0]["ticket_type_ids"] = json!([theirs.ticket_type])),
            "areas[0].ticket_type_ids[0]",
        ),
        (
            with(&|m| m["areas"][0]["ticket_type_ids"] = json!([adult, adult])),
            "areas[0].ticket_type_ids[1]",
        ),
        (
            with(&|m| m["areas"][0]["ticket_type_ids"] = json!([])),
            "areas[0].ticket_type_ids",
        ),
        (
            with(&|m| m["areas"][0]["width"] = json!(0)),
            "areas[0].width",
        ),
        (
            with(&|m| m["areas"][0]["height"] = json!(1e9)),
            "areas[0].height",
        ),
        (
            with(&|m| m["areas"][0]["capacity"] = json!(-1)),
            "areas[0].capacity",
        ),
        (
            with(&|m| m["areas"][0]["name"] = json!("  ")),
            "areas[0].name",
        ),
        (
            with(&|m| {
                let mut second = m["areas"][0].clone();
                second["ticket_type_ids"] = json!([student]);
                m["areas"].as_array_mut().unwrap().push(second);
            }),
            "areas[1].name",
        ),
        (
            with(&|m| {
                let mut second = m["areas"][0].clone();
                second["name"] = json!("Lawn");
                m["areas"].as_array_mut().unwrap().push(second);
            }),
            "areas[1].ticket_type_ids[0]",
        ),
    ];
    for (body, field) in cases {
        let v = problem(put_map(&t, &org, e, &body).await, 422, "validation").await;
        assert!(
            v["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["field"] == field),
            "{field}: {v}"
        );
    }
    // Malformed: wrong types, unknown fields, a capacity of 10^12.
    for body in [
        with(&|m| m["areas"] = json!("floor")),
        with(&|m| m["areas"][0]["capacity"] = json!("six")),
        with(&|m| m["areas"][0]["colour"] = json!("red")),
        with(&|m| m["areas"][0]["ticket_type_ids"] = json!(["nope"])),
        with(&|m| m["areas"][0]["capacity"] = json!(1_000_000_000_000i64)),
    ] {
        let r = put_map(&t, &org, e, &body).await;
        assert!(matches!(r.status().as_u16(), 400 | 422), "{}", r.status());
    }
    // Nothing changed: the area as first stored, no quota added or lost.
    let s = store_seats(&t, &org, e).await;
    assert_eq!(s["areas"].as_array().unwrap().len(), 1);
    assert_eq!(s["areas"][0]["capacity"], 5);
    assert_eq!(quotas(&t, &org, e).await.len(), quotas_before);
    t.stop().await;
}

both!(a_series_date_gets_the_area_with_its_own_places);
async fn a_series_date_gets_the_area_with_its_own_places(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events", org.slug),
            Some(&org.key),
            json!({"name": "Festival", "starts_at": "2030-06-01T18:00:00Z",
                   "ends_at": "2030-06-30T22:00:00Z", "timezone": "Africa/Johannesburg",
                   "series": true}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let series: Value = r.json().await.unwrap();
    let s = series["id"].as_str().unwrap().to_string();
    let seated = ticket_type(&t, &org, &s, "Stalls", 10).await;
    let standing = ticket_type(&t, &org, &s, "Floor", 100).await;
    assert_eq!(
        put_map(&t, &org, &s, &map(&seated, &[&standing], 2))
            .await
            .status(),
        200
    );
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{s}/publish", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    let mut dates = Vec::new();
    for day in [5, 6] {
        let r = t
            .post(
                &format!("/api/v1/orgs/{}/events/{s}/dates", org.slug),
                Some(&org.key),
                json!({"starts_at": format!("2030-06-{day:02}T18:00:00Z"),
                       "ends_at": format!("2030-06-{day:02}T21:00:00Z")}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let d: Value = r.json().await.unwrap();
        dates.push(d);
    }
    for d in &dates {
        let id = d["id"].as_str().unwrap();
        let floor = d["ticket_types"]
            .as_array()
            .unwrap()
            .iter()
            .find(|ty| ty["name"] == "Floor")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let m: Value = t
            .get(
                &format!("/api/v1/orgs/{}/events/{id}/seating", org.slug),
                Some(&org.key),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(m["areas"][0]["ticket_type_ids"], json!([floor]));
        let q = quotas(&t, &org, id).await;
        assert!(
            q.iter().any(|q| q["id"] == m["areas"][0]["quota_id"]),
            "{q:?}"
        );
        // Each date has its own two places.
        for want in [201, 201, 409] {
            let r = hold(
                &t,
                &org,
                id,
                json!({"items": [{"ticket_type_id": floor, "quantity": 1}]}),
            )
            .await;
            assert_eq!(r.status(), want, "date {id}");
        }
    }
    t.stop().await;
}

both!(a_venue_layout_carries_its_areas_to_the_events_that_copy_it);
async fn a_venue_layout_carries_its_areas_to_the_events_that_copy_it(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let layouts = format!("/api/v1/orgs/{}/venue-layouts", org.slug);
    let seats = json!([{"name": "Stalls", "rows": [{"label": "A", "seats": [
        {"label": "1", "x": 0.0, "y": 0.0, "category": "Stalls"}]}]}]);
    // A category may not be both seats and standing places.
    let p = problem(
        t.post(
            &layouts,
            Some(&org.key),
            json!({"name": "Bad", "sections": seats, "areas": [{"name": "Floor",
                   "x": 0.0, "y": 2.0, "width": 5.0, "height": 3.0, "capacity": 4,
                   "categories": ["Stalls"]}]}),
        )
        .await,
        422,
        "validation",
    )
    .await;
    assert!(p.to_string().contains("areas[0].categories[0]"), "{p}");
    let r = t
        .post(
            &layouts,
            Some(&org.key),
            json!({"name": "Club", "sections": seats, "areas": [{"name": " Floor ",
                   "x": 0.0, "y": 2.0, "width": 5.0, "height": 3.0, "capacity": 4,
                   "categories": ["Standing"]}]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let layout: Value = r.json().await.unwrap();
    assert_eq!(layout["categories"], json!(["Stalls", "Standing"]));
    assert_eq!(layout["areas"][0]["name"], "Floor");

    let event = t.event(&org, 50).await;
    let e = event.id.as_str();
    let stalls = ticket_type(&t, &org, e, "Stalls", 10).await;
    let from = format!("/api/v1/orgs/{}/events/{e}/seating/from-layout", org.slug);
    // The area's category must be mapped too.
    let p = problem(
        t.post(
            &from,
            Some(&org.key),
            json!({"layout_id": layout["id"], "ticket_types": {"Stalls": stalls}}),
        )
        .await,
        422,
        "validation",
    )
    .await;
    assert!(p.to_string().contains("ticket_types.Standing"), "{p}");
    let r = t
        .post(
            &from,
            Some(&org.key),
            json!({"layout_id": layout["id"],
                   "ticket_types": {"Stalls": stalls, "Standing": event.ticket_type}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["areas"][0]["ticket_type_ids"], json!([event.ticket_type]));
    assert_eq!(m["areas"][0]["capacity"], 4);
    // The copy's area sells its four places.
    for want in [201, 409] {
        let r = hold(
            &t,
            &org,
            e,
            json!({"items": [{"ticket_type_id": event.ticket_type, "quantity": 4}]}),
        )
        .await;
        assert_eq!(r.status(), want);
    }
    // Kept again as a layout: the area comes along, named by type.
    let r = t
        .post(
            &format!(
                "/api/v1/orgs/{}/events/{e}/seating/save-as-layout",
                org.slug
            ),
            Some(&org.key),
            json!({"name": "Club again"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["areas"][0]["name"], "Floor");
    assert_eq!(again["areas"][0]["capacity"], 4);
    assert_eq!(again["areas"][0]["categories"].as_array().unwrap().len(), 1);
    t.stop().await;
}
