//! Golden vectors of the household projection, for the web client.
//!
//! The client folds events into the board with its own TypeScript fold
//! (web/src/projection.ts). This test writes named cases, each a household's event
//! sequence and the `HouseholdView` that `HouseholdView::apply` folds it to, serialized
//! with serde as the server sends them (`event` frames, `welcome.state`), into
//! web/src/generated/golden/projection.json; web/src/projection.golden.test.ts replays
//! every case with the TypeScript fold and wants the same view. The file is committed;
//! this test fails if it differs from what the Rust fold gives today, so a change to the
//! fold (or to the events' or the view's JSON) reaches the client's test.
//!
//! The events are realistic: each comes from `order::decide` on the order's state (or
//! from `order::react`), as the service would commit it, except where a case says it
//! feeds the fold something the decider never produces (the fold is total).
//!
//! Check:  cargo test -p hearth-core --test golden
//! Update: HEARTH_UPDATE_BINDINGS=1 cargo test -p hearth-core --test golden

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use chrono::{DateTime, Duration, Utc};
use hearth_core::chore::{
    self, ChoreCommand, ChoreEvent, ChoreId, ChoreRef, ChoreState, ChoreStatus, ProposeSwap,
    ScheduleChore, SkipChore,
};
use hearth_core::contracts::{ExternalEvent, ExternalKind};
use hearth_core::ids::derive;
use hearth_core::order::{
    self, CancelOrder, Context, OrderRef, PlaceOrder, RecordPaymentCaptured, RecordRefundIssued,
    RecordStockReserved, RejectOrder, RejectionReason, RequestedLine,
};
use hearth_core::people::{
    self, Listed, MemberCommand, MemberEvent, ReconcileMembers, RecordDeparture, RecordJoined,
    RecordRoleChanged, RosterState,
};
use hearth_core::ports::Role;
use hearth_core::{
    Actor, AnyEvent, Command, CommandId, Event, EventEnvelope, EventId, EventMetadata, HouseholdId,
    HouseholdView, MemberId, OrderId, OrderLine, OrderState, OrderStatus,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use uuid::Uuid;

const UPDATE: &str = "HEARTH_UPDATE_BINDINGS";

fn golden_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web/src/generated/golden/projection.json")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Golden {
    generated_by: &'static str,
    cases: Vec<Case>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    name: &'static str,
    about: &'static str,
    /// In the order they are delivered (repeats and gaps included).
    events: Vec<EventEnvelope>,
    /// The view after folding `events` one by one from the empty view, up to a gap.
    view: HouseholdView,
    /// The gap that stopped the fold, if any.
    gap: Option<Gap>,
}

#[derive(Serialize)]
struct Gap {
    at: u64,
    got: u64,
}

/// A household whose events are decided as the service would decide them.
struct Household {
    tenant: HouseholdId,
    start: DateTime<Utc>,
    /// The seq the next committed event gets.
    next_seq: u64,
    orders: BTreeMap<OrderId, OrderState>,
    chores: BTreeMap<ChoreId, ChoreState>,
    roster: RosterState,
    events: Vec<EventEnvelope>,
}

impl Household {
    fn new(case: u8, start: &str) -> Self {
        Self {
            tenant: HouseholdId(Uuid::from_u128(
                0x0191_a000_0000_7000_8000_0000_0000_0000 | (u128::from(case) << 8),
            )),
            start: DateTime::parse_from_rfc3339(start).unwrap().to_utc(),
            next_seq: 1,
            orders: BTreeMap::new(),
            chores: BTreeMap::new(),
            roster: RosterState::default(),
            events: Vec::new(),
        }
    }

    fn now(&self) -> DateTime<Utc> {
        self.start + Duration::seconds(i64::try_from(self.next_seq).unwrap() * 7)
    }

    /// Decides `command` sent by `actor` on its order's current state and commits what
    /// it decides, as `Service::dispatch` does.
    fn run(&mut self, actor: Actor, command: Command) -> &mut Self {
        let order_id = command.order_id();
        let state = self.orders.get(&order_id).cloned().unwrap_or_default();
        let ctx = Context {
            actor: actor.clone(),
            role: Some(hearth_core::ports::Role::Owner),
            now: self.now(),
            // The server's preparation time: "as soon as possible" orders get a ready-at.
            prep_time: chrono::TimeDelta::minutes(10),
            // What the service loads before deciding: the entries of the shop.
            catalog: hearth_core::CatalogEntries::all(shop()),
        };
        let events = order::decide(&state, &command, &ctx)
            .unwrap_or_else(|e| panic!("{} refused: {e}", command.type_name()));
        let command_id = CommandId(derive(self.tenant.0, &format!("command {}", self.next_seq)));
        let mut state = state;
        for event in events {
            state = order::evolve(state, &event);
            self.commit(
                order_id.0,
                state.version,
                event.into(),
                command_id,
                actor.clone(),
            );
        }
        self.orders.insert(order_id, state);
        self
    }

