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
    pairing_with(app, tenant, device, false)
}

/// A new pairing code for an existing device (re-pairing): the statement
/// voids its token and any earlier code, and lifts a revocation.
pub fn repairing(app: &App, tenant: &Tenant, device: DeviceId) -> Pairing {
    pairing_with(app, tenant, device, true)
}

fn pairing_with(app: &App, tenant: &Tenant, device: DeviceId, again: bool) -> Pairing {
    let code = pairing_code();
    let now = app.kernel.now();
    let expires_at = now + PAIRING_TTL_SECS * MICROS_PER_SEC;
    let hash = PlainToken::from_presented(&code).hash();
    let stmt = if again {
        store::repair_device_credential(tenant, device, &hash, expires_at)
    } else {
        store::insert_device_credential(tenant, device, &hash, expires_at, now)
    };
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

/// The statement that revokes a device's credential.
pub fn revoke_device(tenant: &Tenant, device: DeviceId, now: i64) -> Stmt {
    store::revoke_device_credential(tenant, device, now)
}

/// A device's credential, as the organizer's list shows it.
#[derive(Clone, Copy, Debug, Default)]
pub struct CredentialState {
    pub paired_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub pairing_expires_at: Option<i64>,
}

/// Every device credential of the tenant.
pub async fn credentials(
    app: &App,
    tenant: &Tenant,
) -> Result<std::collections::HashMap<DeviceId, CredentialState>> {
    Ok(store::device_credentials(app.db(), tenant)
        .await?
        .into_iter()
        .map(|(d, paired_at, revoked_at, pairing_expires_at)| {
            (
                d,
                CredentialState {
                    paired_at,
                    revoked_at,
                    pairing_expires_at,
                },
            )
        })
        .collect())
}

/// A device's credential or scope changed: every node forgets what it
/// cached of it, at once (a PubSub signal; the caches' time to live bounds
/// the staleness should a signal be lost).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DeviceChanged {
    pub org_id: OrgId,
    pub device_id: DeviceId,
}

impl kernel::DomainEvent for DeviceChanged {
    const NAME: &'static str = "device.changed";
    fn org(&self) -> OrgId {
        self.org_id
    }
}

/// The node-wide topic of [`DeviceChanged`] signals.
pub const DEVICES_TOPIC: &str = "node:devices";

pub async fn announce_device_changed(app: &App, org: OrgId, device: DeviceId) {
    let mut msg = kernel::events::Recorded::signal(
        &DeviceChanged {
            org_id: org,
            device_id: device,
        },
        app.kernel.now(),
    );
    msg.topic = DEVICES_TOPIC.to_string();
    app.kernel.hub.publish(msg).await;
}

/// Forgets devices on this node as their signals arrive.
pub(super) fn follow_device_changes(
    kernel: &kernel::Kernel,
    devices: moka::future::Cache<Vec<u8>, Arc<Device>>,
) {
    let mut rx = kernel.hub.subscribe(DEVICES_TOPIC);
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(msg) => {
                    if let Some(changed) = msg.decode::<DeviceChanged>() {
                        let id = changed.data().device_id;
                        let _ = devices.invalidate_entries_if(move |_, d| d.id == id);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    devices.invalidate_all();
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}
