//! Membership as a household domain: who joined, was removed, left, or had their role
//! changed, and who did it, as events in the household's log (issue 14), so every
//! open board sees a change live and `since` replay and the history show it.
//!
//! The directory (`ports::Directory`) stays the authority for who is in: it applies a
//! change atomically (the last-owner rule), and the server then records the change here
//! (`hearth-axum`'s `changes.rs`, through [`crate::membership`]). The log follows the directory, never the other way:
//! every command here is internal (only the server sends them, as the system, naming
//! the member who acted in `by`), and each is idempotent by the roster's state, so a
//! retried or repeated recording adds nothing. [`reconcile`] compares the roster with
//! the directory's list and names what the log has not recorded yet: how a change
//! whose recording was lost (a crash between the directory and the log) is healed.
//!
//! One aggregate per household: its roster, whose id is the household's. The platform
//! records changes through [`crate::membership`], so no adapter names this domain.

use crate::contracts::Actor;
use crate::domain::{Context, Domain, JobKind, RefusalInfo};
use crate::ids::{HouseholdId, MemberId};
use crate::ports::{Member, Role};
use crate::registry::DomainId;
use serde::{Deserialize, Serialize};
use strum::IntoEnumIterator;
use uuid::Uuid;

/// Commands of the roster: all internal, sent by the server after the directory
/// applied the change.
#[derive(
    Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", content = "payload")]
pub enum MemberCommand {
    /// A member joined: the household's first owner at its creation, or by invite.
    RecordJoined(RecordJoined),
    /// An owner removed a member.
    RecordRemoved(RecordDeparture),
    /// A member left.
    RecordLeft(RecordDeparture),
    /// An owner changed a member's role.
    RecordRoleChanged(RecordRoleChanged),
    /// The directory's list of current members: records what the roster lacks.
    ReconcileMembers(ReconcileMembers),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordJoined {
    pub household_id: HouseholdId,
    pub member_id: MemberId,
    pub name: String,
    pub role: Role,
    /// Who made the invite (none for the household's first owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub invited_by: Option<MemberId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordDeparture {
    pub household_id: HouseholdId,
    pub member_id: MemberId,
    pub name: String,
    /// Who did it: the owner who removed them, or the member who left.
    pub by: MemberId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordRoleChanged {
    pub household_id: HouseholdId,
    pub member_id: MemberId,
    pub name: String,
    pub role: Role,
    pub by: MemberId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReconcileMembers {
    pub household_id: HouseholdId,
    /// The roster's version the comparison was made at: at any other version the
    /// command records nothing (something was recorded since; compare again).
    pub at_version: u32,
    /// The directory's current members, read after the roster was.
    pub members: Vec<Listed>,
}

/// A current member as the directory lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listed {
    pub member_id: MemberId,
    pub name: String,
    pub role: Role,
}

impl From<&Member> for Listed {
    fn from(m: &Member) -> Self {
        Self {
            member_id: m.id,
            name: m.name.clone(),
            role: m.role,
        }
    }
}

impl MemberCommand {
    pub fn household_id(&self) -> HouseholdId {
        match self {
            MemberCommand::RecordJoined(c) => c.household_id,
            MemberCommand::RecordRemoved(c) | MemberCommand::RecordLeft(c) => c.household_id,
            MemberCommand::RecordRoleChanged(c) => c.household_id,
            MemberCommand::ReconcileMembers(c) => c.household_id,
        }
    }

    pub fn type_name(&self) -> &'static str {
        self.into()
    }

    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;
}

/// Events of the roster. `by: null` means the change was found by reconciling the log
/// with the directory, not recorded as it happened.
#[derive(
    Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", content = "payload")]
pub enum MemberEvent {
    #[serde(rename_all = "camelCase")]
    MemberJoined {
        household_id: HouseholdId,
        member_id: MemberId,
        name: String,
        role: Role,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "ts", ts(optional))]
        invited_by: Option<MemberId>,
    },
    #[serde(rename_all = "camelCase")]
    MemberRemoved {
        household_id: HouseholdId,
        member_id: MemberId,
        name: String,
        by: Option<MemberId>,
    },
    #[serde(rename_all = "camelCase")]
    MemberLeft {
        household_id: HouseholdId,
        member_id: MemberId,
        name: String,
    },
    #[serde(rename_all = "camelCase")]
    MemberRoleChanged {
        household_id: HouseholdId,
        member_id: MemberId,
        name: String,
        role: Role,
        by: Option<MemberId>,
    },
}

