//! Building blocks for tests: households, commands, events.

use chrono::{DurationRound, TimeDelta, Utc};
use hearth_core::chore::{ChoreCommand, ChoreEvent, ChoreId, ChoreRef};
use hearth_core::order::{Command, Event, OrderLine, OrderRef, PlaceOrder, RequestedLine};
use hearth_core::people::{MemberCommand, MemberEvent, ReconcileMembers};
use hearth_core::ports::Role;
use hearth_core::ports::{Append, Decision};
use hearth_core::{
    Actor, AnyCommand, CommandEnvelope, CommandId, EventId, EventMetadata, HouseholdId, MemberId,
    NewEvent, OrderId, Timestamp,
};
use uuid::Uuid;

pub fn household() -> HouseholdId {
    HouseholdId(Uuid::now_v7())
}

pub fn member() -> MemberId {
    MemberId(Uuid::now_v7())
}

pub fn order_id() -> OrderId {
    OrderId(Uuid::now_v7())
}

pub fn command_id() -> CommandId {
    CommandId(Uuid::now_v7())
}

/// Now, at the microsecond precision every store keeps.
pub fn now() -> Timestamp {
    let now = Utc::now();
    now.duration_trunc(TimeDelta::microseconds(1))
        .unwrap_or(now)
}

pub fn line(sku: &str, quantity: u32, cents: u64) -> OrderLine {
    OrderLine {
        sku: sku.into(),
        name: format!("{sku} (test)"),
        quantity,
        unit_price_cents: cents,
    }
}

/// A line of `PlaceOrder`: `quantity` of `sku` at the catalog's price.
pub fn ask(sku: &str, quantity: u32) -> RequestedLine {
    RequestedLine::new(sku, quantity)
}

/// Places two loaves and a milk (skus of the default catalog: 2 x 450 + 129 cents).
pub fn place(order: OrderId) -> Command {
    Command::PlaceOrder(PlaceOrder {
        order_id: order,
        lines: vec![ask("bread", 2), ask("milk", 1)],
        ready_at: None,
        note: Some("ring twice".into()),
    })
}

pub fn member_command(tenant: HouseholdId, command: impl Into<AnyCommand>) -> CommandEnvelope {
    CommandEnvelope::new(
        command_id(),
        tenant,
        Actor::Member { id: member() },
        command,
    )
}

/// A committed-looking event for store tests: `OrderPlaced` at version 1, then
/// `OrderConfirmed` for later versions (the store does not judge the domain).
pub fn new_event(command: &CommandEnvelope, order: OrderId, version: u32) -> NewEvent {
    let event = if version == 1 {
        Event::OrderPlaced {
            order_id: order,
            lines: vec![line("bread", 2, 450)],
            total_cents: 900,
            ready_at: None,
            note: None,
            placed_by: MemberId(Uuid::nil()),
        }
    } else {
        Event::OrderConfirmed { order_id: order }
    };
    NewEvent {
        id: EventId(Uuid::now_v7()),
        aggregate_id: order.0,
        version,
        requires_job: event.requires_job(),
        event: event.into(),
        schema_version: 1,
        metadata: EventMetadata {
            command_id: command.id,
            causation_id: command.id.0,
            correlation_id: command.id.0,
            actor: command.metadata.actor.clone(),
        },
        created_at: now(),
    }
}

/// An append of `count` events to `order`, which must be at `expected`.
pub fn append(tenant: HouseholdId, order: OrderId, expected: u32, count: u32) -> Append {
    let command = member_command(tenant, Command::ConfirmOrder(OrderRef { order_id: order }));
    let events = (1..=count)
        .map(|i| new_event(&command, order, expected + i))
        .collect();
    Append {
        command,
        decision: Decision::Events {
            aggregate: order.into(),
            expected_version: expected,
            events,
        },
    }
}

/// A committed-looking chore event: `ChoreScheduled` at version 1, then
/// `ChoreReminderSent` for later versions.
pub fn new_chore_event(command: &CommandEnvelope, chore: ChoreId, version: u32) -> NewEvent {
    let event = if version == 1 {
        ChoreEvent::ChoreScheduled {
            chore_id: chore,
            title: "Water the plants".into(),
            assignee: MemberId(Uuid::nil()),
            due_at: now(),
            every_days: Some(7),
            escalate_after_minutes: 60,
            created_by: MemberId(Uuid::nil()),
            previous: None,
        }
    } else {
        ChoreEvent::ChoreReminderSent {
            chore_id: chore,
            assignee: MemberId(Uuid::nil()),
        }
    };
    let any: hearth_core::AnyEvent = event.into();
    NewEvent {
        id: EventId(Uuid::now_v7()),
        aggregate_id: chore.0,
        version,
        requires_job: any.job().is_some(),
        event: any,
        schema_version: 1,
        metadata: EventMetadata {
            command_id: command.id,
            causation_id: command.id.0,
            correlation_id: command.id.0,
            actor: command.metadata.actor.clone(),
        },
        created_at: now(),
    }
}

/// An append of `count` chore events to `chore`, which must be at `expected`.
pub fn chore_append(tenant: HouseholdId, chore: ChoreId, expected: u32, count: u32) -> Append {
    let command = member_command(
        tenant,
        ChoreCommand::CompleteChore(ChoreRef { chore_id: chore }),
    );
    let events = (1..=count)
        .map(|i| new_chore_event(&command, chore, expected + i))
        .collect();
    Append {
        command,
        decision: Decision::Events {
            aggregate: chore.into(),
            expected_version: expected,
            events,
        },
    }
}

/// A committed-looking membership event of the roster `household` (the aggregate id is
/// the household's): `MemberJoined` at version 1, then `MemberRoleChanged`. The roster's
/// events ask for no job.
pub fn new_member_event(command: &CommandEnvelope, roster: Uuid, version: u32) -> NewEvent {
    let household_id = HouseholdId(roster);
    let event = if version == 1 {
        MemberEvent::MemberJoined {
            household_id,
            member_id: MemberId(Uuid::nil()),
            name: "Ann".into(),
            role: Role::Owner,
            invited_by: None,
        }
    } else {
        MemberEvent::MemberRoleChanged {
            household_id,
            member_id: MemberId(Uuid::nil()),
            name: "Ann".into(),
            role: if version.is_multiple_of(2) {
                Role::Member
            } else {
                Role::Owner
            },
            by: None,
        }
    };
    let any: hearth_core::AnyEvent = event.into();
    NewEvent {
        id: EventId(Uuid::now_v7()),
        aggregate_id: roster,
        version,
        requires_job: any.job().is_some(),
        event: any,
        schema_version: 1,
        metadata: EventMetadata {
            command_id: command.id,
            causation_id: command.id.0,
            correlation_id: command.id.0,
            actor: Actor::System,
        },
        created_at: now(),
    }
}

/// An append of `count` membership events to the roster `roster`, at `expected`.
pub fn member_append(tenant: HouseholdId, roster: Uuid, expected: u32, count: u32) -> Append {
    let command = CommandEnvelope::new(
        command_id(),
        tenant,
        Actor::System,
        MemberCommand::ReconcileMembers(ReconcileMembers {
            household_id: HouseholdId(roster),
            at_version: expected,
            members: vec![],
        }),
    );
    let events = (1..=count)
        .map(|i| new_member_event(&command, roster, expected + i))
        .collect();
    Append {
        command,
        decision: Decision::Events {
            aggregate: hearth_core::AggregateId::new(hearth_core::DomainId::People, roster),
            expected_version: expected,
            events,
        },
    }
}
