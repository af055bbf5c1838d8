//! A token proves who someone is only while the directory agrees they belong to the
//! household (and, for a token of a session, that the session still goes on): every
//! request and socket open asks, and open sockets ask again periodically. Answers are
//! kept for a short time, a household's whole roster at a time (its members with their
//! sessions still going, [`Directory::roster`]), so a busy household costs the directory
//! one read per that time, not one per message nor one per member, socket or session; a
//! membership or session change made through this node forgets the answers about that
//! household at once ([`Membership::forget`]), and a refusal found in a kept roster is
//! read again before it is given (the member or session may be newer than the copy).

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
        let (roster, cached) = self.roster(household, false).await?;
        match Self::find(&roster, member, session) {
            // A refusal read from a kept roster is read again: the member or the session
            // may be newer than the copy (made through another node, or a moment ago).
            Err(_) if cached => {
                let (roster, _) = self.roster(household, true).await?;
                Self::find(&roster, member, session)
            }
            answer => answer,
        }
    }

    fn find(
        roster: &[Enrolled],
        member: MemberId,
        session: Option<SessionId>,
    ) -> Result<Member, MembershipError> {
        let found = roster
            .iter()
            .find(|e| e.member.id == member)
            .ok_or(MembershipError::NotAMember)?;
        if session.is_some_and(|s| !found.sessions.contains(&s)) {
            return Err(MembershipError::SessionEnded);
        }
        Ok(found.member.clone())
    }

    /// The household's roster, and whether it is a kept copy: the kept one while it is
    /// fresh (unless `reread`), or one directory read.
    async fn roster(
        &self,
        household: HouseholdId,
        reread: bool,
    ) -> Result<(Arc<[Enrolled]>, bool), MembershipError> {
        let kept = self
            .rosters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&household)
            .filter(|(at, _)| !reread && at.elapsed() < self.ttl)
            .map(|(_, roster)| roster.clone());
        if let Some(roster) = kept {
            return Ok((roster, true));
        }
        let roster: Arc<[Enrolled]> = self
            .directory
            .roster(household)
            .await
            .map_err(|e| {
                tracing::warn!(%household, error = %e, "membership check failed");
                MembershipError::Unavailable
            })?
            .into();
        let mut rosters = self.rosters.lock().unwrap_or_else(|p| p.into_inner());
        if rosters.len() >= MAX_CACHED {
            rosters.clear();
        }
        rosters.insert(household, (Instant::now(), roster.clone()));
        Ok((roster, false))
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

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_core::ports::{CredentialHash, Household, Role, Session};
    use hearth_memory::MemoryDirectory;

    fn person(household: HouseholdId, role: Role) -> Member {
        Member {
            household,
            id: MemberId(uuid::Uuid::now_v7()),
            name: "someone".into(),
            role,
            joined_at: chrono::Utc::now(),
        }
    }

    async fn session_of(d: &MemoryDirectory, m: &Member) -> SessionId {
        let id = SessionId(uuid::Uuid::now_v7());
        let session = Session {
            household: m.household,
            id,
            member: m.id,
            device: "test".into(),
            created_at: chrono::Utc::now(),
            last_used_at: chrono::Utc::now(),
        };
        d.create_session(session, &CredentialHash(id.0.to_string()))
            .await
            .unwrap();
        id
    }

    /// A member or session newer than the kept roster (made through another node, which
    /// this node's cache knows nothing of) is let in at once; a refusal still stands.
    #[tokio::test]
    async fn a_member_or_session_newer_than_the_kept_roster_is_let_in() {
        let directory = Arc::new(MemoryDirectory::new());
        let household = HouseholdId(uuid::Uuid::now_v7());
        let owner = person(household, Role::Owner);
        directory
            .create_household(
                Household {
                    id: household,
                    name: "Home".into(),
                    time_zone: "UTC".into(),
                    created_at: chrono::Utc::now(),
                },
                owner.clone(),
            )
            .await
            .unwrap();
        let first = session_of(&directory, &owner).await;
        // A lifetime no test outlasts: the roster read now is kept throughout.
        let membership = Membership::new(directory.clone(), Duration::from_secs(3600));
        assert!(
            membership
                .check(household, owner.id, Some(first))
                .await
                .is_ok()
        );

        // Behind this node's back: a new session, a new member.
        let second = session_of(&directory, &owner).await;
        let newcomer = person(household, Role::Member);
        directory
            .create_invite(hearth_core::ports::Invite {
                household,
                code: "c".into(),
                created_by: owner.id,
                created_at: chrono::Utc::now(),
                expires_at: chrono::Utc::now() + chrono::TimeDelta::hours(1),
            })
            .await
            .unwrap();
        directory
            .accept_invite(household, "c", newcomer.clone(), chrono::Utc::now())
            .await
            .unwrap();
        assert!(
            membership
                .check(household, owner.id, Some(second))
                .await
                .is_ok()
        );
        assert!(membership.check(household, newcomer.id, None).await.is_ok());

        // Refusals are still refusals.
        let stranger = MemberId(uuid::Uuid::now_v7());
        assert_eq!(
            membership.check(household, stranger, None).await,
            Err(MembershipError::NotAMember)
        );
        assert_eq!(
            membership
                .check(household, owner.id, Some(SessionId(uuid::Uuid::now_v7())))
                .await,
            Err(MembershipError::SessionEnded)
        );
    }
}
