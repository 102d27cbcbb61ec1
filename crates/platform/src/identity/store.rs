//! Identity's tables. Every statement on tenant data names its org, read
//! from a [`Tenant`]; credentials are looked up by the hash of the secret.

use std::collections::BTreeSet;

use kernel::{
    Db, Permission, Stmt, Tx,
    auth::{PlainToken, TokenHash},
    db_run,
    ids::{ApiKeyId, DeviceId, OrgId, UserId},
    tenant::Role,
};

use super::{
    Tenant,
    domain::{OrgRef, UserView},
    error::Error,
};

pub fn insert_org(org: &OrgRef, now: i64) -> Stmt {
    Stmt::new("INSERT INTO orgs (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(org.id)
        .bind(org.slug.clone())
        .bind(org.name.clone())
        .bind(now)
}

pub fn insert_user(user: &UserView, password_hash: &str, now: i64) -> Stmt {
    Stmt::new(
        "INSERT INTO users (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user.id)
    .bind(user.email.clone())
    .bind(user.name.clone())
    .bind(password_hash)
    .bind(now)
}

pub fn insert_membership(org: OrgId, user: UserId, role: Role, now: i64) -> Stmt {
    Stmt::new("INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
        .bind(org)
        .bind(user)
        .bind(role.as_str())
        .bind(now)
}

pub fn insert_api_key(
    org: OrgId,
    id: ApiKeyId,
    name: &str,
    key: &PlainToken,
    permissions: &BTreeSet<Permission>,
    now: i64,
) -> Stmt {
    let perms = permissions
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    Stmt::new(
        "INSERT INTO api_keys (org_id, id, name, token_hash, permissions, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(org)
    .bind(id)
    .bind(name)
    .bind(key.hash().0)
    .bind(perms)
    .bind(now)
}

/// Creates an organization, its owner and the rest in one transaction; a
/// taken slug or e-mail is told apart from other failures.
#[tracing::instrument(skip_all)]
pub async fn create_org(db: &Db, org: Stmt, owner: Stmt, rest: Vec<Stmt>) -> Result<(), Error> {
    let unique_or = |e: sqlx::Error, taken: Error| {
        if kernel::db::is_unique_violation(&e) {
            taken
        } else {
            Error::Db(e)
        }
    };
    let mut tx: Tx = db.begin().await?;
    org.execute_in(&mut tx)
        .await
        .map_err(|e| unique_or(e, Error::SlugTaken))?;
    owner
        .execute_in(&mut tx)
        .await
        .map_err(|e| unique_or(e, Error::EmailTaken))?;
    tx.run_all(rest).await?;
    tx.commit().await?;
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
    let stmt = Stmt::new(
        "INSERT INTO sessions (token_hash, org_id, user_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash.0.clone())
    .bind(org)
    .bind(user)
    .bind(csrf)
    .bind(expires_at);
    db.write_grouped(vec![stmt]).await
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
    let stmt = Stmt::new("DELETE FROM sessions WHERE token_hash = $1").bind(hash.0.clone());
    db.write_grouped(vec![stmt]).await
}

/// Forgets sessions past their expiry.
pub async fn prune_sessions(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let _queued = db.serial_write().await;
    Stmt::new("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(db)
        .await
}

/// The credential row of a new device: its pairing code, live until
/// `expires_at`; to run in the transaction that adds the device.
pub fn insert_device_credential(
    t: &Tenant,
    device: DeviceId,
    pairing_hash: &TokenHash,
    expires_at: i64,
    now: i64,
) -> Stmt {
    Stmt::new(
        "INSERT INTO device_credentials (org_id, device_id, pairing_code_hash, pairing_expires_at, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(t.org())
    .bind(device)
    .bind(pairing_hash.0.clone())
    .bind(expires_at)
    .bind(now)
}

/// Spends the pairing code: sets the token where the code is live and
/// unspent. Only one caller can win a code.
#[tracing::instrument(skip_all)]
pub async fn pair(
    db: &Db,
    code: &TokenHash,
    token: &TokenHash,
    now: i64,
) -> Result<Option<(OrgId, DeviceId)>, sqlx::Error> {
    let sql = "UPDATE device_credentials SET token_hash = $1, paired_at = $2, pairing_code_hash = NULL
               WHERE pairing_code_hash = $3 AND pairing_expires_at > $2 AND token_hash IS NULL AND revoked_at IS NULL
               RETURNING org_id, device_id";
    let mut tx = db.begin().await?;
    let paired: Option<(OrgId, DeviceId)> = kernel::tx_run!(&mut tx, c => sqlx::query_as(sql).bind(&token.0).bind(now).bind(&code.0).fetch_optional(c).await)?;
    if let Some((org, device)) = paired {
        // The device pairs itself: it is the actor.
        kernel::audit::Entry {
            org: org.0,
            actor_kind: "device",
            actor_id: Some(device.to_string()),
            action: "device.pair",
            object_type: "device",
            object_id: Some(device.to_string()),
            before: None,
            after: None,
        }
        .stmt(now)
        .execute_in(&mut tx)
        .await?;
    }
    tx.commit().await?;
    Ok(paired)
}

#[derive(sqlx::FromRow)]
pub struct DeviceRow {
    pub org_id: OrgId,
    pub org_slug: String,
    pub device_id: DeviceId,
}

#[tracing::instrument(skip_all)]
pub async fn device_by_token(db: &Db, token: &TokenHash) -> Result<Option<DeviceRow>, sqlx::Error> {
    let sql = "SELECT d.org_id, o.slug AS org_slug, d.device_id
               FROM device_credentials d JOIN orgs o ON o.id = d.org_id
               WHERE d.token_hash = $1 AND d.revoked_at IS NULL";
    db_run!(db, p => sqlx::query_as(sql).bind(&token.0).fetch_optional(p).await)
}

/// The e-mail addresses of the org's owners and admins.
#[tracing::instrument(skip_all)]
pub async fn owner_emails(db: &Db, org: OrgId) -> Result<Vec<String>, sqlx::Error> {
    let sql = "SELECT u.email FROM users u JOIN memberships m ON m.user_id = u.id
               WHERE m.org_id = $1 AND m.role IN ($2, $3) ORDER BY m.created_at";
    db_run!(db, p => sqlx::query_scalar(sql).bind(org).bind(Role::Owner.as_str()).bind(Role::Admin.as_str()).fetch_all(p).await)
}

/// Revokes a device's credential: its token stops working, any pairing
/// code it had is void.
pub fn revoke_device_credential(t: &Tenant, device: DeviceId, now: i64) -> Stmt {
    Stmt::new(
        "UPDATE device_credentials SET revoked_at = $3, token_hash = NULL, pairing_code_hash = NULL
         WHERE org_id = $1 AND device_id = $2",
    )
    .bind(t.org())
    .bind(device)
    .bind(now)
}

/// A new pairing code for a device: its old token stops working at once,
/// and a revoked device may come back by pairing again.
pub fn repair_device_credential(
    t: &Tenant,
    device: DeviceId,
    pairing_hash: &TokenHash,
    expires_at: i64,
) -> Stmt {
    Stmt::new(
        "UPDATE device_credentials SET pairing_code_hash = $3, pairing_expires_at = $4,
                token_hash = NULL, paired_at = NULL, revoked_at = NULL
         WHERE org_id = $1 AND device_id = $2",
    )
    .bind(t.org())
    .bind(device)
    .bind(pairing_hash.0.clone())
    .bind(expires_at)
}

/// Per device of the org: when it paired, when it was revoked, until when
/// its pairing code works (if it has one).
pub async fn device_credentials(
    db: &Db,
    t: &Tenant,
) -> Result<Vec<(DeviceId, Option<i64>, Option<i64>, Option<i64>)>, sqlx::Error> {
    let sql = "SELECT device_id, paired_at, revoked_at,
                      CASE WHEN pairing_code_hash IS NULL THEN NULL ELSE pairing_expires_at END
               FROM device_credentials WHERE org_id = $1";
    db_run!(db, p => sqlx::query_as(sql).bind(t.org()).fetch_all(p).await)
}
