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
    let platform::sales::Reserve::Taken(epoch) = inv
        .reserve(app, &tenant, ev, &[(tt, 3)], None)
        .await
        .unwrap()
    else {
        panic!("not taken")
    };
    assert_eq!(t.available(&org, &event).await, 5, "the leak shows");
    let repaired = integrity::reconcile_only(app, Some(org_id), Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(repaired.len(), 1);
    assert_eq!((repaired[0].counter_was, repaired[0].ledger_says), (5, 8));
    assert_eq!(t.available(&org, &event).await, 8, "repaired");

    // A release counted twice: the counter says more than the ledger allows.
    inv.release(app, org_id, ev, epoch, &[(tt, 4)], None, None)
        .await
        .unwrap();
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

/// A Redis counter is trusted only in its epoch: once a hold was taken from
/// the ledger (Redis away on some node: the epoch moved on), a counter that
/// says more than the ledger allows is never sold from again — the
/// reservation made against it is refused at its write, and the next
/// epoch's counter is loaded from the ledger. On the embedded tier (no
/// Redis, one process) epochs do not apply; the counter is the process's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_counter_of_an_epoch_gone_by_is_never_sold_from() {
    if !postgres_configured() {
        eprintln!("VOELGOED_TEST_DATABASE_URL / VOELGOED_TEST_REDIS_URL unset: not run here");
        return;
    }
    let t = TestApp::spawn(Backend::Postgres).await;
    let org = t.signup().await;
    let event = t.event(&org, 10).await;
    assert_eq!(t.hold(&org, &event, 4).await.status(), 201);
    assert_eq!(t.available(&org, &event).await, 6);
    let app = t.app();
    let org_id: kernel::ids::OrgId = kernel::db_run!(app.db(), p => sqlx::query_scalar("SELECT id FROM orgs WHERE slug = $1").bind(&org.slug).fetch_one(p).await).unwrap();
    let ev: kernel::ids::EventId = event.id.parse().unwrap();
    let tt: kernel::ids::TicketTypeId = event.ticket_type.parse().unwrap();
    let epoch: i64 = kernel::db_run!(app.db(), p => sqlx::query_scalar("SELECT epoch FROM holds WHERE event_id = $1").bind(ev).fetch_one(p).await).unwrap();
    // The counter lies high (as one Redis kept while others sold from the
    // ledger would)...
    app.state::<Inventory>()
        .release(app, org_id, ev, Some(epoch), &[(tt, 9)], None, None)
        .await
        .unwrap();
    assert_eq!(t.available(&org, &event).await, 15);
    // ...and a node without Redis took a hold from the ledger: the epoch
    // moved on.
    kernel::db_run!(app.db(), p => sqlx::query("UPDATE inventory_epoch SET epoch = epoch + 1").execute(p).await.map(|_| ())).unwrap();
    // 7 > the 6 the ledger allows: the stale counter would sell them; the
    // write is refused, the node learns the epoch, the ledger says no.
    assert_eq!(t.hold(&org, &event, 7).await.status(), 409);
    assert_eq!(t.available(&org, &event).await, 6);
    assert_eq!(t.hold(&org, &event, 6).await.status(), 201);
    assert_eq!(t.hold(&org, &event, 1).await.status(), 409);
    let newer: i64 = kernel::db_run!(app.db(), p => sqlx::query_scalar("SELECT MAX(epoch) FROM holds WHERE event_id = $1").bind(ev).fetch_one(p).await).unwrap();
    assert!(newer > epoch, "the new hold was not taken in the new epoch");
    t.stop().await;
}

