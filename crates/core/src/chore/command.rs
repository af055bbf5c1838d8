//! Commands on a chore.

use super::ChoreId;
use crate::Timestamp;
use crate::ids::MemberId;
use serde::{Deserialize, Serialize};

/// Commands on a chore. On the wire: `{"type": "ScheduleChore", "payload": {...}}`; the
/// variant's name is the `type`.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantNames,
    strum::EnumDiscriminants,
)]
#[strum_discriminants(
    name(ChoreCommandType),
    derive(Hash, strum::IntoStaticStr, strum::EnumIter)
)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", content = "payload")]
pub enum ChoreCommand {
    // Member commands.
    ScheduleChore(ScheduleChore),
    CompleteChore(ChoreRef),
    SkipChore(SkipChore),
    ProposeSwap(ProposeSwap),
    AcceptSwap(ChoreRef),
    DeclineSwap(ChoreRef),
    // Internal commands: issued only by the chore's process.
    SendChoreReminder(ChoreRef),
    EscalateChore(ChoreRef),
    ScheduleNextChore(ScheduleNextChore),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleChore {
    pub chore_id: ChoreId,
    pub title: String,
    /// Who is to do it.
    pub assignee: MemberId,
    /// When it is due: its reminder fires then.
    pub due_at: Timestamp,
    /// A recurring chore: when done (or skipped), the next one is due this many days
    /// after this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub every_days: Option<u16>,
    /// How long after the reminder an open chore escalates (default
    /// [`super::limits::DEFAULT_ESCALATE_AFTER_MINUTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub escalate_after_minutes: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChoreRef {
    pub chore_id: ChoreId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SkipChore {
    pub chore_id: ChoreId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProposeSwap {
    pub chore_id: ChoreId,
    /// The member asked to take the chore over; they accept or decline.
    pub with: MemberId,
}

/// The next occurrence of a recurring chore, scheduled by the process of the one
/// before it once that one is closed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleNextChore {
    pub chore_id: ChoreId,
    pub previous: ChoreId,
    pub title: String,
    pub assignee: MemberId,
    pub due_at: Timestamp,
    pub every_days: u16,
    pub escalate_after_minutes: u32,
    pub created_by: MemberId,
}

impl ChoreCommand {
    pub fn chore_id(&self) -> ChoreId {
        match self {
            ChoreCommand::ScheduleChore(c) => c.chore_id,
            ChoreCommand::SkipChore(c) => c.chore_id,
            ChoreCommand::ProposeSwap(c) => c.chore_id,
            ChoreCommand::ScheduleNextChore(c) => c.chore_id,
            ChoreCommand::CompleteChore(c)
            | ChoreCommand::AcceptSwap(c)
            | ChoreCommand::DeclineSwap(c)
            | ChoreCommand::SendChoreReminder(c)
            | ChoreCommand::EscalateChore(c) => c.chore_id,
        }
    }

    /// The `type` tag on the wire: the variant's name.
    pub fn type_name(&self) -> &'static str {
        self.into()
    }

    /// Every command type, member ones first.
    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;

    /// Internal commands may only come from the chore's process.
    pub fn is_internal(&self) -> bool {
        ChoreCommandType::from(self).is_internal()
    }
}

impl ChoreCommandType {
    pub fn is_internal(self) -> bool {
        matches!(
            self,
            ChoreCommandType::SendChoreReminder
                | ChoreCommandType::EscalateChore
                | ChoreCommandType::ScheduleNextChore
        )
    }
}
