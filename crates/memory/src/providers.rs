//! Sandbox payment and inventory providers kept in memory, with idempotency keys
//! and simple fault injection, so retries and compensation can be exercised.

use async_trait::async_trait;
use hearth_core::ports::{
    Capture, CaptureEntry, CaptureRequest, Catalog, CatalogItem, Inventory, MAX_LEDGER_PAGE,
    Payments, ProviderError, RefundRequest, ReleaseRequest, ReservationEntry, ReserveRequest,
};
use hearth_core::{HouseholdId, OrderId};
use std::collections::HashMap;
use std::sync::Mutex;
use uuid::Uuid;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Default)]
pub struct MemoryPayments {
    inner: Mutex<PaymentsInner>,
}

#[derive(Debug, Default)]
struct PaymentsInner {
    /// Results by idempotency key: a repeated key gets the first result back.
    by_key: HashMap<Uuid, Result<String, ProviderError>>,
    /// payment id -> captured amount.
    captures: HashMap<String, u64>,
    /// payment id -> refunded amount.
    refunds: HashMap<String, u64>,
    /// The ledger: captures in the order they took effect (key, household, order,
    /// payment id).
    ledger: Vec<(Uuid, HouseholdId, OrderId, String)>,
    /// Calls to fail transiently before succeeding again.
    fail_next: u32,
    /// Amounts above this are declined.
    decline_above: Option<u64>,
}

