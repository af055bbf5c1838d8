//! The embedded executor: every domain's process (order fulfilment, chore reminders)
//! run in-process, from the jobs outbox, for a server without Temporal.
//!
//! **The outbox is the durable state.** A job stays pending while its order's process
//! runs; it is marked (`mark_job_started`, read here as "taken care of") only when
//! [`Fulfilment::run`] reaches `Done` or `Stuck`. On start, and so after any restart or
//! crash, the executor loads the pending jobs and resumes each order from its
//! event-sourced state: the pure process knows the next step, and the steps'
//! idempotency keys and command ids make a repeated step harmless.
//!
//! - Due times come from the state: `Waiting { until }` (ready-at) becomes a sleep,
//!   re-derived after a restart.
//! - Attempts and backoff (exponential, jittered, bounded) for retryable errors live in
//!   memory: a restart resets them, which only means an early retry of a step that is
//!   safe to repeat.
//! - A new job for a running order (a cancel) wakes its task at once.
//! - One task per order at a time; at most `concurrency` orders doing a step at once
//!   (sleeping orders hold no permit).
//!
//! See docs/durable.md for the restart semantics in full.

use async_trait::async_trait;
use hearth_core::durable::{Advance, Processes};
use hearth_core::ports::{EventFeed, Handoff, Job, JobScheduler, Outbox, SchedulerError};
use hearth_core::trace::{self, Cause};
use hearth_core::{AggregateId, EventId, HouseholdId};
use hearth_relay::{Relay, RelayConfig};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// How the executor paces itself.
#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    /// Orders doing a step at once (a sleeping order does not count).
    pub concurrency: usize,
    /// The slow poll of the outbox, for jobs whose doorbell was missed.
    pub poll_interval: Duration,
    /// After a feed signal, wait this long and take every signal that came meanwhile
    /// as one, so a burst of commits costs one outbox scan.
    pub signal_debounce: Duration,
    /// Pending jobs read per scan.
    pub scan_limit: usize,
    /// First retry delay after a retryable error; doubles per attempt.
    pub backoff_base: Duration,
    /// The longest retry delay.
    pub backoff_max: Duration,
    /// The longest single sleep: a long wait is re-derived from the state this often,
    /// so a changed clock or order is noticed.
    pub max_sleep: Duration,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            poll_interval: Duration::from_secs(5),
            signal_debounce: Duration::from_millis(20),
            scan_limit: 10_000,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(60),
            max_sleep: Duration::from_secs(300),
        }
    }
}

/// The delay before retry number `attempt` (1-based): exponential from `base`, capped
/// at `max`, with "equal jitter" (a random point in the upper half) so orders failing
/// together do not retry together.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let delay = base.saturating_mul(1u32 << exp).min(max);
    let half = delay / 2;
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(attempt);
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    let jitter = if nanos == 0 {
        0
    } else {
        hasher.finish() % (nanos + 1)
    };
    half + Duration::from_nanos(jitter)
}

type OrderKey = (HouseholdId, AggregateId);

/// Forget finished job ids past this many (the store no longer lists them anyway).
const DONE_MEMORY: usize = 100_000;

#[derive(Debug)]
struct Running {
    wake: Arc<Notify>,
    /// The jobs this task takes care of: marked when the process ends.
    jobs: Vec<Job>,
    /// Bumped when a job joins: a process that ended before the join must run again.
    joined: u64,
    abort: Option<AbortHandle>,
}

#[derive(Debug, Default)]
struct Orders {
    running: HashMap<OrderKey, Running>,
    /// Jobs taken care of (marked, or being marked) by this executor.
    done: HashSet<EventId>,
    /// How many times each job was taken on (a diagnostic for the scheduler probe).
    taken: HashMap<EventId, usize>,
}

