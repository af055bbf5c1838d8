//! The HTTP adapters against a real sandbox server on port 0: the port contracts,
//! then fault injection (transient failures, declines, out of stock, latency).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use hearth_core::ports::{
    CaptureRequest, Catalog, Inventory, Payments, ProviderError, RefundRequest, ReleaseRequest,
    ReserveRequest,
};
use hearth_core::{HouseholdId, OrderId, OrderLine};
use hearth_sandbox::{Faults, HttpInventory, HttpPayments, HttpProvider, RunningSandbox, Sandbox};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const TIMEOUT: Duration = Duration::from_secs(5);

async fn sandbox(faults: Faults) -> (RunningSandbox, HttpProvider) {
    let running = RunningSandbox::start(([127, 0, 0, 1], 0).into(), Sandbox::new(faults))
        .await
        .unwrap();
    let provider = HttpProvider::new(&running.url(), TIMEOUT).unwrap();
    (running, provider)
}

async fn payments() -> Arc<dyn Payments> {
    let (running, provider) = sandbox(Faults::default()).await;
    // The server task lives on the test's runtime; leak the handle so it outlives this fn.
    std::mem::forget(running);
    Arc::new(provider.payments())
}

/// The inventory and its catalog over HTTP; the catalog reads the provider every time
/// (a zero lifetime), as the contract expects (what it keeps: `the_catalog_is_kept_*`).
async fn stocked() -> hearth_contract::providers::Stocked {
    let (running, provider) = sandbox(Faults::default()).await;
    std::mem::forget(running);
    hearth_contract::providers::Stocked {
        inventory: Arc::new(provider.inventory()),
        catalog: Arc::new(provider.catalog(Duration::ZERO)),
    }
}

mod payments_contract {
    hearth_contract::payments_contract!(super::payments);
}

mod inventory_contract {
    hearth_contract::inventory_contract!(super::stocked);
}

mod catalog_contract {
    hearth_contract::catalog_contract!(super::stocked);
}

fn capture(key: Uuid, cents: u64) -> CaptureRequest {
    CaptureRequest {
        key,
        // Derived from the key, so a retry is the same request.
        tenant: HouseholdId(key),
        order_id: OrderId(key),
        amount_cents: cents,
    }
}

fn reserve(key: Uuid, sku: &str, quantity: u32) -> ReserveRequest {
    ReserveRequest {
        key,
        tenant: HouseholdId(Uuid::now_v7()),
        order_id: OrderId(Uuid::now_v7()),
        lines: vec![OrderLine {
            sku: sku.into(),
            name: sku.into(),
            quantity,
            unit_price_cents: 100,
        }],
    }
}

