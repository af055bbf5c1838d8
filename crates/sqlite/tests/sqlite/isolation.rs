//! Two households in one file never mix. SQLite has no row-level security, so
//! these cases probe the places where only the adapter's `tenant_id` scoping keeps
//! households apart (the contract suite covers the rest).

use crate::fresh_file;
use chrono::{TimeDelta, Utc};
use hearth_contract::fixtures::{append, household, member, now, order_id};
use hearth_core::ports::Outbox;
use hearth_core::ports::{
    Appended, Decision, Directory, DirectoryError, EventStore, Household, Invite, Member, Role,
    Snapshot, StoreError,
};
use hearth_core::{EventEnvelope, HouseholdId};
use hearth_sqlite::SqliteEventStore;

fn committed(result: Appended) -> Vec<EventEnvelope> {
    match result {
        Appended::Committed { events, .. } => events,
        other => panic!("expected a commit, got {other:?}"),
    }
}

#[tokio::test]
async fn identical_ids_in_two_households_are_two_histories() {
    let (store, _feed) = SqliteEventStore::open(fresh_file()).unwrap();
    let (a, b) = (household(), household());
    let order = order_id();
    // The very same append (command id, event ids, order id) in both households.
    let write_a = append(a, order, 0, 2);
    let mut write_b = write_a.clone();
    write_b.command.tenant = b;
    let in_a = committed(store.append(write_a.clone()).await.unwrap());
    let in_b = committed(store.append(write_b.clone()).await.unwrap());
    assert!(in_a.iter().all(|e| e.tenant == a));
    assert!(in_b.iter().all(|e| e.tenant == b));
    assert_eq!(store.read_feed(a, 0, 100).await.unwrap(), in_a);
    assert_eq!(store.read_feed(b, 0, 100).await.unwrap(), in_b);
    assert_eq!(store.load(a, order.into(), 1).await.unwrap().events, in_a);
    assert_eq!(store.load(b, order.into(), 1).await.unwrap().events, in_b);

    // Each household's jobs are its own: starting B's leaves A's pending.
    let job = in_a[0].id;
    store.mark_job_started(b, job).await.unwrap();
    let pending = store.pending_jobs(10_000).await.unwrap();
    assert!(pending.iter().any(|j| j.tenant == a && j.id == job));
    assert!(!pending.iter().any(|j| j.tenant == b && j.id == job));
}

#[tokio::test]
async fn version_checks_and_snapshots_are_per_household() {
    let (store, _feed) = SqliteEventStore::open(fresh_file()).unwrap();
    let (a, b) = (household(), household());
    let order = order_id();
    store.append(append(a, order, 0, 3)).await.unwrap();
    // A's stream at version 3 does not make B's stream conflict or advance.
    let err = store.append(append(b, order, 3, 1)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::VersionConflict { expected: 3, .. }),
        "{err:?}"
    );
    // Nor may B snapshot past its own (empty) stream on the strength of A's.
    let snapshot = |tenant: HouseholdId, version| Snapshot {
        tenant,
        aggregate: order.into(),
        version,
        schema_version: 1,
        state: serde_json::json!({ "of": tenant.to_string() }),
    };
    let err = store.save_snapshot(snapshot(b, 2)).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    store.save_snapshot(snapshot(a, 2)).await.unwrap();
    assert!(
        store
            .load(b, order.into(), 1)
            .await
            .unwrap()
            .snapshot
            .is_none()
    );
    assert_eq!(
        store.load(a, order.into(), 1).await.unwrap().snapshot,
        Some(snapshot(a, 2))
    );
    assert_eq!(store.head(b).await.unwrap(), 0);
}

#[tokio::test]
async fn a_rejection_in_one_household_is_not_anothers() {
    let (store, _feed) = SqliteEventStore::open(fresh_file()).unwrap();
    let (a, b) = (household(), household());
    let mut rejected = append(a, order_id(), 0, 0);
    rejected.decision = Decision::Rejected {
        code: "nope".into(),
        message: "no".into(),
    };
    let id = rejected.command.id;
    store.append(rejected.clone()).await.unwrap();
    assert_eq!(store.outcome(b, id).await.unwrap(), None);
    let mut in_b = append(b, order_id(), 0, 1);
    in_b.command.id = id;
    assert_eq!(committed(store.append(in_b).await.unwrap()).len(), 1);
}

