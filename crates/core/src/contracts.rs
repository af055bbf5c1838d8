//! The envelopes every adapter speaks: commands in, events out (DESIGN.md section 3).
//! JSON is camelCase; `type` and `payload` sit at the top level of each envelope.

use crate::Timestamp;
use crate::domain::AggregateId;
use crate::ids::{CommandId, EventId, HouseholdId, MemberId, OrderId};
use crate::ports::Role;
use crate::registry::{AnyCommand, AnyEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who caused something. Adapters set it from what they authenticated
/// (a member's token, the fulfilment process); it is never taken from a client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Actor {
    /// A household member, authenticated by a token.
    Member { id: MemberId },
    /// The fulfilment process (Temporal workflow or embedded executor).
    Process,
    /// Hearth itself: reactions to external events, operators' tools.
    System,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct CommandMetadata {
    pub actor: Actor,
    /// Groups everything one user intent caused; defaults to the command id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub correlation_id: Option<Uuid>,
    /// What caused this command (an event, another command), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub causation_id: Option<Uuid>,
    /// The member's role in the household when the command was sent, as the adapter
    /// read it from the directory (never from the client): owners may act on what
    /// other members own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub role: Option<Role>,
    /// The W3C `traceparent` of the span that dispatched the command, set by the
    /// service when traces are exported (`trace::Propagation`), so the work its events
    /// ask for continues the same trace. Never taken from a client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(skip))]
    pub traceparent: Option<String>,
}

/// A command addressed to one household.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct CommandEnvelope {
    /// Chosen by the sender: the idempotency key.
    pub id: CommandId,
    pub tenant: HouseholdId,
    #[serde(flatten)]
    pub command: AnyCommand,
    pub metadata: CommandMetadata,
}

impl CommandEnvelope {
    pub fn new(
        id: CommandId,
        tenant: HouseholdId,
        actor: Actor,
        command: impl Into<AnyCommand>,
    ) -> Self {
        Self {
            id,
            tenant,
            command: command.into(),
            metadata: CommandMetadata {
                actor,
                correlation_id: None,
                causation_id: None,
                role: None,
                traceparent: None,
            },
        }
    }

    pub fn correlation_id(&self) -> Uuid {
        self.metadata.correlation_id.unwrap_or(self.id.0)
    }

    pub fn causation_id(&self) -> Uuid {
        self.metadata.causation_id.unwrap_or(self.id.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct EventMetadata {
    pub command_id: CommandId,
    pub causation_id: Uuid,
    pub correlation_id: Uuid,
    pub actor: Actor,
}

/// An event as decided, before the store gives it a household position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct NewEvent {
    pub id: EventId,
    /// The id of the aggregate the event belongs to (its domain is the event type's).
    pub aggregate_id: Uuid,
    pub version: u32,
    #[serde(flatten)]
    pub event: AnyEvent,
    pub schema_version: u32,
    pub metadata: EventMetadata,
    pub created_at: Timestamp,
    pub requires_job: bool,
}

/// A committed event: a [`NewEvent`] with its position in the household (`seq`,
/// gap-free from 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct EventEnvelope {
    pub id: EventId,
    pub tenant: HouseholdId,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub seq: u64,
    /// The id of the aggregate the event belongs to (its domain is the event type's).
    pub aggregate_id: Uuid,
    pub version: u32,
    #[serde(flatten)]
    pub event: AnyEvent,
    pub schema_version: u32,
    pub metadata: EventMetadata,
    pub created_at: Timestamp,
    pub requires_job: bool,
}

impl NewEvent {
    /// The aggregate the event belongs to.
    pub fn aggregate(&self) -> AggregateId {
        AggregateId::new(self.event.domain(), self.aggregate_id)
    }
}

impl EventEnvelope {
    /// The aggregate the event belongs to.
    pub fn aggregate(&self) -> AggregateId {
        AggregateId::new(self.event.domain(), self.aggregate_id)
    }

    pub fn committed(tenant: HouseholdId, seq: u64, new: NewEvent) -> Self {
        Self {
            id: new.id,
            tenant,
            seq,
            aggregate_id: new.aggregate_id,
            version: new.version,
            event: new.event,
            schema_version: new.schema_version,
            metadata: new.metadata,
            created_at: new.created_at,
            requires_job: new.requires_job,
        }
    }
}

/// What became of a command, as stored with its id: a repeat of the id gets this back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum CommandOutcome {
    /// Applied; its effects are visible to a reader that has read up to `seq`.
    #[serde(rename_all = "camelCase")]
    Accepted { seq: u64, events: u32 },
    /// Refused by a business rule.
    #[serde(rename_all = "camelCase")]
    Rejected { code: String, message: String },
}

/// Something that happened outside Hearth and concerns an order (the seed's EventPort).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ExternalEvent {
    /// The sender's id for this event: feeding it twice changes nothing.
    pub id: Uuid,
    pub tenant: HouseholdId,
    #[serde(flatten)]
    pub kind: ExternalKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", content = "payload")]
pub enum ExternalKind {
    /// The inventory cannot supply `sku` for `order_id`.
    #[serde(rename_all = "camelCase")]
    InventoryShortage { order_id: OrderId, sku: String },
    /// The inventory lost stock of `sku` it had reserved for `order_id` (spoilt, broken,
    /// miscounted): reported after the reservation, possibly after confirmation.
    #[serde(rename_all = "camelCase")]
    StockLost { order_id: OrderId, sku: String },
    /// The payment provider refunded `amount_cents` of the order's payment on its own
    /// (a refund issued from its dashboard, a chargeback).
    #[serde(rename_all = "camelCase")]
    ProviderRefunded {
        order_id: OrderId,
        payment_id: String,
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        amount_cents: u64,
        refund_id: String,
    },
    /// The order was picked up (at the counter, by a courier).
    #[serde(rename_all = "camelCase")]
    PickedUp { order_id: OrderId },
}

impl ExternalKind {
    pub fn order_id(&self) -> OrderId {
        match self {
            ExternalKind::InventoryShortage { order_id, .. }
            | ExternalKind::StockLost { order_id, .. }
            | ExternalKind::ProviderRefunded { order_id, .. }
            | ExternalKind::PickedUp { order_id } => *order_id,
        }
    }

    /// The `type` tag on the wire: the variant's name.
    pub fn type_name(&self) -> &'static str {
        match self {
            ExternalKind::InventoryShortage { .. } => "InventoryShortage",
            ExternalKind::StockLost { .. } => "StockLost",
            ExternalKind::ProviderRefunded { .. } => "ProviderRefunded",
            ExternalKind::PickedUp { .. } => "PickedUp",
        }
    }
}
