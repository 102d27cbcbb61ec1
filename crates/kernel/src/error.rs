//! The API's error contract: RFC 9457 problem+json with stable `type` values.
//!
//! [`ProblemType`] is the contract: one enum of every `type` the API can
//! answer, listed in the OpenAPI document. Each slice keeps its own error
//! enum and maps it onto [`ApiError`]; this is the only error type a handler
//! returns.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every problem `type` the API answers. Stable: integrators branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemType {
    BadRequest,
    Validation,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    SoldOut,
    SeatUnavailable,
    HoldExpired,
    Gone,
    IdempotencyConflict,
    PayloadTooLarge,
    MethodNotAllowed,
    UnsupportedMediaType,
    RequestTimeout,
    RateLimited,
    Overloaded,
    ProviderUnavailable,
    Internal,
}

impl ProblemType {
    pub const ALL: [ProblemType; 19] = [
        ProblemType::BadRequest,
        ProblemType::Validation,
        ProblemType::Unauthorized,
        ProblemType::Forbidden,
        ProblemType::NotFound,
        ProblemType::Conflict,
        ProblemType::SoldOut,
        ProblemType::SeatUnavailable,
        ProblemType::HoldExpired,
        ProblemType::Gone,
        ProblemType::IdempotencyConflict,
        ProblemType::PayloadTooLarge,
        ProblemType::MethodNotAllowed,
        ProblemType::UnsupportedMediaType,
        ProblemType::RequestTimeout,
        ProblemType::RateLimited,
        ProblemType::Overloaded,
        ProblemType::ProviderUnavailable,
        ProblemType::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProblemType::BadRequest => "bad_request",
            ProblemType::Validation => "validation",
            ProblemType::Unauthorized => "unauthorized",
            ProblemType::Forbidden => "forbidden",
            ProblemType::NotFound => "not_found",
            ProblemType::Conflict => "conflict",
            ProblemType::SoldOut => "sold_out",
            ProblemType::SeatUnavailable => "seat_unavailable",
            ProblemType::HoldExpired => "hold_expired",
            ProblemType::Gone => "gone",
            ProblemType::IdempotencyConflict => "idempotency_conflict",
            ProblemType::PayloadTooLarge => "payload_too_large",
            ProblemType::MethodNotAllowed => "method_not_allowed",
            ProblemType::UnsupportedMediaType => "unsupported_media_type",
            ProblemType::RequestTimeout => "request_timeout",
            ProblemType::RateLimited => "rate_limited",
            ProblemType::Overloaded => "overloaded",
            ProblemType::ProviderUnavailable => "provider_unavailable",
            ProblemType::Internal => "internal",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ProblemType::BadRequest => "Bad request",
            ProblemType::Validation => "Validation failed",
            ProblemType::Unauthorized => "Unauthorized",
            ProblemType::Forbidden => "Forbidden",
            ProblemType::NotFound => "Not found",
            ProblemType::Conflict => "Conflict",
            ProblemType::SoldOut => "Sold out",
            ProblemType::SeatUnavailable => "Seat unavailable",
            ProblemType::HoldExpired => "Hold expired",
            ProblemType::Gone => "Gone",
            ProblemType::IdempotencyConflict => "Idempotency key conflict",
            ProblemType::PayloadTooLarge => "Payload too large",
            ProblemType::MethodNotAllowed => "Method not allowed",
            ProblemType::UnsupportedMediaType => "Unsupported media type",
            ProblemType::RequestTimeout => "Request timeout",
            ProblemType::RateLimited => "Too many requests",
            ProblemType::Overloaded => "Overloaded",
            ProblemType::ProviderUnavailable => "Payment provider unavailable",
            ProblemType::Internal => "Internal server error",
        }
    }
}

