//! Device credentials: a pairing code shown once when a device is added,
//! spent once for the device's bearer token. The device itself (its name,
//! the events it scans for) belongs to the scanning slice.

use std::sync::Arc;

use kernel::{
    Permission, Stmt,
    auth::{self, PlainToken},
    clock::MICROS_PER_SEC,
    ids::{DeviceId, OrgId},
};

use super::{
    Actor, ActorKind, Device, Hot, Tenant,
    error::{Error, Result},
    store,
};
use crate::App;

const PAIRING_TTL_SECS: i64 = 15 * 60;
const PAIRING_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

fn pairing_code() -> String {
    auth::random_bytes::<10>()
        .iter()
        .map(|b| PAIRING_ALPHABET[(*b as usize) % 32] as char)
        .collect()
}

/// A pairing code for a new device of `tenant`, and the statement that
/// stores its credential (for the transaction that adds the device).
pub struct Pairing {
    /// Shown once; the device sends it to `POST /api/v1/devices/pair`.
    pub code: String,
    pub expires_at: i64,
    pub stmt: Stmt,
}

pub fn new_pairing(app: &App, tenant: &Tenant, device: DeviceId) -> Pairing {
    let code = pairing_code();
    let now = app.kernel.now();
    let expires_at = now + PAIRING_TTL_SECS * MICROS_PER_SEC;
    let stmt = store::insert_device_credential(
        tenant,
        device,
        &PlainToken::from_presented(&code).hash(),
        expires_at,
        now,
    );
    Pairing {
        code,
        expires_at,
        stmt,
    }
}

/// A paired device's token (shown once) and whose it is.
pub struct Paired {
    pub device_token: String,
    pub tenant: Tenant,
    pub device: DeviceId,
}

/// Spends a pairing code for a device token. A code works once, before it
/// expires; an unknown, spent or expired one answers 404 alike.
pub async fn pair(app: &App, code: &str) -> Result<Paired> {
    let code = code.trim().to_uppercase();
    if code.is_empty() || code.len() > 64 {
        return Err(Error::Invalid(vec![kernel::FieldError::new(
            "pairing_code",
            "must be the code shown when the device was added",
        )]));
    }
    let token = PlainToken::generate("vgd_");
    let paired = store::pair(
        app.db(),
        &PlainToken::from_presented(&code).hash(),
        &token.hash(),
        app.kernel.now(),
    )
    .await?;
    let Some((org, device)) = paired else {
        return Err(Error::NotFound);
    };
    let tenant = tenant_of(app, org).await?;
    Ok(Paired {
        device_token: token.expose().to_string(),
        tenant,
        device,
    })
}

async fn tenant_of(app: &App, org: OrgId) -> Result<Tenant> {
    let o = super::org_by_id(app, org).await?.ok_or(Error::NotFound)?;
    Ok(Tenant::new(o.id, &o.slug))
}

/// The device behind a bearer token, from the hot tier when warm.
pub(super) async fn device_for_token(app: &App, presented: &str) -> Result<Arc<Device>> {
    let hash = PlainToken::from_presented(presented).hash();
    let hot = app.state::<Hot>();
    if let Some(d) = hot.devices.get(&hash.0).await {
        return Ok(d);
    }
    Box::pin(load_device(app, hash)).await
}

async fn load_device(app: &App, hash: kernel::auth::TokenHash) -> Result<Arc<Device>> {
    let hot = app.state::<Hot>();
    let Some(row) = store::device_by_token(app.db(), &hash).await? else {
        return Err(Error::Unauthenticated("unknown or revoked device token"));
    };
    let d = Arc::new(Device {
        actor: Actor::new(
            Tenant::new(row.org_id, &row.org_slug),
            ActorKind::Device(row.device_id),
            [Permission::Scan].into_iter().collect(),
        ),
        id: row.device_id,
    });
    hot.devices.insert(hash.0, d.clone()).await;
    Ok(d)
}
