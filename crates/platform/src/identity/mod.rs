//! Identity and tenancy: organizations, users (argon2id), memberships with
//! roles, and every credential — API keys (shown once, stored as SHA-256),
//! browser sessions, scanning devices (paired once with a code, scoped to
//! chosen events). The only maker of [`Tenant`] and [`Actor`].
//!
//! Owns: `orgs`, `users`, `memberships`, `api_keys`, `sessions`,
//! `device_credentials`.
//! Emits: `org.created`. Consumes: nothing.
//! Invariants: every credential resolves to exactly one org; a tenant exists
//! only after a credential was checked here (or for the storefront of an
//! existing org); a request naming another org than its credential's
//! answers 404, as for a missing object.

mod api;
mod devices;
mod domain;
mod error;
mod store;
mod tenancy;
mod views;

use std::{sync::Arc, time::Duration};

pub use api::{DeviceAuth, OrgActor, SessionActor, StoreTenant, bearer as bearer_token};
pub use devices::{
    CredentialState, DEVICES_TOPIC, DeviceChanged, Paired, Pairing, announce_device_changed,
    credentials as device_credentials, new_pairing, pair, repairing, revoke_device,
};
pub use domain::{NewOrg, OrgRef, SignupOutput, UserView, create_org, login, operator};
pub use error::Error;
use kernel::{ApiResult, DomainEvent, Kernel, Slice, ids::OrgId};
use serde::{Deserialize, Serialize};
pub use tenancy::{Actor, ActorKind, Device, Tenant};

use crate::App;

/// A new organization exists (with its owner and first API key).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrgCreated {
    pub org_id: OrgId,
    pub slug: String,
    pub name: String,
}

impl DomainEvent for OrgCreated {
    const NAME: &'static str = "org.created";
    fn org(&self) -> OrgId {
        self.org_id
    }
}

pub fn slice(kernel: &Kernel) -> Slice<App> {
    let hot = Hot::new();
    devices::follow_device_changes(kernel, hot.devices.clone());
    Slice::new("identity")
        .routes(api::routes())
        .pages(views::routes())
        .state(hot)
        .every(
            "identity.prune_sessions",
            Duration::from_secs(3600),
            |app: App| async move {
                domain::prune_sessions(&app)
                    .await
                    .map(|n| n as usize)
                    .map_err(|e| e.to_string())
            },
        )
}

/// The identity hot tier: credentials and org slugs, so that authenticating
/// a request costs no database read while the entry is warm. Every cache is
/// bounded in size and time: a revoked credential stops working within its
/// time to live.
pub struct Hot {
    api_keys: moka::future::Cache<Vec<u8>, Arc<Actor>>,
    devices: moka::future::Cache<Vec<u8>, Arc<Device>>,
    orgs: moka::future::Cache<String, Arc<OrgRef>>,
    org_ids: moka::future::Cache<OrgId, Arc<OrgRef>>,
}

impl Hot {
    pub fn new() -> Hot {
        fn cache<K, V>(ttl: u64) -> moka::future::Cache<K, V>
        where
            K: std::hash::Hash + Eq + Send + Sync + 'static,
            V: Clone + Send + Sync + 'static,
        {
            moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(ttl))
                .support_invalidation_closures()
                .build()
        }
        Hot {
            api_keys: cache(30),
            devices: cache(30),
            orgs: cache(60),
            org_ids: cache(60),
        }
    }
}

impl Default for Hot {
    fn default() -> Self {
        Self::new()
    }
}

/// The organization with this slug, from the hot tier when warm.
pub async fn org_by_slug(app: &App, slug: &str) -> ApiResult<Option<Arc<OrgRef>>> {
    let hot = app.state::<Hot>();
    if let Some(org) = hot.orgs.get(slug).await {
        return Ok(Some(org));
    }
    Box::pin(load_org_by_slug(app, slug)).await
}

async fn load_org_by_slug(app: &App, slug: &str) -> ApiResult<Option<Arc<OrgRef>>> {
    let hot = app.state::<Hot>();
    let Some(org) = store::org_by_slug(app.db(), slug).await? else {
        return Ok(None);
    };
    let org = Arc::new(org);
    hot.orgs.insert(slug.to_string(), org.clone()).await;
    Ok(Some(org))
}

/// The tenant the platform's own upkeep acts for (reconciling an org's
/// inventory counters, say): never reachable over HTTP, never from a
/// request's input.
pub async fn upkeep_tenant(app: &App, org: OrgId) -> ApiResult<Option<Tenant>> {
    Ok(org_by_id(app, org)
        .await?
        .map(|o| Tenant::new(o.id, &o.slug)))
}

/// Where mail for the org's people in charge goes: its owners' and
/// admins' addresses.
pub async fn owner_emails(app: &App, org: OrgId) -> ApiResult<Vec<String>> {
    Ok(store::owner_emails(app.db(), org).await?)
}

/// The organization with this id, from the hot tier when warm.
pub async fn org_by_id(app: &App, org: OrgId) -> ApiResult<Option<Arc<OrgRef>>> {
    let hot = app.state::<Hot>();
    if let Some(o) = hot.org_ids.get(&org).await {
        return Ok(Some(o));
    }
    let Some(o) = store::org_by_id(app.db(), org).await? else {
        return Ok(None);
    };
    let o = Arc::new(o);
    hot.org_ids.insert(org, o.clone()).await;
    Ok(Some(o))
}
