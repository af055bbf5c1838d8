//! The application service against the in-memory store: dispatch, idempotency,
//! rejection, reactions to external events, snapshots, and concurrency.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use chrono::TimeDelta;
use futures::future::join_all;
use hearth_core::Refused;
use hearth_core::contracts::ExternalKind;
use hearth_core::domain::AggregateId;
use hearth_core::order::{
    CancelOrder, Command, OrderRef, OrderStatus, PlaceOrder, RecordPaymentCaptured,
    RecordStockReserved, RequestedLine,
};
use hearth_core::ports::{Append, Appended, EventStore, Loaded, Snapshot, StoreError};
use hearth_core::service::{SNAPSHOT_QUEUE, ServiceConfig};
use hearth_core::{
    Actor, CommandEnvelope, CommandId, CommandOutcome, Dispatched, DomainError, EventEnvelope,
    ExternalEvent, HouseholdId, HouseholdView, MemberId, OrderId, Service,
};
use hearth_memory::{ManualClock, MemoryEventStore, MemoryInventory};
use std::collections::HashSet;
use std::sync::Arc;
use uuid::Uuid;

struct World {
    store: Arc<MemoryEventStore>,
    clock: Arc<ManualClock>,
    /// The catalog the service places orders from (the default one).
    catalog: Arc<MemoryInventory>,
    service: Service,
    household: HouseholdId,
    member: MemberId,
}

fn world() -> World {
    world_with(ServiceConfig::default())
}

fn world_with(config: ServiceConfig) -> World {
    let store = Arc::new(MemoryEventStore::new());
    let clock = Arc::new(ManualClock::starting_now());
    let catalog = Arc::new(MemoryInventory::default());
    World {
        service: Service::with_config(store.clone(), clock.clone(), config)
            .with_catalog(catalog.clone()),
        store,
        clock,
        catalog,
        household: HouseholdId(Uuid::now_v7()),
        member: MemberId(Uuid::now_v7()),
    }
}

/// The default catalog, as a service reads it.
fn shop() -> Arc<MemoryInventory> {
    Arc::new(MemoryInventory::default())
}

fn place(order: OrderId) -> Command {
    Command::PlaceOrder(PlaceOrder {
        order_id: order,
        lines: vec![RequestedLine::new("bread", 1)],
        ready_at: None,
        note: None,
    })
}

/// A new command of `household`, sent by `actor`.
fn sent(household: HouseholdId, actor: Actor, command: Command) -> CommandEnvelope {
    CommandEnvelope::new(CommandId(Uuid::now_v7()), household, actor, command)
}

impl World {
    fn by_member(&self, command: Command) -> CommandEnvelope {
        sent(self.household, Actor::Member { id: self.member }, command)
    }
    fn by_process(&self, command: Command) -> CommandEnvelope {
        sent(self.household, Actor::Process, command)
    }
    async fn head(&self) -> u64 {
        self.store.head(self.household).await.unwrap()
    }
}

#[tokio::test]
async fn accepted_command_appends_its_events_with_envelope_metadata() {
    let w = world();
    let order = OrderId(Uuid::now_v7());
    let mut command = w.by_member(place(order));
    command.metadata.correlation_id = Some(Uuid::from_u128(99));
    let Dispatched::Accepted { events, seq } = w.service.dispatch(command.clone()).await.unwrap()
    else {
        panic!("accepted expected");
    };
    assert_eq!(seq, 1);
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (e.tenant, e.seq, e.aggregate_id, e.version),
        (w.household, 1, order.0, 1)
    );
    assert_eq!(e.metadata.command_id, command.id);
    assert_eq!(e.metadata.correlation_id, Uuid::from_u128(99));
    assert_eq!(e.metadata.causation_id, command.id.0);
    assert_eq!(e.metadata.actor, Actor::Member { id: w.member });
    assert!(e.requires_job);
    assert_eq!(
        e.created_at,
        hearth_core::ports::Clock::now(w.clock.as_ref())
    );
    assert_eq!(
        w.service
            .load::<hearth_core::Orders>(w.household, order)
            .await
            .unwrap()
            .order
            .map(|o| o.status),
        Some(OrderStatus::Placed)
    );
}

