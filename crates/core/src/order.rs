//! The order aggregate as a decider: `initial`, `decide`, `evolve`, all pure
//! and synchronous. State is loaded before a decision, never inside it.

use crate::Timestamp;
use crate::contracts::{Actor, ExternalEvent, ExternalKind};
use crate::ids::{MemberId, OrderId};
use serde::{Deserialize, Serialize};

/// Limits of the order rules, named so errors and clients can quote them.
pub mod limits {
    pub const MAX_LINES: usize = 50;
    pub const MIN_QUANTITY: u32 = 1;
    pub const MAX_QUANTITY: u32 = 99;
    pub const MAX_NOTE_CHARS: usize = 500;
    pub const MAX_REASON_CHARS: usize = 200;
    pub const MAX_SKU_CHARS: usize = 64;
    pub const MAX_NAME_CHARS: usize = 200;
    pub const MAX_READY_AT_DAYS: i64 = 7;
    /// Unit prices above this are refused, which also keeps totals far from overflow.
    pub const MAX_UNIT_PRICE_CENTS: u64 = 10_000_000;
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderLine {
    pub sku: String,
    pub name: String,
    pub quantity: u32,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub unit_price_cents: u64,
}

impl OrderLine {
    pub fn subtotal_cents(&self) -> u64 {
        self.unit_price_cents
            .saturating_mul(u64::from(self.quantity))
    }
}

/// Why the fulfilment process rejected an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "code", rename_all = "camelCase", deny_unknown_fields)]
pub enum RejectionReason {
    OutOfStock { sku: String },
    PaymentDeclined { message: String },
}

/// Commands on an order. On the wire: `{"type": "PlaceOrder", "payload": {...}}`. The
/// variant's name is the `type` (serde's tag and [`Command::type_name`] alike).
#[derive(
    Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
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
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlaceOrder {
    pub order_id: OrderId,
    pub lines: Vec<OrderLine>,
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
        !matches!(
            self,
            Command::PlaceOrder(_) | Command::CancelOrder(_) | Command::CompleteOrder(_)
        )
    }

    /// Every command type, member ones first (the variants, in order).
    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;
}

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
            | Event::PaymentCapturedAfterClose { order_id, .. } => *order_id,
        }
    }

    /// The `type` tag on the wire: the variant's name.
    pub fn type_name(&self) -> &'static str {
        self.into()
    }

    /// Every event type (the variants, in order).
    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;

    /// The seed's `requiresJob`: events that start (or redirect) durable work.
    /// A placed order starts fulfilment; a cancellation must reach the running
    /// process so it compensates.
    pub fn requires_job(&self) -> bool {
        matches!(
            self,
            Event::OrderPlaced { .. } | Event::OrderCancelled { .. }
        )
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
    pub refunded: bool,
    pub rejection: Option<RejectionReason>,
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

/// What a decision may read besides the state: who asks, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    pub actor: Actor,
    pub now: Timestamp,
}

