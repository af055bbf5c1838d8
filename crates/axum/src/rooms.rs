//! Rooms and the node's fan-out.
//!
//! One task per node subscribes to the [`EventFeed`] and routes each doorbell to the
//! room of its household, if that room has local connections. Each room is a task
//! that owns the household's cursor and projection: on a doorbell it reads the new
//! events from the store once, serializes each once, and hands the batch to every
//! connection's bounded queue with `try_send`. A connection whose queue is full is
//! kicked (it reconnects with `since`); the room never waits for a socket.

use crate::metrics::Metrics;
use crate::wire::ServerMessage;
use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use hearth_core::ports::{EventFeed, EventStore, FeedSignal, StoreError};
use hearth_core::{HouseholdId, HouseholdView};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot, watch};

/// How many events a room or a catch-up reads per store call.
pub(crate) const PAGE: usize = 500;

/// One event, serialized once as `{"event": ...}` for every connection.
#[derive(Debug)]
pub(crate) struct Pushed {
    pub seq: u64,
    pub text: Utf8Bytes,
}

/// What a room hands to a connection's queue: the events of one store read.
pub(crate) type Batch = Arc<[Pushed]>;

/// Why the server closes a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kick {
    /// Its outgoing queue overflowed; reconnect with `since`.
    SlowConsumer,
    /// A new socket with the same `_pk` joined the room.
    Replaced,
}

impl Kick {
    pub fn close_code(self) -> u16 {
        match self {
            Kick::SlowConsumer => 4008,
            Kick::Replaced => 4009,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Kick::SlowConsumer => "slow consumer: outgoing queue overflowed; reconnect with since",
            Kick::Replaced => "replaced by a new connection with the same _pk",
        }
    }
}

/// A connection as its room knows it: keyed by an internal handle, never by `_pk`.
#[derive(Debug)]
pub(crate) struct Member {
    pub handle: u64,
    pub pk: Option<String>,
    pub queue: mpsc::Sender<Batch>,
    pub kick: watch::Sender<Option<Kick>>,
}

/// What a connection gets when it joins: the projection at the room's cursor.
/// Every batch it receives afterwards starts after `seq`.
#[derive(Debug)]
pub(crate) struct Joined {
    pub seq: u64,
    pub state: HouseholdView,
}

#[derive(Debug)]
enum RoomMsg {
    Join {
        member: Member,
        reply: oneshot::Sender<Joined>,
    },
    Leave {
        handle: u64,
    },
}

