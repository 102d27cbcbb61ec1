//! Permissions and roles: what a credential may do. The tenant context
//! itself (who acts, for which organization) is the identity slice's
//! `Tenant` and `Actor`, which only a checked credential can produce.

use std::collections::BTreeSet;

use crate::ids::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    EventsRead,
    EventsWrite,
    OrdersRead,
    OrdersWrite,
    DevicesManage,
    Scan,
    KeysManage,
    WebhooksManage,
    AuditRead,
    SettingsManage,
    /// Mark orders paid, refund, cancel: money moves.
    Finance,
}

impl Permission {
    pub const ALL: [Permission; 11] = [
        Permission::EventsRead,
        Permission::EventsWrite,
        Permission::OrdersRead,
        Permission::OrdersWrite,
        Permission::DevicesManage,
        Permission::Scan,
        Permission::KeysManage,
        Permission::WebhooksManage,
        Permission::AuditRead,
        Permission::SettingsManage,
        Permission::Finance,
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
            Permission::WebhooksManage => "webhooks:manage",
            Permission::AuditRead => "audit:read",
            Permission::SettingsManage => "settings:manage",
            Permission::Finance => "finance",
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
            Role::Finance => &[EventsRead, OrdersRead, Finance],
            Role::Scanner => &[EventsRead, Scan],
            Role::Viewer => &[EventsRead, OrdersRead],
        };
        list.iter().copied().collect()
    }
}

/// Namespaces for cache keys, Redis keys and PubSub topics: every one starts
/// with the org, so a tenant can never read or subscribe to another's.
pub fn event_topic(org: OrgId, event: EventId) -> String {
    crate::events::topic(org, Some(event))
}
