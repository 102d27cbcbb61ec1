//! Series: one event on several dates, each with its own inventory, seats
//! and check-in, sharing the series' ticket types (changed once, on every
//! date) and vouchers (one count of uses across the dates).

use serde_json::{Value, json};

use crate::{both, support::*};

async fn series(t: &TestApp, org: &Org, price_cents: i64) -> (String, String) {
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events", org.slug),
            Some(&org.key),
            json!({"name": "Hamlet", "starts_at": "2030-06-01T18:00:00Z",
                   "ends_at": "2030-06-30T22:00:00Z", "timezone": "Africa/Johannesburg",
                   "series": true}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["series"], true);
    let id = e["id"].as_str().unwrap().to_string();
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{id}/ticket-types", org.slug),
            Some(&org.key),
            json!({"name": "Stalls", "price_cents": price_cents, "currency": "ZAR", "capacity": 2}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let tt: Value = r.json().await.unwrap();
    (id, tt["id"].as_str().unwrap().to_string())
}

async fn add_date(t: &TestApp, org: &Org, series: &str, day: u32) -> reqwest::Response {
    t.post(
        &format!("/api/v1/orgs/{}/events/{series}/dates", org.slug),
        Some(&org.key),
        json!({"starts_at": format!("2030-06-{day:02}T18:00:00Z"),
               "ends_at": format!("2030-06-{day:02}T21:00:00Z")}),
    )
    .await
}

/// A date as the helpers take it: its id and its copy of the series' type.
async fn date(t: &TestApp, org: &Org, series: &str, day: u32) -> Event {
    let r = add_date(t, org, series, day).await;
    assert_eq!(r.status(), 201);
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["series_id"], series);
    Event {
        id: d["id"].as_str().unwrap().to_string(),
        ticket_type: d["ticket_types"][0]["id"].as_str().unwrap().to_string(),
    }
}

/// The series' dates as the organizer lists them.
async fn dates(t: &TestApp, org: &Org, series: &str) -> Vec<Value> {
    let r: Value = t
        .get(
            &format!("/api/v1/orgs/{}/events/{series}/dates", org.slug),
            Some(&org.key),
        )
        .await
        .json()
        .await
        .unwrap();
    r["data"].as_array().unwrap().clone()
}

async fn event(t: &TestApp, org: &Org, id: &str) -> Value {
    t.get(
        &format!("/api/v1/orgs/{}/events/{id}", org.slug),
        Some(&org.key),
    )
    .await
    .json()
    .await
    .unwrap()
}

