//! Identity's HTTP surface: sign-up, and the extractors that turn a
//! credential into a [`Tenant`], an [`Actor`] or a [`Device`].

use std::sync::Arc;

use axum::{
    extract::{FromRequestParts, RawPathParams, State},
    http::{Method, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use kernel::{
    ApiError,
    http::{ApiJson, ClientAddr},
};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    Actor, Device, Tenant,
    domain::{self, NewOrg, SignupOutput},
};
use crate::App;

pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(signup))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    /// The owner's e-mail address (their login).
    #[schema(schema_with = kernel::http::schema::email)]
    email: String,
    #[schema(min_length = 10, max_length = 1024)]
    password: String,
    /// Not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    org_name: String,
    /// The organization's slug in URLs: a-z, 0-9 and '-'.
    #[schema(
        min_length = 3,
        max_length = 63,
        pattern = r"^[a-z0-9][a-z0-9-]*[a-z0-9]$"
    )]
    org_slug: String,
    /// The owner's name; the part of the e-mail before '@' when left out.
    /// Not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: Option<String>,
}

/// Self-service sign-up: a new organization, its owner, and the owner's
/// first API key (every permission), shown only in this reply.
#[utoipa::path(post, path = "/api/v1/signup", tag = "identity",
    request_body = SignupRequest,
    responses((status = 201, body = SignupOutput, description = "the organization, its owner and the owner's API key"),
              (status = 403, description = "self-service sign-up is switched off"),
              (status = 409, description = "the slug or the e-mail is taken"),
              (status = 429, description = "too many sign-ups from this address")))]
async fn signup(
    State(app): State<App>,
    ClientAddr(ip): ClientAddr,
    ApiJson(req): ApiJson<SignupRequest>,
) -> Result<Response, ApiError> {
    app.kernel.limits.sensitive.check(&ip).await?;
    let out = domain::signup(
        &app,
        NewOrg {
            email: req.email,
            password: req.password,
            owner_name: req.name,
            org_name: req.org_name,
            org_slug: req.org_slug,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

pub const SESSION_COOKIE: &str = "vg_session";

pub(crate) fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn path_param(params: &RawPathParams, name: &str) -> Option<String> {
    params
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The actor of an `/api/v1/orgs/{org}/...` request: an API key (Bearer),
/// or for reads a browser session. The `{org}` of the path must be the
/// credential's own org; any other answers 404, exactly as a missing one.
pub struct OrgActor(pub Actor);

impl FromRequestParts<App> for OrgActor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, app)
            .await
            .map_err(|_| ApiError::NotFound)?;
        let slug = path_param(&params, "org").ok_or(ApiError::NotFound)?;
        let actor = if let Some(token) = bearer(parts) {
            (*domain::actor_for_api_key(app, token).await?).clone()
        } else if let (Some(token), true) = (
            cookie(parts, SESSION_COOKIE),
            matches!(parts.method, Method::GET | Method::HEAD),
        ) {
            // Sessions authorise reads only: writes from a browser go through
            // the pages, which carry CSRF protection.
            match domain::actor_for_session(app, token).await? {
                Some((actor, _)) => actor,
                None => return Err(ApiError::Unauthorized("the session has expired".into())),
            }
        } else {
            return Err(ApiError::Unauthorized(
                "send Authorization: Bearer <API key>".into(),
            ));
        };
        if actor.org_slug() != slug {
            return Err(ApiError::NotFound);
        }
        Ok(OrgActor(actor))
    }
}

/// The tenant of a storefront request (`/api/v1/store/{org}/...`, `/s/{org}/...`):
/// the organization the path names, if it exists; no credential is needed
/// to buy.
pub struct StoreTenant(pub Tenant);

impl FromRequestParts<App> for StoreTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, app)
            .await
            .map_err(|_| ApiError::NotFound)?;
        let slug = path_param(&params, "org").ok_or(ApiError::NotFound)?;
        if kernel::parse::slug(&slug).is_err() {
            return Err(ApiError::NotFound);
        }
        Ok(StoreTenant(domain::storefront(app, &slug).await?))
    }
}

/// The device behind `Authorization: Bearer <device token>`.
pub struct DeviceAuth(pub Arc<Device>);

impl FromRequestParts<App> for DeviceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::Unauthorized("send Authorization: Bearer <device token>".into())
        })?;
        Ok(DeviceAuth(
            super::devices::device_for_token(app, token).await?,
        ))
    }
}

/// The signed-in organizer of a page; without a session, a redirect to the
/// login page.
pub struct SessionActor {
    pub actor: Actor,
    pub csrf: String,
}

impl FromRequestParts<App> for SessionActor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let Some(token) = cookie(parts, SESSION_COOKIE) else {
            return Err(Redirect::to("/login").into_response());
        };
        match domain::actor_for_session(app, token).await {
            Ok(Some((actor, csrf))) => Ok(SessionActor { actor, csrf }),
            Ok(None) => Err(Redirect::to("/login").into_response()),
            Err(e) => Err(ApiError::from(e).into_response()),
        }
    }
}

pub(crate) async fn end_session(app: &App, parts: &Parts) -> Result<(), ApiError> {
    if let Some(token) = cookie(parts, SESSION_COOKIE) {
        domain::logout(app, token).await?;
    }
    Ok(())
}