#[tokio::test]
async fn transient_failures_then_a_retry_with_the_same_key_captures_once() {
    let (running, provider) = sandbox(Faults {
        fail_next: 2,
        ..Faults::default()
    })
    .await;
    let payments = provider.payments();
    let request = capture(Uuid::now_v7(), 1_000);
    for _ in 0..2 {
        let err = payments.capture(request.clone()).await.unwrap_err();
        assert!(matches!(err, ProviderError::Transient(_)), "got {err:?}");
    }
    let first = payments.capture(request.clone()).await.unwrap();
    let again = payments.capture(request).await.unwrap();
    assert_eq!(first, again);
    let stats = running.sandbox().stats();
    assert_eq!(stats.captures, 1);
    assert_eq!(stats.captured_cents, 1_000);
    assert_eq!(stats.injected_failures, 2);
    assert_eq!(stats.replays, 1);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_failure_rate_with_retries_still_captures_once_per_key() {
    let (running, provider) = sandbox(Faults {
        failure_rate: 0.5,
        ..Faults::default()
    })
    .await;
    let payments = provider.payments();
    let mut failures = 0;
    for _ in 0..20 {
        let request = capture(Uuid::now_v7(), 100);
        let mut ids = Vec::new();
        // Retry until two successes: the second must be a replay of the first.
        while ids.len() < 2 {
            match payments.capture(request.clone()).await {
                Ok(id) => ids.push(id),
                Err(ProviderError::Transient(_)) => failures += 1,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(ids[0], ids[1]);
    }
    let stats = running.sandbox().stats();
    assert_eq!(stats.captures, 20, "one capture per key");
    assert_eq!(stats.injected_failures, failures);
    assert!(
        failures > 0,
        "a 50% failure rate failed nothing in {} calls",
        stats.requests
    );
}

#[tokio::test]
async fn declines_above_the_limit_and_remembers_the_decline() {
    let (running, provider) = sandbox(Faults::default()).await;
    let payments = provider.payments();
    // Set at run time through the admin endpoint, as an operator would with curl.
    let admin = reqwest::Client::new();
    let put = admin
        .put(format!("{}/admin/faults", running.url()))
        .json(&serde_json::json!({ "declineAboveCents": 5000 }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    assert!(
        payments
            .capture(capture(Uuid::now_v7(), 5_000))
            .await
            .is_ok()
    );
    let key = Uuid::now_v7();
    let err = payments.capture(capture(key, 5_001)).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Declined(ref m) if m.contains("5001")),
        "got {err:?}"
    );
    // Lifting the limit does not turn a declined key into a capture: the key is spent.
    running.sandbox().set_faults(Faults::default());
    let again = payments.capture(capture(key, 5_001)).await.unwrap_err();
    assert_eq!(again, err);
    let stats: serde_json::Value = admin
        .get(format!("{}/stats", running.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["captures"], 1);
    assert_eq!(stats["declines"], 1);
}

#[tokio::test]
async fn out_of_stock_skus_are_refused_and_hold_nothing() {
    let (running, provider) = sandbox(Faults {
        out_of_stock: vec!["milk".into()],
        ..Faults::default()
    })
    .await;
    let inventory = provider.inventory();
    let err = inventory
        .reserve(reserve(Uuid::now_v7(), "milk", 1))
        .await
        .unwrap_err();
    assert_eq!(err, ProviderError::OutOfStock { sku: "milk".into() });
    // More than the catalog holds is out of stock too.
    let err = inventory
        .reserve(reserve(Uuid::now_v7(), "pizza", 41))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ProviderError::OutOfStock {
            sku: "pizza".into()
        }
    );
    let stats = running.sandbox().stats();
    assert_eq!((stats.reservations, stats.held), (0, 0));
    // Reserve, release twice with one key, release with another key: stock back once.
    let id = inventory
        .reserve(reserve(Uuid::now_v7(), "pizza", 40))
        .await
        .unwrap();
    let release = ReleaseRequest {
        key: Uuid::now_v7(),
        tenant: HouseholdId(Uuid::now_v7()),
        reservation_id: id.clone(),
    };
    inventory.release(release.clone()).await.unwrap();
    inventory.release(release.clone()).await.unwrap();
    let other = inventory
        .release(ReleaseRequest {
            key: Uuid::now_v7(),
            ..release
        })
        .await
        .unwrap_err();
    assert!(matches!(other, ProviderError::Invalid(_)), "got {other:?}");
    let pizza = provider
        .catalog(Duration::ZERO)
        .items()
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.sku == "pizza")
        .unwrap();
    assert_eq!(pizza.available, 40);
    assert_eq!(running.sandbox().stats().releases, 1);
}

#[tokio::test]
async fn latency_beyond_the_client_timeout_is_transient_and_the_retry_does_not_double() {
    let (running, _) = sandbox(Faults {
        latency_ms: 1_500,
        ..Faults::default()
    })
    .await;
    let impatient = HttpPayments::new(&running.url(), Duration::from_millis(300)).unwrap();
    let request = capture(Uuid::now_v7(), 2_500);
    let started = std::time::Instant::now();
    let err = impatient.capture(request.clone()).await.unwrap_err();
    assert!(matches!(err, ProviderError::Transient(_)), "got {err:?}");
    assert!(
        started.elapsed() < Duration::from_millis(1_400),
        "the timeout was honoured"
    );
    // The latency comes after the effect, as with a slow real provider: the charge
    // happened. The retry with the same key gets it back instead of charging again.
    let patient = HttpPayments::new(&running.url(), Duration::from_secs(5)).unwrap();
    let id = patient.capture(request).await.unwrap();
    assert!(id.starts_with("pay_"));
    let stats = running.sandbox().stats();
    assert_eq!(stats.captures, 1);
    assert_eq!(stats.replays, 1);
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let (running, provider) = sandbox(Faults::default()).await;
    running.stop().await.unwrap();
    let err = provider
        .payments()
        .capture(capture(Uuid::now_v7(), 100))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Transient(_)), "got {err:?}");
}