    /// Decides a chore command and commits what it decides, as `run` does for orders.
    fn chore(&mut self, actor: Actor, command: ChoreCommand) -> &mut Self {
        let chore_id = command.chore_id();
        let state = self.chores.get(&chore_id).cloned().unwrap_or_default();
        let ctx = Context {
            actor: actor.clone(),
            role: Some(hearth_core::ports::Role::Owner),
            now: self.now(),
            // The server's preparation time: "as soon as possible" orders get a ready-at.
            prep_time: chrono::TimeDelta::minutes(10),
            catalog: Default::default(),
        };
        let events = chore::decide(&state, &command, &ctx)
            .unwrap_or_else(|e| panic!("{} refused: {e}", command.type_name()));
        let command_id = CommandId(derive(self.tenant.0, &format!("command {}", self.next_seq)));
        let mut state = state;
        for event in events {
            state = chore::evolve(state, &event);
            self.commit(
                chore_id.0,
                state.version,
                event.into(),
                command_id,
                actor.clone(),
            );
        }
        self.chores.insert(chore_id, state);
        self
    }

    /// Decides a membership record (the server sends them, as the system, after the
    /// directory's change) and commits what it decides.
    fn members(&mut self, command: MemberCommand) -> &mut Self {
        let ctx = Context {
            actor: Actor::System,
            role: None,
            now: self.now(),
            prep_time: chrono::Duration::zero(),
            catalog: Default::default(),
        };
        let events = people::decide(&self.roster, &command, &ctx)
            .unwrap_or_else(|e| panic!("{} refused: {e}", command.type_name()));
        let command_id = CommandId(derive(self.tenant.0, &format!("command {}", self.next_seq)));
        for event in events {
            self.roster = people::evolve(std::mem::take(&mut self.roster), &event);
            let version = self.roster.version;
            self.commit(
                self.tenant.0,
                version,
                event.into(),
                command_id,
                Actor::System,
            );
        }
        self
    }

    /// Feeds an external fact through `order::react` and runs the command it gives.
    fn react(&mut self, kind: ExternalKind) -> &mut Self {
        let state = self
            .orders
            .get(&kind.order_id())
            .cloned()
            .unwrap_or_default();
        let external = ExternalEvent {
            id: derive(self.tenant.0, "external"),
            tenant: self.tenant,
            kind,
        };
        let command = order::react(&state, &external).expect("the order reacts");
        self.run(Actor::System, command)
    }

    /// Commits an event the decider would not produce here (the fold is total).
    fn raw(&mut self, event: Event) -> &mut Self {
        let order_id = event.order_id();
        let state = self.orders.entry(order_id).or_default();
        state.version += 1;
        let version = state.version;
        let command_id = CommandId(derive(self.tenant.0, &format!("command {}", self.next_seq)));
        self.commit(order_id.0, version, event.into(), command_id, Actor::System);
        self
    }

    /// Delivers the committed event at `seq` again (a redelivery: the fold ignores it).
    fn repeat(&mut self, seq: u64) -> &mut Self {
        let again = self.events.iter().find(|e| e.seq == seq).unwrap().clone();
        self.events.push(again);
        self
    }

    /// Delivers the next event with a seq one too far (a missed event).
    fn skip_seq(&mut self) -> &mut Self {
        self.next_seq += 1;
        self
    }

    fn commit(
        &mut self,
        aggregate_id: Uuid,
        version: u32,
        event: AnyEvent,
        command_id: CommandId,
        actor: Actor,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.events.push(EventEnvelope {
            id: EventId(derive(self.tenant.0, &format!("event {seq}"))),
            tenant: self.tenant,
            seq,
            aggregate_id,
            version,
            requires_job: event.job().is_some(),
            schema_version: event.schema_version(),
            event,
            metadata: EventMetadata {
                command_id,
                causation_id: command_id.0,
                correlation_id: command_id.0,
                actor,
            },
            created_at: self.start + Duration::seconds(i64::try_from(seq).unwrap() * 7),
        });
    }

    /// The case: the events, and what the Rust fold makes of them.
    fn case(&self, name: &'static str, about: &'static str) -> Case {
        let mut view = HouseholdView::new();
        let mut gap = None;
        for event in &self.events {
            if let Err(e) = view.apply(event) {
                gap = Some(Gap {
                    at: e.at,
                    got: e.got,
                });
                break;
            }
        }
        Case {
            name,
            about,
            events: self.events.clone(),
            view,
            gap,
        }
    }
}