impl MemoryPayments {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` calls fail transiently (not remembered under their key).
    pub fn fail_next(&self, n: u32) {
        lock(&self.inner).fail_next = n;
    }

    /// Declines every capture above `cents`.
    pub fn decline_above(&self, cents: u64) {
        lock(&self.inner).decline_above = Some(cents);
    }

    /// Number of captures that took effect.
    pub fn captures(&self) -> usize {
        lock(&self.inner).captures.len()
    }

    /// Number of refunds that took effect.
    pub fn refunds(&self) -> usize {
        lock(&self.inner).refunds.len()
    }
}

#[async_trait]
impl Payments for MemoryPayments {
    async fn capture(&self, request: CaptureRequest) -> Result<String, ProviderError> {
        let mut inner = lock(&self.inner);
        if let Some(first) = inner.by_key.get(&request.key) {
            return first.clone();
        }
        if inner.fail_next > 0 {
            inner.fail_next -= 1;
            return Err(ProviderError::Transient("injected failure".into()));
        }
        let result = match inner.decline_above {
            Some(limit) if request.amount_cents > limit => Err(ProviderError::Declined(format!(
                "amount {} above the sandbox limit {limit}",
                request.amount_cents
            ))),
            _ if request.amount_cents == 0 => {
                Err(ProviderError::Invalid("cannot capture zero".into()))
            }
            _ => {
                let id = format!("pay_{}", request.key.simple());
                inner.captures.insert(id.clone(), request.amount_cents);
                inner
                    .ledger
                    .push((request.key, request.tenant, request.order_id, id.clone()));
                Ok(id)
            }
        };
        inner.by_key.insert(request.key, result.clone());
        result
    }

    async fn refund(&self, request: RefundRequest) -> Result<String, ProviderError> {
        let mut inner = lock(&self.inner);
        if let Some(first) = inner.by_key.get(&request.key) {
            return first.clone();
        }
        if inner.fail_next > 0 {
            inner.fail_next -= 1;
            return Err(ProviderError::Transient("injected failure".into()));
        }
        let result = match inner.captures.get(&request.payment_id) {
            None => Err(ProviderError::Invalid(format!(
                "unknown payment {}",
                request.payment_id
            ))),
            Some(_) if inner.refunds.contains_key(&request.payment_id) => Err(
                ProviderError::Invalid(format!("payment {} already refunded", request.payment_id)),
            ),
            Some(&captured) if request.amount_cents > captured => Err(ProviderError::Invalid(
                format!("refund {} above capture {captured}", request.amount_cents),
            )),
            Some(_) => {
                inner
                    .refunds
                    .insert(request.payment_id.clone(), request.amount_cents);
                Ok(format!("ref_{}", request.key.simple()))
            }
        };
        inner.by_key.insert(request.key, result.clone());
        result
    }

    async fn find_capture(&self, key: Uuid) -> Result<Option<Capture>, ProviderError> {
        let inner = lock(&self.inner);
        let Some(Ok(payment_id)) = inner.by_key.get(&key) else {
            return Ok(None);
        };
        Ok(inner.captures.get(payment_id).map(|&amount_cents| Capture {
            payment_id: payment_id.clone(),
            amount_cents,
        }))
    }

    async fn capture_ledger(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<CaptureEntry>, ProviderError> {
        let inner = lock(&self.inner);
        Ok(page(&inner.ledger, after, limit)
            .map(
                |(position, (key, tenant, order_id, payment_id))| CaptureEntry {
                    position,
                    key: key.to_string(),
                    tenant: *tenant,
                    order_id: *order_id,
                    payment_id: payment_id.clone(),
                    amount_cents: inner.captures.get(payment_id).copied().unwrap_or(0),
                    refunded: inner.refunds.contains_key(payment_id),
                },
            )
            .collect())
    }
}

/// Entries of a ledger with `position > after` (positions from 1), at most `limit`
/// (and at most [`MAX_LEDGER_PAGE`]).
fn page<T>(ledger: &[T], after: u64, limit: usize) -> impl Iterator<Item = (u64, &T)> {
    let start = usize::try_from(after).unwrap_or(usize::MAX);
    ledger
        .iter()
        .enumerate()
        .skip(start)
        .take(limit.min(MAX_LEDGER_PAGE))
        .map(|(i, entry)| (i as u64 + 1, entry))
}

#[derive(Debug)]
pub struct MemoryInventory {
    inner: Mutex<InventoryInner>,
}

#[derive(Debug, Default)]
struct InventoryInner {
    catalog: Vec<CatalogItem>,
    by_key: HashMap<Uuid, Result<String, ProviderError>>,
    /// reservation id -> (sku, quantity) held.
    reservations: HashMap<String, Vec<(String, u32)>>,
    /// The ledger: reservations made, by the key they were made under (kept after a
    /// release).
    reserved_by_key: HashMap<Uuid, String>,
    /// The ledger in the order reservations took effect (key, household, order,
    /// reservation id).
    ledger: Vec<(Uuid, HouseholdId, OrderId, String)>,
    fail_next: u32,
    /// Catalog reads fail while set (apart from `fail_next`, which reservations use).
    catalog_down: bool,
}

impl Default for MemoryInventory {
    fn default() -> Self {
        Self::with_catalog(default_catalog())
    }
}

/// A small household-shop catalog used by the demo and the sandbox.
pub fn default_catalog() -> Vec<CatalogItem> {
    let item = |sku: &str, name: &str, cents: u64, available: u32| CatalogItem {
        sku: sku.into(),
        name: name.into(),
        unit_price_cents: cents,
        available,
    };
    vec![
        item("bread", "Sourdough loaf", 450, 100),
        item("milk", "Milk 1 L", 129, 200),
        item("eggs", "Eggs, dozen", 399, 100),
        item("coffee", "Coffee beans 250 g", 899, 50),
        item("apples", "Apples 1 kg", 299, 100),
        item("pizza", "Margherita pizza", 1150, 40),
    ]
}

impl MemoryInventory {
    pub fn with_catalog(catalog: Vec<CatalogItem>) -> Self {
        Self {
            inner: Mutex::new(InventoryInner {
                catalog,
                ..Default::default()
            }),
        }
    }

    /// The next `n` calls fail transiently (reservations, releases; not the catalog).
    pub fn fail_next(&self, n: u32) {
        lock(&self.inner).fail_next = n;
    }

    /// Catalog reads fail transiently while `down`.
    pub fn catalog_down(&self, down: bool) {
        lock(&self.inner).catalog_down = down;
    }

    /// Sets the catalog's price of `sku` (what the next catalog read says).
    pub fn set_price(&self, sku: &str, cents: u64) {
        if let Some(item) = lock(&self.inner).catalog.iter_mut().find(|i| i.sku == sku) {
            item.unit_price_cents = cents;
        }
    }

    /// Units of `sku` available now.
    pub fn available(&self, sku: &str) -> Option<u32> {
        lock(&self.inner)
            .catalog
            .iter()
            .find(|i| i.sku == sku)
            .map(|i| i.available)
    }

    /// Reservations currently held.
    pub fn reservations(&self) -> usize {
        lock(&self.inner).reservations.len()
    }
}

#[async_trait]
impl Inventory for MemoryInventory {
    async fn reserve(&self, request: ReserveRequest) -> Result<String, ProviderError> {
        let mut inner = lock(&self.inner);
        if let Some(first) = inner.by_key.get(&request.key) {
            return first.clone();
        }
        if inner.fail_next > 0 {
            inner.fail_next -= 1;
            return Err(ProviderError::Transient("injected failure".into()));
        }
        let mut short = None;
        for line in &request.lines {
            let ok = inner
                .catalog
                .iter()
                .any(|i| i.sku == line.sku && i.available >= line.quantity);
            if !ok {
                short = Some(line.sku.clone());
                break;
            }
        }
        let result = match short {
            Some(sku) => Err(ProviderError::OutOfStock { sku }),
            None => {
                let mut held = Vec::new();
                for line in &request.lines {
                    if let Some(item) = inner.catalog.iter_mut().find(|i| i.sku == line.sku) {
                        item.available -= line.quantity;
                        held.push((line.sku.clone(), line.quantity));
                    }
                }
                let id = format!("res_{}", request.key.simple());
                inner.reservations.insert(id.clone(), held);
                inner.reserved_by_key.insert(request.key, id.clone());
                inner
                    .ledger
                    .push((request.key, request.tenant, request.order_id, id.clone()));
                Ok(id)
            }
        };
        inner.by_key.insert(request.key, result.clone());
        result
    }

    async fn release(&self, request: ReleaseRequest) -> Result<(), ProviderError> {
        let mut inner = lock(&self.inner);
        if let Some(first) = inner.by_key.get(&request.key) {
            return first.clone().map(|_| ());
        }
        if inner.fail_next > 0 {
            inner.fail_next -= 1;
            return Err(ProviderError::Transient("injected failure".into()));
        }
        let result = match inner.reservations.remove(&request.reservation_id) {
            None => Err(ProviderError::Invalid(format!(
                "unknown reservation {}",
                request.reservation_id
            ))),
            Some(held) => {
                for (sku, quantity) in held {
                    if let Some(item) = inner.catalog.iter_mut().find(|i| i.sku == sku) {
                        item.available += quantity;
                    }
                }
                Ok(request.reservation_id.clone())
            }
        };
        inner.by_key.insert(request.key, result.clone());
        result.map(|_| ())
    }

    async fn find_reservation(&self, key: Uuid) -> Result<Option<String>, ProviderError> {
        let inner = lock(&self.inner);
        Ok(inner.reserved_by_key.get(&key).cloned())
    }

    async fn reservation_ledger(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ReservationEntry>, ProviderError> {
        let inner = lock(&self.inner);
        Ok(page(&inner.ledger, after, limit)
            .map(
                |(position, (key, tenant, order_id, reservation_id))| ReservationEntry {
                    position,
                    key: key.to_string(),
                    tenant: *tenant,
                    order_id: *order_id,
                    reservation_id: reservation_id.clone(),
                    held: inner.reservations.contains_key(reservation_id),
                },
            )
            .collect())
    }
}

/// The provider serves the catalog it reserves from: what members see available is
/// what is left after the reservations held.
#[async_trait]
impl Catalog for MemoryInventory {
    async fn items(&self) -> Result<Vec<CatalogItem>, ProviderError> {
        let inner = lock(&self.inner);
        if inner.catalog_down {
            return Err(ProviderError::Transient(
                "the catalog is down (injected)".into(),
            ));
        }
        Ok(inner.catalog.clone())
    }
}
