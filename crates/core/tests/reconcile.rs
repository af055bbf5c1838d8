//! Reconciliation: given an order's history and the providers' ledger entries for it,
//! when compared, then these differences (pure); and the reconciler finding and
//! repairing a planted difference through the process, on the in-memory store and
//! providers.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use chrono::TimeDelta;
use hearth_core::fulfilment::{Advanced, Fulfilment};
use hearth_core::order::{CancelOrder, Command, Event, OrderLine, PlaceOrder, RequestedLine, fold};
use hearth_core::ports::{CaptureEntry, CaptureRequest, Clock, Payments, ReservationEntry};
use hearth_core::process::{capture_key, reserve_key};
use hearth_core::reconcile::{Difference, Found, OrderLedger, Reconciler, compare, settled};
use hearth_core::{
    Actor, CommandEnvelope, CommandId, Dispatched, HouseholdId, MemberId, OrderId, Service,
};
use hearth_memory::{ManualClock, MemoryEventStore, MemoryInventory, MemoryPayments};
use std::sync::Arc;
use uuid::Uuid;

const TENANT: HouseholdId = HouseholdId(Uuid::from_u128(1));
const ORDER: OrderId = OrderId(Uuid::from_u128(7));

fn placed() -> Event {
    Event::OrderPlaced {
        order_id: ORDER,
        lines: vec![OrderLine {
            sku: "bread".into(),
            name: "Bread".into(),
            quantity: 2,
            unit_price_cents: 450,
        }],
        total_cents: 900,
        ready_at: None,
        note: None,
        placed_by: MemberId(Uuid::nil()),
    }
}
fn reserved() -> Event {
    Event::StockReserved {
        order_id: ORDER,
        reservation_id: "res".into(),
    }
}
fn captured() -> Event {
    Event::PaymentCaptured {
        order_id: ORDER,
        payment_id: "pay".into(),
        amount_cents: 900,
    }
}
fn cancelled() -> Event {
    Event::OrderCancelled {
        order_id: ORDER,
        by: Actor::System,
        reason: None,
    }
}
fn released() -> Event {
    Event::StockReleased { order_id: ORDER }
}
fn refunded() -> Event {
    Event::RefundIssued {
        order_id: ORDER,
        refund_id: "ref".into(),
        amount_cents: 900,
    }
}

fn capture(payment_id: &str, refunded: bool) -> CaptureEntry {
    CaptureEntry {
        position: 1,
        key: capture_key(TENANT, ORDER).to_string(),
        tenant: TENANT,
        order_id: ORDER,
        payment_id: payment_id.into(),
        amount_cents: 900,
        refunded,
    }
}
fn reservation(reservation_id: &str, held: bool) -> ReservationEntry {
    ReservationEntry {
        position: 1,
        key: reserve_key(TENANT, ORDER).to_string(),
        tenant: TENANT,
        order_id: ORDER,
        reservation_id: reservation_id.into(),
        held,
    }
}

fn when_compared(
    history: &[Event],
    captures: Vec<CaptureEntry>,
    reservations: Vec<ReservationEntry>,
) -> Vec<Found> {
    let ledger = OrderLedger {
        captures,
        reservations,
    };
    compare(TENANT, ORDER, &fold(history), &ledger)
}

fn found(difference: Difference, repairable: bool) -> Found {
    Found {
        difference,
        repairable,
    }
}

#[test]
fn in_flight_steps_of_open_orders_are_not_differences() {
    // A reservation landed, its recording not yet done.
    assert_eq!(
        when_compared(&[placed()], vec![], vec![reservation("res", true)]),
        vec![]
    );
    // A capture landed on an order whose stock is reserved.
    assert_eq!(
        when_compared(
            &[placed(), reserved()],
            vec![capture("pay", false)],
            vec![reservation("res", true)]
        ),
        vec![]
    );
    // A confirmed order holds its stock and its charge: as the log says.
    assert_eq!(
        when_compared(
            &[placed(), reserved(), captured()],
            vec![capture("pay", false)],
            vec![reservation("res", true)]
        ),
        vec![]
    );
}

#[test]
fn a_fully_compensated_order_has_no_difference() {
    let history = [
        placed(),
        reserved(),
        captured(),
        cancelled(),
        released(),
        refunded(),
    ];
    assert_eq!(
        when_compared(
            &history,
            vec![capture("pay", true)],
            vec![reservation("res", false)]
        ),
        vec![]
    );
}

#[test]
fn a_capture_not_in_the_log_of_a_cancelled_order_is_repairable() {
    let history = [placed(), reserved(), cancelled(), released()];
    assert_eq!(
        when_compared(
            &history,
            vec![capture("pay_late", false)],
            vec![reservation("res", false)]
        ),
        vec![found(
            Difference::CaptureNotInLog {
                payment_id: "pay_late".into(),
                amount_cents: 900,
                refunded: false
            },
            true
        )]
    );
}

