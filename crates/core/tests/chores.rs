//! The chore rota, the second domain: given/when/then tests of its rules, its pure
//! process, and the process run through the platform's seams (service, in-memory store,
//! a manual clock): reminder at the due time, escalation, the next occurrence.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use chrono::{TimeDelta, TimeZone, Utc};
use hearth_core::chore::{
    ChoreCommand, ChoreEvent, ChoreId, ChoreProcess, ChoreRef, ChoreRule, ChoreState, ChoreStatus,
    ChoreStep, Chores, ProposeSwap, ScheduleChore, SkipChore, decide, evolve, limits, next_id,
    next_step,
};
use hearth_core::durable::{Advance, Process, Processes};
use hearth_core::order::{Command, PlaceOrder, RequestedLine};
use hearth_core::ports::{Clock, EventStore, Outbox, Role};
use hearth_core::{
    Actor, AggregateId, CommandEnvelope, CommandId, Context, Dispatched, DomainId, HouseholdId,
    HouseholdView, JobKind, MemberId, OrderId, Orders, Service, Timestamp,
};
use hearth_memory::{ManualClock, MemoryEventStore, MemoryInventory, MemoryPayments};
use std::sync::Arc;
use uuid::Uuid;

const CHORE: ChoreId = ChoreId(Uuid::from_u128(1));
const ANA: MemberId = MemberId(Uuid::from_u128(0xa));
const BEN: MemberId = MemberId(Uuid::from_u128(0xb));
const CAL: MemberId = MemberId(Uuid::from_u128(0xc));

fn now() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn due() -> Timestamp {
    now() + TimeDelta::hours(6)
}

/// Ana scheduled the bins for Ben, due in six hours, weekly.
fn scheduled() -> ChoreEvent {
    ChoreEvent::ChoreScheduled {
        chore_id: CHORE,
        title: "Take the bins out".into(),
        assignee: BEN,
        due_at: due(),
        every_days: Some(7),
        escalate_after_minutes: 60,
        created_by: ANA,
        previous: None,
    }
}

struct Given {
    history: Vec<ChoreEvent>,
    actor: Actor,
    role: Option<Role>,
}

fn given(history: impl IntoIterator<Item = ChoreEvent>) -> Given {
    Given {
        history: history.into_iter().collect(),
        actor: Actor::Member { id: BEN },
        role: Some(Role::Member),
    }
}

impl Given {
    fn by(mut self, member: MemberId) -> Self {
        self.actor = Actor::Member { id: member };
        self
    }
    fn process(mut self) -> Self {
        self.actor = Actor::Process;
        self.role = None;
        self
    }
    fn owner(mut self) -> Self {
        self.role = Some(Role::Owner);
        self
    }
    fn when(self, command: ChoreCommand) -> Result<Vec<ChoreEvent>, ChoreRule> {
        let state = self.history.iter().fold(ChoreState::default(), evolve);
        decide(
            &state,
            &command,
            &Context {
                actor: self.actor,
                role: self.role,
                now: now(),
                prep_time: chrono::TimeDelta::zero(),
                catalog: Default::default(),
            },
        )
    }
}

fn r() -> ChoreRef {
    ChoreRef { chore_id: CHORE }
}

fn schedule(title: &str, due_at: Timestamp) -> ChoreCommand {
    ChoreCommand::ScheduleChore(ScheduleChore {
        chore_id: CHORE,
        title: title.into(),
        assignee: BEN,
        due_at,
        every_days: Some(7),
        escalate_after_minutes: Some(60),
    })
}

#[test]
fn a_member_schedules_a_chore_for_another() {
    assert_eq!(
        given([])
            .by(ANA)
            .when(schedule("Take the bins out", due()))
            .unwrap(),
        vec![scheduled()]
    );
}

