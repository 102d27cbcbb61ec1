//! Identity's errors, and how each answers.

use kernel::{ApiError, FieldError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("self-service sign-up is switched off")]
    SignupDisabled,
    #[error("an organization with this slug exists")]
    SlugTaken,
    #[error("a user with this e-mail exists")]
    EmailTaken,
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("no such object")]
    NotFound,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::Invalid(errors) => ApiError::validation(errors),
            Error::SignupDisabled => {
                ApiError::Forbidden("self-service sign-up is switched off".into())
            }
            Error::SlugTaken => {
                ApiError::Conflict("org_slug: an organization with this slug exists".into())
            }
            Error::EmailTaken => ApiError::Conflict("email: a user with this e-mail exists".into()),
            Error::Unauthenticated(m) => ApiError::Unauthorized(m.into()),
            Error::NotFound => ApiError::NotFound,
            Error::Db(e) => e.into(),
            Error::Api(e) => e,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
