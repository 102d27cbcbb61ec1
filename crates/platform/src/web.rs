//! The HTTP surface assembled: every slice's API routes and pages, the
//! OpenAPI document that describes them exactly, static assets, and the
//! headers every reply carries.

use askama::Template;
use axum::{
    Json,
    extract::{Request, State},
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{Html, IntoResponse, Response},
    routing::get,
};
use kernel::ApiError;
use serde_json::{Value, json};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;

use crate::App;

#[derive(OpenApi)]
#[openapi(
    info(title = "VoelgoedEvents API", version = "1", description = "Event ticketing and access control. Errors are RFC 9457 problem documents (`application/problem+json`) whose `type` is one of the values of `ProblemType`."),
    modifiers(&Security),
    components(schemas(kernel::error::Problem, kernel::error::ProblemType, kernel::FieldError)),
    tags((name = "identity"), (name = "events"), (name = "storefront"), (name = "orders"),
         (name = "tickets"), (name = "devices"), (name = "scanning"), (name = "live"))
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "device_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The router of every slice's routes and pages, with the OpenAPI document
/// at `/api/openapi.json`.
pub fn router(app: App, api: OpenApiRouter<App>, pages: axum::Router<App>) -> axum::Router {
    let (api, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api)
        .split_for_parts();
    let doc = std::sync::Arc::new(finish_openapi(
        serde_json::to_value(&doc).unwrap_or_else(|_| json!({})),
    ));
    axum::Router::new()
        .merge(api)
        .route(
            "/api/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json((*doc).clone()) }
            }),
        )
        .merge(pages)
        .route("/", get(home))
        .route("/assets/app.css", get(css))
        .route("/assets/live.js", get(live_js))
        .route("/assets/pay.js", get(pay_js))
        .route("/assets/queue.js", get(queue_js))
        .route("/assets/hold.js", get(hold_js))
        .route("/assets/seats.js", get(seats_js))
        .route("/assets/seating_editor.js", get(seating_editor_js))
        .route("/assets/rules.js", get(rules_js))
        .route("/assets/gates.js", get(gates_js))
        .route("/assets/vendor/logic.js", get(logic_js))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            secure_headers,
        ))
        .with_state(app)
}

/// Makes the document say everything the server can answer, as an
/// integrator's generated client needs it: every error status an operation
/// can produce (from its body, parameters, credentials and the server's own
/// limits), each as `application/problem+json` with the `Problem` schema.
pub fn finish_openapi(mut doc: Value) -> Value {
    let problem =
        json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    for (_, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if !matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                continue;
            }
            // A parameter is text in a path, query or header: never JSON
            // null. An optional one is left out (`"required": false`).
            if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                for p in params {
                    not_null(&mut p["schema"]);
                }
            }
            let params: Vec<Value> = op
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let param_in = |place: &str| params.iter().any(|p| p["in"] == place);
            let has_body = op.get("requestBody").is_some();
            let secured = op.get("security").is_some();
            let idempotent = params.iter().any(|p| p["name"] == "Idempotency-Key");
            let mut add: Vec<(&str, &str)> = vec![(
                "503",
                "overloaded: the server sheds load or the request took too long; retry after `Retry-After`",
            )];
            if has_body {
                add.push(("400", "bad_request: the body is not JSON"));
                add.push(("408", "request_timeout: the body did not arrive in time"));
                add.push(("413", "payload_too_large"));
                add.push(("415", "unsupported_media_type: send application/json"));
                add.push((
                    "422",
                    "validation: a field is missing, of the wrong type or out of range",
                ));
            }
            if param_in("query") || param_in("header") {
                add.push(("422", "validation: a parameter is out of range"));
            }
            if param_in("path") {
                add.push((
                    "404",
                    "not_found: no such object (or another organization's)",
                ));
            }
            if secured {
                add.push(("401", "unauthorized: no or an unknown credential"));
                add.push(("403", "forbidden: the credential lacks the permission"));
            }
            if idempotent {
                add.push((
                    "409",
                    "conflict: the first request with this key is still in flight",
                ));
            }
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            for (status, description) in add {
                responses
                    .entry(status.to_string())
                    .or_insert_with(|| json!({"description": description}));
            }
            for (status, response) in responses.iter_mut() {
                if status.as_str() >= "400"
                    && let Some(r) = response.as_object_mut()
                {
                    r.insert("content".into(), problem.clone());
                }
            }
        }
    }
    doc
}

/// Drops `"null"` from a schema's `type` list.
fn not_null(schema: &mut Value) {
    let Some(types) = schema.get_mut("type").and_then(Value::as_array_mut) else {
        return;
    };
    types.retain(|t| t != "null");
    if let [only] = types.as_slice() {
        let only = only.clone();
        schema["type"] = only;
    }
}

