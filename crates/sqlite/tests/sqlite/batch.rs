//! Group commit (src/writer.rs): concurrent appends share transactions, and each is
//! still answered as if it had been alone.
//!
//! To make batches deterministic without timing, some cases hold the file's write
//! lock from a second connection (`BEGIN IMMEDIATE`) while they queue appends: the
//! writer cannot commit anything until the lock is released, so everything queued
//! meanwhile is gathered into the next batches.

use crate::fresh_file;
use futures::StreamExt;
use futures::future::{FutureExt, join_all};
use hearth_contract::fixtures::{append, household, order_id};
use hearth_core::ports::Outbox;
use hearth_core::ports::{
    Append, Appended, Decision, EventFeed, EventStore, FeedSignal, Snapshot, StoreError,
};
use hearth_core::{CommandOutcome, EventEnvelope, HouseholdId};
use hearth_sqlite::SqliteEventStore;
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// Takes the write lock on the file from a connection of its own.
fn hold_write_lock(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn
}

fn release(lock: rusqlite::Connection) {
    lock.execute_batch("COMMIT").unwrap();
}

fn events_of(answer: &Result<Appended, StoreError>) -> &[EventEnvelope] {
    match answer {
        Ok(Appended::Committed { events, .. }) => events,
        other => panic!("expected a commit, got {other:?}"),
    }
}

fn outcome_of(answer: &Result<Appended, StoreError>) -> CommandOutcome {
    match answer {
        Ok(Appended::Committed { outcome, .. }) => outcome.clone(),
        other => panic!("expected a commit, got {other:?}"),
    }
}

