//! Durable work for `hearth serve`: the outbox relay to Temporal when it is configured,
//! otherwise the embedded executor with the sandbox providers in process.

use crate::stores::Stores;
use anyhow::Context as _;
use hearth_core::Service;
use hearth_core::durable::Processes;
use hearth_core::fulfilment::Fulfilment;
use hearth_core::ports::{Catalog, Inventory, JobScheduler, Payments};
use hearth_embedded::{EmbeddedExecutor, ExecutorConfig};
use hearth_relay::{Relay, RelayConfig};
use hearth_sandbox::{Faults, HttpInventory, HttpPayments, RunningSandbox, Sandbox};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct DurableArgs {
    /// Temporal frontend address. When set, `serve` relays jobs from the outbox to
    /// Temporal (run `hearth worker` for the workflows); otherwise the embedded
    /// executor runs them in this process.
    #[arg(long = "temporal-address", env = "HEARTH_TEMPORAL_ADDRESS")]
    pub temporal_address: Option<String>,
    /// Temporal namespace.
    #[arg(
        long = "temporal-namespace",
        env = "HEARTH_TEMPORAL_NAMESPACE",
        default_value = "default"
    )]
    pub temporal_namespace: String,
    /// The task queue every household shares (the household is the fairness key).
    #[arg(long = "temporal-task-queue", env = "HEARTH_TEMPORAL_TASK_QUEUE", default_value = hearth_temporal::DEFAULT_TASK_QUEUE)]
    pub temporal_task_queue: String,
    /// Base URL of the payment and inventory provider (e.g. a `hearth sandbox`). Without
    /// it, a sandbox provider runs inside this process on a loopback port.
    #[arg(long, env = "HEARTH_PROVIDERS_URL")]
    pub providers_url: Option<String>,
    /// Run no durable work in this process (another node, or `hearth worker`, does).
    #[arg(long, env = "HEARTH_NO_DURABLE", conflicts_with = "temporal_address")]
    pub no_durable: bool,
    /// Timeout of one provider call, in milliseconds.
    #[arg(long, env = "HEARTH_PROVIDERS_TIMEOUT_MS", default_value_t = 5_000)]
    pub providers_timeout_ms: u64,
    /// How long the provider's catalog (names, prices, availability), once read, is
    /// used for placing orders and `GET /catalog` before it is read again, in
    /// milliseconds (0: read it for every order).
    #[arg(long, env = "HEARTH_CATALOG_TTL_MS", default_value_t = 2_000)]
    pub catalog_ttl_ms: u64,
    /// The periodic reconciliation (with the embedded executor; on Temporal the
    /// worker runs it).
    #[command(flatten)]
    pub reconcile: crate::reconcile::JobArgs,
}

/// The payment and inventory provider this process talks to: the one at
/// `--providers-url`, or, for the embedded executor without one, a sandbox started in
/// this process. Started before the service, which reads the provider's catalog.
#[derive(Debug)]
pub struct Providers {
    url: Option<String>,
    sandbox: Option<RunningSandbox>,
}

impl Providers {
    pub async fn start(args: &DurableArgs) -> anyhow::Result<Self> {
        if let Some(url) = &args.providers_url {
            return Ok(Self {
                url: Some(url.clone()),
                sandbox: None,
            });
        }
        if args.no_durable || args.temporal_address.is_some() {
            return Ok(Self {
                url: None,
                sandbox: None,
            });
        }
        let running = RunningSandbox::start(
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            Sandbox::new(Faults::default()),
        )
        .await
        .context("starting the in-process sandbox provider")?;
        Ok(Self {
            url: Some(running.url()),
            sandbox: Some(running),
        })
    }

    /// The catalog orders are placed from (guarantee 8): the provider's, read over HTTP
    /// and kept `--catalog-ttl-ms`; without a provider (`--no-durable`, or Temporal
    /// without `--providers-url`), the default catalog in memory, the same one
    /// `hearth worker`'s in-process sandbox serves.
    pub fn catalog(&self, args: &DurableArgs) -> anyhow::Result<Arc<dyn Catalog>> {
        match &self.url {
            Some(url) => {
                let timeout = Duration::from_millis(args.providers_timeout_ms.max(1));
                let ttl = Duration::from_millis(args.catalog_ttl_ms);
                let provider = hearth_sandbox::HttpProvider::new(url, timeout)?;
                tracing::info!(providers = %url, ttl_ms = args.catalog_ttl_ms, "catalog from the provider");
                Ok(Arc::new(provider.catalog(ttl)))
            }
            None => {
                tracing::info!("catalog: the default catalog in memory (no --providers-url)");
                Ok(Arc::new(hearth_memory::MemoryInventory::default()))
            }
        }
    }
}

