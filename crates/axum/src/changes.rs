//! Membership changes: a household is created, a member joins, is removed, leaves, or
//! has their role changed. Each is one function here, which checks the role rules,
//! asks the directory (which keeps the last-owner rule atomically), and then makes the
//! change felt at once on this node: the cached answers about that member are
//! forgotten and their sockets closed with the change's close code. Other nodes see it
//! within the membership cache's lifetime (`Settings::membership_ttl`), through their
//! open sockets' periodic checks.
//!
//! Then the change is recorded in the household's log (the membership domain,
//! `hearth_core::member`), so every open board sees it and the history says who did
//! it. The directory is the authority and the log follows it: the record is appended
//! right after the directory change, as its own command (ARCHITECTURE.md, "Membership
//! events"). A record that is lost (the store down, a crash in between) leaves the
//! directory ahead of the log until the next reconciliation ([`reconcile`]: after every
//! change and whenever the members are listed) records what the log lacks.
//!
//! The role rules (DESIGN.md section 9): owners invite, remove and change roles; any
//! member may leave; a household keeps at least one owner. Each refusal has its code
//! in [`crate::wire::codes`].

use crate::app::AppState;
use crate::http::{ApiError, directory_error};
use crate::rooms::Kick;
use crate::wire::codes;
use axum::http::StatusCode;
use hearth_core::ids::derive;
use hearth_core::member::{
    Listed, MemberCommand, Members, ReconcileMembers, RecordDeparture, RecordJoined,
    RecordRoleChanged,
};
use hearth_core::ports::{Household, Member, Role};
use hearth_core::{
    Actor, CommandEnvelope, CommandId, CommandMetadata, Dispatched, HouseholdId, MemberId,
};

/// Refused unless `actor` is an owner.
pub(crate) fn owner_only(actor: &Member, what: &str) -> Result<(), ApiError> {
    if actor.role == Role::Owner {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            codes::NOT_AN_OWNER,
            format!("only an owner may {what}"),
        ))
    }
}

/// After a change to `member`: this node forgets what it knew and, for a departure,
/// closes their sockets.
fn felt(app: &AppState, household: HouseholdId, member: MemberId, kick: Option<Kick>) {
    app.membership.forget(household, member);
    if let Some(kick) = kick {
        app.rooms.kick(household, Some(member), None, kick);
    }
}

/// A new household with `owner` as its first owner.
pub(crate) async fn create(
    app: &AppState,
    household: Household,
    owner: Member,
) -> Result<(), ApiError> {
    let id = household.id;
    app.directory
        .create_household(household, owner.clone())
        .await
        .map_err(directory_error)?;
    let joined = joined(id, &owner, None);
    record(app, id, joined_id(&owner), joined).await;
    Ok(())
}

fn joined(household: HouseholdId, member: &Member, invited_by: Option<MemberId>) -> MemberCommand {
    MemberCommand::RecordJoined(RecordJoined {
        household_id: household,
        member_id: member.id,
        name: member.name.clone(),
        role: member.role,
        invited_by,
    })
}

/// A member joins once: the id of the record of their joining.
fn joined_id(member: &Member) -> CommandId {
    CommandId(derive(member.id.0, "member/joined"))
}

/// A member departs once: the id of the record of their removal or leaving.
fn departed_id(member: &Member) -> CommandId {
    CommandId(derive(member.id.0, "member/departed"))
}

/// `member` joins `household` with the invite `code`.
pub(crate) async fn join(
    app: &AppState,
    household: HouseholdId,
    code: &str,
    member: Member,
) -> Result<Member, ApiError> {
    let now = app.clock.now();
    // Who made the invite, for the record (the accept below is what decides).
    let invited_by = app
        .directory
        .invite(household, code, now)
        .await
        .ok()
        .map(|i| i.created_by);
    let member = app
        .directory
        .accept_invite(household, code, member, now)
        .await
        .map_err(directory_error)?;
    felt(app, household, member.id, None);
    let command = joined(household, &member, invited_by);
    record(app, household, joined_id(&member), command).await;
    Ok(member)
}

/// `actor` (an owner) removes `target`. An owner removing themselves is leaving.
pub(crate) async fn remove(
    app: &AppState,
    actor: &Member,
    target: MemberId,
) -> Result<Member, ApiError> {
    if target == actor.id {
        return leave(app, actor).await;
    }
    owner_only(actor, "remove a member")?;
    let removed = app
        .directory
        .remove_member(actor.household, target, app.clock.now())
        .await
        .map_err(directory_error)?;
    felt(app, actor.household, target, Some(Kick::Removed));
    let command = MemberCommand::RecordRemoved(departure(&removed, actor.id));
    record(app, actor.household, departed_id(&removed), command).await;
    Ok(removed)
}

