//! The embedded executor against the in-memory store and providers, on the real clock.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use async_trait::async_trait;
use chrono::TimeDelta;
use futures::StreamExt;
use hearth_contract::interleave::{CancelDuring, During, Reply};
use hearth_contract::scheduler::{SchedulerFixture, SchedulerProbe};
use hearth_core::durable::Processes;
use hearth_core::fulfilment::Fulfilment;
use hearth_core::order::{
    CancelOrder, Command, OrderState, OrderStatus, PlaceOrder, RequestedLine,
};
use hearth_core::ports::Outbox;
use hearth_core::ports::{Clock, EventFeed, EventStore, Job, StoreError};
use hearth_core::{
    Actor, CommandEnvelope, CommandId, Dispatched, EventId, HouseholdId, MemberId, OrderId,
    Service, Timestamp,
};
use hearth_embedded::{EmbeddedExecutor, ExecutorConfig, backoff};
use hearth_memory::{MemoryEventStore, MemoryInventory, MemoryPayments, SystemClock};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

/// The memory store's outbox, ringing after every scan and every mark: a test waits
/// for those, not for a guess at how long they take.
#[derive(Debug)]
struct Watched {
    store: Arc<MemoryEventStore>,
    /// Scans of the outbox (`pending_jobs`) answered so far.
    scans: watch::Sender<usize>,
    /// Jobs marked so far.
    marks: watch::Sender<usize>,
}

#[async_trait]
impl Outbox for Watched {
    async fn pending_jobs(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        let jobs = self.store.pending_jobs(limit).await;
        self.scans.send_modify(|n| *n += 1);
        jobs
    }

    async fn mark_job_started(&self, tenant: HouseholdId, job: EventId) -> Result<(), StoreError> {
        let marked = self.store.mark_job_started(tenant, job).await;
        self.marks.send_modify(|n| *n += 1);
        marked
    }
}

struct World {
    store: Arc<MemoryEventStore>,
    outbox: Arc<Watched>,
    payments: Arc<MemoryPayments>,
    inventory: Arc<MemoryInventory>,
    service: Service,
    household: HouseholdId,
}

fn config() -> ExecutorConfig {
    ExecutorConfig {
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        poll_interval: Duration::from_millis(500),
        ..ExecutorConfig::default()
    }
}

fn world() -> World {
    let store = Arc::new(MemoryEventStore::new());
    let inventory = Arc::new(MemoryInventory::default());
    World {
        // The inventory serves the catalog orders are placed from.
        service: Service::new(store.clone(), Arc::new(SystemClock)).with_catalog(inventory.clone()),
        outbox: Arc::new(Watched {
            store: store.clone(),
            scans: watch::channel(0).0,
            marks: watch::channel(0).0,
        }),
        store,
        payments: Arc::new(MemoryPayments::new()),
        inventory,
        household: HouseholdId(Uuid::now_v7()),
    }
}

impl World {
    fn fulfilment(&self) -> Fulfilment {
        Fulfilment::new(
            self.service.clone(),
            self.payments.clone(),
            self.inventory.clone(),
        )
    }

    fn executor(&self, config: ExecutorConfig) -> EmbeddedExecutor {
        let feed: Arc<dyn EventFeed> = Arc::new(self.store.feed());
        EmbeddedExecutor::start(
            Processes::for_fulfilment(self.fulfilment()),
            self.outbox.clone(),
            Some(feed),
            config,
        )
    }

    fn now(&self) -> Timestamp {
        SystemClock.now()
    }

    async fn dispatch(&self, command: Command) {
        let member = Actor::Member {
            id: MemberId(Uuid::now_v7()),
        };
        let result = self
            .service
            .dispatch(CommandEnvelope::new(
                CommandId(Uuid::now_v7()),
                self.household,
                member,
                command,
            ))
            .await
            .unwrap();
        assert!(matches!(result, Dispatched::Accepted { .. }), "{result:?}");
    }

    async fn place(&self, sku: &str, quantity: u32, ready_at: Option<Timestamp>) -> OrderId {
        let order = OrderId(Uuid::now_v7());
        self.dispatch(Command::PlaceOrder(PlaceOrder {
            order_id: order,
            lines: vec![RequestedLine::new(sku, quantity)],
            ready_at,
            note: None,
        }))
        .await;
        order
    }

