//! Membership changes: a household is created (or its time zone changed), a member
//! joins, is removed, leaves, or has their role changed. Each is one function here, which checks the role rules,
//! asks the directory (which keeps the last-owner rule atomically), and then makes the
//! change felt at once on this node: the cached answers about that member are
//! forgotten and their sockets closed with the change's close code. Other nodes see it
//! when their room of the household folds its event (`Rooms`: `follow_membership`), and
//! at the latest within the membership cache's lifetime (`Settings::membership_ttl`),
//! through their open sockets' periodic checks.
//!
//! Then the change is recorded in the household's log (`hearth_core::membership`), so
//! every open board sees it and the history says who did it. The directory is the
//! authority and the log follows it: the record is appended right after the directory
//! change, as its own command (ARCHITECTURE.md, "Membership events"). A record that is
//! lost (the store down, a crash in between) leaves the directory ahead of the log until
//! the next reconciliation ([`reconcile`]: after every change and whenever the members
//! are listed) records what the log lacks.
//!
//! The role rules (DESIGN.md section 9): owners invite, remove and change roles; any
//! member may leave; a household keeps at least one owner. Each refusal has its code
//! in [`crate::wire::codes`].

use crate::app::AppState;
use crate::http::{ApiError, directory_error};
use crate::rooms::Kick;
use crate::wire::codes;
use axum::http::StatusCode;
use hearth_core::membership::Change;
use hearth_core::ports::{Household, Member, Role};
use hearth_core::{Dispatched, HouseholdId, MemberId, ServiceError};

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
    let joined = Change::Joined {
        member: &owner,
        invited_by: None,
    };
    record(app, id, joined).await;
    Ok(())
}

/// `actor` (an owner) sets their household's time zone to `zone` (checked here: an
/// unknown name changes nothing). Members learn it when they next read the household
/// (`GET /households/{id}`: the web app does at each connect).
pub(crate) async fn set_time_zone(
    app: &AppState,
    actor: &Member,
    zone: &str,
) -> Result<Household, ApiError> {
    owner_only(actor, "change the household's time zone")?;
    let zone = crate::http::check_time_zone("timeZone", zone)?;
    app.directory
        .set_time_zone(actor.household, &zone)
        .await
        .map_err(directory_error)
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
    let joined = Change::Joined {
        member: &member,
        invited_by,
    };
    record(app, household, joined).await;
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
    let change = Change::Removed {
        member: &removed,
        by: actor.id,
    };
    record(app, actor.household, change).await;
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
    record(app, actor.household, Change::Left { member: &left }).await;
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
    let change = Change::RoleChanged {
        member: &changed,
        by: actor.id,
    };
    record(app, actor.household, change).await;
    Ok(changed)
}

/// Records a change the directory has made in the household's log, hands its events to
/// this node's rooms, then reconciles the log with the directory. Never fails the
/// change: the directory holds it; what the log missed, a later reconciliation records.
async fn record(app: &AppState, household: HouseholdId, change: Change<'_>) {
    let recorded = app.service.record_membership(change).await;
    offer(app, household, recorded);
    reconcile(app, household).await;
}

/// Records what the household's log lacks against the directory's members
/// (`Service::reconcile_membership`).
pub(crate) async fn reconcile(app: &AppState, household: HouseholdId) {
    match app
        .service
        .reconcile_membership(app.directory.as_ref(), household)
        .await
    {
        Ok(None) => {}
        Ok(Some(dispatched)) => offer(app, household, Ok(dispatched)),
        Err(e) => tracing::warn!(%household, error = %e, "membership not reconciled"),
    }
}

/// Hands a record's events to this node's rooms (other nodes read them at the doorbell).
fn offer(app: &AppState, household: HouseholdId, recorded: Result<Dispatched, ServiceError>) {
    match recorded {
        Ok(Dispatched::Accepted { events, .. }) => app.rooms.offer(household, events),
        Ok(Dispatched::Duplicate(_)) => {}
        Ok(Dispatched::Rejected(refused)) => {
            tracing::error!(%household, %refused, "a membership record was refused");
        }
        Err(e) => tracing::warn!(
            %household, error = %e,
            "a membership change is not in the log yet: the next reconciliation records it"
        ),
    }
}
