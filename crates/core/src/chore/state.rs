//! A chore as folded from its events, and its status machine.

use super::{ChoreEvent, ChoreId};
use crate::Timestamp;
use crate::ids::MemberId;
use serde::{Deserialize, Serialize};

/// Where a chore is. Open: `scheduled` (before its due time), `due` (reminded),
/// `overdue` (escalated). Closed: `done`, `skipped`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub enum ChoreStatus {
    Scheduled,
    Due,
    Overdue,
    Done,
    Skipped,
}

impl ChoreStatus {
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ChoreStatus::Scheduled | ChoreStatus::Due | ChoreStatus::Overdue
        )
    }

    /// The status after `event`, from `self` (the one status machine of chores: the
    /// state's fold and the household view both follow it).
    pub fn after(self, event: &ChoreEvent) -> ChoreStatus {
        match event {
            ChoreEvent::ChoreScheduled { .. } => ChoreStatus::Scheduled,
            ChoreEvent::ChoreReminderSent { .. } if self.is_open() => ChoreStatus::Due,
            ChoreEvent::ChoreEscalated { .. } if self.is_open() => ChoreStatus::Overdue,
            ChoreEvent::ChoreCompleted { .. } => ChoreStatus::Done,
            ChoreEvent::ChoreSkipped { .. } => ChoreStatus::Skipped,
            _ => self,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChoreStatus::Scheduled => "scheduled",
            ChoreStatus::Due => "due",
            ChoreStatus::Overdue => "overdue",
            ChoreStatus::Done => "done",
            ChoreStatus::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for ChoreStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A chore that exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Chore {
    pub id: ChoreId,
    pub title: String,
    pub assignee: MemberId,
    pub due_at: Timestamp,
    pub every_days: Option<u16>,
    pub escalate_after_minutes: u32,
    pub created_by: MemberId,
    pub status: ChoreStatus,
    /// A swap asked of this member, not yet answered.
    pub pending_swap: Option<MemberId>,
}

/// The state of one chore stream: `chore` is `None` until it is scheduled.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ChoreState {
    pub version: u32,
    pub chore: Option<Chore>,
}

/// Folds one event into the state. Total: an event that does not fit leaves the chore
/// as it is but counts the version.
pub fn evolve(mut state: ChoreState, event: &ChoreEvent) -> ChoreState {
    state.version += 1;
    if let ChoreEvent::ChoreScheduled {
        chore_id,
        title,
        assignee,
        due_at,
        every_days,
        escalate_after_minutes,
        created_by,
        ..
    } = event
    {
        state.chore = Some(Chore {
            id: *chore_id,
            title: title.clone(),
            assignee: *assignee,
            due_at: *due_at,
            every_days: *every_days,
            escalate_after_minutes: *escalate_after_minutes,
            created_by: *created_by,
            status: ChoreStatus::Scheduled,
            pending_swap: None,
        });
        return state;
    }
    let Some(chore) = state.chore.as_mut() else {
        return state;
    };
    chore.status = chore.status.after(event);
    match event {
        ChoreEvent::SwapProposed { to, .. } => chore.pending_swap = Some(*to),
        ChoreEvent::SwapAccepted { to, .. } => {
            chore.assignee = *to;
            chore.pending_swap = None;
        }
        ChoreEvent::SwapDeclined { .. }
        | ChoreEvent::ChoreCompleted { .. }
        | ChoreEvent::ChoreSkipped { .. } => chore.pending_swap = None,
        _ => {}
    }
    state
}