fn member(n: u8) -> MemberId {
    MemberId(Uuid::from_u128(
        0x0191_a000_0000_7000_8000_0000_0000_00a0 | u128::from(n),
    ))
}

fn order_id(n: u8) -> OrderId {
    OrderId(Uuid::from_u128(
        0x0191_a000_0000_7000_8000_0000_0000_00f0 | u128::from(n),
    ))
}

fn as_member(n: u8) -> Actor {
    Actor::Member { id: member(n) }
}

/// The catalog the golden households order from: names and prices are fixed from it.
fn shop() -> Vec<hearth_core::CatalogItem> {
    let item = |sku: &str, name: &str, cents: u64| hearth_core::CatalogItem {
        sku: sku.into(),
        name: name.into(),
        unit_price_cents: cents,
        available: 99,
    };
    vec![
        item("milk", "Milk", 129),
        item("bread", "Bread", 349),
        item("croissant", "Croissant au beurre", 115),
        item("coffee-250", "Coffee beans, 250 g", 899),
        item("tea", "Tea", 250),
    ]
}

/// A line asking for `quantity` of `sku`, shown as `name` at `unit_price_cents` (which
/// must be the shop's: the recorded line is the shop's entry).
fn line(sku: &str, name: &str, quantity: u32, unit_price_cents: u64) -> RequestedLine {
    let entry = shop().into_iter().find(|i| i.sku == sku);
    assert_eq!(
        entry.map(|i| (i.name, i.unit_price_cents)),
        Some((name.to_owned(), unit_price_cents)),
        "the shop sells {sku}"
    );
    RequestedLine::shown(sku, quantity, unit_price_cents)
}

fn place(order: OrderId) -> Command {
    Command::PlaceOrder(PlaceOrder {
        order_id: order,
        lines: vec![line("milk", "Milk", 2, 129), line("bread", "Bread", 1, 349)],
        ready_at: None,
        note: None,
    })
}

fn reserve(order: OrderId) -> Command {
    Command::RecordStockReserved(RecordStockReserved {
        order_id: order,
        reservation_id: format!("res-{}", order.0.as_u128() & 0xff),
    })
}

/// Captures `amount` cents (the order's total: 607 for `place`).
fn capture(order: OrderId, amount: u64) -> Command {
    Command::RecordPaymentCaptured(RecordPaymentCaptured {
        order_id: order,
        payment_id: format!("pay-{}", order.0.as_u128() & 0xff),
        amount_cents: amount,
    })
}

fn refund(order: OrderId, amount: u64) -> Command {
    Command::RecordRefundIssued(RecordRefundIssued {
        order_id: order,
        refund_id: format!("ref-{}", order.0.as_u128() & 0xff),
        amount_cents: amount,
    })
}

fn cancel(order: OrderId, reason: Option<&str>) -> Command {
    Command::CancelOrder(CancelOrder {
        order_id: order,
        reason: reason.map(str::to_owned),
    })
}

fn reject(order: OrderId, reason: RejectionReason) -> Command {
    Command::RejectOrder(RejectOrder {
        order_id: order,
        reason,
    })
}

fn of(order: OrderId) -> OrderRef {
    OrderRef { order_id: order }
}

/// A note with a line break, quotes and non-ASCII text (JSON escapes and UTF-8).
const NOTE: &str = "Ring twice.\nLeave it with the neighbours \u{2014} \"Nr. 5\" \u{1f3e0}";

const TOTAL: u64 = 2 * 129 + 349;
const P: Actor = Actor::Process;

/// Every case, in a fixed order.
fn chore_id(n: u8) -> ChoreId {
    ChoreId(Uuid::from_u128(
        0x0191_a000_0000_7000_8000_0000_0000_00c0 | u128::from(n),
    ))
}

fn at(time: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(time).unwrap().to_utc()
}

fn schedule(chore: ChoreId, title: &str, assignee: u8, every_days: Option<u16>) -> ChoreCommand {
    ChoreCommand::ScheduleChore(ScheduleChore {
        chore_id: chore,
        title: title.into(),
        assignee: member(assignee),
        due_at: at("2026-11-28T08:00:00Z"),
        every_days,
        escalate_after_minutes: None,
    })
}

fn on(chore: ChoreId) -> ChoreRef {
    ChoreRef { chore_id: chore }
}

