//! The EventStore and EventFeed contract.

use crate::fixtures::{append, household, member_command};
use futures::StreamExt;
use hearth_core::order::{Command, OrderRef};
use hearth_core::ports::{
    Append, Appended, Decision, EventFeed, EventStore, FeedSignal, Outbox, Snapshot, StoreError,
};
use hearth_core::{CommandOutcome, OrderId};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub use crate::receive::external_events_are_received_once_per_household;

/// What a suite needs: a store and the feed of its commits.
#[derive(Clone, Debug)]
pub struct StoreFixture {
    pub store: Arc<dyn EventStore>,
    /// The outbox of the same store: the jobs its appends recorded.
    pub outbox: Arc<dyn Outbox>,
    pub feed: Arc<dyn EventFeed>,
}

/// Expands to one test per contract case. `$make` is an expression that, called
/// with no arguments, returns a future of a [`StoreFixture`].
#[macro_export]
macro_rules! event_store_contract {
    ($make:expr) => {
        $crate::event_store_contract!(@cases $make;
            append_assigns_gap_free_seq_and_versions,
            committed_events_read_back_exactly,
            load_returns_one_stream_in_version_order,
            stale_expected_version_conflicts_and_writes_nothing,
            repeated_command_id_returns_first_outcome_and_writes_nothing,
            rejection_is_recorded_and_repeats,
            empty_decision_records_the_command_at_head,
            read_feed_pages_from_a_cursor,
            households_never_see_each_other,
            snapshot_then_later_events,
            snapshot_of_other_schema_is_ignored,
            older_snapshot_does_not_replace_newer,
            jobs_are_recorded_with_their_events,
            jobs_carry_the_correlation_id_of_their_event,
            concurrent_appends_to_one_stream_use_each_version_once,
            concurrent_appends_across_streams_keep_seq_gap_free,
            concurrent_repeats_of_one_command_append_once,
            feed_rings_after_commit,
            streams_of_two_domains_with_one_id_never_meet,
            external_events_are_received_once_per_household,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        /// Every case on order streams...
        mod orders {
            use super::*;
            $crate::event_store_contract!(@domain $make; Order; $($case),*);
        }
        /// ...and on chore streams: the store does not judge the domain.
        mod chores {
            use super::*;
            $crate::event_store_contract!(@domain $make; Chore; $($case),*);
        }
        /// ...and on the membership roster, a domain whose events ask for no job.
        mod members {
            use super::*;
            $crate::event_store_contract!(@domain $make; People; $($case),*);
        }
    };
    (@domain $make:expr; $domain:ident; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture: $crate::StoreFixture = ($make)().await;
                let streams = $crate::event_store::Streams(hearth_core::DomainId::$domain);
                $crate::event_store::$case(fixture, streams).await;
            }
        )*
    };
}

/// The streams a case appends to: every case runs once on order streams and once on
/// chore streams (the store keys streams by domain and id and judges neither).
#[derive(Clone, Copy, Debug)]
pub struct Streams(pub hearth_core::DomainId);

impl Streams {
    /// A new aggregate id.
    pub fn id(self) -> Uuid {
        Uuid::now_v7()
    }

    /// The aggregate `id` of this domain.
    pub fn aggregate(self, id: Uuid) -> hearth_core::AggregateId {
        hearth_core::AggregateId::new(self.0, id)
    }

    /// An append of `count` events to aggregate `id`, which must be at `expected`: the
    /// first event (version 1) asks for a job, later ones do not.
    pub fn append(
        self,
        tenant: hearth_core::HouseholdId,
        id: Uuid,
        expected: u32,
        count: u32,
    ) -> Append {
        match self.0 {
            hearth_core::DomainId::Order => {
                crate::fixtures::append(tenant, OrderId(id), expected, count)
            }
            hearth_core::DomainId::Chore => crate::fixtures::chore_append(
                tenant,
                hearth_core::chore::ChoreId(id),
                expected,
                count,
            ),
            hearth_core::DomainId::People => {
                crate::fixtures::member_append(tenant, id, expected, count)
            }
        }
    }

    /// One event of aggregate `id` at `version`, as `append` makes them.
    pub fn event(
        self,
        command: &hearth_core::CommandEnvelope,
        id: Uuid,
        version: u32,
    ) -> hearth_core::NewEvent {
        match self.0 {
            hearth_core::DomainId::Order => {
                crate::fixtures::new_event(command, OrderId(id), version)
            }
            hearth_core::DomainId::Chore => {
                crate::fixtures::new_chore_event(command, hearth_core::chore::ChoreId(id), version)
            }
            hearth_core::DomainId::People => {
                crate::fixtures::new_member_event(command, id, version)
            }
        }
    }

