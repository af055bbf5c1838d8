//! Membership as a domain: given/when/then tests of the roster's rules (recording a
//! change the directory made, reconciling with the directory's list) and of the
//! household view's fold of membership events.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use chrono::{TimeZone, Utc};
use hearth_core::people::{
    Listed, MemberCommand, MemberEvent, MemberRule, People, ReconcileMembers, RecordDeparture,
    RecordJoined, RecordRoleChanged, RosterState, decide, evolve,
};
use hearth_core::ports::Role;
use hearth_core::{
    Actor, CommandEnvelope, CommandId, Context, Dispatched, Domain, DomainId, EventEnvelope,
    HouseholdId, HouseholdView, MemberId, Service, Timestamp,
};
use hearth_memory::{ManualClock, MemoryEventStore};
use std::sync::Arc;
use uuid::Uuid;

const HOME: HouseholdId = HouseholdId(Uuid::from_u128(0x40));
const ANN: MemberId = MemberId(Uuid::from_u128(0xa));
const BOB: MemberId = MemberId(Uuid::from_u128(0xb));
const CY: MemberId = MemberId(Uuid::from_u128(0xc));

fn now() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

fn joined(member: MemberId, name: &str, role: Role, invited_by: Option<MemberId>) -> MemberEvent {
    MemberEvent::MemberJoined {
        household_id: HOME,
        member_id: member,
        name: name.into(),
        role,
        invited_by,
    }
}

/// Ann created the household; Bob joined on her invite.
fn ann_and_bob() -> Vec<MemberEvent> {
    vec![
        joined(ANN, "Ann", Role::Owner, None),
        joined(BOB, "Bob", Role::Member, Some(ANN)),
    ]
}

fn state(history: &[MemberEvent]) -> RosterState {
    history.iter().fold(RosterState::default(), evolve)
}

fn system() -> Context {
    Context {
        actor: Actor::System,
        role: None,
        now: now(),
        prep_time: chrono::Duration::zero(),
        catalog: Default::default(),
    }
}

fn when(history: &[MemberEvent], command: MemberCommand) -> Result<Vec<MemberEvent>, MemberRule> {
    decide(&state(history), &command, &system())
}

fn record_joined(member: MemberId, name: &str, role: Role) -> MemberCommand {
    MemberCommand::RecordJoined(RecordJoined {
        household_id: HOME,
        member_id: member,
        name: name.into(),
        role,
        invited_by: Some(ANN),
    })
}

fn departure(member: MemberId, name: &str, by: MemberId) -> RecordDeparture {
    RecordDeparture {
        household_id: HOME,
        member_id: member,
        name: name.into(),
        by,
    }
}

fn role_changed(member: MemberId, name: &str, role: Role, by: MemberId) -> MemberCommand {
    MemberCommand::RecordRoleChanged(RecordRoleChanged {
        household_id: HOME,
        member_id: member,
        name: name.into(),
        role,
        by,
    })
}

fn listed(member: MemberId, name: &str, role: Role) -> Listed {
    Listed {
        member_id: member,
        name: name.into(),
        role,
    }
}

fn reconcile(at_version: u32, members: Vec<Listed>) -> MemberCommand {
    MemberCommand::ReconcileMembers(ReconcileMembers {
        household_id: HOME,
        at_version,
        members,
    })
}

#[test]
fn a_joining_is_recorded_once() {
    // Given Ann's household, when Cy's joining is recorded, then Cy joined, on Ann's invite.
    let history = ann_and_bob();
    let events = when(&history, record_joined(CY, "Cy", Role::Member)).unwrap();
    assert_eq!(events, vec![joined(CY, "Cy", Role::Member, Some(ANN))]);
    // Given it was recorded, when it is recorded again, then nothing more happens.
    let mut after = history.clone();
    after.extend(events);
    assert_eq!(
        when(&after, record_joined(CY, "Cy", Role::Member)),
        Ok(vec![])
    );
}

