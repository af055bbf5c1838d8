//! [`PgEventFeed`]: the EventFeed port on LISTEN/NOTIFY, with a fallback poll.
//!
//! One dedicated connection per feed (never a pooled one), listening on one channel,
//! [`FEED_CHANNEL`]; a notification's payload is `<household id>:<seq>` and is
//! routed in process to every subscriber as [`FeedSignal::Committed`]. On every
//! (re)connect the feed LISTENs first, reads the households' heads, and only then
//! emits [`FeedSignal::Resync`], so a reader that re-reads from its cursor then
//! misses nothing. A lost doorbell (the appending process died between commit and
//! ring, or the listener was disconnected) is caught by a slow poll of
//! `households.last_seq`, which needs the relay role.

use crate::Config;
use futures::StreamExt;
use hearth_core::HouseholdId;
use hearth_core::ports::{EventFeed, FeedSignal, FeedStream};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio_postgres::AsyncMessage;
use uuid::Uuid;

/// The one channel of the doorbell.
pub const FEED_CHANNEL: &str = "hearth_feed";

/// How the feed listens, polls and reconnects.
#[derive(Clone, Debug)]
pub struct FeedOptions {
    /// How often the fallback poll reads every household's head.
    pub poll_interval: Duration,
    /// First wait before reconnecting; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// `application_name` of the listener connection (visible in pg_stat_activity).
    pub application_name: String,
    /// Signals buffered per subscriber; one that falls further behind gets Resync.
    /// Also the most doorbells queued between the connection and the feed's loop:
    /// beyond it doorbells are dropped and subscribers get Resync.
    pub capacity: usize,
    /// The most distinct households whose doorbells the feed remembers between two
    /// polls (to keep the poll from repeating what a doorbell already said). Any
    /// login can NOTIFY the channel with made-up households, so this is bounded;
    /// past it a doorbell is still passed on but not remembered.
    pub max_rung_households: usize,
}

impl Default for FeedOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(1500),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            application_name: "hearth-feed".into(),
            capacity: 4096,
            max_rung_households: 16_384,
        }
    }
}

/// What the listener has seen (for tests and metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedStats {
    /// Well-formed doorbells received (`<household id>:<seq>`).
    pub doorbells: u64,
    /// Doorbells that were not `<household id>:<seq>`: ignored.
    pub malformed: u64,
    /// Doorbells dropped because the feed's loop was `capacity` behind.
    pub overflowed: u64,
    /// Households remembered from doorbells since the last poll (at most
    /// `max_rung_households`).
    pub rung_households: usize,
    /// Households the last poll found (the real ones: rows of `households`).
    pub polled_households: usize,
}

#[derive(Debug, Default)]
struct Counters {
    doorbells: AtomicU64,
    malformed: AtomicU64,
    overflowed: AtomicU64,
    rung_households: AtomicUsize,
    polled_households: AtomicUsize,
}

/// The feed of committed appends. Connect it as the relay role (the fallback poll
/// reads `households.tenant_id, last_seq` across households; LISTEN itself needs no
/// grant). Dropping it stops its task and closes its connection.
pub struct PgEventFeed {
    signals: broadcast::Sender<FeedSignal>,
    connects: Arc<AtomicU64>,
    /// Whether the listener is connected and LISTENing now.
    listening: Arc<AtomicBool>,
    counters: Arc<Counters>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for PgEventFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgEventFeed")
            .field("connects", &self.connects())
            .field("subscribers", &self.signals.receiver_count())
            .finish()
    }
}

impl Drop for PgEventFeed {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }
}

impl PgEventFeed {
    /// Starts listening in the background (call inside a Tokio runtime). Returns at
    /// once; the first connection is made by the task, which keeps reconnecting.
    pub fn start(config: Config, options: FeedOptions) -> Self {
        let (signals, _) = broadcast::channel(options.capacity.max(16));
        let connects = Arc::new(AtomicU64::new(0));
        let listening = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(run(
            config,
            options,
            Shared {
                signals: signals.clone(),
                connects: connects.clone(),
                listening: listening.clone(),
                counters: counters.clone(),
            },
            stopped,
        ));
        Self {
            signals,
            connects,
            listening,
            counters,
            shutdown: Some(stop),
        }
    }

    /// What the listener has seen so far.
    pub fn stats(&self) -> FeedStats {
        let c = &self.counters;
        FeedStats {
            doorbells: c.doorbells.load(Ordering::SeqCst),
            malformed: c.malformed.load(Ordering::SeqCst),
            overflowed: c.overflowed.load(Ordering::SeqCst),
            rung_households: c.rung_households.load(Ordering::SeqCst),
            polled_households: c.polled_households.load(Ordering::SeqCst),
        }
    }

