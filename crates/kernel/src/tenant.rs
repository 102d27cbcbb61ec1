//! The tenant context. No domain function runs without an [`Actor`]: who is
//! acting, for which organization, with which permissions. Queries take the
//! org from here, never from a request body.
//!
//! An `Actor` is made only by authenticating something (session, API key,
//! device token) — `Actor::authenticated` is called by the identity slice's
//! extractors and by the command line, nowhere else.

use std::collections::BTreeSet;

use crate::{error::ApiError, ids::*};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    EventsRead,
    EventsWrite,
    OrdersRead,
    OrdersWrite,
    DevicesManage,
    Scan,
    KeysManage,
}

impl Permission {
    pub const ALL: [Permission; 7] = [
        Permission::EventsRead,
        Permission::EventsWrite,
        Permission::OrdersRead,
        Permission::OrdersWrite,
        Permission::DevicesManage,
        Permission::Scan,
        Permission::KeysManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::EventsRead => "events:read",
            Permission::EventsWrite => "events:write",
            Permission::OrdersRead => "orders:read",
            Permission::OrdersWrite => "orders:write",
            Permission::DevicesManage => "devices:manage",
            Permission::Scan => "scan",
            Permission::KeysManage => "keys:manage",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A member's role, mapped to permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Owner,
    Admin,
    EventManager,
    BoxOffice,
    Finance,
    Scanner,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::EventManager => "event_manager",
            Role::BoxOffice => "box_office",
            Role::Finance => "finance",
            Role::Scanner => "scanner",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [
            Role::Owner,
            Role::Admin,
            Role::EventManager,
            Role::BoxOffice,
            Role::Finance,
            Role::Scanner,
            Role::Viewer,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    pub fn permissions(self) -> BTreeSet<Permission> {
        use Permission::*;
        let list: &[Permission] = match self {
            Role::Owner | Role::Admin => &Permission::ALL,
            Role::EventManager => &[EventsRead, EventsWrite, OrdersRead, DevicesManage],
            Role::BoxOffice => &[EventsRead, OrdersRead, OrdersWrite, Scan],
            Role::Finance => &[EventsRead, OrdersRead],
            Role::Scanner => &[EventsRead, Scan],
            Role::Viewer => &[EventsRead, OrdersRead],
        };
        list.iter().copied().collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActorKind {
    User(UserId),
    ApiKey(ApiKeyId),
    Device(DeviceId),
    /// The command line, run by the operator on the server itself.
    Operator,
}

#[derive(Clone, Debug)]
pub struct Actor {
    org: OrgId,
    org_slug: String,
    kind: ActorKind,
    permissions: BTreeSet<Permission>,
}

impl Actor {
    /// Only for code that has just authenticated the actor.
    pub fn authenticated(
        org: OrgId,
        org_slug: String,
        kind: ActorKind,
        permissions: BTreeSet<Permission>,
    ) -> Actor {
        Actor {
            org,
            org_slug,
            kind,
            permissions,
        }
    }

    pub fn org(&self) -> OrgId {
        self.org
    }

    pub fn org_slug(&self) -> &str {
        &self.org_slug
    }

    pub fn kind(&self) -> &ActorKind {
        &self.kind
    }

    pub fn can(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }

    /// 403 unless the actor holds `p`.
    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if self.can(p) {
            Ok(())
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
}

/// Namespaces for cache keys, Redis keys and PubSub topics: every one starts
/// with the org, so a tenant can never read or subscribe to another's.
pub fn event_topic(org: OrgId, event: EventId) -> String {
    format!("org:{org}:event:{event}")
}
