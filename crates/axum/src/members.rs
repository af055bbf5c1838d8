//! A token proves who someone is only while the directory agrees they belong to the
//! household: every request and socket open asks, and open sockets ask again
//! periodically. Answers are kept for a short time so a busy member costs the directory
//! one lookup per that time, not one per message.

use hearth_core::ports::Directory;
use hearth_core::{HouseholdId, MemberId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Cached answers kept at most; past this the cache starts over (bounds its memory).
const MAX_CACHED: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MembershipError {
    #[error("not (or no longer) a member of this household")]
    NotAMember,
    /// The directory could not answer (logged; the client sees a fixed sentence).
    #[error("the directory is unavailable")]
    Unavailable,
}

#[derive(Debug)]
pub(crate) struct Membership {
    directory: Arc<dyn Directory>,
    /// How long an answer is trusted.
    ttl: Duration,
    cache: Mutex<HashMap<(HouseholdId, MemberId), (Instant, bool)>>,
}

impl Membership {
    pub fn new(directory: Arc<dyn Directory>, ttl: Duration) -> Self {
        Self {
            directory,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `member` belongs to `household` now (as of at most `ttl` ago).
    pub async fn check(
        &self,
        household: HouseholdId,
        member: MemberId,
    ) -> Result<(), MembershipError> {
        let key = (household, member);
        let cached = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .get(&key)
                .filter(|(at, _)| at.elapsed() < self.ttl)
                .map(|(_, is)| *is)
        };
        let is = match cached {
            Some(is) => is,
            None => {
                let found = self
                    .directory
                    .member(household, member)
                    .await
                    .map_err(|e| {
                        tracing::warn!(%household, error = %e, "membership check failed");
                        MembershipError::Unavailable
                    })?
                    .is_some();
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
                cache.insert(key, (Instant::now(), found));
                found
            }
        };
        if is {
            Ok(())
        } else {
            Err(MembershipError::NotAMember)
        }
    }
}
