//! Given/when/then tests of the order decider: every rule, every refusal.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use chrono::{TimeDelta, TimeZone, Utc};
use hearth_core::order::{
    CancelOrder, Command, Context, DomainError, Event, OrderLine, OrderRef, OrderStatus,
    PlaceOrder, RecordPaymentCaptured, RecordRefundIssued, RecordStockReserved, RejectOrder,
    RejectionReason, RequestedLine, decide, fold,
};
use hearth_core::ports::Role;
use hearth_core::{Actor, MemberId, OrderId, Timestamp};
use hearth_core::{CatalogEntries, CatalogItem};
use uuid::Uuid;

const ORDER: OrderId = OrderId(Uuid::from_u128(1));
const ANA: MemberId = MemberId(Uuid::from_u128(0xa));
const BEN: MemberId = MemberId(Uuid::from_u128(0xb));

fn now() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn line(sku: &str, quantity: u32, cents: u64) -> OrderLine {
    OrderLine {
        sku: sku.into(),
        name: format!("{sku} name"),
        quantity,
        unit_price_cents: cents,
    }
}

/// The server's preparation time in these tests, unless one says otherwise.
const PREP: TimeDelta = TimeDelta::minutes(10);

/// A catalog entry named after its sku, 99 available.
fn item(sku: &str, cents: u64) -> CatalogItem {
    CatalogItem {
        sku: sku.into(),
        name: format!("{sku} name"),
        unit_price_cents: cents,
        available: 99,
    }
}

/// The shop these tests order from, unless one says otherwise: every sku a test names,
/// at the price its lines are shown at.
fn shop() -> Vec<CatalogItem> {
    let mut items = vec![
        item("bread", 450),
        item("milk", 129),
        item("pizza", 1150),
        item("a", 1),
        item("b", 1),
        item("one-more", 1),
        item("gold", 10_000_001),
        item("free", 0),
    ];
    items.extend((0..50).map(|i| item(&format!("sku{i}"), 1)));
    items
}

struct Given {
    history: Vec<Event>,
    actor: Actor,
    role: Option<Role>,
    now: Timestamp,
    prep_time: TimeDelta,
    catalog: Vec<CatalogItem>,
}

fn given(history: impl IntoIterator<Item = Event>) -> Given {
    Given {
        history: history.into_iter().collect(),
        actor: Actor::Member { id: ANA },
        role: Some(Role::Member),
        now: now(),
        prep_time: PREP,
        catalog: shop(),
    }
}

impl Given {
    /// The catalog sells `entry` (instead of what it sold under that sku).
    fn selling(mut self, entry: CatalogItem) -> Self {
        self.catalog.retain(|i| i.sku != entry.sku);
        self.catalog.push(entry);
        self
    }
    fn by(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }
    /// The server's preparation time is `prep_time`.
    fn prep(mut self, prep_time: TimeDelta) -> Self {
        self.prep_time = prep_time;
        self
    }
    fn process(self) -> Self {
        self.by(Actor::Process)
    }
    /// Another member of the household, with `role`.
    fn other(mut self, role: Role) -> Self {
        self.actor = Actor::Member { id: BEN };
        self.role = Some(role);
        self
    }
    fn when(self, command: Command) -> Result<Vec<Event>, DomainError> {
        let state = fold(&self.history);
        decide(
            &state,
            &command,
            &Context {
                actor: self.actor,
                role: self.role,
                now: self.now,
                prep_time: self.prep_time,
                catalog: CatalogEntries::all(self.catalog),
            },
        )
    }
}

trait Then {
    fn then(self, expected: Vec<Event>);
    fn then_refused(self, rule: DomainError);
}

impl Then for Result<Vec<Event>, DomainError> {
    fn then(self, expected: Vec<Event>) {
        assert_eq!(self, Ok(expected));
    }
    fn then_refused(self, rule: DomainError) {
        assert_eq!(self, Err(rule));
    }
}

/// Asks for each line's sku and quantity, as shown at its price.
fn place_cmd(lines: Vec<OrderLine>) -> PlaceOrder {
    PlaceOrder {
        order_id: ORDER,
        lines: lines
            .into_iter()
            .map(|l| RequestedLine::shown(l.sku, l.quantity, l.unit_price_cents))
            .collect(),
        ready_at: None,
        note: None,
    }
}