#[test]
fn a_capture_without_any_reservation_is_not_one_the_process_looks_for() {
    // FindUnrecorded looks for a capture only once a reservation is known.
    let history = [placed(), cancelled()];
    assert_eq!(
        when_compared(&history, vec![capture("pay", false)], vec![]),
        vec![found(
            Difference::CaptureNotInLog {
                payment_id: "pay".into(),
                amount_cents: 900,
                refunded: false
            },
            false
        )]
    );
    // Unless the ledger holds an unrecorded reservation too: found first, then the capture.
    let both = when_compared(
        &history,
        vec![capture("pay", false)],
        vec![reservation("res", true)],
    );
    assert_eq!(
        both,
        vec![
            found(
                Difference::ReservationNotInLog {
                    reservation_id: "res".into(),
                    held: true
                },
                true
            ),
            found(
                Difference::CaptureNotInLog {
                    payment_id: "pay".into(),
                    amount_cents: 900,
                    refunded: false
                },
                true
            )
        ]
    );
}

#[test]
fn a_charge_and_stock_on_a_closed_order_not_given_back() {
    let history = [placed(), reserved(), captured(), cancelled()];
    assert_eq!(
        when_compared(
            &history,
            vec![capture("pay", false)],
            vec![reservation("res", true)]
        ),
        vec![
            found(
                Difference::StockHeld {
                    reservation_id: "res".into()
                },
                true
            ),
            found(
                Difference::ChargeNotRefunded {
                    payment_id: "pay".into(),
                    amount_cents: 900
                },
                true
            )
        ]
    );
}

#[test]
fn a_refund_or_release_at_the_provider_the_log_does_not_show() {
    let closed = [placed(), reserved(), captured(), cancelled()];
    assert_eq!(
        when_compared(
            &closed,
            vec![capture("pay", true)],
            vec![reservation("res", false)]
        ),
        vec![
            found(
                Difference::ReleaseNotInLog {
                    reservation_id: "res".into()
                },
                true
            ),
            found(
                Difference::RefundNotInLog {
                    payment_id: "pay".into()
                },
                true
            )
        ]
    );
    // On an open order the process never gives back: not repairable.
    let open = [placed(), reserved(), captured()];
    assert_eq!(
        when_compared(
            &open,
            vec![capture("pay", true)],
            vec![reservation("res", true)]
        ),
        vec![found(
            Difference::RefundNotInLog {
                payment_id: "pay".into()
            },
            false
        )]
    );
}

#[test]
fn what_the_log_shows_given_back_but_the_provider_does_not() {
    let history = [
        placed(),
        reserved(),
        captured(),
        cancelled(),
        released(),
        refunded(),
    ];
    assert_eq!(
        when_compared(
            &history,
            vec![capture("pay", false)],
            vec![reservation("res", true)]
        ),
        vec![
            found(
                Difference::ReleaseNotAtProvider {
                    reservation_id: "res".into()
                },
                false
            ),
            found(
                Difference::RefundNotAtProvider {
                    payment_id: "pay".into()
                },
                false
            )
        ]
    );
}

#[test]
fn other_ids_foreign_keys_and_unknown_orders_are_reported_not_repaired() {
    let history = [placed(), reserved(), captured()];
    let mut foreign = capture("pay_other", false);
    foreign.key = "someone-else".into();
    let mut foreign_refunded = capture("pay_back", true);
    foreign_refunded.key = "someone-else-2".into();
    assert_eq!(
        when_compared(
            &history,
            vec![capture("pay_x", false), foreign, foreign_refunded],
            vec![reservation("res_x", true)]
        ),
        vec![
            found(
                Difference::ReservationMismatch {
                    log: "res".into(),
                    provider: "res_x".into()
                },
                false
            ),
            found(
                Difference::CaptureMismatch {
                    log: "pay of 900 cents".into(),
                    provider: "pay_x of 900 cents".into()
                },
                false
            ),
            found(
                Difference::ForeignKey {
                    what: "capture",
                    id: "pay_other".into(),
                    key: "someone-else".into()
                },
                false
            ),
        ],
        "a foreign capture already refunded is no longer in effect"
    );
    assert_eq!(
        when_compared(&[], vec![capture("pay", false)], vec![]),
        vec![found(
            Difference::UnknownOrder {
                captures: 1,
                reservations: 0
            },
            false
        )]
    );
}

#[test]
fn an_order_settles_once_its_last_event_is_old_enough() {
    let now = chrono::Utc::now();
    let settle = TimeDelta::seconds(60);
    assert!(settled(None, now, settle));
    assert!(!settled(Some(now - TimeDelta::seconds(59)), now, settle));
    assert!(settled(Some(now - TimeDelta::seconds(60)), now, settle));
}

// ---------------------------------------------------------------------------
// The reconciler on the in-memory store and providers
// ---------------------------------------------------------------------------

