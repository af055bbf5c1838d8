//! Given/when/then tests of the order's reactions to events from outside
//! (`order::react`): given an order's history, when a provider reports something,
//! then the command the order calls for (or none), and what deciding it records.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use chrono::{TimeDelta, TimeZone, Utc};
use hearth_core::contracts::{ExternalEvent, ExternalKind};
use hearth_core::order::{
    Command, Context, DomainError, Event, OrderLine, OrderRef, OrderStatus, RecordProviderRefund,
    RecordRefundIssued, RejectOrder, RejectionReason, decide, fold, react,
};
use hearth_core::process::{Step, next_step};
use hearth_core::{Actor, HouseholdId, JobKind, MemberId, OrderId, Timestamp};
use uuid::Uuid;

const ORDER: OrderId = OrderId(Uuid::from_u128(1));
const ANA: MemberId = MemberId(Uuid::from_u128(0xa));

fn now() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

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
        ready_at: Some(now() + TimeDelta::minutes(20)),
        note: None,
        placed_by: ANA,
    }
}
fn reserved() -> Event {
    Event::StockReserved {
        order_id: ORDER,
        reservation_id: "res_1".into(),
    }
}
fn captured() -> Event {
    Event::PaymentCaptured {
        order_id: ORDER,
        payment_id: "pay_1".into(),
        amount_cents: 900,
    }
}
fn confirmed() -> Event {
    Event::OrderConfirmed { order_id: ORDER }
}
fn ready() -> Event {
    Event::OrderReady { order_id: ORDER }
}

fn stock_lost(sku: &str) -> ExternalKind {
    ExternalKind::StockLost {
        order_id: ORDER,
        sku: sku.into(),
    }
}
fn provider_refunded(payment: &str, cents: u64) -> ExternalKind {
    ExternalKind::ProviderRefunded {
        order_id: ORDER,
        payment_id: payment.into(),
        amount_cents: cents,
        refund_id: "re_9".into(),
    }
}
fn picked_up() -> ExternalKind {
    ExternalKind::PickedUp { order_id: ORDER }
}

struct Given(Vec<Event>);

fn given(history: impl IntoIterator<Item = Event>) -> Given {
    Given(history.into_iter().collect())
}

struct When {
    history: Vec<Event>,
    command: Option<Command>,
}

impl Given {
    fn when(self, kind: ExternalKind) -> When {
        let external = ExternalEvent {
            id: Uuid::from_u128(77),
            tenant: HouseholdId(Uuid::from_u128(5)),
            kind,
        };
        let command = react(&fold(&self.0), &external);
        When {
            history: self.0,
            command,
        }
    }
}

impl When {
    /// The order calls for `expected`, and deciding it (as the system) gives `events`.
    fn then(self, expected: Command, events: Vec<Event>) -> Vec<Event> {
        assert_eq!(self.command.as_ref(), Some(&expected));
        let state = fold(&self.history);
        let decided = decide(
            &state,
            &expected,
            &Context {
                actor: Actor::System,
                role: None,
                now: now(),
                prep_time: TimeDelta::zero(),
                catalog: Default::default(),
            },
        );
        assert_eq!(decided, Ok(events.clone()));
        let mut history = self.history;
        history.extend(events);
        history
    }
    fn then_nothing(self) {
        assert_eq!(self.command, None);
    }
}

fn reject_stock_lost() -> (Command, Event) {
    let reason = RejectionReason::StockLost {
        sku: "bread".into(),
    };
    (
        Command::RejectOrder(RejectOrder {
            order_id: ORDER,
            reason: reason.clone(),
        }),
        Event::OrderRejected {
            order_id: ORDER,
            reason,
        },
    )
}

