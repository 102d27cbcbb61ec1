//! Time at the database boundary: microseconds since the Unix epoch (i64),
//! the same on SQLite and PostgreSQL; RFC 3339 in UTC on the wire.

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
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

/// Parses RFC 3339 text into microseconds; `None` when it is not a time.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    OffsetDateTime::parse(s, &Rfc3339).ok().map(to_micros)
}

pub const MICROS_PER_SEC: i64 = 1_000_000;
