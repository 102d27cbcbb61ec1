//! The events slice's errors, and how each answers.

use kernel::{ApiError, FieldError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("no such event")]
    NotFound,
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
            Error::Db(e) => e.into(),
            Error::Api(e) => e,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
