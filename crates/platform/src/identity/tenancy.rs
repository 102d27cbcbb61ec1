//! The tenant context (guardrail 3). Every tenant-scoped domain and store
//! function takes a [`Tenant`] and reads the org from it, never from a
//! request body or a path. Only this module can make one — from a checked
//! credential (API key, session, device token), from the storefront's
//! published organization, or for the operator's command line — and the
//! test kit (`cfg(test)` / feature `testkit`). A call with another tenant's
//! org does not compile: there is nothing to pass it in.

use std::{collections::BTreeSet, sync::Arc};

use kernel::{
    ApiError, Permission,
    ids::{ApiKeyId, DeviceId, OrgId, UserId},
};

/// The organization a request acts for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    org: OrgId,
    slug: Arc<str>,
}

impl Tenant {
    pub(super) fn new(org: OrgId, slug: &str) -> Tenant {
        Tenant {
            org,
            slug: Arc::from(slug),
        }
    }

    /// For tests only: a tenant without a credential.
    #[cfg(any(test, feature = "testkit"))]
    pub fn for_tests(org: OrgId, slug: &str) -> Tenant {
        Tenant::new(org, slug)
    }

    pub fn org(&self) -> OrgId {
        self.org
    }

    pub fn slug(&self) -> &str {
        &self.slug
    }
}

/// Who holds the credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActorKind {
    User(UserId),
    ApiKey(ApiKeyId),
    Device(DeviceId),
    /// The command line, run by the operator on the server itself.
    Operator,
}

/// A tenant plus who acts in it and what they may do.
#[derive(Clone, Debug)]
pub struct Actor {
    tenant: Tenant,
    kind: ActorKind,
    permissions: BTreeSet<Permission>,
}

impl Actor {
    pub(super) fn new(tenant: Tenant, kind: ActorKind, permissions: BTreeSet<Permission>) -> Actor {
        Actor {
            tenant,
            kind,
            permissions,
        }
    }

    /// For tests only: an actor holding every permission.
    #[cfg(any(test, feature = "testkit"))]
    pub fn for_tests(tenant: Tenant) -> Actor {
        Actor::new(
            tenant,
            ActorKind::Operator,
            Permission::ALL.into_iter().collect(),
        )
    }

    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    pub fn org(&self) -> OrgId {
        self.tenant.org
    }

    pub fn org_slug(&self) -> &str {
        &self.tenant.slug
    }

    pub fn kind(&self) -> &ActorKind {
        &self.kind
    }

    pub fn can(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }

    /// 403 unless the actor holds `p`.
    pub fn require(&self, p: Permission) -> Result<&Tenant, ApiError> {
        if self.can(p) {
            Ok(&self.tenant)
        } else {
            Err(ApiError::Forbidden(format!(
                "this credential lacks the permission {}",
                p.as_str()
            )))
        }
    }

    pub fn permissions(&self) -> impl Iterator<Item = Permission> + '_ {
        self.permissions.iter().copied()
    }

    /// An audit entry of a change this actor makes: who (the credential's
    /// kind and id), for which org; the caller adds what and on which
    /// object, and writes it with the change.
    pub fn audit(&self, action: &'static str, object_type: &'static str) -> kernel::audit::Entry {
        let (actor_kind, actor_id) = match &self.kind {
            ActorKind::User(id) => ("user", Some(id.to_string())),
            ActorKind::ApiKey(id) => ("api_key", Some(id.to_string())),
            ActorKind::Device(id) => ("device", Some(id.to_string())),
            ActorKind::Operator => ("operator", None),
        };
        kernel::audit::Entry {
            org: self.tenant.org.0,
            actor_kind,
            actor_id,
            action,
            object_type,
            object_id: None,
            before: None,
            after: None,
        }
    }
}

/// A paired scanning device, as its token proves it. What it may scan for
/// is the scanning slice's to say.
#[derive(Debug)]
pub struct Device {
    pub actor: Actor,
    pub id: DeviceId,
}

impl Device {
    pub fn tenant(&self) -> &Tenant {
        self.actor.tenant()
    }
}
