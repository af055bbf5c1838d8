//! Rooms and the node's fan-out.
//!
//! One task per node subscribes to the [`EventFeed`] and routes each doorbell to the
//! room of its household, if that room has local connections. Each room is a task
//! that owns the household's cursor and projection: on a doorbell that is ahead of
//! its cursor it reads the new events from the store once, serializes each once,
//! and hands the batch to every connection's bounded queue with `try_send`. A
//! connection whose queue is full is kicked (it reconnects with `since`); the room
//! never waits for a socket.
//!
//! Events committed by this node's own commands do not need the round trip through
//! the store: the command path [offers](Rooms::offer) them to the room, which
//! delivers them at once if they continue its cursor, or holds them until the gap
//! before them is filled (by another offer, or by a read after a doorbell). The
//! store stays the truth: the projection refuses gaps, the doorbell still rings for
//! every commit, and whatever an offer did not cover is read as before. The room
//! then reads only for commits of other nodes and processes, or after a `Resync`
//! and on its fallback poll.

use crate::members::MembershipError;
use crate::metrics::Metrics;
use crate::socket_queue::{Refused, ToSocket};
use crate::wire::ServerMessage;
use axum::extract::ws::Utf8Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use hearth_core::membership::{self, Standing};
use hearth_core::ports::{
    Clock, EventFeed, EventStore, FeedSignal, Member as DirectoryMember, Role, StoreError,
};
use hearth_core::window::{Bound, Older, Window};
use hearth_core::{EventEnvelope, HouseholdId, HouseholdView, MemberId, SessionId};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};

/// How many events a room or a catch-up reads per store call.
pub(crate) const PAGE: usize = 500;

/// Offered events a room holds while waiting for the gap before them to close; past
/// this it drops them (the doorbell's read will bring them).
const HELD: usize = 1024;

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
    /// Its token expired and was not renewed over the socket (found by the recheck).
    TokenExpired,
    /// Its member is found to be no longer a member (by the recheck).
    NotAMember,
    /// Its outgoing queue overflowed; reconnect with `since`.
    SlowConsumer,
    /// A new socket with the same `_pk` joined the room.
    Replaced,
    /// Its member was removed from the household (by an owner).
    Removed,
    /// Its member left the household (from this or another device).
    Left,
    /// Its session was ended (by its member, or after a reused credential).
    SessionEnded,
}

/// Close code: the socket's token expired (and was not renewed over the socket).
pub(crate) const CLOSE_TOKEN_EXPIRED: u16 = 4001;
/// Close code: the member was removed from the household, or is found to be no longer
/// a member; do not reconnect.
pub(crate) const CLOSE_REMOVED: u16 = 4003;
/// Close code: the token's session was ended; do not reconnect with it.
pub(crate) const CLOSE_SESSION_ENDED: u16 = 4004;
/// Close code: the member left the household; do not reconnect.
pub(crate) const CLOSE_LEFT: u16 = 4005;

impl Kick {
    pub fn close_code(self) -> u16 {
        match self {
            Kick::TokenExpired => CLOSE_TOKEN_EXPIRED,
            Kick::NotAMember => CLOSE_REMOVED,
            Kick::SlowConsumer => 4008,
            Kick::Replaced => 4009,
            Kick::Removed => CLOSE_REMOVED,
            Kick::Left => CLOSE_LEFT,
            Kick::SessionEnded => CLOSE_SESSION_ENDED,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Kick::TokenExpired => "the token expired; reconnect with a fresh token",
            Kick::NotAMember => "no longer a member of this household",
            Kick::SlowConsumer => "slow consumer: outgoing queue overflowed; reconnect with since",
            Kick::Replaced => "replaced by a new connection with the same _pk",
            Kick::Removed => "removed from the household",
            Kick::Left => "left the household",
            Kick::SessionEnded => "the session was ended",
        }
    }
}

/// A connection as its room knows it: keyed by an internal handle, never by `_pk`.
#[derive(Debug)]
pub(crate) struct Member {
    pub handle: u64,
    /// Who: a `_pk` takes over only a socket of the same member.
    pub member: hearth_core::MemberId,
    /// The session of its token, if any.
    pub session: Option<hearth_core::SessionId>,
    pub pk: Option<String>,
    /// Its batches, and why the room closes it.
    pub queue: ToSocket,
    /// Its token's expiry and its member's role, shared with the socket.
    pub allowance: Arc<Allowance>,
}

