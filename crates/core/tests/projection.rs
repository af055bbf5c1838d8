//! The household projection: what members see, folded in seq order.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use hearth_core::order::{Event, OrderLine};
use hearth_core::projection::SeqGap;
use hearth_core::{
    Actor, EventEnvelope, EventMetadata, HouseholdId, HouseholdView, MemberId, OrderId, OrderStatus,
};
use hearth_core::{CommandId, EventId};
use uuid::Uuid;

fn envelope(seq: u64, event: Event) -> EventEnvelope {
    EventEnvelope {
        id: EventId(Uuid::from_u128(u128::from(seq))),
        tenant: HouseholdId(Uuid::from_u128(1)),
        seq,
        aggregate_id: event.order_id().0,
        version: 1,
        requires_job: event.requires_job(),
        event: event.into(),
        schema_version: 1,
        metadata: EventMetadata {
            command_id: CommandId(Uuid::nil()),
            causation_id: Uuid::nil(),
            correlation_id: Uuid::nil(),
            actor: Actor::System,
        },
        created_at: chrono::DateTime::UNIX_EPOCH,
    }
}

fn placed(order: OrderId) -> Event {
    Event::OrderPlaced {
        order_id: order,
        lines: vec![OrderLine {
            sku: "a".into(),
            name: "A".into(),
            quantity: 2,
            unit_price_cents: 300,
        }],
        total_cents: 600,
        ready_at: None,
        note: Some("n".into()),
        placed_by: MemberId(Uuid::from_u128(5)),
    }
}

#[test]
fn orders_with_status_and_timeline() {
    let (a, b) = (OrderId(Uuid::from_u128(10)), OrderId(Uuid::from_u128(11)));
    let events = vec![
        envelope(1, placed(a)),
        envelope(2, placed(b)),
        envelope(
            3,
            Event::StockReserved {
                order_id: a,
                reservation_id: "r".into(),
            },
        ),
        envelope(
            4,
            Event::OrderCancelled {
                order_id: b,
                by: Actor::Member {
                    id: MemberId(Uuid::from_u128(5)),
                },
                reason: None,
            },
        ),
    ];
    let view = HouseholdView::fold(&events).unwrap();
    assert_eq!(view.seq, 4);
    assert_eq!(
        view.orders.iter().map(|o| o.id).collect::<Vec<_>>(),
        vec![a, b],
        "in placement order"
    );
    let oa = view.order(a).unwrap();
    assert_eq!(oa.status, OrderStatus::StockReserved);
    assert_eq!(oa.total_cents, 600);
    assert_eq!(oa.placed_by, MemberId(Uuid::from_u128(5)));
    assert_eq!(
        oa.timeline
            .iter()
            .map(|t| (t.seq, t.event.as_str(), t.status))
            .collect::<Vec<_>>(),
        vec![
            (1, "OrderPlaced", OrderStatus::Placed),
            (3, "StockReserved", OrderStatus::StockReserved),
        ]
    );
    let ob = view.order(b).unwrap();
    assert_eq!(ob.status, OrderStatus::Cancelled);
    assert!(ob.cancelled_by.is_some());
}

#[test]
fn an_order_shows_who_placed_cancelled_or_collected_it_and_why() {
    let (a, b) = (OrderId(Uuid::from_u128(10)), OrderId(Uuid::from_u128(11)));
    let ben = MemberId(Uuid::from_u128(6));
    let events = vec![
        envelope(1, placed(a)),
        envelope(2, placed(b)),
        envelope(
            3,
            Event::OrderCancelled {
                order_id: a,
                by: Actor::Member { id: ben },
                reason: Some("we are eating out".into()),
            },
        ),
        envelope(4, Event::OrderConfirmed { order_id: b }),
        envelope(5, Event::OrderReady { order_id: b }),
        envelope(
            6,
            Event::OrderCompleted {
                order_id: b,
                by: ben,
            },
        ),
    ];
    let view = HouseholdView::fold(&events).unwrap();
    let cancelled = view.order(a).unwrap();
    assert_eq!(cancelled.placed_by, MemberId(Uuid::from_u128(5)));
    assert_eq!(cancelled.cancelled_by, Some(Actor::Member { id: ben }));
    assert_eq!(
        cancelled.cancel_reason.as_deref(),
        Some("we are eating out")
    );
    assert_eq!(cancelled.completed_by, None);
    let collected = view.order(b).unwrap();
    assert_eq!(collected.completed_by, Some(ben));
    assert_eq!(
        (&collected.cancelled_by, &collected.cancel_reason),
        (&None, &None)
    );
}

#[test]
fn applying_an_event_twice_changes_nothing() {
    let a = OrderId(Uuid::from_u128(10));
    let mut view = HouseholdView::new();
    assert_eq!(view.apply(&envelope(1, placed(a))), Ok(true));
    let once = view.clone();
    assert_eq!(view.apply(&envelope(1, placed(a))), Ok(false));
    assert_eq!(view, once);
}

#[test]
fn an_order_already_past_an_event_keeps_its_state_and_the_view_moves_on() {
    // A client holding the window of recent orders merges an older order read at a later
    // seq (a page over HTTP): the events it already holds move only the view's seq.
    let (a, b) = (OrderId(Uuid::from_u128(10)), OrderId(Uuid::from_u128(11)));
    let reserved = |order_id| Event::StockReserved {
        order_id,
        reservation_id: "r".into(),
    };
    let events = [
        envelope(1, placed(a)),
        envelope(2, placed(b)),
        envelope(3, reserved(a)),
        envelope(4, reserved(b)),
    ];
    let full = HouseholdView::fold(&events).unwrap();
    let mut merged = HouseholdView::fold(&events[..2]).unwrap();
    merged.orders[0] = full.orders[0].clone();
    assert_eq!(merged.apply(&events[2]), Ok(true));
    assert_eq!(merged.seq, 3);
    assert_eq!(merged.orders[0], full.orders[0], "not folded twice");
    merged.apply(&events[3]).unwrap();
    assert_eq!(merged, full);
}

#[test]
fn a_gap_is_refused() {
    let a = OrderId(Uuid::from_u128(10));
    let mut view = HouseholdView::new();
    view.apply(&envelope(1, placed(a))).unwrap();
    assert_eq!(
        view.apply(&envelope(3, Event::OrderReady { order_id: a })),
        Err(SeqGap { at: 1, got: 3 })
    );
    assert_eq!(view.seq, 1, "nothing folded");
}

#[test]
fn a_late_provider_success_leaves_a_cancelled_order_cancelled() {
    let a = OrderId(Uuid::from_u128(10));
    let events = vec![
        envelope(1, placed(a)),
        envelope(
            2,
            Event::OrderCancelled {
                order_id: a,
                by: Actor::System,
                reason: None,
            },
        ),
        envelope(
            3,
            Event::StockReservedAfterClose {
                order_id: a,
                reservation_id: "r".into(),
            },
        ),
        envelope(
            4,
            Event::PaymentCapturedAfterClose {
                order_id: a,
                payment_id: "p".into(),
                amount_cents: 600,
            },
        ),
        envelope(5, Event::StockReleased { order_id: a }),
    ];
    let view = HouseholdView::fold(&events).unwrap();
    let order = view.order(a).unwrap();
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert!(order.stock_released);
    let timeline: Vec<_> = order
        .timeline
        .iter()
        .map(|t| (t.event.as_str(), t.status))
        .collect();
    assert_eq!(
        timeline[2..4],
        [
            ("StockReservedAfterClose", OrderStatus::Cancelled),
            ("PaymentCapturedAfterClose", OrderStatus::Cancelled)
        ]
    );
}
