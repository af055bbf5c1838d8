//! The `advance` activity: one step of a domain's process (the core's [`Processes`]).

use crate::workflow::AggregateRef;
use hearth_core::durable::{Advance, Processes};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use tracing::Instrument;

/// Error type name of a failure worth retrying (a provider or the store was unavailable).
pub const RETRYABLE: &str = "FulfilmentTransient";
/// Error type name the retry policy never retries (corrupt data, a bug).
pub const NON_RETRYABLE: &str = "FulfilmentPermanent";
/// Error type name a workflow fails with when the process is stuck (operator needed).
pub const STUCK: &str = "FulfilmentStuck";

/// What one `advance` did, as it crosses the wire to the workflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum AdvanceOutcome {
    /// A step ran and was recorded: advance again.
    Progressed { step: String },
    /// Nothing to do before ready-at (milliseconds since the Unix epoch).
    #[serde(rename_all = "camelCase")]
    Waiting { until_ms: i64 },
    /// The process is over.
    Done,
    /// A provider refused for good where the process has no answer.
    Stuck { step: String, error: String },
}

impl From<Advance> for AdvanceOutcome {
    fn from(advanced: Advance) -> Self {
        match advanced {
            Advance::Progressed { step } => AdvanceOutcome::Progressed {
                step: step.to_owned(),
            },
            Advance::Waiting { until } => AdvanceOutcome::Waiting {
                until_ms: until.timestamp_millis(),
            },
            Advance::Done => AdvanceOutcome::Done,
            Advance::Stuck { step, error } => AdvanceOutcome::Stuck {
                step: step.to_owned(),
                error,
            },
        }
    }
}

/// The activities of the process workflow, over the core's [`Processes`] (the
/// service plus what each domain's process needs, e.g. the Payments and Inventory
/// ports for order fulfilment).
#[derive(Debug, Clone)]
pub struct ProcessActivities {
    processes: Processes,
}

impl ProcessActivities {
    pub fn new(processes: Processes) -> Self {
        Self { processes }
    }
}

#[activities]
impl ProcessActivities {
    /// One step: load the aggregate, carry out what its pure process says, record it.
    /// Declines are not errors (the core records a rejection; the next step compensates).
    #[activity(name = "advance")]
    pub async fn advance(
        self: Arc<Self>,
        ctx: ActivityContext,
        target: AggregateRef,
    ) -> Result<AdvanceOutcome, ActivityError> {
        // Heartbeat while the step runs: a worker that dies mid-step stops beating, and
        // the server retries the step elsewhere after the heartbeat timeout rather than
        // after the whole start-to-close timeout. (The SDK throttles the beats.)
        let span = hearth_core::trace::activity(
            "advance",
            target.household,
            target.aggregate,
            &target.cause(),
            target.traceparent.as_deref(),
        );
        let step = self
            .processes
            .advance_for(target.household, target.aggregate, target.cause())
            .instrument(span);
        tokio::pin!(step);
        let mut beat = tokio::time::interval(crate::workflow::HEARTBEAT_EVERY);
        let result = loop {
            tokio::select! {
                result = &mut step => break result,
                _ = beat.tick() => {
                    if let Err(e) = ctx.record_heartbeat(()).await {
                        tracing::warn!(aggregate = %target.aggregate, "heartbeat not recorded: {e}");
                    }
                }
            }
        };
        match result {
            Ok(advanced) => {
                if let Advance::Progressed { step } = &advanced {
                    // One line per step carried out: operators (and the restart test)
                    // read provider side effects from it.
                    tracing::info!(household = %target.household, aggregate = %target.aggregate, step = %step, "process step done");
                }
                Ok(advanced.into())
            }
            Err(e) => {
                let retryable = e.is_retryable();
                tracing::warn!(household = %target.household, aggregate = %target.aggregate, retryable, "advance failed: {e}");
                let type_name = if retryable { RETRYABLE } else { NON_RETRYABLE };
                Err(ActivityError::application(
                    ApplicationFailure::builder(e.to_string())
                        .type_name(type_name.to_owned())
                        .non_retryable(!retryable)
                        .build(),
                ))
            }
        }
    }
}