fn place(p: PlaceOrder) -> Command {
    Command::PlaceOrder(p)
}

fn placed() -> Event {
    Event::OrderPlaced {
        order_id: ORDER,
        lines: vec![line("bread", 2, 450), line("milk", 1, 129)],
        total_cents: 1029,
        ready_at: Some(now() + PREP),
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
        amount_cents: 1029,
    }
}
fn confirmed() -> Event {
    Event::OrderConfirmed { order_id: ORDER }
}
fn ready() -> Event {
    Event::OrderReady { order_id: ORDER }
}
fn cancelled() -> Event {
    Event::OrderCancelled {
        order_id: ORDER,
        by: Actor::Member { id: ANA },
        reason: None,
    }
}
fn rejected() -> Event {
    Event::OrderRejected {
        order_id: ORDER,
        reason: RejectionReason::PaymentDeclined {
            message: "no".into(),
        },
    }
}
fn order_ref() -> OrderRef {
    OrderRef { order_id: ORDER }
}

// --- PlaceOrder ---------------------------------------------------------------

#[test]
fn place_order_totals_the_lines() {
    given([])
        .when(place(place_cmd(vec![
            line("bread", 2, 450),
            line("milk", 1, 129),
        ])))
        .then(vec![placed()]);
}

#[test]
fn place_order_as_soon_as_possible_is_expected_after_the_preparation_time() {
    let p = place_cmd(vec![line("pizza", 1, 1150)]);
    given([])
        .prep(TimeDelta::minutes(25))
        .when(place(p))
        .then(vec![Event::OrderPlaced {
            order_id: ORDER,
            lines: vec![line("pizza", 1, 1150)],
            total_cents: 1150,
            ready_at: Some(now() + TimeDelta::minutes(25)),
            note: None,
            placed_by: ANA,
        }]);
}

#[test]
fn place_order_at_a_set_time_keeps_it_whatever_the_preparation_time() {
    let at = now() + TimeDelta::hours(2);
    let mut p = place_cmd(vec![line("pizza", 1, 1150)]);
    p.ready_at = Some(at);
    given([])
        .prep(TimeDelta::hours(5))
        .when(place(p))
        .then(vec![Event::OrderPlaced {
            order_id: ORDER,
            lines: vec![line("pizza", 1, 1150)],
            total_cents: 1150,
            ready_at: Some(at),
            note: None,
            placed_by: ANA,
        }]);
}

#[test]
fn place_order_keeps_ready_at_and_note() {
    let at = now() + TimeDelta::hours(6);
    let mut p = place_cmd(vec![line("pizza", 1, 1150)]);
    p.ready_at = Some(at);
    p.note = Some("no olives".into());
    given([]).when(place(p)).then(vec![Event::OrderPlaced {
        order_id: ORDER,
        lines: vec![line("pizza", 1, 1150)],
        total_cents: 1150,
        ready_at: Some(at),
        note: Some("no olives".into()),
        placed_by: ANA,
    }]);
}

#[test]
fn place_order_twice_is_refused() {
    given([placed()])
        .when(place(place_cmd(vec![line("bread", 1, 1)])))
        .then_refused(DomainError::OrderAlreadyExists(ORDER));
}

#[test]
fn place_order_needs_a_line() {
    given([])
        .when(place(place_cmd(vec![])))
        .then_refused(DomainError::NoLines);
}

#[test]
fn place_order_takes_at_most_50_lines() {
    let fifty: Vec<_> = (0..50).map(|i| line(&format!("sku{i}"), 1, 1)).collect();
    assert!(given([]).when(place(place_cmd(fifty.clone()))).is_ok());
    let mut fifty_one = fifty;
    fifty_one.push(line("one-more", 1, 1));
    given([])
        .when(place(place_cmd(fifty_one)))
        .then_refused(DomainError::TooManyLines { got: 51 });
}

