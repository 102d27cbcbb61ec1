//! Sign-up, organization creation, credentials and login rules.

use std::{collections::BTreeSet, sync::Arc};

use kernel::{
    Permission,
    auth::{self, PlainToken},
    clock::MICROS_PER_SEC,
    error::Checks,
    events,
    ids::{ApiKeyId, OrgId, UserId},
    parse::{email as parse_email, name as parse_name, slug as parse_slug},
    tenant::Role,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    Actor, ActorKind, Hot, OrgCreated, Tenant,
    error::{Error, Result},
    store,
};
use crate::App;

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct OrgRef {
    pub id: OrgId,
    pub slug: String,
    pub name: String,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct UserView {
    pub id: UserId,
    pub email: String,
    pub name: String,
}

/// The reply to sign-up: the owner's first API key appears here only.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignupOutput {
    pub user: UserView,
    pub org: OrgRef,
    /// Shown once: the owner's API key with every permission.
    pub api_key: String,
}

/// What creating an organization takes, unchecked.
pub struct NewOrg {
    pub email: String,
    pub password: String,
    pub owner_name: Option<String>,
    pub org_name: String,
    pub org_slug: String,
}

struct CheckedOrg {
    email: String,
    password: String,
    owner_name: String,
    org_name: String,
    org_slug: String,
}

fn parse_password(s: &str) -> std::result::Result<String, String> {
    match s.chars().count() {
        0..10 => Err("must be at least 10 characters".into()),
        10..=1024 => Ok(s.to_string()),
        _ => Err("must be at most 1024 characters".into()),
    }
}

impl NewOrg {
    fn check(self) -> Result<CheckedOrg> {
        let mut c = Checks::default();
        let email = c.take("email", parse_email(&self.email));
        let password = c.take("password", parse_password(&self.password));
        let org_name = c.take("org_name", parse_name(&self.org_name, 200));
        let org_slug = c.take("org_slug", parse_slug(&self.org_slug));
        let owner_name = match &self.owner_name {
            Some(n) => c.take("name", parse_name(n, 200)),
            None => email
                .as_ref()
                .map(|e| e.split('@').next().unwrap_or(e).to_string()),
        };
        c.finish()?;
        match (email, password, org_name, org_slug, owner_name) {
            (Some(email), Some(password), Some(org_name), Some(org_slug), Some(owner_name)) => {
                Ok(CheckedOrg {
                    email,
                    password,
                    owner_name,
                    org_name,
                    org_slug,
                })
            }
            _ => Err(Error::Invalid(Vec::new())),
        }
    }
}

/// Self-service sign-up: an organization for whoever asks, unless the
/// operator switched it off (organizations are then made on the command line).
pub async fn signup(app: &App, input: NewOrg) -> Result<SignupOutput> {
    if !app.kernel.config.signup_enabled {
        return Err(Error::SignupDisabled);
    }
    create_org(app, input).await
}

/// Creates an organization with its owner and the owner's first API key
/// (every permission), in one transaction that also announces
/// `org.created` (the tickets slice makes the org's signing key from it).
pub async fn create_org(app: &App, input: NewOrg) -> Result<SignupOutput> {
    let checked = input.check()?;
    let password = checked.password.clone();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| Error::Api(kernel::ApiError::internal(e)))?
        .map_err(|e| Error::Api(kernel::ApiError::internal(e)))?;
    let org = OrgRef {
        id: OrgId::new(),
        slug: checked.org_slug,
        name: checked.org_name,
    };
    let user = UserView {
        id: UserId::new(),
        email: checked.email,
        name: checked.owner_name,
    };
    let key = PlainToken::generate("vg_");
    let permissions: BTreeSet<Permission> = Role::Owner.permissions();
    let now = app.kernel.now();
    let created = OrgCreated {
        org_id: org.id,
        slug: org.slug.clone(),
        name: org.name.clone(),
    };
    store::create_org(
        app.db(),
        store::insert_org(&org, now),
        store::insert_user(&user, &hash, now),
        vec![
            store::insert_membership(org.id, user.id, Role::Owner, now),
            store::insert_api_key(org.id, ApiKeyId::new(), "owner", &key, &permissions, now),
            events::emit(&created, now)?,
            kernel::audit::Entry {
                org: org.id.0,
                actor_kind: "user",
                actor_id: Some(user.id.to_string()),
                action: "org.create",
                object_type: "org",
                object_id: Some(org.id.to_string()),
                before: None,
                after: Some(
                    serde_json::json!({"slug": org.slug, "name": org.name, "owner": user.email}),
                ),
            }
            .stmt(now),
        ],
    )
    .await?;
    tracing::info!(org_id = %org.id, "organization created");
    Ok(SignupOutput {
        user,
        org,
        api_key: key.expose().to_string(),
    })
}

