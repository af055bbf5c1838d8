//! How the platform records membership changes in a household's log: the seam between
//! the directory (the authority for who is in) and the membership domain
//! ([`crate::people`]). An adapter that changed the directory describes the change as a
//! [`Change`] and calls [`Service::record_membership`]; it reconciles the log with the
//! directory with [`Service::reconcile_membership`]. Adapters reach the domain only
//! through here and the registry's generic types.
//!
//! Each record is a command of the household's roster, dispatched as the system (a
//! member cannot send one: the decider refuses it) with the member who acted in the
//! payload's `by`, under an id derived from what it records, and idempotent by the
//! roster's state: recording a change twice adds nothing.

use crate::contracts::{Actor, CommandEnvelope, EventEnvelope};
use crate::ids::{CommandId, HouseholdId, MemberId, derive};
use crate::people::{
    Listed, MemberCommand, MemberEvent, People, ReconcileMembers, RecordDeparture, RecordJoined,
    RecordRoleChanged, reconcile,
};
use crate::ports::{Directory, DirectoryError, Member};
use crate::registry::Registered;
use crate::service::{Dispatched, Service, ServiceError};

/// A change the directory has made.
#[derive(Clone, Copy, Debug)]
pub enum Change<'a> {
    /// `member` joined: the household's first owner at its creation (`invited_by`:
    /// none), or by an invite.
    Joined {
        member: &'a Member,
        invited_by: Option<MemberId>,
    },
    /// An owner (`by`) removed `member`.
    Removed { member: &'a Member, by: MemberId },
    /// `member` left.
    Left { member: &'a Member },
    /// An owner (`by`) gave `member` the role they now have.
    RoleChanged { member: &'a Member, by: MemberId },
}

/// How a membership event of the log changed a member's standing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Joined,
    Removed,
    Left,
    RoleChanged,
}

/// The member a membership event is about and how their standing changed (`None` for
/// any other event): so that an adapter that sees the event, such as a room on another
/// node, forgets what it cached about that member and closes a departed member's
/// sockets, without naming the domain.
pub fn standing(event: &EventEnvelope) -> Option<(MemberId, Standing)> {
    let event = People::event_of(&event.event)?;
    let standing = match event {
        MemberEvent::MemberJoined { .. } => Standing::Joined,
        MemberEvent::MemberRemoved { .. } => Standing::Removed,
        MemberEvent::MemberLeft { .. } => Standing::Left,
        MemberEvent::MemberRoleChanged { .. } => Standing::RoleChanged,
    };
    Some((event.member_id(), standing))
}

/// Why a reconciliation did not run.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("reading the directory's members: {0}")]
    Directory(#[from] DirectoryError),
}

fn departure(member: &Member, by: MemberId) -> RecordDeparture {
    RecordDeparture {
        household_id: member.household,
        member_id: member.id,
        name: member.name.clone(),
        by,
    }
}

fn system(id: CommandId, household: HouseholdId, command: MemberCommand) -> CommandEnvelope {
    CommandEnvelope::new(id, household, Actor::System, command)
}

impl Service {
    /// Records `change`, which the directory has made, in the household's log. Its id is
    /// derived: from the member for a joining or a departure (each happens once), from
    /// the role and the roster's version for a role change (a member's role may change
    /// many times).
    pub async fn record_membership(&self, change: Change<'_>) -> Result<Dispatched, ServiceError> {
        let (member, id, command) = match change {
            Change::Joined { member, invited_by } => (
                member,
                CommandId(derive(member.id.0, "member/joined")),
                MemberCommand::RecordJoined(RecordJoined {
                    household_id: member.household,
                    member_id: member.id,
                    name: member.name.clone(),
                    role: member.role,
                    invited_by,
                }),
            ),
            Change::Removed { member, by } => (
                member,
                CommandId(derive(member.id.0, "member/departed")),
                MemberCommand::RecordRemoved(departure(member, by)),
            ),
            Change::Left { member } => (
                member,
                CommandId(derive(member.id.0, "member/departed")),
                MemberCommand::RecordLeft(departure(member, member.id)),
            ),
            Change::RoleChanged { member, by } => {
                let household = member.household;
                let version = self.load::<People>(household, household.0).await?.version;
                let label = format!("member/{}/role/{:?}/{version}", member.id, member.role);
                (
                    member,
                    CommandId(derive(household.0, &label)),
                    MemberCommand::RecordRoleChanged(RecordRoleChanged {
                        household_id: household,
                        member_id: member.id,
                        name: member.name.clone(),
                        role: member.role,
                        by,
                    }),
                )
            }
        };
        self.dispatch(system(id, member.household, command)).await
    }

    /// Records what the household's log lacks against the directory's current members:
    /// reads the roster, then the directory, and dispatches a reconciliation only if they
    /// differ; it applies only at the roster's version it was compared at
    /// (`ReconcileMembers::at_version`), so a change recorded in between is never undone
    /// and the log only ever shows a state the directory was in. `Ok(None)`: nothing
    /// to record.
    pub async fn reconcile_membership(
        &self,
        directory: &dyn Directory,
        household: HouseholdId,
    ) -> Result<Option<Dispatched>, ReconcileError> {
        let roster = self.load::<People>(household, household.0).await?;
        let listed: Vec<Listed> = directory
            .members(household)
            .await?
            .iter()
            .map(Listed::from)
            .collect();
        if reconcile(&roster, household, &listed).is_empty() {
            return Ok(None);
        }
        let id = CommandId(derive(
            household.0,
            &format!("member/reconcile/{}", roster.version),
        ));
        let command = MemberCommand::ReconcileMembers(ReconcileMembers {
            household_id: household,
            at_version: roster.version,
            members: listed,
        });
        Ok(Some(self.dispatch(system(id, household, command)).await?))
    }
}