struct World {
    clock: Arc<ManualClock>,
    payments: Arc<MemoryPayments>,
    inventory: Arc<MemoryInventory>,
    fulfilment: Fulfilment,
    household: HouseholdId,
}

fn world() -> World {
    let store = Arc::new(MemoryEventStore::new());
    let clock = Arc::new(ManualClock::starting_now());
    let payments = Arc::new(MemoryPayments::new());
    let inventory = Arc::new(MemoryInventory::default());
    let service = Service::new(store, clock.clone()).with_catalog(inventory.clone());
    World {
        fulfilment: Fulfilment::new(service, payments.clone(), inventory.clone()),
        clock,
        payments,
        inventory,
        household: HouseholdId(Uuid::now_v7()),
    }
}

impl World {
    async fn dispatch(&self, actor: Actor, command: Command) {
        let result = self
            .fulfilment
            .service()
            .dispatch(CommandEnvelope::new(
                CommandId(Uuid::now_v7()),
                self.household,
                actor,
                command,
            ))
            .await
            .unwrap();
        assert!(matches!(result, Dispatched::Accepted { .. }), "{result:?}");
    }

    /// An order whose stock was reserved, then cancelled and released by its process,
    /// which ended: no job runs for it.
    async fn cancelled_after_reservation(&self) -> OrderId {
        let order = OrderId(Uuid::now_v7());
        let member = Actor::Member {
            id: MemberId(Uuid::now_v7()),
        };
        self.dispatch(
            member.clone(),
            Command::PlaceOrder(PlaceOrder {
                order_id: order,
                lines: vec![RequestedLine::new("bread", 1)],
                ready_at: Some(self.clock.now() + TimeDelta::hours(1)),
                note: None,
            }),
        )
        .await;
        assert!(matches!(
            self.fulfilment
                .advance(self.household, order)
                .await
                .unwrap(),
            Advanced::Progressed(_)
        ));
        self.dispatch(
            member,
            Command::CancelOrder(CancelOrder {
                order_id: order,
                reason: None,
            }),
        )
        .await;
        assert_eq!(
            self.fulfilment.run(self.household, order).await.unwrap(),
            Advanced::Done
        );
        order
    }
}

#[tokio::test]
async fn the_reconciler_finds_a_planted_capture_and_repairs_it_through_the_process() {
    let w = world();
    let order = w.cancelled_after_reservation().await;
    assert_eq!((w.payments.captures(), w.inventory.reservations()), (0, 0));
    // Planted: the provider captured under the order's capture key after the process
    // ended (a worker that died mid-call and came back late, say).
    w.payments
        .capture(CaptureRequest {
            key: capture_key(w.household, order),
            tenant: w.household,
            order_id: order,
            amount_cents: 450,
        })
        .await
        .unwrap();
    let reconciler = Reconciler::new(w.fulfilment.clone(), TimeDelta::zero());

    let report = reconciler.run(false).await.unwrap();
    assert_eq!(report.found.len(), 1, "{report:?}");
    assert_eq!(report.found[0].order, order);
    assert_eq!(report.found[0].difference.name(), "capture-not-in-log");
    assert!(report.found[0].repairable);
    assert_eq!(
        report.remaining, report.found,
        "nothing repaired without asking"
    );
    assert_eq!(w.payments.refunds(), 0);

    let report = reconciler.run(true).await.unwrap();
    assert_eq!(report.found.len(), 1);
    assert_eq!(report.repaired, report.found);
    assert!(report.remaining.is_empty(), "{report:?}");
    assert_eq!(w.payments.refunds(), 1, "given back once");
    let state = w
        .fulfilment
        .service()
        .load::<hearth_core::Orders>(w.household, order)
        .await
        .unwrap();
    let o = state.order.unwrap();
    assert!(
        o.payment_id.is_some() && o.refunded,
        "the log shows it: {o:?}"
    );

    let again = reconciler.run(true).await.unwrap();
    assert!(again.found.is_empty(), "{again:?}");
    assert_eq!(w.payments.refunds(), 1, "nothing twice");
}

#[tokio::test]
async fn an_order_that_has_not_settled_is_not_reported_yet() {
    let w = world();
    let order = w.cancelled_after_reservation().await;
    w.payments
        .capture(CaptureRequest {
            key: capture_key(w.household, order),
            tenant: w.household,
            order_id: order,
            amount_cents: 450,
        })
        .await
        .unwrap();
    let reconciler = Reconciler::new(w.fulfilment.clone(), TimeDelta::minutes(2));
    let report = reconciler.run(true).await.unwrap();
    assert_eq!((report.found.len(), report.unsettled), (0, 1), "{report:?}");
    assert_eq!(w.payments.refunds(), 0, "left to the process for now");
    w.clock.advance(TimeDelta::minutes(2));
    let report = reconciler.run(true).await.unwrap();
    assert_eq!((report.found.len(), report.repaired.len()), (1, 1));
}