    /// Whether the first event of a stream asks for a job (an order placed, a chore
    /// scheduled; a member joining does not).
    pub fn first_asks_for_job(self) -> bool {
        let tenant = crate::fixtures::household();
        match self.append(tenant, self.id(), 0, 1).decision {
            Decision::Events { events, .. } => events.first().is_some_and(|e| e.requires_job),
            Decision::Rejected { .. } => false,
        }
    }
}

pub async fn append_assigns_gap_free_seq_and_versions(fx: StoreFixture, s: Streams) {
    let tenant = household();
    let (a, b) = (s.id(), s.id());
    let first = fx.store.append(s.append(tenant, a, 0, 2)).await.unwrap();
    let second = fx.store.append(s.append(tenant, b, 0, 1)).await.unwrap();
    let third = fx.store.append(s.append(tenant, a, 2, 1)).await.unwrap();
    let seqs = |r: &Appended| match r {
        Appended::Committed { events, .. } => events
            .iter()
            .map(|e| (e.seq, e.version))
            .collect::<Vec<_>>(),
        other => panic!("expected a commit, got {other:?}"),
    };
    assert_eq!(seqs(&first), vec![(1, 1), (2, 2)]);
    assert_eq!(seqs(&second), vec![(3, 1)]);
    assert_eq!(seqs(&third), vec![(4, 3)]);
    match third {
        Appended::Committed { outcome, .. } => {
            assert_eq!(outcome, CommandOutcome::Accepted { seq: 4, events: 1 })
        }
        _ => unreachable!(),
    }
    assert_eq!(fx.store.head(tenant).await.unwrap(), 4);
}

pub async fn committed_events_read_back_exactly(fx: StoreFixture, s: Streams) {
    let tenant = household();
    let order = s.id();
    let Appended::Committed { events, .. } = fx
        .store
        .append(s.append(tenant, order, 0, 2))
        .await
        .unwrap()
    else {
        panic!("expected a commit");
    };
    let feed = fx.store.read_feed(tenant, 0, 100).await.unwrap();
    assert_eq!(
        feed, events,
        "read_feed returns the committed envelopes unchanged"
    );
    let loaded = fx.store.load(tenant, s.aggregate(order), 1).await.unwrap();
    assert_eq!(
        loaded.events, events,
        "load returns the committed envelopes unchanged"
    );
    assert_eq!(
        events[0].requires_job,
        s.first_asks_for_job(),
        "the first event's job flag reads back"
    );
    assert!(!events[1].requires_job);
}

pub async fn load_returns_one_stream_in_version_order(fx: StoreFixture, s: Streams) {
    let tenant = household();
    let (a, b) = (s.id(), s.id());
    fx.store.append(s.append(tenant, a, 0, 1)).await.unwrap();
    fx.store.append(s.append(tenant, b, 0, 2)).await.unwrap();
    fx.store.append(s.append(tenant, a, 1, 2)).await.unwrap();
    let loaded = fx.store.load(tenant, s.aggregate(a), 1).await.unwrap();
    assert!(loaded.snapshot.is_none());
    let versions: Vec<_> = loaded.events.iter().map(|e| e.version).collect();
    assert_eq!(versions, vec![1, 2, 3]);
    assert!(loaded.events.iter().all(|e| e.aggregate_id == a));
    let empty = fx.store.load(tenant, s.aggregate(s.id()), 1).await.unwrap();
    assert!(empty.events.is_empty() && empty.snapshot.is_none());
}

pub async fn stale_expected_version_conflicts_and_writes_nothing(fx: StoreFixture, s: Streams) {
    let tenant = household();
    let order = s.id();
    fx.store
        .append(s.append(tenant, order, 0, 1))
        .await
        .unwrap();
    let stale = s.append(tenant, order, 0, 1);
    let stale_id = stale.command.id;
    let err = fx.store.append(stale).await.unwrap_err();
    assert!(
        matches!(err, StoreError::VersionConflict { aggregate, expected: 0 } if aggregate == s.aggregate(order)),
        "got {err:?}"
    );
    let ahead = fx
        .store
        .append(s.append(tenant, order, 5, 1))
        .await
        .unwrap_err();
    assert!(
        matches!(ahead, StoreError::VersionConflict { .. }),
        "got {ahead:?}"
    );
    assert_eq!(fx.store.head(tenant).await.unwrap(), 1, "nothing appended");
    assert_eq!(
        fx.store.outcome(tenant, stale_id).await.unwrap(),
        None,
        "command not recorded"
    );
    assert!(
        fx.outbox
            .pending_jobs(10_000)
            .await
            .unwrap()
            .iter()
            .filter(|j| j.tenant == tenant)
            .count()
            == usize::from(s.first_asks_for_job()),
        "no job from the refused append (only the first append's, if it asks for one)"
    );
}