/// A broken business rule. Closed, and named after the rule: the variant's name, in
/// snake case, is the rule's stable code ([`Refusal`]), so a code is written once.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, strum::EnumDiscriminants)]
#[strum_discriminants(
    name(Refusal),
    derive(
        Hash,
        strum::IntoStaticStr,
        strum::EnumString,
        strum::VariantNames,
        strum::EnumIter
    ),
    strum(serialize_all = "snake_case")
)]
pub enum DomainError {
    #[error("order {0} already exists")]
    OrderAlreadyExists(OrderId),
    #[error("order {0} does not exist")]
    OrderNotFound(OrderId),
    #[error("an order needs at least one line")]
    NoLines,
    #[error("an order has at most {max} lines, got {got}", max = limits::MAX_LINES)]
    TooManyLines { got: usize },
    #[error("line {index}: quantity must be 1 to 99, got {quantity}")]
    QuantityOutOfRange { index: usize, quantity: u32 },
    #[error("line {index}: sku must be 1 to 64 characters")]
    InvalidSku { index: usize },
    #[error("line {index}: name must be 1 to 200 characters")]
    InvalidName { index: usize },
    #[error("line {index}: unit price above the limit of 10000000 cents")]
    UnitPriceTooHigh { index: usize },
    #[error("sku {sku} appears on more than one line")]
    DuplicateSku { sku: String },
    #[error("the order total must be above zero")]
    TotalNotPositive,
    #[error("ready-at must be in the future")]
    ReadyAtNotInFuture,
    #[error("ready-at must be within {days} days", days = limits::MAX_READY_AT_DAYS)]
    ReadyAtTooFar,
    #[error("note has {got} characters, at most {max} allowed", max = limits::MAX_NOTE_CHARS)]
    NoteTooLong { got: usize },
    #[error("reason has {got} characters, at most {max} allowed", max = limits::MAX_REASON_CHARS)]
    ReasonTooLong { got: usize },
    /// Text a member typed holds a control character (a NUL, an escape...): not
    /// something a person writes, and not storable everywhere (PostgreSQL's jsonb
    /// refuses NUL). Line breaks and tabs are allowed in notes and reasons.
    #[error("{field} must not contain control characters")]
    ControlCharacters { field: String },
    #[error("an order that is {status} can no longer be cancelled")]
    CannotCancel { status: OrderStatus },
    #[error("an order can only be collected when ready; it is {status}")]
    NotReady { status: OrderStatus },
    #[error("{command} is internal to the fulfilment process; members cannot send it")]
    InternalCommand { command: &'static str },
    #[error("{command} does not apply to an order that is {status}")]
    InvalidTransition {
        command: &'static str,
        status: OrderStatus,
    },
    #[error("captured {got} cents but the order total is {expected} cents")]
    AmountMismatch { expected: u64, got: u64 },
    #[error("nothing to refund: no capture, or already refunded, or order still open")]
    RefundNotDue,
    #[error("no stock to release: none reserved, already released, or order still open")]
    ReleaseNotDue,
}

impl DomainError {
    /// A stable, machine-readable code for the rule (the wire's `rejected.code`).
    pub fn code(&self) -> &'static str {
        Refusal::from(self).code()
    }
}

impl Refusal {
    /// The rule's stable code (the wire's `rejected.code`).
    pub fn code(self) -> &'static str {
        self.into()
    }

    /// The refusal a stored or received code stands for, if it is one.
    pub fn from_code(code: &str) -> Option<Self> {
        code.parse().ok()
    }

    /// Whether the refusal depends on the order's state at the time (a conflict: the
    /// same command may have been accepted earlier or later), rather than on the
    /// command alone (invalid whenever it is sent). HTTP answers 409 and 422.
    pub fn is_conflict(self) -> bool {
        matches!(
            self,
            Refusal::OrderAlreadyExists
                | Refusal::OrderNotFound
                | Refusal::CannotCancel
                | Refusal::NotReady
                | Refusal::InvalidTransition
                | Refusal::RefundNotDue
                | Refusal::ReleaseNotDue
        )
    }
}

pub fn initial() -> OrderState {
    OrderState::default()
}