/// The chore cases: every chore event type and every status as some chore's last.
fn chore_cases() -> Vec<Case> {
    let c1 = chore_id(1);
    let c2 = chore_id(2);
    let c3 = chore_id(3);
    let c4 = chore_id(4);
    let next = chore::next_id(c1);
    let next_step = |h: &Household, c: ChoreId| {
        let state = h.chores.get(&c).cloned().unwrap_or_default();
        match chore::next_step(&state, at("2026-11-28T09:00:00Z")) {
            chore::ChoreStep::ScheduleNext(n) => ChoreCommand::ScheduleNextChore(n),
            other => panic!("the next occurrence is due, not {other:?}"),
        }
    };
    let mut weekly = Household::new(20, "2026-11-27T10:00:00Z");
    weekly
        .chore(as_member(1), schedule(c1, "Take the bins out", 2, Some(7)))
        .chore(P, ChoreCommand::SendChoreReminder(on(c1)))
        .chore(as_member(2), ChoreCommand::CompleteChore(on(c1)));
    let schedule_next = next_step(&weekly, c1);
    weekly.chore(P, schedule_next);
    assert!(weekly.chores.contains_key(&next));
    vec![
        weekly.case(
            "a weekly chore done, and its next occurrence",
            "Scheduled by one member for another, reminded at its due time, done by the \
             assignee; its process schedules the next one a week later (with `previous`).",
        ),
        Household::new(21, "2026-11-27T10:00:00Z")
            .chore(as_member(1), schedule(c2, "Water the plants", 2, None))
            .chore(
                as_member(2),
                ChoreCommand::ProposeSwap(ProposeSwap {
                    chore_id: c2,
                    with: member(3),
                }),
            )
            .chore(as_member(3), ChoreCommand::AcceptSwap(on(c2)))
            .chore(P, ChoreCommand::SendChoreReminder(on(c2)))
            .chore(P, ChoreCommand::EscalateChore(on(c2)))
            .chore(
                as_member(3),
                ChoreCommand::SkipChore(SkipChore {
                    chore_id: c2,
                    reason: Some("Rained all day \u{2614}".into()),
                }),
            )
            .case(
                "a chore swapped, reminded, escalated and skipped",
                "The assignee asks another member to take it; they accept, so the reminder \
                 and the escalation are theirs, and they skip it with a reason.",
            ),
        Household::new(22, "2026-11-27T10:00:00Z")
            .chore(as_member(1), schedule(c3, "Hoover the stairs", 1, None))
            .chore(as_member(1), schedule(c4, "Clean the fridge", 2, Some(30)))
            .run(as_member(1), place(order_id(9)))
            .chore(P, ChoreCommand::SendChoreReminder(on(c3)))
            .chore(
                as_member(2),
                ChoreCommand::ProposeSwap(ProposeSwap {
                    chore_id: c4,
                    with: member(1),
                }),
            )
            .chore(as_member(1), ChoreCommand::DeclineSwap(on(c4)))
            .chore(P, ChoreCommand::SendChoreReminder(on(c4)))
            .chore(P, ChoreCommand::EscalateChore(on(c4)))
            .chore(
                as_member(1),
                schedule(chore_id(5), "Defrost the freezer", 3, None),
            )
            .case(
                "open chores beside an order",
                "Chores and an order in one household: one chore due, one declined swap then \
                 overdue, one still scheduled; the order is folded beside them.",
            ),
    ]
}

fn joined(h: &Household, n: u8, name: &str, role: Role, invited_by: Option<u8>) -> MemberCommand {
    MemberCommand::RecordJoined(RecordJoined {
        household_id: h.tenant,
        member_id: member(n),
        name: name.into(),
        role,
        invited_by: invited_by.map(member),
    })
}

fn departure(h: &Household, n: u8, name: &str, by: u8) -> RecordDeparture {
    RecordDeparture {
        household_id: h.tenant,
        member_id: member(n),
        name: name.into(),
        by: member(by),
    }
}