/// What an open socket is allowed, shared by the socket (whose `renew` moves the
/// expiry and whose commands carry the role) and its room (whose recheck closes it
/// at the expiry and refreshes the role).
#[derive(Debug)]
pub(crate) struct Allowance {
    /// The token's expiry (seconds since the epoch): the socket closes then (4001),
    /// unless a `renew` moved it.
    pub expires: AtomicI64,
    /// Whether the member is an owner, as the directory said at the open and at each
    /// recheck since: the role every command of the socket carries (so a command costs
    /// no directory lookup).
    pub owner: AtomicBool,
}

impl Allowance {
    pub fn new(expires: i64, role: Role) -> Arc<Self> {
        Arc::new(Self {
            expires: AtomicI64::new(expires),
            owner: AtomicBool::new(role == Role::Owner),
        })
    }

    pub fn role(&self) -> Role {
        if self.owner.load(Ordering::Relaxed) {
            Role::Owner
        } else {
            Role::Member
        }
    }
}

/// How rooms recheck their open sockets: one timer per room with sockets (none for a
/// room without), each tick closing the sockets whose token expired (4001) and asking
/// the membership cache once per distinct (member, session) of its sockets: 4003 for a
/// member no longer in the household, 4004 for an ended session; a role change is
/// carried into the sockets' [`Allowance`].
#[derive(Debug)]
pub(crate) struct Recheck {
    pub membership: Arc<crate::members::Membership>,
    /// The server's clock: token expiry is by it.
    pub clock: Arc<dyn Clock>,
    /// Every half of the membership cache's lifetime (at least 50 ms): a change another
    /// node made is seen within 1.5 lifetimes (750 ms by default).
    pub every: Duration,
}

impl Recheck {
    pub fn new(
        membership: Arc<crate::members::Membership>,
        clock: Arc<dyn Clock>,
        membership_ttl: Duration,
    ) -> Self {
        Self {
            membership,
            clock,
            every: (membership_ttl / 2).max(Duration::from_millis(50)),
        }
    }
}

/// The answers of one recheck: per distinct (member, session) of the room's sockets.
type Checked = HashMap<(MemberId, Option<SessionId>), Result<DirectoryMember, MembershipError>>;

/// What a connection gets when it joins: the projection at the room's cursor of the
/// household's most recent orders. Every batch it receives afterwards starts after `seq`.
#[derive(Debug)]
pub(crate) struct Joined {
    pub seq: u64,
    /// The projection at `seq` of each list's most recent items (within the rooms'
    /// bound), serialized once for every join at that seq (shared).
    pub state_json: Arc<str>,
    /// How many items of each list came before those in `state_json`.
    pub older: Older,
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
    /// Close the sockets of `member` (any member's, if `None`), only those of
    /// `session` if given.
    Kick {
        member: Option<hearth_core::MemberId>,
        session: Option<hearth_core::SessionId>,
        kick: Kick,
    },
    /// Events this node just committed (one command's, in seq order).
    Offer {
        events: Vec<EventEnvelope>,
    },
}

#[derive(Debug, Clone)]
struct RoomHandle {
    mailbox: mpsc::UnboundedSender<RoomMsg>,
    wake: Arc<Notify>,
    /// The highest seq a doorbell announced: the room reads only if it is ahead.
    head: Arc<AtomicU64>,
    /// The feed lost track (or restarted): read whatever the doorbells said.
    resync: Arc<AtomicBool>,
    /// Commands of this household this node is committing ([`Rooms::expect`]): their
    /// events will be offered, so a doorbell rung meanwhile need not be read for.
    expected: Arc<AtomicUsize>,
}

/// A command of a household in flight on this node ([`Rooms::expect`]).
#[must_use = "the room waits for the offer only while the guard is held"]
pub struct Expecting {
    room: Option<RoomHandle>,
}

impl Drop for Expecting {
    fn drop(&mut self) {
        if let Some(room) = &self.room
            && room.expected.fetch_sub(1, Ordering::AcqRel) == 1
        {
            room.wake.notify_one();
        }
    }
}

