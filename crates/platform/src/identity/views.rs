//! Login and logout pages for organizers.

use askama::Template;
use axum::{
    Form,
    extract::{FromRequestParts, Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use serde::Deserialize;

use super::{SessionActor, api::SESSION_COOKIE, domain};
use crate::{App, web::page};

pub fn routes() -> axum::Router<App> {
    axum::Router::new()
        .route("/login", get(login_form).post(login_submit))
        .route("/logout", axum::routing::post(logout))
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    error: Option<String>,
    email: String,
}

async fn login_form() -> Response {
    page(
        StatusCode::OK,
        LoginPage {
            error: None,
            email: String::new(),
        },
    )
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
}

async fn login_submit(
    State(app): State<App>,
    kernel::http::ClientAddr(ip): kernel::http::ClientAddr,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if let Err(e) = app.kernel.limits.sensitive.check(&ip) {
        return e.into_response();
    }
    let Ok(Form(form)) = form else {
        return page(
            StatusCode::BAD_REQUEST,
            LoginPage {
                error: Some("Enter your e-mail and password.".into()),
                email: String::new(),
            },
        );
    };
    match domain::login(&app, &form.email, &form.password).await {
        Ok(token) => {
            let secure = if app.kernel.config.secure_cookies {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{SESSION_COOKIE}={}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}",
                token.expose(),
                domain::SESSION_TTL_SECS
            );
            let mut res = Redirect::to("/dashboard").into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        Err(kernel::ApiError::Unauthorized(_)) => page(
            StatusCode::UNAUTHORIZED,
            LoginPage {
                error: Some("Wrong e-mail or password.".into()),
                email: form.email,
            },
        ),
        Err(e) => e.into_response(),
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
    if !matches!(&form, Ok(Form(f)) if f.csrf == session.csrf) {
        return (StatusCode::FORBIDDEN, "invalid CSRF token").into_response();
    }
    if let Err(e) = super::api::end_session(&app, &parts).await {
        return e.into_response();
    }
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("vg_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"),
    );
    res
}

use axum::extract::FromRequest;
