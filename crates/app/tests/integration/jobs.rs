//! The durable job queue on both backends, under contention.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use kernel::jobs::{NewJob, Worker};

use crate::{both, support::*};

both!(many_workers_run_each_job_exactly_once);
async fn many_workers_run_each_job_exactly_once(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let db = t.app().db().clone();
    let clock = t.clock().clone();
    let queue = "test";
    for n in 0..60 {
        kernel::jobs::enqueue(
            &db,
            &clock,
            &NewJob::new(queue, "test.count", serde_json::json!({ "n": n })),
        )
        .await
        .unwrap();
    }
    // The same unique key twice while waiting: one job.
    let once =
        NewJob::new(queue, "test.count", serde_json::json!({ "n": 1000 })).unique("only-once");
    kernel::jobs::enqueue(&db, &clock, &once).await.unwrap();
    kernel::jobs::enqueue(&db, &clock, &once).await.unwrap();

    let seen: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
    let s = seen.clone();
    let worker = Worker::new().handle("test.count", move |(), p| {
        let s = s.clone();
        async move {
            let n = p["n"].as_i64().ok_or("no n")?;
            *s.lock().unwrap().entry(n).or_default() += 1;
            Ok(())
        }
    });
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (worker, db, clock) = (worker.clone(), db.clone(), clock.clone());
        tasks.push(tokio::spawn(async move {
            while worker.run_one(&(), &db, &clock, queue).await.unwrap() {}
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let counts = seen.lock().unwrap().clone();
    assert_eq!(counts.len(), 61);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    t.stop().await;
}