fn person(household: HouseholdId, role: Role) -> Member {
    Member {
        household,
        id: member(),
        name: "someone".into(),
        role,
        joined_at: now(),
    }
}

#[tokio::test]
async fn directory_keeps_households_apart_in_the_shared_file() {
    let (store, _feed) = SqliteEventStore::open(fresh_file()).unwrap();
    let directory = store.directory();
    let (a, b) = (household(), household());
    // The event store may see a household before the directory creates it.
    store.append(append(a, order_id(), 0, 1)).await.unwrap();
    assert_eq!(directory.household(a).await.unwrap(), None);
    let owner_a = person(a, Role::Owner);
    let owner_b = person(b, Role::Owner);
    for (id, owner) in [(a, &owner_a), (b, &owner_b)] {
        directory
            .create_household(
                Household {
                    id,
                    name: format!("house {id}"),
                    time_zone: "Europe/Berlin".into(),
                    created_at: now(),
                },
                owner.clone(),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        store.head(a).await.unwrap(),
        1,
        "the log survived the naming"
    );
    assert_eq!(
        directory.household(a).await.unwrap().map(|h| h.time_zone),
        Some("Europe/Berlin".into()),
        "the naming carries the time zone"
    );
    // The same invite code in both households: two invites.
    for (id, owner) in [(a, &owner_a), (b, &owner_b)] {
        directory
            .create_invite(Invite {
                household: id,
                code: "same-code".into(),
                created_by: owner.id,
                created_at: now(),
                expires_at: Utc::now() + TimeDelta::hours(1),
            })
            .await
            .unwrap();
    }
    let joiner = person(a, Role::Member);
    directory
        .accept_invite(a, "same-code", joiner.clone(), now())
        .await
        .unwrap();
    // B's invite is untouched by A's use of the same code.
    let other = person(b, Role::Member);
    directory
        .accept_invite(b, "same-code", other.clone(), now())
        .await
        .unwrap();
    assert_eq!(
        directory
            .accept_invite(a, "same-code", person(a, Role::Member), now())
            .await
            .unwrap_err(),
        DirectoryError::InviteUsed
    );
    assert_eq!(directory.member(b, joiner.id).await.unwrap(), None);
    assert_eq!(directory.member(a, other.id).await.unwrap(), None);
    assert_eq!(directory.members(a).await.unwrap().len(), 2);
    assert_eq!(directory.members(b).await.unwrap().len(), 2);
}

#[tokio::test]
async fn everything_survives_a_reopen() {
    let path = fresh_file();
    let tenant = household();
    let written = {
        let (store, _feed) = SqliteEventStore::open(&path).unwrap();
        committed(
            store
                .append(append(tenant, order_id(), 0, 3))
                .await
                .unwrap(),
        )
    };
    let (store, _feed) = SqliteEventStore::open(&path).unwrap();
    assert_eq!(store.read_feed(tenant, 0, 100).await.unwrap(), written);
    assert_eq!(store.head(tenant).await.unwrap(), 3);
}

/// A tidy check: every SQL statement in the adapter names `tenant_id`, except the
/// job relay's cross-household outbox scan. A new query that forgets the tenant
/// fails here.
#[test]
fn every_statement_is_scoped_by_tenant() {
    let sources = [
        include_str!("../../src/store.rs"),
        include_str!("../../src/directory.rs"),
        include_str!("../../src/writer.rs"),
    ];
    let allowed = ["FROM jobs WHERE started_at IS NULL ORDER BY job_no"];
    let mut statements = 0;
    for source in sources {
        for (i, _) in source.match_indices('"') {
            let rest = &source[i + 1..];
            let Some(end) = rest.find('"') else { continue };
            let literal = &rest[..end];
            let verb = literal.trim_start();
            if !["SELECT", "INSERT", "UPDATE", "DELETE"]
                .iter()
                .any(|v| verb.starts_with(v))
            {
                continue;
            }
            statements += 1;
            let normalized = literal.split_whitespace().collect::<Vec<_>>().join(" ");
            if allowed.iter().any(|a| normalized.contains(a)) {
                continue;
            }
            assert!(
                literal.contains("tenant_id"),
                "statement without tenant_id: {normalized}"
            );
        }
    }
    assert!(statements >= 15, "found the statements ({statements})");
}