/// The problem document as it goes on the wire (`application/problem+json`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: ProblemType,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("validation failed: {detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("sold out: {0}")]
    SoldOut(String),
    /// A seat asked for is in another live hold or ticket (or blocked).
    #[error("seat unavailable: {0}")]
    SeatUnavailable(String),
    #[error("hold expired")]
    HoldExpired,
    #[error("gone: {0}")]
    Gone(String),
    #[error("idempotency key reused with another request")]
    IdempotencyConflict,
    #[error("request with this idempotency key is still in flight")]
    IdempotencyInFlight,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("rate limited")]
    RateLimited {
        retry_after_secs: u64,
        /// The limit's requests per minute, for the `RateLimit-*` headers.
        limit: Option<u32>,
    },
    #[error("overloaded")]
    Overloaded { retry_after_secs: u64 },
    /// The payment provider did not answer: nothing was charged; retry
    /// with the same idempotency key.
    #[error("payment provider unavailable")]
    ProviderUnavailable { retry_after_secs: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        ApiError::Validation { detail, errors }
    }

    pub fn field(field: &str, message: &str) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation { .. } | ApiError::IdempotencyConflict => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(_)
            | ApiError::SoldOut(_)
            | ApiError::SeatUnavailable(_)
            | ApiError::IdempotencyInFlight => StatusCode::CONFLICT,
            ApiError::HoldExpired | ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded { .. } | ApiError::ProviderUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn kind(&self) -> ProblemType {
        match self {
            ApiError::BadRequest(_) => ProblemType::BadRequest,
            ApiError::Validation { .. } => ProblemType::Validation,
            ApiError::Unauthorized(_) => ProblemType::Unauthorized,
            ApiError::Forbidden(_) => ProblemType::Forbidden,
            ApiError::NotFound => ProblemType::NotFound,
            ApiError::Conflict(_) | ApiError::IdempotencyInFlight => ProblemType::Conflict,
            ApiError::SoldOut(_) => ProblemType::SoldOut,
            ApiError::SeatUnavailable(_) => ProblemType::SeatUnavailable,
            ApiError::HoldExpired => ProblemType::HoldExpired,
            ApiError::Gone(_) => ProblemType::Gone,
            ApiError::IdempotencyConflict => ProblemType::IdempotencyConflict,
            ApiError::PayloadTooLarge => ProblemType::PayloadTooLarge,
            ApiError::MethodNotAllowed => ProblemType::MethodNotAllowed,
            ApiError::UnsupportedMediaType(_) => ProblemType::UnsupportedMediaType,
            ApiError::RequestTimeout => ProblemType::RequestTimeout,
            ApiError::RateLimited { .. } => ProblemType::RateLimited,
            ApiError::Overloaded { .. } => ProblemType::Overloaded,
            ApiError::ProviderUnavailable { .. } => ProblemType::ProviderUnavailable,
            ApiError::Internal(_) => ProblemType::Internal,
        }
    }

    pub fn problem(&self) -> Problem {
        let kind = self.kind();
        let title = match self {
            ApiError::IdempotencyInFlight => "Request in flight",
            _ => kind.title(),
        };
        let detail = match self {
            ApiError::Validation { detail, .. } => detail.clone(),
            ApiError::NotFound => "no such object".into(),
            ApiError::HoldExpired => "the hold has expired; its tickets were released".into(),
            ApiError::IdempotencyConflict => {
                "this Idempotency-Key was used with a different request body".into()
            }
            ApiError::IdempotencyInFlight => {
                "the first request with this Idempotency-Key is still being processed".into()
            }
            ApiError::PayloadTooLarge => "the request body is too large".into(),
            ApiError::MethodNotAllowed => "this path does not take that method".into(),
            ApiError::RequestTimeout => "the request body did not arrive in time".into(),
            ApiError::RateLimited { .. } => "slow down and retry after the given delay".into(),
            ApiError::Overloaded { .. } => "the server is busy; retry after the given delay".into(),
            ApiError::ProviderUnavailable { .. } => {
                "the payment provider did not answer; nothing was charged. Retry with the same Idempotency-Key".into()
            }
            // Internal details are logged, never shown.
            ApiError::Internal(_) => "something went wrong on our side".into(),
            ApiError::BadRequest(d)
            | ApiError::Unauthorized(d)
            | ApiError::Forbidden(d)
            | ApiError::Conflict(d)
            | ApiError::SoldOut(d)
            | ApiError::SeatUnavailable(d)
            | ApiError::Gone(d)
            | ApiError::UnsupportedMediaType(d) => d.clone(),
        };
        let errors = match self {
            ApiError::Validation { errors, .. } => errors.clone(),
            _ => Vec::new(),
        };
        Problem {
            kind,
            title,
            status: self.status().as_u16(),
            detail,
            errors,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    /// A database that is busy or closing is a 503 with `Retry-After`; a
    /// constraint the request broke (that the slice did not map itself) is a
    /// 409; anything else is ours (500, logged).
    fn from(e: sqlx::Error) -> Self {
        ApiError::from_db(&e)
    }
}

impl ApiError {
    /// [`From<sqlx::Error>`] for an error shared by many waiters (a cache
    /// loader's).
    pub fn from_db(e: &sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
                ApiError::Overloaded {
                    retry_after_secs: 1,
                }
            }
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                ApiError::Conflict("this conflicts with an existing object".into())
            }
            sqlx::Error::Database(d) if is_busy(d.as_ref()) => ApiError::Overloaded {
                retry_after_secs: 1,
            },
            _ => ApiError::Internal(e.to_string()),
        }
    }
}

