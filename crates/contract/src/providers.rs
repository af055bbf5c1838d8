//! The Payments, Inventory and Catalog contracts: idempotency keys make retries
//! harmless; the catalog the inventory serves says what can be ordered and how many.

use crate::fixtures::{household, line, order_id};
use hearth_core::ports::{
    Capture, CaptureEntry, CaptureRequest, Catalog, Inventory, MAX_LEDGER_PAGE, Payments,
    ProviderError, RefundRequest, ReleaseRequest, ReservationEntry, ReserveRequest,
};
use std::sync::Arc;
use uuid::Uuid;

/// Expands to one test per payments case; `$make` returns a future of `Arc<dyn Payments>`
/// that captures any amount up to 100_000 cents.
#[macro_export]
macro_rules! payments_contract {
    ($make:expr) => {
        $crate::payments_contract!(@cases $make;
            capture_with_same_key_returns_same_payment,
            refund_with_same_key_returns_same_refund,
            refund_of_unknown_payment_is_refused,
            second_refund_of_a_payment_is_refused,
            the_ledger_finds_a_capture_by_its_key_and_nothing_else,
            the_capture_ledger_lists_captures_in_order_with_their_refunds,
            a_capture_ledger_page_is_capped,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let payments: std::sync::Arc<dyn hearth_core::ports::Payments> = ($make)().await;
                $crate::providers::$case(payments).await;
            }
        )*
    };
}

/// An inventory and the catalog it serves (the catalog reads what the inventory holds
/// now: an adapter that keeps what it read is built here to read it every time).
#[derive(Clone, Debug)]
pub struct Stocked {
    pub inventory: Arc<dyn Inventory>,
    pub catalog: Arc<dyn Catalog>,
}

/// Expands to one test per inventory case; `$make` returns a future of a [`Stocked`]
/// whose catalog has at least 10 of some sku and lacks `no-such-sku`.
#[macro_export]
macro_rules! inventory_contract {
    ($make:expr) => {
        $crate::inventory_contract!(@cases $make;
            reserve_with_same_key_holds_stock_once,
            release_returns_stock_once,
            unknown_sku_is_out_of_stock_and_holds_nothing,
            the_ledger_finds_a_reservation_by_its_key_and_nothing_else,
            the_reservation_ledger_lists_reservations_in_order_with_what_is_held,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let stocked: $crate::providers::Stocked = ($make)().await;
                $crate::providers::$case(stocked).await;
            }
        )*
    };
}

/// Expands to one test per catalog case; `$make` returns a future of a [`Stocked`]
/// whose catalog has at least 10 of some sku and lacks `no-such-sku`.
#[macro_export]
macro_rules! catalog_contract {
    ($make:expr) => {
        $crate::catalog_contract!(@cases $make;
            the_catalog_names_and_prices_every_sku_once,
            reading_the_catalog_twice_gives_the_same_items,
            a_reservation_shows_in_availability_and_a_release_gives_it_back,
            an_unknown_sku_is_not_in_the_catalog,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let stocked: $crate::providers::Stocked = ($make)().await;
                $crate::providers::$case(stocked).await;
            }
        )*
    };
}

fn capture(key: Uuid, cents: u64) -> CaptureRequest {
    CaptureRequest {
        key,
        tenant: household(),
        order_id: order_id(),
        amount_cents: cents,
    }
}

pub async fn capture_with_same_key_returns_same_payment(p: Arc<dyn Payments>) {
    let key = Uuid::now_v7();
    let first = p.capture(capture(key, 1_234)).await.unwrap();
    let again = p.capture(capture(key, 1_234)).await.unwrap();
    assert_eq!(first, again);
    let other = p.capture(capture(Uuid::now_v7(), 1_234)).await.unwrap();
    assert_ne!(first, other, "a new key is a new payment");
}

pub async fn refund_with_same_key_returns_same_refund(p: Arc<dyn Payments>) {
    let payment = p.capture(capture(Uuid::now_v7(), 500)).await.unwrap();
    let key = Uuid::now_v7();
    let refund = |key| RefundRequest {
        key,
        tenant: household(),
        payment_id: payment.clone(),
        amount_cents: 500,
    };
    let first = p.refund(refund(key)).await.unwrap();
    assert_eq!(p.refund(refund(key)).await.unwrap(), first);
}

