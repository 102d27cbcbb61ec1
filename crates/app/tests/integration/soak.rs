//! Memory stays flat under load: the real binary, in its own process (so
//! nothing else in the test binary moves its memory), takes storms of
//! requests with nobody scraping `/metrics`; after a warm-up storm its
//! resident memory must stop growing.

use std::time::{Duration, Instant};

use crate::support::*;

async fn storm(api: &Api, seconds: u64, paths: &[String]) -> usize {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..32 {
        let (api, paths) = (api.clone(), paths.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            let mut i = w;
            while start.elapsed() < Duration::from_secs(seconds) {
                let p = &paths[i % paths.len()];
                if api.client.get(api.url(p)).send().await.is_ok() {
                    n += 1;
                }
                i += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_across_storms_without_a_metrics_scrape() {
    let dir = std::env::temp_dir().join(unique("voelgoed-soak"));
    let node = Binary::start(&dir, &[]).await;
    let api = node.api.clone();
    // Varied paths: matched, unmatched (404), and distinct unknown paths,
    // which must not each become a metric label.
    let mut paths = vec!["/healthz".to_string(), "/readyz".to_string()];
    for i in 0..50 {
        paths.push(format!("/no/such/path/{i}"));
    }
    let mut rss = Vec::new();
    let mut requests = 0;
    for _ in 0..7 {
        requests += storm(&api, 4, &paths).await;
        // Let the metrics upkeep (every second) run.
        tokio::time::sleep(Duration::from_secs(2)).await;
        rss.push(node.status_kib("VmRSS:"));
    }
    eprintln!("soak: {requests} requests; resident memory after each storm (KiB): {rss:?}");
    // After warm-up (the first four storms: glibc's allocator settles its
    // per-thread arenas over the first few, measured at up to 1.2 MiB a
    // storm while other tests load the machine), growth must stop: under
    // 2 MiB across the last three storms (measured: about 0.1 MiB a storm),
    // where histograms that are never folded grew by about 1 MiB a storm.
    let grown = rss[6].saturating_sub(rss[3]);
    assert!(
        grown < 2 * 1024,
        "resident memory grew {grown} KiB after warm-up: {rss:?}"
    );
    drop(node);
    let _ = std::fs::remove_dir_all(dir);
}
