//! Temporal adapter of Hearth's [`JobScheduler`](hearth_core::ports::JobScheduler) port.
//!
//! - [`TemporalScheduler`]: starts one fulfilment workflow per order (`<household>-<order>`,
//!   `RejectDuplicate`, conflict policy `Fail`, a repeat start is a no-op) and signals it
//!   when the order is cancelled.
//! - [`FulfilmentWorkflow`]: the durable loop around the core's pure process: run the
//!   `advance` activity, sleep on a durable timer until ready-at (woken early by the
//!   cancel signal), stop when the process is done.
//! - [`FulfilmentActivities`]: the `advance` activity, one call to
//!   [`Fulfilment::advance`](hearth_core::fulfilment::Fulfilment::advance).
//! - [`run_worker`]: a worker for the shared task queue.
//! - [`dev_server`]: a local `temporal server start-dev` for tests and local runs.
//!
//! docs/temporal.md explains the choices.

// The SDK's macros generate marker types (one per activity, workflow method and signal)
// without `Debug`.
#[allow(missing_debug_implementations)]
mod activities;
pub mod dev_server;
mod error;
mod scheduler;
mod worker;
#[allow(missing_debug_implementations)]
mod workflow;

pub use activities::{AdvanceOutcome, FulfilmentActivities, NON_RETRYABLE, RETRYABLE, STUCK};
pub use error::TemporalError;
pub use scheduler::{TemporalScheduler, workflow_id};
pub use worker::{TemporalConfig, WorkerHandle, connect, run_worker};
pub use workflow::{FulfilmentWorkflow, OrderRef};

/// The task queue every household shares (fairness key = household id).
pub const DEFAULT_TASK_QUEUE: &str = "hearth-fulfilment";