impl MemberEvent {
    pub fn household_id(&self) -> HouseholdId {
        match self {
            MemberEvent::MemberJoined { household_id, .. }
            | MemberEvent::MemberRemoved { household_id, .. }
            | MemberEvent::MemberLeft { household_id, .. }
            | MemberEvent::MemberRoleChanged { household_id, .. } => *household_id,
        }
    }

    pub fn member_id(&self) -> MemberId {
        match self {
            MemberEvent::MemberJoined { member_id, .. }
            | MemberEvent::MemberRemoved { member_id, .. }
            | MemberEvent::MemberLeft { member_id, .. }
            | MemberEvent::MemberRoleChanged { member_id, .. } => *member_id,
        }
    }

    pub fn type_name(&self) -> &'static str {
        self.into()
    }

    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;
}

/// Schema version of every roster event payload written today.
pub const MEMBER_EVENT_SCHEMA_VERSION: u32 = 1;
/// Schema version of [`RosterState`] snapshots.
pub const MEMBER_SNAPSHOT_SCHEMA_VERSION: u32 = 1;

/// A member as the roster knows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub id: MemberId,
    pub name: String,
    pub role: Role,
    /// Removed or left: ids are never reused, so a departure is final.
    pub gone: bool,
}

/// The roster: every member the log has recorded, in the order they joined.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RosterState {
    pub version: u32,
    pub members: Vec<Entry>,
}

impl RosterState {
    pub fn entry(&self, id: MemberId) -> Option<&Entry> {
        self.members.iter().find(|m| m.id == id)
    }
}

pub fn evolve(mut state: RosterState, event: &MemberEvent) -> RosterState {
    state.version += 1;
    let id = event.member_id();
    match event {
        MemberEvent::MemberJoined { name, role, .. } => {
            if state.entry(id).is_none() {
                state.members.push(Entry {
                    id,
                    name: name.clone(),
                    role: *role,
                    gone: false,
                });
            }
        }
        MemberEvent::MemberRemoved { name, .. } | MemberEvent::MemberLeft { name, .. } => {
            match state.members.iter_mut().find(|m| m.id == id) {
                Some(entry) => entry.gone = true,
                // Recorded before the log had their joining (a household older than
                // membership events): remembered as gone all the same.
                None => state.members.push(Entry {
                    id,
                    name: name.clone(),
                    role: Role::Member,
                    gone: true,
                }),
            }
        }
        MemberEvent::MemberRoleChanged { name, role, .. } => {
            match state.members.iter_mut().find(|m| m.id == id) {
                Some(entry) => entry.role = *role,
                None => state.members.push(Entry {
                    id,
                    name: name.clone(),
                    role: *role,
                    gone: false,
                }),
            }
        }
    }
    state
}

/// A broken roster rule. The variant's name, in snake case, is the stable code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, strum::EnumDiscriminants)]
#[strum_discriminants(
    name(MemberRefusal),
    derive(
        Hash,
        strum::IntoStaticStr,
        strum::EnumString,
        strum::VariantNames,
        strum::EnumIter
    ),
    strum(serialize_all = "snake_case")
)]
pub enum MemberRule {
    #[error(
        "{command} records a change the directory made; members change membership through the households API"
    )]
    MembershipRecordedByServer { command: &'static str },
}

impl MemberRefusal {
    pub fn code(self) -> &'static str {
        self.into()
    }

    pub fn is_conflict(self) -> bool {
        false
    }

    pub fn sentence(self) -> &'static str {
        match self {
            MemberRefusal::MembershipRecordedByServer => {
                "Membership changes are made from the members list."
            }
        }
    }
}

impl crate::domain::Rule for MemberRule {
    fn code(&self) -> &'static str {
        MemberRefusal::from(self).code()
    }
    fn is_conflict(&self) -> bool {
        MemberRefusal::from(self).is_conflict()
    }
}