pub async fn refund_of_unknown_payment_is_refused(p: Arc<dyn Payments>) {
    let err = p
        .refund(RefundRequest {
            key: Uuid::now_v7(),
            tenant: household(),
            payment_id: "no-such-payment".into(),
            amount_cents: 1,
        })
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "got {err:?}");
}

pub async fn second_refund_of_a_payment_is_refused(p: Arc<dyn Payments>) {
    let payment = p.capture(capture(Uuid::now_v7(), 700)).await.unwrap();
    let refund = |key| RefundRequest {
        key,
        tenant: household(),
        payment_id: payment.clone(),
        amount_cents: 700,
    };
    p.refund(refund(Uuid::now_v7())).await.unwrap();
    let err = p.refund(refund(Uuid::now_v7())).await.unwrap_err();
    assert!(!err.is_retryable(), "got {err:?}");
}

async fn stocked_sku(i: &Stocked) -> (String, u32) {
    let catalog = i.catalog.items().await.unwrap();
    let item = catalog
        .into_iter()
        .find(|c| c.available >= 10)
        .expect("a sku with at least 10 available");
    (item.sku, item.available)
}

async fn available(i: &Stocked, sku: &str) -> u32 {
    i.catalog
        .items()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.sku == sku)
        .map_or(0, |c| c.available)
}

pub async fn reserve_with_same_key_holds_stock_once(stocked: Stocked) {
    let i = &stocked.inventory;
    let (sku, before) = stocked_sku(&stocked).await;
    let request = ReserveRequest {
        key: Uuid::now_v7(),
        tenant: household(),
        order_id: order_id(),
        lines: vec![line(&sku, 3, 100)],
    };
    let first = i.reserve(request.clone()).await.unwrap();
    let again = i.reserve(request).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(available(&stocked, &sku).await, before - 3);
}

pub async fn release_returns_stock_once(stocked: Stocked) {
    let i = &stocked.inventory;
    let (sku, before) = stocked_sku(&stocked).await;
    let reservation = i
        .reserve(ReserveRequest {
            key: Uuid::now_v7(),
            tenant: household(),
            order_id: order_id(),
            lines: vec![line(&sku, 2, 100)],
        })
        .await
        .unwrap();
    let release = ReleaseRequest {
        key: Uuid::now_v7(),
        tenant: household(),
        reservation_id: reservation,
    };
    i.release(release.clone()).await.unwrap();
    i.release(release).await.unwrap();
    assert_eq!(available(&stocked, &sku).await, before);
}

pub async fn unknown_sku_is_out_of_stock_and_holds_nothing(stocked: Stocked) {
    let i = &stocked.inventory;
    let (sku, before) = stocked_sku(&stocked).await;
    let err = i
        .reserve(ReserveRequest {
            key: Uuid::now_v7(),
            tenant: household(),
            order_id: order_id(),
            lines: vec![line(&sku, 1, 100), line("no-such-sku", 1, 100)],
        })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::OutOfStock {
            sku: "no-such-sku".into()
        }
    );
    assert_eq!(available(&stocked, &sku).await, before, "all or nothing");
}

pub async fn the_ledger_finds_a_capture_by_its_key_and_nothing_else(p: Arc<dyn Payments>) {
    let key = Uuid::now_v7();
    assert_eq!(p.find_capture(key).await.unwrap(), None, "nothing yet");
    let payment = p.capture(capture(key, 1_500)).await.unwrap();
    assert_eq!(
        p.find_capture(key).await.unwrap(),
        Some(Capture {
            payment_id: payment.clone(),
            amount_cents: 1_500
        })
    );
    // A refund's key is not a capture's; a refunded capture stays in the ledger.
    let refund_key = Uuid::now_v7();
    p.refund(RefundRequest {
        key: refund_key,
        tenant: household(),
        payment_id: payment.clone(),
        amount_cents: 1_500,
    })
    .await
    .unwrap();
    assert_eq!(p.find_capture(refund_key).await.unwrap(), None);
    assert_eq!(
        p.find_capture(key).await.unwrap().map(|c| c.payment_id),
        Some(payment)
    );
}

