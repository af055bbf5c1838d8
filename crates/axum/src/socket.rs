//! A member's WebSocket in a household's room: the welcome, the `since` replay, live
//! events from the room, commands in order on the socket's own task, and the closes
//! (token expiry, membership, slow consumer, takeover). [`crate::room`] decides whether
//! a request gets here.

use crate::app::AppState;
use crate::auth::Claims;
use crate::commands;
use crate::limits::SocketPermit;
use crate::rooms::{Allowance, Batch, Joined, Member};
use crate::socket_queue::{self, FromRoom};
use crate::wire::{self, BadInput, ClientMessage, ServerMessage, WireCommand, codes};
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderValue;
use axum::response::Response;
use futures::SinkExt as _;
use hearth_core::ports::Role;
use hearth_core::{HouseholdId, MemberId};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::Instrument;

/// Close code: the server is shutting down (RFC 6455 "going away"); reconnect.
pub(crate) const CLOSE_GOING_AWAY: u16 = 1001;
/// How long a socket closing for a shutdown waits for its queued commands' answers.
const GOING_AWAY_DRAIN: Duration = Duration::from_secs(5);

/// Events a catch-up reads (and holds) at a time.
const CATCHUP_PAGE: usize = 100;

/// Read buffer of each socket: allocated at the open and held for its life, and the
/// most one read takes from the kernel. Clients' frames are commands of a few hundred
/// bytes; a larger one (up to the hard limit) grows the buffer and is read in pieces of
/// this size. 1 KiB rather than 4 KiB saves 3 KiB of every idle socket (bench/idle.sh,
/// BENCHMARKS.md "Idle sockets").
const READ_BUFFER_BYTES: usize = 1024;
/// Write batching threshold of each socket (its write buffer grows only as frames are
/// written).
const WRITE_BUFFER_BYTES: usize = 4 * 1024;

/// Upgrades to the room's WebSocket: what [`crate::room`] does with an upgrade request
/// that passed auth, membership and the socket limits.
/// Who a socket was let in for: the token's claims and the member's role as the
/// directory said it then.
pub(crate) struct Admitted {
    pub claims: Claims,
    pub role: Role,
}

pub(crate) fn upgrade(
    app: Arc<AppState>,
    ws: WebSocketUpgrade,
    room: HouseholdId,
    Admitted { claims, role }: Admitted,
    pk: Option<String>,
    since: Option<u64>,
    (permit, peer): (SocketPermit, Option<std::net::SocketAddr>),
) -> Response {
    let hard = app.settings.hard_max_frame_bytes;
    // Echo the first subprotocol offered, or partysocket's client fails.
    let offered = ws
        .requested_protocols()
        .next()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .and_then(|v| HeaderValue::from_str(v).ok());
    // Small buffers: tungstenite's defaults (128 KiB each way) dominate the memory of an
    // idle socket; frames up to `hard` still fit, the buffers grow for them.
    let mut ws = ws
        .max_message_size(hard)
        .max_frame_size(hard)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES);
    if let Some(protocol) = offered {
        ws.set_selected_protocol(protocol);
    }
    // Tracked, so a shutdown can wait for every socket to say goodbye.
    let sockets = app.sockets.clone();
    ws.on_upgrade(move |socket| {
        let conn = Connection {
            app,
            room,
            member: claims.sub,
            allowance: Allowance::new(claims.exp, role),
            session: claims.sid,
            pk,
            since,
            peer,
        };
        // Boxed, and the connection built, before the task's future: every async fn
        // that takes them by value keeps its own copy of its arguments for the life of
        // the socket (368 bytes for the socket), so each level would add one.
        let socket = Box::new(socket);
        sockets.track_future(async move {
            conn.run(socket).await;
            drop(permit);
        })
    })
}

static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

struct Connection {
    /// The client's address, when the listener knows it (not in some tests).
    peer: Option<std::net::SocketAddr>,
    app: Arc<AppState>,
    room: HouseholdId,
    member: MemberId,
    /// Its token's expiry (moved by `renew`) and its member's role (refreshed by the
    /// room's rechecks), shared with the room, which closes the socket when the token
    /// expires or the directory no longer lets it in ([`crate::rooms::Recheck`]).
    allowance: Arc<Allowance>,
    /// The session of the token it opened with (renewals keep to it).
    session: Option<hearth_core::SessionId>,
    pk: Option<String>,
    since: Option<u64>,
}

