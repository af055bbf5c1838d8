//! The process workflow (one per aggregate of any domain that has a process):
//! deterministic, only `ctx.*` calls and pure data.

use crate::activities::{AdvanceOutcome, NON_RETRYABLE, ProcessActivities};
use hearth_core::trace::Cause;
use hearth_core::{AggregateId, HouseholdId};
use serde::{Deserialize, Serialize};
use std::time::{Duration, UNIX_EPOCH};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, ApplicationFailure, SyncWorkflowContext, WorkflowContext, WorkflowContextView,
    WorkflowResult,
};
use uuid::Uuid;

/// Which aggregate a workflow (and each of its activities) works on, and on whose
/// behalf: the job that started it. The optional fields were added later: a workflow
/// started without them still decodes (its steps then carry no correlation id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregateRef {
    pub household: HouseholdId,
    pub aggregate: AggregateId,
    /// The correlation id of the command whose event started the workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// That event (the job's id): the cause of the commands the steps dispatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The W3C `traceparent` of the span that started the workflow, when traces are
    /// exported: each activity continues that trace. Carried in the input rather than
    /// in Temporal headers because workflow code in this SDK cannot read its start
    /// headers without an interceptor (docs/tracing.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl AggregateRef {
    /// What the steps act on behalf of.
    pub fn cause(&self) -> Cause {
        Cause {
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
        }
    }
}

/// A bound on loop turns: the process settles in a handful of steps; a workflow that
/// loops this often has a bug, and stops rather than growing its history forever.
const MAX_TURNS: u32 = 200;

/// The shortest timer the workflow sets: a ready-at that the activity saw as future
/// but the workflow clock sees as past still gets a (tiny) durable wait.
const MIN_WAIT: Duration = Duration::from_millis(50);

/// The `advance` activity heartbeats this often while it runs...
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// ...and the server takes an attempt that has not heartbeat for this long as dead (its
/// worker gone) and retries it: a few beats' worth, far below the start-to-close timeout.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the `advance` activity is retried: transient provider or store failures back off
/// from 1 s to at most 1 min, without limit (the process is idempotent step by step);
/// failures typed [`NON_RETRYABLE`] stop at once; an attempt whose worker stopped
/// heartbeating is retried after [`HEARTBEAT_TIMEOUT`].
pub fn advance_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .heartbeat_timeout(HEARTBEAT_TIMEOUT)
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(1))
                .backoff_coefficient(2.0)
                .maximum_interval(Duration::from_secs(60))
                .non_retryable_error_types([NON_RETRYABLE])
                .build(),
        )
        .build()
}

#[workflow]
#[derive(Debug)]
pub struct ProcessWorkflow {
    target: AggregateRef,
    /// How many wake signals arrived: the wait compares it with the value it started
    /// with, so one signal wakes exactly one wait.
    wakes: u32,
}

#[workflow_methods]
impl ProcessWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, target: AggregateRef) -> Self {
        Self { target, wakes: 0 }
    }

    /// Advance until the process is over; between steps, wait durably for the time the
    /// process named (a ready-at, a chore's due time) or a wake signal (an order
    /// cancelled, a chore done), whichever comes first.
    #[run(name = "process")]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<String> {
        let target = ctx.state(|s| s.target.clone());
        for _ in 0..MAX_TURNS {
            let outcome = ctx
                .execute_activity(
                    ProcessActivities::advance,
                    target.clone(),
                    advance_options(),
                )
                .await?;
            match outcome {
                AdvanceOutcome::Progressed { .. } => continue,
                AdvanceOutcome::Done => return Ok("done".to_owned()),
                AdvanceOutcome::Stuck { step, error } => {
                    return Err(ApplicationFailure::builder(format!(
                        "{} is stuck at {step}: {error}",
                        target.aggregate
                    ))
                    .type_name(crate::STUCK.to_owned())
                    .non_retryable(true)
                    .build()
                    .into());
                }
                AdvanceOutcome::Waiting { until_ms } => {
                    let now_ms = ctx
                        .workflow_time()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                    let wait = u64::try_from(until_ms.saturating_sub(now_ms))
                        .map_or(MIN_WAIT, Duration::from_millis)
                        .max(MIN_WAIT);
                    let seen = ctx.state(|s| s.wakes);
                    temporalio_sdk::workflows::select! {
                        _ = ctx.timer(wait) => {}
                        _ = ctx.wait_condition(move |s: &Self| s.wakes != seen) => {}
                    }
                }
            }
        }
        Err(ApplicationFailure::builder(format!(
            "{} did not settle in {MAX_TURNS} turns",
            target.aggregate
        ))
        .type_name(crate::STUCK.to_owned())
        .non_retryable(true)
        .build()
        .into())
    }

    /// The aggregate changed in a way its process must see now (an order cancelled:
    /// compensate; a chore done: stop reminding): wake up and advance.
    #[signal(name = "wake")]
    pub fn wake(&mut self, _ctx: &mut SyncWorkflowContext<Self>) {
        self.wakes = self.wakes.saturating_add(1);
    }
}
