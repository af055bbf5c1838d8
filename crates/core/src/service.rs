//! The application service (the seed's `Service`): load, decide, append with
//! the expected version, retry on conflict, report the outcome.

use crate::catalog::CatalogEntries;
use crate::contracts::{
    Actor, CommandEnvelope, CommandMetadata, CommandOutcome, EventEnvelope, EventMetadata,
    ExternalEvent, NewEvent,
};
use crate::domain::{AggregateId, Context, Rule};
use crate::ids::{CommandId, EventId, HouseholdId, derive};
use crate::order::{self, Orders};
use crate::ports::{
    Append, Appended, Catalog, Clock, Decision, EventStore, ProviderError, Snapshot, StoreError,
};
use crate::registry::{Caches, DomainVisitor, Registered};
use crate::trace;
use futures_channel::mpsc;
use futures_core::future::BoxFuture;
use std::sync::{Arc, Mutex};
use tracing::Instrument;
use uuid::Uuid;

#[derive(Clone, Copy, Debug)]
pub struct ServiceConfig {
    /// How many times a dispatch reloads and decides again after a version conflict.
    pub max_attempts: u32,
    /// A snapshot is written when a stream's version crosses a multiple of this: after
    /// the answer, by the [`SnapshotWriter`] if the service has one
    /// ([`Service::with_snapshot_writer`]), otherwise before it.
    pub snapshot_every: u32,
    /// Order states remembered between commands (about this many orders; 0 turns
    /// the cache off): see `dispatch`.
    pub cache_capacity: usize,
    /// How long an order takes to prepare ([`Context::prep_time`]): an order placed "as
    /// soon as possible" gets `placed + prep_time` as its ready-at. None by default (ready
    /// once confirmed), which tests of other things rely on; `hearth serve` sets its own
    /// (`--prep-time-secs`, 10 minutes).
    pub prep_time: chrono::Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            max_attempts: 16,
            snapshot_every: 50,
            cache_capacity: 16_384,
            prep_time: chrono::Duration::zero(),
        }
    }
}

/// A broken rule of any domain, as dispatch reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The rule's stable code (the wire's `rejected.code`).
    pub code: &'static str,
    /// Whether it depends on the state at the time (409) rather than on the command
    /// alone (422).
    pub conflict: bool,
    /// What was wrong, in particular.
    pub message: String,
}

