//! The fulfilment process carried out through the ports, against the in-memory store
//! and sandbox providers: the paths the executors rely on.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use chrono::TimeDelta;
use hearth_contract::interleave::{CancelDuring, During, Reply};
use hearth_core::fulfilment::{Advanced, Fulfilment};
use hearth_core::order::{
    CancelOrder, Command, OrderStatus, PlaceOrder, RejectionReason, RequestedLine,
};
use hearth_core::ports::{Clock, EventStore, Inventory};
use hearth_core::process::Step;
use hearth_core::service::ServiceConfig;
use hearth_core::{
    Actor, CommandEnvelope, CommandId, Dispatched, HouseholdId, MemberId, OrderId, Service,
};
use hearth_memory::{ManualClock, MemoryEventStore, MemoryInventory, MemoryPayments};
use std::sync::Arc;
use uuid::Uuid;

struct World {
    store: Arc<MemoryEventStore>,
    clock: Arc<ManualClock>,
    payments: Arc<MemoryPayments>,
    inventory: Arc<MemoryInventory>,
    fulfilment: Fulfilment,
    household: HouseholdId,
}

fn world() -> World {
    world_with(ServiceConfig::default())
}

fn world_with(config: ServiceConfig) -> World {
    let store = Arc::new(MemoryEventStore::new());
    let clock = Arc::new(ManualClock::starting_now());
    let payments = Arc::new(MemoryPayments::new());
    let inventory = Arc::new(MemoryInventory::default());
    // The inventory serves the catalog orders are placed from.
    let service =
        Service::with_config(store.clone(), clock.clone(), config).with_catalog(inventory.clone());
    World {
        fulfilment: Fulfilment::new(service, payments.clone(), inventory.clone()),
        store,
        clock,
        payments,
        inventory,
        household: HouseholdId(Uuid::now_v7()),
    }
}

impl World {
    async fn place(&self, sku: &str, qty: u32, ready_in: Option<TimeDelta>) -> OrderId {
        let order = OrderId(Uuid::now_v7());
        let command = Command::PlaceOrder(PlaceOrder {
            order_id: order,
            lines: vec![RequestedLine::new(sku, qty)],
            ready_at: ready_in.map(|d| self.clock.now() + d),
            note: None,
        });
        let member = Actor::Member {
            id: MemberId(Uuid::now_v7()),
        };
        let result = self
            .fulfilment
            .service()
            .dispatch(CommandEnvelope::new(
                CommandId(Uuid::now_v7()),
                self.household,
                member,
                command,
            ))
            .await
            .unwrap();
        assert!(matches!(result, Dispatched::Accepted { .. }));
        order
    }

    async fn status(&self, order: OrderId) -> OrderStatus {
        self.fulfilment
            .service()
            .load::<hearth_core::Orders>(self.household, order)
            .await
            .unwrap()
            .order
            .unwrap()
            .status
    }

    async fn types(&self) -> Vec<&'static str> {
        self.store
            .read_feed(self.household, 0, 1000)
            .await
            .unwrap()
            .iter()
            .map(|e| e.event.type_name())
            .collect()
    }
}

#[tokio::test]
async fn an_order_goes_to_ready_at_its_ready_at() {
    let w = world();
    let order = w.place("bread", 2, Some(TimeDelta::hours(2))).await;
    let until = match w.fulfilment.run(w.household, order).await.unwrap() {
        Advanced::Waiting { until } => until,
        other => panic!("expected a wait, got {other:?}"),
    };
    assert_eq!(w.status(order).await, OrderStatus::Confirmed);
    assert_eq!(w.inventory.available("bread"), Some(98));
    // Woken early (a spurious timer): still waiting, nothing recorded.
    w.clock.advance(TimeDelta::hours(1));
    assert_eq!(
        w.fulfilment.run(w.household, order).await.unwrap(),
        Advanced::Waiting { until }
    );
    w.clock.set(until);
    assert_eq!(
        w.fulfilment.run(w.household, order).await.unwrap(),
        Advanced::Done
    );
    assert_eq!(
        w.types().await,
        vec![
            "OrderPlaced",
            "StockReserved",
            "PaymentCaptured",
            "OrderConfirmed",
            "OrderReady"
        ]
    );
    assert_eq!(w.payments.captures(), 1);
}

