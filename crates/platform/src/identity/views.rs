//! Login and logout pages for organizers. Both forms carry a CSRF token:
//! logout the session's; login (before any session) a double-submit token,
//! set as a cookie with the form and compared in constant time.

use askama::Template;
use axum::{
    Form,
    extract::{FromRequest, FromRequestParts, Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use kernel::auth::PlainToken;
use serde::Deserialize;

use super::{
    SessionActor,
    api::{SESSION_COOKIE, cookie},
    domain,
    error::Error,
};
use crate::{
    App,
    web::{csrf_matches, page},
};

pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/login", get(login_form).post(login_submit))
        .route("/logout", axum::routing::post(logout))
}

const LOGIN_CSRF_COOKIE: &str = "vg_login_csrf";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    error: Option<String>,
    email: String,
    csrf: String,
}

fn secure_attr(app: &App) -> &'static str {
    if app.kernel.config.secure_cookies {
        "; Secure"
    } else {
        ""
    }
}

/// The login page with a fresh CSRF token, also set as a cookie.
fn login_page(app: &App, status: StatusCode, error: Option<String>, email: String) -> Response {
    let csrf = PlainToken::generate("").expose().to_string();
    let mut res = page(
        status,
        LoginPage {
            error,
            email,
            csrf: csrf.clone(),
        },
    );
    let cookie = format!(
        "{LOGIN_CSRF_COOKIE}={csrf}; HttpOnly; SameSite=Strict; Path=/login; Max-Age=3600{}",
        secure_attr(app)
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

async fn login_form(State(app): State<App>) -> Response {
    login_page(&app, StatusCode::OK, None, String::new())
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    csrf: String,
}

async fn login_submit(State(app): State<App>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let kernel::http::ClientAddr(ip) =
        match kernel::http::ClientAddr::from_request_parts(&mut parts, &app).await {
            Ok(a) => a,
            Err(never) => match never {},
        };
    if let Err(e) = app.kernel.limits.sensitive.check(&ip).await {
        return e.into_response();
    }
    let expected = cookie(&parts, LOGIN_CSRF_COOKIE).map(str::to_string);
    let form = Form::<LoginForm>::from_request(Request::from_parts(parts, body), &app).await;
    let Ok(Form(form)) = form else {
        return login_page(
            &app,
            StatusCode::BAD_REQUEST,
            Some("Enter your e-mail and password.".into()),
            String::new(),
        );
    };
    if !expected.is_some_and(|e| csrf_matches(&e, &form.csrf)) {
        return login_page(
            &app,
            StatusCode::FORBIDDEN,
            Some("The form expired; please try again.".into()),
            form.email,
        );
    }
    match domain::login(&app, &form.email, &form.password).await {
        Ok(token) => {
            let cookie = format!(
                "{SESSION_COOKIE}={}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{}",
                token.expose(),
                domain::SESSION_TTL_SECS,
                secure_attr(&app)
            );
            let mut res = Redirect::to("/dashboard").into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        Err(Error::Unauthenticated(_)) => login_page(
            &app,
            StatusCode::UNAUTHORIZED,
            Some("Wrong e-mail or password.".into()),
            form.email,
        ),
        Err(e) => kernel::ApiError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: String,
}

async fn logout(State(app): State<App>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let Ok(session) = SessionActor::from_request_parts(&mut parts, &app).await else {
        return Redirect::to("/login").into_response();
    };
    let req = Request::from_parts(parts.clone(), body);
    let form = axum::Form::<LogoutForm>::from_request(req, &app).await;
    if !matches!(&form, Ok(Form(f)) if csrf_matches(&session.csrf, &f.csrf)) {
        return (StatusCode::FORBIDDEN, "invalid CSRF token").into_response();
    }
    if let Err(e) = super::api::end_session(&app, &parts).await {
        return e.into_response();
    }
    let mut res = Redirect::to("/login").into_response();
    let clear = format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{}",
        secure_attr(&app)
    );
    if let Ok(v) = HeaderValue::from_str(&clear) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}