/// SQLite "database is locked"/"busy", PostgreSQL serialization failures
/// and deadlocks: a retry will do.
fn is_busy(d: &dyn sqlx::error::DatabaseError) -> bool {
    matches!(
        d.code().as_deref(),
        Some("5") | Some("6") | Some("40001") | Some("40P01") | Some("55P03") | Some("57014")
    )
}

impl From<crate::batch::BatchError<sqlx::Error>> for ApiError {
    fn from(e: crate::batch::BatchError<sqlx::Error>) -> Self {
        match e {
            crate::batch::BatchError::Failed(e) => e.into(),
            crate::batch::BatchError::Full | crate::batch::BatchError::Closed => {
                ApiError::Overloaded {
                    retry_after_secs: 1,
                }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(msg) = &self {
            tracing::error!(error = %msg, "internal error");
        }
        let problem = self.problem();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut res = (self.status(), body).into_response();
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(self, ApiError::PayloadTooLarge) {
            // The rest of the body is never read, so the connection cannot
            // carry another request: say so, or a client that pools
            // connections sends its next request into one being closed.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let ApiError::RateLimited {
            retry_after_secs,
            limit: Some(limit),
        } = self
        {
            // draft-ietf-httpapi-ratelimit-headers: the quota, nothing left,
            // and when the next request is allowed.
            headers.insert("ratelimit-limit", HeaderValue::from(limit));
            headers.insert("ratelimit-remaining", HeaderValue::from(0u32));
            headers.insert("ratelimit-reset", HeaderValue::from(retry_after_secs));
            headers.insert(
                "ratelimit-policy",
                HeaderValue::from_str(&format!("{limit};w=60"))
                    .unwrap_or(HeaderValue::from_static("")),
            );
        }
        if let ApiError::RateLimited {
            retry_after_secs, ..
        }
        | ApiError::Overloaded { retry_after_secs }
        | ApiError::ProviderUnavailable { retry_after_secs } = self
        {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        res
    }
}

/// Collects field errors while parsing a request into domain types.
#[derive(Default)]
pub struct Checks {
    errors: Vec<FieldError>,
}

impl Checks {
    /// Keeps the parsed value, or records the field's error.
    pub fn take<T>(&mut self, field: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(message) => {
                self.errors.push(FieldError::new(field, message));
                None
            }
        }
    }

    pub fn fail(&mut self, field: &str, message: &str) {
        self.errors.push(FieldError::new(field, message));
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn finish(self) -> ApiResult<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_type_has_a_stable_name_and_title() {
        for t in ProblemType::ALL {
            let json = serde_json::to_value(t).unwrap();
            assert_eq!(json, t.as_str());
            assert!(!t.title().is_empty());
        }
    }

    #[test]
    fn a_busy_database_is_a_503_and_an_unknown_failure_a_500() {
        assert_eq!(
            ApiError::from(sqlx::Error::PoolTimedOut).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::from(sqlx::Error::RowNotFound).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