/// Headers on every reply: no sniffing, no framing, no referrer, a content
/// security policy without inline script; HSTS when served over HTTPS; and
/// `Cache-Control: no-store` on API replies that set no caching of their own
/// (several carry secrets: API keys, device tokens, access tokens).
async fn secure_headers(State(app): State<App>, req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    // A page that talks to another origin (the card provider) sets its own.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        set(h, header::CONTENT_SECURITY_POLICY, CSP);
    }
    if app.kernel.config.https() {
        set(
            h,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    if api && !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    res
}

/// Scripts and styles only from this origin, no inline script, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// [`CSP`] with one more origin the page's script may connect to (the card
/// provider's API, for its client-side confirmation).
pub fn csp_connecting_to(origin: &str) -> String {
    CSP.replace(
        "connect-src 'self'",
        &format!("connect-src 'self' {origin}"),
    )
}

/// Resolves when the process starts shutting down.
pub async fn until_down(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|down| *down).await;
}

/// Renders a page; a template error is a 500 problem, never a panic.
pub fn page(status: StatusCode, t: impl Template) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// Compares a secret the client sent with the one expected, in time that
/// does not depend on where they differ.
pub fn csrf_matches(expected: &str, presented: &str) -> bool {
    csrf_matches_bytes(expected.as_bytes(), presented.as_bytes())
}

pub fn csrf_matches_bytes(expected: &[u8], presented: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    expected.len() == presented.len() && bool::from(expected.ct_eq(presented))
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage;

async fn home() -> Response {
    page(StatusCode::OK, HomePage)
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    asset_with(body, content_type, "public, max-age=3600")
}

/// A file built into the binary, with its type and how long it may be kept.
pub fn asset_with(body: &'static str, content_type: &'static str, cache: &'static str) -> Response {
    let mut res = body.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

async fn css() -> Response {
    asset(
        include_str!("../templates/app.css"),
        "text/css; charset=utf-8",
    )
}

async fn pay_js() -> Response {
    asset(
        include_str!("../templates/pay.js"),
        "text/javascript; charset=utf-8",
    )
}

async fn hold_js() -> Response {
    asset(
        include_str!("../templates/hold.js"),
        "text/javascript; charset=utf-8",
    )
}

async fn queue_js() -> Response {
    asset(
        include_str!("../templates/queue.js"),
        "text/javascript; charset=utf-8",
    )
}

async fn seats_js() -> Response {
    asset(
        include_str!("../templates/seats.js"),
        "text/javascript; charset=utf-8",
    )
}

async fn seating_editor_js() -> Response {
    asset(
        include_str!("../templates/seating_editor.js"),
        "text/javascript; charset=utf-8",
    )
}

async fn rules_js() -> Response {
    asset(
        include_str!("../templates/rules.js"),
        "text/javascript; charset=utf-8",
    )
}

async fn gates_js() -> Response {
    asset(
        include_str!("../templates/gates.js"),
        "text/javascript; charset=utf-8",
    )
}

/// json-logic-js 2.0.5 (MIT), vendored: the scanner app's rule evaluator.
async fn logic_js() -> Response {
    asset(
        include_str!("../templates/vendor/logic.js"),
        "text/javascript; charset=utf-8",
    )
}

async fn live_js() -> Response {
    asset(
        include_str!("../templates/live.js"),
        "text/javascript; charset=utf-8",
    )
}

/// A posted form's fields, in order (a name may repeat: checkboxes).
pub type Fields = Vec<(String, String)>;

/// The first value of a form field, or "".
pub fn field<'a>(form: &'a Fields, name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Every value of a form field that may repeat (checkboxes, seats).
pub fn all<'a>(form: &'a Fields, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    form.iter()
        .filter(move |(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A console form posted without its session's CSRF token.
pub fn csrf_refused() -> axum::response::Response {
    use axum::response::IntoResponse;
    (StatusCode::FORBIDDEN, "invalid CSRF token").into_response()
}

/// A client error as a console page says it: the fields' messages, or the
/// problem's detail.
pub fn said(e: &kernel::ApiError) -> String {
    let p = e.problem();
    if p.errors.is_empty() {
        p.detail
    } else {
        p.errors
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_only_when_equal() {
        assert!(csrf_matches("abc", "abc"));
        assert!(!csrf_matches("abc", "abd"));
        assert!(!csrf_matches("abc", "ab"));
        assert!(!csrf_matches("", "x"));
    }

    #[test]
    fn every_error_status_of_an_operation_is_a_problem_document() {
        let doc = finish_openapi(json!({
            "paths": {"/x/{id}": {"post": {
                "parameters": [{"name": "id", "in": "path"}],
                "requestBody": {"content": {}},
                "security": [{"api_key": []}],
                "responses": {"201": {"description": "ok"}, "409": {"description": "taken"}}
            }}}
        }));
        let r = &doc["paths"]["/x/{id}"]["post"]["responses"];
        for s in [
            "400", "401", "403", "404", "409", "413", "415", "422", "503",
        ] {
            assert_eq!(
                r[s]["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{s}"
            );
        }
        assert!(r["201"].get("content").is_none());
    }

    #[test]
    fn an_optional_parameter_is_never_null() {
        let doc = finish_openapi(json!({
            "paths": {"/x": {"post": {
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": false,
                                "schema": {"type": ["string", "null"], "maxLength": 255}}],
                "responses": {"201": {"description": "ok"}}
            }}}
        }));
        let p = &doc["paths"]["/x"]["post"]["parameters"][0];
        assert_eq!(p["schema"], json!({"type": "string", "maxLength": 255}));
        assert_eq!(p["required"], false);
    }
}
