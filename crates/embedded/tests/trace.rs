//! Issue 18: a command's correlation id follows it through the embedded executor. A
//! PlaceOrder sent with a known correlation id, through the real service, the outbox
//! relay, the executor and the sandbox (memory) providers: the id is on its events
//! (stored metadata), its job, every process step's span, every provider call's span,
//! and the commands the process dispatched for it (whose cause is the job's event).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use hearth_core::durable::Processes;
use hearth_core::fulfilment::Fulfilment;
use hearth_core::order::{Command, OrderStatus, PlaceOrder, RequestedLine};
use hearth_core::ports::{EventFeed, EventStore, Outbox};
use hearth_core::trace::{field, name};
use hearth_core::{Actor, CommandEnvelope, CommandId, HouseholdId, MemberId, OrderId, Service};
use hearth_embedded::{EmbeddedExecutor, ExecutorConfig};
use hearth_memory::{MemoryEventStore, MemoryInventory, MemoryPayments, SystemClock};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use uuid::Uuid;

/// A span as recorded: its name and fields (as text).
#[derive(Clone, Debug)]
struct Recorded {
    name: &'static str,
    fields: HashMap<String, String>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// Records every span with its fields, including those recorded after it opened.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<Recorded>>>, Arc<Mutex<HashMap<Id, usize>>>);

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.0.lock().unwrap();
        spans.push(Recorded {
            name: attrs.metadata().name(),
            fields,
        });
        self.1.lock().unwrap().insert(id.clone(), spans.len() - 1);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        if let Some(&i) = self.1.lock().unwrap().get(id) {
            values.record(&mut Fields(&mut self.0.lock().unwrap()[i].fields));
        }
    }
}

impl Spans {
    fn named(&self, span: &str) -> Vec<Recorded> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.name == span)
            .cloned()
            .collect()
    }
}

// One runtime thread: the recording subscriber is this thread's default, and every
// task of the service, the relay and the executor runs on it.
#[tokio::test(flavor = "current_thread")]
async fn the_correlation_id_of_a_command_follows_it_to_its_events_job_steps_and_provider_calls() {
    let spans = Spans::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));

    // Given the real service on the memory store, and the sandbox providers.
    let store = Arc::new(MemoryEventStore::new());
    let household = HouseholdId(Uuid::now_v7());
    let payments = Arc::new(MemoryPayments::new());
    let inventory = Arc::new(MemoryInventory::default());
    let service =
        Service::new(store.clone(), Arc::new(SystemClock)).with_catalog(inventory.clone());

    // When a member places an order with a correlation id of their own.
    let correlation = Uuid::new_v4();
    let command_id = CommandId(Uuid::now_v7());
    let order = OrderId(Uuid::now_v7());
    let mut command = CommandEnvelope::new(
        command_id,
        household,
        Actor::Member {
            id: MemberId(Uuid::now_v7()),
        },
        Command::PlaceOrder(PlaceOrder {
            order_id: order,
            lines: vec![RequestedLine::new("bread", 2)],
            ready_at: None,
            note: None,
        }),
    );
    command.metadata.correlation_id = Some(correlation);
    service.dispatch(command).await.unwrap();

    // Then its job carries the correlation id.
    let jobs = store.pending_jobs(10).await.unwrap();
    assert_eq!(jobs.len(), 1);
    let job = jobs[0].clone();
    assert_eq!(job.command_id, command_id);
    assert_eq!(job.correlation_id, correlation);

    // When the embedded executor runs the order's process to its end.
    let mut marks = store.feed().subscribe();
    let feed: Arc<dyn EventFeed> = Arc::new(store.feed());
    let executor = EmbeddedExecutor::start(
        Processes::for_fulfilment(Fulfilment::new(
            service.clone(),
            payments.clone(),
            inventory.clone(),
        )),
        store.clone(),
        Some(feed),
        ExecutorConfig::default(),
    );
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let state = service
                .load::<hearth_core::Orders>(household, order)
                .await
                .unwrap();
            let ready = state.order.is_some_and(|o| o.status == OrderStatus::Ready);
            if ready && store.pending_jobs(10).await.unwrap().is_empty() {
                break;
            }
            // Every commit rings; the mark that ends the job follows the last one.
            let _ = tokio::time::timeout(Duration::from_millis(50), futures_next(&mut marks)).await;
        }
    })
    .await
    .expect("the order is ready and its job marked within 10 s");
    executor.shutdown().await;

    // Then every event of the order, the member's and the process's, carries it.
    let events = store.read_feed(household, 0, 100).await.unwrap();
    let types: Vec<_> = events.iter().map(|e| e.event.type_name()).collect();
    assert_eq!(
        types,
        [
            "OrderPlaced",
            "StockReserved",
            "PaymentCaptured",
            "OrderConfirmed",
            "OrderReady"
        ]
    );
    for event in &events {
        assert_eq!(
            event.metadata.correlation_id,
            correlation,
            "{}",
            event.event.type_name()
        );
    }
    // The process's commands were caused by the job's event (the OrderPlaced).
    for event in &events[1..] {
        assert_eq!(event.metadata.causation_id, job.id.0);
        assert_eq!(event.metadata.actor, Actor::Process);
    }

    let corr = correlation.to_string();
    let has = |s: &Recorded, f: &str, v: &str| s.fields.get(f).map(String::as_str) == Some(v);

    // The job's span.
    let job_spans = spans.named(name::JOB);
    assert!(!job_spans.is_empty(), "a job span");
    for s in &job_spans {
        assert!(has(s, field::CORRELATION_ID, &corr), "{s:?}");
        assert!(has(s, field::JOB, &job.id.to_string()), "{s:?}");
    }

    // Each process step's span, with the step it was.
    let steps = spans.named(name::STEP);
    let names: Vec<_> = steps
        .iter()
        .filter_map(|s| s.fields.get(field::STEP).cloned())
        .collect();
    for step in [
        "reserve-stock",
        "capture-payment",
        "confirm",
        "mark-ready",
        "done",
    ] {
        assert!(names.iter().any(|n| n == step), "{step} in {names:?}");
    }
    for s in &steps {
        assert!(has(s, field::CORRELATION_ID, &corr), "{s:?}");
        assert!(has(s, field::CAUSATION_ID, &job.id.to_string()), "{s:?}");
    }

    // Each provider call's span: which provider, what, under which key.
    let calls = spans.named(name::PROVIDER_CALL);
    let ops: Vec<_> = calls
        .iter()
        .map(|s| {
            (
                s.fields[field::PROVIDER].clone(),
                s.fields[field::OPERATION].clone(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("inventory".to_owned(), "reserve".to_owned()),
            ("payments".to_owned(), "capture".to_owned())
        ]
    );
    for s in &calls {
        assert!(has(s, field::CORRELATION_ID, &corr), "{s:?}");
        assert!(s.fields.contains_key(field::IDEMPOTENCY_KEY), "{s:?}");
    }

    // And every command span on the way: the member's, then the process's.
    let commands = spans.named(name::COMMAND);
    assert_eq!(commands.len(), 5, "{commands:?}");
    for s in &commands {
        assert!(has(s, field::CORRELATION_ID, &corr), "{s:?}");
    }
    // Each append span says where its events went.
    let appends = spans.named(name::APPEND);
    assert!(
        appends
            .iter()
            .any(|s| has(s, field::FIRST_SEQ, "1") && has(s, field::LAST_SEQ, "1")),
        "{appends:?}"
    );
}

async fn futures_next(stream: &mut hearth_core::ports::FeedStream) {
    use futures::StreamExt;
    let _ = stream.next().await;
}