/// What runs the durable work; stop it on shutdown.
#[derive(Debug)]
pub enum Durable {
    Embedded {
        executor: EmbeddedExecutor,
        sandbox: Option<RunningSandbox>,
        /// The process the executor runs, for the reconciler (boxed: the largest part of
        /// the largest variant).
        fulfilment: Box<Fulfilment>,
        reconciler: Option<tokio::task::JoinHandle<()>>,
    },
    Temporal {
        relay: Relay,
        /// Whether the frontend answers, for `/readyz`.
        reachable: Arc<hearth_temporal::Reachability>,
    },
    None,
}

impl Durable {
    /// `service` is the server's (one cache of states for the rooms and the process).
    pub async fn start(
        args: &DurableArgs,
        stores: &Stores,
        service: &Service,
        providers: Providers,
    ) -> anyhow::Result<Self> {
        if args.no_durable {
            tracing::info!("no durable work in this process (--no-durable)");
            return Ok(Durable::None);
        }
        if let Some(address) = &args.temporal_address {
            let mut config = hearth_temporal::TemporalConfig::new(
                address.clone(),
                args.temporal_namespace.clone(),
            );
            config.task_queue = args.temporal_task_queue.clone();
            let client = hearth_temporal::connect(&config)
                .await
                .with_context(|| format!("connecting to Temporal at {address}"))?;
            let reachable = Arc::new(hearth_temporal::Reachability::new(
                config.clone(),
                Some(client.clone()),
            ));
            let scheduler: Arc<dyn JobScheduler> = Arc::new(
                hearth_temporal::TemporalScheduler::new(client, config.task_queue.clone()),
            );
            let relay = Relay::spawn(
                stores.outbox.clone(),
                scheduler,
                Some(stores.feed.clone()),
                RelayConfig {
                    poll_interval: Duration::from_millis(250),
                    ..RelayConfig::default()
                },
            );
            tracing::info!(%address, task_queue = %config.task_queue, "durable work on Temporal (run `hearth worker`)");
            return Ok(Durable::Temporal { relay, reachable });
        }
        let timeout = Duration::from_millis(args.providers_timeout_ms.max(1));
        let Providers { url, sandbox } = providers;
        let Some(url) = url else {
            anyhow::bail!("the embedded executor needs a provider (started by Providers::start)");
        };
        let payments: Arc<dyn Payments> = Arc::new(HttpPayments::new(&url, timeout)?);
        let inventory: Arc<dyn Inventory> = Arc::new(HttpInventory::new(&url, timeout)?);
        let fulfilment = Fulfilment::new(service.clone(), payments, inventory.clone());
        let executor = EmbeddedExecutor::start(
            Processes::for_fulfilment(fulfilment.clone()),
            stores.outbox.clone(),
            Some(stores.feed.clone()),
            ExecutorConfig::default(),
        );
        tracing::info!(providers = %url, "durable work on the embedded executor");
        Ok(Durable::Embedded {
            executor,
            sandbox,
            fulfilment: Box::new(fulfilment),
            reconciler: None,
        })
    }

    /// Starts the periodic reconciliation beside the embedded executor, counting into
    /// `/metrics`. Nothing to do on Temporal (`hearth worker` runs it) or without
    /// durable work here.
    pub fn start_reconciler(&mut self, args: &DurableArgs, metrics: Arc<hearth_axum::Metrics>) {
        if let Durable::Embedded {
            fulfilment,
            reconciler,
            ..
        } = self
        {
            *reconciler = crate::reconcile::spawn_job(
                Fulfilment::clone(fulfilment),
                &args.reconcile,
                Some(metrics),
            );
        }
    }

    /// What `/readyz` checks of durable work: on Temporal, that its frontend answers
    /// (`temporal`; the relay keeps jobs in the outbox meanwhile, so nothing is lost,
    /// but nothing durable moves on).
    pub fn ready_checks(&self) -> Vec<hearth_axum::ReadyCheck> {
        match self {
            Durable::Temporal { reachable, .. } => {
                let reachable = reachable.clone();
                vec![hearth_axum::ReadyCheck::new("temporal", move || {
                    let reachable = reachable.clone();
                    async move {
                        reachable
                            .check()
                            .await
                            .map_err(|e| hearth_axum::NotReady::new("unreachable", e))
                    }
                })]
            }
            Durable::Embedded { .. } | Durable::None => Vec::new(),
        }
    }

    pub async fn stop(self) {
        match self {
            Durable::Embedded {
                executor,
                sandbox,
                reconciler,
                ..
            } => {
                if let Some(reconciler) = reconciler {
                    reconciler.abort();
                }
                executor.shutdown().await;
                if let Some(sandbox) = sandbox {
                    let _ = sandbox.stop().await;
                }
            }
            Durable::Temporal { mut relay, .. } => relay.stop().await,
            Durable::None => {}
        }
    }
}
