//! Group commit: appends that share a batch (one `hearth_append` call, one
//! transaction) keep their own outcomes. A refused append (stale version, repeated
//! command id) leaves nothing and does not fail the others; a household's appends
//! in one batch get consecutive seqs; an append the database refuses fails alone.

#![allow(clippy::unwrap_used)]

mod common;

use hearth_contract::fixtures::{append, household, order_id};
use hearth_core::Event;
use hearth_core::ports::{Append, Appended, Decision, EventStore, StoreError};
use hearth_postgres::{Batching, PgEventStore};
use std::collections::HashSet;

/// A store with one batcher: everything queued while a batch commits goes into the
/// next one.
async fn one_batcher() -> PgEventStore {
    let db = common::db().await;
    PgEventStore::with_batching(
        db.app_pool(4),
        Batching {
            batchers: 1,
            max_batch: 64,
            ..Batching::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_appends_leave_nothing_and_do_not_fail_their_batch() {
    let store = one_batcher().await;
    let (a, b) = (household(), household());
    let stale_order = order_id();
    let first = append(a, stale_order, 0, 1);
    assert!(matches!(
        store.append(first.clone()).await.unwrap(),
        Appended::Committed { .. }
    ));

    let mut committed_in_a = 1u64;
    let mut committed_in_b = 0u64;
    for _ in 0..10 {
        // Good appends to both households, a stale version, a repeated command id
        // and the same new command twice, all queued at once.
        let good: Vec<_> = (0..6)
            .map(|i| append(if i % 2 == 0 { a } else { b }, order_id(), 0, 2))
            .collect();
        let stale = append(a, stale_order, 0, 1);
        let twice = append(b, order_id(), 0, 1);
        let mut all = good.clone();
        all.push(stale.clone());
        all.push(first.clone());
        all.push(twice.clone());
        all.push(twice.clone());
        let results =
            futures::future::join_all(all.into_iter().map(|append| store.append(append))).await;

        for (i, result) in results[..6].iter().enumerate() {
            let Ok(Appended::Committed { events, .. }) = result else {
                panic!("good append {i} failed: {result:?}");
            };
            assert_eq!(events.len(), 2);
            // The two events of one append have consecutive seqs.
            assert_eq!(events[1].seq, events[0].seq + 1);
        }
        committed_in_a += 3 * 2;
        committed_in_b += 3 * 2;
        assert!(
            matches!(results[6], Err(StoreError::VersionConflict { .. })),
            "{:?}",
            results[6]
        );
        assert!(
            matches!(results[7], Ok(Appended::Duplicate(_))),
            "{:?}",
            results[7]
        );
        let twice_results = [&results[8], &results[9]];
        let won: Vec<_> = twice_results
            .iter()
            .filter(|r| matches!(r, Ok(Appended::Committed { .. })))
            .collect();
        let repeated: Vec<_> = twice_results
            .iter()
            .filter(|r| matches!(r, Ok(Appended::Duplicate(_))))
            .collect();
        assert_eq!((won.len(), repeated.len()), (1, 1), "{twice_results:?}");
        committed_in_b += 1;

        // Nothing of the refused appends remains: the heads are exactly the events
        // committed, the stale command id was never recorded.
        assert_eq!(store.head(a).await.unwrap(), committed_in_a);
        assert_eq!(store.head(b).await.unwrap(), committed_in_b);
        assert_eq!(store.outcome(a, stale.command.id).await.unwrap(), None);
    }

    // seq gap-free per household, each event once.
    for (tenant, n) in [(a, committed_in_a), (b, committed_in_b)] {
        let feed = store.read_feed(tenant, 0, 10_000).await.unwrap();
        let seqs: Vec<u64> = feed.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
        let ids: HashSet<_> = feed.iter().map(|e| e.id).collect();
        assert_eq!(ids.len() as u64, n);
    }
    let stats = store.batch_stats();
    assert!(
        stats.batches < stats.appends,
        "no batch had two appends: {stats:?}"
    );
    // Refusals are answered inside the batch's call: no batch was run again.
    assert_eq!(stats.reruns, 0, "{stats:?}");
}

/// `append` with a NUL character in its event's payload, which PostgreSQL's jsonb
/// refuses (SQLSTATE 22P05).
fn refused_by_the_database(mut append: Append) -> Append {
    if let Decision::Events { events, .. } = &mut append.decision
        && let Some(event) = events.first_mut()
        && let hearth_core::AnyEvent::Order(Event::OrderPlaced { lines, .. }) = &mut event.event
        && let Some(line) = lines.first_mut()
    {
        line.name = "nul \u{0} byte".into();
        return append;
    }
    panic!("the fixture changed: no order line to spoil");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_append_the_database_refuses_fails_alone() {
    let store = one_batcher().await;
    let (a, b) = (household(), household());
    let mut in_a = 0u64;
    let mut in_b = 0u64;
    for _ in 0..5 {
        let bad = refused_by_the_database(append(a, order_id(), 0, 1));
        let mut all: Vec<_> = (0..6)
            .map(|i| append(if i % 2 == 0 { a } else { b }, order_id(), 0, 1))
            .collect();
        all.insert(3, bad.clone());
        let results =
            futures::future::join_all(all.into_iter().map(|append| store.append(append))).await;
        for (i, result) in results.iter().enumerate() {
            if i == 3 {
                let Err(StoreError::Unavailable(message)) = result else {
                    panic!("the refused append: {result:?}");
                };
                assert!(message.contains("22P05"), "{message}");
            } else {
                assert!(
                    matches!(result, Ok(Appended::Committed { .. })),
                    "append {i}: {result:?}"
                );
            }
        }
        in_a += 3;
        in_b += 3;
        // Nothing of the refused append remains: heads count only the others.
        assert_eq!(store.head(a).await.unwrap(), in_a);
        assert_eq!(store.head(b).await.unwrap(), in_b);
        assert_eq!(store.outcome(a, bad.command.id).await.unwrap(), None);
    }
    let feed = store.read_feed(a, 0, 1_000).await.unwrap();
    let seqs: Vec<u64> = feed.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=in_a).collect::<Vec<_>>());
    let stats = store.batch_stats();
    assert!(stats.reruns > 0, "no batch was run again: {stats:?}");
}
