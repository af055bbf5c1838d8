//! The household projection: what members see. A pure fold of the household's
//! events in `seq` order; the same fold runs in rooms and in the web client.

use crate::Timestamp;
use crate::contracts::{Actor, EventEnvelope};
use crate::ids::{MemberId, OrderId};
use crate::order::{Event, OrderLine, OrderStatus, Orders, RejectionReason};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct HouseholdView {
    /// The position of the last event folded in (0: none).
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub seq: u64,
    /// Orders in the order they were placed.
    pub orders: Vec<OrderView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct OrderView {
    pub id: OrderId,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub total_cents: u64,
    pub ready_at: Option<Timestamp>,
    pub note: Option<String>,
    pub placed_by: MemberId,
    pub placed_at: Timestamp,
    pub rejection: Option<RejectionReason>,
    pub cancelled_by: Option<Actor>,
    pub refunded: bool,
    pub stock_released: bool,
    pub timeline: Vec<TimelineEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub seq: u64,
    pub at: Timestamp,
    /// The event type, e.g. `PaymentCaptured`.
    pub event: String,
    /// The order's status after the event.
    pub status: OrderStatus,
}

/// An event that does not follow the view's position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event seq {got} does not follow the view at seq {at}: events were missed")]
pub struct SeqGap {
    pub at: u64,
    pub got: u64,
}

impl HouseholdView {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds events in `seq` order.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a EventEnvelope>) -> Result<Self, SeqGap> {
        let mut view = Self::new();
        for event in events {
            view.apply(event)?;
        }
        Ok(view)
    }

    pub fn order(&self, id: OrderId) -> Option<&OrderView> {
        self.orders.iter().find(|o| o.id == id)
    }

    /// Folds one event. An event at or before `seq` was already folded: `Ok(false)`,
    /// nothing changes. An event after `seq + 1` means a gap: refused.
    pub fn apply(&mut self, envelope: &EventEnvelope) -> Result<bool, SeqGap> {
        if envelope.seq <= self.seq {
            return Ok(false);
        }
        if envelope.seq != self.seq + 1 {
            return Err(SeqGap {
                at: self.seq,
                got: envelope.seq,
            });
        }
        self.seq = envelope.seq;
        let at = envelope.created_at;
        let Some(event) = envelope.event.of::<Orders>() else {
            return Ok(true);
        };
        if let Event::OrderPlaced {
            order_id,
            lines,
            total_cents,
            ready_at,
            note,
            placed_by,
        } = event
            && self.order(*order_id).is_none()
        {
            {
                self.orders.push(OrderView {
                    id: *order_id,
                    status: OrderStatus::Placed,
                    lines: lines.clone(),
                    total_cents: *total_cents,
                    ready_at: *ready_at,
                    note: note.clone(),
                    placed_by: *placed_by,
                    placed_at: at,
                    rejection: None,
                    cancelled_by: None,
                    refunded: false,
                    stock_released: false,
                    timeline: Vec::new(),
                });
            }
        }
        let Some(order) = self
            .orders
            .iter_mut()
            .find(|o| o.id.0 == envelope.aggregate_id)
        else {
            return Ok(true);
        };
        // An order already at or past this event (a client merged it from a newer read,
        // e.g. a page of older orders over HTTP): the view moves on, the order stays.
        // Never the case for a view folded from the start.
        if order.timeline.last().is_some_and(|t| t.seq >= envelope.seq) {
            return Ok(true);
        }
        match event {
            Event::OrderPlaced { .. } => {}
            Event::StockReserved { .. } => order.status = OrderStatus::StockReserved,
            Event::PaymentCaptured { .. } => order.status = OrderStatus::PaymentCaptured,
            Event::OrderConfirmed { .. } => order.status = OrderStatus::Confirmed,
            Event::OrderRejected { reason, .. } => {
                order.status = OrderStatus::Rejected;
                order.rejection = Some(reason.clone());
            }
            Event::OrderReady { .. } => order.status = OrderStatus::Ready,
            Event::OrderCancelled { by, .. } => {
                order.status = OrderStatus::Cancelled;
                order.cancelled_by = Some(by.clone());
            }
            Event::OrderCompleted { .. } => order.status = OrderStatus::Completed,
            Event::RefundIssued { .. } => order.refunded = true,
            Event::StockReleased { .. } => order.stock_released = true,
            // Found after the close: the status stays; the compensation that follows
            // shows as `RefundIssued` / `StockReleased`.
            Event::StockReservedAfterClose { .. } | Event::PaymentCapturedAfterClose { .. } => {}
        }
        order.timeline.push(TimelineEntry {
            seq: envelope.seq,
            at,
            event: envelope.event.type_name().to_owned(),
            status: order.status,
        });
        Ok(true)
    }
}
