//! An org's signing keys: rotated (a new key signs, the old ones still
//! verify), retired once no valid ticket carries their codes (re-issued
//! first, when asked), and a ticket re-issued alone (a new code under the
//! active key; the old ticket revoked at once).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use kernel::{
    ApiError, ApiResult, DomainEvent, Permission, clock,
    ids::{OrgId, TicketId},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Hot, TicketRecord, TicketStatus, TicketView, store};
use crate::{
    App,
    identity::{Actor, Tenant},
};

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub kid: String,
    /// Ed25519 public key, base64url without padding.
    pub public_key: String,
    /// The key new tickets are signed with.
    pub active: bool,
    pub created_at: String,
    /// Retired: its codes verify nowhere any more.
    pub retired_at: Option<String>,
    /// Valid tickets whose codes it signed.
    pub tickets: i64,
}

fn view(r: store::KeyRow) -> KeyView {
    KeyView {
        kid: r.kid,
        public_key: URL_SAFE_NO_PAD.encode(&r.public_key),
        active: r.active,
        created_at: clock::rfc3339(r.created_at),
        retired_at: r.retired_at.map(clock::rfc3339),
        tickets: r.tickets,
    }
}

/// The org's keys changed: every node forgets its cached keys of the org.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeysChanged {
    pub org_id: OrgId,
}

impl DomainEvent for KeysChanged {
    const NAME: &'static str = "signing_keys.changed";
    fn org(&self) -> OrgId {
        self.org_id
    }
}

/// The node-wide topic of [`KeysChanged`] signals.
pub const KEYS_TOPIC: &str = "node:signing-keys";

async fn changed(app: &App, org: OrgId) {
    app.state::<Hot>().keys.invalidate(&org).await;
    let mut msg = kernel::events::Recorded::signal(&KeysChanged { org_id: org }, app.kernel.now());
    msg.topic = KEYS_TOPIC.to_string();
    app.kernel.hub.publish(msg).await;
}