/// The membership cases: every membership event type, recorded as changes happen and
/// found by a reconciliation with the directory.
fn member_cases() -> Vec<Case> {
    let mut home = Household::new(30, "2026-12-01T10:00:00Z");
    let ann = joined(&home, 1, "Ann", Role::Owner, None);
    let bob = joined(&home, 2, "Bob", Role::Member, Some(1));
    let cy = joined(&home, 3, "Cy", Role::Member, Some(1));
    let dee = joined(&home, 4, "Dee", Role::Member, Some(2));
    let bob_owner = MemberCommand::RecordRoleChanged(RecordRoleChanged {
        household_id: home.tenant,
        member_id: member(2),
        name: "Bob".into(),
        role: Role::Owner,
        by: member(1),
    });
    let cy_removed = MemberCommand::RecordRemoved(departure(&home, 3, "Cy", 1));
    let dee_left = MemberCommand::RecordLeft(departure(&home, 4, "Dee", 4));
    home.members(ann)
        .members(bob)
        .run(as_member(2), place(order_id(1)))
        .members(cy)
        .members(bob_owner)
        .members(dee)
        .members(cy_removed)
        .members(dee_left);

    let mut older = Household::new(31, "2026-12-01T10:00:00Z");
    let known = joined(&older, 1, "Ann", Role::Owner, None);
    let gone_unknown = MemberCommand::RecordLeft(departure(&older, 5, "Eve", 5));
    older.members(known).members(gone_unknown);
    let listed = |n: u8, name: &str, role: Role| Listed {
        member_id: member(n),
        name: name.into(),
        role,
    };
    let reconcile = MemberCommand::ReconcileMembers(ReconcileMembers {
        household_id: older.tenant,
        at_version: older.roster.version,
        members: vec![
            listed(1, "Ann", Role::Member),
            listed(2, "Bob", Role::Owner),
        ],
    });
    older.members(reconcile);
    let gone = MemberCommand::ReconcileMembers(ReconcileMembers {
        household_id: older.tenant,
        at_version: older.roster.version,
        members: vec![listed(2, "Bob", Role::Owner)],
    });
    older.members(gone);
    vec![
        home.case(
            "members join, one is made an owner, one is removed, one leaves",
            "Ann creates the household, Bob and Cy join on her invites and Dee on Bob's;              Ann makes Bob an owner and removes Cy; Dee leaves. An order is folded beside.",
        ),
        older.case(
            "membership found by reconciling with the directory",
            "A household older than membership events: a departure of a member the log              never saw joining, then what the directory lists that the log lacks (a role,              a joining, a departure), recorded with no `by`.",
        ),
    ]
}

const MEMBER_EVENT_TYPES: [&str; 4] = [
    "MemberJoined",
    "MemberRemoved",
    "MemberLeft",
    "MemberRoleChanged",
];

#[test]
fn the_member_cases_cover_every_membership_event_type() {
    let seen: BTreeSet<_> = member_cases()
        .iter()
        .flat_map(|c| &c.events)
        .filter_map(|e| e.event.of::<people::People>())
        .map(MemberEvent::type_name)
        .collect();
    assert_eq!(seen, BTreeSet::from(MEMBER_EVENT_TYPES));
    assert_eq!(
        MemberEvent::TYPES.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from(MEMBER_EVENT_TYPES)
    );
}