impl Refused {
    pub fn from_rule<R: Rule>(rule: &R) -> Self {
        Self {
            code: rule.code(),
            conflict: rule.is_conflict(),
            message: rule.to_string(),
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What became of a dispatched command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dispatched {
    /// Applied now: these events were committed; `seq` is the household position
    /// after which its effects are visible.
    Accepted {
        events: Vec<EventEnvelope>,
        seq: u64,
    },
    /// Refused by a rule; recorded, so a repeat of the id gets the same answer.
    Rejected(Refused),
    /// The id was seen before: this is what became of it then. Nothing was appended.
    Duplicate(CommandOutcome),
}

impl Dispatched {
    /// The outcome as stored and as a repeat would see it.
    pub fn outcome(&self) -> CommandOutcome {
        match self {
            Dispatched::Accepted { events, seq } => CommandOutcome::Accepted {
                seq: *seq,
                events: u32::try_from(events.len()).unwrap_or(u32::MAX),
            },
            Dispatched::Rejected(refused) => CommandOutcome::Rejected {
                code: refused.code.to_owned(),
                message: refused.message.clone(),
            },
            Dispatched::Duplicate(outcome) => outcome.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(StoreError),
    /// Too many concurrent writers on one aggregate; the command was not applied.
    #[error("{aggregate} is contended: gave up after {attempts} version conflicts")]
    Contention {
        aggregate: AggregateId,
        attempts: u32,
    },
    /// The command names catalog entries and the catalog could not be read (or the
    /// service has none); nothing was decided or recorded, and the same command may
    /// be sent again.
    #[error("the catalog is unavailable: {0}")]
    CatalogUnavailable(ProviderError),
}

/// The application service of every registered domain. Clones share the store, the
/// clock and the cache of aggregate states.
#[derive(Debug, Clone)]
pub struct Service {
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    config: ServiceConfig,
    caches: Arc<Caches>,
    /// Where the entries a command names come from ([`Domain::catalog_skus`]).
    catalog: Option<Arc<dyn Catalog>>,
    /// Where snapshots go to be written after the answer, if anywhere.
    /// One sender for every clone: a futures sender takes one message past the bound
    /// for itself, so a sender per clone would not bound the queue.
    snapshots: Option<Arc<Mutex<mpsc::Sender<Snapshot>>>>,
}

/// How many snapshots may wait for the [`SnapshotWriter`]; one more is dropped (a
/// snapshot only saves folding: the next load folds a few more events).
pub const SNAPSHOT_QUEUE: usize = 1024;

/// Writes the snapshots a [`Service`] queued, after the commands that crossed a
/// snapshot boundary were answered: a snapshot is not needed for durability, so no
/// command waits for one. Run [`SnapshotWriter::run`] on the runtime; it ends when
/// every clone of its service is dropped, after the queued snapshots.
#[derive(Debug)]
pub struct SnapshotWriter {
    store: Arc<dyn EventStore>,
    queue: mpsc::Receiver<Snapshot>,
}

impl SnapshotWriter {
    /// Writes queued snapshots, one at a time, in queue order (a store keeps a stream's
    /// newest snapshot, so order only saves work). A failed write is dropped, as before
    /// the answer: the next load folds a few more events.
    pub async fn run(mut self) {
        use futures_core::Stream as _;
        while let Some(snapshot) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut self.queue).poll_next(cx)).await
        {
            let aggregate = snapshot.aggregate;
            if let Err(e) = self.store.save_snapshot(snapshot).await {
                tracing::debug!(%aggregate, error = %e, "snapshot not written");
            }
        }
    }
}

impl Service {
    pub fn new(store: Arc<dyn EventStore>, clock: Arc<dyn Clock>) -> Self {
        Self::with_config(store, clock, ServiceConfig::default())
    }

    pub fn with_config(
        store: Arc<dyn EventStore>,
        clock: Arc<dyn Clock>,
        config: ServiceConfig,
    ) -> Self {
        Self {
            store,
            clock,
            caches: Arc::new(Caches::new(config.cache_capacity)),
            config,
            catalog: None,
            snapshots: None,
        }
    }

    /// The service answering commands before their snapshots are written: it queues
    /// them (at most [`SNAPSHOT_QUEUE`]) for the returned writer, which the caller runs.
    pub fn with_snapshot_writer(mut self) -> (Self, SnapshotWriter) {
        let (sender, queue) = mpsc::channel(SNAPSHOT_QUEUE);
        self.snapshots = Some(Arc::new(Mutex::new(sender)));
        let writer = SnapshotWriter {
            store: self.store.clone(),
            queue,
        };
        (self, writer)
    }

    /// The service reading `catalog` for the commands that name its entries (placing
    /// an order). Without one such a command fails as
    /// [`ServiceError::CatalogUnavailable`].
    pub fn with_catalog(mut self, catalog: Arc<dyn Catalog>) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// The catalog decisions read (and `GET /catalog` shows), if any.
    pub fn catalog(&self) -> Option<&Arc<dyn Catalog>> {
        self.catalog.as_ref()
    }

    /// The entries of `skus`, read before deciding. A failed read first asks the store
    /// whether the command was already recorded, so a resend of a decided command gets
    /// its outcome even while the catalog is down.
    async fn catalog_entries(
        &self,
        command: &CommandEnvelope,
        skus: &[String],
    ) -> Result<Result<CatalogEntries, CommandOutcome>, ServiceError> {
        if skus.is_empty() {
            return Ok(Ok(CatalogEntries::none()));
        }
        let read = match &self.catalog {
            Some(catalog) => catalog.items().await,
            None => Err(ProviderError::Invalid(
                "no catalog is configured on this server".into(),
            )),
        };
        match read {
            Ok(items) => Ok(Ok(CatalogEntries::pick(items, skus))),
            Err(e) => match self.store.outcome(command.tenant, command.id).await {
                Ok(Some(outcome)) => Ok(Err(outcome)),
                Ok(None) | Err(_) => Err(ServiceError::CatalogUnavailable(e)),
            },
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Loads an aggregate's current state: snapshot, then the events after it.
    pub async fn load<D: Registered>(
        &self,
        tenant: HouseholdId,
        id: impl Into<Uuid>,
    ) -> Result<D::State, ServiceError> {
        Ok(self.load_with_time::<D>(tenant, id).await?.0)
    }

    /// [`Service::load`], and when the last event read was committed (`None` when
    /// the stream is empty or a snapshot covers all of it).
    pub async fn load_with_time<D: Registered>(
        &self,
        tenant: HouseholdId,
        id: impl Into<Uuid>,
    ) -> Result<(D::State, Option<crate::Timestamp>), ServiceError> {
        let aggregate = AggregateId::new(D::ID, id);
        let loaded = self
            .store
            .load(tenant, aggregate, D::SNAPSHOT_SCHEMA_VERSION)
            .await
            .map_err(ServiceError::Store)?;
        let mut state = match loaded.snapshot {
            Some(snapshot) if snapshot.schema_version == D::SNAPSHOT_SCHEMA_VERSION => {
                serde_json::from_value::<D::State>(snapshot.state).map_err(|e| {
                    ServiceError::Store(StoreError::Corrupt(format!(
                        "snapshot of {aggregate}: {e}"
                    )))
                })?
            }
            _ => D::State::default(),
        };
        for envelope in &loaded.events {
            let Some(event) = D::event_of(&envelope.event) else {
                return Err(ServiceError::Store(StoreError::Corrupt(format!(
                    "{aggregate} holds event {} of type {}, of another domain",
                    envelope.id,
                    envelope.event.type_name()
                ))));
            };
            state = D::evolve(state, event);
        }
        D::cache(&self.caches).put(tenant, aggregate.id, D::version(&state), state.clone());
        Ok((state, loaded.events.last().map(|e| e.created_at)))
    }

    /// Applies a command at most once.
    ///
    /// Decides against the aggregate's cached state when there is one (or, for a
    /// command that creates an aggregate, against an empty stream), so the common case
    /// costs the store one append and no read. A stale guess cannot do harm: the
    /// append carries the version the decision was made at, a store that has moved
    /// on refuses it as a version conflict, and the aggregate is read again. A refusal
    /// decided on a guess is checked again against the store's state before it is
    /// recorded, so a rule is never broken by, or blamed on, a stale cache.
    pub async fn dispatch(&self, mut command: CommandEnvelope) -> Result<Dispatched, ServiceError> {
        struct Visit<'a>(&'a Service, CommandEnvelope);
        impl<'a> DomainVisitor for Visit<'a> {
            type Output = BoxFuture<'a, Result<Dispatched, ServiceError>>;
            fn visit<D: Registered>(self) -> Self::Output {
                Box::pin(self.0.dispatch_in::<D>(self.1))
            }
        }
        let domain = command.command.domain();
        let span = trace::command(&command);
        if matches!(command.metadata.actor, Actor::Member { .. }) {
            // A member's command is an intent of its own: its own trace (linked to the
            // connection it came on), not a span of a connection's hours-long one.
            trace::start_trace(&span);
        }
        if command.metadata.traceparent.is_none() {
            // So the work its events ask for (a job, a workflow) continues this trace.
            command.metadata.traceparent = trace::traceparent(&span);
        }
        domain.visit(Visit(self, command)).instrument(span).await
    }

    /// One append, in a [`trace::append`] span that records the `seq` range given.
    async fn append(&self, append: Append) -> Result<Appended, StoreError> {
        let aggregate = append.command.command.aggregate();
        let span = trace::append(append.command.tenant, aggregate);
        let appended = self.store.append(append).instrument(span.clone()).await;
        if let Ok(Appended::Committed { events, .. }) = &appended
            && let (Some(first), Some(last)) = (events.first(), events.last())
        {
            trace::append_committed(&span, first.seq, last.seq, events.len());
        }
        appended
    }

    async fn dispatch_in<D: Registered>(
        &self,
        command: CommandEnvelope,
    ) -> Result<Dispatched, ServiceError> {
        let aggregate = command.command.aggregate();
        let Some(own) = D::command_of(&command.command) else {
            // `dispatch` routes by the command's own domain, so this cannot be.
            return Err(ServiceError::Store(StoreError::Corrupt(format!(
                "{} routed to the {} domain",
                command.command.type_name(),
                D::ID
            ))));
        };
        let tenant = command.tenant;
        // Loaded once, before any decision: the rules read the entries, never the port.
        let catalog = match self
            .catalog_entries(&command, &D::catalog_skus(own))
            .await?
        {
            Ok(entries) => entries,
            Err(outcome) => return Ok(Dispatched::Duplicate(outcome)),
        };
        let cache = D::cache(&self.caches);
        let mut guess_allowed = true;
        for _ in 0..self.config.max_attempts {
            let guess = if guess_allowed {
                cache
                    .get(tenant, aggregate.id)
                    .or_else(|| D::creates(own).then(D::State::default))
            } else {
                None
            };
            let (state, guessed) = match guess {
                Some(state) => (state, true),
                None => (self.load::<D>(tenant, aggregate.id).await?, false),
            };
            let now = self.clock.now();
            let ctx = Context {
                actor: command.metadata.actor.clone(),
                role: command.metadata.role,
                now,
                prep_time: self.config.prep_time,
                catalog: catalog.clone(),
            };
            let version = D::version(&state);
            let decision = match D::decide(&state, own, &ctx) {
                Ok(events) => Decision::Events {
                    aggregate,
                    expected_version: version,
                    events: self.new_events::<D>(&command, aggregate, version, events, now),
                },
                Err(_) if guessed => {
                    // Refused on a guess: decide again on what the store holds.
                    guess_allowed = false;
                    continue;
                }
                Err(rule) => {
                    let refused = Refused::from_rule(&rule);
                    let append = Append {
                        decision: Decision::Rejected {
                            code: refused.code.to_owned(),
                            message: refused.message.clone(),
                        },
                        command,
                    };
                    return match self.append(append).await {
                        Ok(Appended::Duplicate(outcome)) => Ok(Dispatched::Duplicate(outcome)),
                        Ok(Appended::Committed { .. }) => Ok(Dispatched::Rejected(refused)),
                        Err(e) => Err(ServiceError::Store(e)),
                    };
                }
            };
            let append = Append {
                command: command.clone(),
                decision,
            };
            match self.append(append).await {
                Ok(Appended::Committed { events, outcome }) => {
                    let seq = match outcome {
                        CommandOutcome::Accepted { seq, .. } => seq,
                        CommandOutcome::Rejected { .. } => 0,
                    };
                    let after = events
                        .iter()
                        .fold(state, |s, e| match D::event_of(&e.event) {
                            Some(event) => D::evolve(s, event),
                            None => s,
                        });
                    let after_version = D::version(&after);
                    self.maybe_snapshot::<D>(tenant, aggregate, version, &after)
                        .await;
                    cache.put(tenant, aggregate.id, after_version, after);
                    return Ok(Dispatched::Accepted { events, seq });
                }
                Ok(Appended::Duplicate(outcome)) => return Ok(Dispatched::Duplicate(outcome)),
                Err(StoreError::VersionConflict { .. }) => {
                    cache.forget(tenant, aggregate.id);
                    guess_allowed = false;
                    continue;
                }
                Err(e) => return Err(ServiceError::Store(e)),
            }
        }
        Err(ServiceError::Contention {
            aggregate,
            attempts: self.config.max_attempts,
        })
    }

    /// Feeds an event from outside to the order it concerns (the seed's `on`).
    /// Its reaction, if any, is dispatched as a system command whose id derives from
    /// the external event's id: feeding the same event twice changes nothing.
    pub async fn on(&self, external: ExternalEvent) -> Result<Option<Dispatched>, ServiceError> {
        let order_id = external.kind.order_id();
        let state = self.load::<Orders>(external.tenant, order_id).await?;
        let id = reaction_id(&external);
        let Some(command) = order::react(&state, &external) else {
            // No reaction now; but if this event was already reacted to, say so.
            return match self
                .store
                .outcome(external.tenant, id)
                .await
                .map_err(ServiceError::Store)?
            {
                Some(outcome) => Ok(Some(Dispatched::Duplicate(outcome))),
                None => Ok(None),
            };
        };
        let envelope = CommandEnvelope {
            id,
            tenant: external.tenant,
            command: command.into(),
            metadata: CommandMetadata {
                actor: Actor::System,
                correlation_id: Some(external.id),
                causation_id: Some(external.id),
                role: None,
                traceparent: None,
            },
        };
        self.dispatch(envelope).await.map(Some)
    }

    /// Feeds an event a provider reported (a webhook) to the order it concerns, and
    /// records what became of it under the reaction's id (derived from the external
    /// event's id, as [`Service::on`] does), whatever it was: the reaction accepted or
    /// refused by a rule, or no reaction, recorded as refused with
    /// [`DomainError::OrderNotFound`](crate::order::DomainError::OrderNotFound) (no such
    /// order in the household) or
    /// [`DomainError::NoReaction`](crate::order::DomainError::NoReaction) (the order's
    /// state calls for none). So the same event fed twice gets the same outcome back,
    /// even if the order changed in between, and reacts at most once.
    pub async fn receive(&self, external: ExternalEvent) -> Result<Received, ServiceError> {
        let order_id = external.kind.order_id();
        let id = reaction_id(&external);
        if let Some(outcome) = self
            .store
            .outcome(external.tenant, id)
            .await
            .map_err(ServiceError::Store)?
        {
            return Ok(Received {
                outcome,
                duplicate: true,
            });
        }
        let state = self.load::<Orders>(external.tenant, order_id).await?;
        let metadata = CommandMetadata {
            actor: Actor::System,
            correlation_id: Some(external.id),
            causation_id: Some(external.id),
            role: None,
            traceparent: None,
        };
        if let Some(command) = order::react(&state, &external) {
            let envelope = CommandEnvelope {
                id,
                tenant: external.tenant,
                command: command.into(),
                metadata,
            };
            let dispatched = self.dispatch(envelope).await?;
            return Ok(Received {
                duplicate: matches!(dispatched, Dispatched::Duplicate(_)),
                outcome: dispatched.outcome(),
            });
        }
        let rule = match &state.order {
            None => order::DomainError::OrderNotFound(order_id),
            Some(order) => order::DomainError::NoReaction {
                event: external.kind.type_name(),
                status: order.status,
            },
        };
        let append = Append {
            command: CommandEnvelope {
                id,
                tenant: external.tenant,
                command: order::reaction_command(&external.kind).into(),
                metadata,
            },
            decision: Decision::Rejected {
                code: rule.code().to_owned(),
                message: rule.to_string(),
            },
        };
        match self
            .store
            .append(append)
            .await
            .map_err(ServiceError::Store)?
        {
            Appended::Committed { outcome, .. } => Ok(Received {
                outcome,
                duplicate: false,
            }),
            Appended::Duplicate(outcome) => Ok(Received {
                outcome,
                duplicate: true,
            }),
        }
    }

    fn new_events<D: Registered>(
        &self,
        command: &CommandEnvelope,
        aggregate: AggregateId,
        version: u32,
        events: Vec<D::Event>,
        now: crate::Timestamp,
    ) -> Vec<NewEvent> {
        events
            .into_iter()
            .enumerate()
            .map(|(i, event)| NewEvent {
                id: event_id(command.tenant, command.id, i),
                aggregate_id: aggregate.id,
                version: version + 1 + u32::try_from(i).unwrap_or(u32::MAX - 1),
                requires_job: D::job(&event).is_some(),
                event: D::wrap_event(event),
                schema_version: D::EVENT_SCHEMA_VERSION,
                metadata: EventMetadata {
                    command_id: command.id,
                    causation_id: command.causation_id(),
                    correlation_id: command.correlation_id(),
                    actor: command.metadata.actor.clone(),
                },
                created_at: now,
            })
            .collect()
    }

    /// Writes a snapshot when the stream crossed a multiple of `snapshot_every`: hands
    /// it to the [`SnapshotWriter`] if there is one (the caller is answered without
    /// waiting for it), otherwise writes it now. A failed or dropped snapshot only means
    /// the next load folds a few more events.
    async fn maybe_snapshot<D: Registered>(
        &self,
        tenant: HouseholdId,
        aggregate: AggregateId,
        from: u32,
        state: &D::State,
    ) {
        let every = self.config.snapshot_every.max(1);
        let version = D::version(state);
        if version / every == from / every {
            return;
        }
        let Ok(json) = serde_json::to_value(state) else {
            return;
        };
        let snapshot = Snapshot {
            tenant,
            aggregate,
            version,
            schema_version: D::SNAPSHOT_SCHEMA_VERSION,
            state: json,
        };
        let snapshot = match &self.snapshots {
            Some(queue) => match queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .try_send(snapshot)
            {
                Ok(()) => return,
                Err(e) if e.is_full() => {
                    tracing::debug!(%aggregate, "snapshot queue full: snapshot dropped");
                    return;
                }
                // The writer is gone: write it here, as without one.
                Err(e) => e.into_inner(),
            },
            None => snapshot,
        };
        let _ = self.store.save_snapshot(snapshot).await;
    }
}

/// The id of the command that reacts to an external event (or records that it did not):
/// derived from the event's id and the order, so the same event never reacts twice.
pub fn reaction_id(external: &ExternalEvent) -> CommandId {
    let order_id = external.kind.order_id();
    CommandId(derive(external.id, &format!("reaction/{order_id}")))
}

/// What became of an external event fed through [`Service::receive`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// As stored under the reaction's id: `Accepted` (the order reacted) or `Rejected`
    /// with the rule's code (`order_not_found`, `no_reaction`, or the rule the reaction
    /// broke).
    pub outcome: CommandOutcome,
    /// The event was received before: `outcome` is what became of it then.
    pub duplicate: bool,
}

/// Event ids derive from the household, the command id and the event's index, so a
/// dispatch retried after a conflict or a crash can never mint a second set of ids.
pub fn event_id(tenant: HouseholdId, command: CommandId, index: usize) -> EventId {
    EventId(derive(
        derive(tenant.0, &command.0.to_string()),
        &format!("event/{index}"),
    ))
}
