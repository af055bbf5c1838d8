//! The fulfilment process as pure logic: given an order's state (and the time),
//! what to do next, and what command records the result of doing it.
//! Executors (Temporal, the embedded one) only carry out steps; every decision is here.

use crate::Timestamp;
use crate::ids::{CommandId, HouseholdId, OrderId, derive};
use crate::order::{
    Command, OrderLine, OrderRef, OrderState, OrderStatus, RecordPaymentCaptured,
    RecordRefundIssued, RecordStockReserved, RejectOrder, RejectionReason,
};
use crate::ports::{Capture, ProviderError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "camelCase")]
pub enum Step {
    /// Ask the inventory to reserve every line.
    #[serde(rename_all = "camelCase")]
    ReserveStock { lines: Vec<OrderLine> },
    /// Capture the order total.
    #[serde(rename_all = "camelCase")]
    CapturePayment { amount_cents: u64 },
    /// Stock and payment are in: confirm.
    Confirm,
    /// Confirmed, but not before ready-at: sleep (a durable timer), then ask again.
    #[serde(rename_all = "camelCase")]
    WaitUntil { at: Timestamp },
    /// Ready-at has come (or there was none).
    MarkReady,
    /// Compensation after a cancel or reject: give the stock back.
    #[serde(rename_all = "camelCase")]
    ReleaseStock { reservation_id: String },
    /// Compensation after a cancel or reject: give the money back.
    #[serde(rename_all = "camelCase")]
    Refund {
        payment_id: String,
        amount_cents: u64,
    },
    /// Compensation after a cancel or reject, once what the log shows is given back:
    /// ask the providers' ledgers whether a forward step took effect that the log does
    /// not show (its call was in flight when the order closed, or its caller died
    /// before recording it). What is found is recorded, then given back.
    #[serde(rename_all = "camelCase")]
    FindUnrecorded {
        /// Look up a reservation under the reserve step's key.
        reservation: bool,
        /// Look up a capture under the capture step's key.
        capture: bool,
    },
    /// Nothing left to do (ready, completed, or fully compensated).
    Done,
}

/// What the providers' ledgers hold under an order's forward steps' keys
/// ([`Step::FindUnrecorded`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub reservation: Option<String>,
    pub capture: Option<Capture>,
}

impl Step {
    /// A stable name, used in idempotency keys and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Step::ReserveStock { .. } => "reserve-stock",
            Step::CapturePayment { .. } => "capture-payment",
            Step::Confirm => "confirm",
            Step::WaitUntil { .. } => "wait-until",
            Step::MarkReady => "mark-ready",
            Step::ReleaseStock { .. } => "release-stock",
            Step::Refund { .. } => "refund",
            Step::FindUnrecorded { .. } => "find-unrecorded",
            Step::Done => "done",
        }
    }

    /// The idempotency key of this step for one order: the same on every retry and
    /// every executor restart, so a provider never charges, refunds or reserves twice
    /// and the recording command is a duplicate the second time.
    pub fn key(&self, tenant: HouseholdId, order: OrderId) -> Uuid {
        step_key(self.name(), tenant, order)
    }

    /// The id of the command that records this step's result.
    pub fn command_id(&self, tenant: HouseholdId, order: OrderId) -> CommandId {
        CommandId(derive(self.key(tenant, order), "command"))
    }
}

fn step_key(name: &str, tenant: HouseholdId, order: OrderId) -> Uuid {
    derive(
        derive(tenant.0, &order.0.to_string()),
        &format!("step/{name}"),
    )
}

/// The idempotency key the reserve step uses for this order (what
/// [`Step::FindUnrecorded`] looks up).
pub fn reserve_key(tenant: HouseholdId, order: OrderId) -> Uuid {
    step_key("reserve-stock", tenant, order)
}

/// The idempotency key the capture step uses for this order.
pub fn capture_key(tenant: HouseholdId, order: OrderId) -> Uuid {
    step_key("capture-payment", tenant, order)
}

/// The id of the command that records what [`Step::FindUnrecorded`] found for the
/// forward step `forward`.
pub fn found_command_id(tenant: HouseholdId, order: OrderId, forward: &Step) -> CommandId {
    CommandId(derive(
        step_key("find-unrecorded", tenant, order),
        forward.name(),
    ))
}

