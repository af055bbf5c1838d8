//! The Temporal adapter against a real dev server: the scheduler contract, and the
//! fulfilment process run by the workflow end to end.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use chrono::TimeDelta;
use common::{World, eventually, runs, timer_started, workflow_status};
use hearth_core::OrderStatus;
use hearth_core::order::RejectionReason;
use hearth_core::ports::Outbox;
use hearth_core::ports::{EventStore, JobKind, JobScheduler};
use hearth_temporal::TemporalScheduler;
use std::sync::Arc;
use std::time::Duration;
use temporalio_client::WorkflowExecutionStatus;

/// Counts runs of a job's workflow id on the server.
struct ServerProbe {
    client: temporalio_client::Client,
}

#[async_trait::async_trait]
impl hearth_contract::scheduler::SchedulerProbe for ServerProbe {
    async fn runs(&self, job: &hearth_core::ports::Job) -> usize {
        runs(
            &self.client,
            &hearth_temporal::workflow_id(job.tenant, job.aggregate),
        )
        .await
    }
}

hearth_contract::scheduler_contract!(|| async {
    let config = common::config();
    let client = hearth_temporal::connect(&config).await.unwrap();
    hearth_contract::scheduler::SchedulerFixture {
        scheduler: Arc::new(TemporalScheduler::new(client.clone(), config.task_queue)),
        probe: Arc::new(ServerProbe { client }),
    }
});