/// Decides what a command means for an order, given its current state.
pub fn decide(
    state: &OrderState,
    command: &Command,
    ctx: &Context,
) -> Result<Vec<Event>, DomainError> {
    if command.is_internal() && matches!(ctx.actor, Actor::Member { .. }) {
        return Err(DomainError::InternalCommand {
            command: command.type_name(),
        });
    }
    let Some(order) = state.order.as_ref() else {
        return match command {
            Command::PlaceOrder(place) => place_order(place, ctx),
            _ => Err(DomainError::OrderNotFound(command.order_id())),
        };
    };
    let id = order.id;
    let status = order.status;
    let invalid = || DomainError::InvalidTransition {
        command: command.type_name(),
        status,
    };
    use OrderStatus as S;
    let event = match command {
        Command::PlaceOrder(place) => return Err(DomainError::OrderAlreadyExists(place.order_id)),
        Command::CancelOrder(c) => {
            if matches!(status, S::Ready | S::Completed | S::Rejected | S::Cancelled) {
                return Err(DomainError::CannotCancel { status });
            }
            check_reason(c.reason.as_deref())?;
            Event::OrderCancelled {
                order_id: id,
                by: ctx.actor.clone(),
                reason: c.reason.clone(),
            }
        }
        Command::CompleteOrder(_) => {
            if status != S::Ready {
                return Err(DomainError::NotReady { status });
            }
            let by = match &ctx.actor {
                Actor::Member { id } => *id,
                _ => order.placed_by,
            };
            Event::OrderCompleted { order_id: id, by }
        }
        // A provider's success is a fact: recorded in the order's forward path, or,
        // when the order closed while the call was in flight, recorded as having come
        // after the close so the process gives it back.
        Command::RecordStockReserved(c) => match status {
            S::Placed => Event::StockReserved {
                order_id: id,
                reservation_id: c.reservation_id.clone(),
            },
            S::Cancelled | S::Rejected if order.reservation_id.is_none() => {
                Event::StockReservedAfterClose {
                    order_id: id,
                    reservation_id: c.reservation_id.clone(),
                }
            }
            _ => return Err(invalid()),
        },
        Command::RecordPaymentCaptured(c) => {
            let after_close =
                matches!(status, S::Cancelled | S::Rejected) && order.payment_id.is_none();
            if status != S::StockReserved && !after_close {
                return Err(invalid());
            }
            if c.amount_cents != order.total_cents {
                return Err(DomainError::AmountMismatch {
                    expected: order.total_cents,
                    got: c.amount_cents,
                });
            }
            if after_close {
                Event::PaymentCapturedAfterClose {
                    order_id: id,
                    payment_id: c.payment_id.clone(),
                    amount_cents: c.amount_cents,
                }
            } else {
                Event::PaymentCaptured {
                    order_id: id,
                    payment_id: c.payment_id.clone(),
                    amount_cents: c.amount_cents,
                }
            }
        }
        Command::ConfirmOrder(_) => {
            if status != S::PaymentCaptured {
                return Err(invalid());
            }
            Event::OrderConfirmed { order_id: id }
        }
        Command::RejectOrder(c) => {
            if !matches!(status, S::Placed | S::StockReserved | S::PaymentCaptured) {
                return Err(invalid());
            }
            Event::OrderRejected {
                order_id: id,
                reason: c.reason.clone(),
            }
        }
        Command::MarkReady(_) => {
            if status != S::Confirmed {
                return Err(invalid());
            }
            Event::OrderReady { order_id: id }
        }
        Command::RecordRefundIssued(c) => {
            let closed = matches!(status, S::Cancelled | S::Rejected);
            if !closed || order.payment_id.is_none() || order.refunded {
                return Err(DomainError::RefundNotDue);
            }
            if c.amount_cents != order.captured_cents {
                return Err(DomainError::AmountMismatch {
                    expected: order.captured_cents,
                    got: c.amount_cents,
                });
            }
            Event::RefundIssued {
                order_id: id,
                refund_id: c.refund_id.clone(),
                amount_cents: c.amount_cents,
            }
        }
        Command::RecordStockReleased(_) => {
            let closed = matches!(status, S::Cancelled | S::Rejected);
            if !closed || order.reservation_id.is_none() || order.stock_released {
                return Err(DomainError::ReleaseNotDue);
            }
            Event::StockReleased { order_id: id }
        }
    };
    Ok(vec![event])
}

fn check_reason(reason: Option<&str>) -> Result<(), DomainError> {
    let Some(reason) = reason else {
        return Ok(());
    };
    let got = reason.chars().count();
    if got > limits::MAX_REASON_CHARS {
        return Err(DomainError::ReasonTooLong { got });
    }
    check_text(reason, true, || "reason".into())
}

/// Refuses control characters in `text`; `multiline` allows line breaks and tabs.
fn check_text(
    text: &str,
    multiline: bool,
    field: impl FnOnce() -> String,
) -> Result<(), DomainError> {
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if text.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(DomainError::ControlCharacters { field: field() });
    }
    Ok(())
}