fn cases() -> Vec<Case> {
    let o1 = order_id(1);
    let o2 = order_id(2);
    let o3 = order_id(3);
    let o4 = order_id(4);
    let o5 = order_id(5);
    vec![
        Household::new(1, "2026-11-27T10:00:00Z")
            .case("no events", "The empty household: seq 0, no orders."),
        Household::new(2, "2026-11-27T10:00:00Z")
            .run(
                as_member(1),
                Command::PlaceOrder(PlaceOrder {
                    order_id: o1,
                    lines: vec![
                        line("milk", "Milk", 2, 129),
                        line("croissant", "Croissant au beurre", 6, 115),
                        line("coffee-250", "Coffee beans, 250 g", 1, 899),
                    ],
                    ready_at: Some(
                        DateTime::parse_from_rfc3339("2026-11-27T18:30:00Z")
                            .unwrap()
                            .to_utc(),
                    ),
                    note: Some(NOTE.into()),
                }),
            )
            .run(P, reserve(o1))
            .run(P, capture(o1, 2 * 129 + 6 * 115 + 899))
            .run(P, Command::ConfirmOrder(of(o1)))
            .run(P, Command::MarkReady(of(o1)))
            .run(as_member(2), Command::CompleteOrder(of(o1)))
            .case(
                "the happy path with ready-at and a note",
                "Placed with three lines, a ready-at and a note (a line break, quotes, non-ASCII), \
                 then reserved, captured, confirmed, ready, and collected by another member.",
            ),
        Household::new(3, "2026-11-27T10:00:00.250Z")
            .run(as_member(1), place(o1))
            .run(as_member(1), cancel(o1, Some("Changed my mind")))
            .case(
                "cancelled when placed",
                "Cancelled by its member before the stock was reserved: nothing to give back. \
                 Timestamps carry milliseconds.",
            ),
        Household::new(4, "2026-11-27T10:00:00Z")
            .run(as_member(1), place(o1))
            .run(P, reserve(o1))
            .run(as_member(1), cancel(o1, None))
            .run(P, Command::RecordStockReleased(of(o1)))
            .case(
                "cancelled when stock was reserved",
                "Cancelled without a reason after the reservation; the process releases the stock.",
            ),
        Household::new(5, "2026-11-27T10:00:00Z")
            .run(as_member(1), place(o1))
            .run(P, reserve(o1))
            .run(P, capture(o1, TOTAL))
            .run(as_member(2), cancel(o1, Some("Wrong shop")))
            .run(P, refund(o1, TOTAL))
            .run(P, Command::RecordStockReleased(of(o1)))
            .case(
                "cancelled when paid",
                "Cancelled by another member after the capture: refunded, then stock released.",
            ),
        Household::new(6, "2026-11-27T10:00:00Z")
            .run(as_member(1), place(o1))
            .run(P, reserve(o1))
            .run(P, capture(o1, TOTAL))
            .run(P, Command::ConfirmOrder(of(o1)))
            .run(Actor::System, cancel(o1, Some("Shop closed today")))
            .run(P, Command::RecordStockReleased(of(o1)))
            .run(P, refund(o1, TOTAL))
            .case(
                "cancelled by the system when confirmed",
                "An operator (actor system) cancels a confirmed order; release, then refund.",
            ),
        Household::new(7, "2026-11-27T10:00:00Z")
            .run(as_member(1), place(o1))
            .react(ExternalKind::InventoryShortage {
                order_id: o1,
                sku: "bread".into(),
            })
            .case(
                "rejected out of stock",
                "An inventory shortage (order::react) rejects the order while it waits for stock.",
            ),
        Household::new(8, "2026-11-27T10:00:00Z")
            .run(as_member(1), place(o1))
            .run(P, reserve(o1))
            .run(
                P,
                reject(
                    o1,
                    RejectionReason::PaymentDeclined {
                        message: "card expired".into(),
                    },
                ),
            )
            .run(P, Command::RecordStockReleased(of(o1)))
            .case(
                "rejected when the payment is declined",
                "Reserved, then the payment provider declines: rejected, stock released.",
            ),
        Household::new(9, "2026-11-27T10:00:00Z")
            .run(as_member(1), place(o1))
            .run(as_member(1), cancel(o1, None))
            .run(P, reserve(o1))
            .run(P, capture(o1, TOTAL))
            .run(P, Command::RecordStockReleased(of(o1)))
            .run(P, refund(o1, TOTAL))
            .case(
                "late successes after a cancel",
                "Cancelled while the calls were in flight: the reservation and the capture \
                 land after the close (StockReservedAfterClose, PaymentCapturedAfterClose), \
                 the status stays cancelled, then release and refund.",
            ),
        Household::new(10, "2026-11-27T10:00:00Z")
            .run(as_member(1), place(o1))
            .run(P, reserve(o1))
            .run(
                P,
                reject(
                    o1,
                    RejectionReason::PaymentDeclined {
                        message: "timeout".into(),
                    },
                ),
            )
            .run(P, capture(o1, TOTAL))
            .run(P, refund(o1, TOTAL))
            .run(P, Command::RecordStockReleased(of(o1)))
            .case(
                "a late capture after a rejection",
                "Rejected after a capture timed out; the capture had gone through \
                 (PaymentCapturedAfterClose): refunded, stock released, still rejected.",
            ),
        Household::new(11, "2026-11-27T10:00:00Z")
            .run(as_member(1), place(o1))
            .run(as_member(2), place(o2))
            .run(P, reserve(o1))
            .run(Actor::System, place(o3))
            .run(P, reserve(o2))
            .run(P, capture(o1, TOTAL))
            .run(as_member(3), place(o4))
            .run(P, capture(o2, TOTAL))
            .run(P, reserve(o3))
            .run(P, Command::ConfirmOrder(of(o1)))
            .run(as_member(1), place(o5))
            .run(P, Command::ConfirmOrder(of(o2)))
            .run(P, capture(o3, TOTAL))
            .run(P, Command::MarkReady(of(o1)))
            .run(P, reserve(o4))
            .case(
                "orders interleaved",
                "Five orders from three members and the system (nil member), their events \
                 interleaved; they end ready, confirmed, paymentCaptured, stockReserved and \
                 placed.",
            ),
        Household::new(12, "2026-11-27T10:00:00Z")
            .run(as_member(1), place(o1))
            .repeat(1)
            .run(P, reserve(o1))
            .repeat(2)
            .repeat(1)
            .run(P, capture(o1, TOTAL))
            .repeat(3)
            .case(
                "repeated events are no-ops",
                "Events delivered again (a resend after a reconnect) are at or below the view's \
                 seq: nothing changes, not even the timeline.",
            ),
        Household::new(13, "2026-11-27T10:00:00Z")
            .run(as_member(1), place(o1))
            .raw(Event::OrderPlaced {
                order_id: o1,
                lines: vec![OrderLine {
                    sku: "tea".into(),
                    name: "Tea".into(),
                    quantity: 1,
                    unit_price_cents: 250,
                }],
                total_cents: 250,
                ready_at: None,
                note: Some("a second placement".into()),
                placed_by: member(2),
            })
            .raw(Event::StockReserved {
                order_id: o2,
                reservation_id: "res-orphan".into(),
            })
            .run(P, reserve(o1))
            .case(
                "events the decider never produces",
                "A second OrderPlaced for the same order keeps the first placement (only a \
                 timeline entry); an event of an order never placed moves seq and nothing else.",
            ),
        Household::new(14, "2026-11-27T10:00:00Z")
            .run(as_member(1), place(o1))
            .run(P, reserve(o1))
            .skip_seq()
            .run(P, capture(o1, TOTAL))
            .run(P, Command::ConfirmOrder(of(o1)))
            .case(
                "a gap stops the fold",
                "The event at seq 3 is missing: the one at seq 4 is refused (gap at 2, got 4) \
                 and the view stays at seq 2; the client asks for a sync from there.",
            ),
        Household::new(15, "2026-11-27T10:00:00Z")
            .run(as_member(1), place(o1))
            .run(P, reserve(o1))
            .run(P, capture(o1, TOTAL))
            .run(P, Command::ConfirmOrder(of(o1)))
            .react(ExternalKind::StockLost {
                order_id: o1,
                sku: "bread".into(),
            })
            .run(P, Command::RecordStockReleased(of(o1)))
            .run(P, refund(o1, TOTAL))
            .case(
                "rejected when stock is lost after confirmation",
                "The inventory's webhook reports the stock lost (order::react): the confirmed \
                 order is rejected; the process releases and refunds.",
            ),
        Household::new(16, "2026-11-27T10:00:00Z")
            .run(as_member(1), place(o1))
            .run(P, reserve(o1))
            .run(P, capture(o1, TOTAL))
            .react(ExternalKind::ProviderRefunded {
                order_id: o1,
                payment_id: format!("pay-{}", o1.0.as_u128() & 0xff),
                amount_cents: TOTAL,
                refund_id: "provider-refund-1".into(),
            })
            .case(
                "refunded by the payment provider",
                "The payment provider's webhook reports a refund it made on its own: recorded, \
                 the status stays, the order shows refunded.",
            ),
    ]
}

