//! Reconciliation as a user runs it, against a sandbox provider over HTTP:
//! - `hearth reconcile` finds a planted difference (a capture at the provider under a
//!   cancelled order's capture key, no job running), reports it and exits non-zero;
//!   `--repair` gives it back through the order's process and exits 0;
//! - `hearth serve`'s periodic reconciliation repairs the same and counts it in /metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use chrono::TimeDelta;
use hearth_core::fulfilment::{Advanced, Fulfilment};
use hearth_core::order::{CancelOrder, Command, PlaceOrder, RequestedLine};
use hearth_core::ports::Outbox;
use hearth_core::ports::{CaptureRequest, Clock, Payments};
use hearth_core::process::capture_key;
use hearth_core::{
    Actor, CommandEnvelope, CommandId, Dispatched, HouseholdId, MemberId, OrderId, Service,
};
use hearth_memory::SystemClock;
use hearth_sandbox::{HttpProvider, RunningSandbox, Sandbox};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command as Process;
use uuid::Uuid;

/// Writes into the SQLite file at `path` an order whose stock was reserved, which was
/// then cancelled and compensated by its process (run here, to its end, with every job
/// marked: nothing will run it again); then plants a capture at the sandbox under the
/// order's capture key, as a worker that died mid-call and came back late would.
async fn plant(path: &Path, sandbox: &RunningSandbox) -> (HouseholdId, OrderId) {
    let (store, _feed) = hearth_sqlite::SqliteEventStore::open(path).unwrap();
    let provider = HttpProvider::new(&sandbox.url(), Duration::from_secs(5)).unwrap();
    let payments: Arc<dyn Payments> = Arc::new(provider.payments());
    let fulfilment = Fulfilment::new(
        Service::new(store.clone(), Arc::new(SystemClock))
            .with_catalog(Arc::new(provider.catalog(Duration::ZERO))),
        payments.clone(),
        Arc::new(provider.inventory()),
    );
    let (household, order) = (HouseholdId(Uuid::now_v7()), OrderId(Uuid::now_v7()));
    let member = Actor::Member {
        id: MemberId(Uuid::now_v7()),
    };
    let dispatch = |command| {
        let envelope = CommandEnvelope::new(
            CommandId(Uuid::now_v7()),
            household,
            member.clone(),
            command,
        );
        let service = fulfilment.service().clone();
        async move {
            let result = service.dispatch(envelope).await.unwrap();
            assert!(matches!(result, Dispatched::Accepted { .. }), "{result:?}");
        }
    };
    dispatch(Command::PlaceOrder(PlaceOrder {
        order_id: order,
        lines: vec![RequestedLine::new("bread", 1)],
        ready_at: Some(SystemClock.now() + TimeDelta::hours(1)),
        note: None,
    }))
    .await;
    let reserved = fulfilment.advance(household, order).await.unwrap();
    assert!(matches!(reserved, Advanced::Progressed(_)), "{reserved:?}");
    dispatch(Command::CancelOrder(CancelOrder {
        order_id: order,
        reason: None,
    }))
    .await;
    assert_eq!(
        fulfilment.run(household, order).await.unwrap(),
        Advanced::Done
    );
    for job in store.pending_jobs(100).await.unwrap() {
        store.mark_job_started(job.tenant, job.id).await.unwrap();
    }
    payments
        .capture(CaptureRequest {
            key: capture_key(household, order),
            tenant: household,
            order_id: order,
            amount_cents: 450,
        })
        .await
        .unwrap();
    let stats = sandbox.sandbox().stats();
    assert_eq!((stats.captures, stats.refunds, stats.held), (1, 0, 0));
    (household, order)
}

async fn reconcile(db: &Path, url: &str, extra: &[&str]) -> (bool, String) {
    let output = Process::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("reconcile")
        .arg("--sqlite")
        .arg(db)
        .args(["--providers-url", url, "--settle-secs", "0"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    (output.status.success(), stdout)
}

#[tokio::test]
async fn hearth_reconcile_reports_a_planted_capture_and_repairs_it() {
    let sandbox = RunningSandbox::start(([127, 0, 0, 1], 0).into(), Sandbox::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hearth.sqlite");
    let (household, order) = plant(&db, &sandbox).await;

    let (ok, report) = reconcile(&db, &sandbox.url(), &[]).await;
    assert!(!ok, "a difference remains: exit code non-zero");
    let line = format!("household {household} order {order} (cancelled): capture-not-in-log");
    assert!(report.contains(&line), "{report}");
    assert!(
        report.contains("[repairable (run with --repair)]"),
        "{report}"
    );
    assert!(
        report.contains("1 difference(s) found, 0 repaired, 1 remaining"),
        "{report}"
    );
    assert_eq!(
        sandbox.sandbox().stats().refunds,
        0,
        "a report changes nothing"
    );

    let (ok, report) = reconcile(&db, &sandbox.url(), &["--repair"]).await;
    assert!(ok, "repaired: exit code 0");
    assert!(report.contains(&line), "{report}");
    assert!(report.contains("[repaired]"), "{report}");
    assert!(
        report.contains("1 difference(s) found, 1 repaired, 0 remaining"),
        "{report}"
    );
    let stats = sandbox.sandbox().stats();
    assert_eq!((stats.captures, stats.refunds), (1, 1), "given back once");

    let (ok, report) = reconcile(&db, &sandbox.url(), &["--repair"]).await;
    assert!(ok);
    assert!(
        report.contains("0 difference(s) found, 0 repaired, 0 remaining"),
        "{report}"
    );
    assert_eq!(sandbox.sandbox().stats().refunds, 1, "nothing twice");
}

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn serve_reconciles_periodically_and_counts_it_in_metrics() {
    let sandbox = RunningSandbox::start(([127, 0, 0, 1], 0).into(), Sandbox::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hearth.sqlite");
    plant(&db, &sandbox).await;

    let mut child = Process::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--sqlite"])
        .arg(&db)
        .args(["--data-dir"])
        .arg(dir.path())
        .args(["--providers-url", &sandbox.url()])
        .args([
            "--reconcile-interval-ms",
            "100",
            "--reconcile-settle-secs",
            "0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("serve prints its address in time")
        .unwrap()
        .unwrap();
    let addr = line.trim_start_matches("listening on http://").to_owned();

    // Wait for the state: the repair counted, within a deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metric(&text, "hearth_reconcile_differences_repaired_total") == Some(1) {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no repair counted:\n{text}"
        );
        // A bounded poll: `serve` is another process, seen only through /metrics.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        metric(&text, "hearth_reconcile_differences_found_total"),
        Some(1)
    );
    assert_eq!(
        metric(&text, "hearth_reconcile_differences_remaining"),
        Some(0)
    );
    let stats = sandbox.sandbox().stats();
    assert_eq!((stats.captures, stats.refunds), (1, 1));
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}
