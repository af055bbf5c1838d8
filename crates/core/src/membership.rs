//! The household's membership as events in its log (issue 14): who joined, was removed,
//! left, or had their role changed, and by whom, so every board shows it live and the
//! history says who did what.
//!
//! The directory stays the truth about who may act (it checks the rules, atomically:
//! owners remove and change roles, a household keeps an owner); this domain records
//! each change the directory made, after it made it, as a system command the HTTP layer
//! dispatches (members cannot send these). The roster is one stream per household
//! (its aggregate id is the household id). A third domain built on the same seams as
//! the chore rota, with no durable work.

use crate::domain::{Context, Domain, JobKind, RefusalInfo};
use crate::ids::{HouseholdId, MemberId};
use crate::ports::Role;
use crate::registry::DomainId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use strum::IntoEnumIterator;
use uuid::Uuid;

/// Records of membership changes. All internal: sent by the system after the directory
/// made the change.
#[derive(
    Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", content = "payload")]
pub enum MembershipCommand {
    RecordMemberJoined(MemberJoined),
    RecordMemberRemoved(MemberChange),
    RecordMemberLeft(MemberRef),
    RecordRoleChanged(RoleChange),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberJoined {
    pub household: HouseholdId,
    pub member: MemberId,
    pub name: String,
    pub role: Role,
    /// Who invited them (`None`: the household's creator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub invited_by: Option<MemberId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberChange {
    pub household: HouseholdId,
    pub member: MemberId,
    pub by: MemberId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemberRef {
    pub household: HouseholdId,
    pub member: MemberId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleChange {
    pub household: HouseholdId,
    pub member: MemberId,
    pub role: Role,
    pub by: MemberId,
}

/// What happened to the household's membership.
#[derive(
    Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "type", content = "payload")]
pub enum MembershipEvent {
    MemberJoined(MemberJoined),
    MemberRemoved(MemberChange),
    MemberLeft(MemberRef),
    MemberRoleChanged(RoleChange),
}

impl MembershipCommand {
    pub fn household(&self) -> HouseholdId {
        match self {
            MembershipCommand::RecordMemberJoined(c) => c.household,
            MembershipCommand::RecordMemberRemoved(c) => c.household,
            MembershipCommand::RecordMemberLeft(c) => c.household,
            MembershipCommand::RecordRoleChanged(c) => c.household,
        }
    }

    pub fn type_name(&self) -> &'static str {
        self.into()
    }

    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;
}

impl MembershipEvent {
    pub fn household(&self) -> HouseholdId {
        match self {
            MembershipEvent::MemberJoined(e) => e.household,
            MembershipEvent::MemberRemoved(e) => e.household,
            MembershipEvent::MemberLeft(e) => e.household,
            MembershipEvent::MemberRoleChanged(e) => e.household,
        }
    }

    /// The member the event is about.
    pub fn member(&self) -> MemberId {
        match self {
            MembershipEvent::MemberJoined(e) => e.member,
            MembershipEvent::MemberRemoved(e) => e.member,
            MembershipEvent::MemberLeft(e) => e.member,
            MembershipEvent::MemberRoleChanged(e) => e.member,
        }
    }

    pub fn type_name(&self) -> &'static str {
        self.into()
    }

    pub const TYPES: &'static [&'static str] = <Self as strum::VariantNames>::VARIANTS;
}

/// The roster as the log has it: each member recorded, with their role, and whether
/// they are still in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Roster {
    pub version: u32,
    pub members: BTreeMap<MemberId, Recorded>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    pub role: Role,
    pub present: bool,
}

pub fn evolve(mut roster: Roster, event: &MembershipEvent) -> Roster {
    roster.version += 1;
    match event {
        MembershipEvent::MemberJoined(e) => {
            roster.members.insert(
                e.member,
                Recorded {
                    role: e.role,
                    present: true,
                },
            );
        }
        MembershipEvent::MemberRemoved(MemberChange { member, .. })
        | MembershipEvent::MemberLeft(MemberRef { member, .. }) => {
            if let Some(m) = roster.members.get_mut(member) {
                m.present = false;
            }
        }
        MembershipEvent::MemberRoleChanged(e) => {
            if let Some(m) = roster.members.get_mut(&e.member) {
                m.role = e.role;
            }
        }
    }
    roster
}

/// A record that does not fit the roster the log holds (the directory made the
/// change; the log refuses to record it twice or out of order).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, strum::EnumDiscriminants)]
#[strum_discriminants(
    name(MembershipRefusal),
    derive(Hash, strum::IntoStaticStr, strum::EnumIter),
    strum(serialize_all = "snake_case")
)]
pub enum MembershipRule {
    #[error(
        "{command} is recorded by the system after the directory's change; members cannot send it"
    )]
    MembershipInternalCommand { command: &'static str },
    #[error("member {0} is already recorded as a member")]
    MemberAlreadyRecorded(MemberId),
    #[error("member {0} is not recorded as a current member")]
    MemberNotRecorded(MemberId),
}

