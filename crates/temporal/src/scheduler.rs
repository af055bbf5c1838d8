//! [`TemporalScheduler`]: the JobScheduler port on Temporal.

use crate::workflow::{FulfilmentWorkflow, OrderRef};
use async_trait::async_trait;
use hearth_core::ports::{Handoff, Job, JobKind, JobScheduler, SchedulerError};
use hearth_core::{HouseholdId, OrderId};
use temporalio_client::errors::{WorkflowInteractionError, WorkflowStartError};
use temporalio_client::{
    Client, WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowSignalOptions,
    WorkflowStartOptions,
};
use temporalio_common::Priority;

/// The id of the one fulfilment workflow of an order: `<household>-<order>`.
///
/// The design's `<tenant>-<commandId>` names the command that started the work; an order
/// is created by exactly one `PlaceOrder`, so the two are one to one, but a Cancel job
/// (and an operator) knows the order, not the command that placed it.
pub fn workflow_id(household: HouseholdId, order: OrderId) -> String {
    format!("{household}-{order}")
}

/// Starts and signals fulfilment workflows on one shared task queue.
#[derive(Clone)]
pub struct TemporalScheduler {
    client: Client,
    task_queue: String,
}

impl std::fmt::Debug for TemporalScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporalScheduler")
            .field("task_queue", &self.task_queue)
            .finish_non_exhaustive()
    }
}

impl TemporalScheduler {
    pub fn new(client: Client, task_queue: impl Into<String>) -> Self {
        Self {
            client,
            task_queue: task_queue.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn task_queue(&self) -> &str {
        &self.task_queue
    }

    async fn start_fulfilment(&self, job: &Job) -> Result<(), SchedulerError> {
        let input = OrderRef {
            household: job.tenant,
            order: job.order_id,
        };
        let options = WorkflowStartOptions::new(
            self.task_queue.clone(),
            workflow_id(job.tenant, job.order_id),
        )
        .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
        .id_conflict_policy(WorkflowIdConflictPolicy::Fail)
        .priority(
            Priority::builder()
                .fairness_key(job.tenant.to_string())
                .build(),
        )
        .build();
        match self
            .client
            .start_workflow(FulfilmentWorkflow::run, input, options)
            .await
        {
            Ok(_) => Ok(()),
            // Started before (a relay retry, a crash between start and mark): a no-op.
            Err(WorkflowStartError::AlreadyStarted { .. }) => Ok(()),
            Err(WorkflowStartError::PayloadConversion(e)) => {
                Err(SchedulerError::Rejected(e.to_string()))
            }
            Err(e) => Err(SchedulerError::Unavailable(e.to_string())),
        }
    }

    async fn signal_cancel(&self, job: &Job) -> Result<(), SchedulerError> {
        let handle = self
            .client
            .get_workflow_handle::<FulfilmentWorkflow>(workflow_id(job.tenant, job.order_id));
        match handle
            .signal(
                FulfilmentWorkflow::cancel,
                (),
                WorkflowSignalOptions::default(),
            )
            .await
        {
            Ok(()) => Ok(()),
            // Not started yet (its first step will see the cancellation) or already over
            // (nothing left to compensate that the process has not done).
            Err(WorkflowInteractionError::NotFound(_)) => Ok(()),
            Err(WorkflowInteractionError::PayloadConversion(e)) => {
                Err(SchedulerError::Rejected(e.to_string()))
            }
            Err(e) => Err(SchedulerError::Unavailable(e.to_string())),
        }
    }
}

#[async_trait]
impl JobScheduler for TemporalScheduler {
    /// Temporal holds a started workflow (or a delivered signal) durably: the relay
    /// marks the job at once.
    async fn start(&self, job: Job) -> Result<Handoff, SchedulerError> {
        match job.kind {
            JobKind::Fulfil => self.start_fulfilment(&job).await?,
            JobKind::Cancel => self.signal_cancel(&job).await?,
        }
        Ok(Handoff::Durable)
    }
}
