//! Events of a chore: the payloads of its stream.

use super::ChoreId;
use crate::Timestamp;
use crate::ids::MemberId;
use serde::{Deserialize, Serialize};

/// Events of a chore. On the wire: `{"type": "ChoreScheduled", "payload": {...}}`.
#[derive(
    Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", content = "payload")]
pub enum ChoreEvent {
    #[serde(rename_all = "camelCase")]
    ChoreScheduled {
        chore_id: ChoreId,
        title: String,
        assignee: MemberId,
        due_at: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        every_days: Option<u16>,
        escalate_after_minutes: u32,
        created_by: MemberId,
        /// The occurrence this one follows (a recurring chore).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        previous: Option<ChoreId>,
    },
    /// The due time came: the assignee was reminded.
    #[serde(rename_all = "camelCase")]
    ChoreReminderSent {
        chore_id: ChoreId,
        assignee: MemberId,
    },
    /// Still open long after its reminder: the household is told.
    #[serde(rename_all = "camelCase")]
    ChoreEscalated {
        chore_id: ChoreId,
        assignee: MemberId,
    },
    #[serde(rename_all = "camelCase")]
    SwapProposed {
        chore_id: ChoreId,
        from: MemberId,
        to: MemberId,
    },
    #[serde(rename_all = "camelCase")]
    SwapAccepted {
        chore_id: ChoreId,
        from: MemberId,
        to: MemberId,
    },
    #[serde(rename_all = "camelCase")]
    SwapDeclined { chore_id: ChoreId, by: MemberId },
    #[serde(rename_all = "camelCase")]
    ChoreCompleted { chore_id: ChoreId, by: MemberId },
    #[serde(rename_all = "camelCase")]
    ChoreSkipped {
        chore_id: ChoreId,
        by: MemberId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        reason: Option<String>,
    },
}

/// Schema version of every chore event payload written today.
pub const CHORE_EVENT_SCHEMA_VERSION: u32 = 1;
/// Schema version of [`super::ChoreState`] snapshots.
pub const CHORE_SNAPSHOT_SCHEMA_VERSION: u32 = 1;

impl ChoreEvent {
    pub fn chore_id(&self) -> ChoreId {
        match self {
            ChoreEvent::ChoreScheduled { chore_id, .. }
            | ChoreEvent::ChoreReminderSent { chore_id, .. }
            | ChoreEvent::ChoreEscalated { chore_id, .. }
            | ChoreEvent::SwapProposed { chore_id, .. }
            | ChoreEvent::SwapAccepted { chore_id, .. }
            | ChoreEvent::SwapDeclined { chore_id, .. }
            | ChoreEvent::ChoreCompleted { chore_id, .. }
            | ChoreEvent::ChoreSkipped { chore_id, .. } => *chore_id,
        }
    }

    /// The `type` tag on the wire: the variant's name.
    pub fn type_name(&self) -> &'static str {
        self.into()
    }

    /// Every event type (the variants, in order).
    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;
}