/// Why a connection ends.
enum Stop {
    /// The socket failed or ended without a Close frame.
    Gone,
    /// The client sent a Close frame: answer it (RFC 6455, section 5.5.1).
    ClosedByClient,
    /// Close the socket with this code and reason.
    Close(u16, &'static str),
}

/// Close code of a frame above the hard limit (RFC 6455: "message too big").
const CLOSE_TOO_BIG: u16 = 1009;

/// Why a read failed: a frame above the hard limit gets 1009, anything else ends the
/// socket without a Close frame (the socket is broken).
fn read_failed(error: axum::Error) -> Stop {
    match error.into_inner().downcast::<tungstenite::Error>() {
        Ok(e) if matches!(*e, tungstenite::Error::Capacity(_)) => {
            Stop::Close(CLOSE_TOO_BIG, "frame above the hard limit")
        }
        Ok(e) => {
            tracing::debug!(error = %e, "socket read failed");
            Stop::Gone
        }
        Err(e) => {
            tracing::debug!(error = %e, "socket read failed");
            Stop::Gone
        }
    }
}

/// A token bucket: `burst` messages at once, refilled at `rate` per second.
struct Bucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The live half of a socket: what it has sent, and how to reach it.
struct Live {
    socket: Box<WebSocket>,
    /// The room's batches and kick.
    room: FromRoom,
    /// Every event up to here was sent (or is covered by `since`).
    cursor: u64,
    send_timeout: Duration,
}

impl Live {
    /// Sends one message; a kick or a socket that does not take it in time ends it.
    async fn send(&mut self, message: Message) -> Result<(), Stop> {
        let send = tokio::time::timeout(self.send_timeout, self.socket.send(message));
        tokio::select! {
            result = send => match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(Stop::Gone),
                Err(_) => Err(Stop::Gone),
            },
            () = self.room.until_kicked() => Err(self.kicked()),
        }
    }

    fn kicked(&self) -> Stop {
        match self.room.kick() {
            Some(kick) => Stop::Close(kick.close_code(), kick.reason()),
            None => Stop::Gone,
        }
    }

    async fn reply(&mut self, message: &ServerMessage) -> Result<(), Stop> {
        self.send(Message::Text(message.to_json().into())).await
    }

    /// Sends the stored events in `(after, to]` (from the store: a catch-up).
    async fn replay(
        &mut self,
        app: &AppState,
        room: HouseholdId,
        after: u64,
        to: u64,
    ) -> Result<(), Stop> {
        let mut at = after;
        while at < to {
            // Paged and paced: a page is read only when the node's catch-up rate allows
            // it, and it is sent (each send waits for the socket) before the next read.
            let page = usize::try_from(to - at)
                .unwrap_or(CATCHUP_PAGE)
                .min(CATCHUP_PAGE);
            app.catchup
                .take(u32::try_from(page).unwrap_or(u32::MAX))
                .await;
            let events = match app.store.read_feed(room, at, page).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(%room, error = %e, "catch-up read failed");
                    return Err(Stop::Close(
                        1011,
                        "cannot read the household's events; reconnect with since",
                    ));
                }
            };
            if events.is_empty() {
                break;
            }
            for event in events {
                if event.seq > to {
                    return Ok(());
                }
                at = event.seq;
                self.reply(&ServerMessage::Event(Box::new(event))).await?;
            }
        }
        Ok(())
    }

    /// Forwards a batch from the room: drops what was already sent, fills a gap
    /// (never expected) from the store.
    async fn forward(
        &mut self,
        app: &AppState,
        room: HouseholdId,
        batch: Batch,
    ) -> Result<(), Stop> {
        for pushed in batch.iter() {
            if pushed.seq <= self.cursor {
                continue;
            }
            if pushed.seq > self.cursor + 1 {
                let (from, to) = (self.cursor, pushed.seq - 1);
                self.replay(app, room, from, to).await?;
            }
            self.send(Message::Text(pushed.text.clone())).await?;
            self.cursor = pushed.seq;
        }
        Ok(())
    }
}

impl Connection {
    async fn run(&self, socket: Box<WebSocket>) {
        let app = self.app.clone();
        app.metrics.connections.fetch_add(1, Ordering::Relaxed);
        let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
        let connection = format!("{}-{handle}", short_node_id());
        let span = hearth_core::trace::connection(self.room, self.member, &connection, self.peer);
        self.run_in(socket, handle, connection)
            .instrument(span)
            .await;
    }