#[test]
fn place_order_quantity_is_1_to_99() {
    assert!(
        given([])
            .when(place(place_cmd(vec![line("a", 99, 1)])))
            .is_ok()
    );
    given([])
        .when(place(place_cmd(vec![line("a", 1, 1), line("b", 0, 1)])))
        .then_refused(DomainError::QuantityOutOfRange {
            index: 1,
            quantity: 0,
        });
    given([])
        .when(place(place_cmd(vec![line("a", 100, 1)])))
        .then_refused(DomainError::QuantityOutOfRange {
            index: 0,
            quantity: 100,
        });
}

#[test]
fn place_order_needs_a_sku_and_a_name() {
    given([])
        .when(place(place_cmd(vec![line("", 1, 1)])))
        .then_refused(DomainError::InvalidSku { index: 0 });
    given([])
        .when(place(place_cmd(vec![line(" a", 1, 1)])))
        .then_refused(DomainError::InvalidSku { index: 0 });
    let long_sku = "x".repeat(65);
    given([])
        .when(place(place_cmd(vec![line(&long_sku, 1, 1)])))
        .then_refused(DomainError::InvalidSku { index: 0 });
    // The name is the catalog's, held to the same rule.
    let named = |name: String| CatalogItem {
        name,
        ..item("a", 1)
    };
    given([])
        .selling(named("  ".into()))
        .when(place(place_cmd(vec![line("a", 1, 1)])))
        .then_refused(DomainError::InvalidName { index: 0 });
    given([])
        .selling(named("n".repeat(201)))
        .when(place(place_cmd(vec![line("a", 1, 1)])))
        .then_refused(DomainError::InvalidName { index: 0 });
}

#[test]
fn place_order_refuses_control_characters_in_what_a_member_types() {
    given([])
        .selling(CatalogItem {
            name: "bread\u{0}".into(),
            ..item("a", 1)
        })
        .when(place(place_cmd(vec![line("b", 1, 1), line("a", 1, 1)])))
        .then_refused(DomainError::ControlCharacters {
            field: "line 1: name".into(),
        });
    given([])
        .when(place(place_cmd(vec![line("a\u{1b}[31m", 1, 1)])))
        .then_refused(DomainError::ControlCharacters {
            field: "line 0: sku".into(),
        });
    let mut nul_note = place_cmd(vec![line("a", 1, 1)]);
    nul_note.note = Some("ring\u{0}twice".into());
    given([])
        .when(place(nul_note))
        .then_refused(DomainError::ControlCharacters {
            field: "note".into(),
        });
    // Line breaks and tabs are text in a note.
    let mut multiline = place_cmd(vec![line("a", 1, 1)]);
    multiline.note = Some("ring twice\r\n\tthen wait".into());
    assert!(given([]).when(place(multiline)).is_ok());
}

#[test]
fn place_order_refuses_a_sku_on_two_lines() {
    given([])
        .when(place(place_cmd(vec![line("a", 1, 1), line("a", 2, 1)])))
        .then_refused(DomainError::DuplicateSku { sku: "a".into() });
}

#[test]
fn place_order_refuses_absurd_prices() {
    given([])
        .when(place(place_cmd(vec![line("gold", 1, 10_000_001)])))
        .then_refused(DomainError::UnitPriceTooHigh { index: 0 });
}

#[test]
fn place_order_total_must_be_above_zero() {
    given([])
        .when(place(place_cmd(vec![line("free", 3, 0)])))
        .then_refused(DomainError::TotalNotPositive);
}

#[test]
fn place_order_takes_names_and_prices_from_the_catalog() {
    // Skus and quantities only: the event carries the catalog's names and prices.
    let p = PlaceOrder {
        order_id: ORDER,
        lines: vec![
            RequestedLine::new("bread", 2),
            RequestedLine::new("milk", 1),
        ],
        ready_at: None,
        note: None,
    };
    given([])
        .selling(CatalogItem {
            name: "Sourdough loaf".into(),
            ..item("bread", 450)
        })
        .when(place(p))
        .then(vec![Event::OrderPlaced {
            order_id: ORDER,
            lines: vec![
                OrderLine {
                    sku: "bread".into(),
                    name: "Sourdough loaf".into(),
                    quantity: 2,
                    unit_price_cents: 450,
                },
                line("milk", 1, 129),
            ],
            total_cents: 1029,
            ready_at: Some(now() + PREP),
            note: None,
            placed_by: ANA,
        }]);
}

