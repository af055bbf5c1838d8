//! Feed robustness: a subscriber that reads from its cursor on every signal gets
//! every event exactly once, in order, while the listener's backend is killed
//! and while the database server restarts (a private instance; the shared server
//! is never touched).

#![allow(clippy::unwrap_used)]

mod common;

use futures::StreamExt;
use hearth_contract::fixtures::{append, household, order_id};
use hearth_core::HouseholdId;
use hearth_core::ports::{Appended, EventFeed, EventStore, FeedSignal, StoreError};
use hearth_postgres::{FeedOptions, PgEventFeed};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, timeout};

fn options(name: &str) -> FeedOptions {
    FeedOptions {
        poll_interval: Duration::from_millis(700),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        application_name: name.to_owned(),
        capacity: 4096,
        ..FeedOptions::default()
    }
}

/// Reads household `tenant` from its cursor on every signal (and only then), until
/// it has `want` events; returns the seqs and ids in the order received.
fn subscriber(
    store: Arc<dyn EventStore>,
    feed: &PgEventFeed,
    tenant: HouseholdId,
    want: usize,
) -> tokio::task::JoinHandle<Vec<(u64, hearth_core::EventId)>> {
    let mut signals = feed.subscribe();
    tokio::spawn(async move {
        let mut got: Vec<(u64, hearth_core::EventId)> = Vec::new();
        while got.len() < want {
            let Some(signal) = signals.next().await else {
                panic!("feed closed");
            };
            let relevant = match signal {
                FeedSignal::Committed { tenant: t, seq } => {
                    t == tenant && seq > got.last().map_or(0, |e| e.0)
                }
                FeedSignal::Resync => true,
            };
            if !relevant {
                continue;
            }
            // Read to the end from the cursor; retry reads that fail (server down).
            loop {
                let cursor = got.last().map_or(0, |e| e.0);
                match store.read_feed(tenant, cursor, 100).await {
                    Ok(page) if page.is_empty() => break,
                    Ok(page) => got.extend(page.into_iter().map(|e| (e.seq, e.id))),
                    // A bounded retry while the PostgreSQL server (another process) is down.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
        got
    })
}

/// Appends `n` one-event commands, retrying each (same command id) until it is
/// stored: a retry after a lost answer comes back as a duplicate, never twice.
async fn append_all(store: Arc<dyn EventStore>, tenant: HouseholdId, n: usize, pause: Duration) {
    for _ in 0..n {
        let write = append(tenant, order_id(), 0, 1);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match store.append(write.clone()).await {
                Ok(Appended::Committed { .. } | Appended::Duplicate(_)) => break,
                Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                    // A bounded retry (30 s) while the PostgreSQL server is down.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("append failed: {e}"),
            }
        }
        // Pacing, not synchronisation: the writes are spread over the faults.
        tokio::time::sleep(pause).await;
    }
}

fn assert_exactly_once_in_order(got: &[(u64, hearth_core::EventId)], n: usize) {
    assert_eq!(
        got.iter().map(|e| e.0).collect::<Vec<_>>(),
        (1..=n as u64).collect::<Vec<_>>(),
        "every event once, in order"
    );
    let ids: std::collections::HashSet<_> = got.iter().map(|e| e.1).collect();
    assert_eq!(ids.len(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_listener_backend_loses_nothing() {
    let db = common::db().await;
    let name = format!("hearth-feed-kill-{}", uuid::Uuid::now_v7().simple());
    let feed = db.feed(options(&name));
    assert!(feed.wait_connected(1, Duration::from_secs(10)).await);
    let store: Arc<dyn EventStore> = db.store();
    let tenant = household();
    let n = 300;
    let reader = subscriber(store.clone(), &feed, tenant, n);
    let writer = tokio::spawn(append_all(
        store.clone(),
        tenant,
        n,
        Duration::from_millis(3),
    ));
    let admin = db.connect(&db.admin).await;
    let mut kills = 0;
    for _ in 0..4 {
        // Pacing, not synchronisation: kills land at spread-out points of the writes.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let rows = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                &[&name],
            )
            .await
            .unwrap();
        kills += rows.len();
    }
    writer.await.unwrap();
    let got = timeout(Duration::from_secs(30), reader)
        .await
        .expect("the subscriber caught up within 30 s")
        .unwrap();
    assert!(kills >= 3, "the listener was killed ({kills} times)");
    assert!(feed.connects() >= 4, "it reconnected after each kill");
    assert_exactly_once_in_order(&got, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_loses_nothing() {
    let server = Arc::new(
        tokio::task::spawn_blocking(common::PrivateServer::start)
            .await
            .unwrap(),
    );
    let db = common::setup(server.config(), "hearth_restart").await;
    let feed = db.feed(options("hearth-feed-restart"));
    assert!(feed.wait_connected(1, Duration::from_secs(10)).await);
    let store: Arc<dyn EventStore> = db.store();
    let tenant = household();
    let n = 200;
    let reader = subscriber(store.clone(), &feed, tenant, n);
    let writer = tokio::spawn(append_all(
        store.clone(),
        tenant,
        n,
        Duration::from_millis(5),
    ));
    // Pacing, not synchronisation: the restart lands mid-run, which `before` checks.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = store.head(tenant).await.unwrap();
    let restarting = server.clone();
    tokio::task::spawn_blocking(move || restarting.restart(Duration::from_millis(500)))
        .await
        .unwrap();
    timeout(Duration::from_secs(60), writer)
        .await
        .expect("appends finish after the restart")
        .unwrap();
    let got = timeout(Duration::from_secs(30), reader)
        .await
        .expect("the subscriber caught up within 30 s")
        .unwrap();
    assert!(
        before > 0 && before < n as u64,
        "restarted mid-run ({before})"
    );
    assert!(feed.connects() >= 2, "the listener reconnected");
    assert_exactly_once_in_order(&got, n);
    assert_eq!(
        store.head(tenant).await.unwrap(),
        n as u64,
        "no append twice"
    );
    drop(feed);
    drop(store);
    tokio::task::spawn_blocking(move || drop(server))
        .await
        .unwrap();
}