    /// How many times the listener has connected and LISTENed (1 after the first
    /// connect; each reconnect adds one).
    pub fn connects(&self) -> u64 {
        self.connects.load(Ordering::SeqCst)
    }

    /// Waits until the listener has connected at least `n` times, up to `timeout`.
    pub async fn wait_connected(&self, n: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.connects() < n {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

impl EventFeed for PgEventFeed {
    fn listening(&self) -> Option<bool> {
        Some(self.listening.load(Ordering::SeqCst))
    }

    fn subscribe(&self) -> FeedStream {
        let receiver = self.signals.subscribe();
        Box::pin(futures::stream::unfold(receiver, |mut rx| async move {
            match rx.recv().await {
                Ok(signal) => Some((signal, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => Some((FeedSignal::Resync, rx)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        }))
    }
}

/// What the feed's task shares with its handle.
struct Shared {
    signals: broadcast::Sender<FeedSignal>,
    connects: Arc<AtomicU64>,
    listening: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

async fn run(
    config: Config,
    options: FeedOptions,
    shared: Shared,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut config = config;
    config.application_name(&options.application_name);
    let mut backoff = options.min_backoff;
    let mut malformed_log = MalformedLog::default();
    loop {
        let session = listen(&config, &options, &shared, &mut malformed_log);
        let ended = tokio::select! {
            _ = &mut stopped => return,
            ended = session => ended,
        };
        shared.listening.store(false, Ordering::SeqCst);
        if ended.listened {
            backoff = options.min_backoff;
        }
        tracing::warn!(error = %ended.error, retry_in = ?backoff, "feed listener disconnected");
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(options.max_backoff);
    }
}

struct Ended {
    listened: bool,
    error: String,
}

/// One listener connection, from connect to its end.
///
/// What it keeps is bounded whatever arrives on the channel (any login may NOTIFY
/// it): `polled`, the heads the last poll read, has one entry per row of
/// `households`; `rung`, what doorbells said since that poll, at most
/// `max_rung_households` entries, and is cleared by every poll; the queue from the
/// connection holds at most `capacity` doorbells (beyond it they are dropped and
/// readers re-read from their cursors, as after any lost doorbell).
async fn listen(
    config: &Config,
    options: &FeedOptions,
    shared: &Shared,
    malformed_log: &mut MalformedLog,
) -> Ended {
    let Shared {
        signals,
        connects,
        listening,
        counters,
    } = shared;
    let ended = |listened, error: String| Ended { listened, error };
    let (client, mut connection) = match config.pg().connect(config.tls()).await {
        Ok(pair) => pair,
        Err(e) => {
            return ended(
                false,
                format!("{}: {}", config.target(), crate::sql::describe(&e)),
            );
        }
    };
    let (notes_tx, mut notes) = mpsc::channel::<String>(options.capacity.max(16));
    // Rung when the driver dropped a doorbell (the permit is kept until the loop
    // waits for it, so none is missed).
    let overflow = Arc::new(Notify::new());
    // Drives the connection and forwards its notifications; ends with it. It never
    // waits for the loop (the loop's poll needs this task to read its answer).
    let driver = tokio::spawn({
        let overflow = overflow.clone();
        let counters = counters.clone();
        async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        match notes_tx.try_send(n.payload().to_owned()) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                counters.overflowed.fetch_add(1, Ordering::SeqCst);
                                overflow.notify_one();
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => break,
                        }
                    }
                    Ok(_) => {}
                    Err(e) => return crate::sql::describe(&e),
                }
            }
            "connection closed".to_owned()
        }
    });
    let result = async {
        // LISTEN first, then read the heads, then tell readers to re-read.
        client
            .batch_execute(&format!("LISTEN {FEED_CHANNEL}"))
            .await
            .map_err(|e| (false, crate::sql::describe(&e)))?;
        let mut polled = poll_heads(&client)
            .await
            .map_err(|e| (false, crate::sql::describe(&e)))?;
        counters
            .polled_households
            .store(polled.len(), Ordering::SeqCst);
        let mut rung: HashMap<HouseholdId, u64> = HashMap::new();
        counters.rung_households.store(0, Ordering::SeqCst);
        connects.fetch_add(1, Ordering::SeqCst);
        listening.store(true, Ordering::SeqCst);
        let _ = signals.send(FeedSignal::Resync);
        let mut tick = tokio::time::interval(options.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                note = notes.recv() => {
                    let Some(payload) = note else {
                        return Err((true, "listener connection ended".to_owned()));
                    };
                    match parse(&payload) {
                        Some((tenant, seq)) => {
                            counters.doorbells.fetch_add(1, Ordering::SeqCst);
                            if let Some(head) = rung.get_mut(&tenant) {
                                *head = (*head).max(seq);
                            } else if rung.len() < options.max_rung_households {
                                rung.insert(tenant, seq);
                                counters.rung_households.store(rung.len(), Ordering::SeqCst);
                            }
                            let _ = signals.send(FeedSignal::Committed { tenant, seq });
                        }
                        None => {
                            counters.malformed.fetch_add(1, Ordering::SeqCst);
                            let _ = malformed_log.record(&payload);
                        }
                    }
                }
                () = overflow.notified() => {
                    // Doorbells were dropped: every reader re-reads from its cursor.
                    let _ = signals.send(FeedSignal::Resync);
                }
                _ = tick.tick() => {
                    let now = poll_heads(&client)
                        .await
                        .map_err(|e| (true, crate::sql::describe(&e)))?;
                    for (&tenant, &seq) in &now {
                        let before = polled.get(&tenant).copied().unwrap_or(0);
                        // A doorbell said so already, unless it claimed more than the
                        // household has (a doorbell of a real commit never can: the poll
                        // reads after it): a forged one must not hide a real commit.
                        let told = rung.get(&tenant).copied().filter(|&r| r <= seq).unwrap_or(0);
                        if seq > before && seq > told {
                            tracing::debug!(%tenant, seq, "fallback poll found a commit without doorbell");
                            let _ = signals.send(FeedSignal::Committed { tenant, seq });
                        }
                    }
                    polled = now;
                    rung = HashMap::new();
                    counters.polled_households.store(polled.len(), Ordering::SeqCst);
                    counters.rung_households.store(0, Ordering::SeqCst);
                }
            }
        }
    }
    .await;
    driver.abort();
    let result: Result<(), (bool, String)> = result;
    match result {
        Ok(()) => ended(true, String::new()),
        Err((listened, error)) => ended(listened, error),
    }
}

/// Every household's head, as the relay role sees it (none as any other role).
async fn poll_heads(
    client: &tokio_postgres::Client,
) -> Result<HashMap<HouseholdId, u64>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT tenant_id, last_seq FROM households WHERE last_seq > 0",
            &[],
        )
        .await?;
    let mut heads = HashMap::with_capacity(rows.len());
    for row in rows {
        let tenant: Uuid = row.try_get(0)?;
        let seq: i64 = row.try_get(1)?;
        heads.insert(HouseholdId(tenant), u64::try_from(seq).unwrap_or(0));
    }
    Ok(heads)
}

