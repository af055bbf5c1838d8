//! The order aggregate as a decider: `initial`, `decide`, `evolve`, all pure
//! and synchronous. State is loaded before a decision, never inside it.
//!
//! - [`command`]: what members and the process ask of an order;
//! - [`event`]: what happened to it (the log's payloads);
//! - [`state`]: the order as folded from its events (`evolve`), and its status machine;
//! - [`decide`]: the rules (`decide`, `react`) and the refusals they name.

mod command;
mod decide;
mod event;
mod state;

pub use command::*;
pub use decide::*;
pub use event::*;
pub use state::*;

use crate::domain::{Domain, JobKind, RefusalInfo};
use crate::registry::DomainId;
use serde::{Deserialize, Serialize};
use strum::IntoEnumIterator;

/// The order domain: a household's orders from placing to collection, and the
/// fulfilment process that reserves, charges and compensates (see [`crate::process`]).
#[derive(Clone, Copy, Debug)]
pub struct Orders;

impl Domain for Orders {
    const ID: DomainId = DomainId::Order;
    const EVENT_SCHEMA_VERSION: u32 = EVENT_SCHEMA_VERSION;
    const SNAPSHOT_SCHEMA_VERSION: u32 = SNAPSHOT_SCHEMA_VERSION;
    type Command = Command;
    type Event = Event;
    type State = OrderState;
    type Rule = DomainError;
    const COMMAND_TYPES: &'static [&'static str] = Command::TYPES;
    const MEMBER_COMMAND_TYPES: &'static [&'static str] =
        &["PlaceOrder", "CancelOrder", "CompleteOrder"];
    const EVENT_TYPES: &'static [&'static str] = Event::TYPES;

    fn command_aggregate(command: &Command) -> uuid::Uuid {
        command.order_id().0
    }
    fn event_aggregate(event: &Event) -> uuid::Uuid {
        event.order_id().0
    }
    fn command_type(command: &Command) -> &'static str {
        command.type_name()
    }
    fn event_type(event: &Event) -> &'static str {
        event.type_name()
    }
    fn is_internal(command: &Command) -> bool {
        command.is_internal()
    }
    fn creates(command: &Command) -> bool {
        command.creates_order()
    }
    /// Placing an order reads the catalog entries of its lines' skus.
    fn catalog_skus(command: &Command) -> Vec<String> {
        match command {
            Command::PlaceOrder(place) => place.lines.iter().map(|l| l.sku.clone()).collect(),
            _ => Vec::new(),
        }
    }
    fn version(state: &OrderState) -> u32 {
        state.version
    }
    fn decide(
        state: &OrderState,
        command: &Command,
        ctx: &Context,
    ) -> Result<Vec<Event>, DomainError> {
        decide(state, command, ctx)
    }
    fn evolve(state: OrderState, event: &Event) -> OrderState {
        evolve(state, event)
    }
    /// A placed order starts fulfilment; a cancellation must reach the running process
    /// so it compensates.
    fn job(event: &Event) -> Option<JobKind> {
        match event {
            Event::OrderPlaced { .. } => Some(JobKind::Start),
            Event::OrderCancelled { .. } => Some(JobKind::Wake),
            // Stock lost is reported from outside while the process may be waiting
            // (for ready-at): it must learn of the rejection and compensate. The
            // process's own rejections need no wake.
            Event::OrderRejected {
                reason: RejectionReason::StockLost { .. },
                ..
            } => Some(JobKind::Wake),
            _ => None,
        }
    }
    fn refusals() -> Vec<RefusalInfo> {
        Refusal::iter()
            .map(|r| RefusalInfo {
                code: r.code(),
                conflict: r.is_conflict(),
                sentence: r.sentence(),
            })
            .collect()
    }
}

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

/// A line of `PlaceOrder`: a sku and a quantity, and optionally the unit price the
/// member was shown. Names and prices are the catalog's: a line naming its item, or
/// carrying any other field, is bad input; a shown price that is not the catalog's
/// is refused (`price_changed`), so nobody is charged a price they did not see.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestedLine {
    pub sku: String,
    pub quantity: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional, type = "number"))]
    pub unit_price_cents: Option<u64>,
}

impl RequestedLine {
    /// `quantity` of `sku`, at whatever the catalog says.
    pub fn new(sku: impl Into<String>, quantity: u32) -> Self {
        Self {
            sku: sku.into(),
            quantity,
            unit_price_cents: None,
        }
    }

    /// `quantity` of `sku`, as shown to the member at `cents` each.
    pub fn shown(sku: impl Into<String>, quantity: u32, cents: u64) -> Self {
        Self {
            sku: sku.into(),
            quantity,
            unit_price_cents: Some(cents),
        }
    }
}

/// A line as recorded (`OrderPlaced`) and shown: the name and unit price are the
/// catalog's at the time the order was placed, and stay what they were.
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
    OutOfStock {
        sku: String,
    },
    PaymentDeclined {
        message: String,
    },
    /// The inventory lost stock it had reserved for the order (an external event,
    /// possibly after confirmation): the process gives back what was taken.
    StockLost {
        sku: String,
    },
}

impl From<crate::ids::OrderId> for crate::domain::AggregateId {
    /// An order id names an aggregate of the order domain.
    fn from(order: crate::ids::OrderId) -> Self {
        crate::domain::AggregateId::new(DomainId::Order, order)
    }
}