/// Forgets an org's keys on this node as signals arrive.
pub(super) fn follow_key_changes(kernel: &kernel::Kernel, hot: &Hot) {
    let keys = hot.keys.clone();
    let mut rx = kernel.hub.subscribe(KEYS_TOPIC);
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(msg) => {
                    if let Some(c) = msg.decode::<KeysChanged>() {
                        keys.invalidate(&c.data().org_id).await;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => keys.invalidate_all(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

pub async fn list(app: &App, actor: &Actor) -> ApiResult<Vec<KeyView>> {
    let t = actor.require(Permission::KeysManage)?;
    // An org whose first key is not made yet gets it now.
    super::org_keys(app, t).await?;
    Ok(store::key_rows(app.db(), t.org())
        .await?
        .into_iter()
        .map(view)
        .collect())
}

/// A new active key; the one before keeps verifying its tickets' codes.
pub async fn rotate(app: &App, actor: &Actor) -> ApiResult<KeyView> {
    let t = actor.require(Permission::KeysManage)?;
    super::org_keys(app, t).await?;
    let now = app.kernel.now();
    let mut tx = app.db().begin().await?;
    let kid = store::rotate_key(&mut tx, &app.kernel.master, t.org(), now).await?;
    actor
        .audit("signing_key.rotate", "signing_key")
        .object(&kid)
        .stmt(now)
        .execute_in(&mut tx)
        .await?;
    tx.commit().await?;
    changed(app, t.org()).await;
    find(app, t, &kid).await
}

async fn find(app: &App, t: &Tenant, kid: &str) -> ApiResult<KeyView> {
    store::key_rows(app.db(), t.org())
        .await?
        .into_iter()
        .find(|k| k.kid == kid)
        .map(view)
        .ok_or(ApiError::NotFound)
}

/// Retires a key that no longer signs: its codes verify nowhere from now
/// on. Its valid tickets are re-issued first when `reissue`; otherwise any
/// left is a 409 (they would stop admitting).
pub async fn retire(
    app: &App,
    actor: &Actor,
    kid: &str,
    reissue_first: bool,
) -> ApiResult<KeyView> {
    let t = actor.require(Permission::KeysManage)?;
    let key = find(app, t, kid).await?;
    if key.active {
        return Err(ApiError::Conflict(
            "the active key signs new tickets: rotate first".into(),
        ));
    }
    if key.retired_at.is_some() {
        return Ok(key);
    }
    let carried = store::tickets_of_key(app.db(), t, kid).await?;
    if !carried.is_empty() && !reissue_first {
        return Err(ApiError::Conflict(format!(
            "{} valid tickets carry codes of this key: re-issue them first (\"reissue\": true)",
            carried.len()
        )));
    }
    for old in carried {
        match reissue_record(app, actor, t, old).await {
            Ok(_) | Err(ApiError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let now = app.kernel.now();
    let mut tx = app.db().begin().await?;
    // A ticket issued under it meanwhile (a checkout that read the keys
    // before the rotation) keeps it from retiring.
    if !store::tickets_of_key(app.db(), t, kid).await?.is_empty() {
        return Err(ApiError::Conflict(
            "a ticket was issued under this key meanwhile: try again".into(),
        ));
    }
    store::retire_key(&mut tx, t.org(), kid, now).await?;
    actor
        .audit("signing_key.retire", "signing_key")
        .object(kid)
        .after(serde_json::json!({"reissued": reissue_first}))
        .stmt(now)
        .execute_in(&mut tx)
        .await?;
    tx.commit().await?;
    changed(app, t.org()).await;
    find(app, t, kid).await
}

/// Re-issues a ticket: a new ticket with a new code under the active key
/// (same order, type, seat, answers, holder, and where it stands at the
/// gate), the old one revoked at once. 409 when it is not valid.
pub async fn reissue(app: &App, actor: &Actor, ticket: TicketId) -> ApiResult<TicketView> {
    let t = actor.require(Permission::OrdersWrite)?;
    let old = store::by_id(app.db(), t, ticket)
        .await?
        .ok_or(ApiError::NotFound)?;
    let new = reissue_record(app, actor, t, old).await?;
    let views = super::views(app, t, vec![new]).await?;
    views.into_iter().next().ok_or(ApiError::NotFound)
}

async fn reissue_record(
    app: &App,
    actor: &Actor,
    t: &Tenant,
    old: TicketRecord,
) -> ApiResult<TicketRecord> {
    if old.status != TicketStatus::Valid {
        return Err(ApiError::Conflict(
            "this ticket was revoked or handed on: it is not re-issued".into(),
        ));
    }
    let keys = super::org_keys(app, t).await?;
    let id = TicketId::new();
    let new = TicketRecord {
        id,
        code: super::code::sign_compact(
            &keys.signing.0,
            &keys.signing.1,
            id,
            old.event_id,
            old.ticket_type_id,
            super::validity(old.ticket_type_id),
        ),
        status: TicketStatus::Valid,
        replaces: Some(old.id),
        transferred_at: None,
        ..old.clone()
    };
    let now = app.kernel.now();
    let mut tx = app.db().begin().await?;
    if store::revoke_one(t, old.id).execute_in(&mut tx).await? != 1 {
        return Err(ApiError::Conflict(
            "this ticket was revoked meanwhile: it is not re-issued".into(),
        ));
    }
    store::insert_ticket(t, old.order_id, &new, now)
        .execute_in(&mut tx)
        .await?;
    store::carry_presence(t, old.id, id)
        .execute_in(&mut tx)
        .await?;
    super::announce_replaced(&mut tx, t, &old, &new, now).await?;
    actor
        .audit("ticket.reissue", "ticket")
        .object(old.id)
        .after(serde_json::json!({"ticket_id": id}))
        .stmt(now)
        .execute_in(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(store::by_id(app.db(), t, id).await?.unwrap_or(new))
}