    async fn cancel(&self, order: OrderId) {
        self.dispatch(Command::CancelOrder(CancelOrder {
            order_id: order,
            reason: Some("changed my mind".into()),
        }))
        .await;
    }

    async fn state(&self, order: OrderId) -> OrderState {
        self.service
            .load::<hearth_core::Orders>(self.household, order)
            .await
            .unwrap()
    }

    async fn status(&self, order: OrderId) -> OrderStatus {
        self.state(order).await.order.unwrap().status
    }

    /// Waits until the order's state satisfies `done`, looking again after every
    /// commit the store's feed rings; panics after `within`.
    async fn until(
        &self,
        order: OrderId,
        within: Duration,
        what: &str,
        done: impl Fn(&OrderState) -> bool,
    ) -> Duration {
        let started = Instant::now();
        // Subscribed before the first look: a commit after it always rings.
        let mut commits = self.store.feed().subscribe();
        loop {
            if done(&self.state(order).await) {
                return started.elapsed();
            }
            let left = within.saturating_sub(started.elapsed());
            let rang = tokio::time::timeout(left, commits.next()).await;
            assert!(
                matches!(rang, Ok(Some(_))),
                "order not {what} within {within:?}: {:?}",
                self.state(order).await.order
            );
        }
    }

    async fn reach(&self, order: OrderId, status: OrderStatus, within: Duration) -> Duration {
        self.until(order, within, &format!("{status:?}"), |s| {
            s.order.as_ref().is_some_and(|o| o.status == status)
        })
        .await
    }

    async fn types(&self) -> Vec<&'static str> {
        self.store
            .read_feed(self.household, 0, 1000)
            .await
            .unwrap()
            .iter()
            .map(|e| e.event.type_name())
            .collect()
    }

    async fn count(&self, event: &str) -> usize {
        self.types().await.iter().filter(|t| **t == event).count()
    }

    async fn pending(&self) -> Vec<Job> {
        self.store.pending_jobs(100).await.unwrap()
    }

    /// Waits until the outbox is empty (every job taken care of), looking again after
    /// every mark.
    async fn drained(&self) {
        let within = Duration::from_secs(5);
        let started = Instant::now();
        let mut marks = self.outbox.marks.subscribe();
        while !self.pending().await.is_empty() {
            let left = within.saturating_sub(started.elapsed());
            let marked = tokio::time::timeout(left, marks.changed()).await;
            assert!(
                matches!(marked, Ok(Ok(()))),
                "jobs left pending: {:?}",
                self.pending().await
            );
        }
    }
}