pub async fn repeated_command_id_returns_first_outcome_and_writes_nothing(
    fx: StoreFixture,
    s: Streams,
) {
    let tenant = household();
    let order = s.id();
    let first = s.append(tenant, order, 0, 1);
    let mut again = first.clone();
    // Same id, different content (and even a stale version): still the first outcome.
    if let Decision::Events { events, .. } = &mut again.decision {
        events.push(s.event(&first.command, order, 2));
    }
    let Appended::Committed { outcome, .. } = fx.store.append(first.clone()).await.unwrap() else {
        panic!("expected a commit");
    };
    assert_eq!(
        fx.store.append(first.clone()).await.unwrap(),
        Appended::Duplicate(outcome.clone())
    );
    assert_eq!(
        fx.store.append(again).await.unwrap(),
        Appended::Duplicate(outcome.clone())
    );
    assert_eq!(fx.store.head(tenant).await.unwrap(), 1);
    assert_eq!(
        fx.store.outcome(tenant, first.command.id).await.unwrap(),
        Some(outcome)
    );
}

pub async fn rejection_is_recorded_and_repeats(fx: StoreFixture, _: Streams) {
    let tenant = household();
    let command = member_command(
        tenant,
        Command::ConfirmOrder(OrderRef {
            order_id: OrderId(Uuid::now_v7()),
        }),
    );
    let rejected = Append {
        command: command.clone(),
        decision: Decision::Rejected {
            code: "order_not_found".into(),
            message: "order does not exist".into(),
        },
    };
    let expected = CommandOutcome::Rejected {
        code: "order_not_found".into(),
        message: "order does not exist".into(),
    };
    assert_eq!(
        fx.store.append(rejected.clone()).await.unwrap(),
        Appended::Committed {
            events: vec![],
            outcome: expected.clone()
        }
    );
    assert_eq!(
        fx.store.append(rejected).await.unwrap(),
        Appended::Duplicate(expected.clone())
    );
    assert_eq!(
        fx.store.outcome(tenant, command.id).await.unwrap(),
        Some(expected)
    );
    assert_eq!(fx.store.head(tenant).await.unwrap(), 0);
}

