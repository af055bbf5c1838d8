//! Events of an order: the payloads of its stream.

use super::{OrderLine, RejectionReason};
use crate::Timestamp;
use crate::contracts::Actor;
use crate::ids::{MemberId, OrderId};
use serde::{Deserialize, Serialize};

/// Events of an order. On the wire: `{"type": "OrderPlaced", "payload": {...}}`. The
/// variant's name is the `type` (serde's tag and [`Event::type_name`] alike).
#[derive(
    Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", content = "payload")]
pub enum Event {
    #[serde(rename_all = "camelCase")]
    OrderPlaced {
        order_id: OrderId,
        lines: Vec<OrderLine>,
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        total_cents: u64,
        /// When the order is expected ready: the time asked for, or, "as soon as
        /// possible", placed + the server's preparation time. Absent in events recorded
        /// before there was one: ready once confirmed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        ready_at: Option<Timestamp>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        note: Option<String>,
        placed_by: MemberId,
    },
    #[serde(rename_all = "camelCase")]
    StockReserved {
        order_id: OrderId,
        reservation_id: String,
    },
    #[serde(rename_all = "camelCase")]
    PaymentCaptured {
        order_id: OrderId,
        payment_id: String,
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        amount_cents: u64,
    },
    #[serde(rename_all = "camelCase")]
    OrderConfirmed { order_id: OrderId },
    #[serde(rename_all = "camelCase")]
    OrderRejected {
        order_id: OrderId,
        reason: RejectionReason,
    },
    #[serde(rename_all = "camelCase")]
    OrderReady { order_id: OrderId },
    #[serde(rename_all = "camelCase")]
    OrderCancelled {
        order_id: OrderId,
        by: Actor,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        reason: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    OrderCompleted { order_id: OrderId, by: MemberId },
    #[serde(rename_all = "camelCase")]
    RefundIssued {
        order_id: OrderId,
        refund_id: String,
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        amount_cents: u64,
    },
    #[serde(rename_all = "camelCase")]
    StockReleased { order_id: OrderId },
    /// The inventory held stock for the order after it was cancelled or rejected (a
    /// reservation in flight when the order closed). The status stays; the process
    /// releases it.
    #[serde(rename_all = "camelCase")]
    StockReservedAfterClose {
        order_id: OrderId,
        reservation_id: String,
    },
    /// The payment provider captured the order's total after it was cancelled or
    /// rejected (a capture in flight when the order closed). The status stays; the
    /// process refunds it.
    #[serde(rename_all = "camelCase")]
    PaymentCapturedAfterClose {
        order_id: OrderId,
        payment_id: String,
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        amount_cents: u64,
    },
    /// The payment provider refunded (part of) the order's payment on its own (a refund
    /// from its dashboard, a chargeback), reported by its webhook. The status stays; a
    /// refund of the whole capture means the process refunds nothing more.
    #[serde(rename_all = "camelCase")]
    RefundedByProvider {
        order_id: OrderId,
        payment_id: String,
        refund_id: String,
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        amount_cents: u64,
    },
}

/// Schema version of every event payload written today.
pub const EVENT_SCHEMA_VERSION: u32 = 1;
/// Schema version of [`OrderState`] snapshots; bump it when the state changes shape
/// and older snapshots are ignored (rebuilt from events).
pub const SNAPSHOT_SCHEMA_VERSION: u32 = 1;

impl Event {
    pub fn order_id(&self) -> OrderId {
        match self {
            Event::OrderPlaced { order_id, .. }
            | Event::StockReserved { order_id, .. }
            | Event::PaymentCaptured { order_id, .. }
            | Event::OrderConfirmed { order_id }
            | Event::OrderRejected { order_id, .. }
            | Event::OrderReady { order_id }
            | Event::OrderCancelled { order_id, .. }
            | Event::OrderCompleted { order_id, .. }
            | Event::RefundIssued { order_id, .. }
            | Event::StockReleased { order_id }
            | Event::StockReservedAfterClose { order_id, .. }
            | Event::PaymentCapturedAfterClose { order_id, .. }
            | Event::RefundedByProvider { order_id, .. } => *order_id,
        }
    }

    /// The `type` tag on the wire: the variant's name.
    pub fn type_name(&self) -> &'static str {
        self.into()
    }

    /// Every event type (the variants, in order).
    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;

    /// The seed's `requiresJob`: events that start (or redirect) durable work
    /// ([`super::Orders`]'s `job`).
    pub fn requires_job(&self) -> bool {
        <super::Orders as crate::domain::Domain>::job(self).is_some()
    }

    /// Rebuilds an event from its stored `type` and `payload`.
    pub fn from_parts(
        type_name: &str,
        payload: serde_json::Value,
    ) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::json!({ "type": type_name, "payload": payload }))
    }

    /// The payload alone, as stored next to the `type` column.
    pub fn payload(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut map)) => {
                map.remove("payload").unwrap_or(serde_json::Value::Null)
            }
            _ => serde_json::Value::Null,
        }
    }
}
