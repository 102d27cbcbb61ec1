//! Scanning's errors, and how each answers. A bad ticket is not an error:
//! it is a scan result.

use kernel::{ApiError, FieldError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("this device is not set up for that event")]
    NotThisDevicesEvent,
    #[error("this device is not set up for that gate")]
    NotThisDevicesGate,
    #[error("only a supervisor device may override a refusal")]
    NotSupervisor,
    #[error("no such object")]
    NotFound,
    #[error("the admission queue is full")]
    Busy,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::Invalid(errors) => ApiError::validation(errors),
            Error::NotThisDevicesEvent => {
                ApiError::Forbidden("this device is not set up for that event".into())
            }
            Error::NotThisDevicesGate => {
                ApiError::Forbidden("this device is not set up for that gate".into())
            }
            Error::NotSupervisor => {
                ApiError::Forbidden("only a supervisor device may override a refusal".into())
            }
            Error::NotFound => ApiError::NotFound,
            Error::Busy => ApiError::Overloaded {
                retry_after_secs: 1,
            },
            Error::Db(e) => e.into(),
            Error::Api(e) => e,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