#[tokio::test]
async fn bad_requests_are_refused_clearly_and_change_nothing() {
    let (running, provider) = sandbox(Faults::default()).await;
    let http = reqwest::Client::new();
    let url = format!("{}/payments/capture", running.url());
    let body = serde_json::json!({
        "tenant": Uuid::now_v7(), "orderId": Uuid::now_v7(), "amountCents": 100
    });
    // No idempotency key.
    let r = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["code"], "idempotency_key_required");
    // Malformed JSON.
    let r = http
        .post(&url)
        .header("Idempotency-Key", "k1")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The same key for a different request.
    let r = http
        .post(&url)
        .header("Idempotency-Key", "k2")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut other = body.clone();
    other["amountCents"] = 200.into();
    let r = http
        .post(&url)
        .header("Idempotency-Key", "k2")
        .json(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    // A refund of an unknown payment is Invalid, not retryable.
    let err = provider
        .payments()
        .refund(RefundRequest {
            key: Uuid::now_v7(),
            tenant: HouseholdId(Uuid::now_v7()),
            payment_id: "nope".into(),
            amount_cents: 1,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Invalid(_)), "got {err:?}");
    // A bad failure rate is refused.
    let r = http
        .put(format!("{}/admin/faults", running.url()))
        .json(&serde_json::json!({ "failureRate": 2.0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(running.sandbox().stats().captures, 1);
}

#[test]
fn a_bad_base_url_is_refused() {
    assert!(HttpInventory::new("not a url", TIMEOUT).is_err());
    assert!(HttpInventory::new("ftp://example.org", TIMEOUT).is_err());
}

/// The catalog is read from the provider at most once per lifetime: reads within it are
/// answered from the copy (counted at the server, no waiting), and a zero lifetime
/// reads every time.
#[tokio::test]
async fn the_catalog_is_kept_for_its_lifetime_and_read_again_without_one() {
    let (running, provider) = sandbox(Faults::default()).await;
    let kept = provider.catalog(Duration::from_secs(3_600));
    let first = kept.items().await.unwrap();
    running.sandbox().set_price("milk", 999);
    let again = kept.items().await.unwrap();
    assert_eq!(first, again, "within its lifetime the copy is the answer");
    assert_eq!(
        running.sandbox().catalog_reads(),
        1,
        "one request for two reads"
    );

    let fresh = provider.catalog(Duration::ZERO);
    let now = fresh.items().await.unwrap();
    let milk = now.iter().find(|i| i.sku == "milk").unwrap();
    assert_eq!(
        milk.unit_price_cents, 999,
        "a zero lifetime reads the change"
    );
    fresh.items().await.unwrap();
    assert_eq!(
        running.sandbox().catalog_reads(),
        3,
        "every read asks the provider"
    );
}

/// A provider that does not answer makes the catalog fail transiently, and nothing is
/// kept from the failure: the next read asks again.
#[tokio::test]
async fn an_unreachable_catalog_is_transient() {
    let (running, provider) = sandbox(Faults::default()).await;
    let url = running.url();
    running.stop().await.unwrap();
    let catalog = HttpProvider::new(&url, TIMEOUT)
        .unwrap()
        .catalog(Duration::from_secs(3_600));
    let err = catalog.items().await.unwrap_err();
    assert!(err.is_retryable(), "got {err:?}");
    drop(provider);
}