/// Every event type. `event_type` matches without a wildcard, so a new variant does not
/// compile until it is listed here, and the coverage test then wants a case that has it.
const EVENT_TYPES: [&str; 13] = [
    "OrderPlaced",
    "StockReserved",
    "PaymentCaptured",
    "OrderConfirmed",
    "OrderRejected",
    "OrderReady",
    "OrderCancelled",
    "OrderCompleted",
    "RefundIssued",
    "StockReleased",
    "StockReservedAfterClose",
    "PaymentCapturedAfterClose",
    "RefundedByProvider",
];

fn event_type(e: &Event) -> &'static str {
    let listed = EVENT_TYPES[match e {
        Event::OrderPlaced { .. } => 0,
        Event::StockReserved { .. } => 1,
        Event::PaymentCaptured { .. } => 2,
        Event::OrderConfirmed { .. } => 3,
        Event::OrderRejected { .. } => 4,
        Event::OrderReady { .. } => 5,
        Event::OrderCancelled { .. } => 6,
        Event::OrderCompleted { .. } => 7,
        Event::RefundIssued { .. } => 8,
        Event::StockReleased { .. } => 9,
        Event::StockReservedAfterClose { .. } => 10,
        Event::PaymentCapturedAfterClose { .. } => 11,
        Event::RefundedByProvider { .. } => 12,
    }];
    assert_eq!(listed, e.type_name());
    listed
}

/// Every status, listed as the event types are.
const STATUSES: [OrderStatus; 8] = [
    OrderStatus::Placed,
    OrderStatus::StockReserved,
    OrderStatus::PaymentCaptured,
    OrderStatus::Confirmed,
    OrderStatus::Ready,
    OrderStatus::Completed,
    OrderStatus::Rejected,
    OrderStatus::Cancelled,
];

fn status(s: OrderStatus) -> &'static str {
    use OrderStatus as S;
    let listed = STATUSES[match s {
        S::Placed => 0,
        S::StockReserved => 1,
        S::PaymentCaptured => 2,
        S::Confirmed => 3,
        S::Ready => 4,
        S::Completed => 5,
        S::Rejected => 6,
        S::Cancelled => 7,
    }];
    assert_eq!(listed, s);
    s.as_str()
}

/// Every chore event type, listed like the order's.
const CHORE_EVENT_TYPES: [&str; 8] = [
    "ChoreScheduled",
    "ChoreReminderSent",
    "ChoreEscalated",
    "SwapProposed",
    "SwapAccepted",
    "SwapDeclined",
    "ChoreCompleted",
    "ChoreSkipped",
];