const SOON: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_goes_to_ready_at_its_ready_at() {
    let w = world();
    let executor = w.executor(config());
    let ready_at = w.now() + TimeDelta::seconds(2);
    let order = w.place("bread", 2, Some(ready_at)).await;
    w.reach(order, OrderStatus::Confirmed, SOON).await;
    assert!(w.now() < ready_at, "confirmed well before ready-at");
    assert!(
        !w.pending().await.is_empty(),
        "the job stays pending while it waits"
    );
    w.reach(order, OrderStatus::Ready, Duration::from_secs(5))
        .await;
    let events = w.store.read_feed(w.household, 0, 100).await.unwrap();
    let ready = events.last().unwrap();
    assert_eq!(ready.event.type_name(), "OrderReady");
    assert!(ready.created_at >= ready_at, "not ready before ready-at");
    assert!(
        ready.created_at < ready_at + TimeDelta::seconds(1),
        "ready promptly at ready-at"
    );
    assert_eq!(
        w.types().await,
        vec![
            "OrderPlaced",
            "StockReserved",
            "PaymentCaptured",
            "OrderConfirmed",
            "OrderReady"
        ]
    );
    assert_eq!(w.payments.captures(), 1);
    assert_eq!(w.inventory.available("bread"), Some(98));
    w.drained().await;
    assert_eq!(executor.running(), 0);
    executor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_payment_failures_twice_then_success_capture_once() {
    let w = world();
    w.payments.fail_next(2);
    let executor = w.executor(config());
    let order = w.place("milk", 1, None).await;
    w.reach(order, OrderStatus::Ready, SOON).await;
    assert_eq!(w.payments.captures(), 1, "one capture at the provider");
    assert_eq!(w.count("PaymentCaptured").await, 1);
    w.drained().await;
    executor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decline_rejects_releases_stock_and_captures_nothing() {
    let w = world();
    w.payments.decline_above(100);
    let executor = w.executor(config());
    let order = w.place("coffee", 1, None).await;
    w.until(order, SOON, "rejected and compensated", |s| {
        s.order
            .as_ref()
            .is_some_and(|o| o.status == OrderStatus::Rejected && o.stock_released)
    })
    .await;
    assert_eq!(w.payments.captures(), 0, "nothing captured");
    assert_eq!(w.inventory.available("coffee"), Some(50), "stock back");
    assert_eq!(w.inventory.reservations(), 0);
    w.drained().await;
    executor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_after_capture_while_waiting_refunds_once_and_releases_promptly() {
    let w = world();
    let executor = w.executor(config());
    let order = w
        .place("eggs", 3, Some(w.now() + TimeDelta::hours(1)))
        .await;
    w.reach(order, OrderStatus::Confirmed, SOON).await;
    assert_eq!(w.payments.captures(), 1);
    w.cancel(order).await;
    let took = w
        .until(order, SOON, "compensated", |s| {
            s.order.as_ref().is_some_and(|o| {
                o.status == OrderStatus::Cancelled && o.refunded && o.stock_released
            })
        })
        .await;
    assert!(
        // Ready-at is an hour away: only the wake-up makes it this fast.
        took < Duration::from_secs(1),
        "compensation waited {took:?}: the cancel should wake the sleeping order"
    );
    w.drained().await;
    assert_eq!(w.payments.refunds(), 1);
    assert_eq!(w.inventory.available("eggs"), Some(100));
    assert_eq!(w.count("RefundIssued").await, 1);
    assert_eq!(w.count("StockReleased").await, 1);
    executor.shutdown().await;
}

async fn restart_mid_wait(
    stop: impl FnOnce(EmbeddedExecutor) -> futures::future::BoxFuture<'static, ()>,
) {
    let w = world();
    let first = w.executor(config());
    let ready_at = w.now() + TimeDelta::seconds(2);
    let order = w.place("apples", 4, Some(ready_at)).await;
    w.reach(order, OrderStatus::Confirmed, SOON).await;
    stop(first).await;
    assert_eq!(w.pending().await.len(), 1, "the job survives the stop");
    assert_eq!(w.status(order).await, OrderStatus::Confirmed);
    let second = w.executor(config());
    w.reach(order, OrderStatus::Ready, Duration::from_secs(5))
        .await;
    let events = w.store.read_feed(w.household, 0, 100).await.unwrap();
    assert!(events.last().unwrap().created_at >= ready_at);
    assert_eq!(w.payments.captures(), 1, "no capture repeated");
    assert_eq!(w.inventory.reservations(), 1, "no reservation repeated");
    assert_eq!(w.inventory.available("apples"), Some(96));
    assert_eq!(w.count("StockReserved").await, 1);
    assert_eq!(w.count("PaymentCaptured").await, 1);
    assert_eq!(w.count("OrderReady").await, 1);
    w.drained().await;
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_mid_wait_then_a_new_executor_makes_the_order_ready() {
    restart_mid_wait(|e| Box::pin(e.shutdown())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_mid_wait_then_a_new_executor_makes_the_order_ready() {
    restart_mid_wait(|e| {
        e.abort();
        Box::pin(async {})
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_committed_while_no_executor_ran_are_picked_up_at_start() {
    // The start of these jobs was "interrupted after commit": nobody took them on.
    let w = world();
    let a = w.place("bread", 1, None).await;
    let b = w.place("milk", 1, None).await;
    assert_eq!(w.pending().await.len(), 2);
    let executor = w.executor(config());
    w.reach(a, OrderStatus::Ready, SOON).await;
    w.reach(b, OrderStatus::Ready, SOON).await;
    w.drained().await;
    executor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_feed_the_poll_picks_up_new_jobs() {
    let w = world();
    let mut scans = w.outbox.scans.subscribe();
    let executor = EmbeddedExecutor::start(
        Processes::for_fulfilment(w.fulfilment()),
        w.outbox.clone(),
        None,
        config(),
    );
    // The first scan (at start) has answered: only a later one can find the new job.
    tokio::time::timeout(SOON, scans.wait_for(|n| *n >= 1))
        .await
        .expect("the executor scanned the outbox at start")
        .unwrap();
    let order = w.place("bread", 1, None).await;
    w.reach(order, OrderStatus::Ready, SOON).await;
    assert!(
        *w.outbox.scans.borrow() >= 2,
        "the job was found by a later scan, the poll"
    );
    executor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_orders_with_little_concurrency_all_finish_once() {
    let w = world();
    let executor = w.executor(ExecutorConfig {
        concurrency: 2,
        ..config()
    });
    w.inventory.fail_next(3);
    let mut orders = Vec::new();
    for _ in 0..20 {
        orders.push(
            w.place("milk", 1, Some(w.now() + TimeDelta::milliseconds(300)))
                .await,
        );
    }
    for order in &orders {
        w.reach(*order, OrderStatus::Ready, Duration::from_secs(10))
            .await;
    }
    assert_eq!(w.payments.captures(), 20);
    assert_eq!(w.inventory.available("milk"), Some(180));
    assert_eq!(w.count("OrderReady").await, 20);
    w.drained().await;
    executor.shutdown().await;
}

#[test]
fn backoff_grows_is_bounded_and_jittered() {
    let base = Duration::from_millis(100);
    let max = Duration::from_secs(2);
    for attempt in 1..40 {
        let d = backoff(attempt, base, max);
        let full = base.saturating_mul(1 << (attempt - 1).min(20)).min(max);
        assert!(
            d >= full / 2 && d <= full,
            "attempt {attempt}: {d:?} of {full:?}"
        );
    }
    let draws: std::collections::HashSet<_> = (0..20).map(|_| backoff(5, base, max)).collect();
    assert!(draws.len() > 1, "jittered");
}

// The JobScheduler contract, with a probe that asks the executor how often it took a
// job on. The jobs name orders that do not exist: their process is over at once.
struct Probe(Arc<EmbeddedExecutor>);

#[async_trait]
impl SchedulerProbe for Probe {
    async fn runs(&self, job: &Job) -> usize {
        self.0.runs(job.id)
    }
}

async fn scheduler_fixture() -> SchedulerFixture {
    let w = world();
    let executor = Arc::new(w.executor(config()));
    SchedulerFixture {
        scheduler: Arc::new(executor.scheduler()),
        probe: Arc::new(Probe(executor)),
    }
}

mod scheduler_contract {
    hearth_contract::scheduler_contract!(super::scheduler_fixture);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_started_by_the_scheduler_and_found_by_the_relay_runs_once() {
    let w = world();
    let executor = w.executor(config());
    let order = w
        .place("bread", 1, Some(w.now() + TimeDelta::milliseconds(500)))
        .await;
    let job = w.pending().await.pop().unwrap();
    let scheduler = executor.scheduler();
    use hearth_core::ports::JobScheduler;
    scheduler.start(job.clone()).await.unwrap();
    scheduler.start(job.clone()).await.unwrap();
    executor.kick();
    w.reach(order, OrderStatus::Ready, SOON).await;
    assert_eq!(executor.runs(job.id), 1);
    assert_eq!(w.payments.captures(), 1);
    executor.shutdown().await;
}

/// Issue 19's reproduction: a member's cancel lands while a reservation or a capture is
/// in flight (its reply arrives late, or never). The provider's success is recorded and
/// given back: nothing stays charged or held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_a_provider_call_leaves_nothing_charged_or_held() {
    for during in [During::Reserve, During::Capture] {
        for reply in [Reply::Late, Reply::Lost] {
            let w = world();
            let cancel =
                CancelDuring::new(w.payments.clone(), w.inventory.clone(), w.service.clone());
            cancel.arm(during, reply);
            let feed: Arc<dyn EventFeed> = Arc::new(w.store.feed());
            let fulfilment = Fulfilment::new(w.service.clone(), cancel.clone(), cancel.clone());
            let executor = EmbeddedExecutor::start(
                Processes::for_fulfilment(fulfilment),
                w.outbox.clone(),
                Some(feed),
                config(),
            );
            let order = w.place("coffee", 2, None).await;
            let case = format!("{during:?} {reply:?}");
            w.until(order, SOON, &format!("compensated ({case})"), |s| {
                s.order.as_ref().is_some_and(|o| {
                    o.status == OrderStatus::Cancelled
                        && o.reservation_id.is_some()
                        && o.stock_released
                        && (o.payment_id.is_some() == o.refunded)
                        && (during == During::Reserve || o.refunded)
                })
            })
            .await;
            w.drained().await;
            assert_eq!(cancel.fired(), 1, "{case}");
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
            assert_eq!(w.count(late).await, 1, "{case}: {:?}", w.types().await);
            executor.shutdown().await;
        }
    }
}
