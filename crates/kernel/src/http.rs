//! Request extractors that answer bad input with problem+json.

use axum::{
    body::Bytes,
    extract::{
        FromRequest, FromRequestParts, Request,
        rejection::{BytesRejection, JsonRejection},
    },
    http::{HeaderMap, header, request::Parts},
};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// `axum::Json`, but every rejection is a problem document: malformed JSON
/// → 400, wrong types or missing fields → 422 naming the field, too large →
/// 413, wrong content type → 415.
///
/// A number with a zero fraction (`2.0`, `1e3`) is an integer, as JSON
/// Schema says: an integer field takes it.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "send Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(bytes_rejection)?;
        // Every request body of the API is an object (serde would read a
        // struct from an array, field by field in order).
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(ApiError::field("body", "must be a JSON object"));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::JsonDataError(e)) if e.body_text().contains("floating point") => {
                // Rare: read it again with integral floats as integers.
                let mut value: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|_| json_rejection(e.into()))?;
                integral_floats_as_integers(&mut value);
                let again = serde_json::to_vec(&value).map_err(ApiError::internal)?;
                match axum::Json::<T>::from_bytes(&again) {
                    Ok(axum::Json(v)) => Ok(ApiJson(v)),
                    Err(rejection) => Err(json_rejection(rejection)),
                }
            }
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `application/json` or any `application/*+json`, as `axum::Json` takes.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application") && (subtype == "json" || subtype.ends_with("+json"))
}

/// A request body already read as a JSON value (to fingerprint it for
/// idempotency) into its type, as [`ApiJson`] would: integral floats are
/// integers; a mismatch is a 422 naming `body`.
pub fn body_from_value<T: DeserializeOwned>(mut value: serde_json::Value) -> Result<T, ApiError> {
    if value.is_array() {
        return Err(ApiError::field("body", "must be a JSON object"));
    }
    integral_floats_as_integers(&mut value);
    serde_json::from_value(value).map_err(|e| ApiError::field("body", &e.to_string()))
}

/// Replaces every number with a zero fraction that fits an `i64` by that
/// integer.
fn integral_floats_as_integers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64())
                && f.fract() == 0.0
                && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f)
            {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

fn bytes_rejection(e: BytesRejection) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else if timed_out(&e) {
        ApiError::RequestTimeout
    } else {
        ApiError::BadRequest(e.body_text())
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => {
            let text = e.body_text();
            // axum's text is "Failed to deserialize the JSON body into the
            // target type: <path>: <serde message>".
            let inner = text
                .split_once("target type: ")
                .map(|(_, t)| t)
                .unwrap_or(&text);
            let (field, message) = match inner.split_once(": ") {
                Some((path, msg)) if !path.contains(' ') => (path.to_string(), msg.to_string()),
                _ => ("body".to_string(), inner.to_string()),
            };
            let field = if field == "." { "body".into() } else { field };
            ApiError::validation(vec![FieldError::new(field, message)])
        }
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::BadRequest(format!("malformed JSON: {}", e.body_text()))
        }
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::UnsupportedMediaType("send Content-Type: application/json".into())
        }
        JsonRejection::BytesRejection(e) => bytes_rejection(e),
        other => ApiError::BadRequest(other.body_text()),
    }
}

/// Whether reading the body failed because it did not arrive in time (the
/// server's body deadline).
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Path parameters, with a problem document when one does not parse.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            // An id that does not parse names no object: the same 404 as an
            // unknown one, so ids leak nothing.
            Err(_) => Err(ApiError::NotFound),
        }
    }
}

/// Query parameters, with a problem document when they do not parse.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(ApiError::validation(vec![FieldError::new(
                "query",
                e.body_text(),
            )])),
        }
    }
}

/// A list request's page: `limit` (1 to 200, 50 when left out) and where
/// to go on from (`cursor`, the `next_cursor` of the previous page: an id).
pub fn page<C: std::str::FromStr>(
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<(i64, Option<C>), ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 200"));
    }
    let cursor = match cursor {
        Some(c) => Some(
            c.parse::<C>()
                .map_err(|_| ApiError::field("cursor", "is not a cursor from this list"))?,
        ),
        None => None,
    };
    Ok((limit, cursor))
}

/// The `next_cursor` of a page: the id of its last item when the page is
/// full (there may be more), none otherwise.
pub fn next_cursor<T, I: ToString>(data: &[T], limit: i64, id: impl Fn(&T) -> I) -> Option<String> {
    (data.len() as i64 == limit)
        .then(|| data.last().map(|d| id(d).to_string()))
        .flatten()
}

