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

use futures::StreamExt;
use hearth_core::HouseholdId;
use hearth_core::ports::{EventFeed, FeedSignal, FeedStream};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_postgres::{AsyncMessage, Config, NoTls};
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
    pub capacity: usize,
}

impl Default for FeedOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(1500),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            application_name: "hearth-feed".into(),
            capacity: 4096,
        }
    }
}

/// The feed of committed appends. Connect it as the relay role (the fallback poll
/// reads `households.tenant_id, last_seq` across households; LISTEN itself needs no
/// grant). Dropping it stops its task and closes its connection.
pub struct PgEventFeed {
    signals: broadcast::Sender<FeedSignal>,
    connects: Arc<AtomicU64>,
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
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(run(
            config,
            options,
            signals.clone(),
            connects.clone(),
            stopped,
        ));
        Self {
            signals,
            connects,
            shutdown: Some(stop),
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

async fn run(
    config: Config,
    options: FeedOptions,
    signals: broadcast::Sender<FeedSignal>,
    connects: Arc<AtomicU64>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut config = config;
    config.application_name(&options.application_name);
    let mut backoff = options.min_backoff;
    loop {
        let session = listen(&config, &options, &signals, &connects);
        let ended = tokio::select! {
            _ = &mut stopped => return,
            ended = session => ended,
        };
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
async fn listen(
    config: &Config,
    options: &FeedOptions,
    signals: &broadcast::Sender<FeedSignal>,
    connects: &AtomicU64,
) -> Ended {
    let ended = |listened, error: String| Ended { listened, error };
    let (client, mut connection) = match config.connect(NoTls).await {
        Ok(pair) => pair,
        Err(e) => return ended(false, crate::sql::describe(&e)),
    };
    let (notes_tx, mut notes) = mpsc::unbounded_channel::<String>();
    // Drives the connection and forwards its notifications; ends with it.
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if notes_tx.send(n.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return crate::sql::describe(&e),
            }
        }
        "connection closed".to_owned()
    });
    let result = async {
        // LISTEN first, then read the heads, then tell readers to re-read.
        client
            .batch_execute(&format!("LISTEN {FEED_CHANNEL}"))
            .await
            .map_err(|e| (false, crate::sql::describe(&e)))?;
        let mut heads = poll_heads(&client)
            .await
            .map_err(|e| (false, crate::sql::describe(&e)))?;
        connects.fetch_add(1, Ordering::SeqCst);
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
                            let head = heads.entry(tenant).or_insert(0);
                            *head = (*head).max(seq);
                            let _ = signals.send(FeedSignal::Committed { tenant, seq });
                        }
                        None => tracing::debug!(%payload, "ignored a malformed doorbell"),
                    }
                }
                _ = tick.tick() => {
                    let now = poll_heads(&client)
                        .await
                        .map_err(|e| (true, crate::sql::describe(&e)))?;
                    for (tenant, seq) in now {
                        let head = heads.entry(tenant).or_insert(0);
                        if seq > *head {
                            *head = seq;
                            tracing::debug!(%tenant, seq, "fallback poll found a commit without doorbell");
                            let _ = signals.send(FeedSignal::Committed { tenant, seq });
                        }
                    }
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
}
