//! One step of the fulfilment process, carried out through the ports. Executors
//! (Temporal activities, the embedded executor) call [`Fulfilment::advance`] and only
//! decide *when* to call it again: after a timer, after a backoff, or at once.

use crate::Timestamp;
use crate::contracts::{Actor, CommandEnvelope, CommandMetadata, CommandOutcome};
use crate::ids::{CommandId, HouseholdId, OrderId};
use crate::ports::{
    CaptureRequest, Inventory, Payments, ProviderError, RefundRequest, ReleaseRequest,
    ReserveRequest,
};
use crate::process::{self, Followup, Found, Step, StepResult};
use crate::service::{Service, ServiceError};
use crate::trace::{self, Cause};
use std::sync::Arc;
use tracing::Instrument;

/// What one call to [`Fulfilment::advance`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Advanced {
    /// A step ran and its result was recorded (or was already recorded): call again.
    Progressed(Step),
    /// Nothing to do before `until` (ready-at): call again then.
    Waiting { until: Timestamp },
    /// The process is over: ready, completed, or fully compensated.
    Done,
    /// A provider refused for good where the process has no answer (e.g. a refund of an
    /// unknown payment): stop and leave it to an operator.
    Stuck { step: Step, error: ProviderError },
}

#[derive(Debug, thiserror::Error)]
pub enum FulfilmentError {
    /// A provider failed transiently: retry the same call later (idempotency keys make it safe).
    #[error("step {step} failed transiently: {error}")]
    Transient {
        step: &'static str,
        error: ProviderError,
    },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl FulfilmentError {
    pub fn is_retryable(&self) -> bool {
        match self {
            FulfilmentError::Transient { .. } => true,
            FulfilmentError::Service(ServiceError::Contention { .. }) => true,
            FulfilmentError::Service(ServiceError::CatalogUnavailable(_)) => true,
            FulfilmentError::Service(ServiceError::Store(e)) => {
                matches!(e, crate::ports::StoreError::Unavailable(_))
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Fulfilment {
    service: Service,
    payments: Arc<dyn Payments>,
    inventory: Arc<dyn Inventory>,
}

impl Fulfilment {
    pub fn new(
        service: Service,
        payments: Arc<dyn Payments>,
        inventory: Arc<dyn Inventory>,
    ) -> Self {
        Self {
            service,
            payments,
            inventory,
        }
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    pub fn payments(&self) -> &Arc<dyn Payments> {
        &self.payments
    }

    pub fn inventory(&self) -> &Arc<dyn Inventory> {
        &self.inventory
    }

    /// [`Fulfilment::advance_for`] with no job behind it.
    pub async fn advance(
        &self,
        tenant: HouseholdId,
        order: OrderId,
    ) -> Result<Advanced, FulfilmentError> {
        self.advance_for(tenant, order, Cause::default()).await
    }

    /// Loads the order, asks the pure process for the next step, carries it out with
    /// the step's idempotency key (each provider call in a [`trace::provider_call`]
    /// span), and records the result with the step's command id, on behalf of `cause`.
    pub async fn advance_for(
        &self,
        tenant: HouseholdId,
        order: OrderId,
        cause: Cause,
    ) -> Result<Advanced, FulfilmentError> {
        let state = self
            .service
            .load::<crate::order::Orders>(tenant, order)
            .await?;
        let now = self.service.clock().now();
        let step = process::next_step(&state, now);
        let key = step.key(tenant, order);
        let done = |id: String| StepResult::Done(id);
        let result = match &step {
            Step::Done => return Ok(Advanced::Done),
            Step::WaitUntil { at } => return Ok(Advanced::Waiting { until: *at }),
            Step::FindUnrecorded {
                reservation,
                capture,
            } => {
                return self
                    .find_unrecorded(
                        tenant,
                        order,
                        &state,
                        &step,
                        (*reservation, *capture),
                        cause,
                    )
                    .await;
            }
            Step::Confirm | Step::MarkReady => StepResult::Done(String::new()),
            Step::ReserveStock { lines } => self
                .inventory
                .reserve(ReserveRequest {
                    key,
                    tenant,
                    order_id: order,
                    lines: lines.clone(),
                })
                .instrument(trace::provider_call("inventory", "reserve", key, &cause))
                .await
                .map_or_else(StepResult::Failed, done),
            Step::CapturePayment { amount_cents } => self
                .payments
                .capture(CaptureRequest {
                    key,
                    tenant,
                    order_id: order,
                    amount_cents: *amount_cents,
                })
                .instrument(trace::provider_call("payments", "capture", key, &cause))
                .await
                .map_or_else(StepResult::Failed, done),
            Step::ReleaseStock { reservation_id } => self
                .inventory
                .release(ReleaseRequest {
                    key,
                    tenant,
                    reservation_id: reservation_id.clone(),
                })
                .instrument(trace::provider_call("inventory", "release", key, &cause))
                .await
                .map_or_else(StepResult::Failed, |()| StepResult::Done(String::new())),
            Step::Refund {
                payment_id,
                amount_cents,
            } => self
                .payments
                .refund(RefundRequest {
                    key,
                    tenant,
                    payment_id: payment_id.clone(),
                    amount_cents: *amount_cents,
                })
                .instrument(trace::provider_call("payments", "refund", key, &cause))
                .await
                .map_or_else(StepResult::Failed, done),
        };
        let command_id = step.command_id(tenant, order);
        self.record(tenant, order, &state, (step, command_id), result, cause)
            .await
    }

    /// [`Step::FindUnrecorded`]: reads the providers' ledgers under the forward steps'
    /// keys and records the first success the log does not show, as that step's
    /// result; nothing missing ends the process.
    async fn find_unrecorded(
        &self,
        tenant: HouseholdId,
        order: OrderId,
        state: &crate::order::OrderState,
        step: &Step,
        (reservation, capture): (bool, bool),
        cause: Cause,
    ) -> Result<Advanced, FulfilmentError> {
        let transient = |error: ProviderError| FulfilmentError::Transient {
            step: step.name(),
            error,
        };
        let mut found = Found::default();
        if reservation {
            let key = process::reserve_key(tenant, order);
            found.reservation = self
                .inventory
                .find_reservation(key)
                .instrument(trace::provider_call(
                    "inventory",
                    "find_reservation",
                    key,
                    &cause,
                ))
                .await
                .map_err(transient)?;
        }
        if capture {
            let key = process::capture_key(tenant, order);
            found.capture = self
                .payments
                .find_capture(key)
                .instrument(trace::provider_call(
                    "payments",
                    "find_capture",
                    key,
                    &cause,
                ))
                .await
                .map_err(transient)?;
        }
        match process::unrecorded(state, found) {
            Some((forward, result)) => {
                // Its own command id, not the forward step's: that one may already
                // hold a refusal (a late result refused before this rule existed).
                let command_id = process::found_command_id(tenant, order, &forward);
                self.record(tenant, order, state, (forward, command_id), result, cause)
                    .await
            }
            None => Ok(Advanced::Done),
        }
    }

    /// Records a step's result with the step's command id.
    async fn record(
        &self,
        tenant: HouseholdId,
        order: OrderId,
        state: &crate::order::OrderState,
        (step, command_id): (Step, CommandId),
        result: StepResult,
        cause: Cause,
    ) -> Result<Advanced, FulfilmentError> {
        let failure = match &result {
            StepResult::Failed(e) => Some(e.clone()),
            StepResult::Done(_) => None,
        };
        match process::record(order, &step, result) {
            Followup::Record(command) => {
                let envelope = CommandEnvelope {
                    id: command_id,
                    tenant,
                    command: command.into(),
                    metadata: CommandMetadata {
                        actor: Actor::Process,
                        correlation_id: cause.correlation_id,
                        causation_id: cause.causation_id,
                        role: None,
                        traceparent: None,
                    },
                };
                let outcome = self.service.dispatch(envelope).await?.outcome();
                if let CommandOutcome::Rejected { code, message } = outcome {
                    // Refused now or by an earlier run: fine if the order moved on meanwhile
                    // (say, cancelled between load and record); stuck if it did not.
                    let after = self
                        .service
                        .load::<crate::order::Orders>(tenant, order)
                        .await?;
                    if after.version == state.version {
                        return Ok(Advanced::Stuck {
                            step,
                            error: ProviderError::Invalid(format!(
                                "recording was refused: {code}: {message}"
                            )),
                        });
                    }
                }
                Ok(Advanced::Progressed(step))
            }
            Followup::Retry => Err(FulfilmentError::Transient {
                step: step.name(),
                error: failure.unwrap_or(ProviderError::Transient("unknown".into())),
            }),
            Followup::Nothing => Ok(Advanced::Stuck {
                step,
                error: failure.unwrap_or(ProviderError::Invalid("no result".into())),
            }),
        }
    }

    /// Advances until the process waits, ends or fails: what an executor runs per wake-up.
    /// Bounded, so a bug cannot spin forever.
    pub async fn run(
        &self,
        tenant: HouseholdId,
        order: OrderId,
    ) -> Result<Advanced, FulfilmentError> {
        for _ in 0..64 {
            match self.advance(tenant, order).await? {
                Advanced::Progressed(_) => continue,
                other => return Ok(other),
            }
        }
        Ok(Advanced::Stuck {
            step: Step::Done,
            error: ProviderError::Invalid("the process did not settle in 64 steps".into()),
        })
    }
}
