//! The outbox relay: hands the jobs a store recorded with their events (the
//! [`Outbox`]) to the [`JobScheduler`] that runs durable work. One relay for every
//! executor: the embedded executor and the Temporal adapter differ only in their
//! scheduler's [`Handoff`].
//!
//! - A job the scheduler holds durably (`Handoff::Durable`, Temporal) is marked started
//!   at once; a crash between the start and the mark starts it again on the next pass,
//!   which the scheduler makes a no-op.
//! - A job run in this process (`Handoff::InProcess`, the embedded executor) stays
//!   pending, and so is offered again on every pass until the executor marks it when
//!   its work ends; the scheduler takes each job on once.
//!
//! A pass runs at start, on each feed signal (debounced: a burst of commits costs one
//! scan), on [`Relay::kick`], and every `poll_interval` for signals that were missed.

use futures::{FutureExt, StreamExt};
use hearth_core::ports::{
    EventFeed, FeedStream, Handoff, JobScheduler, Outbox, SchedulerError, StoreError,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
}

/// How the relay paces itself.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// The slow poll of the outbox, for jobs whose doorbell was missed.
    pub poll_interval: Duration,
    /// After a feed signal, wait this long and take every signal that came meanwhile
    /// as one.
    pub signal_debounce: Duration,
    /// Pending jobs read per pass. Jobs run in process stay pending while they run, so
    /// this is also about how many of them a pass can see.
    pub batch: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(5),
            signal_debounce: Duration::from_millis(20),
            batch: 10_000,
        }
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Pending jobs read.
    pub read: usize,
    /// Jobs marked started (held durably by the scheduler now).
    pub marked: usize,
}

/// One pass: reads up to `batch` pending jobs, oldest first, starts each, and marks
/// the ones the scheduler now holds durably. Stops at the first failure: the failed
/// job and the ones after it stay pending for the next pass.
pub async fn relay_once(
    outbox: &dyn Outbox,
    scheduler: &dyn JobScheduler,
    batch: usize,
) -> Result<Pass, RelayError> {
    let jobs = outbox.pending_jobs(batch).await?;
    let mut pass = Pass {
        read: jobs.len(),
        marked: 0,
    };
    for job in jobs {
        let (tenant, id) = (job.tenant, job.id);
        let span = hearth_core::trace::job(&job);
        match scheduler.start(job).instrument(span).await? {
            Handoff::Durable => {
                outbox.mark_job_started(tenant, id).await?;
                pass.marked += 1;
            }
            Handoff::InProcess => {}
        }
    }
    Ok(pass)
}

/// A running relay. Dropping it stops it.
#[derive(Debug)]
pub struct Relay {
    stop: CancellationToken,
    kick: Arc<Notify>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    /// Subscribes to `feed` (if any), then runs passes until stopped. Must be called
    /// within a tokio runtime.
    pub fn spawn(
        outbox: Arc<dyn Outbox>,
        scheduler: Arc<dyn JobScheduler>,
        feed: Option<Arc<dyn EventFeed>>,
        config: RelayConfig,
    ) -> Self {
        let stop = CancellationToken::new();
        let kick = Arc::new(Notify::new());
        // Subscribe before the first pass: a commit after the pass rings the doorbell.
        let signals = feed.map(|f| f.subscribe());
        let task = tokio::spawn(run(
            outbox,
            scheduler,
            signals,
            config,
            stop.clone(),
            kick.clone(),
        ));
        Self {
            stop,
            kick,
            task: Some(task),
        }
    }

    /// Runs a pass now instead of at the next signal or poll.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Stops (a pass in progress is abandoned, which is safe) and waits for the task.
    pub async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn run(
    outbox: Arc<dyn Outbox>,
    scheduler: Arc<dyn JobScheduler>,
    mut signals: Option<FeedStream>,
    config: RelayConfig,
    stop: CancellationToken,
    kick: Arc<Notify>,
) {
    let batch = config.batch.max(1);
    loop {
        let pass = tokio::select! {
            () = stop.cancelled() => return,
            pass = relay_once(&*outbox, &*scheduler, batch) => pass,
        };
        match pass {
            // A full page moved on: the next page is waiting now.
            Ok(pass) if pass.read == batch && pass.marked > 0 => continue,
            Ok(_) => {}
            Err(RelayError::Scheduler(SchedulerError::Unavailable(reason)))
                if stop.is_cancelled() =>
            {
                tracing::debug!(%reason, "job relay stopping");
                return;
            }
            Err(error) => tracing::warn!(%error, "job relay: a pass failed; retrying"),
        }
        let signal = async {
            match signals.as_mut() {
                Some(stream) => stream.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(config.poll_interval) => {}
            () = kick.notified() => {}
            next = signal => match next {
                Some(_) => {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(config.signal_debounce) => {}
                    }
                    // Take the signals that came meanwhile as this one.
                    if let Some(stream) = signals.as_mut() {
                        while let Some(Some(_)) = stream.next().now_or_never() {}
                    }
                }
                None => {
                    tracing::warn!("the event feed ended; the job relay relies on its poll");
                    signals = None;
                }
            },
        }
    }
}
