use async_trait::async_trait;
use hearth_core::EventId;
use hearth_core::ports::{Handoff, Job, JobScheduler, SchedulerError};
use std::collections::HashSet;
use std::sync::Mutex;

/// Keeps started jobs in a queue that an in-process executor drains. Starting a
/// job twice queues it once.
#[derive(Debug, Default)]
pub struct MemoryJobScheduler {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashSet<EventId>,
    queue: Vec<Job>,
}

impl MemoryJobScheduler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the jobs started since the last call, in start order.
    pub fn take(&self) -> Vec<Job> {
        std::mem::take(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()).queue)
    }

    /// How many times job `id` sits in the queue (0 or 1: starts are deduplicated).
    pub fn queued(&self, id: EventId) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.queue.iter().filter(|j| j.id == id).count()
    }

    /// How many distinct jobs were ever started.
    pub fn started(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .seen
            .len()
    }
}

#[async_trait]
impl JobScheduler for MemoryJobScheduler {
    /// The queue stands for a durable scheduler: the relay marks the job at once.
    async fn start(&self, job: Job) -> Result<Handoff, SchedulerError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.seen.insert(job.id) {
            inner.queue.push(job);
        }
        Ok(Handoff::Durable)
    }
}