    async fn run_in(&self, socket: Box<WebSocket>, handle: u64, connection: String) {
        let app = self.app.clone();
        let opened = Instant::now();
        tracing::info!(
            target: "hearth::access",
            household = %self.room,
            member = %self.member,
            %connection,
            since = ?self.since,
            "socket open"
        );
        let (queue, room) = socket_queue::channel(app.settings.outgoing_queue);
        let member = Member {
            handle,
            member: self.member,
            session: self.session,
            pk: self.pk.clone(),
            queue,
            allowance: self.allowance.clone(),
        };
        let mut live = Live {
            socket,
            room,
            cursor: 0,
            send_timeout: app.settings.ping_timeout,
        };
        // Boxed, as `open` below.
        let stop = match Box::pin(app.rooms.join(self.room, member)).await {
            Ok(joined) => {
                live.cursor = joined.seq;
                // Boxed (once per socket): its state need not be part of the connection's
                // future, which every socket holds for its life.
                match Box::pin(self.open(&mut live, &connection, &joined)).await {
                    Ok(()) => self.serve(&mut live).await,
                    Err(stop) => stop,
                }
            }
            Err(e) => {
                tracing::warn!(room = %self.room, error = %e, "cannot join room");
                Stop::Close(1011, "the room is unavailable; retry")
            }
        };
        app.rooms.leave(self.room, handle);
        app.metrics.connections.fetch_sub(1, Ordering::Relaxed);
        let (code, reason) = match &stop {
            Stop::Close(code, reason) => (Some(*code), *reason),
            Stop::ClosedByClient => (None, "closed by the client"),
            Stop::Gone => (None, "gone without a close"),
        };
        tracing::info!(
            target: "hearth::access",
            household = %self.room,
            member = %self.member,
            %connection,
            code = ?code,
            reason,
            ms = opened.elapsed().as_millis() as u64,
            "socket closed"
        );
        match stop {
            Stop::Close(code, reason) => {
                let frame = CloseFrame {
                    code,
                    reason: Utf8Bytes::from_static(reason),
                };
                // Then wait (briefly) for the client's Close, discarding what it sent
                // meanwhile: closing with unread data would reset the connection, and
                // the client could lose the Close frame (RFC 6455, section 7.1.1).
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    if live.socket.send(Message::Close(Some(frame))).await.is_ok() {
                        while let Some(Ok(message)) = live.socket.recv().await {
                            if matches!(message, Message::Close(_)) {
                                break;
                            }
                        }
                    }
                })
                .await;
            }
            // The reply (echoing the client's code) was queued when its Close frame was
            // read; flushing writes it.
            Stop::ClosedByClient => {
                let _ = tokio::time::timeout(Duration::from_secs(1), live.socket.flush()).await;
            }
            Stop::Gone => {}
        }
    }

    /// Welcome, then the replay asked for with `since`.
    async fn open(&self, live: &mut Live, connection: &str, joined: &Joined) -> Result<(), Stop> {
        // The welcome carries the household's most recent orders (bounded: see
        // `hearth_core::window::Bound`); the node's welcomes in flight also share one budget of bytes.
        let kib = u32::try_from(joined.state_json.len() / 1024 + 1).unwrap_or(u32::MAX);
        let permits = kib.min(self.app.welcome_budget_kib);
        let permit = self.app.welcomes.acquire_many(permits).await;
        let frame = wire::welcome_frame(
            self.room,
            connection,
            joined.seq,
            &joined.state_json,
            &joined.older,
        );
        live.send(Message::Text(frame.into())).await?;
        drop(permit);
        if let Some(since) = self.since {
            if since < live.cursor {
                let to = live.cursor;
                live.replay(&self.app, self.room, since, to).await?;
            } else {
                live.cursor = since;
            }
        }
        Ok(())
    }

    /// The connection's loop: the socket, the room's batches, the answers of the
    /// command task, kicks and pings. It never awaits a command's execution, so its
    /// outgoing queue keeps draining while its own commands run (only a socket that
    /// does not read is a slow consumer).
    async fn serve(&self, live: &mut Live) -> Stop {
        let settings = &self.app.settings;
        let mut bucket = Bucket {
            tokens: f64::from(settings.rate_burst),
            burst: f64::from(settings.rate_burst),
            rate: settings.rate_per_second,
            last: Instant::now(),
        };
        // Started by the first frame that needs an answer.
        let mut commands: Option<Commands> = None;
        let mut ping = tokio::time::interval(settings.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        let mut last_seen = Instant::now();
        let mut going_away = self.app.going_away.subscribe();
        let stop = loop {
            // A full queue of commands: the socket is not read until one finishes
            // (backpressure through TCP), but everything else goes on.
            let reading = commands.as_ref().is_none_or(|c| c.jobs.capacity() > 0);
            let step = tokio::select! {
                () = async { let _ = going_away.wait_for(|away| *away).await; } => Err(Stop::Close(
                    CLOSE_GOING_AWAY,
                    "the server is shutting down; reconnect with since",
                )),
                () = live.room.until_kicked() => Err(live.kicked()),
                batch = live.room.recv() => match batch {
                    Some(batch) => live.forward(&self.app, self.room, batch).await,
                    // The room drops a member's queue right after kicking it.
                    None => Err(match live.kicked() {
                        Stop::Gone => Stop::Close(1012, "the room closed; reconnect with since"),
                        kicked => kicked,
                    }),
                },
                Some(message) = Commands::answer(&mut commands) => live.reply(&message).await,
                incoming = live.socket.recv(), if reading => match incoming {
                    Some(Ok(message)) => {
                        last_seen = Instant::now();
                        self.incoming(live, &mut bucket, &mut commands, message).await
                    }
                    Some(Err(e)) => Err(read_failed(e)),
                    None => Err(Stop::Gone),
                },
                _ = ping.tick() => {
                    if !reading {
                        // Not read on purpose: its silence proves nothing.
                        last_seen = Instant::now();
                    }
                    if last_seen.elapsed() > settings.ping_timeout {
                        self.app.metrics.dead_sockets.fetch_add(1, Ordering::Relaxed);
                        Err(Stop::Gone)
                    } else {
                        live.send(Message::Ping(Bytes::from_static(b"hearth"))).await
                    }
                }
            };
            if let Err(stop) = step {
                break stop;
            }
        };
        let Some(Commands {
            jobs,
            mut answers,
            worker,
        }) = commands
        else {
            return stop;
        };
        drop(jobs);
        if matches!(stop, Stop::Close(CLOSE_GOING_AWAY, _)) {
            // A shutdown: the commands already read are run and answered before the
            // close (bounded), so none is applied without its ack being sent.
            let drained = tokio::time::timeout(GOING_AWAY_DRAIN, async {
                while let Some(message) = answers.recv().await {
                    if live.reply(&message).await.is_err() {
                        break;
                    }
                }
            })
            .await;
            if drained.is_err() {
                tracing::warn!(room = %self.room, "shutdown: commands still running at the close");
            }
            return stop;
        }
        // The command task finishes the command it runs (if any) and skips the rest:
        // their answers could not be sent, and a resend with the same ids is safe.
        drop(answers);
        drop(worker);
        stop
    }

    /// `{"renew": {"token"}}`: a fresh access token of the same member and session
    /// moves the socket's expiry. Anything else is refused (`unauthorized`) and
    /// changes nothing.
    async fn renew(&self, token: &str) -> ServerMessage {
        let refused = |message: String| {
            self.app
                .metrics
                .unauthorized
                .fetch_add(1, Ordering::Relaxed);
            BadInput::new(codes::UNAUTHORIZED, message).to_message()
        };
        let claims = match self
            .app
            .tokens
            .verify_at(token, self.room, self.app.clock.now())
        {
            Ok(claims) => claims,
            Err(e) => return refused(e.to_string()),
        };
        if claims.sub != self.member || claims.sid != self.session {
            return refused(
                "renew: the token is for another member or session; open a new socket".into(),
            );
        }
        if let Err(e) = self
            .app
            .membership
            .check(self.room, claims.sub, claims.sid)
            .await
        {
            return refused(e.to_string());
        }
        let expires = &self.allowance.expires;
        expires.fetch_max(claims.exp, Ordering::Relaxed);
        ServerMessage::Renewed(wire::Renewed {
            expires_at: expires.load(Ordering::Relaxed),
        })
    }

    async fn incoming(
        &self,
        live: &mut Live,
        bucket: &mut Bucket,
        commands: &mut Option<Commands>,
        message: Message,
    ) -> Result<(), Stop> {
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                let bad = BadInput::new(
                    codes::BINARY_NOT_SUPPORTED,
                    "binary frames are not supported: send JSON text",
                );
                return self.bad(commands, bad);
            }
            Message::Ping(_) | Message::Pong(_) => return Ok(()),
            Message::Close(_) => return Err(Stop::ClosedByClient),
        };
        let max = self.app.settings.max_frame_bytes;
        if text.len() > max {
            let bad = BadInput::new(
                codes::FRAME_TOO_LARGE,
                format!(
                    "the frame has {} bytes; at most {max} are accepted",
                    text.len()
                ),
            );
            return self.bad(commands, bad);
        }
        if !bucket.take() {
            let bad = BadInput::new(
                codes::RATE_LIMITED,
                format!(
                    "too many messages: at most {} at once and {} per second; this one was dropped",
                    self.app.settings.rate_burst, self.app.settings.rate_per_second
                ),
            )
            .with_id(wire::command_id_of(text.as_bytes()));
            return self.bad(commands, bad);
        }
        match wire::parse_client_message(text.as_str()) {
            Err(bad) => self.bad(commands, bad),
            Ok(ClientMessage::Command(command)) => {
                // The member's rate, shared by all of their sockets and HTTP calls.
                match self
                    .app
                    .limits
                    .member(self.room, self.member, Some(command.id))
                {
                    Ok(()) => self.queue(commands, Job::Execute(command)),
                    Err(refusal) => self.bad(commands, refusal.to_bad_input()),
                }
            }
            // Answered in turn with the commands before it.
            Ok(ClientMessage::Renew(renew)) => {
                let answer = self.renew(&renew.token).await;
                self.queue(commands, Job::Answer(answer))
            }
            Ok(ClientMessage::Sync(sync)) => {
                if sync.since < live.cursor {
                    let to = live.cursor;
                    live.replay(&self.app, self.room, sync.since, to).await
                } else {
                    live.cursor = sync.since;
                    Ok(())
                }
            }
        }
    }

    /// Bad input is answered in turn with the commands before it.
    fn bad(&self, commands: &mut Option<Commands>, bad: BadInput) -> Result<(), Stop> {
        self.app.metrics.bad_input.fetch_add(1, Ordering::Relaxed);
        self.queue(commands, Job::Answer(bad.to_message()))
    }

    /// Queues a job, starting the command task first if this is the socket's first;
    /// the loop reads the socket only while the queue has room, so there is.
    fn queue(&self, commands: &mut Option<Commands>, job: Job) -> Result<(), Stop> {
        let commands = commands.get_or_insert_with(|| self.start_commands());
        commands.jobs.try_send(job).map_err(|e| {
            tracing::error!(error = %e, "the command queue of a connection refused a job");
            Stop::Close(1011, "internal error; reconnect")
        })
    }

    fn start_commands(&self) -> Commands {
        let in_flight = self.app.settings.commands_in_flight.max(1);
        let (jobs, queued) = mpsc::channel(in_flight);
        let (answer, answers) = mpsc::channel(in_flight);
        let worker = tokio::spawn(
            run_commands(
                self.app.clone(),
                self.room,
                self.member,
                self.allowance.clone(),
                queued,
                answer,
            )
            // Its commands' spans sit within the connection's.
            .in_current_span(),
        );
        Commands {
            jobs,
            answers,
            worker,
        }
    }
}