#[test]
fn stock_lost_after_confirmation_rejects_the_order_and_the_process_compensates() {
    let (command, event) = reject_stock_lost();
    let after = given([placed(), reserved(), captured(), confirmed()])
        .when(stock_lost("bread"))
        .then(command, vec![event.clone()]);
    // The rejection must reach a process waiting for ready-at.
    assert_eq!(
        <hearth_core::Orders as hearth_core::Domain>::job(&event),
        Some(JobKind::Wake)
    );
    // Which then gives back the stock and the money, the path a cancel takes.
    let state = fold(&after);
    assert_eq!(state.order.as_ref().unwrap().status, OrderStatus::Rejected);
    assert_eq!(
        next_step(&state, now()),
        Step::ReleaseStock {
            reservation_id: "res_1".into()
        }
    );
    let released = [after, vec![Event::StockReleased { order_id: ORDER }]].concat();
    assert_eq!(
        next_step(&fold(&released), now()),
        Step::Refund {
            payment_id: "pay_1".into(),
            amount_cents: 900
        }
    );
}

#[test]
fn stock_lost_while_reserved_or_paid_rejects_the_order() {
    for history in [
        vec![placed(), reserved()],
        vec![placed(), reserved(), captured()],
    ] {
        let (command, event) = reject_stock_lost();
        given(history)
            .when(stock_lost("bread"))
            .then(command, vec![event]);
    }
}

#[test]
fn stock_lost_before_reservation_once_ready_or_of_another_sku_calls_for_nothing() {
    given([placed()]).when(stock_lost("bread")).then_nothing();
    given([placed(), reserved(), captured(), confirmed(), ready()])
        .when(stock_lost("bread"))
        .then_nothing();
    given([placed(), reserved(), captured(), confirmed()])
        .when(stock_lost("milk"))
        .then_nothing();
    given([]).when(stock_lost("bread")).then_nothing();
}

#[test]
fn a_process_rejection_of_a_confirmed_order_is_still_refused() {
    let state = fold(&[placed(), reserved(), captured(), confirmed()]);
    let refused = decide(
        &state,
        &Command::RejectOrder(RejectOrder {
            order_id: ORDER,
            reason: RejectionReason::OutOfStock {
                sku: "bread".into(),
            },
        }),
        &Context {
            actor: Actor::Process,
            role: None,
            now: now(),
            prep_time: TimeDelta::zero(),
            catalog: Default::default(),
        },
    );
    assert_eq!(
        refused,
        Err(DomainError::InvalidTransition {
            command: "RejectOrder",
            status: OrderStatus::Confirmed
        })
    );
}

#[test]
fn a_provider_refund_of_the_whole_payment_is_recorded_and_nothing_more_is_refunded() {
    let after = given([placed(), reserved(), captured(), confirmed()])
        .when(provider_refunded("pay_1", 900))
        .then(
            Command::RecordProviderRefund(RecordProviderRefund {
                order_id: ORDER,
                payment_id: "pay_1".into(),
                refund_id: "re_9".into(),
                amount_cents: 900,
            }),
            vec![Event::RefundedByProvider {
                order_id: ORDER,
                payment_id: "pay_1".into(),
                refund_id: "re_9".into(),
                amount_cents: 900,
            }],
        );
    let state = fold(&after);
    let order = state.order.as_ref().unwrap();
    assert_eq!(order.status, OrderStatus::Confirmed, "the status stays");
    assert!(order.refunded);
    // A second report (another refund id) calls for nothing: it is refunded.
    given(after)
        .when(provider_refunded("pay_1", 900))
        .then_nothing();
}

#[test]
fn a_partial_provider_refund_is_recorded_and_the_rest_is_still_due() {
    let after = given([placed(), reserved(), captured()])
        .when(provider_refunded("pay_1", 300))
        .then(
            Command::RecordProviderRefund(RecordProviderRefund {
                order_id: ORDER,
                payment_id: "pay_1".into(),
                refund_id: "re_9".into(),
                amount_cents: 300,
            }),
            vec![Event::RefundedByProvider {
                order_id: ORDER,
                payment_id: "pay_1".into(),
                refund_id: "re_9".into(),
                amount_cents: 300,
            }],
        );
    assert!(!fold(&after).order.unwrap().refunded);
}

