//! The service's cache of order states: what this process last knew of each order.
//!
//! A cached state is a guess, never the truth. The service decides against it to
//! skip reading the order back from the store, and the store's expected-version
//! check catches any guess that is stale (another process, node or executor
//! appended meanwhile): the append is refused as a version conflict, the entry is
//! dropped and the order is read again. Acceptance therefore never depends on the
//! cache being right; refusals are re-checked against the store before they are
//! recorded (see `OrderService::dispatch`).
//!
//! Bounded by two generations: entries go into the young map; when it is full it
//! becomes the old map (the previous old map is dropped) and a hit in the old map
//! moves the entry back to the young one. At most `2 x half` entries, O(1) per call,
//! and whatever was used recently survives.

use crate::ids::{HouseholdId, OrderId};
use crate::order::OrderState;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

type Key = (HouseholdId, OrderId);

#[derive(Debug)]
pub(crate) struct StateCache {
    half: usize,
    maps: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    young: HashMap<Key, OrderState>,
    old: HashMap<Key, OrderState>,
}

impl StateCache {
    /// Keeps at most about `capacity` orders; 0 keeps none.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            half: capacity / 2,
            maps: Mutex::new(Generations::default()),
        }
    }

    fn maps(&self) -> MutexGuard<'_, Generations> {
        // Every operation leaves the maps consistent, so a panic elsewhere while the
        // lock was held cannot have left them half-updated.
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, tenant: HouseholdId, order: OrderId) -> Option<OrderState> {
        if self.half == 0 {
            return None;
        }
        let mut maps = self.maps();
        let key = (tenant, order);
        if let Some(state) = maps.young.get(&key) {
            return Some(state.clone());
        }
        let state = maps.old.remove(&key)?;
        maps.insert(self.half, key, state.clone());
        Some(state)
    }

    /// Remembers `state` unless a newer version of the order is already known.
    pub(crate) fn put(&self, tenant: HouseholdId, order: OrderId, state: OrderState) {
        if self.half == 0 {
            return;
        }
        let mut maps = self.maps();
        let key = (tenant, order);
        let known = maps
            .young
            .get(&key)
            .or_else(|| maps.old.get(&key))
            .map(|s| s.version);
        if known.is_some_and(|v| v > state.version) {
            return;
        }
        maps.old.remove(&key);
        maps.insert(self.half, key, state);
    }

    pub(crate) fn forget(&self, tenant: HouseholdId, order: OrderId) {
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

impl Generations {
    fn insert(&mut self, half: usize, key: Key, state: OrderState) {
        if self.young.len() >= half && !self.young.contains_key(&key) {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order;
    use uuid::Uuid;

    fn key() -> (HouseholdId, OrderId) {
        (HouseholdId(Uuid::now_v7()), OrderId(Uuid::now_v7()))
    }

    fn at(version: u32) -> OrderState {
        let mut state = order::initial();
        state.version = version;
        state
    }

    #[test]
    fn keeps_the_newest_version_it_was_given() {
        let cache = StateCache::new(8);
        let (h, o) = key();
        cache.put(h, o, at(3));
        cache.put(h, o, at(2));
        assert_eq!(cache.get(h, o).map(|s| s.version), Some(3));
        cache.put(h, o, at(4));
        assert_eq!(cache.get(h, o).map(|s| s.version), Some(4));
        cache.forget(h, o);
        assert_eq!(cache.get(h, o), None);
    }

    #[test]
    fn stays_bounded_and_keeps_what_was_used_recently() {
        let cache = StateCache::new(8);
        let hot = key();
        cache.put(hot.0, hot.1, at(1));
        for _ in 0..100 {
            let (h, o) = key();
            cache.put(h, o, at(1));
            assert!(
                cache.get(hot.0, hot.1).is_some(),
                "a used entry was evicted"
            );
            assert!(cache.len() <= 8, "cache grew to {}", cache.len());
        }
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let cache = StateCache::new(0);
        let (h, o) = key();
        cache.put(h, o, at(1));
        assert_eq!(cache.get(h, o), None);
    }
}