#[test]
fn scheduling_checks_title_due_time_recurrence_and_escalation() {
    let g = || given([]).by(ANA);
    assert_eq!(
        g().when(schedule("  ", due())),
        Err(ChoreRule::InvalidTitle)
    );
    let long = "x".repeat(limits::MAX_TITLE_CHARS + 1);
    assert_eq!(
        g().when(schedule(&long, due())),
        Err(ChoreRule::InvalidTitle)
    );
    assert_eq!(
        g().when(schedule("bins\u{1b}", due())),
        Err(ChoreRule::ChoreControlCharacters { field: "title" })
    );
    assert_eq!(
        g().when(schedule("bins", now())),
        Err(ChoreRule::DueAtNotInFuture)
    );
    assert_eq!(
        g().when(schedule(
            "bins",
            now() + TimeDelta::days(limits::MAX_DUE_DAYS + 1)
        )),
        Err(ChoreRule::DueAtTooFar)
    );
    let with = |every_days, escalate_after_minutes| {
        ChoreCommand::ScheduleChore(ScheduleChore {
            chore_id: CHORE,
            title: "bins".into(),
            assignee: BEN,
            due_at: due(),
            every_days,
            escalate_after_minutes,
        })
    };
    assert_eq!(
        g().when(with(Some(0), None)),
        Err(ChoreRule::RecurrenceOutOfRange { got: 0 })
    );
    assert_eq!(
        g().when(with(Some(limits::MAX_EVERY_DAYS + 1), None)),
        Err(ChoreRule::RecurrenceOutOfRange { got: 366 })
    );
    assert_eq!(
        g().when(with(None, Some(limits::MIN_ESCALATE_AFTER_MINUTES - 1))),
        Err(ChoreRule::EscalationOutOfRange { got: 4 })
    );
    assert_eq!(
        g().when(with(None, Some(limits::MAX_ESCALATE_AFTER_MINUTES + 1))),
        Err(ChoreRule::EscalationOutOfRange {
            got: limits::MAX_ESCALATE_AFTER_MINUTES + 1
        })
    );
    // No escalation given: the default.
    let events = g().when(with(None, None)).unwrap();
    assert!(matches!(
        events[0],
        ChoreEvent::ChoreScheduled { escalate_after_minutes, .. }
            if escalate_after_minutes == limits::DEFAULT_ESCALATE_AFTER_MINUTES
    ));
    assert_eq!(
        given([scheduled()]).by(ANA).when(schedule("bins", due())),
        Err(ChoreRule::ChoreAlreadyExists(CHORE))
    );
}

#[test]
fn only_the_assignee_or_whoever_scheduled_it_completes_or_skips() {
    assert_eq!(
        given([scheduled()])
            .by(BEN)
            .when(ChoreCommand::CompleteChore(r()))
            .unwrap(),
        vec![ChoreEvent::ChoreCompleted {
            chore_id: CHORE,
            by: BEN
        }]
    );
    assert!(
        given([scheduled()])
            .by(ANA)
            .when(ChoreCommand::CompleteChore(r()))
            .is_ok()
    );
    assert_eq!(
        given([scheduled()])
            .by(CAL)
            .when(ChoreCommand::CompleteChore(r())),
        Err(ChoreRule::NotAssignee)
    );
    // An owner may, whoever it is for.
    assert_eq!(
        given([scheduled()])
            .by(CAL)
            .owner()
            .when(ChoreCommand::CompleteChore(r())),
        Ok(vec![ChoreEvent::ChoreCompleted {
            chore_id: CHORE,
            by: CAL
        }])
    );
    assert_eq!(
        given([scheduled()])
            .by(CAL)
            .when(ChoreCommand::SkipChore(SkipChore {
                chore_id: CHORE,
                reason: None
            })),
        Err(ChoreRule::NotAssignee)
    );
    assert_eq!(
        given([scheduled()])
            .by(BEN)
            .when(ChoreCommand::SkipChore(SkipChore {
                chore_id: CHORE,
                reason: Some("away".into())
            }))
            .unwrap(),
        vec![ChoreEvent::ChoreSkipped {
            chore_id: CHORE,
            by: BEN,
            reason: Some("away".into())
        }]
    );
    let long = "x".repeat(limits::MAX_REASON_CHARS + 1);
    assert_eq!(
        given([scheduled()]).when(ChoreCommand::SkipChore(SkipChore {
            chore_id: CHORE,
            reason: Some(long)
        })),
        Err(ChoreRule::ChoreReasonTooLong { got: 201 })
    );
}

#[test]
fn a_closed_chore_changes_no_more_and_a_missing_one_is_not_found() {
    let done = ChoreEvent::ChoreCompleted {
        chore_id: CHORE,
        by: BEN,
    };
    assert_eq!(
        given([scheduled(), done]).when(ChoreCommand::CompleteChore(r())),
        Err(ChoreRule::ChoreClosed {
            status: ChoreStatus::Done
        })
    );
    assert_eq!(
        given([]).when(ChoreCommand::CompleteChore(r())),
        Err(ChoreRule::ChoreNotFound(CHORE))
    );
}