fn chore_event_type(e: &ChoreEvent) -> &'static str {
    let listed = CHORE_EVENT_TYPES[match e {
        ChoreEvent::ChoreScheduled { .. } => 0,
        ChoreEvent::ChoreReminderSent { .. } => 1,
        ChoreEvent::ChoreEscalated { .. } => 2,
        ChoreEvent::SwapProposed { .. } => 3,
        ChoreEvent::SwapAccepted { .. } => 4,
        ChoreEvent::SwapDeclined { .. } => 5,
        ChoreEvent::ChoreCompleted { .. } => 6,
        ChoreEvent::ChoreSkipped { .. } => 7,
    }];
    assert_eq!(listed, e.type_name());
    listed
}

const CHORE_STATUSES: [ChoreStatus; 5] = [
    ChoreStatus::Scheduled,
    ChoreStatus::Due,
    ChoreStatus::Overdue,
    ChoreStatus::Done,
    ChoreStatus::Skipped,
];

#[test]
fn the_chore_cases_cover_every_chore_event_type_and_status() {
    let cases = chore_cases();
    let seen: BTreeSet<_> = cases
        .iter()
        .flat_map(|c| &c.events)
        .filter_map(|e| e.event.of::<chore::Chores>())
        .map(chore_event_type)
        .collect();
    assert_eq!(seen, BTreeSet::from(CHORE_EVENT_TYPES));
    let finals: BTreeSet<_> = cases
        .iter()
        .flat_map(|c| &c.view.chores)
        .map(|c| c.status.as_str())
        .collect();
    assert_eq!(
        finals,
        CHORE_STATUSES
            .map(ChoreStatus::as_str)
            .into_iter()
            .collect()
    );
}

fn render() -> String {
    let golden = Golden {
        generated_by: "crates/core/tests/golden.rs from HouseholdView::apply. Do not edit; \
                       regenerate: HEARTH_UPDATE_BINDINGS=1 cargo test -p hearth-core \
                       --test golden",
        cases: cases()
            .into_iter()
            .chain(chore_cases())
            .chain(member_cases())
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&golden).unwrap();
    text.push('\n');
    text
}

#[test]
fn the_cases_cover_every_event_type_status_and_actor() {
    let cases = cases();
    let names: BTreeSet<_> = cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases.len(), "case names are unique");

    let seen: BTreeSet<_> = cases
        .iter()
        .flat_map(|c| &c.events)
        .filter_map(|e| e.event.of::<hearth_core::Orders>())
        .map(event_type)
        .collect();
    assert_eq!(
        seen,
        BTreeSet::from(EVENT_TYPES),
        "every event type is in some case"
    );

    let finals: BTreeSet<_> = cases
        .iter()
        .flat_map(|c| &c.view.orders)
        .map(|o| status(o.status))
        .collect();
    assert_eq!(
        finals,
        STATUSES.map(OrderStatus::as_str).into_iter().collect(),
        "every status is some order's final status"
    );

    let cancelled_by: BTreeSet<_> = cases
        .iter()
        .flat_map(|c| &c.view.orders)
        .filter_map(|o| o.cancelled_by.as_ref())
        .map(|a| match a {
            Actor::Member { .. } => "member",
            Actor::Process => "process",
            Actor::System => "system",
        })
        .collect();
    assert_eq!(cancelled_by, BTreeSet::from(["member", "system"]));

    let reasons: BTreeSet<_> = cases
        .iter()
        .flat_map(|c| &c.view.orders)
        .filter_map(|o| o.rejection.as_ref())
        .map(|r| match r {
            RejectionReason::OutOfStock { .. } => "outOfStock",
            RejectionReason::PaymentDeclined { .. } => "paymentDeclined",
            RejectionReason::StockLost { .. } => "stockLost",
        })
        .collect();
    assert_eq!(
        reasons,
        BTreeSet::from(["outOfStock", "paymentDeclined", "stockLost"])
    );

    assert!(
        cases.iter().any(|c| c.gap.is_some()),
        "a case ends in a gap"
    );
    assert!(
        cases.iter().any(|c| {
            let e = &c.events;
            (1..e.len()).any(|i| e[..i].iter().any(|before| before.seq >= e[i].seq))
        }),
        "a case repeats an event already folded"
    );
}

#[test]
fn rendering_is_deterministic() {
    assert_eq!(render(), render());
}

#[test]
fn committed_golden_vectors_match_the_rust_fold() {
    let want = render();
    let path = golden_file();
    if std::env::var_os(UPDATE).is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    if have != want {
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(h, w)| h != w)
            .map_or_else(
                || have.lines().count().min(want.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "web/src/generated/golden/projection.json is out of date (first difference at \
             line {line}); regenerate: {UPDATE}=1 cargo test -p hearth-core --test golden"
        );
    }
}
