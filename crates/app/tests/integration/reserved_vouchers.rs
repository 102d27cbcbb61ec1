//! Vouchers that reserve their uses: made, their `max_uses` tickets leave
//! the ticket type's availability at once (409 when fewer are left); the
//! voucher's holders always find them, however many others race for the
//! rest; a lapsed voucher hold gives its tickets back to the reservation,
//! not to the public; when the voucher's time is up, what it did not use
//! goes back on sale. Checked against the ledger, not the replies.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};

use crate::{both, support::*};

async fn hold(t: &TestApp, org: &Org, event: &Event, code: Option<&str>) -> u16 {
    let mut body = json!({"items": [{"ticket_type_id": event.ticket_type, "quantity": 1}]});
    if let Some(c) = code {
        body["voucher"] = json!(c);
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

/// Tickets of the type in live holds (active or consumed), from the ledger.
async fn live(t: &TestApp, tt: &str) -> i64 {
    t.count(
        "SELECT CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT) FROM hold_items i
         JOIN holds h ON h.org_id = i.org_id AND h.id = i.hold_id
         WHERE i.ticket_type_id = $1 AND h.status IN ('active', 'consumed')",
        tt,
    )
    .await
}

both!(a_reserving_voucher_keeps_its_tickets_for_its_holders_until_it_expires);
async fn a_reserving_voucher_keeps_its_tickets_for_its_holders_until_it_expires(backend: Backend) {
    let t = Arc::new(TestApp::spawn(backend).await);
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    let path = format!("/api/v1/orgs/{}/events/{}/vouchers", org.slug, event.id);
    let until = kernel::clock::rfc3339(t.clock().now() + 3_600_000_000);
    let terms = |code: &str, uses: i64| {
        json!({"code": code, "percent_off": 0, "max_uses": uses, "valid_until": until,
               "ticket_type_ids": [event.ticket_type], "reserve": true})
    };

    // A reservation names one ticket type, and takes no more than is left.
    let mut all_types = terms("ALL", 2);
    all_types["ticket_type_ids"] = json!([]);
    let v = problem(
        t.post(&path, Some(&org.key), all_types).await,
        422,
        "validation",
    )
    .await;
    assert_eq!(v["errors"][0]["field"], "ticket_type_ids", "{v}");
    problem(
        t.post(&path, Some(&org.key), terms("TOOMANY", 11)).await,
        409,
        "conflict",
    )
    .await;
    let bulk = json!({"count": 3, "prefix": "B", "percent_off": 0, "max_uses": 4,
                      "ticket_type_ids": [event.ticket_type], "reserve": true});
    problem(
        t.post(&format!("{path}/bulk"), Some(&org.key), bulk).await,
        409,
        "conflict",
    )
    .await;
    assert_eq!(
        t.count(
            "SELECT COUNT(*) FROM vouchers WHERE event_id = $1",
            &event.id
        )
        .await,
        0,
        "nothing written"
    );

    let r = t.post(&path, Some(&org.key), terms("CREW", 4)).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["reserved"], true, "{v}");
    assert_eq!(t.available(&org, &event).await, 6);
    // The storefront opened with the code offers its holder the
    // reservation.
    assert_eq!(store_types(&t, &org, &event, Some("crew")).await[0].1, 4);

    // 120 buyers without the code and 4 with it, all at once: the four
    // find their tickets, the public takes the six others, no more.
    let barrier = Arc::new(tokio::sync::Barrier::new(124));
    let mut tasks = Vec::new();
    for i in 0..124 {
        let (t, org, event, barrier) = (t.clone(), org.clone(), event.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let code = (i % 31 == 0).then_some("crew");
            (code.is_some(), hold(&t, &org, &event, code).await)
        }));
    }
    let (mut crew, mut public) = (0, 0);
    for task in tasks {
        let (with_code, status) = task.await.unwrap();
        assert!(status == 201 || status == 409, "{status}");
        match (with_code, status) {
            (true, 201) => crew += 1,
            (false, 201) => public += 1,
            (true, _) => panic!("a crew member was refused"),
            _ => {}
        }
    }
    assert_eq!((crew, public), (4, 6));
    assert_eq!(live(&t, &event.ticket_type).await, 10);
    assert_eq!(t.available(&org, &event).await, 0);

    // Everything lapses: the public's six come back on sale, the crew's
    // four go back to the reservation.
    t.advance(Duration::from_secs(t.config().hold_ttl_secs as u64 + 1));
    t.eventually("the lapsed holds released", || async {
        live(&t, &event.ticket_type).await == 0
    })
    .await;
    assert_eq!(t.available(&org, &event).await, 6);
    let h: Value = t
        .post(
            &format!("/api/v1/store/{}/events/{}/holds", org.slug, event.id),
            None,
            json!({"items": [{"ticket_type_id": event.ticket_type, "quantity": 1}], "voucher": "CREW"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        t.available(&org, &event).await,
        6,
        "a crew hold takes none of the public's"
    );
    // Bought (a free ticket: paid at once), it stays taken.
    let o = t
        .checkout(&org, h["id"].as_str().unwrap(), None, "crew@example.com")
        .await;
    assert_eq!(o.status(), 201);
    let o: Value = o.json().await.unwrap();
    assert_eq!(o["status"], "paid", "{o}");

    // The voucher's time is up: the three unused come back on sale; the
    // crew hold still counts.
    t.advance(Duration::from_secs(3_600));
    t.eventually("the reservation ended", || async {
        t.available(&org, &event).await == 9
    })
    .await;
    let list: Value = t.get(&path, Some(&org.key)).await.json().await.unwrap();
    assert_eq!(list["data"][0]["reserved"], false, "{list}");
    assert_eq!(live(&t, &event.ticket_type).await, 1);
    Arc::try_unwrap(t).ok().expect("sole owner").stop().await;
}