#[test]
fn place_order_refuses_a_shown_price_that_is_not_the_catalogs() {
    // The "free pizza": shown (or claimed) at 1 cent, the catalog says 1150.
    given([])
        .when(place(place_cmd(vec![
            line("bread", 1, 450),
            line("pizza", 1, 1),
        ])))
        .then_refused(DomainError::PriceChanged {
            sku: "pizza".into(),
            current_cents: 1150,
            shown_cents: 1,
        });
    // A price that went up since the member looked is refused too.
    given([])
        .selling(item("pizza", 1250))
        .when(place(place_cmd(vec![line("pizza", 1, 1150)])))
        .then_refused(DomainError::PriceChanged {
            sku: "pizza".into(),
            current_cents: 1250,
            shown_cents: 1150,
        });
}

#[test]
fn place_order_refuses_a_sku_the_catalog_does_not_have() {
    given([])
        .when(place(place_cmd(vec![
            line("bread", 1, 450),
            line("caviar", 1, 1),
        ])))
        .then_refused(DomainError::UnknownSku {
            sku: "caviar".into(),
        });
}

#[test]
fn place_order_refuses_more_than_is_available() {
    let coffee = CatalogItem {
        available: 50,
        ..item("coffee", 899)
    };
    given([])
        .selling(coffee.clone())
        .when(place(place_cmd(vec![line("coffee", 60, 899)])))
        .then_refused(DomainError::NotEnoughStock {
            sku: "coffee".into(),
            requested: 60,
            available: 50,
        });
    assert!(
        given([])
            .selling(coffee)
            .when(place(place_cmd(vec![line("coffee", 50, 899)])))
            .is_ok(),
        "all that is available can be ordered"
    );
}

#[test]
fn a_line_naming_its_item_or_its_total_is_not_a_command() {
    let with = |line: serde_json::Value| {
        serde_json::from_value::<Command>(serde_json::json!({
            "type": "PlaceOrder",
            "payload": {"orderId": ORDER, "lines": [line]},
        }))
    };
    let err = with(serde_json::json!({
        "sku": "pizza", "name": "Free pizza", "quantity": 1, "unitPriceCents": 1
    }))
    .unwrap_err();
    assert!(err.to_string().contains("unknown field `name`"), "{err}");
    assert!(with(serde_json::json!({"sku": "pizza", "quantity": 1, "subtotalCents": 1})).is_err());
    // Skus and quantities, with or without the price shown, are.
    assert!(with(serde_json::json!({"sku": "pizza", "quantity": 1})).is_ok());
    assert!(
        with(serde_json::json!({"sku": "pizza", "quantity": 1, "unitPriceCents": 1150})).is_ok()
    );
}

#[test]
fn a_placed_order_keeps_its_prices_whatever_the_catalog_says_later() {
    let state = fold(&[placed()]);
    given([placed()])
        .selling(item("bread", 999))
        .when(Command::CancelOrder(CancelOrder {
            order_id: ORDER,
            reason: None,
        }))
        .then(vec![cancelled()]);
    let order = state.order.unwrap();
    assert_eq!(order.lines[0].unit_price_cents, 450);
    assert_eq!(order.total_cents, 1029);
}

#[test]
fn place_order_ready_at_must_be_in_the_future() {
    for at in [now(), now() - TimeDelta::minutes(1)] {
        let mut p = place_cmd(vec![line("a", 1, 1)]);
        p.ready_at = Some(at);
        given([])
            .when(place(p))
            .then_refused(DomainError::ReadyAtNotInFuture);
    }
}

#[test]
fn place_order_ready_at_within_7_days() {
    let mut ok = place_cmd(vec![line("a", 1, 1)]);
    ok.ready_at = Some(now() + TimeDelta::days(7));
    assert!(given([]).when(place(ok)).is_ok());
    let mut far = place_cmd(vec![line("a", 1, 1)]);
    far.ready_at = Some(now() + TimeDelta::days(7) + TimeDelta::seconds(1));
    given([])
        .when(place(far))
        .then_refused(DomainError::ReadyAtTooFar);
}

