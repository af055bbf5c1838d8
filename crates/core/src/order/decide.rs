//! The order's rules: what a command means given the state (`decide`), how an
//! external event is answered (`react`), and the refusals, named after the rules.

use super::*;
use crate::contracts::{Actor, ExternalEvent, ExternalKind};
use crate::ids::{MemberId, OrderId};

pub use crate::domain::Context;

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
    /// The catalog has no such sku (never had, or no longer has).
    #[error("sku {sku} is not in the catalog")]
    UnknownSku { sku: String },
    /// The member was shown another price than the catalog's now: nobody is charged a
    /// price they did not see.
    #[error("the price of {sku} is now {current_cents} cents, not the {shown_cents} cents shown")]
    PriceChanged {
        sku: String,
        current_cents: u64,
        shown_cents: u64,
    },
    /// More was asked for than the catalog says is available.
    #[error("{sku}: {requested} asked for, {available} available")]
    NotEnoughStock {
        sku: String,
        requested: u32,
        available: u32,
    },
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
    /// Members cancel and collect their own orders; owners any.
    #[error("only the member who placed order {0}, or an owner, can do this")]
    NotYourOrder(OrderId),
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
    /// A provider reported a refund of a payment the order does not hold.
    #[error("payment {payment_id} is not this order's payment")]
    NotThisPayment { payment_id: String },
    /// An external event that calls for nothing from the order as it is now (stock lost
    /// once it is ready, a pick-up before it is ready): recorded, so a repeat of the
    /// event gets the same answer.
    #[error("{event} calls for nothing from an order that is {status}")]
    NoReaction {
        event: &'static str,
        status: OrderStatus,
    },
}

impl DomainError {
    /// A stable, machine-readable code for the rule (the wire's `rejected.code`).
    pub fn code(&self) -> &'static str {
        Refusal::from(self).code()
    }
}

