//! Durable work for every domain: the seam the executors (Temporal, the embedded one)
//! drive. A domain's process is pure logic behind [`Process::advance`]: load the
//! aggregate, do the next step, record it. An executor only decides *when* to call
//! again: after a timer ([`Advance::Waiting`]), after a backoff (a retryable error),
//! or at once.
//!
//! [`Processes`] holds the process of each registered domain that has one; a job
//! names its aggregate, and so its domain.

use crate::Timestamp;
use crate::chore::ChoreProcess;
use crate::domain::AggregateId;
use crate::fulfilment::{Advanced, Fulfilment, FulfilmentError};
use crate::ids::HouseholdId;
use crate::ports::{Inventory, Payments, StoreError};
use crate::registry::DomainId;
use crate::service::{Service, ServiceError};
use crate::trace::{self, Cause};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;
use tracing::Instrument;
use uuid::Uuid;

/// What one step of a process did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Advance {
    /// A step ran and its result was recorded (or was already recorded): call again.
    Progressed { step: &'static str },
    /// Nothing to do before `until` (a durable timer): call again then.
    Waiting { until: Timestamp },
    /// The process is over.
    Done,
    /// The process cannot go on by itself (a provider refused for good where the process
    /// has no answer): stop and leave it to an operator.
    Stuck { step: &'static str, error: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A step failed transiently: retry later (idempotency keys make it safe).
    #[error("step {step} failed transiently: {error}")]
    Transient { step: &'static str, error: String },
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A job names a domain without a process (a bug, or a domain unregistered while
    /// its jobs were pending).
    #[error("the {0} domain has no process")]
    NoProcess(DomainId),
}

impl ProcessError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ProcessError::Transient { .. } => true,
            ProcessError::Service(ServiceError::Contention { .. }) => true,
            ProcessError::Service(ServiceError::CatalogUnavailable(_)) => true,
            ProcessError::Service(ServiceError::Store(e)) => {
                matches!(e, StoreError::Unavailable(_))
            }
            ProcessError::NoProcess(_) => false,
        }
    }
}

/// A domain's process: what durable work does for one of its aggregates.
#[async_trait]
pub trait Process: Send + Sync + std::fmt::Debug {
    /// Loads aggregate `id`, asks the pure process for the next step, carries it out
    /// idempotently and records its result with commands that carry `cause` (the
    /// correlation id of the job behind the work, and its event as their causation).
    async fn step(
        &self,
        tenant: HouseholdId,
        id: Uuid,
        cause: Cause,
    ) -> Result<Advance, ProcessError>;

    /// [`Process::step`] with no job behind it.
    async fn advance(&self, tenant: HouseholdId, id: Uuid) -> Result<Advance, ProcessError> {
        self.step(tenant, id, Cause::default()).await
    }
}

#[async_trait]
impl Process for Fulfilment {
    async fn step(
        &self,
        tenant: HouseholdId,
        id: Uuid,
        cause: Cause,
    ) -> Result<Advance, ProcessError> {
        match Fulfilment::advance_for(self, tenant, crate::OrderId(id), cause).await {
            Ok(advanced) => Ok(advanced.into()),
            Err(FulfilmentError::Transient { step, error }) => Err(ProcessError::Transient {
                step,
                error: error.to_string(),
            }),
            Err(FulfilmentError::Service(e)) => Err(ProcessError::Service(e)),
        }
    }
}

impl From<Advanced> for Advance {
    fn from(advanced: Advanced) -> Self {
        match advanced {
            Advanced::Progressed(step) => Advance::Progressed { step: step.name() },
            Advanced::Waiting { until } => Advance::Waiting { until },
            Advanced::Done => Advance::Done,
            Advanced::Stuck { step, error } => Advance::Stuck {
                step: step.name(),
                error: error.to_string(),
            },
        }
    }
}

/// The process of each registered domain, over one shared [`Service`].
#[derive(Debug, Clone)]
pub struct Processes {
    service: Service,
    by_domain: HashMap<DomainId, Arc<dyn Process>>,
}

impl Processes {
    /// The processes of every registered domain: fulfilment for orders (through the
    /// Payments and Inventory ports), reminders for chores. A new domain's process is
    /// registered here.
    pub fn new(
        service: Service,
        payments: Arc<dyn Payments>,
        inventory: Arc<dyn Inventory>,
    ) -> Self {
        Self::for_fulfilment(Fulfilment::new(service, payments, inventory))
    }

    /// [`Processes::new`], from the order domain's fulfilment (its service and
    /// providers).
    pub fn for_fulfilment(fulfilment: Fulfilment) -> Self {
        let service = fulfilment.service().clone();
        Self::empty(service.clone())
            .with(DomainId::Order, Arc::new(fulfilment))
            .with(DomainId::Chore, Arc::new(ChoreProcess::new(service)))
    }

    /// No process yet: add them with [`Processes::with`].
    pub fn empty(service: Service) -> Self {
        Self {
            service,
            by_domain: HashMap::new(),
        }
    }

    /// Runs `process` for the aggregates of `domain`.
    pub fn with(mut self, domain: DomainId, process: Arc<dyn Process>) -> Self {
        self.by_domain.insert(domain, process);
        self
    }

    pub fn service(&self) -> &Service {
        &self.service
    }

    /// One step of the aggregate's process, with no job behind it.
    pub async fn advance(
        &self,
        tenant: HouseholdId,
        aggregate: AggregateId,
    ) -> Result<Advance, ProcessError> {
        self.advance_for(tenant, aggregate, Cause::default()).await
    }

    /// One step of the aggregate's process on behalf of `cause`, in a
    /// [`trace::step`] span.
    pub async fn advance_for(
        &self,
        tenant: HouseholdId,
        aggregate: AggregateId,
        cause: Cause,
    ) -> Result<Advance, ProcessError> {
        let process = self
            .by_domain
            .get(&aggregate.domain)
            .ok_or(ProcessError::NoProcess(aggregate.domain))?;
        let span = trace::step(tenant, aggregate, &cause);
        let advanced = process
            .step(tenant, aggregate.id, cause)
            .instrument(span.clone())
            .await;
        match &advanced {
            Ok(Advance::Progressed { step }) | Ok(Advance::Stuck { step, .. }) => {
                trace::step_named(&span, step)
            }
            Ok(Advance::Waiting { .. }) => trace::step_named(&span, "wait-until"),
            Ok(Advance::Done) => trace::step_named(&span, "done"),
            Err(ProcessError::Transient { step, .. }) => trace::step_named(&span, step),
            Err(_) => {}
        }
        advanced
    }

    /// Advances until the process waits, ends or fails, with no job behind it.
    pub async fn run(
        &self,
        tenant: HouseholdId,
        aggregate: AggregateId,
    ) -> Result<Advance, ProcessError> {
        self.run_for(tenant, aggregate, Cause::default()).await
    }

    /// Advances until the process waits, ends or fails: what an executor runs per
    /// wake-up, on behalf of the job that woke it. Bounded, so a bug cannot spin forever.
    pub async fn run_for(
        &self,
        tenant: HouseholdId,
        aggregate: AggregateId,
        cause: Cause,
    ) -> Result<Advance, ProcessError> {
        const MAX_STEPS: usize = 64;
        for _ in 0..MAX_STEPS {
            match self.advance_for(tenant, aggregate, cause).await? {
                Advance::Progressed { .. } => continue,
                other => return Ok(other),
            }
        }
        Ok(Advance::Stuck {
            step: "run",
            error: format!("the process did not settle in {MAX_STEPS} steps"),
        })
    }
}