impl MembershipRefusal {
    pub fn code(self) -> &'static str {
        self.into()
    }

    pub fn sentence(self) -> &'static str {
        match self {
            MembershipRefusal::MembershipInternalCommand => {
                "Membership changes are made from the members view."
            }
            MembershipRefusal::MemberAlreadyRecorded => "That member is already in the household.",
            MembershipRefusal::MemberNotRecorded => {
                "That person is no longer a member of the household."
            }
        }
    }

    pub fn is_conflict(self) -> bool {
        !matches!(self, MembershipRefusal::MembershipInternalCommand)
    }
}

impl crate::domain::Rule for MembershipRule {
    fn code(&self) -> &'static str {
        MembershipRefusal::from(self).code()
    }

    fn is_conflict(&self) -> bool {
        MembershipRefusal::from(self).is_conflict()
    }
}

pub fn decide(
    roster: &Roster,
    command: &MembershipCommand,
    ctx: &Context,
) -> Result<Vec<MembershipEvent>, MembershipRule> {
    if matches!(ctx.actor, crate::contracts::Actor::Member { .. }) {
        return Err(MembershipRule::MembershipInternalCommand {
            command: command.type_name(),
        });
    }
    let present = |member: &MemberId| roster.members.get(member).is_some_and(|m| m.present);
    let event = match command {
        MembershipCommand::RecordMemberJoined(c) => {
            if roster.members.contains_key(&c.member) {
                return Err(MembershipRule::MemberAlreadyRecorded(c.member));
            }
            MembershipEvent::MemberJoined(c.clone())
        }
        MembershipCommand::RecordMemberRemoved(c) => {
            if !present(&c.member) {
                return Err(MembershipRule::MemberNotRecorded(c.member));
            }
            MembershipEvent::MemberRemoved(c.clone())
        }
        MembershipCommand::RecordMemberLeft(c) => {
            if !present(&c.member) {
                return Err(MembershipRule::MemberNotRecorded(c.member));
            }
            MembershipEvent::MemberLeft(c.clone())
        }
        MembershipCommand::RecordRoleChanged(c) => {
            if !present(&c.member) {
                return Err(MembershipRule::MemberNotRecorded(c.member));
            }
            MembershipEvent::MemberRoleChanged(c.clone())
        }
    };
    Ok(vec![event])
}

/// The membership domain: one roster stream per household.
#[derive(Clone, Copy, Debug)]
pub struct Membership;

impl Domain for Membership {
    const ID: DomainId = DomainId::Membership;
    const EVENT_SCHEMA_VERSION: u32 = 1;
    const SNAPSHOT_SCHEMA_VERSION: u32 = 1;
    type Command = MembershipCommand;
    type Event = MembershipEvent;
    type State = Roster;
    type Rule = MembershipRule;
    const COMMAND_TYPES: &'static [&'static str] = MembershipCommand::TYPES;
    const MEMBER_COMMAND_TYPES: &'static [&'static str] = &[];
    const EVENT_TYPES: &'static [&'static str] = MembershipEvent::TYPES;

    fn command_aggregate(command: &MembershipCommand) -> Uuid {
        command.household().0
    }
    fn event_aggregate(event: &MembershipEvent) -> Uuid {
        event.household().0
    }
    fn command_type(command: &MembershipCommand) -> &'static str {
        command.type_name()
    }
    fn event_type(event: &MembershipEvent) -> &'static str {
        event.type_name()
    }
    fn is_internal(_: &MembershipCommand) -> bool {
        true
    }
    fn creates(_: &MembershipCommand) -> bool {
        false
    }
    fn version(state: &Roster) -> u32 {
        state.version
    }
    fn decide(
        state: &Roster,
        command: &MembershipCommand,
        ctx: &Context,
    ) -> Result<Vec<MembershipEvent>, MembershipRule> {
        decide(state, command, ctx)
    }
    fn evolve(state: Roster, event: &MembershipEvent) -> Roster {
        evolve(state, event)
    }
    fn job(_: &MembershipEvent) -> Option<JobKind> {
        None
    }
    fn refusals() -> Vec<RefusalInfo> {
        MembershipRefusal::iter()
            .map(|r| RefusalInfo {
                code: r.code(),
                conflict: r.is_conflict(),
                sentence: r.sentence(),
            })
            .collect()
    }
}
