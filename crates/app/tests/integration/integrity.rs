//! Inventory reconciliation: a counter that drifted from the ledger (a node
//! died between reserving and writing its hold, or a release counted twice)
//! is found and put right; a counter in step is left alone.

use std::time::Duration;

use platform::sales::{Inventory, integrity};

use crate::{both, support::*};

both!(drifted_counters_are_repaired_from_the_ledger);
async fn drifted_counters_are_repaired_from_the_ledger(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    t.buy(&org, &event, 2).await;
    assert_eq!(t.available(&org, &event).await, 8);
    let app = t.app();
    let org_id: kernel::ids::OrgId = kernel::db_run!(app.db(), p => sqlx::query_scalar("SELECT id FROM orgs WHERE slug = $1").bind(&org.slug).fetch_one(p).await).unwrap();
    assert!(
        integrity::reconcile_only(t.app(), Some(org_id), Duration::from_millis(50))
            .await
            .unwrap()
            .is_empty(),
        "nothing to repair when in step"
    );

    // A node reserves 3 and dies before writing its hold.
    let tenant = platform::identity::upkeep_tenant(app, org_id)
        .await
        .unwrap()
        .unwrap();
    let ev: kernel::ids::EventId = event.id.parse().unwrap();
    let tt: kernel::ids::TicketTypeId = event.ticket_type.parse().unwrap();
    let inv = app.state::<Inventory>();
    assert!(matches!(
        inv.reserve(app, &tenant, ev, &[(tt, 3)]).await.unwrap(),
        platform::sales::Reserve::Taken
    ));
    assert_eq!(t.available(&org, &event).await, 5, "the leak shows");
    let repaired = integrity::reconcile_only(app, Some(org_id), Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(repaired.len(), 1);
    assert_eq!((repaired[0].counter_was, repaired[0].ledger_says), (5, 8));
    assert_eq!(t.available(&org, &event).await, 8, "repaired");

    // A release counted twice: the counter says more than the ledger allows.
    inv.release(org_id, ev, &[(tt, 4)]).await.unwrap();
    assert_eq!(
        t.available(&org, &event).await,
        12,
        "more than the capacity allows"
    );
    let repaired = integrity::reconcile_only(app, Some(org_id), Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!((repaired[0].counter_was, repaired[0].ledger_says), (12, 8));
    assert_eq!(t.available(&org, &event).await, 8);
    // And it sells exactly what is left.
    assert_eq!(t.hold(&org, &event, 9).await.status(), 409);
    assert_eq!(t.hold(&org, &event, 8).await.status(), 201);
    t.stop().await;
}