/// The guard a Redis-reserved hold is written under, raced against a hold
/// taken from the ledger on PostgreSQL: a group whose guard waited for the
/// ledger transaction to commit sees the epoch that transaction moved on
/// (and writes nothing), never the one it started with.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_epoch_guard_that_waited_sees_the_epoch_moved() {
    if !postgres_configured() {
        eprintln!("VOELGOED_TEST_DATABASE_URL / VOELGOED_TEST_REDIS_URL unset: not run here");
        return;
    }
    let t = TestApp::spawn(Backend::Postgres).await;
    let db = t.app().db().clone();
    let before = platform::sales::store_epoch(&db).await.unwrap();
    // The ledger's side: the epoch moved on, not yet committed.
    let mut ledger = db.begin().await.unwrap();
    platform::sales::fence_epoch(&mut ledger).await.unwrap();
    // A group's side: its guard waits for the ledger's transaction.
    let guard = tokio::spawn({
        let db = db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            let pass = platform::sales::epoch_guard(before)
                .exists_in(&mut tx)
                .await
                .unwrap();
            tx.rollback().await.unwrap();
            pass
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !guard.is_finished(),
        "the guard did not wait for the ledger"
    );
    ledger.commit().await.unwrap();
    assert!(
        !guard.await.unwrap(),
        "the guard passed with the epoch the ledger moved on"
    );
    // The same through group commit, where the guard is a part of the
    // group's one statement, its writes the others.
    let before = platform::sales::store_epoch(&db).await.unwrap();
    let mut ledger = db.begin().await.unwrap();
    platform::sales::fence_epoch(&mut ledger).await.unwrap();
    let marker = kernel::Stmt::new(
        "INSERT INTO idempotency_keys (org_id, scope, key, request_hash, created_at)
         VALUES ($1, 'test.guard', 'marker', $2, 0)",
    )
    .bind(uuid::Uuid::nil())
    .bind(vec![1u8]);
    let grouped = tokio::spawn({
        let db = db.clone();
        async move {
            db.enqueue_guarded(platform::sales::epoch_guard(before), vec![marker])
                .await
                .unwrap()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !grouped.is_finished(),
        "the grouped guard did not wait for the ledger"
    );
    ledger.commit().await.unwrap();
    assert!(
        !grouped.await.unwrap(),
        "the grouped write was made with the epoch the ledger moved on"
    );
    let written: i64 = kernel::db_run!(&db, p => sqlx::query_scalar("SELECT COUNT(*) FROM idempotency_keys WHERE scope = 'test.guard'").fetch_one(p).await).unwrap();
    assert_eq!(written, 0, "the guarded write was made");
    t.stop().await;
}

/// A Redis that keeps an epoch this database never had (the database was
/// restored, or made anew, while Redis lived on): its counters are not
/// trusted; the database's epoch moves past it and sales go on from
/// counters loaded from the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_ahead_of_the_database_is_not_trusted() {
    if !postgres_configured() {
        eprintln!("VOELGOED_TEST_DATABASE_URL / VOELGOED_TEST_REDIS_URL unset: not run here");
        return;
    }
    let t = TestApp::spawn(Backend::Postgres).await;
    let db = t.app().db().clone();
    let name: String = kernel::db_run!(&db, p => sqlx::query_scalar("SELECT deployment FROM inventory_epoch").fetch_one(p).await).unwrap();
    let ahead = platform::sales::store_epoch(&db).await.unwrap() + 50;
    let set = std::process::Command::new("redis-cli")
        .args(["-u", &std::env::var("VOELGOED_TEST_REDIS_URL").unwrap()])
        .args(["SET", &format!("inv:epoch:{name}"), &ahead.to_string()])
        .output()
        .expect("redis-cli runs (scripts/test.sh installs redis-tools)");
    assert!(set.status.success());
    let org = t.signup().await;
    let event = t.event(&org, 5).await;
    assert_eq!(t.hold(&org, &event, 3).await.status(), 201);
    assert_eq!(t.available(&org, &event).await, 2);
    assert_eq!(t.hold(&org, &event, 3).await.status(), 409);
    let now = platform::sales::store_epoch(&db).await.unwrap();
    assert!(
        now > ahead,
        "the database's epoch {now} did not move past {ahead}"
    );
    let held: Option<i64> =
        kernel::db_run!(&db, p => sqlx::query_scalar("SELECT epoch FROM holds").fetch_one(p).await)
            .unwrap();
    assert_eq!(
        held,
        Some(now),
        "the hold was taken from Redis, in the new epoch"
    );
    t.stop().await;
}