#[tokio::test]
async fn an_order_as_soon_as_possible_is_ready_after_the_preparation_time() {
    let w = world_with(ServiceConfig {
        prep_time: TimeDelta::minutes(10),
        ..ServiceConfig::default()
    });
    let placed_at = w.clock.now();
    let order = w.place("bread", 1, None).await;
    let state = w
        .fulfilment
        .service()
        .load::<hearth_core::Orders>(w.household, order)
        .await
        .unwrap();
    let expected = placed_at + TimeDelta::minutes(10);
    assert_eq!(
        state.order.unwrap().ready_at,
        Some(expected),
        "members see when to expect it"
    );
    assert_eq!(
        w.fulfilment.run(w.household, order).await.unwrap(),
        Advanced::Waiting { until: expected },
        "confirmed at once, then prepared"
    );
    assert_eq!(w.status(order).await, OrderStatus::Confirmed);
    w.clock
        .advance(TimeDelta::minutes(10) - TimeDelta::microseconds(1));
    assert_eq!(
        w.fulfilment.run(w.household, order).await.unwrap(),
        Advanced::Waiting { until: expected },
        "not ready a moment before"
    );
    w.clock.advance(TimeDelta::microseconds(1));
    assert_eq!(
        w.fulfilment.run(w.household, order).await.unwrap(),
        Advanced::Done
    );
    assert_eq!(w.status(order).await, OrderStatus::Ready);
}

#[tokio::test]
async fn transient_payment_failures_then_success_capture_once() {
    let w = world();
    let order = w.place("milk", 1, None).await;
    w.payments.fail_next(2);
    let mut retries = 0;
    let end = loop {
        match w.fulfilment.run(w.household, order).await {
            Ok(end) => break end,
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                retries += 1;
                assert!(retries <= 2, "only the injected failures are retried");
            }
        }
    };
    assert_eq!(end, Advanced::Done);
    assert_eq!(retries, 2);
    assert_eq!(w.payments.captures(), 1, "one capture at the provider");
    assert_eq!(w.status(order).await, OrderStatus::Ready);
}

#[tokio::test]
async fn declined_payment_rejects_and_releases_stock() {
    let w = world();
    w.payments.decline_above(100);
    let order = w.place("coffee", 1, None).await;
    assert_eq!(
        w.fulfilment.run(w.household, order).await.unwrap(),
        Advanced::Done
    );
    assert_eq!(w.status(order).await, OrderStatus::Rejected);
    let state = w
        .fulfilment
        .service()
        .load::<hearth_core::Orders>(w.household, order)
        .await
        .unwrap()
        .order
        .unwrap();
    assert!(matches!(
        state.rejection,
        Some(RejectionReason::PaymentDeclined { .. })
    ));
    assert!(state.stock_released);
    assert_eq!(w.payments.captures(), 0, "nothing captured");
    assert_eq!(w.inventory.available("coffee"), Some(50), "stock back");
    assert_eq!(w.inventory.reservations(), 0);
}

#[tokio::test]
async fn out_of_stock_rejects_without_holding_anything() {
    let w = world();
    // 40 in the sandbox catalog: 30 are ordered, then 20 go to someone else before the
    // process reserves (the catalog the order was decided on is no promise).
    let order = w.place("pizza", 30, None).await;
    let elsewhere = w
        .inventory
        .reserve(hearth_core::ports::ReserveRequest {
            key: Uuid::now_v7(),
            tenant: w.household,
            order_id: OrderId(Uuid::now_v7()),
            lines: vec![hearth_core::OrderLine {
                sku: "pizza".into(),
                name: "Margherita pizza".into(),
                quantity: 20,
                unit_price_cents: 1150,
            }],
        })
        .await
        .unwrap();
    assert_eq!(
        w.fulfilment.run(w.household, order).await.unwrap(),
        Advanced::Done
    );
    let state = w
        .fulfilment
        .service()
        .load::<hearth_core::Orders>(w.household, order)
        .await
        .unwrap()
        .order
        .unwrap();
    assert_eq!(
        state.rejection,
        Some(RejectionReason::OutOfStock {
            sku: "pizza".into()
        })
    );
    assert_eq!(
        w.inventory.available("pizza"),
        Some(20),
        "only the other hold"
    );
    drop(elsewhere);
}

#[tokio::test]
async fn cancel_after_capture_refunds_once_and_releases() {
    let w = world();
    let order = w.place("eggs", 3, Some(TimeDelta::hours(3))).await;
    assert!(matches!(
        w.fulfilment.run(w.household, order).await.unwrap(),
        Advanced::Waiting { .. }
    ));
    let cancel = Command::CancelOrder(CancelOrder {
        order_id: order,
        reason: None,
    });
    let member = Actor::Member {
        id: MemberId(Uuid::now_v7()),
    };
    w.fulfilment
        .service()
        .dispatch(CommandEnvelope::new(
            CommandId(Uuid::now_v7()),
            w.household,
            member,
            cancel,
        ))
        .await
        .unwrap();
    assert_eq!(
        w.fulfilment.run(w.household, order).await.unwrap(),
        Advanced::Done
    );
    // Running the process again (a duplicate job, a restarted executor) does nothing more.
    assert_eq!(
        w.fulfilment.run(w.household, order).await.unwrap(),
        Advanced::Done
    );
    assert_eq!(w.payments.refunds(), 1);
    assert_eq!(w.inventory.available("eggs"), Some(100));
    let types = w.types().await;
    assert_eq!(types.iter().filter(|t| **t == "RefundIssued").count(), 1);
    assert_eq!(types.iter().filter(|t| **t == "StockReleased").count(), 1);
}