/// What a recording means for the roster: the events the log lacks, none when it has
/// them already (so recording twice adds nothing).
pub fn decide(
    state: &RosterState,
    command: &MemberCommand,
    ctx: &Context,
) -> Result<Vec<MemberEvent>, MemberRule> {
    if matches!(ctx.actor, Actor::Member { .. }) {
        return Err(MemberRule::MembershipRecordedByServer {
            command: command.type_name(),
        });
    }
    let household_id = command.household_id();
    Ok(match command {
        MemberCommand::RecordJoined(c) => match state.entry(c.member_id) {
            Some(_) => vec![],
            None => vec![MemberEvent::MemberJoined {
                household_id,
                member_id: c.member_id,
                name: c.name.clone(),
                role: c.role,
                invited_by: c.invited_by,
            }],
        },
        MemberCommand::RecordRemoved(c) | MemberCommand::RecordLeft(c)
            if state.entry(c.member_id).is_some_and(|m| m.gone) =>
        {
            vec![]
        }
        MemberCommand::RecordRemoved(c) => vec![MemberEvent::MemberRemoved {
            household_id,
            member_id: c.member_id,
            name: c.name.clone(),
            by: Some(c.by),
        }],
        MemberCommand::RecordLeft(c) => vec![MemberEvent::MemberLeft {
            household_id,
            member_id: c.member_id,
            name: c.name.clone(),
        }],
        MemberCommand::RecordRoleChanged(c) => match state.entry(c.member_id) {
            Some(m) if m.gone || m.role == c.role => vec![],
            _ => vec![MemberEvent::MemberRoleChanged {
                household_id,
                member_id: c.member_id,
                name: c.name.clone(),
                role: c.role,
                by: Some(c.by),
            }],
        },
        MemberCommand::ReconcileMembers(c) if c.at_version != state.version => vec![],
        MemberCommand::ReconcileMembers(c) => reconcile(state, household_id, &c.members),
    })
}

/// What the roster lacks against the directory's current members `listed` (read after
/// the roster): a listed member it does not know joined; one whose role differs had it
/// changed; one it has as a member but the directory no longer lists is gone (the log
/// records a joining only after the directory made it, so a member the roster has and
/// the directory lacks has left or been removed). Empty when they agree.
pub fn reconcile(
    state: &RosterState,
    household_id: HouseholdId,
    listed: &[Listed],
) -> Vec<MemberEvent> {
    let mut events = Vec::new();
    for l in listed {
        match state.entry(l.member_id) {
            None => events.push(MemberEvent::MemberJoined {
                household_id,
                member_id: l.member_id,
                name: l.name.clone(),
                role: l.role,
                invited_by: None,
            }),
            Some(m) if !m.gone && m.role != l.role => events.push(MemberEvent::MemberRoleChanged {
                household_id,
                member_id: l.member_id,
                name: l.name.clone(),
                role: l.role,
                by: None,
            }),
            Some(_) => {}
        }
    }
    for m in state.members.iter().filter(|m| !m.gone) {
        if !listed.iter().any(|l| l.member_id == m.id) {
            events.push(MemberEvent::MemberRemoved {
                household_id,
                member_id: m.id,
                name: m.name.clone(),
                by: None,
            });
        }
    }
    events
}

/// The membership domain: one roster per household (stored as `roster`).
#[derive(Clone, Copy, Debug)]
pub struct People;

impl Domain for People {
    const ID: DomainId = DomainId::People;
    const EVENT_SCHEMA_VERSION: u32 = MEMBER_EVENT_SCHEMA_VERSION;
    const SNAPSHOT_SCHEMA_VERSION: u32 = MEMBER_SNAPSHOT_SCHEMA_VERSION;
    type Command = MemberCommand;
    type Event = MemberEvent;
    type State = RosterState;
    type Rule = MemberRule;
    const COMMAND_TYPES: &'static [&'static str] = MemberCommand::TYPES;
    /// None: membership changes go through the households API and the directory.
    const MEMBER_COMMAND_TYPES: &'static [&'static str] = &[];
    const EVENT_TYPES: &'static [&'static str] = MemberEvent::TYPES;

    fn command_aggregate(command: &MemberCommand) -> Uuid {
        command.household_id().0
    }
    fn event_aggregate(event: &MemberEvent) -> Uuid {
        event.household_id().0
    }
    fn command_type(command: &MemberCommand) -> &'static str {
        command.type_name()
    }
    fn event_type(event: &MemberEvent) -> &'static str {
        event.type_name()
    }
    fn is_internal(_: &MemberCommand) -> bool {
        true
    }
    /// Only the first owner's joining starts a roster, and the household may be older
    /// than membership events: never guessed empty.
    fn creates(_: &MemberCommand) -> bool {
        false
    }
    fn version(state: &RosterState) -> u32 {
        state.version
    }
    fn decide(
        state: &RosterState,
        command: &MemberCommand,
        ctx: &Context,
    ) -> Result<Vec<MemberEvent>, MemberRule> {
        decide(state, command, ctx)
    }
    fn evolve(state: RosterState, event: &MemberEvent) -> RosterState {
        evolve(state, event)
    }
    fn job(_: &MemberEvent) -> Option<JobKind> {
        None
    }
    fn refusals() -> Vec<RefusalInfo> {
        MemberRefusal::iter()
            .map(|r| RefusalInfo {
                code: r.code(),
                conflict: r.is_conflict(),
                sentence: r.sentence(),
            })
            .collect()
    }
}