#[test]
fn place_order_note_up_to_500_chars() {
    let mut ok = place_cmd(vec![line("a", 1, 1)]);
    ok.note = Some("é".repeat(500));
    assert!(given([]).when(place(ok)).is_ok(), "characters, not bytes");
    let mut long = place_cmd(vec![line("a", 1, 1)]);
    long.note = Some("x".repeat(501));
    given([])
        .when(place(long))
        .then_refused(DomainError::NoteTooLong { got: 501 });
}

// --- CancelOrder --------------------------------------------------------------

fn cancel(reason: Option<&str>) -> Command {
    Command::CancelOrder(CancelOrder {
        order_id: ORDER,
        reason: reason.map(Into::into),
    })
}

#[test]
fn cancel_an_open_order() {
    for history in [
        vec![placed()],
        vec![placed(), reserved()],
        vec![placed(), reserved(), captured()],
        vec![placed(), reserved(), captured(), confirmed()],
    ] {
        given(history)
            .when(cancel(Some("changed my mind")))
            .then(vec![Event::OrderCancelled {
                order_id: ORDER,
                by: Actor::Member { id: ANA },
                reason: Some("changed my mind".into()),
            }]);
    }
}

#[test]
fn cancel_is_refused_once_ready_completed_rejected_or_cancelled() {
    let completed = Event::OrderCompleted {
        order_id: ORDER,
        by: ANA,
    };
    let cases = [
        (
            vec![placed(), reserved(), captured(), confirmed(), ready()],
            OrderStatus::Ready,
        ),
        (
            vec![
                placed(),
                reserved(),
                captured(),
                confirmed(),
                ready(),
                completed,
            ],
            OrderStatus::Completed,
        ),
        (vec![placed(), rejected()], OrderStatus::Rejected),
        (vec![placed(), cancelled()], OrderStatus::Cancelled),
    ];
    for (history, status) in cases {
        given(history)
            .when(cancel(None))
            .then_refused(DomainError::CannotCancel { status });
    }
}

#[test]
fn cancel_of_an_unknown_order_is_refused() {
    given([])
        .when(cancel(None))
        .then_refused(DomainError::OrderNotFound(ORDER));
}

#[test]
fn cancel_reason_up_to_200_chars() {
    given([placed()])
        .when(cancel(Some(&"r".repeat(201))))
        .then_refused(DomainError::ReasonTooLong { got: 201 });
}

#[test]
fn cancel_reason_without_control_characters() {
    given([placed()])
        .when(cancel(Some("changed\u{7}my mind")))
        .then_refused(DomainError::ControlCharacters {
            field: "reason".into(),
        });
    assert!(
        given([placed()])
            .when(cancel(Some("changed\nmy mind")))
            .is_ok()
    );
}

// --- CompleteOrder ------------------------------------------------------------

#[test]
fn complete_a_ready_order() {
    given([placed(), reserved(), captured(), confirmed(), ready()])
        .when(Command::CompleteOrder(order_ref()))
        .then(vec![Event::OrderCompleted {
            order_id: ORDER,
            by: ANA,
        }]);
}

#[test]
fn complete_only_when_ready() {
    given([placed(), reserved(), captured(), confirmed()])
        .when(Command::CompleteOrder(order_ref()))
        .then_refused(DomainError::NotReady {
            status: OrderStatus::Confirmed,
        });
    given([])
        .when(Command::CompleteOrder(order_ref()))
        .then_refused(DomainError::OrderNotFound(ORDER));
}

#[test]
fn members_cancel_and_collect_their_own_orders_owners_any() {
    let ready_order = || vec![placed(), reserved(), captured(), confirmed(), ready()];
    // Ana placed it; Ben, a member, may neither cancel nor collect it.
    given([placed()])
        .other(Role::Member)
        .when(cancel(None))
        .then_refused(DomainError::NotYourOrder(ORDER));
    given(ready_order())
        .other(Role::Member)
        .when(Command::CompleteOrder(order_ref()))
        .then_refused(DomainError::NotYourOrder(ORDER));
    // An owner may, and the events say who did it.
    given([placed()])
        .other(Role::Owner)
        .when(cancel(None))
        .then(vec![Event::OrderCancelled {
            order_id: ORDER,
            by: Actor::Member { id: BEN },
            reason: None,
        }]);
    given(ready_order())
        .other(Role::Owner)
        .when(Command::CompleteOrder(order_ref()))
        .then(vec![Event::OrderCompleted {
            order_id: ORDER,
            by: BEN,
        }]);
    // A caller that states no role (a tool, the core's own tests) is not held to it.
    let mut unstated = given([placed()]).other(Role::Member);
    unstated.role = None;
    assert!(unstated.when(cancel(None)).is_ok());
    // The system acts for the household.
    assert!(
        given([placed()])
            .by(Actor::System)
            .when(cancel(None))
            .is_ok()
    );
}