#[tokio::test]
async fn repeated_command_id_returns_first_outcome_and_appends_nothing() {
    let w = world();
    let order = OrderId(Uuid::now_v7());
    let command = w.by_member(place(order));
    let first = w.service.dispatch(command.clone()).await.unwrap();
    let again = w.service.dispatch(command.clone()).await.unwrap();
    assert_eq!(again, Dispatched::Duplicate(first.outcome()));
    assert_eq!(
        first.outcome(),
        CommandOutcome::Accepted { seq: 1, events: 1 }
    );
    assert_eq!(w.head().await, 1);
}

#[tokio::test]
async fn rejected_command_is_recorded_and_repeats_its_rejection() {
    let w = world();
    let order = OrderId(Uuid::now_v7());
    let complete = w.by_member(Command::CompleteOrder(OrderRef { order_id: order }));
    let first = w.service.dispatch(complete.clone()).await.unwrap();
    assert_eq!(
        first,
        Dispatched::Rejected(Refused::from_rule(&DomainError::OrderNotFound(order)))
    );
    // Even once the order exists, the same id gets the same answer.
    w.service.dispatch(w.by_member(place(order))).await.unwrap();
    let again = w.service.dispatch(complete).await.unwrap();
    assert_eq!(
        again,
        Dispatched::Duplicate(CommandOutcome::Rejected {
            code: "order_not_found".into(),
            message: DomainError::OrderNotFound(order).to_string()
        })
    );
    assert_eq!(w.head().await, 1);
}

#[tokio::test]
async fn a_member_cannot_send_internal_commands() {
    let w = world();
    let order = OrderId(Uuid::now_v7());
    w.service.dispatch(w.by_member(place(order))).await.unwrap();
    let forged = w.by_member(Command::RecordStockReserved(RecordStockReserved {
        order_id: order,
        reservation_id: "r".into(),
    }));
    assert_eq!(
        w.service.dispatch(forged).await.unwrap(),
        Dispatched::Rejected(Refused::from_rule(&DomainError::InternalCommand {
            command: "RecordStockReserved"
        }))
    );
    let by_process = w.by_process(Command::RecordStockReserved(RecordStockReserved {
        order_id: order,
        reservation_id: "r".into(),
    }));
    assert!(matches!(
        w.service.dispatch(by_process).await.unwrap(),
        Dispatched::Accepted { .. }
    ));
}

#[tokio::test]
async fn ready_at_is_judged_by_the_clock_port() {
    let w = world();
    let order = OrderId(Uuid::now_v7());
    let at = hearth_core::ports::Clock::now(w.clock.as_ref()) + TimeDelta::hours(1);
    let command = |order| {
        Command::PlaceOrder(PlaceOrder {
            order_id: order,
            lines: vec![RequestedLine::new("milk", 1)],
            ready_at: Some(at),
            note: None,
        })
    };
    assert!(matches!(
        w.service
            .dispatch(w.by_member(command(order)))
            .await
            .unwrap(),
        Dispatched::Accepted { .. }
    ));
    w.clock.advance(TimeDelta::hours(2));
    assert_eq!(
        w.service
            .dispatch(w.by_member(command(OrderId(Uuid::now_v7()))))
            .await
            .unwrap(),
        Dispatched::Rejected(Refused::from_rule(&DomainError::ReadyAtNotInFuture))
    );
}

#[tokio::test]
async fn inventory_shortage_rejects_a_waiting_order_once() {
    let w = world();
    let order = OrderId(Uuid::now_v7());
    w.service.dispatch(w.by_member(place(order))).await.unwrap();
    let shortage = ExternalEvent {
        id: Uuid::now_v7(),
        tenant: w.household,
        kind: ExternalKind::InventoryShortage {
            order_id: order,
            sku: "bread".into(),
        },
    };
    let first = w.service.on(shortage.clone()).await.unwrap();
    let Some(Dispatched::Accepted { events, .. }) = &first else {
        panic!("a reaction: {first:?}")
    };
    assert_eq!(events[0].event.type_name(), "OrderRejected");
    assert_eq!(events[0].metadata.causation_id, shortage.id);
    assert_eq!(events[0].metadata.actor, Actor::System);
    let head = w.head().await;
    let again = w.service.on(shortage.clone()).await.unwrap();
    assert!(
        matches!(
            again,
            Some(Dispatched::Duplicate(CommandOutcome::Accepted { .. }))
        ),
        "got {again:?}"
    );
    assert_eq!(
        w.head().await,
        head,
        "feeding the same event twice changes nothing"
    );
    // The follow-up's id is deterministic: derived from the cause.
    let expected_id = hearth_core::service::event_id(
        w.household,
        CommandId(hearth_core::ids::derive(
            shortage.id,
            &format!("reaction/{order}"),
        )),
        0,
    );
    assert_eq!(events[0].id, expected_id);
}

