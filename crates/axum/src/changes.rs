//! Membership changes: a household is created (or its time zone changed), a member
//! joins, is removed, leaves, or has their role changed. Each is one function here, which checks the role rules,
//! asks the directory (which keeps the last-owner rule atomically), and then makes the
//! change felt at once on this node: the cached answers about that member are
//! forgotten and their sockets closed with the change's close code. Other nodes see it
//! within the membership cache's lifetime (`Settings::membership_ttl`), through their
//! open sockets' periodic checks.
//!
//! The role rules (DESIGN.md section 9): owners invite, remove and change roles; any
//! member may leave; a household keeps at least one owner. Each refusal has its code
//! in [`crate::wire::codes`].

use crate::app::AppState;
use crate::http::{ApiError, directory_error};
use crate::rooms::Kick;
use crate::wire::codes;
use axum::http::StatusCode;
use hearth_core::ports::{Household, Member, Role};
use hearth_core::{HouseholdId, MemberId};

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
    app.directory
        .create_household(household, owner)
        .await
        .map_err(directory_error)
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
    let member = app
        .directory
        .accept_invite(household, code, member, now)
        .await
        .map_err(directory_error)?;
    felt(app, household, member.id, None);
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
    Ok(changed)
}
