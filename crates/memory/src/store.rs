use async_trait::async_trait;
use hearth_core::ports::{
    Append, Appended, Decision, EventFeed, EventStore, FeedSignal, FeedStream, Job, Loaded, Outbox,
    Snapshot, StoreError,
};
use hearth_core::{AggregateId, CommandId, CommandOutcome, EventEnvelope, EventId, HouseholdId};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// The event store in process memory. One mutex: appends are atomic and
/// commit-ordered by construction.
#[derive(Debug)]
pub struct MemoryEventStore {
    inner: Mutex<Inner>,
    doorbell: broadcast::Sender<FeedSignal>,
}

#[derive(Debug, Default)]
struct Inner {
    households: HashMap<HouseholdId, Household>,
    /// Jobs not yet started, keyed by insertion order.
    jobs: BTreeMap<u64, Job>,
    next_job: u64,
}

#[derive(Debug, Default)]
struct Household {
    /// `events[i].seq == i + 1`.
    events: Vec<EventEnvelope>,
    /// Indexes into `events`, per aggregate, in version order.
    streams: HashMap<AggregateId, Vec<usize>>,
    commands: HashMap<CommandId, CommandOutcome>,
    snapshots: HashMap<AggregateId, Snapshot>,
}

impl Default for MemoryEventStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryEventStore {
    pub fn new() -> Self {
        let (doorbell, _) = broadcast::channel(1024);
        Self {
            inner: Mutex::new(Inner::default()),
            doorbell,
        }
    }

    /// The feed of this store's commits.
    pub fn feed(self: &Arc<Self>) -> MemoryEventFeed {
        MemoryEventFeed {
            doorbell: self.doorbell.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl EventStore for MemoryEventStore {
    async fn append(&self, append: Append) -> Result<Appended, StoreError> {
        let tenant = append.command.tenant;
        let command_id = append.command.id;
        let mut inner = self.lock();
        let household = inner.households.entry(tenant).or_default();
        if let Some(outcome) = household.commands.get(&command_id) {
            return Ok(Appended::Duplicate(outcome.clone()));
        }
        let (aggregate, expected_version, new_events) = match append.decision {
            Decision::Rejected { code, message } => {
                let outcome = CommandOutcome::Rejected { code, message };
                household.commands.insert(command_id, outcome.clone());
                return Ok(Appended::Committed {
                    events: Vec::new(),
                    outcome,
                });
            }
            Decision::Events {
                aggregate,
                expected_version,
                events,
            } => (aggregate, expected_version, events),
        };
        let current = household
            .streams
            .get(&aggregate)
            .map_or(0, |s| u32::try_from(s.len()).unwrap_or(u32::MAX));
        if !new_events.is_empty() && current != expected_version {
            return Err(StoreError::VersionConflict {
                aggregate,
                expected: expected_version,
            });
        }
        for (i, event) in new_events.iter().enumerate() {
            let want = expected_version as usize + 1 + i;
            if event.version as usize != want || event.aggregate() != aggregate {
                return Err(StoreError::Corrupt(format!(
                    "event {} has version {} for {}, expected {want} for {aggregate}",
                    event.id,
                    event.version,
                    event.aggregate()
                )));
            }
        }
        let mut committed = Vec::with_capacity(new_events.len());
        for event in new_events {
            let seq = household.events.len() as u64 + 1;
            household
                .streams
                .entry(aggregate)
                .or_default()
                .push(household.events.len());
            let envelope = EventEnvelope::committed(tenant, seq, event);
            household.events.push(envelope.clone());
            committed.push(envelope);
        }
        let seq = household.events.len() as u64;
        let outcome = CommandOutcome::Accepted {
            seq,
            events: u32::try_from(committed.len()).unwrap_or(u32::MAX),
        };
        household.commands.insert(command_id, outcome.clone());
        for job in committed
            .iter()
            .filter_map(|e| Job::for_append(&append.command, e))
        {
            inner.next_job += 1;
            let n = inner.next_job;
            inner.jobs.insert(n, job);
        }
        drop(inner);
        if !committed.is_empty() {
            // No receiver is not an error: nobody is listening yet.
            let _ = self.doorbell.send(FeedSignal::Committed { tenant, seq });
        }
        Ok(Appended::Committed {
            events: committed,
            outcome,
        })
    }

    async fn load(
        &self,
        tenant: HouseholdId,
        aggregate: AggregateId,
        snapshot_schema: u32,
    ) -> Result<Loaded, StoreError> {
        let inner = self.lock();
        let Some(household) = inner.households.get(&tenant) else {
            return Ok(Loaded::default());
        };
        let snapshot = household
            .snapshots
            .get(&aggregate)
            .filter(|s| s.schema_version == snapshot_schema)
            .cloned();
        let from = snapshot.as_ref().map_or(0, |s| s.version as usize);
        let events = household
            .streams
            .get(&aggregate)
            .map(|idx| {
                idx.iter()
                    .skip(from)
                    .map(|&i| household.events[i].clone())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Loaded { snapshot, events })
    }

    async fn read_feed(
        &self,
        tenant: HouseholdId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let inner = self.lock();
        let Some(household) = inner.households.get(&tenant) else {
            return Ok(Vec::new());
        };
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(household.events.len());
        Ok(household.events[start..]
            .iter()
            .take(limit)
            .cloned()
            .collect())
    }

    async fn head(&self, tenant: HouseholdId) -> Result<u64, StoreError> {
        Ok(self
            .lock()
            .households
            .get(&tenant)
            .map_or(0, |h| h.events.len() as u64))
    }

    async fn outcome(
        &self,
        tenant: HouseholdId,
        command_id: CommandId,
    ) -> Result<Option<CommandOutcome>, StoreError> {
        Ok(self
            .lock()
            .households
            .get(&tenant)
            .and_then(|h| h.commands.get(&command_id).cloned()))
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let household = inner.households.entry(snapshot.tenant).or_default();
        let stream_len = household
            .streams
            .get(&snapshot.aggregate)
            .map_or(0, Vec::len);
        if snapshot.version as usize > stream_len {
            return Err(StoreError::Corrupt(format!(
                "snapshot of {} at version {} is ahead of its stream ({stream_len})",
                snapshot.aggregate, snapshot.version
            )));
        }
        match household.snapshots.get(&snapshot.aggregate) {
            Some(existing)
                if existing.schema_version == snapshot.schema_version
                    && existing.version >= snapshot.version => {}
            _ => {
                household.snapshots.insert(snapshot.aggregate, snapshot);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Outbox for MemoryEventStore {
    async fn pending_jobs(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        Ok(self.lock().jobs.values().take(limit).cloned().collect())
    }

    async fn mark_job_started(&self, tenant: HouseholdId, job: EventId) -> Result<(), StoreError> {
        self.lock()
            .jobs
            .retain(|_, j| !(j.tenant == tenant && j.id == job));
        Ok(())
    }
}

/// The doorbell of a [`MemoryEventStore`]: a broadcast channel. A subscriber that
/// falls behind gets [`FeedSignal::Resync`] instead of the signals it missed.
#[derive(Debug, Clone)]
pub struct MemoryEventFeed {
    doorbell: broadcast::Sender<FeedSignal>,
}

impl EventFeed for MemoryEventFeed {
    fn subscribe(&self) -> FeedStream {
        let rx = self.doorbell.subscribe();
        Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(signal) => Some((signal, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => Some((FeedSignal::Resync, rx)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        }))
    }
}