pub async fn empty_decision_records_the_command_at_head(fx: StoreFixture, s: Streams) {
    let tenant = household();
    let order = s.id();
    fx.store
        .append(s.append(tenant, order, 0, 2))
        .await
        .unwrap();
    let nothing = s.append(tenant, order, 2, 0);
    let id = nothing.command.id;
    let result = fx.store.append(nothing).await.unwrap();
    let expected = CommandOutcome::Accepted { seq: 2, events: 0 };
    assert_eq!(
        result,
        Appended::Committed {
            events: vec![],
            outcome: expected.clone()
        }
    );
    assert_eq!(
        fx.store.outcome(tenant, id).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(fx.store.head(tenant).await.unwrap(), 2);
    // Nothing is appended, so no version is checked: a stale one records it too.
    let stale = s.append(tenant, order, 0, 0);
    assert_eq!(
        fx.store.append(stale).await.unwrap(),
        Appended::Committed {
            events: vec![],
            outcome: expected
        }
    );
    assert_eq!(fx.store.head(tenant).await.unwrap(), 2);
}

pub async fn read_feed_pages_from_a_cursor(fx: StoreFixture, s: Streams) {
    let tenant = household();
    for _ in 0..5 {
        fx.store
            .append(s.append(tenant, s.id(), 0, 2))
            .await
            .unwrap();
    }
    let page = fx.store.read_feed(tenant, 3, 4).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![4, 5, 6, 7]
    );
    let rest = fx.store.read_feed(tenant, 7, 100).await.unwrap();
    assert_eq!(
        rest.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![8, 9, 10]
    );
    assert!(
        fx.store
            .read_feed(tenant, 10, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        fx.store
            .read_feed(tenant, 1_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(fx.store.read_feed(tenant, 0, 0).await.unwrap().is_empty());
}

pub async fn households_never_see_each_other(fx: StoreFixture, s: Streams) {
    let (a, b) = (household(), household());
    let order = s.id();
    let write = s.append(a, order, 0, 1);
    let command = write.command.id;
    fx.store.append(write).await.unwrap();
    assert!(fx.store.read_feed(b, 0, 100).await.unwrap().is_empty());
    assert!(
        fx.store
            .load(b, s.aggregate(order), 1)
            .await
            .unwrap()
            .events
            .is_empty()
    );
    assert_eq!(fx.store.head(b).await.unwrap(), 0);
    assert_eq!(fx.store.outcome(b, command).await.unwrap(), None);
    // The same order id in household B is a different stream: version 0 there.
    fx.store.append(s.append(b, order, 0, 1)).await.unwrap();
    assert_eq!(fx.store.head(a).await.unwrap(), 1);
    assert_eq!(fx.store.head(b).await.unwrap(), 1);
    // The same command id in B is a different command.
    let mut reuse = s.append(b, order, 1, 1);
    reuse.command.id = command;
    assert!(matches!(
        fx.store.append(reuse).await.unwrap(),
        Appended::Committed { .. }
    ));
    // A snapshot written for B is not A's.
    fx.store
        .save_snapshot(Snapshot {
            tenant: b,
            aggregate: s.aggregate(order),
            version: 1,
            schema_version: 1,
            state: serde_json::json!({"b": true}),
        })
        .await
        .unwrap();
    assert!(
        fx.store
            .load(a, s.aggregate(order), 1)
            .await
            .unwrap()
            .snapshot
            .is_none()
    );
}

pub async fn snapshot_then_later_events(fx: StoreFixture, s: Streams) {
    let tenant = household();
    let order = s.id();
    fx.store
        .append(s.append(tenant, order, 0, 3))
        .await
        .unwrap();
    let snapshot = Snapshot {
        tenant,
        aggregate: s.aggregate(order),
        version: 2,
        schema_version: 1,
        state: serde_json::json!({"version": 2}),
    };
    fx.store.save_snapshot(snapshot.clone()).await.unwrap();
    fx.store
        .append(s.append(tenant, order, 3, 1))
        .await
        .unwrap();
    let loaded = fx.store.load(tenant, s.aggregate(order), 1).await.unwrap();
    assert_eq!(loaded.snapshot, Some(snapshot));
    assert_eq!(
        loaded.events.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![3, 4]
    );
}

pub async fn snapshot_of_other_schema_is_ignored(fx: StoreFixture, s: Streams) {
    let tenant = household();
    let order = s.id();
    fx.store
        .append(s.append(tenant, order, 0, 2))
        .await
        .unwrap();
    fx.store
        .save_snapshot(Snapshot {
            tenant,
            aggregate: s.aggregate(order),
            version: 2,
            schema_version: 7,
            state: serde_json::json!({}),
        })
        .await
        .unwrap();
    let loaded = fx.store.load(tenant, s.aggregate(order), 1).await.unwrap();
    assert!(loaded.snapshot.is_none());
    assert_eq!(
        loaded.events.len(),
        2,
        "all events when the snapshot is unusable"
    );
}

pub async fn older_snapshot_does_not_replace_newer(fx: StoreFixture, s: Streams) {
    let tenant = household();
    let order = s.id();
    fx.store
        .append(s.append(tenant, order, 0, 4))
        .await
        .unwrap();
    let snap = |version| Snapshot {
        tenant,
        aggregate: s.aggregate(order),
        version,
        schema_version: 1,
        state: serde_json::json!({"v": version}),
    };
    fx.store.save_snapshot(snap(3)).await.unwrap();
    fx.store.save_snapshot(snap(2)).await.unwrap();
    let loaded = fx.store.load(tenant, s.aggregate(order), 1).await.unwrap();
    assert_eq!(loaded.snapshot.map(|s| s.version), Some(3));
    assert_eq!(
        loaded.events.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![4]
    );
}

pub async fn jobs_are_recorded_with_their_events(fx: StoreFixture, s: Streams) {
    let tenant = household();
    let order = s.id();
    let Appended::Committed { events, .. } = fx
        .store
        .append(s.append(tenant, order, 0, 2))
        .await
        .unwrap()
    else {
        panic!("expected a commit");
    };
    let mine = |jobs: Vec<hearth_core::ports::Job>| {
        jobs.into_iter()
            .filter(|j| j.tenant == tenant)
            .collect::<Vec<_>>()
    };
    let jobs = mine(fx.outbox.pending_jobs(10_000).await.unwrap());
    if !s.first_asks_for_job() {
        assert!(jobs.is_empty(), "no job for events that ask for none");
        return;
    }
    assert_eq!(jobs.len(), 1, "one job for the one event that requires it");
    assert_eq!(jobs[0].id, events[0].id);
    assert_eq!(jobs[0].aggregate, s.aggregate(order));
    assert_eq!(jobs[0].kind, hearth_core::ports::JobKind::Start);
    fx.outbox
        .mark_job_started(tenant, jobs[0].id)
        .await
        .unwrap();
    fx.outbox
        .mark_job_started(tenant, jobs[0].id)
        .await
        .unwrap();
    assert!(mine(fx.outbox.pending_jobs(10_000).await.unwrap()).is_empty());
}

/// A job carries its event's correlation id (not its command id): what the process
/// dispatches for it, and its spans, follow the intent that asked for it.
pub async fn jobs_carry_the_correlation_id_of_their_event(fx: StoreFixture, s: Streams) {
    let tenant = household();
    let order = s.id();
    let correlation = Uuid::new_v4();
    let mut append = s.append(tenant, order, 0, 1);
    append.command.metadata.correlation_id = Some(correlation);
    if let Decision::Events { events, .. } = &mut append.decision {
        for event in events {
            event.metadata.correlation_id = correlation;
        }
    }
    fx.store.append(append).await.unwrap();
    let jobs: Vec<_> = fx
        .outbox
        .pending_jobs(10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.tenant == tenant)
        .collect();
    if !s.first_asks_for_job() {
        assert!(jobs.is_empty(), "no job for events that ask for none");
        return;
    }
    assert_eq!(jobs.len(), 1);
    assert_ne!(jobs[0].command_id.0, correlation);
    assert_eq!(jobs[0].correlation_id, correlation);
}

pub async fn concurrent_appends_to_one_stream_use_each_version_once(fx: StoreFixture, s: Streams) {
    let tenant = household();
    let order = s.id();
    let writers = 16;
    let rounds = 5u32;
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let store = fx.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = 0u32;
            let mut tries = 0;
            while won < rounds && tries < 400 {
                tries += 1;
                let version = store
                    .load(tenant, s.aggregate(order), 1)
                    .await
                    .unwrap()
                    .events
                    .len() as u32;
                match store.append(s.append(tenant, order, version, 1)).await {
                    Ok(Appended::Committed { .. }) => won += 1,
                    Err(StoreError::VersionConflict { .. }) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            won
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let events = fx
        .store
        .load(tenant, s.aggregate(order), 1)
        .await
        .unwrap()
        .events;
    assert_eq!(
        events.len() as u32,
        total,
        "every win is stored, nothing else"
    );
    let versions: Vec<u32> = events.iter().map(|e| e.version).collect();
    assert_eq!(
        versions,
        (1..=total).collect::<Vec<_>>(),
        "each version once, in order"
    );
    let seqs: Vec<u64> = fx
        .store
        .read_feed(tenant, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=u64::from(total)).collect::<Vec<_>>());
}

pub async fn concurrent_appends_across_streams_keep_seq_gap_free(fx: StoreFixture, s: Streams) {
    let tenant = household();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = fx.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..10 {
                let write = s.append(tenant, s.id(), 0, 2);
                if let Decision::Events { events, .. } = &write.decision {
                    ids.extend(events.iter().map(|e| e.id));
                }
                assert!(matches!(
                    store.append(write).await.unwrap(),
                    Appended::Committed { .. }
                ));
            }
            ids
        }));
    }
    let mut written = HashSet::new();
    for t in tasks {
        written.extend(t.await.unwrap());
    }
    let feed = fx.store.read_feed(tenant, 0, 10_000).await.unwrap();
    assert_eq!(
        feed.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=160).collect::<Vec<u64>>()
    );
    let read: HashSet<_> = feed.iter().map(|e| e.id).collect();
    assert_eq!(read, written, "every event once");
    // One command's events are contiguous in seq.
    for pair in feed.chunks(2) {
        assert_eq!(pair[0].metadata.command_id, pair[1].metadata.command_id);
    }
}

