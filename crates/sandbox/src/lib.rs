//! The bundled sandbox provider of payments and inventory, and the HTTP adapters of
//! the [`Payments`](hearth_core::ports::Payments) and
//! [`Inventory`](hearth_core::ports::Inventory) ports, and of the
//! [`Catalog`](hearth_core::ports::Catalog) the inventory serves.
//!
//! The server ([`Sandbox`], [`serve`], [`RunningSandbox`]) keeps stock and charges in
//! memory, honours `Idempotency-Key` so a retried call never doubles, and injects
//! faults (latency, a transient failure rate, declines above an amount, out-of-stock
//! skus) set at start and changed at run time with `PUT /admin/faults`.
//! The adapters ([`HttpPayments`], [`HttpInventory`], and [`HttpCatalog`], which keeps
//! the catalog it read for a short time) map HTTP outcomes to
//! [`ProviderError`](hearth_core::ports::ProviderError).

mod client;
mod server;
pub mod webhook;
pub mod wire;

pub use client::{
    ClientError, DEFAULT_CATALOG_TTL, HttpCatalog, HttpInventory, HttpPayments, HttpProvider,
};
pub use server::{RunningSandbox, Sandbox, serve};
pub use webhook::{EmitReply, EmitRequest, WebhookTarget};
pub use wire::{Faults, Stats};