async fn store(t: &TestApp, org: &Org, id: &str) -> Value {
    let r = t
        .get(&format!("/api/v1/store/{}/events/{id}", org.slug), None)
        .await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

both!(each_date_sells_its_own_inventory_and_admits_at_its_own_gate);
async fn each_date_sells_its_own_inventory_and_admits_at_its_own_gate(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let (series, stalls) = series(&t, &org, 0).await;
    let first = date(&t, &org, &series, 5).await;
    let second = date(&t, &org, &series, 6).await;
    // Both dates carry a copy of the type that follows the series' one.
    let dates = dates(&t, &org, &series).await;
    assert_eq!(dates.len(), 2);
    assert_eq!(dates[0]["id"], first.id.as_str());
    for d in &dates {
        assert_eq!(d["status"], "draft");
        assert_eq!(d["ticket_types"][0]["template_id"], stalls.as_str());
        assert_eq!(d["ticket_types"][0]["capacity"], 2);
        assert_eq!(d["ticket_types"][0]["price_cents"], 0);
    }
    // Publishing the series publishes its dates.
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{series}/publish", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(event(&t, &org, &first.id).await["status"], "published");
    // A date added to a published series is on sale at once.
    let third = date(&t, &org, &series, 7).await;
    assert_eq!(event(&t, &org, &third.id).await["status"], "published");

    // The series itself is never sold.
    let on_series = Event {
        id: series.clone(),
        ticket_type: stalls.clone(),
    };
    let p = problem(t.hold(&org, &on_series, 1).await, 422, "validation").await;
    assert!(p.to_string().contains("event_id"), "{p}");

    // The first date sells out; the others do not notice.
    t.buy(&org, &first, 2).await;
    problem(t.hold(&org, &first, 1).await, 409, "sold_out").await;
    let order = t.buy(&org, &second, 1).await;
    assert_eq!(t.available(&org, &second).await, 1);
    assert_eq!(t.available(&org, &third).await, 2);
    let shown = store(&t, &org, &series).await;
    assert_eq!(shown["series"], true);
    let states: Vec<&str> = shown["dates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["sale_state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["sold_out", "on_sale", "on_sale"]);
    assert_eq!(shown["sale_state"], "on_sale");
    assert_eq!(
        shown["ticket_types"][0]["available"], 3,
        "left on all dates"
    );
    assert_eq!(store(&t, &org, &second.id).await["series_id"], series);

    // Check-in is the date's: its ticket admits at its own gate only.
    let device = t.device(&org, &[&first.id, &second.id]).await;
    let code = order["tickets"][0]["code"].as_str().unwrap();
    assert_eq!(
        t.scan(&device, code, &first.id).await["result"],
        "wrong_event"
    );
    assert_eq!(
        t.scan(&device, code, &second.id).await["result"],
        "admitted"
    );

    // A change of the series' type reaches every date; its capacity is
    // each date's own.
    let r = t
        .patch(
            &format!(
                "/api/v1/orgs/{}/events/{series}/ticket-types/{stalls}",
                org.slug
            ),
            Some(&org.key),
            json!({"name": "Orchestra stalls", "price_cents": 12000, "capacity": 50}),
        )
        .await;
    assert_eq!(r.status(), 200);
    for d in [&first, &second, &third] {
        let e = event(&t, &org, &d.id).await;
        assert_eq!(e["ticket_types"][0]["name"], "Orchestra stalls");
        assert_eq!(e["ticket_types"][0]["price_cents"], 12000);
        assert_eq!(e["ticket_types"][0]["capacity"], 2);
    }
    let r = t
        .patch(
            &format!(
                "/api/v1/orgs/{}/events/{}/ticket-types/{}",
                org.slug, first.id, first.ticket_type
            ),
            Some(&org.key),
            json!({"capacity": 3}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(t.hold(&org, &first, 1).await.status(), 201);
    assert_eq!(t.available(&org, &second).await, 1);

    // A type added to the series is every date's.
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{series}/ticket-types", org.slug),
            Some(&org.key),
            json!({"name": "Balcony", "price_cents": 5000, "currency": "ZAR", "capacity": 4}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let balcony: Value = r.json().await.unwrap();
    for d in [&first, &second, &third] {
        let e = event(&t, &org, &d.id).await;
        let names: Vec<&str> = e["ticket_types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"Balcony"), "{names:?}");
        assert!(
            e["ticket_types"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["template_id"] == balcony["id"])
        );
    }

    // Cancelling the series cancels every date.
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{series}/cancel", org.slug),
            Some(&org.key),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    for d in [&first, &second, &third] {
        assert_eq!(event(&t, &org, &d.id).await["status"], "cancelled");
    }
    problem(add_date(&t, &org, &series, 9).await, 422, "validation").await;
}

both!(a_series_voucher_counts_its_uses_across_dates);
async fn a_series_voucher_counts_its_uses_across_dates(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let (series, stalls) = series(&t, &org, 10000).await;
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{series}/vouchers", org.slug),
            Some(&org.key),
            json!({"code": "PREMIERE", "percent_off": 50, "max_uses": 1,
                   "ticket_type_ids": [stalls]}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let first = date(&t, &org, &series, 5).await;
    let second = date(&t, &org, &series, 6).await;
    t.post(
        &format!("/api/v1/orgs/{}/events/{series}/publish", org.slug),
        Some(&org.key),
        json!({}),
    )
    .await;
    let hold = |d: &Event| {
        let (t, org, tt, id) = (&t, &org, d.ticket_type.clone(), d.id.clone());
        async move {
            t.post(
                &format!("/api/v1/store/{}/events/{id}/holds", org.slug),
                None,
                json!({"items": [{"ticket_type_id": tt, "quantity": 1}], "voucher": "premiere"}),
            )
            .await
        }
    };
    let r = hold(&second).await;
    assert_eq!(r.status(), 201);
    let h: Value = r.json().await.unwrap();
    let o = t
        .checkout(&org, h["id"].as_str().unwrap(), None, "a@example.com")
        .await;
    assert_eq!(o.status(), 201);
    let o: Value = o.json().await.unwrap();
    assert_eq!(o["total_cents"], 5000, "half off the date's copy: {o}");
    // Its one use is gone on every date.
    let p = problem(hold(&first).await, 422, "validation").await;
    assert!(p.to_string().contains("used up"), "{p}");
}

both!(dates_have_their_own_seats_and_refuse_bad_input);
async fn dates_have_their_own_seats_and_refuse_bad_input(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let (series, stalls) = series(&t, &org, 10000).await;
    let r = t
        .api
        .client
        .put(t.url(&format!(
            "/api/v1/orgs/{}/events/{series}/seating",
            org.slug
        )))
        .bearer_auth(&org.key)
        .json(
            &json!({"sections": [{"name": "Stalls", "rows": [{"label": "A", "seats": [
            {"label": "1", "x": 0.0, "y": 0.0, "ticket_type_id": stalls},
            {"label": "2", "x": 30.0, "y": 0.0, "ticket_type_id": stalls}]}]}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let first = date(&t, &org, &series, 5).await;
    let second = date(&t, &org, &series, 6).await;
    t.post(
        &format!("/api/v1/orgs/{}/events/{series}/publish", org.slug),
        Some(&org.key),
        json!({}),
    )
    .await;
    // The same seat is sold once on each date.
    for d in [&first, &second] {
        let map: Value = t
            .get(
                &format!("/api/v1/orgs/{}/events/{}/seating", org.slug, d.id),
                Some(&org.key),
            )
            .await
            .json()
            .await
            .unwrap();
        let seat = map["sections"][0]["rows"][0]["seats"][0].clone();
        assert_eq!(seat["ticket_type_id"], d.ticket_type.as_str());
        let r = t
            .post(
                &format!("/api/v1/store/{}/events/{}/holds", org.slug, d.id),
                None,
                json!({"seats": [seat["id"]]}),
            )
            .await;
        assert_eq!(r.status(), 201, "seat on {}", d.id);
        let again = t
            .post(
                &format!("/api/v1/store/{}/events/{}/holds", org.slug, d.id),
                None,
                json!({"seats": [seat["id"]]}),
            )
            .await;
        assert_eq!(again.status(), 409);
    }

    // Bad input: not a series, a date of a date, bad times, unknown or
    // another tenant's series; nothing written.
    let plain = t.event(&org, 5).await;
    problem(add_date(&t, &org, &plain.id, 5).await, 422, "validation").await;
    problem(add_date(&t, &org, &first.id, 5).await, 422, "validation").await;
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{series}/dates", org.slug),
            Some(&org.key),
            json!({"starts_at": "2030-06-05T18:00:00Z", "ends_at": "2030-06-05T17:00:00Z"}),
        )
        .await;
    problem(r, 422, "validation").await;
    let r = t
        .post(
            &format!("/api/v1/orgs/{}/events/{series}/dates", org.slug),
            Some(&org.key),
            json!({"starts_at": "tomorrow", "ends_at": 5}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let other = t.signup().await;
    problem(add_date(&t, &other, &series, 5).await, 404, "not_found").await;
    problem(
        add_date(&t, &org, "0190f3f4-0000-7000-8000-000000000000", 5).await,
        404,
        "not_found",
    )
    .await;
    let dates = dates(&t, &org, &series).await;
    assert_eq!(dates.len(), 2);
}