/// What the command task of a connection does with each frame, in the order read.
enum Job {
    /// Dispatch the command and answer with its outcome.
    Execute(WireCommand),
    /// Answer this (bad input), after the answers of the commands before it.
    Answer(ServerMessage),
}

/// A connection's command task and its two queues. Started by the socket's first frame
/// that needs an answer (a command, a renew, bad input), not at the open: most sockets
/// only listen, and each queue costs its first block at once (tokio allocates 32 slots
/// per channel up front: about 4 KiB of jobs and 2 KiB of answers), the task its future.
struct Commands {
    jobs: mpsc::Sender<Job>,
    answers: mpsc::Receiver<ServerMessage>,
    /// Dropping it detaches the task, which ends when its queues close.
    worker: tokio::task::JoinHandle<()>,
}

impl Commands {
    /// The next answer of the command task; never, while there is no task.
    async fn answer(commands: &mut Option<Commands>) -> Option<ServerMessage> {
        match commands {
            Some(commands) => commands.answers.recv().await,
            None => std::future::pending().await,
        }
    }
}

/// A connection's command task: runs its commands one at a time, in the order they
/// came (so answers keep that order), and hands each answer to the connection's loop.
async fn run_commands(
    app: Arc<AppState>,
    room: HouseholdId,
    member: MemberId,
    allowance: Arc<Allowance>,
    mut jobs: mpsc::Receiver<Job>,
    answers: mpsc::Sender<ServerMessage>,
) {
    while let Some(job) = jobs.recv().await {
        if answers.is_closed() {
            break;
        }
        let answer = match job {
            Job::Execute(command) => {
                commands::execute(&app, room, member, allowance.role(), command).await
            }
            Job::Answer(message) => message,
        };
        if answers.send(answer).await.is_err() {
            break;
        }
    }
}

/// Distinguishes this process's connection handles from another node's.
fn short_node_id() -> &'static str {
    static NODE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NODE.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_owned())
}
