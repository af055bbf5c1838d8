//! Typed ids. All are uuids on the wire (plain strings in JSON).

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "ts", derive(ts_rs::TS))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

id_type!(
    /// A household: the tenant. Every row, stream, room and job belongs to one.
    HouseholdId
);
id_type!(
    /// A member of a household (a person with a token).
    MemberId
);
id_type!(
    /// An order: the aggregate id of the order stream.
    OrderId
);
id_type!(
    /// A command id, chosen by whoever sends the command: the idempotency key.
    CommandId
);
id_type!(
    /// An event id.
    EventId
);
id_type!(
    /// A member's session on one device: what its refresh credential is bound to.
    SessionId
);

/// Namespace for ids Hearth derives deterministically (uuid v5).
pub const HEARTH_NAMESPACE: Uuid = Uuid::from_u128(0x6b1c_2f0e_8d4a_4c55_9e1f_3a7b_5d2c_9e80);

/// A deterministic id derived from a cause and a label (uuid v5).
/// Running the same derivation twice gives the same id, which is what makes
/// reactions and process steps idempotent.
pub fn derive(cause: Uuid, label: &str) -> Uuid {
    let mut name = Vec::with_capacity(16 + label.len());
    name.extend_from_slice(cause.as_bytes());
    name.extend_from_slice(label.as_bytes());
    Uuid::new_v5(&HEARTH_NAMESPACE, &name)
}