#[test]
fn a_removal_names_who_removed_and_is_recorded_once() {
    let history = ann_and_bob();
    let events = when(
        &history,
        MemberCommand::RecordRemoved(departure(BOB, "Bob", ANN)),
    )
    .unwrap();
    assert_eq!(
        events,
        vec![MemberEvent::MemberRemoved {
            household_id: HOME,
            member_id: BOB,
            name: "Bob".into(),
            by: Some(ANN),
        }]
    );
    let mut after = history.clone();
    after.extend(events);
    assert_eq!(
        when(
            &after,
            MemberCommand::RecordRemoved(departure(BOB, "Bob", ANN))
        ),
        Ok(vec![])
    );
    // A departure is final: a later leaving or role change of Bob records nothing.
    assert_eq!(
        when(
            &after,
            MemberCommand::RecordLeft(departure(BOB, "Bob", BOB))
        ),
        Ok(vec![])
    );
    assert_eq!(
        when(&after, role_changed(BOB, "Bob", Role::Owner, ANN)),
        Ok(vec![])
    );
}

#[test]
fn a_leaving_is_recorded() {
    let events = when(
        &ann_and_bob(),
        MemberCommand::RecordLeft(departure(BOB, "Bob", BOB)),
    )
    .unwrap();
    assert_eq!(
        events,
        vec![MemberEvent::MemberLeft {
            household_id: HOME,
            member_id: BOB,
            name: "Bob".into(),
        }]
    );
}

#[test]
fn a_role_change_names_who_changed_it_and_a_repeat_records_nothing() {
    let history = ann_and_bob();
    let events = when(&history, role_changed(BOB, "Bob", Role::Owner, ANN)).unwrap();
    assert_eq!(
        events,
        vec![MemberEvent::MemberRoleChanged {
            household_id: HOME,
            member_id: BOB,
            name: "Bob".into(),
            role: Role::Owner,
            by: Some(ANN),
        }]
    );
    let mut after = history.clone();
    after.extend(events);
    assert_eq!(state(&after).entry(BOB).map(|m| m.role), Some(Role::Owner));
    assert_eq!(
        when(&after, role_changed(BOB, "Bob", Role::Owner, ANN)),
        Ok(vec![])
    );
}

#[test]
fn members_cannot_send_membership_records() {
    // Given any roster, when a member sends a record over the wire, then it is refused:
    // membership changes go through the directory.
    let ctx = Context {
        actor: Actor::Member { id: BOB },
        role: Some(Role::Owner),
        now: now(),
        prep_time: chrono::Duration::zero(),
        catalog: Default::default(),
    };
    for command in [
        record_joined(CY, "Cy", Role::Owner),
        MemberCommand::RecordRemoved(departure(ANN, "Ann", BOB)),
        role_changed(BOB, "Bob", Role::Owner, BOB),
        reconcile(2, vec![]),
    ] {
        let refused = decide(&state(&ann_and_bob()), &command, &ctx).unwrap_err();
        assert_eq!(
            hearth_core::Rule::code(&refused),
            "membership_recorded_by_server"
        );
    }
    assert!(DomainId::People.member_command_types().is_empty());
    let refusals = DomainId::People.refusals();
    assert_eq!(refusals.len(), 1);
    assert!(!refusals[0].sentence.is_empty());
}

#[test]
fn reconciling_records_what_the_log_lacks() {
    // Given the log has Ann (owner) and Bob; the directory lists Ann as a member, Cy as
    // an owner, and no Bob.
    let history = ann_and_bob();
    let events = when(
        &history,
        reconcile(
            2,
            vec![
                listed(ANN, "Ann", Role::Member),
                listed(CY, "Cy", Role::Owner),
            ],
        ),
    )
    .unwrap();
    // Then Ann's role changed, Cy joined and Bob is gone, none of it attributed.
    assert_eq!(
        events,
        vec![
            MemberEvent::MemberRoleChanged {
                household_id: HOME,
                member_id: ANN,
                name: "Ann".into(),
                role: Role::Member,
                by: None,
            },
            joined(CY, "Cy", Role::Owner, None),
            MemberEvent::MemberRemoved {
                household_id: HOME,
                member_id: BOB,
                name: "Bob".into(),
                by: None,
            },
        ]
    );
    // And when the log agrees with the directory, nothing.
    assert_eq!(
        when(
            &history,
            reconcile(
                2,
                vec![
                    listed(ANN, "Ann", Role::Owner),
                    listed(BOB, "Bob", Role::Member)
                ]
            )
        ),
        Ok(vec![])
    );
}