pub async fn the_ledger_finds_a_reservation_by_its_key_and_nothing_else(stocked: Stocked) {
    let i = &stocked.inventory;
    let (sku, _) = stocked_sku(&stocked).await;
    let key = Uuid::now_v7();
    assert_eq!(i.find_reservation(key).await.unwrap(), None, "nothing yet");
    let reservation = i
        .reserve(ReserveRequest {
            key,
            tenant: household(),
            order_id: order_id(),
            lines: vec![line(&sku, 1, 100)],
        })
        .await
        .unwrap();
    assert_eq!(
        i.find_reservation(key).await.unwrap(),
        Some(reservation.clone())
    );
    // A refused attempt is no reservation; a release's key is not a reservation's.
    let refused = Uuid::now_v7();
    i.reserve(ReserveRequest {
        key: refused,
        tenant: household(),
        order_id: order_id(),
        lines: vec![line("no-such-sku", 1, 100)],
    })
    .await
    .unwrap_err();
    assert_eq!(i.find_reservation(refused).await.unwrap(), None);
    let release_key = Uuid::now_v7();
    i.release(ReleaseRequest {
        key: release_key,
        tenant: household(),
        reservation_id: reservation.clone(),
    })
    .await
    .unwrap();
    assert_eq!(i.find_reservation(release_key).await.unwrap(), None);
    assert_eq!(
        i.find_reservation(key).await.unwrap(),
        Some(reservation),
        "kept after its release"
    );
}

/// The whole capture ledger, read in pages of `limit`, checking positions increase.
async fn all_captures(p: &Arc<dyn Payments>, limit: usize) -> Vec<CaptureEntry> {
    let mut all: Vec<CaptureEntry> = Vec::new();
    loop {
        let after = all.last().map_or(0, |e| e.position);
        let page = p.capture_ledger(after, limit).await.unwrap();
        if page.is_empty() {
            return all;
        }
        assert!(page.len() <= limit, "a page holds at most the limit");
        for entry in page {
            assert!(entry.position > after, "positions increase: {entry:?}");
            all.push(entry);
        }
    }
}

async fn all_reservations(i: &Arc<dyn Inventory>, limit: usize) -> Vec<ReservationEntry> {
    let mut all: Vec<ReservationEntry> = Vec::new();
    loop {
        let after = all.last().map_or(0, |e| e.position);
        let page = i.reservation_ledger(after, limit).await.unwrap();
        if page.is_empty() {
            return all;
        }
        assert!(page.len() <= limit, "a page holds at most the limit");
        for entry in page {
            assert!(entry.position > after, "positions increase: {entry:?}");
            all.push(entry);
        }
    }
}

pub async fn the_capture_ledger_lists_captures_in_order_with_their_refunds(p: Arc<dyn Payments>) {
    let tenant = household();
    let mut made = Vec::new();
    for cents in [300, 400, 500] {
        let request = CaptureRequest {
            key: Uuid::now_v7(),
            tenant,
            order_id: order_id(),
            amount_cents: cents,
        };
        let payment = p.capture(request.clone()).await.unwrap();
        made.push((request, payment));
    }
    // A replay is no second entry.
    p.capture(made[0].0.clone()).await.unwrap();
    p.refund(RefundRequest {
        key: Uuid::now_v7(),
        tenant,
        payment_id: made[1].1.clone(),
        amount_cents: 400,
    })
    .await
    .unwrap();

    let ours: Vec<CaptureEntry> = all_captures(&p, 2)
        .await
        .into_iter()
        .filter(|e| e.tenant == tenant)
        .collect();
    let expected: Vec<_> = made
        .iter()
        .enumerate()
        .map(|(i, (r, payment))| {
            (
                r.key.to_string(),
                r.order_id,
                payment.clone(),
                r.amount_cents,
                i == 1,
            )
        })
        .collect();
    let got: Vec<_> = ours
        .iter()
        .map(|e| {
            (
                e.key.clone(),
                e.order_id,
                e.payment_id.clone(),
                e.amount_cents,
                e.refunded,
            )
        })
        .collect();
    assert_eq!(got, expected, "in the order they took effect, refund shown");
}

