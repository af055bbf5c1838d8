//! The chore rota: a second household domain, built only on the platform's public
//! seams (docs/your-own-domain.md walks through it).
//!
//! A chore has an assignee and a due time. Its process reminds the assignee when it is
//! due and escalates if it is still open later; a recurring chore schedules its next
//! occurrence once it is done or skipped. Completing and skipping are the assignee's
//! (or whoever scheduled the chore); a swap needs the other member's acceptance.
//!
//! - [`command`]: what members and the process ask of a chore;
//! - [`event`]: what happened to it;
//! - [`state`]: the chore as folded from its events, and its status machine;
//! - [`decide`]: the rules and the refusals they name;
//! - [`process`]: what durable work does for a chore.

mod command;
mod decide;
mod event;
mod process;
mod state;

pub use command::*;
pub use decide::*;
pub use event::*;
pub use process::*;
pub use state::*;

use crate::domain::{Context, Domain, JobKind, RefusalInfo};
use crate::registry::DomainId;
use serde::{Deserialize, Serialize};
use std::fmt;
use strum::IntoEnumIterator;
use uuid::Uuid;

/// A chore: the aggregate id of a chore stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(transparent)]
pub struct ChoreId(pub Uuid);

impl fmt::Display for ChoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<ChoreId> for Uuid {
    fn from(id: ChoreId) -> Self {
        id.0
    }
}

impl From<ChoreId> for crate::domain::AggregateId {
    fn from(chore: ChoreId) -> Self {
        crate::domain::AggregateId::new(DomainId::Chore, chore)
    }
}

/// Limits of the chore rules, named so errors and clients can quote them.
pub mod limits {
    pub const MAX_TITLE_CHARS: usize = 100;
    pub const MAX_REASON_CHARS: usize = 200;
    pub const MAX_DUE_DAYS: i64 = 366;
    pub const MAX_EVERY_DAYS: u16 = 365;
    pub const MIN_ESCALATE_AFTER_MINUTES: u32 = 5;
    pub const MAX_ESCALATE_AFTER_MINUTES: u32 = 7 * 24 * 60;
    pub const DEFAULT_ESCALATE_AFTER_MINUTES: u32 = 120;
    /// How often the process of an escalated chore looks at it again, in case the
    /// wake-up at its close was lost.
    pub const IDLE_RECHECK_DAYS: i64 = 30;
}

/// The chore domain.
#[derive(Clone, Copy, Debug)]
pub struct Chores;

impl Domain for Chores {
    const ID: DomainId = DomainId::Chore;
    const EVENT_SCHEMA_VERSION: u32 = CHORE_EVENT_SCHEMA_VERSION;
    const SNAPSHOT_SCHEMA_VERSION: u32 = CHORE_SNAPSHOT_SCHEMA_VERSION;
    type Command = ChoreCommand;
    type Event = ChoreEvent;
    type State = ChoreState;
    type Rule = ChoreRule;
    const COMMAND_TYPES: &'static [&'static str] = ChoreCommand::TYPES;
    const MEMBER_COMMAND_TYPES: &'static [&'static str] = &[
        "ScheduleChore",
        "CompleteChore",
        "SkipChore",
        "ProposeSwap",
        "AcceptSwap",
        "DeclineSwap",
    ];
    const EVENT_TYPES: &'static [&'static str] = ChoreEvent::TYPES;

    fn command_aggregate(command: &ChoreCommand) -> Uuid {
        command.chore_id().0
    }
    fn event_aggregate(event: &ChoreEvent) -> Uuid {
        event.chore_id().0
    }
    fn command_type(command: &ChoreCommand) -> &'static str {
        command.type_name()
    }
    fn event_type(event: &ChoreEvent) -> &'static str {
        event.type_name()
    }
    fn is_internal(command: &ChoreCommand) -> bool {
        command.is_internal()
    }
    fn creates(command: &ChoreCommand) -> bool {
        matches!(
            command,
            ChoreCommand::ScheduleChore(_) | ChoreCommand::ScheduleNextChore(_)
        )
    }
    fn version(state: &ChoreState) -> u32 {
        state.version
    }
    fn decide(
        state: &ChoreState,
        command: &ChoreCommand,
        ctx: &Context,
    ) -> Result<Vec<ChoreEvent>, ChoreRule> {
        decide(state, command, ctx)
    }
    fn evolve(state: ChoreState, event: &ChoreEvent) -> ChoreState {
        evolve(state, event)
    }
    /// A scheduled chore starts its process; a closed one wakes it (to stop waiting,
    /// and to schedule the next occurrence of a recurring chore).
    fn job(event: &ChoreEvent) -> Option<JobKind> {
        match event {
            ChoreEvent::ChoreScheduled { .. } => Some(JobKind::Start),
            ChoreEvent::ChoreCompleted { .. } | ChoreEvent::ChoreSkipped { .. } => {
                Some(JobKind::Wake)
            }
            _ => None,
        }
    }
    fn refusals() -> Vec<RefusalInfo> {
        ChoreRefusal::iter()
            .map(|r| RefusalInfo {
                code: r.code(),
                conflict: r.is_conflict(),
                sentence: r.sentence(),
            })
            .collect()
    }
}
