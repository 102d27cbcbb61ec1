//! Sales' errors, and how each answers.

use kernel::{ApiError, FieldError, ids::TicketTypeId};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("no such object")]
    NotFound,
    #[error("not enough tickets left of {0}")]
    SoldOut(TicketTypeId),
    /// A seat asked for is held, sold or blocked.
    #[error("seat unavailable: {0}")]
    SeatUnavailable(String),
    #[error("the hold has expired")]
    HoldExpired,
    #[error("the hold was already checked out")]
    HoldConsumed,
    #[error("the idempotency key was used with another request")]
    IdempotencyConflict,
    #[error("the first request with this idempotency key is in flight")]
    IdempotencyInFlight,
    #[error("the warm tier is unavailable")]
    WarmTierDown,
    /// A hold reserved in a Redis epoch that has since moved on (see the
    /// inventory module): reserve again.
    #[error("the inventory epoch moved on")]
    EpochMoved(i64),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl Error {
    pub fn field(field: &str, message: &str) -> Error {
        Error::Invalid(vec![FieldError::new(field, message)])
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::Invalid(errors) => ApiError::validation(errors),
            Error::NotFound => ApiError::NotFound,
            Error::SoldOut(tt) => ApiError::SoldOut(format!("not enough tickets left of {tt}")),
            Error::SeatUnavailable(what) => {
                ApiError::SeatUnavailable(format!("not available: {what}"))
            }
            Error::HoldExpired => ApiError::HoldExpired,
            Error::HoldConsumed => ApiError::Conflict("this hold was already checked out".into()),
            Error::IdempotencyConflict => ApiError::IdempotencyConflict,
            Error::IdempotencyInFlight => ApiError::IdempotencyInFlight,
            // Never a guess from a stale tier: ask the buyer to retry.
            Error::WarmTierDown | Error::EpochMoved(_) => ApiError::Overloaded {
                retry_after_secs: 1,
            },
            Error::Db(e) => e.into(),
            Error::Api(e) => e,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
