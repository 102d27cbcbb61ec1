//! Identity's tables. Every statement that touches tenant data names its org.

use std::collections::BTreeSet;

use kernel::{
    Db, Permission, Tx,
    auth::{PlainToken, TokenHash},
    clock::now_micros,
    db_run,
    ids::{ApiKeyId, OrgId, UserId},
    tenant::Role,
    tx_run,
};

use super::domain::{OrgRef, UserView};

#[tracing::instrument(skip_all)]
pub async fn insert_org(tx: &mut Tx, org: &OrgRef) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO orgs (id, slug, name, created_at) VALUES ($1, $2, $3, $4)";
    tx_run!(tx, c => sqlx::query(sql).bind(org.id).bind(&org.slug).bind(&org.name).bind(now_micros()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[tracing::instrument(skip_all)]
pub async fn insert_user(
    tx: &mut Tx,
    user: &UserView,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO users (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)";
    tx_run!(tx, c => sqlx::query(sql)
        .bind(user.id).bind(&user.email).bind(&user.name).bind(password_hash).bind(now_micros())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[tracing::instrument(skip_all)]
pub async fn insert_membership(
    tx: &mut Tx,
    org: OrgId,
    user: UserId,
    role: Role,
) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)";
    tx_run!(tx, c => sqlx::query(sql).bind(org).bind(user).bind(role.as_str()).bind(now_micros()).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[tracing::instrument(skip_all)]
pub async fn insert_api_key(
    tx: &mut Tx,
    org: OrgId,
    id: ApiKeyId,
    name: &str,
    key: &PlainToken,
    permissions: &BTreeSet<Permission>,
) -> Result<(), sqlx::Error> {
    let perms = permissions
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let sql = "INSERT INTO api_keys (org_id, id, name, token_hash, permissions, created_at)
               VALUES ($1, $2, $3, $4, $5, $6)";
    tx_run!(tx, c => sqlx::query(sql)
        .bind(org).bind(id).bind(name).bind(key.hash().0).bind(&perms).bind(now_micros())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[derive(sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: ApiKeyId,
    pub org_id: OrgId,
    pub org_slug: String,
    pub permissions: String,
}

#[tracing::instrument(skip_all)]
pub async fn api_key_by_hash(db: &Db, hash: &TokenHash) -> Result<Option<ApiKeyRow>, sqlx::Error> {
    let sql = "SELECT k.id, k.org_id, o.slug AS org_slug, k.permissions
               FROM api_keys k JOIN orgs o ON o.id = k.org_id
               WHERE k.token_hash = $1 AND k.revoked_at IS NULL";
    db_run!(db, p => sqlx::query_as(sql).bind(&hash.0).fetch_optional(p).await)
}

#[tracing::instrument(skip_all)]
pub async fn org_by_slug(db: &Db, slug: &str) -> Result<Option<OrgRef>, sqlx::Error> {
    let sql = "SELECT id, slug, name FROM orgs WHERE slug = $1";
    db_run!(db, p => sqlx::query_as(sql).bind(slug).fetch_optional(p).await)
}

#[tracing::instrument(skip_all)]
pub async fn org_by_id(db: &Db, org: OrgId) -> Result<Option<OrgRef>, sqlx::Error> {
    let sql = "SELECT id, slug, name FROM orgs WHERE id = $1";
    db_run!(db, p => sqlx::query_as(sql).bind(org).fetch_optional(p).await)
}

#[derive(sqlx::FromRow)]
pub struct LoginRow {
    pub user_id: UserId,
    pub org_id: OrgId,
    pub password_hash: String,
}

/// The user and their first organization.
#[tracing::instrument(skip_all)]
pub async fn user_for_login(db: &Db, email: &str) -> Result<Option<LoginRow>, sqlx::Error> {
    let sql = "SELECT u.id AS user_id, m.org_id, u.password_hash
               FROM users u JOIN memberships m ON m.user_id = u.id
               WHERE u.email = $1 ORDER BY m.created_at LIMIT 1";
    db_run!(db, p => sqlx::query_as(sql).bind(email).fetch_optional(p).await)
}

#[tracing::instrument(skip_all)]
pub async fn insert_session(
    db: &Db,
    hash: &TokenHash,
    org: OrgId,
    user: UserId,
    csrf: &str,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO sessions (token_hash, org_id, user_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4, $5)";
    db_run!(db, p => sqlx::query(sql).bind(&hash.0).bind(org).bind(user).bind(csrf).bind(expires_at).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}

#[derive(sqlx::FromRow)]
pub struct SessionRow {
    pub org_id: OrgId,
    pub org_slug: String,
    pub user_id: UserId,
    pub role: String,
    pub csrf_token: String,
}

#[tracing::instrument(skip_all)]
pub async fn session(
    db: &Db,
    hash: &TokenHash,
    now: i64,
) -> Result<Option<SessionRow>, sqlx::Error> {
    let sql = "SELECT s.org_id, o.slug AS org_slug, s.user_id, m.role, s.csrf_token
               FROM sessions s
               JOIN orgs o ON o.id = s.org_id
               JOIN memberships m ON m.org_id = s.org_id AND m.user_id = s.user_id
               WHERE s.token_hash = $1 AND s.expires_at > $2";
    db_run!(db, p => sqlx::query_as(sql).bind(&hash.0).bind(now).fetch_optional(p).await)
}

#[tracing::instrument(skip_all)]
pub async fn delete_session(db: &Db, hash: &TokenHash) -> Result<(), sqlx::Error> {
    db_run!(db, p => sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(&hash.0).execute(p).await.map(|r| r.rows_affected()))?;
    Ok(())
}
