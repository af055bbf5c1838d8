//! The fulfilment process: next step from state, and the command recording each result.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use chrono::{TimeDelta, TimeZone, Utc};
use hearth_core::order::{Command, Event, OrderLine, OrderRef, RejectionReason, fold};
use hearth_core::ports::{Capture, ProviderError};
use hearth_core::process::{Followup, Found, Step, StepResult, next_step, record, unrecorded};
use hearth_core::{Actor, HouseholdId, MemberId, OrderId, Timestamp};
use uuid::Uuid;

const ORDER: OrderId = OrderId(Uuid::from_u128(7));

fn now() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn lines() -> Vec<OrderLine> {
    vec![OrderLine {
        sku: "bread".into(),
        name: "Bread".into(),
        quantity: 2,
        unit_price_cents: 450,
    }]
}

fn placed(ready_at: Option<Timestamp>) -> Event {
    Event::OrderPlaced {
        order_id: ORDER,
        lines: lines(),
        total_cents: 900,
        ready_at,
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

fn step(history: &[Event]) -> Step {
    next_step(&fold(history), now())
}

#[test]
fn happy_path_steps() {
    assert_eq!(step(&[]), Step::Done, "no order, nothing to do");
    assert_eq!(step(&[placed(None)]), Step::ReserveStock { lines: lines() });
    assert_eq!(
        step(&[placed(None), reserved()]),
        Step::CapturePayment { amount_cents: 900 }
    );
    assert_eq!(step(&[placed(None), reserved(), captured()]), Step::Confirm);
    let confirmed = Event::OrderConfirmed { order_id: ORDER };
    assert_eq!(
        step(&[placed(None), reserved(), captured(), confirmed.clone()]),
        Step::MarkReady
    );
    let ready = Event::OrderReady { order_id: ORDER };
    assert_eq!(
        step(&[placed(None), reserved(), captured(), confirmed, ready]),
        Step::Done
    );
}

#[test]
fn waits_until_ready_at() {
    let at = now() + TimeDelta::hours(2);
    let history = [
        placed(Some(at)),
        reserved(),
        captured(),
        Event::OrderConfirmed { order_id: ORDER },
    ];
    assert_eq!(next_step(&fold(&history), now()), Step::WaitUntil { at });
    assert_eq!(
        next_step(&fold(&history), at),
        Step::MarkReady,
        "at ready-at, mark ready"
    );
}

#[test]
fn compensates_a_cancel_after_capture() {
    let history = vec![placed(None), reserved(), captured(), cancelled()];
    assert_eq!(
        step(&history),
        Step::ReleaseStock {
            reservation_id: "res".into()
        }
    );
    let mut released = history.clone();
    released.push(Event::StockReleased { order_id: ORDER });
    assert_eq!(
        step(&released),
        Step::Refund {
            payment_id: "pay".into(),
            amount_cents: 900
        }
    );
    released.push(Event::RefundIssued {
        order_id: ORDER,
        refund_id: "ref".into(),
        amount_cents: 900,
    });
    assert_eq!(step(&released), Step::Done);
}

#[test]
fn a_cancel_before_any_recorded_reservation_asks_the_ledger() {
    // The reserve may be in flight, or may have landed with its caller dead.
    assert_eq!(
        step(&[placed(None), cancelled()]),
        Step::FindUnrecorded {
            reservation: true,
            capture: false
        }
    );
}

#[test]
fn a_cancel_after_a_recorded_reservation_asks_the_ledger_for_a_capture() {
    let history = [
        placed(None),
        reserved(),
        cancelled(),
        Event::StockReleased { order_id: ORDER },
    ];
    assert_eq!(
        step(&history),
        Step::FindUnrecorded {
            reservation: false,
            capture: true
        }
    );
}

#[test]
fn what_the_ledger_holds_beyond_the_log_is_recorded_then_given_back() {
    let history = vec![placed(None), cancelled()];
    let found = Found {
        reservation: Some("res_9".into()),
        capture: None,
    };
    let (forward, result) = unrecorded(&fold(&history), found).unwrap();
    assert_eq!(forward.name(), "reserve-stock");
    assert!(matches!(
        record(ORDER, &forward, result),
        Followup::Record(Command::RecordStockReserved(c)) if c.reservation_id == "res_9"
    ));
    let mut history = history;
    history.push(Event::StockReservedAfterClose {
        order_id: ORDER,
        reservation_id: "res_9".into(),
    });
    assert_eq!(
        step(&history),
        Step::ReleaseStock {
            reservation_id: "res_9".into()
        }
    );
    history.push(Event::StockReleased { order_id: ORDER });
    let found = Found {
        reservation: Some("res_9".into()),
        capture: Some(Capture {
            payment_id: "pay_9".into(),
            amount_cents: 900,
        }),
    };
    let (forward, result) = unrecorded(&fold(&history), found).unwrap();
    assert_eq!(forward, Step::CapturePayment { amount_cents: 900 });
    assert_eq!(result, StepResult::Done("pay_9".into()));
    history.push(Event::PaymentCapturedAfterClose {
        order_id: ORDER,
        payment_id: "pay_9".into(),
        amount_cents: 900,
    });
    assert_eq!(
        step(&history),
        Step::Refund {
            payment_id: "pay_9".into(),
            amount_cents: 900
        }
    );
    history.push(Event::RefundIssued {
        order_id: ORDER,
        refund_id: "ref_9".into(),
        amount_cents: 900,
    });
    assert_eq!(step(&history), Step::Done);
}

#[test]
fn what_the_log_already_shows_is_not_found_again() {
    let history = [placed(None), reserved(), cancelled()];
    let found = Found {
        reservation: Some("res".into()),
        capture: None,
    };
    assert_eq!(unrecorded(&fold(&history), found), None);
    assert_eq!(unrecorded(&fold(&history), Found::default()), None);
}

#[test]
fn rejection_after_reservation_releases_only() {
    let rejected = Event::OrderRejected {
        order_id: ORDER,
        reason: RejectionReason::PaymentDeclined {
            message: "no".into(),
        },
    };
    assert_eq!(
        step(&[placed(None), reserved(), rejected.clone()]),
        Step::ReleaseStock {
            reservation_id: "res".into()
        }
    );
    assert_eq!(
        step(&[
            placed(None),
            reserved(),
            rejected,
            Event::StockReleased { order_id: ORDER }
        ]),
        Step::FindUnrecorded {
            reservation: false,
            capture: true
        },
        "a declined capture leaves nothing in the ledger, which the lookup finds"
    );
}

#[test]
fn results_become_recording_commands() {
    let reserve = Step::ReserveStock { lines: lines() };
    assert!(matches!(
        record(ORDER, &reserve, StepResult::Done("res_9".into())),
        Followup::Record(Command::RecordStockReserved(c)) if c.reservation_id == "res_9"
    ));
    assert_eq!(
        record(
            ORDER,
            &reserve,
            StepResult::Failed(ProviderError::OutOfStock {
                sku: "bread".into()
            })
        ),
        Followup::Record(Command::RejectOrder(hearth_core::order::RejectOrder {
            order_id: ORDER,
            reason: RejectionReason::OutOfStock {
                sku: "bread".into()
            }
        }))
    );
    let capture = Step::CapturePayment { amount_cents: 900 };
    assert!(matches!(
        record(ORDER, &capture, StepResult::Done("pay_1".into())),
        Followup::Record(Command::RecordPaymentCaptured(c)) if c.amount_cents == 900 && c.payment_id == "pay_1"
    ));
    assert!(matches!(
        record(ORDER, &capture, StepResult::Failed(ProviderError::Declined("card".into()))),
        Followup::Record(Command::RejectOrder(c)) if matches!(c.reason, RejectionReason::PaymentDeclined { .. })
    ));
    assert_eq!(
        record(
            ORDER,
            &capture,
            StepResult::Failed(ProviderError::Transient("timeout".into()))
        ),
        Followup::Retry
    );
    assert_eq!(
        record(ORDER, &Step::Confirm, StepResult::Done(String::new())),
        Followup::Record(Command::ConfirmOrder(OrderRef { order_id: ORDER }))
    );
    assert_eq!(
        record(
            ORDER,
            &Step::Refund {
                payment_id: "p".into(),
                amount_cents: 900
            },
            StepResult::Failed(ProviderError::Invalid("x".into()))
        ),
        Followup::Nothing,
        "a permanent refund failure stops the process for an operator"
    );
}

#[test]
fn step_keys_are_stable_and_distinct() {
    let (a, b) = (
        HouseholdId(Uuid::from_u128(1)),
        HouseholdId(Uuid::from_u128(2)),
    );
    let s = Step::Confirm;
    assert_eq!(s.key(a, ORDER), s.key(a, ORDER));
    assert_ne!(s.key(a, ORDER), s.key(b, ORDER), "per household");
    assert_ne!(s.key(a, ORDER), Step::MarkReady.key(a, ORDER), "per step");
    assert_ne!(
        s.key(a, ORDER),
        s.command_id(a, ORDER).0,
        "key and command id differ"
    );
}
