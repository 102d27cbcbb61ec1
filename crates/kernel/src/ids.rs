//! Typed ids: an `OrgId` can never be passed where an `EventId` is meant.
//! All are UUIDv7 (time-ordered), opaque strings on the wire.

use std::{fmt, str::FromStr};

macro_rules! typed_id {
    ($($name:ident),* $(,)?) => {$(
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
                 serde::Serialize, serde::Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            pub fn new() -> Self {
                $name(uuid::Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::parse_str(s).map($name)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::Type::String)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Uuid,
                    )))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl From<$name> for crate::db::Val {
            fn from(v: $name) -> crate::db::Val {
                crate::db::Val::Uuid(Some(v.0))
            }
        }
    )*};
}

typed_id!(
    OrgId,
    UserId,
    ApiKeyId,
    SigningKeyId,
    EventId,
    TicketTypeId,
    HoldId,
    OrderId,
    TicketId,
    DeviceId,
    WebhookId,
    DeliveryId,
    ExportId,
    PaymentId,
    RefundId,
    QuotaId,
    VoucherId,
    WaitlistEntryId,
    LayoutId,
    GateId,
    ScanId,
);