#[tokio::test]
async fn shortage_of_another_sku_or_a_reserved_order_changes_nothing() {
    let w = world();
    let order = OrderId(Uuid::now_v7());
    w.service.dispatch(w.by_member(place(order))).await.unwrap();
    let shortage = |sku: &str| ExternalEvent {
        id: Uuid::now_v7(),
        tenant: w.household,
        kind: ExternalKind::InventoryShortage {
            order_id: order,
            sku: sku.into(),
        },
    };
    assert_eq!(w.service.on(shortage("milk")).await.unwrap(), None);
    w.service
        .dispatch(
            w.by_process(Command::RecordStockReserved(RecordStockReserved {
                order_id: order,
                reservation_id: "r".into(),
            })),
        )
        .await
        .unwrap();
    assert_eq!(
        w.service.on(shortage("bread")).await.unwrap(),
        None,
        "stock is already held"
    );
    assert_eq!(w.head().await, 2);
}

#[tokio::test]
async fn snapshots_are_written_and_used() {
    let w = world_with(ServiceConfig {
        snapshot_every: 2,
        ..ServiceConfig::default()
    });
    let order = OrderId(Uuid::now_v7());
    w.service.dispatch(w.by_member(place(order))).await.unwrap();
    w.service
        .dispatch(
            w.by_process(Command::RecordStockReserved(RecordStockReserved {
                order_id: order,
                reservation_id: "r".into(),
            })),
        )
        .await
        .unwrap();
    let loaded = w
        .store
        .load(
            w.household,
            order.into(),
            hearth_core::order::SNAPSHOT_SCHEMA_VERSION,
        )
        .await
        .unwrap();
    assert_eq!(loaded.snapshot.as_ref().map(|s| s.version), Some(2));
    assert!(loaded.events.is_empty());
}

/// The memory store, except that a snapshot write waits until the test lets it
/// through (one permit of `gate` per write).
#[derive(Debug)]
struct HeldSnapshots {
    inner: Arc<MemoryEventStore>,
    gate: tokio::sync::Semaphore,
}

#[async_trait::async_trait]
impl EventStore for HeldSnapshots {
    async fn append(&self, append: Append) -> Result<Appended, StoreError> {
        self.inner.append(append).await
    }
    async fn load(
        &self,
        tenant: HouseholdId,
        aggregate: AggregateId,
        snapshot_schema: u32,
    ) -> Result<Loaded, StoreError> {
        self.inner.load(tenant, aggregate, snapshot_schema).await
    }
    async fn read_feed(
        &self,
        tenant: HouseholdId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        self.inner.read_feed(tenant, after, limit).await
    }
    async fn head(&self, tenant: HouseholdId) -> Result<u64, StoreError> {
        self.inner.head(tenant).await
    }
    async fn outcome(
        &self,
        tenant: HouseholdId,
        command_id: CommandId,
    ) -> Result<Option<CommandOutcome>, StoreError> {
        self.inner.outcome(tenant, command_id).await
    }
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.gate.acquire().await.unwrap().forget();
        self.inner.save_snapshot(snapshot).await
    }
}

/// The version of the snapshot `store` holds for `order`, if any.
async fn snapshot_version(
    store: &MemoryEventStore,
    household: HouseholdId,
    order: OrderId,
) -> Option<u32> {
    store
        .load(
            household,
            order.into(),
            hearth_core::order::SNAPSHOT_SCHEMA_VERSION,
        )
        .await
        .unwrap()
        .snapshot
        .map(|s| s.version)
}

