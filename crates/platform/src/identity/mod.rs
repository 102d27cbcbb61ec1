//! Identity and tenancy: organizations, users (argon2id), memberships with
//! roles, API keys (shown once, stored as SHA-256), browser sessions.
//!
//! Owns: `orgs`, `users`, `memberships`, `api_keys`, `sessions`.
//! Emits: none yet. Consumes: none.
//! Invariants: every credential resolves to exactly one org; an [`Actor`]
//! exists only after a credential was checked here; a request naming another
//! org than its credential's answers 404, as for a missing object.

mod api;
mod domain;
mod store;
pub mod views;

use std::{sync::Arc, time::Duration};

pub use api::{OrgActor, SessionActor, bearer as bearer_token, routes};
pub use domain::{NewOrg, OrgRef, SignupOutput, create_org, login};
use kernel::{Actor, ApiResult, ids::OrgId};

use crate::App;

/// The identity hot tier: API keys and org slugs, so that authenticating a
/// request costs no database read while the entry is warm.
pub struct Hot {
    api_keys: moka::future::Cache<Vec<u8>, Arc<Actor>>,
    orgs: moka::future::Cache<String, Arc<OrgRef>>,
}

impl Hot {
    pub fn new() -> Hot {
        Hot {
            api_keys: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
            orgs: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
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
    if let Some(org) = app.identity.orgs.get(slug).await {
        return Ok(Some(org));
    }
    let Some(org) = store::org_by_slug(app.db(), slug).await? else {
        return Ok(None);
    };
    let org = Arc::new(org);
    app.identity
        .orgs
        .insert(slug.to_string(), org.clone())
        .await;
    Ok(Some(org))
}

/// The org's id and slug by id (for pages that start from a session).
pub async fn org_by_id(app: &App, org: OrgId) -> ApiResult<Option<OrgRef>> {
    Ok(store::org_by_id(app.db(), org).await?)
}
