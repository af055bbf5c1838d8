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
