//! A token proves who someone is only while the directory agrees they belong to the
//! household (and, for a token of a session, that the session still goes on): every
//! request and socket open asks, and open sockets ask again periodically. Answers are
//! kept for a short time, a household's whole roster at a time (its members with their
//! sessions still going, [`Directory::roster`]), so a busy household costs the directory
//! one read per that time, not one per message nor one per member, socket or session; a
//! membership or session change made through this node forgets the answers about that
//! household at once ([`Membership::forget`]).

use hearth_core::ports::{Directory, Enrolled, Member};
use hearth_core::{HouseholdId, MemberId, SessionId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Households whose roster is kept at most; past this the cache starts over (bounds its
/// memory).
const MAX_CACHED: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MembershipError {
    #[error("not (or no longer) a member of this household")]
    NotAMember,
    #[error("the token's session was ended; sign in again")]
    SessionEnded,
    /// The directory could not answer (logged; the client sees a fixed sentence).
    #[error("the directory is unavailable")]
    Unavailable,
}

/// A household's current members with their sessions still going, and when it was read.
type Roster = (Instant, Arc<[Enrolled]>);

#[derive(Debug)]
pub(crate) struct Membership {
    directory: Arc<dyn Directory>,
    /// How long an answer is trusted.
    ttl: Duration,
    /// Each household's roster, as one directory read.
    rosters: Mutex<HashMap<HouseholdId, Roster>>,
}

impl Membership {
    pub fn new(directory: Arc<dyn Directory>, ttl: Duration) -> Self {
        Self {
            directory,
            ttl,
            rosters: Mutex::new(HashMap::new()),
        }
    }

    /// `member` as the directory has them now (as of at most `ttl` ago), if they belong
    /// to `household`, and, when the token names a session, while that session of theirs
    /// goes on.
    pub async fn check(
        &self,
        household: HouseholdId,
        member: MemberId,
        session: Option<SessionId>,
    ) -> Result<Member, MembershipError> {
        let roster = self.roster(household).await.map_err(|e| {
            tracing::warn!(%household, error = %e, "membership check failed");
            MembershipError::Unavailable
        })?;
        let found = roster
            .iter()
            .find(|e| e.member.id == member)
            .ok_or(MembershipError::NotAMember)?;
        if session.is_some_and(|s| !found.sessions.contains(&s)) {
            return Err(MembershipError::SessionEnded);
        }
        Ok(found.member.clone())
    }

    /// The household's roster: the cached one while it is fresh, or one directory read.
    async fn roster(
        &self,
        household: HouseholdId,
    ) -> Result<Arc<[Enrolled]>, hearth_core::ports::DirectoryError> {
        let fresh = self
            .rosters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&household)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, roster)| roster.clone());
        if let Some(roster) = fresh {
            return Ok(roster);
        }
        let roster: Arc<[Enrolled]> = self.directory.roster(household).await?.into();
        let mut rosters = self.rosters.lock().unwrap_or_else(|p| p.into_inner());
        if rosters.len() >= MAX_CACHED {
            rosters.clear();
        }
        rosters.insert(household, (Instant::now(), roster.clone()));
        Ok(roster)
    }

    /// Forgets what was cached about `member`'s household: the next check asks the
    /// directory. Called by every membership change made through this node, and by a
    /// room that folds a membership event made on another.
    pub fn forget(&self, household: HouseholdId, _member: MemberId) {
        self.forget_household(household);
    }

    /// Forgets what was cached about one session's household (its sessions are part of
    /// the household's roster).
    pub fn forget_session(&self, household: HouseholdId, _session: SessionId) {
        self.forget_household(household);
    }

    fn forget_household(&self, household: HouseholdId) {
        self.rosters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&household);
    }
}