pub async fn concurrent_repeats_of_one_command_append_once(fx: StoreFixture, s: Streams) {
    let tenant = household();
    let write = s.append(tenant, s.id(), 0, 1);
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let store = fx.store.clone();
        let write = write.clone();
        tasks.push(tokio::spawn(async move { store.append(write).await }));
    }
    let mut committed = 0;
    let mut outcomes = HashSet::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(Appended::Committed { outcome, .. }) => {
                committed += 1;
                outcomes.insert(format!("{outcome:?}"));
            }
            Ok(Appended::Duplicate(outcome)) => {
                outcomes.insert(format!("{outcome:?}"));
            }
            // A racing repeat may also lose on the version check; it wrote nothing.
            Err(StoreError::VersionConflict { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(committed, 1);
    assert_eq!(
        outcomes.len(),
        1,
        "every answer is the one outcome: {outcomes:?}"
    );
    assert_eq!(fx.store.head(tenant).await.unwrap(), 1);
}

pub async fn feed_rings_after_commit(fx: StoreFixture, s: Streams) {
    let tenant = household();
    // The contract promises signals for commits after subscribe() returned (a fixture
    // whose feed listens on a connection hands it over listening).
    let mut signals = fx.feed.subscribe();
    fx.store
        .append(s.append(tenant, s.id(), 0, 3))
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(signal) = signals.next().await {
            match signal {
                FeedSignal::Committed { tenant: t, seq } if t == tenant => return Some(seq),
                FeedSignal::Resync => {
                    let head = fx.store.head(tenant).await.unwrap();
                    if head >= 3 {
                        return Some(head);
                    }
                }
                _ => {}
            }
        }
        None
    })
    .await
    .expect("a signal within 10 s");
    assert_eq!(
        seen,
        Some(3),
        "the signal carries the household and its new head"
    );
}