/// Logs malformed doorbells at most once per [`MalformedLog::EVERY`], with how many
/// arrived since the last line and a short sample: a flood costs one line a minute.
#[derive(Debug, Default)]
struct MalformedLog {
    last: Option<tokio::time::Instant>,
    since: u64,
}

impl MalformedLog {
    const EVERY: Duration = Duration::from_secs(60);

    /// Counts one; true if it wrote a line.
    fn record(&mut self, payload: &str) -> bool {
        self.since += 1;
        let now = tokio::time::Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < Self::EVERY)
        {
            return false;
        }
        let sample: String = payload.chars().take(64).collect();
        tracing::warn!(
            channel = FEED_CHANNEL,
            count = self.since,
            sample = %sample.escape_debug(),
            "ignored malformed doorbells (not `<household id>:<seq>`): someone with a \
             database login is notifying the channel"
        );
        self.last = Some(now);
        self.since = 0;
        true
    }
}

fn parse(payload: &str) -> Option<(HouseholdId, u64)> {
    let (tenant, seq) = payload.split_once(':')?;
    Some((HouseholdId(tenant.parse().ok()?), seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doorbell_payload_is_household_and_seq() {
        let id = Uuid::now_v7();
        assert_eq!(parse(&format!("{id}:42")), Some((HouseholdId(id), 42)));
        assert_eq!(parse("nonsense"), None);
        assert_eq!(parse(&format!("{id}:-1")), None);
    }

    #[tokio::test(start_paused = true)]
    async fn malformed_doorbells_are_logged_once_a_minute() {
        let mut log = MalformedLog::default();
        assert!(log.record("first"), "the first one is logged");
        for _ in 0..10_000 {
            assert!(!log.record("flood"));
        }
        tokio::time::advance(MalformedLog::EVERY - Duration::from_millis(1)).await;
        assert!(!log.record("still within the minute"));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(log.record("a minute later"));
        assert_eq!(log.since, 0);
    }
}