/// The next step of an order's fulfilment.
pub fn next_step(state: &OrderState, now: Timestamp) -> Step {
    let Some(order) = state.order.as_ref() else {
        return Step::Done;
    };
    match order.status {
        OrderStatus::Placed => Step::ReserveStock {
            lines: order.lines.clone(),
        },
        OrderStatus::StockReserved => Step::CapturePayment {
            amount_cents: order.total_cents,
        },
        OrderStatus::PaymentCaptured => Step::Confirm,
        OrderStatus::Confirmed => match order.ready_at {
            Some(at) if at > now => Step::WaitUntil { at },
            _ => Step::MarkReady,
        },
        OrderStatus::Ready | OrderStatus::Completed => Step::Done,
        OrderStatus::Rejected | OrderStatus::Cancelled => {
            if let (Some(reservation_id), false) = (&order.reservation_id, order.stock_released) {
                Step::ReleaseStock {
                    reservation_id: reservation_id.clone(),
                }
            } else if let (Some(payment_id), false) = (&order.payment_id, order.refunded) {
                Step::Refund {
                    payment_id: payment_id.clone(),
                    amount_cents: order.owed_cents(),
                }
            } else {
                // A reserve may have been tried for any order; a capture only once
                // stock was reserved. Nothing found ends the process.
                let reservation = order.reservation_id.is_none();
                let capture = order.payment_id.is_none() && order.reservation_id.is_some();
                if reservation || capture {
                    Step::FindUnrecorded {
                        reservation,
                        capture,
                    }
                } else {
                    Step::Done
                }
            }
        }
    }
}

/// What [`Step::FindUnrecorded`] found, as the forward step it belongs to and that
/// step's result, to be recorded like any result of that step (with that step's
/// command id, so a late recording by the original caller is a duplicate). One at a
/// time, reservation first; `None`: nothing is missing from the log.
pub fn unrecorded(state: &OrderState, found: Found) -> Option<(Step, StepResult)> {
    let order = state.order.as_ref()?;
    if let (None, Some(reservation_id)) = (&order.reservation_id, found.reservation) {
        let step = Step::ReserveStock {
            lines: order.lines.clone(),
        };
        return Some((step, StepResult::Done(reservation_id)));
    }
    if let (None, Some(capture)) = (&order.payment_id, found.capture) {
        let step = Step::CapturePayment {
            amount_cents: capture.amount_cents,
        };
        return Some((step, StepResult::Done(capture.payment_id)));
    }
    None
}

/// What a step's provider call returned, in the process's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepResult {
    /// The step needed no provider (confirm, mark ready) or the call succeeded with
    /// this id (reservation, payment, refund id; empty when there is none).
    Done(String),
    /// The provider said no for good.
    Failed(ProviderError),
}

/// What the executor should do after running a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Followup {
    /// Dispatch this command (with [`Step::command_id`]), then ask for the next step.
    Record(Command),
    /// Retry the step later (transient failure).
    Retry,
    /// Nothing to record (a wait, or done).
    Nothing,
}

/// Turns a step's result into the command that records it.
pub fn record(order: OrderId, step: &Step, result: StepResult) -> Followup {
    let failed = match result {
        StepResult::Done(id) => {
            return match step {
                Step::ReserveStock { .. } => {
                    Followup::Record(Command::RecordStockReserved(RecordStockReserved {
                        order_id: order,
                        reservation_id: id,
                    }))
                }
                Step::CapturePayment { amount_cents } => {
                    Followup::Record(Command::RecordPaymentCaptured(RecordPaymentCaptured {
                        order_id: order,
                        payment_id: id,
                        amount_cents: *amount_cents,
                    }))
                }
                Step::Confirm => {
                    Followup::Record(Command::ConfirmOrder(OrderRef { order_id: order }))
                }
                Step::MarkReady => {
                    Followup::Record(Command::MarkReady(OrderRef { order_id: order }))
                }
                Step::ReleaseStock { .. } => {
                    Followup::Record(Command::RecordStockReleased(OrderRef { order_id: order }))
                }
                Step::Refund { amount_cents, .. } => {
                    Followup::Record(Command::RecordRefundIssued(RecordRefundIssued {
                        order_id: order,
                        refund_id: id,
                        amount_cents: *amount_cents,
                    }))
                }
                Step::WaitUntil { .. } | Step::FindUnrecorded { .. } | Step::Done => {
                    Followup::Nothing
                }
            };
        }
        StepResult::Failed(error) => error,
    };
    if failed.is_retryable() {
        return Followup::Retry;
    }
    let reason = match (step, failed) {
        (Step::ReserveStock { .. }, ProviderError::OutOfStock { sku }) => {
            RejectionReason::OutOfStock { sku }
        }
        (Step::CapturePayment { .. }, ProviderError::Declined(message)) => {
            RejectionReason::PaymentDeclined { message }
        }
        // A permanent failure anywhere else (a refund refused, an unknown reservation)
        // cannot be fixed by the process: it stops and leaves it to an operator.
        _ => return Followup::Nothing,
    };
    Followup::Record(Command::RejectOrder(RejectOrder {
        order_id: order,
        reason,
    }))
}
