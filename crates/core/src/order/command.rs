//! Commands on an order.

use super::{RejectionReason, RequestedLine};
use crate::Timestamp;
use crate::ids::OrderId;
use serde::{Deserialize, Serialize};

/// Commands on an order. On the wire: `{"type": "PlaceOrder", "payload": {...}}`. The
/// variant's name is the `type` (serde's tag and [`Command::type_name`] alike).
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::EnumDiscriminants,
)]
#[strum_discriminants(name(CommandType), derive(Hash, strum::IntoStaticStr, strum::EnumIter))]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", content = "payload")]
pub enum Command {
    // Member commands.
    PlaceOrder(PlaceOrder),
    CancelOrder(CancelOrder),
    CompleteOrder(OrderRef),
    // Internal commands: issued only by the fulfilment process (or a reaction).
    RecordStockReserved(RecordStockReserved),
    RecordPaymentCaptured(RecordPaymentCaptured),
    ConfirmOrder(OrderRef),
    RejectOrder(RejectOrder),
    MarkReady(OrderRef),
    RecordRefundIssued(RecordRefundIssued),
    RecordStockReleased(OrderRef),
    RecordProviderRefund(RecordProviderRefund),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlaceOrder {
    pub order_id: OrderId,
    /// What is asked for, by sku and quantity; the decision fixes each line's name and
    /// price from the server's catalog.
    pub lines: Vec<RequestedLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub ready_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelOrder {
    pub order_id: OrderId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderRef {
    pub order_id: OrderId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordStockReserved {
    pub order_id: OrderId,
    pub reservation_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordPaymentCaptured {
    pub order_id: OrderId,
    pub payment_id: String,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub amount_cents: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RejectOrder {
    pub order_id: OrderId,
    pub reason: RejectionReason,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordRefundIssued {
    pub order_id: OrderId,
    pub refund_id: String,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub amount_cents: u64,
}

/// A refund the payment provider made on its own (a reaction to
/// [`ExternalKind::ProviderRefunded`](crate::contracts::ExternalKind::ProviderRefunded)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordProviderRefund {
    pub order_id: OrderId,
    pub payment_id: String,
    pub refund_id: String,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub amount_cents: u64,
}

impl Command {
    pub fn order_id(&self) -> OrderId {
        match self {
            Command::PlaceOrder(c) => c.order_id,
            Command::CancelOrder(c) => c.order_id,
            Command::CompleteOrder(c)
            | Command::ConfirmOrder(c)
            | Command::MarkReady(c)
            | Command::RecordStockReleased(c) => c.order_id,
            Command::RecordStockReserved(c) => c.order_id,
            Command::RecordPaymentCaptured(c) => c.order_id,
            Command::RejectOrder(c) => c.order_id,
            Command::RecordRefundIssued(c) => c.order_id,
            Command::RecordProviderRefund(c) => c.order_id,
        }
    }

    /// The `type` tag on the wire: the variant's name.
    pub fn type_name(&self) -> &'static str {
        self.into()
    }

    /// Whether the command starts a new order (its stream is expected to be empty).
    pub fn creates_order(&self) -> bool {
        matches!(self, Command::PlaceOrder(_))
    }

    /// Internal commands may only come from the fulfilment process or the system.
    pub fn is_internal(&self) -> bool {
        CommandType::from(self).is_internal()
    }

    /// Every command type, member ones first (the variants, in order).
    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;
}

impl CommandType {
    /// The `type` tag on the wire.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// Internal commands may only come from the fulfilment process or the system; the
    /// others are what members send.
    pub fn is_internal(self) -> bool {
        !matches!(
            self,
            CommandType::PlaceOrder | CommandType::CancelOrder | CommandType::CompleteOrder
        )
    }
}