#[test]
fn a_swap_needs_the_other_members_acceptance() {
    let propose = ChoreCommand::ProposeSwap(ProposeSwap {
        chore_id: CHORE,
        with: CAL,
    });
    let proposed = ChoreEvent::SwapProposed {
        chore_id: CHORE,
        from: BEN,
        to: CAL,
    };
    // Only the assignee proposes, never to themself, one at a time.
    assert_eq!(
        given([scheduled()]).by(ANA).when(propose.clone()),
        Err(ChoreRule::NotAssignee)
    );
    assert_eq!(
        given([scheduled()]).when(ChoreCommand::ProposeSwap(ProposeSwap {
            chore_id: CHORE,
            with: BEN
        })),
        Err(ChoreRule::SwapWithSelf)
    );
    assert_eq!(
        given([scheduled()]).when(propose.clone()).unwrap(),
        vec![proposed.clone()]
    );
    assert_eq!(
        given([scheduled(), proposed.clone()]).when(propose),
        Err(ChoreRule::SwapPending(CAL))
    );
    // Only the member asked accepts; the assignee changes.
    assert_eq!(
        given([scheduled(), proposed.clone()])
            .by(BEN)
            .when(ChoreCommand::AcceptSwap(r())),
        Err(ChoreRule::NoSwapPending)
    );
    let accepted = given([scheduled(), proposed.clone()])
        .by(CAL)
        .when(ChoreCommand::AcceptSwap(r()))
        .unwrap();
    assert_eq!(
        accepted,
        vec![ChoreEvent::SwapAccepted {
            chore_id: CHORE,
            from: BEN,
            to: CAL
        }]
    );
    let state = [scheduled(), proposed.clone(), accepted[0].clone()]
        .iter()
        .fold(ChoreState::default(), evolve);
    let chore = state.chore.unwrap();
    assert_eq!((chore.assignee, chore.pending_swap), (CAL, None));
    // The member asked declines, or the assignee withdraws; nobody else.
    assert!(
        given([scheduled(), proposed.clone()])
            .by(CAL)
            .when(ChoreCommand::DeclineSwap(r()))
            .is_ok()
    );
    assert!(
        given([scheduled(), proposed.clone()])
            .by(BEN)
            .when(ChoreCommand::DeclineSwap(r()))
            .is_ok()
    );
    assert_eq!(
        given([scheduled(), proposed])
            .by(ANA)
            .when(ChoreCommand::DeclineSwap(r())),
        Err(ChoreRule::NoSwapPending)
    );
    assert_eq!(
        given([scheduled()])
            .by(CAL)
            .when(ChoreCommand::AcceptSwap(r())),
        Err(ChoreRule::NoSwapPending)
    );
}

#[test]
fn reminders_and_escalation_are_the_process_s_own_and_follow_the_status() {
    let remind = ChoreCommand::SendChoreReminder(r());
    let escalate = ChoreCommand::EscalateChore(r());
    assert_eq!(
        given([scheduled()]).by(BEN).when(remind.clone()),
        Err(ChoreRule::ChoreInternalCommand {
            command: "SendChoreReminder"
        })
    );
    let reminded = ChoreEvent::ChoreReminderSent {
        chore_id: CHORE,
        assignee: BEN,
    };
    assert_eq!(
        given([scheduled()]).process().when(remind.clone()).unwrap(),
        vec![reminded.clone()]
    );
    assert_eq!(
        given([scheduled()]).process().when(escalate.clone()),
        Err(ChoreRule::ChoreInvalidTransition {
            command: "EscalateChore",
            status: ChoreStatus::Scheduled
        })
    );
    assert_eq!(
        given([scheduled(), reminded.clone()])
            .process()
            .when(remind),
        Err(ChoreRule::ChoreInvalidTransition {
            command: "SendChoreReminder",
            status: ChoreStatus::Due
        })
    );
    let escalated = given([scheduled(), reminded.clone()])
        .process()
        .when(escalate)
        .unwrap();
    let state = [scheduled(), reminded, escalated[0].clone()]
        .iter()
        .fold(ChoreState::default(), evolve);
    assert_eq!(state.chore.unwrap().status, ChoreStatus::Overdue);
}

