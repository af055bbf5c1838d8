//! The JobScheduler contract: starting a job is idempotent.

use crate::fixtures::{command_id, household, now, order_id};
use async_trait::async_trait;
use hearth_core::EventId;
use hearth_core::ports::{Job, JobKind, JobScheduler};
use std::sync::Arc;
use uuid::Uuid;

/// How a suite observes what an adapter really started (a queue, workflows on a server).
#[async_trait]
pub trait SchedulerProbe: Send + Sync {
    /// How many times the work of `job` was started.
    async fn runs(&self, job: &Job) -> usize;
}

#[derive(Clone)]
pub struct SchedulerFixture {
    pub scheduler: Arc<dyn JobScheduler>,
    pub probe: Arc<dyn SchedulerProbe>,
}

impl std::fmt::Debug for SchedulerFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerFixture")
            .field("scheduler", &self.scheduler)
            .finish()
    }
}

#[macro_export]
macro_rules! scheduler_contract {
    ($make:expr) => {
        $crate::scheduler_contract!(@cases $make; starting_a_job_twice_runs_it_once, distinct_jobs_each_run,);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture: $crate::scheduler::SchedulerFixture = ($make)().await;
                $crate::scheduler::$case(fixture).await;
            }
        )*
    };
}

pub fn job() -> Job {
    Job {
        id: EventId(Uuid::now_v7()),
        tenant: household(),
        aggregate: order_id().into(),
        kind: JobKind::Start,
        command_id: command_id(),
        correlation_id: Uuid::new_v4(),
        traceparent: None,
        created_at: now(),
    }
}

pub async fn starting_a_job_twice_runs_it_once(fx: SchedulerFixture) {
    let job = job();
    fx.scheduler.start(job.clone()).await.unwrap();
    fx.scheduler.start(job.clone()).await.unwrap();
    assert_eq!(fx.probe.runs(&job).await, 1);
}

pub async fn distinct_jobs_each_run(fx: SchedulerFixture) {
    let (a, b) = (job(), job());
    fx.scheduler.start(a.clone()).await.unwrap();
    fx.scheduler.start(b.clone()).await.unwrap();
    assert_eq!(fx.probe.runs(&a).await, 1);
    assert_eq!(fx.probe.runs(&b).await, 1);
}