impl RoomHandle {
    fn ring(&self, seq: Option<u64>) {
        match seq {
            Some(seq) => {
                self.head.fetch_max(seq, Ordering::AcqRel);
            }
            None => self.resync.store(true, Ordering::Release),
        }
        self.wake.notify_one();
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum JoinError {
    #[error("the room could not load its household: {0}")]
    Unavailable(String),
}

/// A household's projection kept by the node; its lock makes concurrent readers of a
/// cold household fold its log once.
type KeptView = Arc<tokio::sync::Mutex<HouseholdView>>;

/// The rooms of this node.
#[derive(Debug)]
pub(crate) struct Rooms {
    rooms: Mutex<HashMap<HouseholdId, RoomHandle>>,
    /// Projections kept for `GET` of a room's state and for rooms that start, least
    /// recently used dropped first: brought up to date with only the events after them.
    views: Mutex<lru::LruCache<HouseholdId, KeptView>>,
    store: Arc<dyn EventStore>,
    metrics: Arc<Metrics>,
    poll: Duration,
    /// How many of a household's orders a welcome carries.
    bound: Bound,
    /// The rechecks of open sockets; its membership cache's answers about a member are
    /// forgotten when a room folds a membership event about them (a change made on
    /// another node). None: sockets are never rechecked (some unit tests).
    recheck: Option<Recheck>,
}

impl Rooms {
    pub fn new(
        store: Arc<dyn EventStore>,
        metrics: Arc<Metrics>,
        poll: Duration,
        kept_views: usize,
        bound: Bound,
        recheck: Option<Recheck>,
    ) -> Arc<Self> {
        let kept =
            std::num::NonZeroUsize::new(kept_views.max(1)).unwrap_or(std::num::NonZeroUsize::MIN);
        Arc::new(Self {
            rooms: Mutex::new(HashMap::new()),
            views: Mutex::new(lru::LruCache::new(kept)),
            store,
            metrics,
            poll,
            bound,
            recheck,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<HouseholdId, RoomHandle>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the household's projection with `read`, from the view this node keeps of it
    /// brought up to date: the store is read only for the events after it (the whole log
    /// only the first time, or after the view was dropped to make room for others).
    /// `read` borrows it: a reader copies only what it needs.
    pub async fn read_view<T>(
        &self,
        tenant: HouseholdId,
        read: impl FnOnce(&HouseholdView) -> T,
    ) -> Result<T, StoreError> {
        let kept = {
            let mut views = self.views.lock().unwrap_or_else(|p| p.into_inner());
            views
                .get_or_insert(tenant, || {
                    Arc::new(tokio::sync::Mutex::new(HouseholdView::new()))
                })
                .clone()
        };
        let mut view = kept.lock().await;
        loop {
            let events = self.store.read_feed(tenant, view.seq, PAGE).await?;
            let n = events.len();
            self.metrics
                .view_events
                .fetch_add(n as u64, Ordering::Relaxed);
            for event in &events {
                view.apply(event)
                    .map_err(|gap| StoreError::Corrupt(format!("household {tenant}: {gap}")))?;
            }
            if n < PAGE {
                return Ok(read(&view));
            }
        }
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

    /// Closes, at once, this node's sockets of `member` (of anyone, if `None`) in
    /// `tenant`'s room, only those of `session` if given, with `kick`'s close code.
    pub fn kick(
        &self,
        tenant: HouseholdId,
        member: Option<hearth_core::MemberId>,
        session: Option<hearth_core::SessionId>,
        kick: Kick,
    ) {
        if let Some(room) = self.lock().get(&tenant) {
            let _ = room.mailbox.send(RoomMsg::Kick {
                member,
                session,
                kick,
            });
        }
    }

    pub fn leave(&self, tenant: HouseholdId, handle: u64) {
        if let Some(room) = self.lock().get(&tenant) {
            let _ = room.mailbox.send(RoomMsg::Leave { handle });
        }
    }

    /// Says that this node is committing a command of `tenant`'s whose events it will
    /// [`offer`](Self::offer) (or not, if it fails) before the returned guard is
    /// dropped. Until then the room does not read the log for a doorbell: the commit's
    /// own doorbell usually rings before its offer arrives, and reading for it would
    /// fetch what is about to be handed over. When the last guard drops the room looks
    /// again, and reads if the doorbells are still ahead of what it was offered (a
    /// failed command, another node's commit); once an offer has left a gap, the next
    /// doorbell or finished command reads whatever is in flight.
    pub fn expect(&self, tenant: HouseholdId) -> Expecting {
        let room = self.lock().get(&tenant).map(|room| {
            room.expected.fetch_add(1, Ordering::AcqRel);
            room.clone()
        });
        Expecting { room }
    }

    /// Hands events this node committed to their room, if it has local connections,
    /// so it need not read them back from the store.
    pub fn offer(&self, tenant: HouseholdId, events: Vec<EventEnvelope>) {
        if events.is_empty() {
            return;
        }
        let _span = hearth_core::trace::fanout(tenant, &events).entered();
        if let Some(room) = self.lock().get(&tenant) {
            let _ = room.mailbox.send(RoomMsg::Offer { events });
        }
    }

    fn start(self: &Arc<Self>, tenant: HouseholdId) -> RoomHandle {
        let (mailbox, inbox) = mpsc::unbounded_channel();
        let handle = RoomHandle {
            mailbox,
            wake: Arc::new(Notify::new()),
            head: Arc::new(AtomicU64::new(0)),
            resync: Arc::new(AtomicBool::new(false)),
            expected: Arc::new(AtomicUsize::new(0)),
        };
        let signals = handle.clone();
        self.metrics.rooms.fetch_add(1, Ordering::Relaxed);
        let rooms = self.clone();
        tokio::spawn(async move {
            let mut room = Room {
                tenant,
                view: HouseholdView::new(),
                welcome: None,
                members: Vec::new(),
                held: BTreeMap::new(),
                rooms: rooms.clone(),
            };
            room.run(inbox, signals).await;
            rooms.metrics.rooms.fetch_sub(1, Ordering::Relaxed);
        });
        handle
    }

    /// Rings the room of `tenant`, if it has local connections: its household has
    /// events up to `seq` in the store.
    fn ring(&self, tenant: HouseholdId, seq: u64) {
        if let Some(room) = self.lock().get(&tenant) {
            room.ring(Some(seq));
        }
    }

    /// Every room reads what it missed.
    fn ring_all(&self) {
        for room in self.lock().values() {
            room.ring(None);
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
                        FeedSignal::Committed { tenant, seq } => rooms.ring(tenant, seq),
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

/// The next tick of the recheck's timer; never, while it has none.
async fn tick(recheck: &mut Option<tokio::time::Interval>) {
    match recheck {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The answers of the recheck in flight; never, while none is.
async fn finish(checking: &mut Option<BoxFuture<'static, Checked>>) -> Checked {
    match checking {
        Some(answers) => answers.await,
        None => std::future::pending().await,
    }
}

struct Room {
    tenant: HouseholdId,
    view: HouseholdView,
    /// The welcome's state at a seq (the most recent orders, serialized) and the number
    /// of orders before them, for the joins at that seq.
    welcome: Option<(u64, Arc<str>, Older)>,
    members: Vec<Member>,
    /// Offered events beyond the cursor, waiting for the gap before them to close.
    held: BTreeMap<u64, EventEnvelope>,
    rooms: Arc<Rooms>,
}

impl Room {
    async fn run(&mut self, mut inbox: mpsc::UnboundedReceiver<RoomMsg>, signals: RoomHandle) {
        // Start from the node's kept view: a room that opens again does not fold the
        // household's whole log again.
        let start = match self.rooms.read_view(self.tenant, Clone::clone).await {
            Ok(view) => {
                self.view = view;
                self.read(false).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = start {
            tracing::error!(tenant = %self.tenant, error = %e, "room cannot load its household");
            let mut rooms = self.rooms.lock();
            rooms.remove(&self.tenant);
            return;
        }
        // A slow fallback poll covers a dead doorbell.
        let poll_every = self.rooms.poll;
        let mut poll =
            tokio::time::interval_at(tokio::time::Instant::now() + poll_every, poll_every);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The sockets' recheck: its timer runs only while the room has sockets; its
        // membership questions run beside the room's work (a directory read never
        // holds up the events), one recheck at a time.
        let mut recheck: Option<tokio::time::Interval> = None;
        let mut checking: Option<BoxFuture<'static, Checked>> = None;
        loop {
            tokio::select! {
                msg = inbox.recv() => {
                    if !self.handle(msg, &inbox) {
                        return;
                    }
                }
                () = signals.wake.notified() => {
                    // Offers already queued come first: a doorbell often announces a
                    // commit whose events are waiting in the mailbox.
                    while let Ok(msg) = inbox.try_recv() {
                        if !self.handle(Some(msg), &inbox) {
                            return;
                        }
                    }
                    // A resync is read for at once; a doorbell waits while this node
                    // has commands of the household in flight (their offers are on the
                    // way; the last one's guard wakes the room again), unless an offer
                    // left a gap.
                    if signals.expected.load(Ordering::Acquire) > 0
                        && self.held.is_empty()
                        && !signals.resync.load(Ordering::Acquire)
                    {
                        continue;
                    }
                    let resync = signals.resync.swap(false, Ordering::AcqRel);
                    if resync || signals.head.load(Ordering::Acquire) > self.view.seq {
                        self.read_logged().await;
                    }
                }
                _ = poll.tick() => self.read_logged().await,
                () = tick(&mut recheck) => {
                    self.expire();
                    if checking.is_none() {
                        checking = self.ask();
                    }
                }
                checked = finish(&mut checking) => {
                    checking = None;
                    self.apply(&checked);
                }
            }
            match (&recheck, &self.rooms.recheck) {
                (Some(_), _) if self.members.is_empty() => recheck = None,
                (None, Some(settings)) if !self.members.is_empty() => {
                    let every = settings.every;
                    let mut interval =
                        tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    recheck = Some(interval);
                }
                _ => {}
            }
        }
    }

    /// The sockets still open that the room has not already told to close.
    fn open_members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.queue.kicked().is_none())
    }

    /// Closes the sockets whose token expired (by the server's clock) unrenewed.
    fn expire(&self) {
        let Some(recheck) = &self.rooms.recheck else {
            return;
        };
        let now = recheck.clock.now().timestamp();
        for m in self.open_members() {
            if now >= m.allowance.expires.load(Ordering::Relaxed) {
                m.queue.kick(Kick::TokenExpired);
            }
        }
    }

    /// Asks the membership cache about each distinct (member, session) of the open
    /// sockets, once; None if there is nothing to ask.
    fn ask(&self) -> Option<BoxFuture<'static, Checked>> {
        let recheck = self.rooms.recheck.as_ref()?;
        let mut who: Vec<(MemberId, Option<SessionId>)> =
            self.open_members().map(|m| (m.member, m.session)).collect();
        who.sort_unstable();
        who.dedup();
        if who.is_empty() {
            return None;
        }
        let membership = recheck.membership.clone();
        let tenant = self.tenant;
        Some(Box::pin(async move {
            let mut checked = HashMap::with_capacity(who.len());
            for (member, session) in who {
                let answer = membership.check(tenant, member, session).await;
                checked.insert((member, session), answer);
            }
            checked
        }))
    }

    /// Closes the sockets the directory no longer lets in (4003 no longer a member,
    /// 4004 session ended) and carries role changes into the others. A socket that
    /// joined after the question was asked was let in just now and is left as it is;
    /// while the directory is down, what was true a moment ago stays true.
    fn apply(&self, checked: &Checked) {
        for m in self.open_members() {
            match checked.get(&(m.member, m.session)) {
                Some(Ok(member)) => m
                    .allowance
                    .owner
                    .store(member.role == Role::Owner, Ordering::Relaxed),
                Some(Err(MembershipError::NotAMember)) => {
                    m.queue.kick(Kick::NotAMember);
                }
                Some(Err(MembershipError::SessionEnded)) => {
                    m.queue.kick(Kick::SessionEnded);
                }
                Some(Err(MembershipError::Unavailable)) | None => {}
            }
        }
    }

    /// Handles one mailbox message; false when the room is done: it has no sockets left
    /// (the last left, or a join's socket was gone before it joined) and nothing waits
    /// in its mailbox (if something does, the room decides again after it). So no room
    /// without sockets goes on reading or rechecking.
    fn handle(&mut self, msg: Option<RoomMsg>, inbox: &mpsc::UnboundedReceiver<RoomMsg>) -> bool {
        match msg {
            Some(RoomMsg::Join { member, reply }) => self.join(member, reply),
            Some(RoomMsg::Leave { handle }) => {
                self.members.retain(|m| m.handle != handle);
            }
            Some(RoomMsg::Kick {
                member,
                session,
                kick,
            }) => {
                for m in &self.members {
                    if member.is_none_or(|who| m.member == who)
                        && session.is_none_or(|s| m.session == Some(s))
                    {
                        m.queue.kick(kick);
                    }
                }
            }
            Some(RoomMsg::Offer { events }) => self.offer(events),
            None => return false,
        }
        !(self.members.is_empty() && self.retire(inbox))
    }

    /// Delivers offered events that continue the cursor; holds those beyond a gap.
    fn offer(&mut self, events: Vec<EventEnvelope>) {
        for event in events {
            if event.seq > self.view.seq {
                self.held.insert(event.seq, event);
            }
        }
        self.release_held();
        if self.held.len() > HELD {
            // A gap that long is for the store to fill.
            self.held.clear();
        }
    }

    /// Delivers the held events that now continue the cursor; forgets those behind it.
    fn release_held(&mut self) {
        let mut ready = Vec::new();
        let mut next = self.view.seq + 1;
        while let Some(entry) = self.held.first_entry() {
            let seq = *entry.key();
            if seq < next {
                entry.remove();
            } else if seq == next {
                ready.push(entry.remove());
                next += 1;
            } else {
                break;
            }
        }
        if !ready.is_empty()
            && let Err(e) = self.deliver(ready, true)
        {
            tracing::warn!(tenant = %self.tenant, error = %e, "offered events refused");
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
                if old.pk.as_deref() == Some(pk.as_str()) && old.member == member.member {
                    old.queue.kick(Kick::Replaced);
                    metrics.takeovers.fetch_add(1, Ordering::Relaxed);
                    false
                } else {
                    true
                }
            });
        }
        let (state_json, older) = match &self.welcome {
            Some((seq, json, older)) if *seq == self.view.seq => (json.clone(), *older),
            _ => {
                let window = Window::of(&self.view, self.rooms.bound);
                let older = window.older();
                let json: Arc<str> = window.view_json(&self.view).into();
                self.welcome = Some((self.view.seq, json.clone(), older));
                (json, older)
            }
        };
        let joined = Joined {
            seq: self.view.seq,
            state_json,
            older,
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
            self.rooms
                .metrics
                .room_reads
                .fetch_add(1, Ordering::Relaxed);
            let events = self
                .rooms
                .store
                .read_feed(self.tenant, self.view.seq, PAGE)
                .await?;
            let n = events.len();
            self.deliver(events, push)?;
            if n < PAGE {
                self.release_held();
                return Ok(());
            }
        }
    }

    /// Folds events into the projection (skipping those it already has) and, if
    /// `push`, hands them to the members' queues as one batch.
    fn deliver(&mut self, events: Vec<EventEnvelope>, push: bool) -> Result<(), StoreError> {
        let mut batch = Vec::with_capacity(if push { events.len() } else { 0 });
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
            if let Some((member, standing)) = membership::standing(&event) {
                self.follow_membership(member, standing);
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
        if !batch.is_empty() {
            self.push(batch.into());
        }
        Ok(())
    }

    /// A membership change in the log (made on this node or another): what this node
    /// cached about the member is forgotten, and a departed member's sockets here are
    /// closed with the change's code. (The node that made the change did both already;
    /// doing them again is harmless.) Nodes without this household's room rely on the
    /// membership cache's lifetime.
    fn follow_membership(&mut self, member: hearth_core::MemberId, standing: Standing) {
        if let Some(recheck) = &self.rooms.recheck {
            recheck.membership.forget(self.tenant, member);
        }
        let kick = match standing {
            Standing::Removed => Kick::Removed,
            Standing::Left => Kick::Left,
            Standing::Joined | Standing::RoleChanged => return,
        };
        for m in self.members.iter().filter(|m| m.member == member) {
            m.queue.kick(kick);
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
                Err(Refused::Full) => {
                    member.queue.kick(Kick::SlowConsumer);
                    metrics.slow_consumers.fetch_add(1, Ordering::Relaxed);
                    false
                }
                Err(Refused::Closed) => false,
            });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

    use super::*;
    use crate::socket_queue;
    use hearth_core::order::{Command, PlaceOrder, RequestedLine};
    use hearth_core::{Actor, CommandEnvelope, CommandId, Dispatched, MemberId, OrderId, Service};
    use hearth_memory::{MemoryEventStore, SystemClock};
    use uuid::Uuid;

    fn place(tenant: HouseholdId) -> CommandEnvelope {
        CommandEnvelope::new(
            CommandId(Uuid::now_v7()),
            tenant,
            Actor::Member {
                id: MemberId(Uuid::now_v7()),
            },
            Command::PlaceOrder(PlaceOrder {
                order_id: OrderId(Uuid::now_v7()),
                lines: vec![RequestedLine::new("milk", 1)],
                ready_at: None,
                note: None,
            }),
        )
    }

    async fn next_seqs(queue: &mut socket_queue::FromRoom) -> Vec<u64> {
        let batch = tokio::time::timeout(Duration::from_secs(5), queue.recv())
            .await
            .expect("no batch within 5 s")
            .unwrap();
        batch.iter().map(|p| p.seq).collect()
    }

    /// A room of a new household with one member, no doorbell (nothing routes the
    /// feed) and a fallback poll an hour away: the member's queue, the rooms, the
    /// store and the household.
    async fn room_with_one_member() -> (
        socket_queue::FromRoom,
        Arc<Rooms>,
        Arc<MemoryEventStore>,
        HouseholdId,
    ) {
        let store = Arc::new(MemoryEventStore::new());
        let rooms = Rooms::new(
            store.clone(),
            Arc::new(Metrics::default()),
            Duration::from_secs(3600),
            16,
            Bound::default(),
            None,
        );
        let tenant = HouseholdId(Uuid::now_v7());
        let (queue_tx, queue) = socket_queue::channel(16);
        let member = Member {
            handle: 1,
            member: hearth_core::MemberId(Uuid::now_v7()),
            session: None,
            pk: None,
            queue: queue_tx,
            allowance: Allowance::new(i64::MAX, Role::Member),
        };
        let joined = rooms.join(tenant, member).await.unwrap();
        assert_eq!(joined.seq, 0);
        (queue, rooms, store, tenant)
    }

    /// A member of `household` as the directory has them, with `sessions` sessions.
    async fn enrol(
        directory: &hearth_memory::MemoryDirectory,
        household: HouseholdId,
        owner: Option<MemberId>,
        sessions: usize,
    ) -> (MemberId, Vec<SessionId>) {
        use hearth_core::ports::{CredentialHash, Directory, Household, Invite, Session};
        let now = chrono::Utc::now();
        let member = DirectoryMember {
            household,
            id: MemberId(Uuid::now_v7()),
            name: "someone".into(),
            role: if owner.is_some() {
                Role::Member
            } else {
                Role::Owner
            },
            joined_at: now,
        };
        match owner {
            None => {
                let home = Household {
                    id: household,
                    name: "Home".into(),
                    time_zone: "UTC".into(),
                    created_at: now,
                };
                directory
                    .create_household(home, member.clone())
                    .await
                    .unwrap();
            }
            Some(owner) => {
                let code = Uuid::now_v7().to_string();
                let invite = Invite {
                    household,
                    code: code.clone(),
                    created_by: owner,
                    created_at: now,
                    expires_at: now + chrono::TimeDelta::hours(1),
                };
                directory.create_invite(invite).await.unwrap();
                directory
                    .accept_invite(household, &code, member.clone(), now)
                    .await
                    .unwrap();
            }
        }
        let mut ids = Vec::new();
        for _ in 0..sessions {
            let id = SessionId(Uuid::now_v7());
            let session = Session {
                household,
                id,
                member: member.id,
                device: "test".into(),
                created_at: now,
                last_used_at: now,
            };
            directory
                .create_session(session, &CredentialHash(id.0.to_string()))
                .await
                .unwrap();
            ids.push(id);
        }
        (member.id, ids)
    }

    /// A socket as its room knows it, and what the socket keeps: its kick and allowance.
    fn socket(
        handle: u64,
        member: MemberId,
        session: SessionId,
        expires: i64,
    ) -> (Member, socket_queue::FromRoom, Arc<Allowance>) {
        let (queue, kicked) = socket_queue::channel(1);
        let allowance = Allowance::new(expires, Role::Member);
        let socket = Member {
            handle,
            member,
            session: Some(session),
            pk: None,
            queue,
            allowance: allowance.clone(),
        };
        (socket, kicked, allowance)
    }

    /// Issue 20, goal 5: one recheck per room, not one per socket, keeps every
    /// guarantee of the per-socket one. Time is tokio's paused clock (the recheck's
    /// timer) and a manual clock (the tokens' expiry).
    #[tokio::test(start_paused = true)]
    async fn the_room_recheck_closes_each_socket_the_directory_or_its_token_no_longer_allows() {
        use hearth_core::ports::Directory;
        let directory = Arc::new(hearth_memory::MemoryDirectory::new());
        let household = HouseholdId(Uuid::now_v7());
        let (ann, ann_sessions) = enrol(&directory, household, None, 2).await;
        let (bob, bob_sessions) = enrol(&directory, household, Some(ann), 1).await;
        let (cy, cy_sessions) = enrol(&directory, household, Some(ann), 1).await;
        let clock = Arc::new(hearth_memory::ManualClock::starting_now());
        let now = clock.now().timestamp();
        let ttl = Duration::from_millis(500);
        let membership = Arc::new(crate::members::Membership::new(directory.clone(), ttl));
        let rooms = Rooms::new(
            Arc::new(MemoryEventStore::new()),
            Arc::new(Metrics::default()),
            Duration::from_secs(3600),
            16,
            Bound::default(),
            Some(Recheck::new(membership, clock.clone(), ttl)),
        );
        let later = now + 3600;
        // Ann on two devices; Bob twice on one session, one token expiring in 10 s and
        // one renewed to an hour (the same (member, session): asked about once); Cy.
        let sockets = [
            socket(1, ann, ann_sessions[0], later),
            socket(2, ann, ann_sessions[1], later),
            socket(3, bob, bob_sessions[0], now + 10),
            socket(4, bob, bob_sessions[0], later),
            socket(5, cy, cy_sessions[0], later),
        ];
        let mut kicks = Vec::new();
        let mut allowances = Vec::new();
        for (member, kicked, allowance) in sockets {
            rooms.join(household, member).await.unwrap();
            kicks.push(kicked);
            allowances.push(allowance);
        }
        // Behind the room's back: Ann's second session ends, Bob becomes an owner, Cy
        // is removed; the first token of Bob expires.
        let at = chrono::Utc::now();
        directory
            .end_session(household, ann, ann_sessions[1], at)
            .await
            .unwrap();
        directory
            .set_role(household, bob, Role::Owner)
            .await
            .unwrap();
        directory.remove_member(household, cy, at).await.unwrap();
        clock.advance(chrono::TimeDelta::seconds(11));

        // Within one recheck (half the cache's lifetime).
        let within = tokio::time::Instant::now() + ttl / 2 + Duration::from_millis(1);
        let mut closes = Vec::new();
        for i in [1, 2, 4] {
            tokio::time::timeout_at(within, kicks[i].until_kicked())
                .await
                .expect("closed within one recheck");
            let kick = kicks[i].kick().unwrap();
            closes.push((kick.close_code(), kick.reason()));
        }
        assert_eq!(
            closes,
            [
                (CLOSE_SESSION_ENDED, "the session was ended"),
                (
                    CLOSE_TOKEN_EXPIRED,
                    "the token expired; reconnect with a fresh token"
                ),
                (CLOSE_REMOVED, "no longer a member of this household"),
            ]
        );
        // The others stay open, and carry their member's role as the directory says it
        // (every socket here opened as a member's): Bob's new one, Ann's.
        for open in [&kicks[0], &kicks[3]] {
            assert_eq!(open.kick(), None);
        }
        assert_eq!(allowances[3].role(), Role::Owner);
        assert_eq!(allowances[0].role(), Role::Owner);
    }

    /// A room whose last socket left ends (so its fallback poll and its sockets'
    /// recheck stop), even when a message was waiting in its mailbox as it left.
    #[tokio::test(start_paused = true)]
    async fn a_room_without_sockets_ends() {
        let (_queue, rooms, _store, tenant) = room_with_one_member().await;
        assert_eq!(rooms.metrics.rooms.load(Ordering::Relaxed), 1);
        rooms.leave(tenant, 1);
        rooms.kick(tenant, None, None, Kick::Removed);
        // Paused time moves only when every task waits: the room has handled both.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(rooms.metrics.rooms.load(Ordering::Relaxed), 0);
        assert!(rooms.lock().get(&tenant).is_none());
    }

    #[tokio::test]
    async fn offered_events_are_delivered_in_seq_order_whatever_order_they_come_in() {
        // Given a room with one member, no doorbell and a poll that never comes.
        let (mut queue, rooms, store, tenant) = room_with_one_member().await;
        // And three commands committed by this node.
        let service = Service::new(store.clone(), Arc::new(SystemClock))
            .with_catalog(Arc::new(hearth_memory::MemoryInventory::default()));
        let mut committed = Vec::new();
        for _ in 0..3 {
            match service.dispatch(place(tenant)).await.unwrap() {
                Dispatched::Accepted { events, .. } => committed.push(events),
                other => panic!("{other:?}"),
            }
        }
        // When their events are offered last first.
        for events in committed.into_iter().rev() {
            rooms.offer(tenant, events);
        }
        // Then the member gets 1, then 2 and 3, and nothing was read from the store.
        let mut seen = next_seqs(&mut queue).await;
        while seen.len() < 3 {
            seen.extend(next_seqs(&mut queue).await);
        }
        assert_eq!(seen, vec![1, 2, 3]);
        assert_eq!(
            rooms.metrics.room_reads.load(Ordering::Relaxed),
            1,
            "only the join read"
        );
    }

    #[tokio::test]
    async fn a_doorbell_at_or_behind_the_cursor_reads_nothing() {
        let (mut queue, rooms, store, tenant) = room_with_one_member().await;
        let service = Service::new(store.clone(), Arc::new(SystemClock))
            .with_catalog(Arc::new(hearth_memory::MemoryInventory::default()));
        let Dispatched::Accepted { events, seq } = service.dispatch(place(tenant)).await.unwrap()
        else {
            panic!("not accepted")
        };
        rooms.offer(tenant, events);
        assert_eq!(next_seqs(&mut queue).await, vec![1]);
        // The doorbell of the same commit arrives after the offer: nothing to read.
        rooms.ring(tenant, seq);
        // A doorbell ahead of the cursor (a commit of another node) is read.
        let Dispatched::Accepted { seq, .. } = service.dispatch(place(tenant)).await.unwrap()
        else {
            panic!("not accepted")
        };
        rooms.ring(tenant, seq);
        assert_eq!(next_seqs(&mut queue).await, vec![2]);
        assert_eq!(
            rooms.metrics.room_reads.load(Ordering::Relaxed),
            2,
            "join and seq 2"
        );
    }
}
