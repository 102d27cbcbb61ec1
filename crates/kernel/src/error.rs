//! The API's error contract: RFC 9457 problem+json with stable `type` values.
//!
//! Each slice keeps its own error enum and maps it onto [`ApiError`]; this is
//! the only error type a handler returns.

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

/// The problem document as it goes on the wire.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
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
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error("overloaded")]
    Overloaded { retry_after_secs: u64 },
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
            ApiError::Conflict(_) | ApiError::SoldOut(_) | ApiError::IdempotencyInFlight => {
                StatusCode::CONFLICT
            }
            ApiError::HoldExpired | ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn problem(&self) -> Problem {
        let (kind, title) = match self {
            ApiError::BadRequest(_) => ("bad_request", "Bad request"),
            ApiError::Validation { .. } => ("validation", "Validation failed"),
            ApiError::Unauthorized(_) => ("unauthorized", "Unauthorized"),
            ApiError::Forbidden(_) => ("forbidden", "Forbidden"),
            ApiError::NotFound => ("not_found", "Not found"),
            ApiError::Conflict(_) => ("conflict", "Conflict"),
            ApiError::SoldOut(_) => ("sold_out", "Sold out"),
            ApiError::HoldExpired => ("hold_expired", "Hold expired"),
            ApiError::Gone(_) => ("gone", "Gone"),
            ApiError::IdempotencyConflict => ("idempotency_conflict", "Idempotency key conflict"),
            ApiError::IdempotencyInFlight => ("conflict", "Request in flight"),
            ApiError::PayloadTooLarge => ("payload_too_large", "Payload too large"),
            ApiError::MethodNotAllowed => ("method_not_allowed", "Method not allowed"),
            ApiError::UnsupportedMediaType(_) => {
                ("unsupported_media_type", "Unsupported media type")
            }
            ApiError::RateLimited { .. } => ("rate_limited", "Too many requests"),
            ApiError::Overloaded { .. } => ("overloaded", "Overloaded"),
            ApiError::Internal(_) => ("internal", "Internal server error"),
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
            ApiError::RateLimited { .. } => "slow down and retry after the given delay".into(),
            ApiError::Overloaded { .. } => "the server is busy; retry after the given delay".into(),
            // Internal details are logged, never shown.
            ApiError::Internal(_) => "something went wrong on our side".into(),
            ApiError::BadRequest(d)
            | ApiError::Unauthorized(d)
            | ApiError::Forbidden(d)
            | ApiError::Conflict(d)
            | ApiError::SoldOut(d)
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
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut => ApiError::Overloaded {
                retry_after_secs: 1,
            },
            _ => ApiError::Internal(e.to_string()),
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
        if let ApiError::RateLimited { retry_after_secs }
        | ApiError::Overloaded { retry_after_secs } = self
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

    pub fn finish(self) -> ApiResult<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.errors))
        }
    }
}