impl crate::domain::Rule for DomainError {
    fn code(&self) -> &'static str {
        Refusal::from(self).code()
    }

    fn is_conflict(&self) -> bool {
        Refusal::from(self).is_conflict()
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

    /// The rule in a sentence a member can read (what the web client shows; the
    /// message says the particulars).
    pub fn sentence(self) -> &'static str {
        match self {
            Refusal::OrderAlreadyExists => "That order was already placed.",
            Refusal::OrderNotFound => "That order is no longer on the board.",
            Refusal::NoLines => "Add at least one item to the order.",
            Refusal::TooManyLines => {
                "The order has too many different items; split it into two orders."
            }
            Refusal::QuantityOutOfRange => "One of the quantities is too large or below one.",
            Refusal::InvalidSku => "One of the items has a code the shop does not accept.",
            Refusal::UnknownSku => "One of the items is not in the catalog any more.",
            Refusal::PriceChanged => {
                "A price changed since you looked; check the new price and send the order again."
            }
            Refusal::NotEnoughStock => {
                "There are not that many of one of the items in stock; order fewer."
            }
            Refusal::InvalidName => "One of the items has a name the shop does not accept.",
            Refusal::UnitPriceTooHigh => "One of the items costs more than the shop accepts.",
            Refusal::DuplicateSku => "The same item is in the order twice.",
            Refusal::TotalNotPositive => "The order's total must be more than zero.",
            Refusal::ReadyAtNotInFuture => "The ready time has already passed; pick a later time.",
            Refusal::ReadyAtTooFar => {
                "The ready time is too far ahead; pick a time within the next 7 days."
            }
            Refusal::NoteTooLong => "The note is too long; shorten it.",
            Refusal::ReasonTooLong => "The reason is too long; shorten it.",
            Refusal::ControlCharacters => {
                "The text contains characters that cannot be stored; retype it."
            }
            Refusal::NotYourOrder => {
                "Only the member who placed this order, or an owner of the household, can do that."
            }
            Refusal::CannotCancel => {
                "It can no longer be cancelled: it is already ready, collected or closed."
            }
            Refusal::NotReady => "It is not ready yet, so it cannot be marked collected.",
            Refusal::InternalCommand => "Only the shop can do that.",
            Refusal::InvalidTransition => "That step does not fit where the order is now.",
            Refusal::AmountMismatch => "The amount does not match the order's total.",
            Refusal::RefundNotDue => "No refund is due for that order.",
            Refusal::ReleaseNotDue => "No stock is held for that order.",
            Refusal::NotThisPayment => "That payment is not the order's payment.",
            Refusal::NoReaction => "The provider's news changes nothing for that order now.",
        }
    }

    /// Whether the refusal depends on the order's state at the time (a conflict: the
    /// same command may have been accepted earlier or later), rather than on the
    /// command alone (invalid whenever it is sent). HTTP answers 409 and 422.
    pub fn is_conflict(self) -> bool {
        matches!(
            self,
            Refusal::OrderAlreadyExists
                | Refusal::OrderNotFound
                | Refusal::PriceChanged
                | Refusal::NotEnoughStock
                | Refusal::CannotCancel
                | Refusal::NotYourOrder
                | Refusal::NotReady
                | Refusal::InvalidTransition
                | Refusal::RefundNotDue
                | Refusal::ReleaseNotDue
                | Refusal::NotThisPayment
                | Refusal::NoReaction
        )
    }
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
    // Members cancel and collect their own orders; owners any. The rule needs the role
    // the adapter read from the directory (the process and the system act for the
    // household; a caller that states no role, such as a tool, is not held to it).
    if let (Command::CancelOrder(_) | Command::CompleteOrder(_), Actor::Member { id: by }) =
        (command, &ctx.actor)
        && *by != order.placed_by
        && ctx.role == Some(crate::ports::Role::Member)
    {
        return Err(DomainError::NotYourOrder(id));
    }
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
            // Stock lost is reported from outside, possibly after confirmation; the
            // process's own rejections come before it confirms.
            let stock_lost_late =
                status == S::Confirmed && matches!(c.reason, RejectionReason::StockLost { .. });
            if !matches!(status, S::Placed | S::StockReserved | S::PaymentCaptured)
                && !stock_lost_late
            {
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
            if c.amount_cents != order.owed_cents() {
                return Err(DomainError::AmountMismatch {
                    expected: order.owed_cents(),
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
        Command::RecordProviderRefund(c) => {
            if order.payment_id.as_deref() != Some(c.payment_id.as_str()) {
                return Err(DomainError::NotThisPayment {
                    payment_id: c.payment_id.clone(),
                });
            }
            if order.refunded {
                return Err(DomainError::RefundNotDue);
            }
            if c.amount_cents == 0 || c.amount_cents > order.owed_cents() {
                return Err(DomainError::AmountMismatch {
                    expected: order.owed_cents(),
                    got: c.amount_cents,
                });
            }
            Event::RefundedByProvider {
                order_id: id,
                payment_id: c.payment_id.clone(),
                refund_id: c.refund_id.clone(),
                amount_cents: c.amount_cents,
            }
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
    // Names and prices are the catalog's (guarantee 8): the command names skus and
    // quantities, and a price the member was shown must still be the catalog's.
    let mut lines = Vec::with_capacity(place.lines.len());
    let mut total: u64 = 0;
    for (index, line) in place.lines.iter().enumerate() {
        let sku_len = line.sku.chars().count();
        if sku_len == 0 || sku_len > limits::MAX_SKU_CHARS || line.sku.trim() != line.sku {
            return Err(DomainError::InvalidSku { index });
        }
        check_text(&line.sku, false, || format!("line {index}: sku"))?;
        if !(limits::MIN_QUANTITY..=limits::MAX_QUANTITY).contains(&line.quantity) {
            return Err(DomainError::QuantityOutOfRange {
                index,
                quantity: line.quantity,
            });
        }
        if place.lines[..index].iter().any(|l| l.sku == line.sku) {
            return Err(DomainError::DuplicateSku {
                sku: line.sku.clone(),
            });
        }
        let Some(item) = ctx.catalog.get(&line.sku) else {
            return Err(DomainError::UnknownSku {
                sku: line.sku.clone(),
            });
        };
        if let Some(shown) = line.unit_price_cents
            && shown != item.unit_price_cents
        {
            return Err(DomainError::PriceChanged {
                sku: line.sku.clone(),
                current_cents: item.unit_price_cents,
                shown_cents: shown,
            });
        }
        if line.quantity > item.available {
            return Err(DomainError::NotEnoughStock {
                sku: line.sku.clone(),
                requested: line.quantity,
                available: item.available,
            });
        }
        // The catalog's own entry is held to the rules a recorded line keeps.
        let name_len = item.name.trim().chars().count();
        if name_len == 0 || item.name.chars().count() > limits::MAX_NAME_CHARS {
            return Err(DomainError::InvalidName { index });
        }
        check_text(&item.name, false, || format!("line {index}: name"))?;
        if item.unit_price_cents > limits::MAX_UNIT_PRICE_CENTS {
            return Err(DomainError::UnitPriceTooHigh { index });
        }
        let recorded = OrderLine {
            sku: item.sku.clone(),
            name: item.name.clone(),
            quantity: line.quantity,
            unit_price_cents: item.unit_price_cents,
        };
        total += recorded.subtotal_cents();
        lines.push(recorded);
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
    // "As soon as possible" is when the kitchen can have it: the server's preparation
    // time from now, recorded so every member sees when to expect it.
    let ready_at = place.ready_at.unwrap_or(ctx.now + ctx.prep_time);
    Ok(vec![Event::OrderPlaced {
        order_id: place.order_id,
        lines,
        total_cents: total,
        ready_at: Some(ready_at),
        note: place.note.clone(),
        placed_by,
    }])
}

/// How an order reacts to an event from outside (the seed's `apply`): the
/// follow-up command, if any.
///
/// - An inventory shortage rejects an order that still waits for its stock; once stock
///   is reserved the shortage no longer concerns it.
/// - Stock lost after the reservation rejects the order while it is reserved, paid or
///   confirmed (not once it is ready: the goods are on the counter); the process then
///   releases and refunds what it took.
/// - A refund the payment provider made on its own is recorded while the order's
///   payment is not refunded yet.
/// - A pick-up marks a ready order collected.
pub fn react(state: &OrderState, external: &ExternalEvent) -> Option<Command> {
    let order = state.order.as_ref()?;
    if external.kind.order_id() != order.id {
        return None;
    }
    let has_sku = |sku: &str| order.lines.iter().any(|l| l.sku == sku);
    use OrderStatus as S;
    let reacts = match &external.kind {
        ExternalKind::InventoryShortage { sku, .. } => order.status == S::Placed && has_sku(sku),
        ExternalKind::StockLost { sku, .. } => {
            matches!(
                order.status,
                S::StockReserved | S::PaymentCaptured | S::Confirmed
            ) && has_sku(sku)
        }
        ExternalKind::ProviderRefunded { payment_id, .. } => {
            order.payment_id.as_deref() == Some(payment_id.as_str()) && !order.refunded
        }
        ExternalKind::PickedUp { .. } => order.status == S::Ready,
    };
    reacts.then(|| reaction_command(&external.kind))
}

/// The command an external event calls for, whatever the order's state: what
/// [`react`] gives when the order reacts, and what the service records as not applied
/// (with [`DomainError::NoReaction`] or [`DomainError::OrderNotFound`]) when it does not.
pub fn reaction_command(kind: &ExternalKind) -> Command {
    match kind {
        ExternalKind::InventoryShortage { order_id, sku } => Command::RejectOrder(RejectOrder {
            order_id: *order_id,
            reason: RejectionReason::OutOfStock { sku: sku.clone() },
        }),
        ExternalKind::StockLost { order_id, sku } => Command::RejectOrder(RejectOrder {
            order_id: *order_id,
            reason: RejectionReason::StockLost { sku: sku.clone() },
        }),
        ExternalKind::ProviderRefunded {
            order_id,
            payment_id,
            amount_cents,
            refund_id,
        } => Command::RecordProviderRefund(RecordProviderRefund {
            order_id: *order_id,
            payment_id: payment_id.clone(),
            refund_id: refund_id.clone(),
            amount_cents: *amount_cents,
        }),
        // Collected on the member's behalf: the event names who placed the order.
        ExternalKind::PickedUp { order_id } => Command::CompleteOrder(OrderRef {
            order_id: *order_id,
        }),
    }
}
