//! Membership changes: a household is created, a member joins, is removed, leaves, or
//! has their role changed. Each is one function here, which checks the role rules,
//! asks the directory (which keeps the last-owner rule atomically), and then makes the
//! change felt at once on this node: the cached answers about that member are
//! forgotten and their sockets closed with the change's close code. Other nodes see it
//! within the membership cache's lifetime (`Settings::membership_ttl`), through their
//! open sockets' periodic checks.
//!
//! Each change the directory made is then recorded in the household's log (the
//! membership domain, `hearth_core::membership`), so every board shows it live and the
//! history says who did what. The directory stays the truth about who may act; a record
//! that fails (the store unavailable) is logged and leaves the change in force. A
//! join, a removal and a departure are recorded under ids derived from the member, so
//! recording one twice is one record.
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
use hearth_core::membership::{
    MemberChange, MemberJoined, MemberRef, MembershipCommand, RoleChange,
};
use hearth_core::ports::{Household, Member, Role};
use hearth_core::{Actor, CommandEnvelope, CommandId, Dispatched, HouseholdId, MemberId};

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

/// Records a change the directory made in the household's log, as the system, and
/// hands the events to this node's rooms.
async fn record(app: &AppState, household: HouseholdId, id: CommandId, command: MembershipCommand) {
    let envelope = CommandEnvelope::new(id, household, Actor::System, command);
    match app.service.dispatch(envelope).await {
        Ok(Dispatched::Accepted { events, .. }) => app.rooms.offer(household, events),
        // Recorded before (a repeat), or refused by the roster (logged by the service).
        Ok(Dispatched::Duplicate(_)) => {}
        Ok(Dispatched::Rejected(refused)) => {
            tracing::warn!(%household, code = refused.code, "membership change not recorded: {refused}");
        }
        Err(error) => {
            tracing::warn!(%household, %error, "membership change made but not recorded in the log");
        }
    }
}

/// The id a member's one-off change (joined, removed, left) is recorded under.
fn change_id(member: MemberId, change: &str) -> CommandId {
    CommandId(derive(member.0, &format!("membership/{change}")))
}

/// A new household with `owner` as its first owner.
pub(crate) async fn create(
    app: &AppState,
    household: Household,
    owner: Member,
) -> Result<(), ApiError> {
    let id = household.id;
    let joined = MemberJoined {
        household: id,
        member: owner.id,
        name: owner.name.clone(),
        role: owner.role,
        invited_by: None,
    };
    app.directory
        .create_household(household, owner)
        .await
        .map_err(directory_error)?;
    let command_id = change_id(joined.member, "joined");
    record(
        app,
        id,
        command_id,
        MembershipCommand::RecordMemberJoined(joined),
    )
    .await;
    Ok(())
}

/// `member` joins `household` with the invite `code`.
pub(crate) async fn join(
    app: &AppState,
    household: HouseholdId,
    code: &str,
    member: Member,
) -> Result<Member, ApiError> {
    let now = app.clock.now();
    // Who invited them, for the record (the invite is checked again by the accept).
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
    let joined = MemberJoined {
        household,
        member: member.id,
        name: member.name.clone(),
        role: member.role,
        invited_by,
    };
    let command_id = change_id(member.id, "joined");
    record(
        app,
        household,
        command_id,
        MembershipCommand::RecordMemberJoined(joined),
    )
    .await;
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
    let change = MemberChange {
        household: actor.household,
        member: target,
        by: actor.id,
    };
    let command_id = change_id(target, "removed");
    record(
        app,
        actor.household,
        command_id,
        MembershipCommand::RecordMemberRemoved(change),
    )
    .await;
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
    let gone = MemberRef {
        household: actor.household,
        member: actor.id,
    };
    let command_id = change_id(actor.id, "left");
    record(
        app,
        actor.household,
        command_id,
        MembershipCommand::RecordMemberLeft(gone),
    )
    .await;
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
    let change = RoleChange {
        household: actor.household,
        member: target,
        role,
        by: actor.id,
    };
    // Roles change back and forth: each change is its own record.
    let command_id = CommandId(uuid::Uuid::now_v7());
    record(
        app,
        actor.household,
        command_id,
        MembershipCommand::RecordRoleChanged(change),
    )
    .await;
    Ok(changed)
}
