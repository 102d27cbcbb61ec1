//! The test kit (`voelgoed::testkit`) and the macro that runs a story on
//! both backends.

pub use voelgoed::testkit::*;

/// Declares a test that runs once on each backend. Without PostgreSQL and
/// Redis configured the second variant says so on stderr — and fails under
/// CI, where they must be there.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres_and_redis() {
                if $crate::support::postgres_configured() {
                    super::$name($crate::support::Backend::Postgres).await
                } else {
                    eprintln!("VOELGOED_TEST_DATABASE_URL / VOELGOED_TEST_REDIS_URL unset: PostgreSQL variant not run here");
                }
            }
        }
    };
}

/// The real `voelgoed` binary serving on a free loopback port in a process
/// of its own (so nothing else in this test binary moves its memory, and it
/// can be killed); SIGKILLed when dropped.
pub struct Binary {
    child: std::process::Child,
    pub api: Api,
}

impl Binary {
    /// `voelgoed serve` on `data_dir` with these environment variables (logs
    /// at `error`), once it answers `/healthz`.
    pub async fn start(data_dir: &std::path::Path, env: &[(&str, &str)]) -> Binary {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_voelgoed"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .env("VOELGOED_DATA_DIR", data_dir)
            .env("VOELGOED_LOG", "error")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the voelgoed binary starts");
        let node = Binary {
            child,
            api: Api::new(format!("http://127.0.0.1:{port}")),
        };
        for _ in 0..100 {
            if node
                .api
                .client
                .get(node.api.url("/healthz"))
                .send()
                .await
                .is_ok()
            {
                return node;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the node did not come up");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of the process's `/proc/<pid>/status` in KiB (`VmRSS:`,
    /// `VmHWM:`); 0 when it cannot be read.
    pub fn status_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The storefront's ticket types in its order, each with what is left
/// (`?voucher=` when given: hidden types it unlocks too).
pub async fn store_types(
    t: &TestApp,
    org: &Org,
    event: &Event,
    voucher: Option<&str>,
) -> Vec<(String, i64)> {
    let q = voucher.map(|v| format!("?voucher={v}")).unwrap_or_default();
    let s: serde_json::Value = t
        .get(
            &format!("/api/v1/store/{}/events/{}{q}", org.slug, event.id),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    s["ticket_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tt| {
            (
                tt["id"].as_str().unwrap().to_string(),
                tt["available"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Σ quantity of live (active or consumed) holds of these types.
pub async fn taken(t: &TestApp, types: &[&str]) -> i64 {
    let mut sum = 0;
    for tt in types {
        sum += t
            .count(
                "SELECT CAST(COALESCE(SUM(i.quantity), 0) AS BIGINT) FROM hold_items i
                 JOIN holds h ON h.org_id = i.org_id AND h.id = i.hold_id
                 WHERE i.ticket_type_id = $1 AND h.status IN ('active', 'consumed')",
                tt,
            )
            .await;
    }
    sum
}
