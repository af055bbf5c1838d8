//! The outbox relay: starts the jobs the store recorded with their events.
//!
//! Generic over the ports, so every executor (Temporal, embedded) can use it. A crash
//! between `start` and `mark_job_started` starts the job twice on the next pass; the
//! scheduler makes a repeated start a no-op.

use hearth_core::ports::{EventStore, JobScheduler, SchedulerError, StoreError};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
}

/// Starts up to `batch` pending jobs, oldest first, and marks each one started.
/// Returns how many were started. Stops at the first failure: the failed job and the
/// ones after it stay pending for the next pass.
pub async fn relay_once(
    store: &Arc<dyn EventStore>,
    scheduler: &Arc<dyn JobScheduler>,
    batch: usize,
) -> Result<usize, RelayError> {
    let jobs = store.pending_jobs(batch).await?;
    let mut started = 0;
    for job in jobs {
        let (tenant, id) = (job.tenant, job.id);
        scheduler.start(job).await?;
        store.mark_job_started(tenant, id).await?;
        started += 1;
    }
    Ok(started)
}

/// Relays forever: a pass, then (when it found nothing or failed) a pause of `idle`.
pub async fn run_relay(
    store: Arc<dyn EventStore>,
    scheduler: Arc<dyn JobScheduler>,
    idle: Duration,
) {
    const BATCH: usize = 100;
    loop {
        match relay_once(&store, &scheduler, BATCH).await {
            Ok(n) if n == BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!("job relay: {e}; retrying"),
        }
        tokio::time::sleep(idle).await;
    }
}