/// Waits until the writer has begun `batches` batches (it counts a batch when it
/// takes it, before BEGIN).
async fn wait_for_batches(store: &SqliteEventStore, batches: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.batch_stats().batches < batches {
        assert!(Instant::now() < deadline, "the writer never took the batch");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Drains the signals rung so far.
fn rung(feed: &mut hearth_core::ports::FeedStream) -> Vec<FeedSignal> {
    let mut signals = Vec::new();
    while let Some(Some(signal)) = feed.next().now_or_never() {
        signals.push(signal);
    }
    signals
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// A new order: accepted.
    Fresh,
    /// The household's contested order at version 0: one wins, the rest conflict.
    Contested,
    /// The household's repeated command: one commit, the rest duplicates.
    Repeat,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_appends_are_each_answered_correctly() {
    let path = fresh_file();
    let (store, _feed) = SqliteEventStore::open(&path).unwrap();
    let households: Vec<HouseholdId> = (0..4).map(|_| household()).collect();
    let mut work: Vec<(Kind, HouseholdId, Append)> = Vec::new();
    for &tenant in &households {
        let contested = order_id();
        let repeated = append(tenant, order_id(), 0, 2);
        for i in 0..50u32 {
            let (kind, append) = match i % 5 {
                1 => (Kind::Contested, append(tenant, contested, 0, 1)),
                3 => (Kind::Repeat, repeated.clone()),
                _ => (Kind::Fresh, append(tenant, order_id(), 0, 1 + i % 2)),
            };
            work.push((kind, tenant, append));
        }
    }
    // Interleave the households: 200 appends in no household's order.
    work.sort_by_key(|(_, _, a)| a.command.id.0.as_u128() % 7);
    assert_eq!(work.len(), 200);

    let lock = hold_write_lock(&path);
    let mut all = join_all(work.iter().map(|(_, _, a)| store.append(a.clone())));
    assert!(futures::poll!(&mut all).is_pending()); // every append is queued
    release(lock);
    let answers = all.await;

    for &tenant in &households {
        let mine = || {
            work.iter()
                .zip(&answers)
                .filter(move |((_, t, _), _)| *t == tenant)
        };
        let of = |kind: Kind| {
            mine()
                .filter(move |((k, _, _), _)| *k == kind)
                .map(|(_, answer)| answer)
        };
        for ((_, _, append), answer) in mine().filter(|((k, _, _), _)| *k == Kind::Fresh) {
            let Decision::Events { events, .. } = &append.decision else {
                unreachable!()
            };
            assert_eq!(events_of(answer).len(), events.len());
        }
        // Contested: exactly one winner, every other append a version conflict.
        let winners = of(Kind::Contested).filter(|a| a.is_ok()).count();
        assert_eq!(winners, 1, "one append wins the contested order");
        for answer in of(Kind::Contested).filter(|a| a.is_err()) {
            assert!(
                matches!(answer, Err(StoreError::VersionConflict { expected: 0, .. })),
                "{answer:?}"
            );
        }
        // Repeats: one commit, then duplicates of its outcome.
        let committed: Vec<_> = of(Kind::Repeat)
            .filter(|a| matches!(a, Ok(Appended::Committed { .. })))
            .collect();
        assert_eq!(committed.len(), 1, "a repeated command commits once");
        let first = outcome_of(committed[0]);
        for answer in of(Kind::Repeat).filter(|a| !matches!(a, Ok(Appended::Committed { .. }))) {
            assert_eq!(answer, &Ok(Appended::Duplicate(first.clone())));
        }

        // The log is exactly the accepted appends' events, once each, seq gap-free.
        let mut accepted: Vec<EventEnvelope> = Vec::new();
        for (_, answer) in mine() {
            if let Ok(Appended::Committed { events, outcome }) = answer {
                let last = events.last().unwrap();
                assert_eq!(
                    outcome,
                    &CommandOutcome::Accepted {
                        seq: last.seq,
                        events: events.len() as u32
                    }
                );
                accepted.extend(events.iter().cloned());
            }
        }
        accepted.sort_by_key(|e| e.seq);
        let log = store.read_feed(tenant, 0, 10_000).await.unwrap();
        assert_eq!(log, accepted);
        let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=log.len() as u64).collect::<Vec<_>>());
        assert_eq!(store.head(tenant).await.unwrap(), log.len() as u64);
        // 30 fresh appends of 1 or 2 events, the contested winner, the repeat once.
        assert_eq!(log.len(), 15 + 15 * 2 + 1 + 2);
    }
    let stats = store.batch_stats();
    assert_eq!(stats.appends, 200);
    assert!(stats.batches < stats.appends, "{stats:?}");
}

#[tokio::test]
async fn a_refused_append_does_not_fail_or_undo_the_rest_of_its_batch() {
    let path = fresh_file();
    let (store, feed) = SqliteEventStore::open(&path).unwrap();
    let (tenant, other) = (household(), household());
    let placed = order_id();
    let earlier = append(tenant, placed, 0, 1);
    let earlier_answer = store.append(earlier.clone()).await;
    let earlier_event = events_of(&earlier_answer)[0].id;
    let head_before = store.head(tenant).await.unwrap();
    let stats_before = store.batch_stats();
    let mut feed = feed.subscribe();

    // A batch of its own for `other`, stuck at BEGIN while this test holds the lock.
    let lock = hold_write_lock(&path);
    let mut blocker = store.append(append(other, order_id(), 0, 1));
    assert!(futures::poll!(&mut blocker).is_pending());
    wait_for_batches(&store, stats_before.batches + 1).await;

    // Queued behind it, so the next batch: accepted and refused appends mixed.
    let ok_one = append(tenant, order_id(), 0, 1);
    let conflict = append(tenant, placed, 0, 1);
    // Its first event and job are written before its second is refused: the second
    // asks for a job under an id already taken (a job's id is its event's). The
    // batch's transaction is rolled back and run again without it: nothing of its
    // command, events or job remains.
    let mut half_written = append(tenant, order_id(), 0, 2);
    if let Decision::Events { events, .. } = &mut half_written.decision {
        events[1].event = events[0].event.clone();
        events[1].requires_job = true;
        events[1].id = earlier_event;
    }
    let ok_two = append(tenant, order_id(), 0, 2);
    let batch = [
        ok_one.clone(),
        conflict,
        earlier.clone(),
        half_written.clone(),
        ok_two,
        ok_one.clone(),
    ];
    let mut all = join_all(batch.iter().map(|a| store.append(a.clone())));
    assert!(futures::poll!(&mut all).is_pending());
    release(lock);
    assert_eq!(events_of(&blocker.await).len(), 1);
    let answers = all.await;

    let stats = store.batch_stats();
    assert_eq!(
        stats.batches,
        stats_before.batches + 2,
        "one batch after the blocker"
    );
    assert_eq!(stats.appends, stats_before.appends + 7);

    assert_eq!(events_of(&answers[0]).len(), 1);
    assert!(
        matches!(answers[1], Err(StoreError::VersionConflict { expected: 0, aggregate }) if aggregate == placed.into()),
        "{:?}",
        answers[1]
    );
    assert_eq!(
        answers[2],
        Ok(Appended::Duplicate(outcome_of(&earlier_answer)))
    );
    assert!(
        matches!(answers[3], Err(StoreError::Corrupt(_))),
        "{:?}",
        answers[3]
    );
    assert_eq!(events_of(&answers[4]).len(), 2);
    // The same command id again in the same batch: the first one's outcome.
    assert_eq!(answers[5], Ok(Appended::Duplicate(outcome_of(&answers[0]))));

    // Nothing of the refused appends, everything of the others, seq gap-free.
    let Decision::Events { aggregate, .. } = half_written.decision else {
        unreachable!()
    };
    assert!(
        store
            .load(tenant, aggregate, 1)
            .await
            .unwrap()
            .events
            .is_empty()
    );
    assert_eq!(
        store
            .outcome(tenant, half_written.command.id)
            .await
            .unwrap(),
        None
    );
    let jobs: HashSet<_> = store
        .pending_jobs(10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    for answer in [&answers[0], &answers[4]] {
        let needing: Vec<_> = events_of(answer)
            .iter()
            .filter(|e| e.requires_job)
            .collect();
        assert!(needing.iter().all(|e| jobs.contains(&e.id)));
    }
    // Placing an order needs a job: the earlier append, the blocker, ok one, ok two.
    assert_eq!(jobs.len(), 4);
    let log = store.read_feed(tenant, head_before, 100).await.unwrap();
    let mut expected = events_of(&answers[0]).to_vec();
    expected.extend(events_of(&answers[4]).iter().cloned());
    assert_eq!(log, expected);
    assert_eq!(
        log.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![head_before + 1, head_before + 2, head_before + 3]
    );

    // One signal per household per batch, with its highest seq, after the commit.
    assert_eq!(
        rung(&mut feed),
        vec![
            FeedSignal::Committed {
                tenant: other,
                seq: 1
            },
            FeedSignal::Committed {
                tenant,
                seq: head_before + 3
            },
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_transactions() {
    let path = fresh_file();
    let (store, _feed) = SqliteEventStore::open(&path).unwrap();
    let households: Vec<HouseholdId> = (0..4).map(|_| household()).collect();
    // 16 writers, each appending 25 commands one after the other.
    let writer = |i: usize| {
        let store = store.clone();
        let tenant = households[i % households.len()];
        async move {
            for _ in 0..25 {
                let answer = store.append(append(tenant, order_id(), 0, 1)).await;
                assert_eq!(events_of(&answer).len(), 1);
            }
        }
    };
    // Every writer's first append is queued while the writer cannot commit.
    let lock = hold_write_lock(&path);
    let mut all = join_all((0..16).map(writer));
    assert!(futures::poll!(&mut all).is_pending());
    release(lock);
    all.await;

    let stats = store.batch_stats();
    assert_eq!(stats.appends, 16 * 25);
    assert!(
        stats.batches < stats.appends,
        "appends were grouped into fewer transactions: {stats:?}"
    );
    for tenant in households {
        let log = store.read_feed(tenant, 0, 1_000).await.unwrap();
        let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn other_writes_run_between_batches_in_queue_order() {
    let path = fresh_file();
    let (store, _feed) = SqliteEventStore::open(&path).unwrap();
    let tenant = household();
    let order = order_id();
    let before = store.batch_stats();

    let lock = hold_write_lock(&path);
    let mut blocker = store.append(append(household(), order_id(), 0, 1));
    assert!(futures::poll!(&mut blocker).is_pending());
    wait_for_batches(&store, before.batches + 1).await;
    // Queued behind the blocker: an append, a snapshot of what it writes, another
    // append. The snapshot ends the batch being gathered: it runs after the first
    // append committed (it would be refused as ahead of its stream otherwise) and
    // before the second append, which is a batch of its own.
    let mut first = store.append(append(tenant, order, 0, 2));
    assert!(futures::poll!(&mut first).is_pending());
    let snapshot = Snapshot {
        tenant,
        aggregate: order.into(),
        version: 2,
        schema_version: 1,
        state: serde_json::json!({ "at": 2 }),
    };
    let mut saved = store.save_snapshot(snapshot.clone());
    assert!(futures::poll!(&mut saved).is_pending());
    let mut second = store.append(append(tenant, order, 2, 1));
    assert!(futures::poll!(&mut second).is_pending());
    release(lock);

    assert_eq!(events_of(&blocker.await).len(), 1);
    assert_eq!(events_of(&first.await).len(), 2);
    saved.await.unwrap();
    assert_eq!(events_of(&second.await)[0].seq, 3);
    let loaded = store.load(tenant, order.into(), 1).await.unwrap();
    assert_eq!(loaded.snapshot, Some(snapshot));
    assert_eq!(loaded.events.len(), 1);
    assert_eq!(store.batch_stats().batches, before.batches + 3);
}