/// The actor behind an API key, from the hot tier when warm.
pub(super) async fn actor_for_api_key(app: &App, presented: &str) -> Result<Arc<Actor>> {
    let hash = PlainToken::from_presented(presented).hash();
    let hot = app.state::<Hot>();
    if let Some(actor) = hot.api_keys.get(&hash.0).await {
        return Ok(actor);
    }
    Box::pin(load_api_key(app, hash)).await
}

async fn load_api_key(app: &App, hash: kernel::auth::TokenHash) -> Result<Arc<Actor>> {
    let hot = app.state::<Hot>();
    let Some(row) = store::api_key_by_hash(app.db(), &hash).await? else {
        return Err(Error::Unauthenticated("unknown or revoked API key"));
    };
    let permissions = row
        .permissions
        .split_whitespace()
        .filter_map(Permission::parse)
        .collect();
    let actor = Arc::new(Actor::new(
        Tenant::new(row.org_id, &row.org_slug),
        ActorKind::ApiKey(row.id),
        permissions,
    ));
    hot.api_keys.insert(hash.0, actor.clone()).await;
    Ok(actor)
}

/// The tenant of an organization's public storefront: anyone may buy from
/// an existing organization; a slug that names none is a 404.
pub(super) async fn storefront(app: &App, slug: &str) -> Result<Tenant> {
    let org = super::org_by_slug(app, slug)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(Tenant::new(org.id, &org.slug))
}

/// The operator's actor for an organization (the command line, run on the
/// server itself: `voelgoed org create`, `voelgoed demo`). Never reachable
/// over HTTP.
pub async fn operator(app: &App, slug: &str) -> Result<Actor> {
    let org = super::org_by_slug(app, slug)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(Actor::new(
        Tenant::new(org.id, &org.slug),
        ActorKind::Operator,
        Permission::ALL.into_iter().collect(),
    ))
}

pub const SESSION_TTL_SECS: i64 = 12 * 3600;

/// Checks e-mail and password; on success opens a session in the user's
/// first organization and returns its secret (for the cookie).
pub async fn login(app: &App, email: &str, password: &str) -> Result<PlainToken> {
    let email = email.trim().to_lowercase();
    let row = store::user_for_login(app.db(), &email).await?;
    let password = password.to_string();
    let (ok, row) = tokio::task::spawn_blocking(move || {
        // Verify against a fixed hash when the user is unknown, so timing
        // does not tell which e-mails exist.
        let phc = row
            .as_ref()
            .map(|r| r.password_hash.as_str())
            .unwrap_or(DUMMY_HASH);
        (auth::verify_password(&password, phc), row)
    })
    .await
    .map_err(|e| Error::Api(kernel::ApiError::internal(e)))?;
    let Some(row) = row.filter(|_| ok) else {
        return Err(Error::Unauthenticated("wrong e-mail or password"));
    };
    let token = PlainToken::generate("vgs_");
    let csrf = PlainToken::generate("");
    store::insert_session(
        app.db(),
        &token.hash(),
        row.org_id,
        row.user_id,
        csrf.expose(),
        app.kernel.now() + SESSION_TTL_SECS * MICROS_PER_SEC,
    )
    .await?;
    Ok(token)
}

const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0MJa5Ys4cRA2D0Ev2R4u1E4lCbGIqRnmrjTFVWp/Ep4";

/// The actor behind a session cookie, and the session's CSRF token.
pub(super) async fn actor_for_session(
    app: &App,
    presented: &str,
) -> Result<Option<(Actor, String)>> {
    let hash = PlainToken::from_presented(presented).hash();
    let Some(row) = store::session(app.db(), &hash, app.kernel.now()).await? else {
        return Ok(None);
    };
    let permissions = Role::parse(&row.role)
        .map(Role::permissions)
        .unwrap_or_default();
    let actor = Actor::new(
        Tenant::new(row.org_id, &row.org_slug),
        ActorKind::User(row.user_id),
        permissions,
    );
    Ok(Some((actor, row.csrf_token)))
}

pub(super) async fn logout(app: &App, presented: &str) -> Result<()> {
    store::delete_session(app.db(), &PlainToken::from_presented(presented).hash()).await?;
    Ok(())
}

/// Forgets expired sessions (a periodic duty).
pub(super) async fn prune_sessions(app: &App) -> Result<u64> {
    Ok(store::prune_sessions(app.db(), app.kernel.now()).await?)
}
