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
