//! The outbox relay against the in-memory store and feed (real implementations of the
//! ports) and schedulers of both handoffs.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use async_trait::async_trait;
use hearth_contract::fixtures::{append, household, order_id};
use hearth_core::EventId;
use hearth_core::ports::{
    EventFeed, EventStore, Handoff, Job, JobScheduler, Outbox, SchedulerError,
};
use hearth_memory::MemoryEventStore;
use hearth_relay::{Pass, Relay, RelayConfig, RelayError, relay_once};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Records every start, answers with `handoff`, and fails the starts it is told to.
#[derive(Debug)]
struct Recorder {
    handoff: Handoff,
    starts: Mutex<Vec<EventId>>,
    fail: Mutex<Option<EventId>>,
    started: Notify,
}

impl Recorder {
    fn new(handoff: Handoff) -> Arc<Self> {
        Arc::new(Self {
            handoff,
            starts: Mutex::new(Vec::new()),
            fail: Mutex::new(None),
            started: Notify::new(),
        })
    }

    fn starts(&self) -> Vec<EventId> {
        self.starts.lock().unwrap().clone()
    }

    /// Waits (at most 10 s) until `n` starts were recorded.
    async fn until_started(&self, n: usize) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let notified = self.started.notified();
                if self.starts().len() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{n} starts expected, got {:?}", self.starts()));
    }
}

#[async_trait]
impl JobScheduler for Recorder {
    async fn start(&self, job: Job) -> Result<Handoff, SchedulerError> {
        if *self.fail.lock().unwrap() == Some(job.id) {
            return Err(SchedulerError::Unavailable("told to fail".into()));
        }
        self.starts.lock().unwrap().push(job.id);
        self.started.notify_waiters();
        Ok(self.handoff)
    }
}

/// A store with `n` placed orders of one household, so `n` pending jobs.
async fn with_jobs(n: usize) -> Arc<MemoryEventStore> {
    let store = Arc::new(MemoryEventStore::new());
    let tenant = household();
    for _ in 0..n {
        store
            .append(append(tenant, order_id(), 0, 1))
            .await
            .unwrap();
    }
    assert_eq!(store.pending_jobs(100).await.unwrap().len(), n);
    store
}

/// Neither the poll nor a missing signal can drive a test that sets this.
const NEVER: Duration = Duration::from_secs(3_600);

#[tokio::test]
async fn a_durable_handoff_is_marked_and_not_offered_again() {
    let store = with_jobs(2).await;
    let scheduler = Recorder::new(Handoff::Durable);
    let pass = relay_once(&*store, &*scheduler, 100).await.unwrap();
    assert_eq!(pass, Pass { read: 2, marked: 2 });
    assert!(store.pending_jobs(100).await.unwrap().is_empty());
    let again = relay_once(&*store, &*scheduler, 100).await.unwrap();
    assert_eq!(again, Pass::default());
    assert_eq!(scheduler.starts().len(), 2);
}

#[tokio::test]
async fn an_in_process_handoff_stays_pending_until_its_work_marks_it() {
    let store = with_jobs(1).await;
    let scheduler = Recorder::new(Handoff::InProcess);
    let pass = relay_once(&*store, &*scheduler, 100).await.unwrap();
    assert_eq!(pass, Pass { read: 1, marked: 0 });
    let pending = store.pending_jobs(100).await.unwrap();
    assert_eq!(
        pending.len(),
        1,
        "the pending row is the job's durable state"
    );
    // Offered again on the next pass (the executor takes each job on once).
    relay_once(&*store, &*scheduler, 100).await.unwrap();
    assert_eq!(scheduler.starts(), vec![pending[0].id, pending[0].id]);
    // The executor marks it when the process ends: then it is gone.
    store
        .mark_job_started(pending[0].tenant, pending[0].id)
        .await
        .unwrap();
    assert_eq!(
        relay_once(&*store, &*scheduler, 100).await.unwrap(),
        Pass::default()
    );
}

#[tokio::test]
async fn a_failed_start_leaves_that_job_and_the_later_ones_pending() {
    let store = with_jobs(3).await;
    let jobs = store.pending_jobs(100).await.unwrap();
    let scheduler = Recorder::new(Handoff::Durable);
    *scheduler.fail.lock().unwrap() = Some(jobs[1].id);
    let error = relay_once(&*store, &*scheduler, 100).await.unwrap_err();
    assert!(matches!(error, RelayError::Scheduler(_)), "{error:?}");
    let left: Vec<EventId> = store
        .pending_jobs(100)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(left, vec![jobs[1].id, jobs[2].id], "oldest first, in order");
    *scheduler.fail.lock().unwrap() = None;
    relay_once(&*store, &*scheduler, 100).await.unwrap();
    assert!(store.pending_jobs(100).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_commit_wakes_the_relay_without_waiting_for_its_poll() {
    let store = Arc::new(MemoryEventStore::new());
    let feed: Arc<dyn EventFeed> = Arc::new(store.feed());
    let scheduler = Recorder::new(Handoff::Durable);
    let config = RelayConfig {
        poll_interval: NEVER,
        ..RelayConfig::default()
    };
    store
        .append(append(household(), order_id(), 0, 1))
        .await
        .unwrap();
    let mut relay = Relay::spawn(store.clone(), scheduler.clone(), Some(feed), config);
    // The first pass read its page before this start: the next job can only be
    // found by a later pass.
    scheduler.until_started(1).await;
    store
        .append(append(household(), order_id(), 0, 1))
        .await
        .unwrap();
    scheduler.until_started(2).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_kick_runs_a_pass_when_there_is_no_feed() {
    let store = Arc::new(MemoryEventStore::new());
    let scheduler = Recorder::new(Handoff::Durable);
    let config = RelayConfig {
        poll_interval: NEVER,
        ..RelayConfig::default()
    };
    store
        .append(append(household(), order_id(), 0, 1))
        .await
        .unwrap();
    let mut relay = Relay::spawn(store.clone(), scheduler.clone(), None, config);
    scheduler.until_started(1).await;
    store
        .append(append(household(), order_id(), 0, 1))
        .await
        .unwrap();
    relay.kick();
    scheduler.until_started(2).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_full_page_of_durable_jobs_is_followed_by_the_next_page_at_once() {
    // Five jobs, pages of two: one start (the initial pass) must drain them all,
    // with no signal and no poll to help.
    let store = with_jobs(5).await;
    let scheduler = Recorder::new(Handoff::Durable);
    let config = RelayConfig {
        poll_interval: NEVER,
        batch: 2,
        ..RelayConfig::default()
    };
    let mut relay = Relay::spawn(store.clone(), scheduler.clone(), None, config);
    scheduler.until_started(5).await;
    relay.stop().await;
    assert!(store.pending_jobs(100).await.unwrap().is_empty());
}
