//! The application service (the seed's `OrderService`): load, decide, append with
//! the expected version, retry on conflict, report the outcome.

use crate::cache::StateCache;
use crate::contracts::{
    Actor, CommandEnvelope, CommandMetadata, CommandOutcome, EventEnvelope, EventMetadata,
    ExternalEvent, NewEvent,
};
use crate::ids::{CommandId, EventId, HouseholdId, OrderId, derive};
use crate::order::{
    self, Context, DomainError, EVENT_SCHEMA_VERSION, OrderState, SNAPSHOT_SCHEMA_VERSION,
};
use crate::ports::{Append, Appended, Clock, Decision, EventStore, Snapshot, StoreError};
use std::sync::Arc;

#[derive(Clone, Copy, Debug)]
pub struct ServiceConfig {
    /// How many times a dispatch reloads and decides again after a version conflict.
    pub max_attempts: u32,
    /// A snapshot is written when a stream's version crosses a multiple of this.
    pub snapshot_every: u32,
    /// Order states remembered between commands (about this many orders; 0 turns
    /// the cache off): see `dispatch`.
    pub cache_capacity: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            max_attempts: 16,
            snapshot_every: 50,
            cache_capacity: 16_384,
        }
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
    Rejected(DomainError),
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
            Dispatched::Rejected(rule) => CommandOutcome::Rejected {
                code: rule.code().to_owned(),
                message: rule.to_string(),
            },
            Dispatched::Duplicate(outcome) => outcome.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Store(StoreError),
    /// Too many concurrent writers on one order; the command was not applied.
    #[error("order {order} is contended: gave up after {attempts} version conflicts")]
    Contention { order: OrderId, attempts: u32 },
}

/// Clones share the store, the clock and the cache of order states.
#[derive(Debug, Clone)]
pub struct OrderService {
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    config: ServiceConfig,
    cache: Arc<StateCache>,
}

impl OrderService {
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
            cache: Arc::new(StateCache::new(config.cache_capacity)),
            config,
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Loads an order's current state: snapshot, then the events after it.
    pub async fn load(
        &self,
        tenant: HouseholdId,
        order: OrderId,
    ) -> Result<OrderState, ServiceError> {
        Ok(self.load_with_time(tenant, order).await?.0)
    }

    /// [`OrderService::load`], and when the last event read was committed (`None` when
    /// the stream is empty or a snapshot covers all of it).
    pub async fn load_with_time(
        &self,
        tenant: HouseholdId,
        order: OrderId,
    ) -> Result<(OrderState, Option<crate::Timestamp>), ServiceError> {
        let loaded = self
            .store
            .load(tenant, order, SNAPSHOT_SCHEMA_VERSION)
            .await
            .map_err(ServiceError::Store)?;
        let mut state = match loaded.snapshot {
            Some(snapshot) if snapshot.schema_version == SNAPSHOT_SCHEMA_VERSION => {
                serde_json::from_value::<OrderState>(snapshot.state).map_err(|e| {
                    ServiceError::Store(StoreError::Corrupt(format!(
                        "snapshot of order {order}: {e}"
                    )))
                })?
            }
            _ => order::initial(),
        };
        for envelope in &loaded.events {
            state = order::evolve(state, &envelope.event);
        }
        self.cache.put(tenant, order, state.clone());
        Ok((state, loaded.events.last().map(|e| e.created_at)))
    }

