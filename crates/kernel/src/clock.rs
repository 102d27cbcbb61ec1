//! Time. Every rule that depends on time (hold expiry, sale windows,
//! idempotency retention, job schedules, code validity) asks the kernel's
//! [`Clock`], never the system directly: real by default, controllable in
//! tests, where moving it replaces sleeping.
//!
//! At the database boundary time is microseconds since the Unix epoch (i64),
//! the same on SQLite and PostgreSQL; on the wire it is RFC 3339 in UTC.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// The source of "now" for every rule. Cheap to clone; clones share time.
#[derive(Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None`: the system clock. `Some`: a clock that moves only when told.
    manual: Option<AtomicI64>,
    changed: tokio::sync::Notify,
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Clock {
        Clock {
            inner: Arc::new(Inner {
                manual: None,
                changed: tokio::sync::Notify::new(),
            }),
        }
    }

    /// A clock standing at `micros` that moves only by [`Clock::advance`]
    /// or [`Clock::set`] (tests).
    pub fn manual(micros: i64) -> Clock {
        Clock {
            inner: Arc::new(Inner {
                manual: Some(AtomicI64::new(micros)),
                changed: tokio::sync::Notify::new(),
            }),
        }
    }

    /// A manual clock starting at the system's time now.
    pub fn manual_from_now() -> Clock {
        Clock::manual(system_now())
    }

    pub fn is_manual(&self) -> bool {
        self.inner.manual.is_some()
    }

    /// Microseconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        match &self.inner.manual {
            Some(t) => t.load(Ordering::Acquire),
            None => system_now(),
        }
    }

    /// Moves a manual clock forward and wakes whoever waits on
    /// [`Clock::changed`]. The system clock cannot be moved: false.
    pub fn advance(&self, by: Duration) -> bool {
        match &self.inner.manual {
            Some(t) => {
                t.fetch_add(by.as_micros() as i64, Ordering::AcqRel);
                self.inner.changed.notify_waiters();
                true
            }
            None => false,
        }
    }

    /// Sets a manual clock; false for the system clock.
    pub fn set(&self, micros: i64) -> bool {
        match &self.inner.manual {
            Some(t) => {
                t.store(micros, Ordering::Release);
                self.inner.changed.notify_waiters();
                true
            }
            None => false,
        }
    }

    /// Resolves when a manual clock is moved (never for the system clock),
    /// so a periodic duty can act at once instead of at its next tick.
    pub async fn changed(&self) {
        if self.is_manual() {
            self.inner.changed.notified().await
        } else {
            std::future::pending().await
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_manual() {
            write!(f, "Clock(manual at {})", rfc3339(self.now()))
        } else {
            f.write_str("Clock(system)")
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

fn system_now() -> i64 {
    to_micros(OffsetDateTime::now_utc())
}

pub fn to_micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

pub fn from_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// RFC 3339 text in UTC for a microsecond timestamp.
pub fn rfc3339(us: i64) -> String {
    from_micros(us)
        .format(&Rfc3339)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
}

/// Parses RFC 3339 text into microseconds; `None` when it is not a time (or
/// is outside the years 0001 to 9999).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .filter(|t| (1..=9999).contains(&t.year()))
        .map(to_micros)
}

pub const MICROS_PER_SEC: i64 = 1_000_000;

/// Microseconds in `d`.
pub fn micros(d: Duration) -> i64 {
    d.as_micros().min(i64::MAX as u128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = Clock::manual(1_000);
        assert_eq!(c.now(), 1_000);
        assert!(c.advance(Duration::from_secs(2)));
        assert_eq!(c.now(), 2_001_000);
        let shared = c.clone();
        assert!(shared.set(5));
        assert_eq!(c.now(), 5);
        let system = Clock::system();
        assert!(!system.advance(Duration::from_secs(1)));
        assert!(system.now() > 1_700_000_000 * MICROS_PER_SEC);
    }

    #[tokio::test]
    async fn moving_a_manual_clock_wakes_its_waiters() {
        let c = Clock::manual(0);
        let waiter = {
            let c = c.clone();
            tokio::spawn(async move { c.changed().await })
        };
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        c.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken")
            .expect("task");
    }

    #[test]
    fn times_round_trip_through_rfc3339() {
        let t = parse_rfc3339("2030-06-01T18:00:00.123456Z").unwrap();
        assert_eq!(rfc3339(t), "2030-06-01T18:00:00.123456Z");
        assert!(parse_rfc3339("yesterday").is_none());
        assert!(parse_rfc3339("+10000-01-01T00:00:00Z").is_none());
    }
}