#[test]
fn a_reconciliation_made_at_another_version_records_nothing() {
    // Given the comparison was made when the roster had one event (Ann), and Bob's
    // joining was recorded since: the directory list (read before Bob joined) lacks
    // him, but Bob is not gone.
    let history = ann_and_bob();
    assert_eq!(
        when(
            &history,
            reconcile(1, vec![listed(ANN, "Ann", Role::Owner)])
        ),
        Ok(vec![])
    );
}

#[test]
fn a_household_older_than_membership_events_reconciles_its_members_in() {
    let events = when(
        &[],
        reconcile(
            0,
            vec![
                listed(ANN, "Ann", Role::Owner),
                listed(BOB, "Bob", Role::Member),
            ],
        ),
    )
    .unwrap();
    assert_eq!(
        events,
        vec![
            joined(ANN, "Ann", Role::Owner, None),
            joined(BOB, "Bob", Role::Member, None)
        ]
    );
    // A departure recorded before the log had the joining is still final.
    let gone = vec![MemberEvent::MemberLeft {
        household_id: HOME,
        member_id: CY,
        name: "Cy".into(),
    }];
    assert!(state(&gone).entry(CY).is_some_and(|m| m.gone));
    assert_eq!(
        when(&gone, record_joined(CY, "Cy", Role::Member)),
        Ok(vec![])
    );
}

fn envelope(seq: u64, event: MemberEvent) -> EventEnvelope {
    let command = CommandId(Uuid::from_u128(u128::from(seq)));
    EventEnvelope {
        id: hearth_core::EventId(Uuid::from_u128(0x1000 + u128::from(seq))),
        tenant: HOME,
        seq,
        aggregate_id: HOME.0,
        version: u32::try_from(seq).unwrap(),
        schema_version: People::EVENT_SCHEMA_VERSION,
        event: event.into(),
        metadata: hearth_core::EventMetadata {
            command_id: command,
            causation_id: command.0,
            correlation_id: command.0,
            actor: Actor::System,
        },
        created_at: now(),
        requires_job: false,
    }
}

#[test]
fn the_household_view_folds_members() {
    let events: Vec<_> = [
        joined(ANN, "Ann", Role::Owner, None),
        joined(BOB, "Bob", Role::Member, Some(ANN)),
        joined(CY, "Cy", Role::Member, Some(ANN)),
        MemberEvent::MemberRoleChanged {
            household_id: HOME,
            member_id: BOB,
            name: "Bob".into(),
            role: Role::Owner,
            by: Some(ANN),
        },
        MemberEvent::MemberLeft {
            household_id: HOME,
            member_id: CY,
            name: "Cy".into(),
        },
    ]
    .into_iter()
    .zip(1..)
    .map(|(e, seq)| envelope(seq, e))
    .collect();
    let view = HouseholdView::fold(&events).unwrap();
    assert_eq!(view.seq, 5);
    let members: Vec<_> = view.members.iter().map(|m| (m.id, m.role)).collect();
    assert_eq!(members, vec![(ANN, Role::Owner), (BOB, Role::Owner)]);
}

#[tokio::test]
async fn recording_through_the_service_is_idempotent() {
    // Given the service on the memory store.
    let store = Arc::new(MemoryEventStore::new());
    let service = Service::new(store.clone(), Arc::new(ManualClock::new(now())));
    let record = |id: u128, command: MemberCommand| {
        CommandEnvelope::new(CommandId(Uuid::from_u128(id)), HOME, Actor::System, command)
    };
    // When Ann's joining is recorded, twice under one id and once under another.
    let first = service
        .dispatch(record(1, record_joined(ANN, "Ann", Role::Owner)))
        .await
        .unwrap();
    assert!(
        matches!(first, Dispatched::Accepted { seq: 1, .. }),
        "{first:?}"
    );
    let again = service
        .dispatch(record(1, record_joined(ANN, "Ann", Role::Owner)))
        .await
        .unwrap();
    assert!(matches!(again, Dispatched::Duplicate(_)), "{again:?}");
    let other = service
        .dispatch(record(2, record_joined(ANN, "Ann", Role::Owner)))
        .await
        .unwrap();
    // Then the log has one joining.
    assert!(
        matches!(&other, Dispatched::Accepted { events, .. } if events.is_empty()),
        "{other:?}"
    );
    use hearth_core::ports::EventStore;
    assert_eq!(store.head(HOME).await.unwrap(), 1);
    let roster = service.load::<People>(HOME, HOME.0).await.unwrap();
    assert_eq!(roster.version, 1);
}

