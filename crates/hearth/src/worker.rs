//! `hearth worker`: runs the Temporal worker of the fulfilment workflow, and the outbox
//! relay that starts the store's pending jobs on Temporal.

use crate::stores::StoreArgs;
use anyhow::Context;
use hearth_core::Service;
use hearth_core::durable::Processes;
use hearth_core::fulfilment::Fulfilment;
use hearth_core::ports::{EventStore, Inventory, JobScheduler, Payments};
use hearth_memory::{MemoryInventory, MemoryPayments, SystemClock};
use hearth_relay::{Relay, RelayConfig};
use hearth_temporal::{TemporalConfig, TemporalScheduler};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Temporal frontend address.
    #[arg(
        long,
        env = "HEARTH_TEMPORAL_ADDRESS",
        default_value = "http://127.0.0.1:7233"
    )]
    pub temporal_address: String,
    /// Temporal namespace.
    #[arg(long, env = "HEARTH_TEMPORAL_NAMESPACE", default_value = "default")]
    pub temporal_namespace: String,
    /// The task queue every household shares (the household is the fairness key).
    #[arg(long, env = "HEARTH_TEMPORAL_TASK_QUEUE", default_value = hearth_temporal::DEFAULT_TASK_QUEUE)]
    pub task_queue: String,
    /// The store the workflow's activities dispatch to (the same as `hearth serve`'s).
    #[command(flatten)]
    pub stores: StoreArgs,
    /// Base URL of the payment and inventory provider (e.g. a `hearth sandbox`). Without
    /// it the activities use an in-process sandbox provider (for trying things out).
    #[arg(long, env = "HEARTH_PROVIDERS_URL")]
    pub providers_url: Option<String>,
    /// Do not run the outbox relay in this process (run it elsewhere, once or more).
    #[arg(long)]
    pub no_relay: bool,
    /// The relay's poll of the outbox, in milliseconds (it also wakes on each commit's
    /// feed signal).
    #[arg(long, env = "HEARTH_RELAY_IDLE_MS", default_value_t = 500)]
    pub relay_idle_ms: u64,
    /// The periodic reconciliation of the providers' ledgers with the log.
    #[command(flatten)]
    pub reconcile: crate::reconcile::JobArgs,
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    // Shared: `hearth serve` and other workers may have the SQLite file open too.
    let stores = args.stores.open(hearth_sqlite::Sharing::Shared).await?;
    tracing::info!(store = %stores.kind, "store opened");
    let store: Arc<dyn EventStore> = stores.store.clone();
    // The provider: HTTP (a real one, or `hearth sandbox`) or the in-process sandbox.

    let (payments, inventory): (Arc<dyn Payments>, Arc<dyn Inventory>) = match &args.providers_url {
        Some(url) => {
            let timeout = Duration::from_secs(10);
            (
                Arc::new(hearth_sandbox::HttpPayments::new(url, timeout)?),
                Arc::new(hearth_sandbox::HttpInventory::new(url, timeout)?),
            )
        }
        None => (
            Arc::new(MemoryPayments::new()),
            Arc::new(MemoryInventory::default()),
        ),
    };
    // Snapshots are written after the activities' commands are answered, as in `serve`.
    let (service, snapshots) =
        Service::new(store.clone(), Arc::new(SystemClock)).with_snapshot_writer();
    tokio::spawn(snapshots.run());
    let fulfilment = Fulfilment::new(service, payments, inventory);
    // No /metrics in the worker: the reconciliation reports in the log.
    let reconciler = crate::reconcile::spawn_job(fulfilment.clone(), &args.reconcile, None);
    let mut config = TemporalConfig::new(args.temporal_address, args.temporal_namespace);
    config.task_queue = args.task_queue;

    let mut relay = if args.no_relay {
        None
    } else {
        let client = hearth_temporal::connect(&config)
            .await
            .with_context(|| format!("connecting to Temporal at {}", config.address))?;
        let scheduler: Arc<dyn JobScheduler> =
            Arc::new(TemporalScheduler::new(client, config.task_queue.clone()));
        Some(Relay::spawn(
            stores.outbox.clone(),
            scheduler,
            Some(stores.feed.clone()),
            RelayConfig {
                poll_interval: Duration::from_millis(args.relay_idle_ms),
                ..RelayConfig::default()
            },
        ))
    };

    let (handle_tx, handle_rx) = tokio::sync::oneshot::channel();
    let processes = Processes::for_fulfilment(fulfilment);
    let worker = hearth_temporal::run_worker(&config, processes, move |handle| {
        let _ = handle_tx.send(handle);
    });
    let stop = async {
        tokio::signal::ctrl_c().await.ok();
        tracing::info!("stopping: finishing the current tasks");
        if let Ok(handle) = handle_rx.await {
            handle.shutdown();
        }
    };
    tracing::info!(
        address = %config.address,
        namespace = %config.namespace,
        task_queue = %config.task_queue,
        "hearth worker running"
    );
    tokio::pin!(worker);
    let result = tokio::select! {
        result = &mut worker => result.context("the Temporal worker stopped"),
        () = stop => worker.await.context("the Temporal worker stopped"),
    };
    if let Some(relay) = relay.as_mut() {
        relay.stop().await;
    }
    if let Some(reconciler) = reconciler {
        reconciler.abort();
    }
    result
}
