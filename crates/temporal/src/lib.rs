//! Temporal adapter of Hearth's [`JobScheduler`](hearth_core::ports::JobScheduler) port.
//!
//! - [`TemporalScheduler`]: starts one process workflow per aggregate of any domain
//!   (`<household>-<domain>-<id>`, `RejectDuplicate`, conflict policy `Fail`, a repeat
//!   start is a no-op) for a `start` job, and signals it (`wake`) for a `wake` job.
//! - [`ProcessWorkflow`]: the durable loop around the core's pure process: run the
//!   `advance` activity, sleep on a durable timer until the time the process names
//!   (woken early by the wake signal), stop when the process is done.
//! - [`ProcessActivities`]: the `advance` activity, one call to
//!   [`Processes::advance`](hearth_core::durable::Processes::advance).
//! - [`run_worker`]: a worker for the shared task queue.
//! - [`Reachability`]: whether the frontend answers (`/readyz`).
//! - [`dev_server`]: a local `temporal server start-dev` for tests and local runs.
//!
//! docs/temporal.md explains the choices.

// The SDK's macros generate marker types (one per activity, workflow method and signal)
// without `Debug`.
#[allow(missing_debug_implementations)]
mod activities;
pub mod dev_server;
mod error;
mod reachability;
mod scheduler;
mod worker;
#[allow(missing_debug_implementations)]
mod workflow;

pub use activities::{AdvanceOutcome, NON_RETRYABLE, ProcessActivities, RETRYABLE, STUCK};
pub use error::TemporalError;
pub use reachability::Reachability;
pub use scheduler::{TemporalScheduler, workflow_id};
pub use worker::{TemporalConfig, WorkerHandle, connect, run_worker};
pub use workflow::{AggregateRef, ProcessWorkflow};

/// The task queue every household shares (fairness key = household id).
pub const DEFAULT_TASK_QUEUE: &str = "hearth-fulfilment";