/// The client's address, for per-client rate limits. (Behind a proxy this is
/// the proxy; trusting `X-Forwarded-For` is a deployment choice not made yet.)
pub struct ClientAddr(pub std::net::IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        Ok(ClientAddr(ip))
    }
}

/// OpenAPI schemas of request fields whose rule a plain `#[schema(...)]`
/// attribute cannot say, for `#[schema(schema_with = ...)]`.
pub mod schema {
    use utoipa::openapi::{
        AllOfBuilder, KnownFormat, Object, ObjectBuilder, Schema, SchemaFormat, Type,
        schema::{AnyOfBuilder, SchemaType},
    };

    /// An id in a request body or query: the typed ids (`crate::ids`) are
    /// UUIDs, and one that does not parse is a 422.
    pub fn uuid() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
            .pattern(Some(
                "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
            ))
            .build()
    }

    /// An e-mail address: `format: email`, one `@`, a domain with a dot
    /// inside it, no white space or control characters, and at most 254
    /// bytes of UTF-8 (254 ASCII characters, or any 63). Every such address
    /// passes [`crate::parse::email`] (which takes a few more).
    pub fn email() -> Schema {
        const C: &str = r"\s\x00-\x1f\x7f-\x9f";
        // One `@`; dot-separated parts that are never empty on either side
        // (no leading, trailing or doubled dots); a domain with a dot.
        let pattern = format!("^[^@.{C}]+(\\.[^@.{C}]+)*@[^@.{C}]+(\\.[^@.{C}]+)+$");
        AllOfBuilder::new()
            .description(Some(
                "An e-mail address: at most 254 bytes of UTF-8 (254 ASCII characters, or any 63).",
            ))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
                    .min_length(Some(5))
                    .max_length(Some(254))
                    .pattern(Some(pattern)),
            )
            .item(
                AnyOfBuilder::new()
                    .item(
                        ObjectBuilder::new()
                            .schema_type(SchemaType::AnyValue)
                            .pattern(Some(r"^[\x00-\x7f]*$")),
                    )
                    .item(
                        ObjectBuilder::new()
                            .schema_type(SchemaType::AnyValue)
                            .max_length(Some(63)),
                    ),
            )
            .build()
            .into()
    }
}

/// For `#[serde(default, deserialize_with = "kernel::http::explicit")]` on
/// an `Option<Option<T>>` field of a patch: left out → `None`, `null` →
/// `Some(None)` (clear it), a value → `Some(Some(v))`.
pub fn explicit<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::StatusCode, response::IntoResponse};
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Item {
        quantity: i64,
        name: String,
    }

    async fn extract(content_type: &str, body: &str) -> Result<Item, ApiError> {
        let req = Request::builder()
            .method("POST")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_string()))
            .unwrap();
        ApiJson::<Item>::from_request(req, &())
            .await
            .map(|ApiJson(v)| v)
    }

    #[tokio::test]
    async fn an_integral_number_is_an_integer_and_a_fraction_is_not() {
        let want = Item {
            quantity: 3,
            name: "a".into(),
        };
        for body in [
            r#"{"quantity": 3, "name": "a"}"#,
            r#"{"quantity": 3.0, "name": "a"}"#,
            r#"{"quantity": 3e0, "name": "a"}"#,
            r#"{"quantity": 0.3e1, "name": "a"}"#,
        ] {
            assert_eq!(
                extract("application/json", body).await.unwrap(),
                want,
                "{body}"
            );
        }
        for body in [
            r#"{"quantity": 3.5, "name": "a"}"#,
            r#"{"quantity": 1e300, "name": "a"}"#,
            r#"{"quantity": 3.0, "name": 1.0}"#,
        ] {
            let e = extract("application/json", body).await.unwrap_err();
            assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        }
        let e = extract("application/json", r#"{"quantity": 3.5, "name": "a"}"#)
            .await
            .unwrap_err();
        assert_eq!(e.problem().errors[0].field, "quantity");
    }

    #[tokio::test]
    async fn a_body_that_is_not_json_is_refused_by_media_type_then_by_syntax() {
        let body = r#"{"quantity": 1, "name": "a"}"#;
        for ct in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/problem+json",
        ] {
            assert!(extract(ct, body).await.is_ok(), "{ct}");
        }
        for ct in ["text/plain", "application/jsonx", "json", ""] {
            let e = extract(ct, body).await.unwrap_err();
            assert_eq!(e.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
        }
        let e = extract("application/json", "{\"quantity\": ")
            .await
            .unwrap_err();
        assert_eq!(e.into_response().status(), StatusCode::BAD_REQUEST);
    }
}
