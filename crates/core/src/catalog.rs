//! The server's catalog (DESIGN.md section 10, guarantee 8): what can be ordered, at
//! which price and how many, as the Inventory provider serves it through the
//! [`Catalog`](crate::ports::Catalog) port. A command names skus and quantities; the
//! service loads the entries the command needs before deciding
//! ([`Domain::catalog_skus`](crate::domain::Domain::catalog_skus)) and hands them to
//! the decision in its [`Context`](crate::domain::Context), which fixes names and
//! prices into the event. Nothing a client says about a name or a price is recorded.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One thing that can be ordered, as the catalog serves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct CatalogItem {
    pub sku: String,
    pub name: String,
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub unit_price_cents: u64,
    /// How many can be ordered now (the provider's stock when the catalog was read).
    pub available: u32,
}

/// The catalog entries a decision may read: those its command named that the catalog
/// has (a sku it lacks is absent, and the rule that needs it says so).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogEntries(BTreeMap<String, CatalogItem>);

impl CatalogEntries {
    /// No entries: what a command that names no sku is decided with.
    pub fn none() -> Self {
        Self::default()
    }

    /// The entries of `items` whose sku is one of `skus`.
    pub fn pick(items: Vec<CatalogItem>, skus: &[String]) -> Self {
        Self(
            items
                .into_iter()
                .filter(|item| skus.contains(&item.sku))
                .map(|item| (item.sku.clone(), item))
                .collect(),
        )
    }

    /// Every entry of `items` (tests and tools that decide without a service).
    pub fn all(items: impl IntoIterator<Item = CatalogItem>) -> Self {
        Self(
            items
                .into_iter()
                .map(|item| (item.sku.clone(), item))
                .collect(),
        )
    }

    pub fn get(&self, sku: &str) -> Option<&CatalogItem> {
        self.0.get(sku)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