// --- Internal commands ----------------------------------------------------------

fn internal_commands() -> Vec<Command> {
    vec![
        Command::RecordStockReserved(RecordStockReserved {
            order_id: ORDER,
            reservation_id: "r".into(),
        }),
        Command::RecordPaymentCaptured(RecordPaymentCaptured {
            order_id: ORDER,
            payment_id: "p".into(),
            amount_cents: 1029,
        }),
        Command::ConfirmOrder(order_ref()),
        Command::RejectOrder(RejectOrder {
            order_id: ORDER,
            reason: RejectionReason::OutOfStock { sku: "milk".into() },
        }),
        Command::MarkReady(order_ref()),
        Command::RecordRefundIssued(RecordRefundIssued {
            order_id: ORDER,
            refund_id: "f".into(),
            amount_cents: 1029,
        }),
        Command::RecordStockReleased(order_ref()),
    ]
}

#[test]
fn members_cannot_send_internal_commands() {
    for command in internal_commands() {
        let name = command.type_name();
        given([placed()])
            .when(command)
            .then_refused(DomainError::InternalCommand { command: name });
    }
}

#[test]
fn the_process_walks_an_order_to_ready() {
    given([placed()])
        .process()
        .when(Command::RecordStockReserved(RecordStockReserved {
            order_id: ORDER,
            reservation_id: "res_1".into(),
        }))
        .then(vec![reserved()]);
    given([placed(), reserved()])
        .process()
        .when(Command::RecordPaymentCaptured(RecordPaymentCaptured {
            order_id: ORDER,
            payment_id: "pay_1".into(),
            amount_cents: 1029,
        }))
        .then(vec![captured()]);
    given([placed(), reserved(), captured()])
        .process()
        .when(Command::ConfirmOrder(order_ref()))
        .then(vec![confirmed()]);
    given([placed(), reserved(), captured(), confirmed()])
        .process()
        .when(Command::MarkReady(order_ref()))
        .then(vec![ready()]);
}

#[test]
fn internal_steps_out_of_order_are_refused() {
    let invalid =
        |command: &'static str, status| DomainError::InvalidTransition { command, status };
    given([placed()])
        .process()
        .when(Command::ConfirmOrder(order_ref()))
        .then_refused(invalid("ConfirmOrder", OrderStatus::Placed));
    given([placed()])
        .process()
        .when(Command::MarkReady(order_ref()))
        .then_refused(invalid("MarkReady", OrderStatus::Placed));
    given([placed(), reserved()])
        .process()
        .when(Command::RecordStockReserved(RecordStockReserved {
            order_id: ORDER,
            reservation_id: "again".into(),
        }))
        .then_refused(invalid("RecordStockReserved", OrderStatus::StockReserved));
    given([placed()])
        .process()
        .when(Command::RecordPaymentCaptured(RecordPaymentCaptured {
            order_id: ORDER,
            payment_id: "p".into(),
            amount_cents: 1029,
        }))
        .then_refused(invalid("RecordPaymentCaptured", OrderStatus::Placed));
    given([placed(), reserved(), captured(), confirmed()])
        .process()
        .when(Command::RejectOrder(RejectOrder {
            order_id: ORDER,
            reason: RejectionReason::OutOfStock { sku: "milk".into() },
        }))
        .then_refused(invalid("RejectOrder", OrderStatus::Confirmed));
    given([])
        .process()
        .when(Command::ConfirmOrder(order_ref()))
        .then_refused(DomainError::OrderNotFound(ORDER));
}

