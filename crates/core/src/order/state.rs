//! An order as folded from its events, and its status machine.

use super::{Event, OrderLine, RejectionReason};
use crate::Timestamp;
use crate::ids::{MemberId, OrderId};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub enum OrderStatus {
    Placed,
    StockReserved,
    PaymentCaptured,
    Confirmed,
    Ready,
    Completed,
    Rejected,
    Cancelled,
}

impl OrderStatus {
    /// The status after `event`, from `self`: the order's one status machine (the state's
    /// fold and the household view both follow it; the web client's fold is held to it by
    /// the golden vectors).
    pub fn after(self, event: &Event) -> OrderStatus {
        match event {
            Event::StockReserved { .. } => OrderStatus::StockReserved,
            Event::PaymentCaptured { .. } => OrderStatus::PaymentCaptured,
            Event::OrderConfirmed { .. } => OrderStatus::Confirmed,
            Event::OrderRejected { .. } => OrderStatus::Rejected,
            Event::OrderReady { .. } => OrderStatus::Ready,
            Event::OrderCancelled { .. } => OrderStatus::Cancelled,
            Event::OrderCompleted { .. } => OrderStatus::Completed,
            // An order starts `placed` (a second `OrderPlaced`, which `decide` never
            // produces, changes nothing); compensation and late facts: the status stays.
            Event::OrderPlaced { .. }
            | Event::RefundIssued { .. }
            | Event::StockReleased { .. }
            | Event::StockReservedAfterClose { .. }
            | Event::PaymentCapturedAfterClose { .. }
            | Event::RefundedByProvider { .. } => self,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "placed",
            OrderStatus::StockReserved => "stockReserved",
            OrderStatus::PaymentCaptured => "paymentCaptured",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Ready => "ready",
            OrderStatus::Completed => "completed",
            OrderStatus::Rejected => "rejected",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order that exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: OrderId,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub total_cents: u64,
    pub ready_at: Option<Timestamp>,
    pub note: Option<String>,
    pub placed_by: MemberId,
    pub reservation_id: Option<String>,
    pub stock_released: bool,
    pub payment_id: Option<String>,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub captured_cents: u64,
    /// What the payment provider gave back on its own (`RefundedByProvider`), in total:
    /// the process refunds only the rest ([`Order::owed_cents`]).
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub provider_refunded_cents: u64,
    pub refunded: bool,
    pub rejection: Option<RejectionReason>,
}

impl Order {
    /// What a refund of this order gives back: the capture less what the provider
    /// already refunded on its own, so a household is never refunded twice.
    pub fn owed_cents(&self) -> u64 {
        self.captured_cents
            .saturating_sub(self.provider_refunded_cents)
    }
}

/// The state of one order stream: `order` is `None` until it is placed.
/// `version` counts the events folded in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct OrderState {
    pub version: u32,
    pub order: Option<Order>,
}

pub fn initial() -> OrderState {
    OrderState::default()
}

/// Folds one event into the state. Total: an event that does not fit the state
/// (which `decide` never produces) leaves the order as it is but counts the version.
pub fn evolve(mut state: OrderState, event: &Event) -> OrderState {
    state.version += 1;
    if let Event::OrderPlaced {
        order_id,
        lines,
        total_cents,
        ready_at,
        note,
        placed_by,
    } = event
    {
        state.order = Some(Order {
            id: *order_id,
            status: OrderStatus::Placed,
            lines: lines.clone(),
            total_cents: *total_cents,
            ready_at: *ready_at,
            note: note.clone(),
            placed_by: *placed_by,
            reservation_id: None,
            stock_released: false,
            payment_id: None,
            captured_cents: 0,
            provider_refunded_cents: 0,
            refunded: false,
            rejection: None,
        });
        return state;
    }
    let Some(order) = state.order.as_mut() else {
        return state;
    };
    order.status = order.status.after(event);
    match event {
        Event::OrderPlaced { .. }
        | Event::OrderConfirmed { .. }
        | Event::OrderReady { .. }
        | Event::OrderCancelled { .. }
        | Event::OrderCompleted { .. } => {}
        Event::StockReserved { reservation_id, .. } => {
            order.reservation_id = Some(reservation_id.clone());
        }
        Event::PaymentCaptured {
            payment_id,
            amount_cents,
            ..
        } => {
            order.payment_id = Some(payment_id.clone());
            order.captured_cents = *amount_cents;
        }
        Event::OrderRejected { reason, .. } => {
            order.rejection = Some(reason.clone());
        }
        Event::RefundIssued { .. } => order.refunded = true,
        Event::StockReleased { .. } => order.stock_released = true,
        Event::StockReservedAfterClose { reservation_id, .. } => {
            order.reservation_id = Some(reservation_id.clone());
        }
        Event::PaymentCapturedAfterClose {
            payment_id,
            amount_cents,
            ..
        } => {
            order.payment_id = Some(payment_id.clone());
            order.captured_cents = *amount_cents;
        }
        Event::RefundedByProvider { amount_cents, .. } => {
            order.provider_refunded_cents =
                order.provider_refunded_cents.saturating_add(*amount_cents);
            // The whole capture given back: nothing is left for the process to refund.
            if order.owed_cents() == 0 {
                order.refunded = true;
            }
        }
    }
    state
}

/// Folds a history into a state.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> OrderState {
    events.into_iter().fold(initial(), evolve)
}