/// Every domain's streams in one store: a chore and an order with the same uuid are two
/// streams (versions, conflicts, snapshots and jobs of their own), read back exactly.
pub async fn streams_of_two_domains_with_one_id_never_meet(fx: StoreFixture, _: Streams) {
    use crate::fixtures::chore_append;
    use hearth_core::chore::ChoreId;
    use hearth_core::{AggregateId, DomainId};
    let tenant = household();
    let id = Uuid::now_v7();
    let (order, chore) = (OrderId(id), ChoreId(id));
    fx.store.append(append(tenant, order, 0, 2)).await.unwrap();
    // The chore's stream starts at version 0 whatever the order's holds.
    let Appended::Committed { events, .. } = fx
        .store
        .append(chore_append(tenant, chore, 0, 2))
        .await
        .unwrap()
    else {
        panic!("expected a commit");
    };
    assert_eq!(
        events
            .iter()
            .map(|e| (e.seq, e.version))
            .collect::<Vec<_>>(),
        vec![(3, 1), (4, 2)]
    );
    // A stale version of the chore conflicts on the chore, naming it.
    let err = fx
        .store
        .append(chore_append(tenant, chore, 1, 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::VersionConflict { aggregate, expected: 1 }
            if aggregate == AggregateId::new(DomainId::Chore, id)),
        "{err:?}"
    );
    let orders = fx.store.load(tenant, order.into(), 1).await.unwrap().events;
    let chores = fx.store.load(tenant, chore.into(), 1).await.unwrap().events;
    assert_eq!(orders.len(), 2);
    assert!(orders.iter().all(|e| e.event.domain() == DomainId::Order));
    assert_eq!(chores, events, "a chore's events read back unchanged");
    assert_eq!(
        fx.store.read_feed(tenant, 2, 10).await.unwrap(),
        events,
        "and through the feed"
    );
    // Snapshots of one domain are not the other's.
    fx.store
        .save_snapshot(Snapshot {
            tenant,
            aggregate: chore.into(),
            version: 2,
            schema_version: 1,
            state: serde_json::json!({"chore": true}),
        })
        .await
        .unwrap();
    assert!(
        fx.store
            .load(tenant, order.into(), 1)
            .await
            .unwrap()
            .snapshot
            .is_none()
    );
    let loaded = fx.store.load(tenant, chore.into(), 1).await.unwrap();
    assert_eq!(loaded.snapshot.map(|s| s.version), Some(2));
    assert!(loaded.events.is_empty());
    // The chore's job names its domain.
    let jobs: Vec<_> = fx
        .outbox
        .pending_jobs(10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.tenant == tenant)
        .collect();
    let aggregates: Vec<_> = jobs.iter().map(|j| j.aggregate).collect();
    assert!(aggregates.contains(&AggregateId::new(DomainId::Order, id)));
    assert!(aggregates.contains(&AggregateId::new(DomainId::Chore, id)));
}