fn record_reserved(id: &str) -> Command {
    Command::RecordStockReserved(RecordStockReserved {
        order_id: ORDER,
        reservation_id: id.into(),
    })
}
fn record_captured(cents: u64) -> Command {
    Command::RecordPaymentCaptured(RecordPaymentCaptured {
        order_id: ORDER,
        payment_id: "pay_late".into(),
        amount_cents: cents,
    })
}

#[test]
fn a_reservation_that_lands_after_a_cancel_is_recorded_as_such() {
    given([placed(), cancelled()])
        .process()
        .when(record_reserved("res_late"))
        .then(vec![Event::StockReservedAfterClose {
            order_id: ORDER,
            reservation_id: "res_late".into(),
        }]);
    given([placed(), rejected()])
        .process()
        .when(record_reserved("res_late"))
        .then(vec![Event::StockReservedAfterClose {
            order_id: ORDER,
            reservation_id: "res_late".into(),
        }]);
    let state = fold(&[
        placed(),
        cancelled(),
        Event::StockReservedAfterClose {
            order_id: ORDER,
            reservation_id: "res_late".into(),
        },
    ]);
    let order = state.order.unwrap();
    assert_eq!(order.status, OrderStatus::Cancelled, "the status stays");
    assert_eq!(order.reservation_id.as_deref(), Some("res_late"));
}

#[test]
fn a_capture_that_lands_after_a_cancel_is_recorded_as_such() {
    given([placed(), reserved(), cancelled()])
        .process()
        .when(record_captured(1029))
        .then(vec![Event::PaymentCapturedAfterClose {
            order_id: ORDER,
            payment_id: "pay_late".into(),
            amount_cents: 1029,
        }]);
    given([placed(), reserved(), cancelled()])
        .process()
        .when(record_captured(5))
        .then_refused(DomainError::AmountMismatch {
            expected: 1029,
            got: 5,
        });
    let state = fold(&[
        placed(),
        reserved(),
        cancelled(),
        Event::PaymentCapturedAfterClose {
            order_id: ORDER,
            payment_id: "pay_late".into(),
            amount_cents: 1029,
        },
    ]);
    let order = state.order.unwrap();
    assert_eq!(order.status, OrderStatus::Cancelled, "the status stays");
    assert_eq!(order.payment_id.as_deref(), Some("pay_late"));
    assert_eq!(order.captured_cents, 1029);
}

#[test]
fn a_late_result_is_recorded_once_and_never_on_an_order_that_went_on() {
    let invalid =
        |command: &'static str, status| DomainError::InvalidTransition { command, status };
    given([placed(), reserved(), cancelled()])
        .process()
        .when(record_reserved("res_2"))
        .then_refused(invalid("RecordStockReserved", OrderStatus::Cancelled));
    given([placed(), reserved(), captured(), cancelled()])
        .process()
        .when(record_captured(1029))
        .then_refused(invalid("RecordPaymentCaptured", OrderStatus::Cancelled));
    given([placed(), reserved(), captured(), confirmed(), ready()])
        .process()
        .when(record_reserved("res_2"))
        .then_refused(invalid("RecordStockReserved", OrderStatus::Ready));
    given([placed(), cancelled()])
        .when(record_reserved("res_2"))
        .then_refused(DomainError::InternalCommand {
            command: "RecordStockReserved",
        });
}

#[test]
fn capture_must_match_the_total() {
    given([placed(), reserved()])
        .process()
        .when(Command::RecordPaymentCaptured(RecordPaymentCaptured {
            order_id: ORDER,
            payment_id: "p".into(),
            amount_cents: 1,
        }))
        .then_refused(DomainError::AmountMismatch {
            expected: 1029,
            got: 1,
        });
}

#[test]
fn reject_records_the_reason() {
    let reason = RejectionReason::OutOfStock { sku: "milk".into() };
    given([placed(), reserved()])
        .process()
        .when(Command::RejectOrder(RejectOrder {
            order_id: ORDER,
            reason: reason.clone(),
        }))
        .then(vec![Event::OrderRejected {
            order_id: ORDER,
            reason,
        }]);
}