#[tokio::test]
async fn a_step_repeated_after_a_crash_changes_nothing_at_the_provider() {
    // Simulate a crash after the provider call but before the recording: the executor
    // runs the same step again; the idempotency key returns the first result.
    let w = world();
    let order = w.place("apples", 1, None).await;
    let first = w.fulfilment.advance(w.household, order).await.unwrap();
    assert!(matches!(
        first,
        Advanced::Progressed(Step::ReserveStock { .. })
    ));
    use hearth_core::ports::{Inventory, ReserveRequest};
    let step = Step::ReserveStock { lines: vec![] };
    let again = w
        .inventory
        .reserve(ReserveRequest {
            key: step.key(w.household, order),
            tenant: w.household,
            order_id: order,
            lines: vec![],
        })
        .await
        .unwrap();
    assert!(again.starts_with("res_"));
    assert_eq!(w.inventory.available("apples"), Some(99), "held once");
}

/// A world whose providers let a member's cancel land in the middle of a call.
fn world_with_cancel_during() -> (World, Arc<CancelDuring>) {
    let mut w = world();
    let during = CancelDuring::new(
        w.payments.clone(),
        w.inventory.clone(),
        w.fulfilment.service().clone(),
    );
    w.fulfilment = Fulfilment::new(
        w.fulfilment.service().clone(),
        during.clone(),
        during.clone(),
    );
    (w, during)
}

impl World {
    /// Runs the process to its end, retrying what is retryable (a lost reply).
    async fn settle(&self, order: OrderId) -> Advanced {
        for _ in 0..5 {
            match self.fulfilment.run(self.household, order).await {
                Ok(end) => return end,
                Err(e) => assert!(e.is_retryable(), "{e}"),
            }
        }
        panic!("the process did not settle");
    }

    fn count(types: &[&str], name: &str) -> usize {
        types.iter().filter(|t| **t == name).count()
    }
}

#[tokio::test]
async fn a_reservation_that_lands_after_a_cancel_is_recorded_and_released() {
    for reply in [Reply::Late, Reply::Lost] {
        let (w, during) = world_with_cancel_during();
        during.arm(During::Reserve, reply);
        let order = w.place("bread", 2, None).await;
        assert_eq!(w.settle(order).await, Advanced::Done, "{reply:?}");
        assert_eq!(during.fired(), 1);
        assert_eq!(w.status(order).await, OrderStatus::Cancelled);
        assert_eq!(w.inventory.reservations(), 0, "{reply:?}: nothing held");
        assert_eq!(w.inventory.available("bread"), Some(100));
        assert_eq!(w.payments.captures(), 0, "never charged");
        let types = w.types().await;
        assert_eq!(
            World::count(&types, "StockReservedAfterClose"),
            1,
            "{types:?}"
        );
        assert_eq!(World::count(&types, "StockReleased"), 1, "{types:?}");
        // Run again (a duplicate job, a restart): nothing more happens.
        assert_eq!(w.settle(order).await, Advanced::Done);
        assert_eq!(w.types().await, types);
    }
}

#[tokio::test]
async fn a_capture_that_lands_after_a_cancel_is_recorded_and_refunded() {
    for reply in [Reply::Late, Reply::Lost] {
        let (w, during) = world_with_cancel_during();
        during.arm(During::Capture, reply);
        let order = w.place("coffee", 1, None).await;
        assert_eq!(w.settle(order).await, Advanced::Done, "{reply:?}");
        assert_eq!(during.fired(), 1);
        assert_eq!(w.status(order).await, OrderStatus::Cancelled);
        assert_eq!(w.payments.captures(), 1);
        assert_eq!(
            w.payments.refunds(),
            1,
            "{reply:?}: the charge is given back"
        );
        assert_eq!(w.inventory.reservations(), 0, "{reply:?}: nothing held");
        assert_eq!(w.inventory.available("coffee"), Some(50));
        let types = w.types().await;
        assert_eq!(
            World::count(&types, "PaymentCapturedAfterClose"),
            1,
            "{types:?}"
        );
        assert_eq!(World::count(&types, "RefundIssued"), 1, "{types:?}");
        assert_eq!(World::count(&types, "StockReleased"), 1, "{types:?}");
        assert_eq!(w.settle(order).await, Advanced::Done);
        assert_eq!(w.types().await, types);
        assert_eq!(w.payments.refunds(), 1, "refunded once");
    }
}