#[derive(Debug)]
struct Shared {
    processes: Processes,
    /// Where the jobs are marked when their order's process ends.
    outbox: Arc<dyn Outbox>,
    config: ExecutorConfig,
    permits: Semaphore,
    orders: Mutex<Orders>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Shared {
    fn orders(&self) -> MutexGuard<'_, Orders> {
        self.orders.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running executor. Dropping it stops it (tasks end at their next pause; a step
/// in flight is abandoned, which is safe); [`EmbeddedExecutor::shutdown`] stops it
/// cleanly and waits.
#[derive(Debug)]
pub struct EmbeddedExecutor {
    shared: Arc<Shared>,
    relay: Relay,
}

impl EmbeddedExecutor {
    /// Starts the outbox relay (`hearth_relay`: feed signals plus a slow poll) with
    /// this executor as its scheduler, which resumes every pending job. Must be called
    /// within a tokio runtime.
    pub fn start(
        processes: Processes,
        outbox: Arc<dyn Outbox>,
        feed: Option<Arc<dyn EventFeed>>,
        config: ExecutorConfig,
    ) -> Self {
        let relay_config = RelayConfig {
            poll_interval: config.poll_interval,
            signal_debounce: config.signal_debounce,
            batch: config.scan_limit,
        };
        let shared = Arc::new(Shared {
            processes,
            outbox: outbox.clone(),
            permits: Semaphore::new(config.concurrency.max(1)),
            config,
            orders: Mutex::new(Orders::default()),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        let scheduler = Arc::new(EmbeddedScheduler {
            shared: shared.clone(),
        });
        let relay = Relay::spawn(outbox, scheduler, feed, relay_config);
        Self { shared, relay }
    }

    /// The [`JobScheduler`] face of this executor.
    pub fn scheduler(&self) -> EmbeddedScheduler {
        EmbeddedScheduler {
            shared: self.shared.clone(),
        }
    }

    /// Scans the outbox now instead of at the next signal or poll.
    pub fn kick(&self) {
        self.relay.kick();
    }

    /// Orders with a task now (running a step, sleeping, or backing off).
    pub fn running(&self) -> usize {
        self.shared.orders().running.len()
    }

    /// How many times this executor took on job `id` (0 or 1 unless it was forgotten).
    pub fn runs(&self, id: EventId) -> usize {
        self.shared.orders().taken.get(&id).copied().unwrap_or(0)
    }

    /// Stops scanning and waking, lets every step in flight finish and be recorded,
    /// and waits for all tasks. Pending jobs stay pending for the next start.
    pub async fn shutdown(mut self) {
        self.relay.stop().await;
        self.shared.stop.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }

    /// Stops at once, abandoning steps in flight (as a crash would, but in-process).
    pub fn abort(self) {
        // The relay stops when `self` is dropped, at the end.
        self.shared.stop.cancel();
        let mut orders = self.shared.orders();
        for running in orders.running.values_mut() {
            if let Some(abort) = running.abort.take() {
                abort.abort();
            }
        }
    }
}

impl Drop for EmbeddedExecutor {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

/// Takes on a job: joins the order's running task (waking it), or starts one.
fn submit(shared: &Arc<Shared>, job: Job) -> Result<(), SchedulerError> {
    if shared.stop.is_cancelled() {
        return Err(SchedulerError::Unavailable(
            "the embedded executor is stopped".into(),
        ));
    }
    let key = (job.tenant, job.aggregate);
    let mut orders = shared.orders();
    if orders.done.contains(&job.id) {
        return Ok(());
    }
    let id = job.id;
    if let Some(running) = orders.running.get_mut(&key) {
        if running.jobs.iter().any(|j| j.id == id) {
            return Ok(());
        }
        tracing::debug!(job = %id, kind = job.kind.as_str(), aggregate = %job.aggregate, "job joins its aggregate's task");
        running.jobs.push(job);
        running.joined += 1;
        // A cancel must not wait for ready-at or a backoff.
        running.wake.notify_one();
    } else {
        tracing::debug!(job = %id, kind = job.kind.as_str(), aggregate = %job.aggregate, "job starts its aggregate's task");
        let wake = Arc::new(Notify::new());
        let handle = shared
            .tasks
            .spawn(order_task(shared.clone(), key, wake.clone()));
        orders.running.insert(
            key,
            Running {
                wake,
                jobs: vec![job],
                joined: 0,
                abort: Some(handle.abort_handle()),
            },
        );
    }
    *orders.taken.entry(id).or_default() += 1;
    if orders.taken.len() > DONE_MEMORY {
        orders.taken.clear();
    }
    Ok(())
}

/// One order's process: run, then sleep until ready-at, a backoff, a wake-up or stop.
async fn order_task(shared: Arc<Shared>, (tenant, order): OrderKey, wake: Arc<Notify>) {
    let mut attempts = 0u32;
    loop {
        // The latest job that joined says on whose behalf the process runs (a cancel
        // after the order was placed): its correlation id and its event as the cause.
        let (seen, job) = {
            let orders = shared.orders();
            let running = orders.running.get(&(tenant, order));
            (
                running.map_or(0, |r| r.joined),
                running.and_then(|r| r.jobs.last()).cloned(),
            )
        };
        let (cause, span) = match &job {
            Some(job) => (Cause::of(job), trace::job(job)),
            None => (Cause::default(), tracing::Span::none()),
        };
        let outcome = {
            let _permit = tokio::select! {
                permit = shared.permits.acquire() => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
                () = shared.stop.cancelled() => return,
            };
            shared
                .processes
                .run_for(tenant, order, cause)
                .instrument(span)
                .await
        };
        let pause = match outcome {
            Ok(Advance::Done) => {
                if finish(&shared, (tenant, order), seen).await {
                    tracing::info!(%tenant, aggregate = %order, "process done");
                    return;
                }
                Duration::ZERO
            }
            Ok(Advance::Stuck { step, error }) => {
                if finish(&shared, (tenant, order), seen).await {
                    tracing::error!(%tenant, aggregate = %order, step, %error,
                        "process stuck: left to an operator");
                    return;
                }
                Duration::ZERO
            }
            Ok(Advance::Waiting { until }) => {
                attempts = 0;
                let now = shared.processes.service().clock().now();
                let left = (until - now).to_std().unwrap_or(Duration::ZERO);
                tracing::debug!(%tenant, aggregate = %order, %until, "process waiting");
                left.min(shared.config.max_sleep)
            }
            // `run` goes on while it progresses; be safe if that ever changes.
            Ok(Advance::Progressed { .. }) => {
                attempts = 0;
                Duration::ZERO
            }
            Err(error) => {
                attempts = attempts.saturating_add(1);
                let delay = backoff(
                    attempts,
                    shared.config.backoff_base,
                    shared.config.backoff_max,
                );
                if error.is_retryable() {
                    tracing::warn!(%tenant, aggregate = %order, attempts, ?delay, %error, "step failed; retrying");
                } else {
                    // Not meant to be retried (a corrupt store, say), but giving up would
                    // strand the job: keep trying at the bounded backoff, loudly.
                    tracing::error!(%tenant, aggregate = %order, attempts, ?delay, %error, "step failed for good; retrying anyway");
                }
                delay
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = wake.notified() => {}
            () = shared.stop.cancelled() => return,
        }
    }
}

/// The process is over: take the order out of the running map and mark its jobs.
/// Returns false, and does nothing, if a job joined since the run began (`seen`): a
/// cancel committed just after the run ended must not be marked unseen.
async fn finish(shared: &Arc<Shared>, key: OrderKey, seen: u64) -> bool {
    let jobs = {
        let mut orders = shared.orders();
        if orders.running.get(&key).is_some_and(|r| r.joined != seen) {
            return false;
        }
        let jobs = orders
            .running
            .remove(&key)
            .map(|r| r.jobs)
            .unwrap_or_default();
        if orders.done.len() + jobs.len() > DONE_MEMORY {
            orders.done.clear();
        }
        orders.done.extend(jobs.iter().map(|j| j.id));
        jobs
    };
    for job in jobs {
        if let Err(error) = shared.outbox.mark_job_started(job.tenant, job.id).await {
            // Still pending: the next scan takes it on again, finds the process over,
            // and marks it then.
            tracing::warn!(job = %job.id, %error, "cannot mark a finished job");
            shared.orders().done.remove(&job.id);
        }
    }
    true
}

/// The embedded executor as a [`JobScheduler`]: starting a job takes it on (once,
/// whatever the number of starts). The job must already be in the outbox, where it was
/// recorded with its event: it is marked there when its process ends, not at start.
#[derive(Clone, Debug)]
pub struct EmbeddedScheduler {
    shared: Arc<Shared>,
}

#[async_trait]
impl JobScheduler for EmbeddedScheduler {
    async fn start(&self, job: Job) -> Result<Handoff, SchedulerError> {
        submit(&self.shared, job)?;
        Ok(Handoff::InProcess)
    }
}