#[test]
fn after_a_partial_provider_refund_the_process_refunds_only_the_rest() {
    // Given 300 of the 900 captured given back by the provider, then stock lost.
    let partial = Event::RefundedByProvider {
        order_id: ORDER,
        payment_id: "pay_1".into(),
        refund_id: "re_9".into(),
        amount_cents: 300,
    };
    let (_, rejected) = reject_stock_lost();
    let history = vec![
        placed(),
        reserved(),
        captured(),
        confirmed(),
        partial,
        rejected,
        Event::StockReleased { order_id: ORDER },
    ];
    let state = fold(&history);
    // Then the process refunds the 600 still owed, not the 900 captured.
    assert_eq!(
        next_step(&state, now()),
        Step::Refund {
            payment_id: "pay_1".into(),
            amount_cents: 600
        }
    );
    let ctx = Context {
        actor: Actor::Process,
        role: None,
        now: now(),
        prep_time: TimeDelta::zero(),
        catalog: Default::default(),
    };
    let refund = |amount_cents| {
        Command::RecordRefundIssued(RecordRefundIssued {
            order_id: ORDER,
            refund_id: "re_10".into(),
            amount_cents,
        })
    };
    assert_eq!(
        decide(&state, &refund(900), &ctx),
        Err(DomainError::AmountMismatch {
            expected: 600,
            got: 900
        }),
        "a refund of the whole capture would give back 300 twice"
    );
    assert!(decide(&state, &refund(600), &ctx).is_ok());
    // And the provider may not report more than is still owed either.
    let more = Command::RecordProviderRefund(RecordProviderRefund {
        order_id: ORDER,
        payment_id: "pay_1".into(),
        refund_id: "re_11".into(),
        amount_cents: 601,
    });
    assert_eq!(
        decide(&fold(&history[..5]), &more, &ctx),
        Err(DomainError::AmountMismatch {
            expected: 600,
            got: 601
        })
    );
}

#[test]
fn a_provider_refund_of_another_payment_or_before_a_capture_calls_for_nothing() {
    given([placed(), reserved(), captured()])
        .when(provider_refunded("pay_other", 900))
        .then_nothing();
    given([placed(), reserved()])
        .when(provider_refunded("pay_1", 900))
        .then_nothing();
}

#[test]
fn a_provider_refund_above_the_capture_is_refused_by_its_rule() {
    let state = fold(&[placed(), reserved(), captured()]);
    let command = Command::RecordProviderRefund(RecordProviderRefund {
        order_id: ORDER,
        payment_id: "pay_1".into(),
        refund_id: "re_9".into(),
        amount_cents: 901,
    });
    let ctx = Context {
        actor: Actor::System,
        role: None,
        now: now(),
        prep_time: TimeDelta::zero(),
        catalog: Default::default(),
    };
    assert_eq!(
        decide(&state, &command, &ctx),
        Err(DomainError::AmountMismatch {
            expected: 900,
            got: 901
        })
    );
    let other = Command::RecordProviderRefund(RecordProviderRefund {
        order_id: ORDER,
        payment_id: "pay_2".into(),
        refund_id: "re_9".into(),
        amount_cents: 900,
    });
    assert_eq!(
        decide(&state, &other, &ctx),
        Err(DomainError::NotThisPayment {
            payment_id: "pay_2".into()
        })
    );
    // Members cannot send it.
    let member = Context {
        actor: Actor::Member { id: ANA },
        ..ctx
    };
    assert_eq!(
        decide(&state, &command, &member),
        Err(DomainError::InternalCommand {
            command: "RecordProviderRefund"
        })
    );
}

#[test]
fn a_pick_up_marks_a_ready_order_collected() {
    let after = given([placed(), reserved(), captured(), confirmed(), ready()])
        .when(picked_up())
        .then(
            Command::CompleteOrder(OrderRef { order_id: ORDER }),
            vec![Event::OrderCompleted {
                order_id: ORDER,
                by: ANA,
            }],
        );
    assert_eq!(fold(&after).order.unwrap().status, OrderStatus::Completed);
}

#[test]
fn a_pick_up_before_the_order_is_ready_or_after_it_closed_calls_for_nothing() {
    given([placed(), reserved(), captured(), confirmed()])
        .when(picked_up())
        .then_nothing();
    let (_, rejected) = reject_stock_lost();
    given([placed(), reserved(), rejected])
        .when(picked_up())
        .then_nothing();
}