#[test]
fn the_process_waits_reminds_escalates_and_schedules_the_next_one() {
    let at = |events: &[ChoreEvent]| events.iter().fold(ChoreState::default(), evolve);
    let s = at(&[scheduled()]);
    assert_eq!(next_step(&s, now()), ChoreStep::WaitUntil { at: due() });
    assert_eq!(next_step(&s, due()), ChoreStep::Remind);
    let reminded = ChoreEvent::ChoreReminderSent {
        chore_id: CHORE,
        assignee: BEN,
    };
    let s = at(&[scheduled(), reminded.clone()]);
    let escalate_at = due() + TimeDelta::minutes(60);
    assert_eq!(
        next_step(&s, due()),
        ChoreStep::WaitUntil { at: escalate_at }
    );
    assert_eq!(next_step(&s, escalate_at), ChoreStep::Escalate);
    let done = ChoreEvent::ChoreCompleted {
        chore_id: CHORE,
        by: BEN,
    };
    // Done two weeks late: the next one is the first weekly due time still ahead.
    let late = due() + TimeDelta::days(14);
    let ChoreStep::ScheduleNext(next) = next_step(&at(&[scheduled(), reminded, done]), late) else {
        panic!("the next occurrence is due");
    };
    assert_eq!(next.chore_id, next_id(CHORE));
    assert_eq!(next.due_at, due() + TimeDelta::days(21));
    assert_eq!((next.assignee, next.created_by), (BEN, ANA));
    // Not recurring: done is done.
    let once = ChoreEvent::ChoreScheduled {
        chore_id: CHORE,
        title: "once".into(),
        assignee: BEN,
        due_at: due(),
        every_days: None,
        escalate_after_minutes: 60,
        created_by: ANA,
        previous: None,
    };
    let skipped = ChoreEvent::ChoreSkipped {
        chore_id: CHORE,
        by: BEN,
        reason: None,
    };
    assert_eq!(next_step(&at(&[once, skipped]), late), ChoreStep::Done);
}

#[test]
fn every_chore_refusal_has_a_code_and_a_sentence() {
    let refusals = DomainId::Chore.refusals();
    assert!(refusals.len() >= 15);
    for r in &refusals {
        assert!(!r.code.is_empty() && r.sentence.ends_with('.'), "{r:?}");
    }
    // A code means the same in every domain that has it.
    let all: Vec<_> = DomainId::ALL.iter().flat_map(|d| d.refusals()).collect();
    for a in &all {
        for b in &all {
            if a.code == b.code {
                assert_eq!(a, b);
            }
        }
    }
}

struct World {
    store: Arc<MemoryEventStore>,
    clock: Arc<ManualClock>,
    service: Service,
    processes: Processes,
    household: HouseholdId,
}

fn world() -> World {
    let store = Arc::new(MemoryEventStore::new());
    let clock = Arc::new(ManualClock::starting_now());
    let inventory = Arc::new(MemoryInventory::default());
    let service = Service::new(store.clone(), clock.clone()).with_catalog(inventory.clone());
    let processes = Processes::new(service.clone(), Arc::new(MemoryPayments::new()), inventory);
    World {
        store,
        clock,
        service,
        processes,
        household: HouseholdId(Uuid::now_v7()),
    }
}

impl World {
    fn by(&self, member: MemberId, command: impl Into<hearth_core::AnyCommand>) -> CommandEnvelope {
        CommandEnvelope::new(
            CommandId(Uuid::now_v7()),
            self.household,
            Actor::Member { id: member },
            command,
        )
    }

    async fn schedule(&self, chore: ChoreId, due_in: TimeDelta, every_days: Option<u16>) {
        let command = ChoreCommand::ScheduleChore(ScheduleChore {
            chore_id: chore,
            title: "Water the plants".into(),
            assignee: BEN,
            due_at: self.clock.now() + due_in,
            every_days,
            escalate_after_minutes: Some(30),
        });
        let done = self.service.dispatch(self.by(ANA, command)).await.unwrap();
        assert!(matches!(done, Dispatched::Accepted { .. }), "{done:?}");
    }

    async fn status(&self, chore: ChoreId) -> Option<ChoreStatus> {
        let state = self
            .service
            .load::<Chores>(self.household, chore)
            .await
            .unwrap();
        state.chore.map(|c| c.status)
    }

