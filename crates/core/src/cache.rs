//! The service's cache of order states: what this process last knew of each order.
//!
//! A cached state is a guess, never the truth. The service decides against it to
//! skip reading the order back from the store, and the store's expected-version
//! check catches any guess that is stale (another process, node or executor
//! appended meanwhile): the append is refused as a version conflict, the entry is
//! dropped and the order is read again. Acceptance therefore never depends on the
//! cache being right; refusals are re-checked against the store before they are
//! recorded (see `Service::dispatch`).
//!
//! Bounded by two generations: entries go into the young map; when it is full it
//! becomes the old map (the previous old map is dropped) and a hit in the old map
//! moves the entry back to the young one. At most `2 x half` entries, O(1) per call,
//! and whatever was used recently survives.

use crate::ids::HouseholdId;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use uuid::Uuid;

/// A household and an aggregate id (of the cache's domain).
type Key = (HouseholdId, Uuid);

/// One domain's states, each with its version.
#[derive(Debug)]
pub struct StateCache<S> {
    half: usize,
    maps: Mutex<Generations<S>>,
}

#[derive(Debug)]
struct Generations<S> {
    young: HashMap<Key, (u32, S)>,
    old: HashMap<Key, (u32, S)>,
}

impl<S: Clone> StateCache<S> {
    /// Keeps at most about `capacity` orders; 0 keeps none.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            half: capacity / 2,
            maps: Mutex::new(Generations {
                young: HashMap::new(),
                old: HashMap::new(),
            }),
        }
    }

    fn maps(&self) -> MutexGuard<'_, Generations<S>> {
        // Every operation leaves the maps consistent, so a panic elsewhere while the
        // lock was held cannot have left them half-updated.
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, tenant: HouseholdId, order: Uuid) -> Option<S> {
        if self.half == 0 {
            return None;
        }
        let mut maps = self.maps();
        let key = (tenant, order);
        if let Some((_, state)) = maps.young.get(&key) {
            return Some(state.clone());
        }
        let entry = maps.old.remove(&key)?;
        let state = entry.1.clone();
        maps.insert(self.half, key, entry);
        Some(state)
    }

    /// Remembers `state` at `version` unless a newer version is already known.
    pub(crate) fn put(&self, tenant: HouseholdId, order: Uuid, version: u32, state: S) {
        if self.half == 0 {
            return;
        }
        let mut maps = self.maps();
        let key = (tenant, order);
        let known = maps
            .young
            .get(&key)
            .or_else(|| maps.old.get(&key))
            .map(|s| s.0);
        if known.is_some_and(|v| v > version) {
            return;
        }
        maps.old.remove(&key);
        maps.insert(self.half, key, (version, state));
    }

    pub(crate) fn forget(&self, tenant: HouseholdId, order: Uuid) {
        let mut maps = self.maps();
        let key = (tenant, order);
        maps.young.remove(&key);
        maps.old.remove(&key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let maps = self.maps();
        maps.young.len() + maps.old.len()
    }
}

impl<S> Generations<S> {
    fn insert(&mut self, half: usize, key: Key, state: (u32, S)) {
        if self.young.len() >= half && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{self, OrderState};

    fn key() -> (HouseholdId, Uuid) {
        (HouseholdId(Uuid::now_v7()), Uuid::now_v7())
    }

    fn at(version: u32) -> OrderState {
        let mut state = order::initial();
        state.version = version;
        state
    }

    #[test]
    fn keeps_the_newest_version_it_was_given() {
        let cache: StateCache<OrderState> = StateCache::new(8);
        let (h, o) = key();
        cache.put(h, o, 3, at(3));
        cache.put(h, o, 2, at(2));
        assert_eq!(cache.get(h, o).map(|s| s.version), Some(3));
        cache.put(h, o, 4, at(4));
        assert_eq!(cache.get(h, o).map(|s| s.version), Some(4));
        cache.forget(h, o);
        assert_eq!(cache.get(h, o), None);
    }

    #[test]
    fn stays_bounded_and_keeps_what_was_used_recently() {
        let cache: StateCache<OrderState> = StateCache::new(8);
        let hot = key();
        cache.put(hot.0, hot.1, 1, at(1));
        for _ in 0..100 {
            let (h, o) = key();
            cache.put(h, o, 1, at(1));
            assert!(
                cache.get(hot.0, hot.1).is_some(),
                "a used entry was evicted"
            );
            assert!(cache.len() <= 8, "cache grew to {}", cache.len());
        }
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let cache: StateCache<OrderState> = StateCache::new(0);
        let (h, o) = key();
        cache.put(h, o, 1, at(1));
        assert_eq!(cache.get(h, o), None);
    }
}
