//! The sandbox's HTTP wire shapes, shared by the server and the HTTP adapters.
//! They live here, at the edge, and convert explicitly from and to core types.

use hearth_core::ports::CatalogItem;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The header carrying a request's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaptureBody {
    pub tenant: Uuid,
    pub order_id: Uuid,
    pub amount_cents: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaptureReply {
    pub payment_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundBody {
    pub tenant: Uuid,
    pub payment_id: String,
    pub amount_cents: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundReply {
    pub refund_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineBody {
    pub sku: String,
    pub quantity: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReserveBody {
    pub tenant: Uuid,
    pub order_id: Uuid,
    pub lines: Vec<LineBody>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReserveReply {
    pub reservation_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseBody {
    pub tenant: Uuid,
    pub reservation_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseReply {
    pub reservation_id: String,
}

/// `GET /ledger/captures/{key}`: the capture that took effect under an idempotency
/// key, or `null` (none, or only a declined or failed attempt).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaptureLedgerReply {
    pub capture: Option<LedgerCapture>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerCapture {
    pub payment_id: String,
    pub amount_cents: u64,
    pub refunded: bool,
}

/// `GET /ledger/reservations/{key}`: the reservation made under an idempotency key,
/// or `null`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationLedgerReply {
    pub reservation: Option<LedgerReservation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerReservation {
    pub reservation_id: String,
    /// Still held (not released).
    pub held: bool,
}

/// The body of every refusal: a stable `code`, a human `message`, and the `sku`
/// for `out_of_stock`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogEntry {
    pub sku: String,
    pub name: String,
    pub unit_price_cents: u64,
    pub available: u32,
}

impl From<CatalogItem> for CatalogEntry {
    fn from(i: CatalogItem) -> Self {
        Self {
            sku: i.sku,
            name: i.name,
            unit_price_cents: i.unit_price_cents,
            available: i.available,
        }
    }
}

impl From<CatalogEntry> for CatalogItem {
    fn from(e: CatalogEntry) -> Self {
        Self {
            sku: e.sku,
            name: e.name,
            unit_price_cents: e.unit_price_cents,
            available: e.available,
        }
    }
}

/// What the sandbox has done, for tests and operators. Counts effects, not requests:
/// a repeated idempotency key adds nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Captures that took effect.
    pub captures: u64,
    pub captured_cents: u64,
    /// Refunds that took effect.
    pub refunds: u64,
    pub refunded_cents: u64,
    /// Reservations that took effect.
    pub reservations: u64,
    /// Releases that took effect.
    pub releases: u64,
    /// Reservations held now.
    pub held: u64,
    /// Captures declined (402).
    pub declines: u64,
    /// Requests failed on purpose with 503.
    pub injected_failures: u64,
    /// Requests answered from the idempotency store (a retry with a known key).
    pub replays: u64,
    /// Every request to the provider endpoints, whatever became of it.
    pub requests: u64,
}

/// Fault injection, set at start and replaced at run time with `PUT /admin/faults`.
/// A missing field means "no such fault".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    /// Added to every provider request, after its effect (as a slow provider would:
    /// a client that times out may still have been charged, and must retry with the
    /// same key).
    pub latency_ms: u64,
    /// The share (0.0 to 1.0) of provider requests answered 503 without any effect.
    pub failure_rate: f64,
    /// The next this-many provider requests are answered 503 without any effect
    /// (deterministic, for tests).
    pub fail_next: u32,
    /// Captures above this many cents are declined with 402.
    pub decline_above_cents: Option<u64>,
    /// Skus that are out of stock whatever the catalog says (409).
    pub out_of_stock: Vec<String>,
    /// Skus lost after the fact: once a capture for an order whose reservation holds one
    /// is answered, the sandbox reports `StockLost` for it to its webhook URL (after
    /// `stock_lost_delay_ms`), as an inventory that found the shelf empty would.
    pub lose_stock_after_capture: Vec<String>,
    /// How long after the capture's answer that report is sent, in milliseconds.
    pub stock_lost_delay_ms: u64,
}

/// `GET /ledger/captures?after=N&limit=M`: a page of the capture ledger, in the order
/// captures took effect (`position` from 1; at most
/// [`MAX_LEDGER_PAGE`](hearth_core::ports::MAX_LEDGER_PAGE) entries; empty at the end).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaptureLedgerPage {
    pub entries: Vec<CaptureLedgerEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaptureLedgerEntry {
    pub position: u64,
    pub key: String,
    pub tenant: Uuid,
    pub order_id: Uuid,
    pub payment_id: String,
    pub amount_cents: u64,
    pub refunded: bool,
}

/// `GET /ledger/reservations?after=N&limit=M`: a page of the reservation ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationLedgerPage {
    pub entries: Vec<ReservationLedgerEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationLedgerEntry {
    pub position: u64,
    pub key: String,
    pub tenant: Uuid,
    pub order_id: Uuid,
    pub reservation_id: String,
    pub held: bool,
}

impl From<CaptureLedgerEntry> for hearth_core::ports::CaptureEntry {
    fn from(e: CaptureLedgerEntry) -> Self {
        Self {
            position: e.position,
            key: e.key,
            tenant: hearth_core::HouseholdId(e.tenant),
            order_id: hearth_core::OrderId(e.order_id),
            payment_id: e.payment_id,
            amount_cents: e.amount_cents,
            refunded: e.refunded,
        }
    }
}

impl From<ReservationLedgerEntry> for hearth_core::ports::ReservationEntry {
    fn from(e: ReservationLedgerEntry) -> Self {
        Self {
            position: e.position,
            key: e.key,
            tenant: hearth_core::HouseholdId(e.tenant),
            order_id: hearth_core::OrderId(e.order_id),
            reservation_id: e.reservation_id,
            held: e.held,
        }
    }
}