pub async fn a_capture_ledger_page_is_capped(p: Arc<dyn Payments>) {
    for _ in 0..=MAX_LEDGER_PAGE {
        p.capture(capture(Uuid::now_v7(), 100)).await.unwrap();
    }
    let page = p.capture_ledger(0, usize::MAX).await.unwrap();
    assert_eq!(page.len(), MAX_LEDGER_PAGE, "more was asked and held");
    let rest = p
        .capture_ledger(page[MAX_LEDGER_PAGE - 1].position, usize::MAX)
        .await
        .unwrap();
    assert!(!rest.is_empty(), "the next page goes on");
}

pub async fn the_reservation_ledger_lists_reservations_in_order_with_what_is_held(
    stocked: Stocked,
) {
    let i = &stocked.inventory;
    let (sku, _) = stocked_sku(&stocked).await;
    let tenant = household();
    let mut made = Vec::new();
    for _ in 0..2 {
        let request = ReserveRequest {
            key: Uuid::now_v7(),
            tenant,
            order_id: order_id(),
            lines: vec![line(&sku, 1, 100)],
        };
        let reservation = i.reserve(request.clone()).await.unwrap();
        made.push((request, reservation));
    }
    i.reserve(made[1].0.clone()).await.unwrap();
    i.reserve(ReserveRequest {
        key: Uuid::now_v7(),
        tenant,
        order_id: order_id(),
        lines: vec![line("no-such-sku", 1, 100)],
    })
    .await
    .unwrap_err();
    i.release(ReleaseRequest {
        key: Uuid::now_v7(),
        tenant,
        reservation_id: made[0].1.clone(),
    })
    .await
    .unwrap();

    let got: Vec<_> = all_reservations(i, 1)
        .await
        .into_iter()
        .filter(|e| e.tenant == tenant)
        .map(|e| (e.key, e.order_id, e.reservation_id, e.held))
        .collect();
    let expected: Vec<_> = made
        .iter()
        .enumerate()
        .map(|(n, (r, id))| (r.key.to_string(), r.order_id, id.clone(), n == 1))
        .collect();
    assert_eq!(
        got, expected,
        "refused attempts and replays are no entries; a release clears held"
    );
}

pub async fn the_catalog_names_and_prices_every_sku_once(stocked: Stocked) {
    let items = stocked.catalog.items().await.unwrap();
    assert!(!items.is_empty(), "something can be ordered");
    let mut skus = std::collections::HashSet::new();
    for item in &items {
        assert!(
            skus.insert(item.sku.clone()),
            "sku {} listed twice",
            item.sku
        );
        assert!(!item.sku.is_empty(), "{item:?} has no sku");
        assert!(!item.name.trim().is_empty(), "{item:?} has no name");
        assert!(item.unit_price_cents > 0, "{item:?} has no price");
    }
}

pub async fn reading_the_catalog_twice_gives_the_same_items(stocked: Stocked) {
    let first = stocked.catalog.items().await.unwrap();
    let again = stocked.catalog.items().await.unwrap();
    assert_eq!(first, again);
}

pub async fn a_reservation_shows_in_availability_and_a_release_gives_it_back(stocked: Stocked) {
    let (sku, before) = stocked_sku(&stocked).await;
    let reservation = stocked
        .inventory
        .reserve(ReserveRequest {
            key: Uuid::now_v7(),
            tenant: household(),
            order_id: order_id(),
            lines: vec![line(&sku, 4, 100)],
        })
        .await
        .unwrap();
    assert_eq!(
        available(&stocked, &sku).await,
        before - 4,
        "held is not available"
    );
    stocked
        .inventory
        .release(ReleaseRequest {
            key: Uuid::now_v7(),
            tenant: household(),
            reservation_id: reservation,
        })
        .await
        .unwrap();
    assert_eq!(
        available(&stocked, &sku).await,
        before,
        "released is available again"
    );
}

pub async fn an_unknown_sku_is_not_in_the_catalog(stocked: Stocked) {
    let items = stocked.catalog.items().await.unwrap();
    assert!(items.iter().all(|i| i.sku != "no-such-sku"));
}
