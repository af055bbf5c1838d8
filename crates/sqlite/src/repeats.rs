//! Repeated identical warnings, rate limited: a failure that lasts (a full disk, a
//! read-only log) would otherwise log the same line every 250 ms from the checkpointer.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one repeated message is logged.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);

/// Admits a message the first time, then once per window while it repeats.
#[derive(Debug, Default)]
pub(crate) struct Repeats {
    /// The last message admitted, when, and how many identical ones were held back since.
    last: Mutex<Option<(String, Instant, u64)>>,
}

impl Repeats {
    /// `Some(held back)` when `message` should be logged now (with how many identical
    /// messages were not logged since the last time), `None` to stay quiet.
    pub(crate) fn admit(&self, message: &str, now: Instant) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match last.as_mut() {
            Some((previous, at, held)) if previous == message => {
                if now.duration_since(*at) < WINDOW {
                    *held += 1;
                    return None;
                }
                let held_back = *held;
                *at = now;
                *held = 0;
                Some(held_back)
            }
            _ => {
                *last = Some((message.to_owned(), now, 0));
                Some(0)
            }
        }
    }

    /// The failure cleared: the next message is logged at once.
    pub(crate) fn clear(&self) -> bool {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_message_is_admitted_once_per_window_with_the_count_held_back() {
        let r = Repeats::default();
        let t0 = Instant::now();
        assert_eq!(r.admit("disk full", t0), Some(0));
        // Every 250 ms for just under a window: all held back.
        let mut t = t0;
        for _ in 0..239 {
            t += Duration::from_millis(250);
            assert_eq!(r.admit("disk full", t), None);
        }
        assert_eq!(r.admit("disk full", t0 + WINDOW), Some(239));
        assert_eq!(r.admit("disk full", t0 + WINDOW), None);
        // Another message is news.
        assert_eq!(r.admit("read-only", t0 + WINDOW), Some(0));
        assert!(r.clear());
        assert_eq!(r.admit("read-only", t0 + WINDOW), Some(0), "after clearing");
    }
}
