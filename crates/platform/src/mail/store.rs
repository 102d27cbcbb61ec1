//! The mail slice's tables: `mail_settings`, `mail_log`.

use kernel::{
    Db, Stmt, db_run,
    ids::{OrderId, OrgId},
};
use uuid::Uuid;

use crate::identity::Tenant;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SettingsRow {
    pub sender_name: Option<String>,
    pub reply_to: Option<String>,
    pub reminder_hours: i64,
}

pub async fn settings(db: &Db, org: OrgId) -> Result<Option<SettingsRow>, sqlx::Error> {
    let sql = "SELECT sender_name, reply_to, reminder_hours FROM mail_settings WHERE org_id = $1";
    db_run!(db, p => sqlx::query_as(sql).bind(org).fetch_optional(p).await)
}

pub fn put_settings(t: &Tenant, s: &SettingsRow, now: i64) -> Stmt {
    Stmt::new(
        "INSERT INTO mail_settings (org_id, sender_name, reply_to, reminder_hours, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (org_id) DO UPDATE SET sender_name = $2, reply_to = $3, reminder_hours = $4, updated_at = $5",
    )
    .bind(t.org())
    .bind(s.sender_name.clone())
    .bind(s.reply_to.clone())
    .bind(s.reminder_hours)
    .bind(now)
}

pub struct Sent<'a> {
    pub org: OrgId,
    pub kind: &'a str,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub order: Option<OrderId>,
    pub attachments: i64,
    pub message_id: &'a str,
}

/// Records a sent message (group-committed: many workers' records share
/// one commit).
pub async fn log(db: &Db, s: Sent<'_>, now: i64) -> Result<(), sqlx::Error> {
    db.write_grouped(vec![
        Stmt::new(
            "INSERT INTO mail_log (id, org_id, kind, recipient, subject, order_id, attachments, message_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(Uuid::now_v7())
        .bind(s.org)
        .bind(s.kind.to_string())
        .bind(s.recipient.to_string())
        .bind(s.subject.to_string())
        .bind(s.order.map(|o| o.0))
        .bind(s.attachments)
        .bind(s.message_id.to_string())
        .bind(now),
    ])
    .await
}

/// Whether the message with this Message-ID has gone out already (a
/// retried job after the server took the message, a reminder run again).
pub async fn already_sent(db: &Db, org: OrgId, message_id: &str) -> Result<bool, sqlx::Error> {
    let sql = "SELECT 1 FROM mail_log WHERE org_id = $1 AND message_id = $2 LIMIT 1";
    let n: Option<i32> = db_run!(db, p => sqlx::query_scalar(sql).bind(org).bind(message_id).fetch_optional(p).await)?;
    Ok(n.is_some())
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LogRow {
    pub id: Uuid,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub order_id: Option<Uuid>,
    pub attachments: i64,
    pub created_at: i64,
}

/// The org's messages, newest first, before the cursor `before` (an id).
pub async fn recent(
    db: &Db,
    t: &Tenant,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<LogRow>, sqlx::Error> {
    let sql = "SELECT id, kind, recipient, subject, order_id, attachments, created_at FROM mail_log
               WHERE org_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3";
    db_run!(db, p => sqlx::query_as(sql).bind(t.org()).bind(before).bind(limit).fetch_all(p).await)
}
