//! Connecting to Temporal and running a worker for the process workflow.

use crate::activities::ProcessActivities;
use crate::error::TemporalError;
use crate::workflow::ProcessWorkflow;
use hearth_core::durable::Processes;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};
use temporalio_sdk::runtime::RuntimeOptions;
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

/// Where Temporal is and which queue Hearth uses.
#[derive(Clone, Debug)]
pub struct TemporalConfig {
    /// e.g. `http://127.0.0.1:7233`.
    pub address: String,
    pub namespace: String,
    pub task_queue: String,
    /// Shown in Temporal's UI and history as the worker or client identity.
    pub identity: String,
}

impl TemporalConfig {
    pub fn new(address: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            namespace: namespace.into(),
            task_queue: crate::DEFAULT_TASK_QUEUE.to_owned(),
            identity: format!("hearth@{}", std::process::id()),
        }
    }
}

/// A client for the configured namespace.
pub async fn connect(config: &TemporalConfig) -> Result<Client, TemporalError> {
    let address = if config.address.contains("://") {
        config.address.clone()
    } else {
        format!("http://{}", config.address)
    };
    let url = Url::parse(&address).map_err(|e| TemporalError::Address {
        address: config.address.clone(),
        message: e.to_string(),
    })?;
    let connection = Connection::connect(
        ConnectionOptions::new(url)
            .identity(config.identity.clone())
            .build(),
    )
    .await
    .map_err(|e| TemporalError::Connect {
        address: config.address.clone(),
        message: e.to_string(),
    })?;
    Client::new(
        connection,
        ClientOptions::new(config.namespace.clone()).build(),
    )
    .map_err(|e| TemporalError::Client(e.to_string()))
}

/// Stops a running worker gracefully (it finishes its current tasks first).
pub struct WorkerHandle {
    shutdown: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerHandle").finish_non_exhaustive()
    }
}

impl WorkerHandle {
    pub fn shutdown(&self) {
        (self.shutdown)();
    }
}

/// Runs a worker for the process workflow and its activities on the configured task
/// queue until it is shut down through the handle given to `started`.
///
/// Needs a current tokio runtime; the future is not `Send` (the SDK's worker is not), so
/// run it on the task that calls it (`block_on`, a `LocalSet`, or `select!`), not in
/// `tokio::spawn`.
pub async fn run_worker(
    config: &TemporalConfig,
    processes: Processes,
    started: impl FnOnce(WorkerHandle),
) -> Result<(), TemporalError> {
    let runtime = Runtime::from_current_tokio(RuntimeOptions::default())
        .map_err(|e| TemporalError::Worker(e.to_string()))?;
    let client = connect(config).await?;
    let options = WorkerOptions::new(config.task_queue.clone())
        .register_workflow::<ProcessWorkflow>()
        .map_err(|e| TemporalError::Worker(e.to_string()))?
        .register_activities(ProcessActivities::new(processes))
        .build();
    let mut worker =
        Worker::new(&runtime, client, options).map_err(|e| TemporalError::Worker(e.to_string()))?;
    started(WorkerHandle {
        shutdown: Box::new(worker.shutdown_handle()),
    });
    worker
        .run()
        .await
        .map_err(|e| TemporalError::Worker(e.to_string()))
}