#[tokio::test]
async fn a_command_is_answered_before_its_snapshot_is_written() {
    // Given a service with a snapshot writer, on a store whose snapshot writes wait
    let w = world();
    let held = Arc::new(HeldSnapshots {
        inner: w.store.clone(),
        gate: tokio::sync::Semaphore::new(0),
    });
    let config = ServiceConfig {
        snapshot_every: 2,
        ..ServiceConfig::default()
    };
    let (service, writer) = Service::with_config(held.clone(), w.clock.clone(), config)
        .with_catalog(shop())
        .with_snapshot_writer();
    let writing = tokio::spawn(writer.run());
    let order = OrderId(Uuid::now_v7());
    service.dispatch(w.by_member(place(order))).await.unwrap();
    // When a command takes the order across a snapshot boundary (version 2)
    let reserved = w.by_process(Command::RecordStockReserved(RecordStockReserved {
        order_id: order,
        reservation_id: "r".into(),
    }));
    // Then it is answered while its snapshot still waits (written before the answer,
    // this would wait for the gate forever: the bound turns that into a failure)
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        service.dispatch(reserved),
    )
    .await
    .expect("answered without waiting for the snapshot")
    .unwrap();
    assert!(
        matches!(answered, Dispatched::Accepted { .. }),
        "{answered:?}"
    );
    assert_eq!(snapshot_version(&w.store, w.household, order).await, None);
    // And the writer writes it once the store lets it: it ends when the service is
    // dropped, after what was queued
    held.gate.add_permits(1);
    drop(service);
    writing.await.unwrap();
    assert_eq!(
        snapshot_version(&w.store, w.household, order).await,
        Some(2)
    );
}

#[tokio::test]
async fn snapshots_past_the_writer_queue_are_dropped_and_commands_still_answered() {
    // Given a service whose snapshot writer does not run yet, a snapshot per version
    let w = world_with(ServiceConfig {
        snapshot_every: 1,
        ..ServiceConfig::default()
    });
    let (service, writer) = w.service.clone().with_snapshot_writer();
    // When more commands than the queue holds each cross a snapshot boundary
    let orders: Vec<OrderId> = (0..SNAPSHOT_QUEUE + 100)
        .map(|_| OrderId(Uuid::now_v7()))
        .collect();
    for order in &orders {
        let answered = service.dispatch(w.by_member(place(*order))).await.unwrap();
        assert!(
            matches!(answered, Dispatched::Accepted { .. }),
            "{answered:?}"
        );
    }
    drop(service);
    writer.run().await;
    // Then every command was answered, and only the queue's worth of snapshots (its
    // bound, plus the one place a futures channel keeps for its sender) was written
    let mut written = 0;
    for order in &orders {
        if snapshot_version(&w.store, w.household, *order)
            .await
            .is_some()
        {
            written += 1;
        }
    }
    assert_eq!(written, SNAPSHOT_QUEUE + 1);
    // And the orders themselves are all there
    assert_eq!(w.head().await, u64::try_from(orders.len()).unwrap());
}

