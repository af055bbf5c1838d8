//! The household projection: what members see. A pure fold of the household's
//! events in `seq` order; the same fold runs in rooms and in the web client.

use crate::Timestamp;
use crate::chore::{ChoreEvent, ChoreId, ChoreStatus};
use crate::contracts::{Actor, EventEnvelope};
use crate::ids::{MemberId, OrderId};
use crate::order::{Event, OrderLine, OrderStatus, RejectionReason};
use crate::people::MemberEvent;
use crate::ports::Role;
use crate::registry::AnyEvent;
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
    /// Chores in the order they were scheduled.
    #[serde(default)]
    pub chores: Vec<ChoreView>,
    /// The household's current members as its log has recorded them (the membership
    /// domain), in the order they joined.
    #[serde(default)]
    pub members: Vec<MemberView>,
}

/// A current member, as the household's log has recorded them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    pub id: MemberId,
    pub name: String,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ChoreView {
    pub id: ChoreId,
    pub title: String,
    pub assignee: MemberId,
    pub due_at: Timestamp,
    pub every_days: Option<u16>,
    pub status: ChoreStatus,
    pub created_by: MemberId,
    pub scheduled_at: Timestamp,
    /// The occurrence this one follows (a recurring chore).
    pub previous: Option<ChoreId>,
    /// A swap waiting for this member's answer.
    pub pending_swap: Option<MemberId>,
    /// Who completed or skipped it.
    pub closed_by: Option<MemberId>,
    pub skip_reason: Option<String>,
    pub timeline: Vec<ChoreTimelineEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ChoreTimelineEntry {
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub seq: u64,
    pub at: Timestamp,
    /// The event type, e.g. `ChoreReminderSent`.
    pub event: String,
    /// The chore's status after the event.
    pub status: ChoreStatus,
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
    /// Who cancelled it (a member, or the system), and why when they said.
    pub cancelled_by: Option<Actor>,
    #[serde(default)]
    pub cancel_reason: Option<String>,
    /// Who marked it collected.
    #[serde(default)]
    pub completed_by: Option<MemberId>,
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

    pub fn chore(&self, id: ChoreId) -> Option<&ChoreView> {
        self.chores.iter().find(|c| c.id == id)
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
        let event = match &envelope.event {
            AnyEvent::Order(event) => event,
            AnyEvent::Chore(event) => {
                self.apply_chore(envelope.seq, at, event);
                return Ok(true);
            }
            AnyEvent::People(event) => {
                self.apply_member(event);
                return Ok(true);
            }
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
                    cancel_reason: None,
                    completed_by: None,
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
        order.status = order.status.after(event);
        match event {
            Event::OrderRejected { reason, .. } => order.rejection = Some(reason.clone()),
            Event::OrderCancelled { by, reason, .. } => {
                order.cancelled_by = Some(by.clone());
                order.cancel_reason = reason.clone();
            }
            Event::OrderCompleted { by, .. } => order.completed_by = Some(*by),
            Event::RefundIssued { .. } => order.refunded = true,
            Event::StockReleased { .. } => order.stock_released = true,
            // The provider gave the whole total back on its own.
            Event::RefundedByProvider { amount_cents, .. }
                if *amount_cents >= order.total_cents =>
            {
                order.refunded = true;
            }
            // Found after the close: the status stays; the compensation that follows
            // shows as `RefundIssued` / `StockReleased`.
            _ => {}
        }
        order.timeline.push(TimelineEntry {
            seq: envelope.seq,
            at,
            event: envelope.event.type_name().to_owned(),
            status: order.status,
        });
        Ok(true)
    }

    /// Folds one membership event into `members`: a joining adds the member (once), a
    /// departure takes them out, a role change sets their role.
    fn apply_member(&mut self, event: &MemberEvent) {
        let id = event.member_id();
        let at = self.members.iter().position(|m| m.id == id);
        match (event, at) {
            (MemberEvent::MemberJoined { name, role, .. }, None)
            | (MemberEvent::MemberRoleChanged { name, role, .. }, None) => {
                self.members.push(MemberView {
                    id,
                    name: name.clone(),
                    role: *role,
                });
            }
            (MemberEvent::MemberJoined { .. }, Some(_)) => {}
            (MemberEvent::MemberRoleChanged { role, .. }, Some(i)) => self.members[i].role = *role,
            (MemberEvent::MemberRemoved { .. } | MemberEvent::MemberLeft { .. }, Some(i)) => {
                self.members.remove(i);
            }
            (MemberEvent::MemberRemoved { .. } | MemberEvent::MemberLeft { .. }, None) => {}
        }
    }

    /// Folds one chore event (its `seq` already checked) into `chores`.
    fn apply_chore(&mut self, seq: u64, at: Timestamp, event: &ChoreEvent) {
        if let ChoreEvent::ChoreScheduled {
            chore_id,
            title,
            assignee,
            due_at,
            every_days,
            created_by,
            previous,
            ..
        } = event
            && self.chore(*chore_id).is_none()
        {
            self.chores.push(ChoreView {
                id: *chore_id,
                title: title.clone(),
                assignee: *assignee,
                due_at: *due_at,
                every_days: *every_days,
                status: ChoreStatus::Scheduled,
                created_by: *created_by,
                scheduled_at: at,
                previous: *previous,
                pending_swap: None,
                closed_by: None,
                skip_reason: None,
                timeline: Vec::new(),
            });
        }
        let id = event.chore_id();
        let Some(chore) = self.chores.iter_mut().find(|c| c.id == id) else {
            return;
        };
        // Already at or past this event (merged from a newer read): it stays.
        if chore.timeline.last().is_some_and(|t| t.seq >= seq) {
            return;
        }
        chore.status = chore.status.after(event);
        match event {
            ChoreEvent::SwapProposed { to, .. } => chore.pending_swap = Some(*to),
            ChoreEvent::SwapAccepted { to, .. } => {
                chore.assignee = *to;
                chore.pending_swap = None;
            }
            ChoreEvent::SwapDeclined { .. } => chore.pending_swap = None,
            ChoreEvent::ChoreCompleted { by, .. } => {
                chore.closed_by = Some(*by);
                chore.pending_swap = None;
            }
            ChoreEvent::ChoreSkipped { by, reason, .. } => {
                chore.closed_by = Some(*by);
                chore.skip_reason = reason.clone();
                chore.pending_swap = None;
            }
            ChoreEvent::ChoreScheduled { .. }
            | ChoreEvent::ChoreReminderSent { .. }
            | ChoreEvent::ChoreEscalated { .. } => {}
        }
        chore.timeline.push(ChoreTimelineEntry {
            seq,
            at,
            event: event.type_name().to_owned(),
            status: chore.status,
        });
    }
}