    async fn advance(&self, chore: ChoreId) -> Advance {
        self.processes
            .advance(self.household, chore.into())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn through_the_platform_a_chore_is_reminded_escalated_and_recurs() {
    let w = world();
    let chore = ChoreId(Uuid::now_v7());
    w.schedule(chore, TimeDelta::hours(1), Some(1)).await;
    // The schedule asked for durable work: a start job for the chore's aggregate.
    let jobs = w.store.pending_jobs(10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].aggregate, AggregateId::new(DomainId::Chore, chore));
    assert_eq!(jobs[0].kind, JobKind::Start);

    let due = w.clock.now() + TimeDelta::hours(1);
    assert_eq!(w.advance(chore).await, Advance::Waiting { until: due });
    w.clock.advance(TimeDelta::hours(1));
    assert_eq!(
        w.advance(chore).await,
        Advance::Progressed { step: "remind" }
    );
    assert_eq!(w.status(chore).await, Some(ChoreStatus::Due));
    // A repeated step is one command (its id derives from the chore and the step).
    assert_eq!(
        w.advance(chore).await,
        Advance::Waiting {
            until: due + TimeDelta::minutes(30)
        }
    );
    w.clock.advance(TimeDelta::minutes(30));
    assert_eq!(
        w.advance(chore).await,
        Advance::Progressed { step: "escalate" }
    );
    assert_eq!(w.status(chore).await, Some(ChoreStatus::Overdue));
    assert!(matches!(w.advance(chore).await, Advance::Waiting { .. }));

    // Done: a wake job, and the process schedules tomorrow's occurrence, once.
    let done = w
        .service
        .dispatch(w.by(
            BEN,
            ChoreCommand::CompleteChore(ChoreRef { chore_id: chore }),
        ))
        .await
        .unwrap();
    assert!(matches!(done, Dispatched::Accepted { .. }), "{done:?}");
    assert!(
        w.store
            .pending_jobs(10)
            .await
            .unwrap()
            .iter()
            .any(|j| j.kind == JobKind::Wake && j.aggregate.id == chore.0)
    );
    assert_eq!(w.advance(chore).await, Advance::Done);
    assert_eq!(w.advance(chore).await, Advance::Done);
    let next = next_id(chore);
    assert_eq!(w.status(next).await, Some(ChoreStatus::Scheduled));
    let state = w.service.load::<Chores>(w.household, next).await.unwrap();
    let next_chore = state.chore.unwrap();
    assert_eq!(next_chore.due_at, due + TimeDelta::days(1));
    assert_eq!(state.version, 1, "scheduled once, whatever the repeats");

    // The household view shows both, in the order they were scheduled.
    let feed = w.store.read_feed(w.household, 0, 100).await.unwrap();
    let view = HouseholdView::fold(&feed).unwrap();
    let statuses: Vec<_> = view.chores.iter().map(|c| (c.id, c.status)).collect();
    assert_eq!(
        statuses,
        vec![(chore, ChoreStatus::Done), (next, ChoreStatus::Scheduled)]
    );
    assert_eq!(view.chores[1].previous, Some(chore));
    assert_eq!(view.chores[0].closed_by, Some(BEN));
}

#[tokio::test]
async fn a_chore_and_an_order_with_the_same_id_never_meet() {
    let w = world();
    let id = Uuid::now_v7();
    w.schedule(ChoreId(id), TimeDelta::hours(1), None).await;
    let place = Command::PlaceOrder(PlaceOrder {
        order_id: OrderId(id),
        lines: vec![RequestedLine::new("milk", 1)],
        ready_at: None,
        note: None,
    });
    let placed = w.service.dispatch(w.by(ANA, place)).await.unwrap();
    assert!(matches!(placed, Dispatched::Accepted { .. }), "{placed:?}");
    let order = w
        .service
        .load::<Orders>(w.household, OrderId(id))
        .await
        .unwrap();
    assert_eq!(order.version, 1);
    let chore = w
        .service
        .load::<Chores>(w.household, ChoreId(id))
        .await
        .unwrap();
    assert_eq!(chore.version, 1);
    let order_events = w
        .store
        .load(w.household, AggregateId::new(DomainId::Order, id), 1)
        .await
        .unwrap()
        .events;
    assert_eq!(order_events.len(), 1);
    assert_eq!(order_events[0].event.domain(), DomainId::Order);
}

#[tokio::test]
async fn the_chore_process_is_a_process_of_its_own() {
    // A domain's process can run on its own (an executor only needs `Process`).
    let w = world();
    let chore = ChoreId(Uuid::now_v7());
    w.schedule(chore, TimeDelta::minutes(5), None).await;
    let process = ChoreProcess::new(w.service.clone());
    w.clock.advance(TimeDelta::minutes(5));
    assert_eq!(
        process.advance(w.household, chore.0).await.unwrap(),
        Advance::Progressed { step: "remind" }
    );
}

#[test]
fn member_command_types_are_exactly_the_commands_that_are_not_internal() {
    use hearth_core::order::CommandType;
    use strum::IntoEnumIterator;
    let order: Vec<_> = CommandType::iter()
        .filter(|t| !t.is_internal())
        .map(CommandType::name)
        .collect();
    assert_eq!(DomainId::Order.member_command_types(), order.as_slice());
    let chore: Vec<&str> = hearth_core::chore::ChoreCommandType::iter()
        .filter(|t| !t.is_internal())
        .map(<&str>::from)
        .collect();
    assert_eq!(DomainId::Chore.member_command_types(), chore.as_slice());
}