fn person(id: MemberId, name: &str, role: Role) -> hearth_core::ports::Member {
    hearth_core::ports::Member {
        household: HOME,
        id,
        name: name.into(),
        role,
        joined_at: now(),
    }
}

/// The platform's seam (`membership.rs`): each change the directory made is recorded once
/// (a retry adds nothing), and a change it did not record is found by reconciling with
/// the directory, once.
#[tokio::test]
async fn the_platform_records_each_change_once_and_reconciles_what_it_missed() {
    use hearth_core::membership::Change;
    use hearth_core::ports::{Directory, EventStore, Household, Invite};
    let store = Arc::new(MemoryEventStore::new());
    let service = Service::new(store.clone(), Arc::new(ManualClock::new(now())));
    let directory = hearth_memory::MemoryDirectory::new();
    let ann = person(ANN, "Ann", Role::Owner);
    let household = Household {
        id: HOME,
        name: "Home".into(),
        created_at: now(),
        time_zone: hearth_core::ports::DEFAULT_TIME_ZONE.into(),
    };
    directory
        .create_household(household, ann.clone())
        .await
        .unwrap();
    let joined = Change::Joined {
        member: &ann,
        invited_by: None,
    };
    // Recorded, then recorded again (a retry): one event.
    let first = service.record_membership(joined).await.unwrap();
    assert!(
        matches!(first, Dispatched::Accepted { seq: 1, .. }),
        "{first:?}"
    );
    let again = service.record_membership(joined).await.unwrap();
    assert!(matches!(again, Dispatched::Duplicate(_)), "{again:?}");
    assert_eq!(store.head(HOME).await.unwrap(), 1);
    assert!(
        service
            .reconcile_membership(&directory, HOME)
            .await
            .unwrap()
            .is_none(),
        "the log agrees with the directory"
    );

    // Bob joins in the directory, and the record is lost (the server died in between).
    let invite = Invite {
        household: HOME,
        code: "code".into(),
        created_by: ANN,
        created_at: now(),
        expires_at: now() + chrono::TimeDelta::days(1),
    };
    directory.create_invite(invite).await.unwrap();
    let bob = directory
        .accept_invite(HOME, "code", person(BOB, "Bob", Role::Member), now())
        .await
        .unwrap();
    let found = service
        .reconcile_membership(&directory, HOME)
        .await
        .unwrap();
    let Some(Dispatched::Accepted { events, .. }) = found else {
        panic!("expected Bob's joining recorded: {found:?}");
    };
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].event,
        hearth_core::AnyEvent::from(joined_by_reconciliation(BOB, "Bob")),
        "found, not attributed"
    );
    assert!(
        service
            .reconcile_membership(&directory, HOME)
            .await
            .unwrap()
            .is_none()
    );
    // The lost record arrives late: nothing more.
    let late = Change::Joined {
        member: &bob,
        invited_by: Some(ANN),
    };
    service.record_membership(late).await.unwrap();
    assert_eq!(store.head(HOME).await.unwrap(), 2);

    // A role change recorded twice: one event.
    let bob = directory.set_role(HOME, BOB, Role::Owner).await.unwrap();
    let changed = Change::RoleChanged {
        member: &bob,
        by: ANN,
    };
    service.record_membership(changed).await.unwrap();
    service.record_membership(changed).await.unwrap();
    assert_eq!(store.head(HOME).await.unwrap(), 3);
    let roster = service.load::<People>(HOME, HOME.0).await.unwrap();
    assert_eq!(roster.entry(BOB).map(|m| m.role), Some(Role::Owner));
}

fn joined_by_reconciliation(member: MemberId, name: &str) -> MemberEvent {
    joined(member, name, Role::Member, None)
}
