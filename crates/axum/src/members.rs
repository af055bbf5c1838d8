//! A token proves who someone is only while the directory agrees they belong to the
//! household (and, for a token of a session, that the session still goes on): every
//! request and socket open asks, and open sockets ask again periodically. Answers are
//! kept for a short time, a household's whole roster at a time, so a busy household
//! costs the directory one lookup per that time, not one per message nor one per member
//! or socket; a membership change made through this node forgets the answers about that
//! household at once ([`Membership::forget`]).

use hearth_core::ports::{Directory, Member};
use hearth_core::{HouseholdId, MemberId, SessionId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Cached answers kept at most (per kind); past this the cache starts over (bounds its
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

type Cached<T> = Mutex<HashMap<T, (Instant, Option<Member>)>>;

/// A household's current members, and when they were read.
type Roster = (Instant, Arc<[Member]>);

#[derive(Debug)]
pub(crate) struct Membership {
    directory: Arc<dyn Directory>,
    /// How long an answer is trusted.
    ttl: Duration,
    /// Each household's current members, as one directory read.
    rosters: Mutex<HashMap<HouseholdId, Roster>>,
    /// A session's answer: the member it belongs to while it goes on.
    sessions: Cached<(HouseholdId, SessionId)>,
}

fn cached<K: std::hash::Hash + Eq>(
    cache: &Cached<K>,
    key: &K,
    ttl: Duration,
) -> Option<Option<Member>> {
    let cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    cache
        .get(key)
        .filter(|(at, _)| at.elapsed() < ttl)
        .map(|(_, found)| found.clone())
}

fn keep<K: std::hash::Hash + Eq>(cache: &Cached<K>, key: K, found: Option<Member>) {
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= MAX_CACHED {
        cache.clear();
    }
    cache.insert(key, (Instant::now(), found));
}

impl Membership {
    pub fn new(directory: Arc<dyn Directory>, ttl: Duration) -> Self {
        Self {
            directory,
            ttl,
            rosters: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
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
        let unavailable = |e: hearth_core::ports::DirectoryError| {
            tracing::warn!(%household, error = %e, "membership check failed");
            MembershipError::Unavailable
        };
        let roster = self.roster(household).await.map_err(unavailable)?;
        let found = roster
            .iter()
            .find(|m| m.id == member)
            .cloned()
            .ok_or(MembershipError::NotAMember)?;
        if let Some(session) = session {
            let key = (household, session);
            let of = match cached(&self.sessions, &key, self.ttl) {
                Some(of) => of,
                None => {
                    let of = match self.directory.session(household, session).await {
                        Ok(Some(s)) if s.member == member => Some(found.clone()),
                        Ok(_) => None,
                        Err(e) => return Err(unavailable(e)),
                    };
                    keep(&self.sessions, key, of.clone());
                    of
                }
            };
            if of.is_none_or(|m| m.id != member) {
                return Err(MembershipError::SessionEnded);
            }
        }
        Ok(found)
    }

    /// The household's current members: the cached roster while it is fresh, or one
    /// directory read.
    async fn roster(
        &self,
        household: HouseholdId,
    ) -> Result<Arc<[Member]>, hearth_core::ports::DirectoryError> {
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
        let roster: Arc<[Member]> = self.directory.members(household).await?.into();
        let mut rosters = self.rosters.lock().unwrap_or_else(|p| p.into_inner());
        if rosters.len() >= MAX_CACHED {
            rosters.clear();
        }
        rosters.insert(household, (Instant::now(), roster.clone()));
        Ok(roster)
    }

    /// Forgets what was cached about `member`'s household (and `member`'s sessions): the
    /// next check asks the directory. Called by every membership change made through
    /// this node.
    pub fn forget(&self, household: HouseholdId, member: MemberId) {
        self.rosters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&household);
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(hh, _), (_, of)| {
                !(*hh == household && of.as_ref().is_none_or(|m| m.id == member))
            });
    }

    /// Forgets what was cached about one session.
    pub fn forget_session(&self, household: HouseholdId, session: SessionId) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(household, session));
    }
}