const SETTLE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_becomes_ready_at_its_ready_at_and_every_step_reaches_the_feed() {
    let w = World::new().await;
    let _worker = w.worker();
    let order = w.place("bread", 2, Some(TimeDelta::seconds(4))).await;
    let ready_at = w
        .service
        .load::<hearth_core::Orders>(w.household, order)
        .await
        .unwrap()
        .order
        .unwrap()
        .ready_at
        .unwrap();
    assert_eq!(w.relay().await, 1);

    w.wait_status(order, OrderStatus::Confirmed, SETTLE).await;
    assert!(w.now() < ready_at, "confirmed before ready-at");
    assert_eq!(w.inventory.available("bread"), Some(98));
    w.wait_status(order, OrderStatus::Ready, SETTLE).await;

    let events = w.store.read_feed(w.household, 0, 100).await.unwrap();
    let ready = events.last().unwrap();
    assert_eq!(ready.event.type_name(), "OrderReady");
    assert!(
        ready.created_at >= ready_at,
        "ready at its ready-at, not before"
    );
    assert_eq!(
        w.feed().await,
        vec![
            "OrderPlaced",
            "StockReserved",
            "PaymentCaptured",
            "OrderConfirmed",
            "OrderReady"
        ]
    );
    assert_eq!(w.payments.captures(), 1);
    let client = w.scheduler.client();
    eventually(SETTLE, "the workflow to complete", || async {
        workflow_status(client, &w.workflow_id(order)).await == WorkflowExecutionStatus::Completed
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_failing_twice_is_retried_by_temporal_and_captured_once() {
    let w = World::new().await;
    let _worker = w.worker();
    w.payments.fail_next(2);
    let order = w.place("milk", 1, None).await;
    w.relay().await;
    w.wait_status(order, OrderStatus::Ready, SETTLE).await;
    assert_eq!(w.payments.captures(), 1, "one capture at the provider");
    assert_eq!(
        w.feed()
            .await
            .iter()
            .filter(|t| **t == "PaymentCaptured")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_payment_rejects_the_order_and_releases_the_stock() {
    let w = World::new().await;
    let _worker = w.worker();
    w.payments.decline_above(100);
    let order = w.place("coffee", 1, None).await;
    w.relay().await;
    w.wait_status(order, OrderStatus::Rejected, SETTLE).await;
    eventually(SETTLE, "the workflow to complete", || async {
        workflow_status(w.scheduler.client(), &w.workflow_id(order)).await
            == WorkflowExecutionStatus::Completed
    })
    .await;
    let state = w
        .service
        .load::<hearth_core::Orders>(w.household, order)
        .await
        .unwrap()
        .order
        .unwrap();
    assert!(matches!(
        state.rejection,
        Some(RejectionReason::PaymentDeclined { .. })
    ));
    assert!(state.stock_released);
    assert_eq!(w.payments.captures(), 0, "nothing captured");
    assert_eq!(w.inventory.available("coffee"), Some(50), "stock back");
    assert_eq!(w.inventory.reservations(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_after_capture_wakes_the_sleeping_workflow_which_refunds_once() {
    let w = World::new().await;
    let _worker = w.worker();
    let order = w.place("eggs", 3, Some(TimeDelta::hours(1))).await;
    w.relay().await;
    w.wait_status(order, OrderStatus::Confirmed, SETTLE).await;
    assert_eq!(w.payments.captures(), 1);
    // The workflow sleeps on its timer (the server's history says so).
    timer_started(w.scheduler.client(), &w.workflow_id(order)).await;

    w.cancel(order).await;
    let jobs = w.store.pending_jobs(10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].kind, JobKind::Wake);
    assert_eq!(w.relay().await, 1);

    // Promptly: long before the ready-at an hour away.
    eventually(Duration::from_secs(20), "refund and release", || async {
        w.payments.refunds() == 1 && w.inventory.available("eggs") == Some(100)
    })
    .await;
    eventually(
        Duration::from_secs(20),
        "the workflow to complete",
        || async {
            workflow_status(w.scheduler.client(), &w.workflow_id(order)).await
                == WorkflowExecutionStatus::Completed
        },
    )
    .await;
    assert_eq!(w.status(order).await, OrderStatus::Cancelled);
    let feed = w.feed().await;
    assert_eq!(feed.iter().filter(|t| **t == "RefundIssued").count(), 1);
    assert_eq!(feed.iter().filter(|t| **t == "StockReleased").count(), 1);
    assert_eq!(w.payments.refunds(), 1, "one refund at the provider");

    // A late, repeated cancel signal to the closed workflow is harmless.
    let job = w.store.read_feed(w.household, 0, 100).await.unwrap();
    let cancelled = job
        .iter()
        .find_map(hearth_core::ports::Job::for_event)
        .filter(|j| j.kind == JobKind::Start)
        .map(|mut j| {
            j.kind = JobKind::Wake;
            j
        })
        .unwrap();
    w.scheduler.start(cancelled).await.unwrap();
    assert_eq!(w.payments.refunds(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_interrupted_after_commit_is_started_by_the_relay_and_started_once() {
    let w = World::new().await;
    // The order is committed with its job, and then the process "crashes" before any
    // start: nothing runs until a relay passes.
    let order = w.place("bread", 1, None).await;
    let pending = w.store.pending_jobs(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    let job = pending[0].clone();

    // A relay that started the job but crashed before marking it: the job is still
    // pending, and the next pass starts it again, which must be a no-op.
    w.scheduler.start(job.clone()).await.unwrap();
    assert_eq!(w.store.pending_jobs(10).await.unwrap().len(), 1);
    assert_eq!(w.relay().await, 1);
    assert!(w.store.pending_jobs(10).await.unwrap().is_empty());
    w.scheduler.start(job).await.unwrap();

    let _worker = w.worker();
    w.wait_status(order, OrderStatus::Ready, SETTLE).await;
    assert_eq!(runs(w.scheduler.client(), &w.workflow_id(order)).await, 1);
    assert_eq!(w.payments.captures(), 1);

    // One shared task queue; the household is the fairness key.
    let described = w
        .scheduler
        .client()
        .get_workflow_handle::<hearth_temporal::ProcessWorkflow>(w.workflow_id(order))
        .describe(Default::default())
        .await
        .unwrap();
    let info = described
        .raw_description
        .workflow_execution_info
        .clone()
        .unwrap();
    assert_eq!(info.task_queue, w.config.task_queue);
    assert_eq!(info.priority.unwrap().fairness_key, w.household.to_string());
    assert_eq!(w.inventory.available("bread"), Some(99));
}

/// Issue 19's reproduction on Temporal: a member's cancel lands while a reservation or
/// a capture is in flight; its reply arrives late, or is lost (the activity fails and
/// Temporal retries it, as after a worker died between the call and the recording).
/// What the provider did is recorded and given back: nothing stays charged or held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_a_provider_call_leaves_nothing_charged_or_held() {
    use hearth_contract::interleave::{CancelDuring, During, Reply};
    for during in [During::Reserve, During::Capture] {
        for reply in [Reply::Late, Reply::Lost] {
            let w = World::new().await;
            let cancel =
                CancelDuring::new(w.payments.clone(), w.inventory.clone(), w.service.clone());
            cancel.arm(during, reply);
            let fulfilment = hearth_core::fulfilment::Fulfilment::new(
                w.service.clone(),
                cancel.clone(),
                cancel.clone(),
            );
            let _worker = common::TestWorker::spawn(w.config.clone(), fulfilment);
            let order = w.place("coffee", 2, None).await;
            assert_eq!(w.relay().await, 1);
            let case = format!("{during:?} {reply:?}");
            eventually(
                SETTLE,
                &format!("the workflow to complete ({case})"),
                || async {
                    workflow_status(w.scheduler.client(), &w.workflow_id(order)).await
                        == WorkflowExecutionStatus::Completed
                },
            )
            .await;
            assert_eq!(cancel.fired(), 1, "{case}");
            assert_eq!(w.status(order).await, OrderStatus::Cancelled, "{case}");
            assert_eq!(w.inventory.reservations(), 0, "{case}: stock held");
            assert_eq!(w.inventory.available("coffee"), Some(50), "{case}");
            assert_eq!(
                w.payments.captures(),
                w.payments.refunds(),
                "{case}: a charge not given back"
            );
            let late = match during {
                During::Reserve => "StockReservedAfterClose",
                During::Capture => "PaymentCapturedAfterClose",
            };
            let feed = w.feed().await;
            assert_eq!(
                feed.iter().filter(|t| **t == late).count(),
                1,
                "{case}: {feed:?}"
            );
        }
    }
}