    /// Applies a command at most once.
    ///
    /// Decides against the order's cached state when there is one (or, for a
    /// command that creates an order, against an empty stream), so the common case
    /// costs the store one append and no read. A stale guess cannot do harm: the
    /// append carries the version the decision was made at, a store that has moved
    /// on refuses it as a version conflict, and the order is read again. A refusal
    /// decided on a guess is checked again against the store's state before it is
    /// recorded, so a rule is never broken by, or blamed on, a stale cache.
    pub async fn dispatch(&self, command: CommandEnvelope) -> Result<Dispatched, ServiceError> {
        let order_id = command.command.order_id();
        let tenant = command.tenant;
        let mut guess_allowed = true;
        for _ in 0..self.config.max_attempts {
            let guess = if guess_allowed {
                self.cache
                    .get(tenant, order_id)
                    .or_else(|| command.command.creates_order().then(order::initial))
            } else {
                None
            };
            let (state, guessed) = match guess {
                Some(state) => (state, true),
                None => (self.load(tenant, order_id).await?, false),
            };
            let now = self.clock.now();
            let ctx = Context {
                actor: command.metadata.actor.clone(),
                now,
            };
            let decision = match order::decide(&state, &command.command, &ctx) {
                Ok(events) => Decision::Events {
                    aggregate_id: order_id,
                    expected_version: state.version,
                    events: self.new_events(&command, &state, events, now),
                },
                Err(_) if guessed => {
                    // Refused on a guess: decide again on what the store holds.
                    guess_allowed = false;
                    continue;
                }
                Err(rule) => {
                    let append = Append {
                        decision: Decision::Rejected {
                            code: rule.code().to_owned(),
                            message: rule.to_string(),
                        },
                        command,
                    };
                    return match self.store.append(append).await {
                        Ok(Appended::Duplicate(outcome)) => Ok(Dispatched::Duplicate(outcome)),
                        Ok(Appended::Committed { .. }) => Ok(Dispatched::Rejected(rule)),
                        Err(e) => Err(ServiceError::Store(e)),
                    };
                }
            };
            let append = Append {
                command: command.clone(),
                decision,
            };
            match self.store.append(append).await {
                Ok(Appended::Committed { events, outcome }) => {
                    let seq = match outcome {
                        CommandOutcome::Accepted { seq, .. } => seq,
                        CommandOutcome::Rejected { .. } => 0,
                    };
                    let from = state.version;
                    let after = events.iter().fold(state, |s, e| order::evolve(s, &e.event));
                    self.maybe_snapshot(tenant, order_id, from, &after).await;
                    self.cache.put(tenant, order_id, after);
                    return Ok(Dispatched::Accepted { events, seq });
                }
                Ok(Appended::Duplicate(outcome)) => return Ok(Dispatched::Duplicate(outcome)),
                Err(StoreError::VersionConflict { .. }) => {
                    self.cache.forget(tenant, order_id);
                    guess_allowed = false;
                    continue;
                }
                Err(e) => return Err(ServiceError::Store(e)),
            }
        }
        Err(ServiceError::Contention {
            order: order_id,
            attempts: self.config.max_attempts,
        })
    }

    /// Feeds an event from outside to the order it concerns (the seed's `on`).
    /// Its reaction, if any, is dispatched as a system command whose id derives from
    /// the external event's id: feeding the same event twice changes nothing.
    pub async fn on(&self, external: ExternalEvent) -> Result<Option<Dispatched>, ServiceError> {
        let order_id = external.kind.order_id();
        let state = self.load(external.tenant, order_id).await?;
        let id = CommandId(derive(external.id, &format!("reaction/{order_id}")));
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
            command,
            metadata: CommandMetadata {
                actor: Actor::System,
                correlation_id: Some(external.id),
                causation_id: Some(external.id),
            },
        };
        self.dispatch(envelope).await.map(Some)
    }

    fn new_events(
        &self,
        command: &CommandEnvelope,
        state: &OrderState,
        events: Vec<order::Event>,
        now: crate::Timestamp,
    ) -> Vec<NewEvent> {
        let order_id = command.command.order_id();
        events
            .into_iter()
            .enumerate()
            .map(|(i, event)| NewEvent {
                id: event_id(command.tenant, command.id, i),
                aggregate_id: order_id,
                version: state.version + 1 + u32::try_from(i).unwrap_or(u32::MAX - 1),
                requires_job: event.requires_job(),
                event,
                schema_version: EVENT_SCHEMA_VERSION,
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

    /// Writes a snapshot when the stream crossed a multiple of `snapshot_every`.
    /// Off the commit path: the events are already committed, and a failed snapshot
    /// only means the next load folds a few more events.
    async fn maybe_snapshot(
        &self,
        tenant: HouseholdId,
        order_id: OrderId,
        from: u32,
        state: &OrderState,
    ) {
        let every = self.config.snapshot_every.max(1);
        if state.version / every == from / every {
            return;
        }
        let Ok(json) = serde_json::to_value(state) else {
            return;
        };
        let _ = self
            .store
            .save_snapshot(Snapshot {
                tenant,
                aggregate_id: order_id,
                version: state.version,
                schema_version: SNAPSHOT_SCHEMA_VERSION,
                state: json,
            })
            .await;
    }
}

/// Event ids derive from the household, the command id and the event's index, so a
/// dispatch retried after a conflict or a crash can never mint a second set of ids.
pub fn event_id(tenant: HouseholdId, command: CommandId, index: usize) -> EventId {
    EventId(derive(
        derive(tenant.0, &command.0.to_string()),
        &format!("event/{index}"),
    ))
}