#[derive(Debug, Clone)]
struct RoomHandle {
    mailbox: mpsc::UnboundedSender<RoomMsg>,
    wake: Arc<Notify>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum JoinError {
    #[error("the room could not load its household: {0}")]
    Unavailable(String),
}

/// The rooms of this node.
#[derive(Debug)]
pub(crate) struct Rooms {
    rooms: Mutex<HashMap<HouseholdId, RoomHandle>>,
    store: Arc<dyn EventStore>,
    metrics: Arc<Metrics>,
    poll: Duration,
}

impl Rooms {
    pub fn new(store: Arc<dyn EventStore>, metrics: Arc<Metrics>, poll: Duration) -> Arc<Self> {
        Arc::new(Self {
            rooms: Mutex::new(HashMap::new()),
            store,
            metrics,
            poll,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<HouseholdId, RoomHandle>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection with its household's room, starting the room if needed.
    pub async fn join(
        self: &Arc<Self>,
        tenant: HouseholdId,
        member: Member,
    ) -> Result<Joined, JoinError> {
        let (reply, joined) = oneshot::channel();
        {
            // Sent under the registry lock: a room only retires under this lock, and
            // only with an empty mailbox, so a join can never reach a retired room.
            let mut rooms = self.lock();
            let handle = rooms
                .entry(tenant)
                .or_insert_with(|| self.start(tenant))
                .clone();
            if let Err(mpsc::error::SendError(RoomMsg::Join { .. })) =
                handle.mailbox.send(RoomMsg::Join { member, reply })
            {
                // The room task died (its store failed): forget it.
                rooms.remove(&tenant);
                return Err(JoinError::Unavailable("room stopped".into()));
            }
        }
        joined
            .await
            .map_err(|_| JoinError::Unavailable("the room could not read the store".into()))
    }

    pub fn leave(&self, tenant: HouseholdId, handle: u64) {
        if let Some(room) = self.lock().get(&tenant) {
            let _ = room.mailbox.send(RoomMsg::Leave { handle });
        }
    }

    fn start(self: &Arc<Self>, tenant: HouseholdId) -> RoomHandle {
        let (mailbox, inbox) = mpsc::unbounded_channel();
        let wake = Arc::new(Notify::new());
        let handle = RoomHandle {
            mailbox,
            wake: wake.clone(),
        };
        self.metrics.rooms.fetch_add(1, Ordering::Relaxed);
        let rooms = self.clone();
        tokio::spawn(async move {
            let mut room = Room {
                tenant,
                view: HouseholdView::new(),
                members: Vec::new(),
                rooms: rooms.clone(),
            };
            room.run(inbox, wake).await;
            rooms.metrics.rooms.fetch_sub(1, Ordering::Relaxed);
        });
        handle
    }

    /// Rings the room of `tenant`, if it has local connections.
    fn ring(&self, tenant: HouseholdId) {
        if let Some(room) = self.lock().get(&tenant) {
            room.wake.notify_one();
        }
    }

    fn ring_all(&self) {
        for room in self.lock().values() {
            room.wake.notify_one();
        }
    }

    /// The node's fan-out: routes the feed's doorbells to the rooms. Subscribe before
    /// serving, so no commit after start-up can be missed; re-subscribes (and makes
    /// every room re-read) if the feed ends.
    pub fn spawn_router(self: &Arc<Self>, feed: Arc<dyn EventFeed>) -> tokio::task::JoinHandle<()> {
        let rooms = self.clone();
        let mut signals = feed.subscribe();
        tokio::spawn(async move {
            loop {
                while let Some(signal) = signals.next().await {
                    match signal {
                        FeedSignal::Committed { tenant, .. } => rooms.ring(tenant),
                        FeedSignal::Resync => rooms.ring_all(),
                    }
                }
                tracing::warn!("event feed ended; subscribing again");
                tokio::time::sleep(Duration::from_millis(200)).await;
                signals = feed.subscribe();
                rooms.ring_all();
            }
        })
    }
}

struct Room {
    tenant: HouseholdId,
    view: HouseholdView,
    members: Vec<Member>,
    rooms: Arc<Rooms>,
}

impl Room {
    async fn run(&mut self, mut inbox: mpsc::UnboundedReceiver<RoomMsg>, wake: Arc<Notify>) {
        if let Err(e) = self.read(false).await {
            tracing::error!(tenant = %self.tenant, error = %e, "room cannot load its household");
            let mut rooms = self.rooms.lock();
            rooms.remove(&self.tenant);
            return;
        }
        // A slow fallback poll covers a dead doorbell.
        let mut poll = tokio::time::interval(self.rooms.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = inbox.recv() => match msg {
                    Some(RoomMsg::Join { member, reply }) => self.join(member, reply),
                    Some(RoomMsg::Leave { handle }) => {
                        self.members.retain(|m| m.handle != handle);
                        if self.members.is_empty() && self.retire(&inbox) {
                            return;
                        }
                    }
                    None => return,
                },
                () = wake.notified() => self.read_logged().await,
                _ = poll.tick() => self.read_logged().await,
            }
        }
    }

    /// Leaves the registry if nobody joins meanwhile (checked under its lock).
    fn retire(&self, inbox: &mpsc::UnboundedReceiver<RoomMsg>) -> bool {
        let mut rooms = self.rooms.lock();
        if !inbox.is_empty() {
            return false;
        }
        rooms.remove(&self.tenant);
        true
    }

    fn join(&mut self, member: Member, reply: oneshot::Sender<Joined>) {
        if let Some(pk) = &member.pk {
            let metrics = &self.rooms.metrics;
            self.members.retain(|old| {
                if old.pk.as_deref() == Some(pk.as_str()) {
                    let _ = old.kick.send(Some(Kick::Replaced));
                    metrics.takeovers.fetch_add(1, Ordering::Relaxed);
                    false
                } else {
                    true
                }
            });
        }
        let joined = Joined {
            seq: self.view.seq,
            state: self.view.clone(),
        };
        if reply.send(joined).is_ok() {
            self.members.push(member);
        }
    }

    async fn read_logged(&mut self) {
        if let Err(e) = self.read(true).await {
            tracing::warn!(tenant = %self.tenant, error = %e, "room cannot read new events; will retry");
        }
    }

    /// Reads every event after the room's cursor, folds it, and (if `push`) hands it
    /// to the members' queues.
    async fn read(&mut self, push: bool) -> Result<(), StoreError> {
        loop {
            let events = self
                .rooms
                .store
                .read_feed(self.tenant, self.view.seq, PAGE)
                .await?;
            let n = events.len();
            if n == 0 {
                return Ok(());
            }
            let mut batch = Vec::with_capacity(if push { n } else { 0 });
            for event in events {
                match self.view.apply(&event) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(gap) => {
                        return Err(StoreError::Corrupt(format!(
                            "household {}: {gap}",
                            self.tenant
                        )));
                    }
                }
                if push {
                    let latency = (chrono::Utc::now() - event.created_at)
                        .to_std()
                        .unwrap_or_default();
                    self.rooms.metrics.observe_fanout(latency.as_secs_f64());
                    let seq = event.seq;
                    let text = ServerMessage::Event(Box::new(event)).to_json();
                    batch.push(Pushed {
                        seq,
                        text: text.into(),
                    });
                }
            }
            if push && !batch.is_empty() {
                self.push(batch.into());
            }
            if n < PAGE {
                return Ok(());
            }
        }
    }

    fn push(&mut self, batch: Batch) {
        let metrics = &self.rooms.metrics;
        let count = batch.len() as u64;
        self.members
            .retain(|member| match member.queue.try_send(batch.clone()) {
                Ok(()) => {
                    metrics.events_pushed.fetch_add(count, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let _ = member.kick.send(Some(Kick::SlowConsumer));
                    metrics.slow_consumers.fetch_add(1, Ordering::Relaxed);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }
}
