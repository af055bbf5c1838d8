//! [`TemporalScheduler`]: the JobScheduler port on Temporal.

use crate::workflow::{AggregateRef, ProcessWorkflow};
use async_trait::async_trait;
use hearth_core::ports::{Handoff, Job, JobKind, JobScheduler, SchedulerError};
use hearth_core::{AggregateId, HouseholdId};
use temporalio_client::errors::{WorkflowInteractionError, WorkflowStartError};
use temporalio_client::{
    Client, WorkflowIdConflictPolicy, WorkflowIdReusePolicy, WorkflowSignalOptions,
    WorkflowStartOptions,
};
use temporalio_common::Priority;

/// The id of the one process workflow of an aggregate: `<household>-<domain>-<id>`.
///
/// The design's `<tenant>-<commandId>` names the command that started the work; an
/// aggregate is created by exactly one command, so the two are one to one, but a wake
/// job (and an operator) knows the aggregate, not the command that created it.
pub fn workflow_id(household: HouseholdId, aggregate: AggregateId) -> String {
    format!("{household}-{}-{}", aggregate.domain, aggregate.id)
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

    async fn start_process(&self, job: &Job) -> Result<(), SchedulerError> {
        let input = AggregateRef {
            household: job.tenant,
            aggregate: job.aggregate,
            correlation_id: Some(job.correlation_id),
            causation_id: Some(job.id.0),
            // The relay's job span, which continues the command's trace.
            traceparent: hearth_core::trace::traceparent(&tracing::Span::current())
                .or_else(|| job.traceparent.clone()),
        };
        let options = WorkflowStartOptions::new(
            self.task_queue.clone(),
            workflow_id(job.tenant, job.aggregate),
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
            .start_workflow(ProcessWorkflow::run, input, options)
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

    async fn signal_wake(&self, job: &Job) -> Result<(), SchedulerError> {
        let handle = self
            .client
            .get_workflow_handle::<ProcessWorkflow>(workflow_id(job.tenant, job.aggregate));
        match handle
            .signal(ProcessWorkflow::wake, (), WorkflowSignalOptions::default())
            .await
        {
            Ok(()) => Ok(()),
            // Not started yet (its first step will see the change) or already over
            // (nothing left to do that the process has not done).
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
            JobKind::Start => self.start_process(&job).await?,
            JobKind::Wake => self.signal_wake(&job).await?,
        }
        Ok(Handoff::Durable)
    }
}