/// `actor` leaves their household (refused for its last owner).
pub(crate) async fn leave(app: &AppState, actor: &Member) -> Result<Member, ApiError> {
    let left = app
        .directory
        .remove_member(actor.household, actor.id, app.clock.now())
        .await
        .map_err(directory_error)?;
    felt(app, actor.household, actor.id, Some(Kick::Left));
    let command = MemberCommand::RecordLeft(departure(&left, actor.id));
    record(app, actor.household, departed_id(&left), command).await;
    Ok(left)
}

/// `actor` (an owner) gives `target` the role `role` (an owner may step down while
/// another owner remains).
pub(crate) async fn set_role(
    app: &AppState,
    actor: &Member,
    target: MemberId,
    role: Role,
) -> Result<Member, ApiError> {
    owner_only(actor, "change a member's role")?;
    let changed = app
        .directory
        .set_role(actor.household, target, role)
        .await
        .map_err(directory_error)?;
    felt(app, actor.household, target, None);
    // A member's role may change many times: the record's id names the roster's
    // version it was decided at (a repeat at the same version is one command).
    let version = roster_version(app, actor.household)
        .await
        .unwrap_or_default();
    let id = CommandId(derive(
        actor.household.0,
        &format!("member/{}/role/{:?}/{version}", changed.id, changed.role),
    ));
    let command = MemberCommand::RecordRoleChanged(RecordRoleChanged {
        household_id: actor.household,
        member_id: changed.id,
        name: changed.name.clone(),
        role: changed.role,
        by: actor.id,
    });
    record(app, actor.household, id, command).await;
    Ok(changed)
}

fn departure(member: &Member, by: MemberId) -> RecordDeparture {
    RecordDeparture {
        household_id: member.household,
        member_id: member.id,
        name: member.name.clone(),
        by,
    }
}

async fn roster_version(app: &AppState, household: HouseholdId) -> Option<u32> {
    app.service
        .load::<Members>(household, household.0)
        .await
        .ok()
        .map(|r| r.version)
}

/// Appends a record of a change the directory has made, hands its events to this
/// node's rooms, then reconciles the roster with the directory. Never fails the
/// change: the directory holds it; what the log missed, a later reconciliation records.
async fn record(app: &AppState, household: HouseholdId, id: CommandId, command: MemberCommand) {
    dispatch(app, household, id, command).await;
    reconcile(app, household).await;
}

/// Dispatches a membership record as the system (members cannot send these: the
/// member who acted is in the payload's `by`).
async fn dispatch(app: &AppState, household: HouseholdId, id: CommandId, command: MemberCommand) {
    let envelope = CommandEnvelope {
        id,
        tenant: household,
        command: command.into(),
        metadata: CommandMetadata {
            actor: Actor::System,
            correlation_id: None,
            causation_id: None,
            role: None,
        },
    };
    match app.service.dispatch(envelope).await {
        Ok(Dispatched::Accepted { events, .. }) => app.rooms.offer(household, events),
        Ok(Dispatched::Duplicate(_)) => {}
        Ok(Dispatched::Rejected(refused)) => {
            tracing::error!(%household, command = %id.0, %refused, "membership record refused");
        }
        Err(e) => {
            tracing::warn!(
                %household, command = %id.0, error = %e,
                "membership change not recorded in the log yet: the next reconciliation will"
            );
        }
    }
}

/// Records what the household's log lacks against the directory's current members.
/// The roster is read first, the directory second, and the record applies only at the
/// roster's version it was computed from (`ReconcileMembers::at_version`), so a change
/// recorded in between is never undone: the log only ever shows a state the directory
/// was in.
pub(crate) async fn reconcile(app: &AppState, household: HouseholdId) {
    let Ok(roster) = app.service.load::<Members>(household, household.0).await else {
        return;
    };
    let Ok(members) = app.directory.members(household).await else {
        return;
    };
    let listed: Vec<Listed> = members.iter().map(Listed::from).collect();
    if hearth_core::member::reconcile(&roster, household, &listed).is_empty() {
        return;
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
    dispatch(app, household, id, command).await;
}