fn place_order(place: &PlaceOrder, ctx: &Context) -> Result<Vec<Event>, DomainError> {
    if place.lines.is_empty() {
        return Err(DomainError::NoLines);
    }
    if place.lines.len() > limits::MAX_LINES {
        return Err(DomainError::TooManyLines {
            got: place.lines.len(),
        });
    }
    let mut total: u64 = 0;
    for (index, line) in place.lines.iter().enumerate() {
        let sku_len = line.sku.chars().count();
        if sku_len == 0 || sku_len > limits::MAX_SKU_CHARS || line.sku.trim() != line.sku {
            return Err(DomainError::InvalidSku { index });
        }
        let name_len = line.name.trim().chars().count();
        if name_len == 0 || line.name.chars().count() > limits::MAX_NAME_CHARS {
            return Err(DomainError::InvalidName { index });
        }
        check_text(&line.sku, false, || format!("line {index}: sku"))?;
        check_text(&line.name, false, || format!("line {index}: name"))?;
        if !(limits::MIN_QUANTITY..=limits::MAX_QUANTITY).contains(&line.quantity) {
            return Err(DomainError::QuantityOutOfRange {
                index,
                quantity: line.quantity,
            });
        }
        if line.unit_price_cents > limits::MAX_UNIT_PRICE_CENTS {
            return Err(DomainError::UnitPriceTooHigh { index });
        }
        if place.lines[..index].iter().any(|l| l.sku == line.sku) {
            return Err(DomainError::DuplicateSku {
                sku: line.sku.clone(),
            });
        }
        total += line.subtotal_cents();
    }
    if total == 0 {
        return Err(DomainError::TotalNotPositive);
    }
    if let Some(ready_at) = place.ready_at {
        if ready_at <= ctx.now {
            return Err(DomainError::ReadyAtNotInFuture);
        }
        if ready_at > ctx.now + chrono::Duration::days(limits::MAX_READY_AT_DAYS) {
            return Err(DomainError::ReadyAtTooFar);
        }
    }
    if let Some(note) = &place.note {
        let got = note.chars().count();
        if got > limits::MAX_NOTE_CHARS {
            return Err(DomainError::NoteTooLong { got });
        }
        check_text(note, true, || "note".into())?;
    }
    let placed_by = match &ctx.actor {
        Actor::Member { id } => *id,
        // Orders placed by the system (imports, tests) carry the nil member.
        _ => MemberId(uuid::Uuid::nil()),
    };
    Ok(vec![Event::OrderPlaced {
        order_id: place.order_id,
        lines: place.lines.clone(),
        total_cents: total,
        ready_at: place.ready_at,
        note: place.note.clone(),
        placed_by,
    }])
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
            refunded: false,
            rejection: None,
        });
        return state;
    }
    let Some(order) = state.order.as_mut() else {
        return state;
    };
    match event {
        Event::OrderPlaced { .. } => {}
        Event::StockReserved { reservation_id, .. } => {
            order.status = OrderStatus::StockReserved;
            order.reservation_id = Some(reservation_id.clone());
        }
        Event::PaymentCaptured {
            payment_id,
            amount_cents,
            ..
        } => {
            order.status = OrderStatus::PaymentCaptured;
            order.payment_id = Some(payment_id.clone());
            order.captured_cents = *amount_cents;
        }
        Event::OrderConfirmed { .. } => order.status = OrderStatus::Confirmed,
        Event::OrderRejected { reason, .. } => {
            order.status = OrderStatus::Rejected;
            order.rejection = Some(reason.clone());
        }
        Event::OrderReady { .. } => order.status = OrderStatus::Ready,
        Event::OrderCancelled { .. } => order.status = OrderStatus::Cancelled,
        Event::OrderCompleted { .. } => order.status = OrderStatus::Completed,
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
    }
    state
}

/// Folds a history into a state.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Event>) -> OrderState {
    events.into_iter().fold(initial(), evolve)
}

/// How an order reacts to an event from outside (the seed's `apply`): the
/// follow-up command, if any. An inventory shortage rejects an order that still
/// waits for its stock; once stock is reserved the shortage no longer concerns it.
pub fn react(state: &OrderState, external: &ExternalEvent) -> Option<Command> {
    let order = state.order.as_ref()?;
    match &external.kind {
        ExternalKind::InventoryShortage { order_id, sku } => {
            let waits_for_stock = order.status == OrderStatus::Placed;
            let has_sku = order.lines.iter().any(|l| &l.sku == sku);
            (*order_id == order.id && waits_for_stock && has_sku).then(|| {
                Command::RejectOrder(RejectOrder {
                    order_id: order.id,
                    reason: RejectionReason::OutOfStock { sku: sku.clone() },
                })
            })
        }
    }
}