#[test]
fn refund_and_release_after_cancel() {
    let history = vec![placed(), reserved(), captured(), cancelled()];
    given(history.clone())
        .process()
        .when(Command::RecordRefundIssued(RecordRefundIssued {
            order_id: ORDER,
            refund_id: "ref_1".into(),
            amount_cents: 1029,
        }))
        .then(vec![Event::RefundIssued {
            order_id: ORDER,
            refund_id: "ref_1".into(),
            amount_cents: 1029,
        }]);
    given(history)
        .process()
        .when(Command::RecordStockReleased(order_ref()))
        .then(vec![Event::StockReleased { order_id: ORDER }]);
}

#[test]
fn refund_is_due_once_only_after_a_capture_of_a_closed_order() {
    let refund = |cents| {
        Command::RecordRefundIssued(RecordRefundIssued {
            order_id: ORDER,
            refund_id: "f".into(),
            amount_cents: cents,
        })
    };
    // Open order: not due.
    given([placed(), reserved(), captured()])
        .process()
        .when(refund(1029))
        .then_refused(DomainError::RefundNotDue);
    // Cancelled before capture: nothing to refund.
    given([placed(), reserved(), cancelled()])
        .process()
        .when(refund(1029))
        .then_refused(DomainError::RefundNotDue);
    // Already refunded.
    let refunded = Event::RefundIssued {
        order_id: ORDER,
        refund_id: "f".into(),
        amount_cents: 1029,
    };
    given([placed(), reserved(), captured(), cancelled(), refunded])
        .process()
        .when(refund(1029))
        .then_refused(DomainError::RefundNotDue);
    // Wrong amount.
    given([placed(), reserved(), captured(), cancelled()])
        .process()
        .when(refund(5))
        .then_refused(DomainError::AmountMismatch {
            expected: 1029,
            got: 5,
        });
}

#[test]
fn release_is_due_once_only_after_a_reservation_of_a_closed_order() {
    let release = || Command::RecordStockReleased(order_ref());
    given([placed(), reserved()])
        .process()
        .when(release())
        .then_refused(DomainError::ReleaseNotDue);
    given([placed(), cancelled()])
        .process()
        .when(release())
        .then_refused(DomainError::ReleaseNotDue);
    let released = Event::StockReleased { order_id: ORDER };
    given([placed(), reserved(), rejected(), released])
        .process()
        .when(release())
        .then_refused(DomainError::ReleaseNotDue);
    given([placed(), reserved(), rejected()])
        .process()
        .when(release())
        .then(vec![Event::StockReleased { order_id: ORDER }]);
}

#[test]
fn every_rule_has_a_distinct_code() {
    let rules = [
        DomainError::OrderAlreadyExists(ORDER),
        DomainError::OrderNotFound(ORDER),
        DomainError::NoLines,
        DomainError::TooManyLines { got: 51 },
        DomainError::QuantityOutOfRange {
            index: 0,
            quantity: 0,
        },
        DomainError::InvalidSku { index: 0 },
        DomainError::InvalidName { index: 0 },
        DomainError::UnitPriceTooHigh { index: 0 },
        DomainError::DuplicateSku { sku: "a".into() },
        DomainError::TotalNotPositive,
        DomainError::ReadyAtNotInFuture,
        DomainError::ReadyAtTooFar,
        DomainError::NoteTooLong { got: 501 },
        DomainError::ReasonTooLong { got: 201 },
        DomainError::ControlCharacters {
            field: "note".into(),
        },
        DomainError::CannotCancel {
            status: OrderStatus::Ready,
        },
        DomainError::NotReady {
            status: OrderStatus::Placed,
        },
        DomainError::InternalCommand {
            command: "MarkReady",
        },
        DomainError::InvalidTransition {
            command: "MarkReady",
            status: OrderStatus::Placed,
        },
        DomainError::AmountMismatch {
            expected: 1,
            got: 2,
        },
        DomainError::RefundNotDue,
        DomainError::ReleaseNotDue,
    ];
    let codes: std::collections::HashSet<_> = rules.iter().map(DomainError::code).collect();
    assert_eq!(codes.len(), rules.len());
    assert!(rules.iter().all(|r| !r.to_string().is_empty()));
}