#[tokio::test]
async fn load_starts_from_the_snapshot() {
    let w = world_with(ServiceConfig {
        snapshot_every: 1000,
        ..ServiceConfig::default()
    });
    let order = OrderId(Uuid::now_v7());
    w.service.dispatch(w.by_member(place(order))).await.unwrap();
    w.service
        .dispatch(
            w.by_process(Command::RecordStockReserved(RecordStockReserved {
                order_id: order,
                reservation_id: "r".into(),
            })),
        )
        .await
        .unwrap();
    // Plant a snapshot at version 1 that differs from the events (a note only it has):
    // the load must start from it and fold only event 2 on top.
    let mut state = hearth_core::order::fold(
        w.store
            .load(w.household, order.into(), 1)
            .await
            .unwrap()
            .events
            .iter()
            .take(1)
            .filter_map(|e| e.event.of::<hearth_core::Orders>()),
    );
    if let Some(o) = state.order.as_mut() {
        o.note = Some("from the snapshot".into());
    }
    w.store
        .save_snapshot(Snapshot {
            tenant: w.household,
            aggregate: order.into(),
            version: 1,
            schema_version: hearth_core::order::SNAPSHOT_SCHEMA_VERSION,
            state: serde_json::to_value(&state).unwrap(),
        })
        .await
        .unwrap();
    let loaded = w
        .service
        .load::<hearth_core::Orders>(w.household, order)
        .await
        .unwrap();
    let o = loaded.order.unwrap();
    assert_eq!(o.note.as_deref(), Some("from the snapshot"));
    assert_eq!(
        o.status,
        OrderStatus::StockReserved,
        "event 2 folded on top"
    );
    assert_eq!(loaded.version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cancels_of_one_order_apply_once() {
    let w = Arc::new(world());
    let order = OrderId(Uuid::now_v7());
    w.service.dispatch(w.by_member(place(order))).await.unwrap();
    let tasks = (0..24).map(|_| {
        let w = w.clone();
        tokio::spawn(async move {
            let cancel = w.by_member(Command::CancelOrder(CancelOrder {
                order_id: order,
                reason: None,
            }));
            w.service.dispatch(cancel).await.unwrap()
        })
    });
    let results: Vec<_> = join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let accepted = results
        .iter()
        .filter(|r| matches!(r, Dispatched::Accepted { .. }))
        .count();
    assert_eq!(accepted, 1, "no lost update: exactly one cancel wins");
    let lost = Refused::from_rule(&DomainError::CannotCancel {
        status: OrderStatus::Cancelled,
    });
    assert!(results.iter().all(|r| match r {
        Dispatched::Accepted { .. } => true,
        Dispatched::Rejected(refused) => *refused == lost,
        Dispatched::Duplicate(_) => false,
    }));
    let versions: Vec<u32> = w
        .store
        .load(w.household, order.into(), 1)
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, vec![1, 2], "every version used once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_of_one_household_keep_seq_gap_free() {
    let w = Arc::new(world());
    let tasks = (0..40).map(|_| {
        let w = w.clone();
        tokio::spawn(async move {
            w.service
                .dispatch(w.by_member(place(OrderId(Uuid::now_v7()))))
                .await
                .unwrap()
        })
    });
    for r in join_all(tasks).await {
        assert!(matches!(r.unwrap(), Dispatched::Accepted { .. }));
    }
    let feed = w.store.read_feed(w.household, 0, 1000).await.unwrap();
    assert_eq!(
        feed.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=40).collect::<Vec<_>>()
    );
    let ids: HashSet<_> = feed.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 40);
    assert_eq!(HouseholdView::fold(&feed).unwrap().orders.len(), 40);
}

#[tokio::test]
async fn contention_beyond_the_bound_is_an_error_not_a_lost_update() {
    // A store that always reports a version conflict.
    let store = Arc::new(Probe::conflicting());
    let service = Service::with_config(
        store,
        Arc::new(ManualClock::starting_now()),
        ServiceConfig {
            max_attempts: 3,
            ..ServiceConfig::default()
        },
    )
    .with_catalog(shop());
    let order = OrderId(Uuid::now_v7());
    let command = CommandEnvelope::new(
        CommandId(Uuid::now_v7()),
        HouseholdId(Uuid::now_v7()),
        Actor::System,
        place(order),
    );
    let err = service.dispatch(command).await.unwrap_err();
    assert!(
        matches!(
            err,
            hearth_core::ServiceError::Contention { attempts: 3, .. }
        ),
        "got {err}"
    );
}

/// The memory store, counting the service's reads of an order; or, if
/// `conflicting`, refusing every append as a version conflict.
#[derive(Debug, Default)]
struct Probe {
    inner: MemoryEventStore,
    loads: std::sync::atomic::AtomicUsize,
    conflicting: bool,
}

impl Probe {
    fn conflicting() -> Self {
        Self {
            conflicting: true,
            ..Self::default()
        }
    }

