//! Properties of the whole core against the in-memory store:
//! - for any sequence of commands, the projection built from the events each accepted
//!   command returned equals the fold of the stored feed;
//! - replaying any command id returns its first outcome and appends nothing.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use hearth_core::CatalogItem;
use hearth_core::order::{
    CancelOrder, Command, OrderRef, PlaceOrder, RecordPaymentCaptured, RecordStockReserved,
    RequestedLine,
};
use hearth_core::ports::EventStore;
use hearth_core::{
    Actor, CommandEnvelope, CommandId, Dispatched, HouseholdId, HouseholdView, MemberId, OrderId,
    Service,
};
use hearth_memory::{ManualClock, MemoryEventStore, MemoryInventory};

const PRICE: u64 = 1000;
use proptest::prelude::*;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Clone, Debug)]
enum Op {
    Place {
        order: usize,
        qty: u32,
        cents: u64,
    },
    Cancel {
        order: usize,
    },
    Complete {
        order: usize,
    },
    Reserve {
        order: usize,
    },
    Capture {
        order: usize,
        cents: u64,
    },
    Confirm {
        order: usize,
    },
    Ready {
        order: usize,
    },
    ForgedInternal {
        order: usize,
    },
    /// Replay the command at this index of the history (mod its length).
    Replay {
        index: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let order = 0usize..4;
    prop_oneof![
        3 => (order.clone(), 0u32..=100, 0u64..2000).prop_map(|(order, qty, cents)| Op::Place { order, qty, cents }),
        1 => order.clone().prop_map(|order| Op::Cancel { order }),
        1 => order.clone().prop_map(|order| Op::Complete { order }),
        2 => order.clone().prop_map(|order| Op::Reserve { order }),
        2 => (order.clone(), 0u64..2000).prop_map(|(order, cents)| Op::Capture { order, cents }),
        2 => order.clone().prop_map(|order| Op::Confirm { order }),
        2 => order.clone().prop_map(|order| Op::Ready { order }),
        1 => order.clone().prop_map(|order| Op::ForgedInternal { order }),
        2 => (0usize..64).prop_map(|index| Op::Replay { index }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]
    #[test]
    fn projection_equals_fold_of_stored_events_and_replays_append_nothing(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(check(ops))?;
    }
}

async fn check(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let store = Arc::new(MemoryEventStore::new());
    // The catalog sells "s" at 1000 cents; a place shows that price or another.
    let catalog = Arc::new(MemoryInventory::with_catalog(vec![CatalogItem {
        sku: "s".into(),
        name: "S".into(),
        unit_price_cents: PRICE,
        available: 100,
    }]));
    let service =
        Service::new(store.clone(), Arc::new(ManualClock::starting_now())).with_catalog(catalog);
    let household = HouseholdId(Uuid::now_v7());
    let member = Actor::Member {
        id: MemberId(Uuid::now_v7()),
    };
    let orders: Vec<OrderId> = (0..4).map(|_| OrderId(Uuid::now_v7())).collect();
    let mut history: Vec<(CommandEnvelope, Dispatched)> = Vec::new();
    let mut live = HouseholdView::new();
    let mut totals = [0u64; 4];
    for op in ops {
        let (actor, command) = match op {
            Op::Place { order, qty, cents } => {
                totals[order] = u64::from(qty) * PRICE;
                (
                    member.clone(),
                    Command::PlaceOrder(PlaceOrder {
                        order_id: orders[order],
                        lines: vec![RequestedLine {
                            sku: "s".into(),
                            quantity: qty,
                            // Shown at the catalog's price, or (odd) at another.
                            unit_price_cents: Some(if cents % 2 == 0 { PRICE } else { cents }),
                        }],
                        ready_at: None,
                        note: None,
                    }),
                )
            }
            Op::Cancel { order } => (
                member.clone(),
                Command::CancelOrder(CancelOrder {
                    order_id: orders[order],
                    reason: None,
                }),
            ),
            Op::Complete { order } => (
                member.clone(),
                Command::CompleteOrder(OrderRef {
                    order_id: orders[order],
                }),
            ),
            Op::Reserve { order } => (
                Actor::Process,
                Command::RecordStockReserved(RecordStockReserved {
                    order_id: orders[order],
                    reservation_id: "r".into(),
                }),
            ),
            Op::Capture { order, cents } => {
                let amount = if cents % 2 == 0 { totals[order] } else { cents };
                (
                    Actor::Process,
                    Command::RecordPaymentCaptured(RecordPaymentCaptured {
                        order_id: orders[order],
                        payment_id: "p".into(),
                        amount_cents: amount,
                    }),
                )
            }
            Op::Confirm { order } => (
                Actor::Process,
                Command::ConfirmOrder(OrderRef {
                    order_id: orders[order],
                }),
            ),
            Op::Ready { order } => (
                Actor::Process,
                Command::MarkReady(OrderRef {
                    order_id: orders[order],
                }),
            ),
            Op::ForgedInternal { order } => (
                member.clone(),
                Command::MarkReady(OrderRef {
                    order_id: orders[order],
                }),
            ),
            Op::Replay { index } => {
                if history.is_empty() {
                    continue;
                }
                let (envelope, first) = history[index % history.len()].clone();
                let head = store.head(household).await.unwrap();
                let again = service.dispatch(envelope).await.unwrap();
                prop_assert_eq!(again, Dispatched::Duplicate(first.outcome()));
                prop_assert_eq!(
                    store.head(household).await.unwrap(),
                    head,
                    "a replay appends nothing"
                );
                continue;
            }
        };
        let envelope = CommandEnvelope::new(CommandId(Uuid::now_v7()), household, actor, command);
        let result = service.dispatch(envelope.clone()).await.unwrap();
        if let Dispatched::Accepted { events, .. } = &result {
            for e in events {
                prop_assert!(live.apply(e).unwrap(), "each event is new to the live view");
            }
        }
        prop_assert!(
            !matches!(result, Dispatched::Duplicate(_)),
            "fresh ids are never duplicates"
        );
        history.push((envelope, result));
    }
    let stored = store.read_feed(household, 0, usize::MAX).await.unwrap();
    let folded = HouseholdView::fold(&stored).unwrap();
    prop_assert_eq!(&live, &folded);
    prop_assert_eq!(folded.seq, stored.len() as u64);
    Ok(())
}
