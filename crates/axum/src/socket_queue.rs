//! What a room hands one socket: the batches of events to send (a bounded queue) and,
//! once, why the room closes it (a [`Kick`]). One small allocation per socket, and none
//! more until a batch is queued: an idle socket holds one of these for its life, and the
//! tokio channels it replaces cost about 1.4 KiB each time (an mpsc channel allocates its
//! first block of 32 slots at creation, a watch channel its eight-way notifier).
//!
//! One room (the sender, [`ToSocket`]) and one socket task (the receiver, [`FromRoom`]).
//! The state is under a mutex; each side's waits are a [`Notify`] whose permit is kept
//! when nobody waits, and every wait checks the state first, so no wake-up is lost.

use crate::rooms::{Batch, Kick};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// A socket's queue from its room: at most `capacity` batches wait (at least one).
pub(crate) fn channel(capacity: usize) -> (ToSocket, FromRoom) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            batches: VecDeque::new(),
            capacity: capacity.max(1),
            kick: None,
            room_gone: false,
            socket_gone: false,
        }),
        batch: Notify::new(),
        kick: Notify::new(),
    });
    (ToSocket(shared.clone()), FromRoom(shared))
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// A batch was queued, or the room let go.
    batch: Notify,
    /// A kick was set.
    kick: Notify,
}

#[derive(Debug)]
struct State {
    batches: VecDeque<Batch>,
    capacity: usize,
    kick: Option<Kick>,
    /// The room dropped its end: no batch will come.
    room_gone: bool,
    /// The socket dropped its end: batches are refused.
    socket_gone: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why a batch was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `capacity` batches are waiting: the socket is a slow consumer.
    Full,
    /// The socket is gone.
    Closed,
}

/// The room's end.
#[derive(Debug)]
pub(crate) struct ToSocket(Arc<Shared>);

impl ToSocket {
    /// Queues a batch, never waiting.
    pub fn try_send(&self, batch: Batch) -> Result<(), Refused> {
        {
            let mut state = self.0.lock();
            if state.socket_gone {
                return Err(Refused::Closed);
            }
            if state.batches.len() >= state.capacity {
                return Err(Refused::Full);
            }
            state.batches.push_back(batch);
        }
        self.0.batch.notify_one();
        Ok(())
    }

    /// Tells the socket to close, with `kick`'s code (a later kick replaces it).
    pub fn kick(&self, kick: Kick) {
        self.0.lock().kick = Some(kick);
        self.0.kick.notify_one();
    }

    /// The kick the socket was given, if any.
    pub fn kicked(&self) -> Option<Kick> {
        self.0.lock().kick
    }
}

impl Drop for ToSocket {
    fn drop(&mut self) {
        self.0.lock().room_gone = true;
        self.0.batch.notify_one();
    }
}

/// The socket's end.
#[derive(Debug)]
pub(crate) struct FromRoom(Arc<Shared>);

impl FromRoom {
    /// The next batch, in the order queued; None once the room let go and none is left.
    pub async fn recv(&self) -> Option<Batch> {
        loop {
            {
                let mut state = self.0.lock();
                if let Some(batch) = state.batches.pop_front() {
                    return Some(batch);
                }
                if state.room_gone {
                    return None;
                }
            }
            self.0.batch.notified().await;
        }
    }

    /// Returns once the room kicked the socket (at once if it did already).
    pub async fn until_kicked(&self) {
        loop {
            if self.kick().is_some() {
                return;
            }
            self.0.kick.notified().await;
        }
    }

    /// The kick the socket was given, if any.
    pub fn kick(&self) -> Option<Kick> {
        self.0.lock().kick
    }
}

impl Drop for FromRoom {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.socket_gone = true;
        // What waits is dropped with the socket.
        state.batches = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;
    use crate::rooms::Pushed;
    use std::time::Duration;

    fn batch(seq: u64) -> Batch {
        Arc::from(vec![Pushed {
            seq,
            text: format!("{seq}").into(),
        }])
    }

    /// The bound: `capacity` batches wait, the next is refused as full (the room then
    /// kicks a slow consumer); one taken makes room for one.
    #[tokio::test]
    async fn past_its_capacity_a_batch_is_refused_as_full() {
        let (to, from) = channel(2);
        to.try_send(batch(1)).unwrap();
        to.try_send(batch(2)).unwrap();
        assert_eq!(to.try_send(batch(3)), Err(Refused::Full));
        assert_eq!(from.recv().await.unwrap()[0].seq, 1);
        to.try_send(batch(3)).unwrap();
        assert_eq!(to.try_send(batch(4)), Err(Refused::Full));
        assert_eq!(from.recv().await.unwrap()[0].seq, 2);
        assert_eq!(from.recv().await.unwrap()[0].seq, 3);
        // A capacity of 0 is taken as 1.
        let (to, _from) = channel(0);
        to.try_send(batch(1)).unwrap();
        assert_eq!(to.try_send(batch(2)), Err(Refused::Full));
    }

    #[tokio::test(start_paused = true)]
    async fn a_socket_gone_refuses_batches_and_a_room_gone_ends_the_queue_after_its_batches() {
        let (to, from) = channel(4);
        drop(from);
        assert_eq!(to.try_send(batch(1)), Err(Refused::Closed));

        let (to, from) = channel(4);
        to.try_send(batch(1)).unwrap();
        drop(to);
        assert_eq!(from.recv().await.unwrap()[0].seq, 1);
        let end = tokio::time::timeout(Duration::from_secs(1), from.recv()).await;
        assert!(end.expect("ended").is_none());
        assert_eq!(from.kick(), None);
    }

    /// A waiting socket wakes for a batch or a kick given while it waits, and for one
    /// given before it started to wait.
    #[tokio::test(start_paused = true)]
    async fn a_batch_or_a_kick_wakes_the_socket_whenever_it_comes() {
        let (to, from) = channel(4);
        let from = Arc::new(from);
        let waiting = tokio::spawn({
            let from = from.clone();
            async move { from.recv().await.map(|b| b[0].seq) }
        });
        tokio::task::yield_now().await;
        to.try_send(batch(7)).unwrap();
        let woken = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert_eq!(woken.expect("woken by the batch").unwrap(), Some(7));

        let kicked = tokio::spawn({
            let from = from.clone();
            async move {
                from.until_kicked().await;
                from.kick()
            }
        });
        tokio::task::yield_now().await;
        to.kick(Kick::SlowConsumer);
        let woken = tokio::time::timeout(Duration::from_secs(1), kicked).await;
        assert_eq!(
            woken.expect("woken by the kick").unwrap(),
            Some(Kick::SlowConsumer)
        );
        assert_eq!(to.kicked(), Some(Kick::SlowConsumer));
        // Already kicked: returns at once, whatever the waits before.
        tokio::time::timeout(Duration::from_secs(1), from.until_kicked())
            .await
            .unwrap();
        // A batch queued before the wait is received at once.
        to.try_send(batch(8)).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(1), from.recv())
            .await
            .unwrap();
        assert_eq!(got.unwrap()[0].seq, 8);
    }
}