    fn loads(&self) -> usize {
        self.loads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl EventStore for Probe {
    async fn append(
        &self,
        a: hearth_core::ports::Append,
    ) -> Result<hearth_core::ports::Appended, hearth_core::ports::StoreError> {
        if self.conflicting {
            return Err(hearth_core::ports::StoreError::VersionConflict {
                aggregate: a.command.command.aggregate(),
                expected: 0,
            });
        }
        self.inner.append(a).await
    }
    async fn load(
        &self,
        t: HouseholdId,
        a: hearth_core::AggregateId,
        s: u32,
    ) -> Result<hearth_core::ports::Loaded, hearth_core::ports::StoreError> {
        self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.load(t, a, s).await
    }
    async fn read_feed(
        &self,
        t: HouseholdId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<hearth_core::EventEnvelope>, hearth_core::ports::StoreError> {
        self.inner.read_feed(t, after, limit).await
    }
    async fn head(&self, t: HouseholdId) -> Result<u64, hearth_core::ports::StoreError> {
        self.inner.head(t).await
    }
    async fn outcome(
        &self,
        t: HouseholdId,
        c: CommandId,
    ) -> Result<Option<CommandOutcome>, hearth_core::ports::StoreError> {
        self.inner.outcome(t, c).await
    }
    async fn save_snapshot(&self, s: Snapshot) -> Result<(), hearth_core::ports::StoreError> {
        self.inner.save_snapshot(s).await
    }
}

/// Two services on one store: two nodes, or a node and a worker, each with its own
/// cache of order states.
struct TwoNodes {
    store: Arc<Probe>,
    a: Service,
    b: Service,
    household: HouseholdId,
    member: MemberId,
}

fn two_nodes() -> TwoNodes {
    let store = Arc::new(Probe::default());
    let clock = Arc::new(ManualClock::starting_now());
    TwoNodes {
        a: Service::new(store.clone(), clock.clone()).with_catalog(shop()),
        b: Service::new(store.clone(), clock).with_catalog(shop()),
        store,
        household: HouseholdId(Uuid::now_v7()),
        member: MemberId(Uuid::now_v7()),
    }
}

impl TwoNodes {
    fn by_member(&self, command: Command) -> CommandEnvelope {
        sent(self.household, Actor::Member { id: self.member }, command)
    }
    fn by_process(&self, command: Command) -> CommandEnvelope {
        sent(self.household, Actor::Process, command)
    }
    async fn events_of(&self, order: OrderId) -> Vec<hearth_core::EventEnvelope> {
        self.store
            .inner
            .read_feed(self.household, 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.aggregate_id == order.0)
            .collect()
    }
}

#[tokio::test]
async fn a_known_order_is_not_read_back_before_its_next_command() {
    let n = two_nodes();
    let order = OrderId(Uuid::now_v7());
    let placed = n.a.dispatch(n.by_member(place(order))).await.unwrap();
    assert!(matches!(placed, Dispatched::Accepted { .. }), "{placed:?}");
    let reserved =
        n.a.dispatch(
            n.by_process(Command::RecordStockReserved(RecordStockReserved {
                order_id: order,
                reservation_id: "r".into(),
            })),
        )
        .await
        .unwrap();
    assert!(
        matches!(reserved, Dispatched::Accepted { .. }),
        "{reserved:?}"
    );
    assert_eq!(n.store.loads(), 0, "the order was read back from the store");
    assert_eq!(n.events_of(order).await.len(), 2);
}

#[tokio::test]
async fn a_stale_cached_state_never_gets_a_command_accepted_twice() {
    let n = two_nodes();
    let order = OrderId(Uuid::now_v7());
    n.a.dispatch(n.by_member(place(order))).await.unwrap();
    // Node b cancels; node a still believes the order is placed.
    let cancel = || {
        Command::CancelOrder(CancelOrder {
            order_id: order,
            reason: None,
        })
    };
    let first = n.b.dispatch(n.by_member(cancel())).await.unwrap();
    assert!(matches!(first, Dispatched::Accepted { .. }), "{first:?}");
    // When: node a gets another cancel (a new command id).
    let second = n.a.dispatch(n.by_member(cancel())).await.unwrap();
    // Then: judged on the store's state, not the cached one.
    assert!(
        matches!(&second, Dispatched::Rejected(rule) if rule.code == "cannot_cancel"),
        "{second:?}"
    );
    let cancelled = n
        .events_of(order)
        .await
        .iter()
        .filter(|e| e.event.type_name() == "OrderCancelled")
        .count();
    assert_eq!(cancelled, 1);
}

#[tokio::test]
async fn a_refusal_decided_on_a_stale_cache_is_checked_against_the_store() {
    let n = two_nodes();
    let order = OrderId(Uuid::now_v7());
    n.a.dispatch(n.by_member(place(order))).await.unwrap();
    // Node b (say, the fulfilment worker) takes the order to ready; node a's cache
    // still says placed.
    let r = OrderRef { order_id: order };
    for command in [
        Command::RecordStockReserved(RecordStockReserved {
            order_id: order,
            reservation_id: "r".into(),
        }),
        Command::RecordPaymentCaptured(RecordPaymentCaptured {
            order_id: order,
            payment_id: "p".into(),
            amount_cents: 450,
        }),
        Command::ConfirmOrder(r.clone()),
        Command::MarkReady(r.clone()),
    ] {
        let done = n.b.dispatch(n.by_process(command)).await.unwrap();
        assert!(matches!(done, Dispatched::Accepted { .. }), "{done:?}");
    }
    // When: the member completes the order through node a.
    let completed =
        n.a.dispatch(n.by_member(Command::CompleteOrder(r)))
            .await
            .unwrap();
    // Then: accepted (on a's stale state it would have been "not ready").
    assert!(
        matches!(completed, Dispatched::Accepted { .. }),
        "{completed:?}"
    );
    assert_eq!(n.events_of(order).await.len(), 6);
}

// --- The catalog (guarantee 8) -------------------------------------------------

fn place_lines(order: OrderId, lines: Vec<RequestedLine>) -> Command {
    Command::PlaceOrder(PlaceOrder {
        order_id: order,
        lines,
        ready_at: None,
        note: None,
    })
}

#[tokio::test]
async fn an_order_of_skus_carries_the_catalogs_names_and_prices() {
    let w = world();
    let order = OrderId(Uuid::now_v7());
    let lines = vec![
        RequestedLine::new("pizza", 2),
        RequestedLine::new("milk", 1),
    ];
    let Dispatched::Accepted { events, .. } = w
        .service
        .dispatch(w.by_member(place_lines(order, lines)))
        .await
        .unwrap()
    else {
        panic!("accepted expected");
    };
    let Some(hearth_core::Event::OrderPlaced {
        lines, total_cents, ..
    }) = events[0].event.of::<hearth_core::Orders>()
    else {
        panic!("OrderPlaced expected, got {events:?}");
    };
    let got: Vec<_> = lines
        .iter()
        .map(|l| {
            (
                l.sku.as_str(),
                l.name.as_str(),
                l.quantity,
                l.unit_price_cents,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("pizza", "Margherita pizza", 2, 1150),
            ("milk", "Milk 1 L", 1, 129)
        ]
    );
    assert_eq!(*total_cents, 2 * 1150 + 129);
}

#[tokio::test]
async fn a_price_the_member_was_not_charged_is_refused_and_nothing_is_appended() {
    let w = world();
    let order = OrderId(Uuid::now_v7());
    let free_pizza = place_lines(order, vec![RequestedLine::shown("pizza", 1, 1)]);
    let Dispatched::Rejected(refused) = w.service.dispatch(w.by_member(free_pizza)).await.unwrap()
    else {
        panic!("refused expected");
    };
    assert_eq!(refused.code, "price_changed");
    assert!(refused.conflict);
    assert!(
        refused.message.contains("pizza") && refused.message.contains("1150"),
        "names the sku and the current price: {}",
        refused.message
    );
    assert_eq!(w.head().await, 0, "nothing appended");
    // The price shown is the catalog's: accepted.
    let fair = place_lines(order, vec![RequestedLine::shown("pizza", 1, 1150)]);
    assert!(matches!(
        w.service.dispatch(w.by_member(fair)).await.unwrap(),
        Dispatched::Accepted { .. }
    ));
}

#[tokio::test]
async fn an_order_keeps_its_prices_when_the_catalog_changes() {
    let w = world();
    let order = OrderId(Uuid::now_v7());
    w.service
        .dispatch(w.by_member(place_lines(order, vec![RequestedLine::new("pizza", 1)])))
        .await
        .unwrap();
    w.catalog.set_price("pizza", 1500);
    let state = w
        .service
        .load::<hearth_core::Orders>(w.household, order)
        .await
        .unwrap();
    let placed = state.order.unwrap();
    assert_eq!(
        (placed.lines[0].unit_price_cents, placed.total_cents),
        (1150, 1150)
    );
    // And the next order is at the new price.
    let next = OrderId(Uuid::now_v7());
    let Dispatched::Accepted { events, .. } = w
        .service
        .dispatch(w.by_member(place_lines(next, vec![RequestedLine::new("pizza", 1)])))
        .await
        .unwrap()
    else {
        panic!("accepted expected");
    };
    assert!(matches!(
        events[0].event.of::<hearth_core::Orders>(),
        Some(hearth_core::Event::OrderPlaced {
            total_cents: 1500,
            ..
        })
    ));
}

#[tokio::test]
async fn more_than_is_available_is_refused_before_anything_is_appended() {
    let w = world();
    // The default catalog has 50 coffee.
    let greedy = place_lines(
        OrderId(Uuid::now_v7()),
        vec![RequestedLine::new("coffee", 60)],
    );
    let Dispatched::Rejected(refused) = w.service.dispatch(w.by_member(greedy)).await.unwrap()
    else {
        panic!("refused expected");
    };
    assert_eq!(refused.code, "not_enough_stock");
    assert!(refused.message.contains("coffee") && refused.message.contains("50 available"));
    let unknown = place_lines(
        OrderId(Uuid::now_v7()),
        vec![RequestedLine::new("caviar", 1)],
    );
    let Dispatched::Rejected(refused) = w.service.dispatch(w.by_member(unknown)).await.unwrap()
    else {
        panic!("refused expected");
    };
    assert_eq!(refused.code, "unknown_sku");
    assert!(refused.message.contains("caviar"));
    assert_eq!(w.head().await, 0);
}

#[tokio::test]
async fn an_unreachable_catalog_fails_the_order_and_appends_nothing() {
    let w = world();
    let order = OrderId(Uuid::now_v7());
    let accepted = w.by_member(place(order));
    w.service.dispatch(accepted.clone()).await.unwrap();
    w.catalog.catalog_down(true);
    let other = w.by_member(place(OrderId(Uuid::now_v7())));
    let err = w.service.dispatch(other.clone()).await.unwrap_err();
    assert!(
        matches!(err, hearth_core::ServiceError::CatalogUnavailable(ref e) if e.is_retryable()),
        "a transient error, not a refusal: {err:?}"
    );
    assert_eq!(w.head().await, 1, "nothing appended");
    assert_eq!(w.store.outcome(w.household, other.id).await.unwrap(), None);
    // A resend of a command already decided still gets its outcome.
    assert!(matches!(
        w.service.dispatch(accepted).await.unwrap(),
        Dispatched::Duplicate(CommandOutcome::Accepted { seq: 1, .. })
    ));
    // Commands that name nothing from the catalog go on.
    let cancel = w.by_member(Command::CancelOrder(CancelOrder {
        order_id: order,
        reason: Some("changed my mind".into()),
    }));
    assert!(matches!(
        w.service.dispatch(cancel).await.unwrap(),
        Dispatched::Accepted { .. }
    ));
    w.catalog.catalog_down(false);
    assert!(matches!(
        w.service.dispatch(other).await.unwrap(),
        Dispatched::Accepted { .. }
    ));
}

#[tokio::test]
async fn a_service_without_a_catalog_places_no_order() {
    let store = Arc::new(MemoryEventStore::new());
    let service = Service::new(store.clone(), Arc::new(ManualClock::starting_now()));
    let household = HouseholdId(Uuid::now_v7());
    let command = sent(
        household,
        Actor::Member {
            id: MemberId(Uuid::now_v7()),
        },
        place(OrderId(Uuid::now_v7())),
    );
    assert!(matches!(
        service.dispatch(command).await,
        Err(hearth_core::ServiceError::CatalogUnavailable(_))
    ));
    assert_eq!(store.head(household).await.unwrap(), 0);
}
