//! Forged doorbells: any database login may NOTIFY the feed's channel. Malformed
//! payloads are ignored (and counted), made-up households cost bounded state, and a
//! real household still gets its events after a flood of them.

#![allow(clippy::unwrap_used)]

mod common;

use futures::StreamExt;
use hearth_contract::fixtures::{append, household, order_id};
use hearth_core::ports::{Appended, EventFeed, EventStore, FeedSignal};
use hearth_postgres::FeedOptions;
use std::time::Duration;
use tokio::time::timeout;

const CAP: usize = 1_000;
const FORGED: i32 = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_doorbells_cost_bounded_state_and_real_households_still_get_their_events() {
    let db = common::db().await;
    let store = db.store();
    let feed = db.feed(FeedOptions {
        // No poll during the test: only doorbells move the feed's state.
        poll_interval: Duration::from_secs(3600),
        application_name: "hearth-feed-forged".into(),
        max_rung_households: CAP,
        ..FeedOptions::default()
    });
    let mut signals = feed.subscribe();
    assert!(feed.wait_connected(1, Duration::from_secs(10)).await);

    // The application role is enough to ring the doorbell.
    let app = db.connect(&db.app).await;
    let id = uuid::Uuid::now_v7();
    let malformed: Vec<String> = vec![
        "nonsense".into(),
        String::new(),
        ":".into(),
        "x:1".into(),
        format!("{id}"),
        format!("{id}:"),
        format!("{id}:-1"),
        format!("{id}:1:2"),
        format!("{id}:18446744073709551616"), // u64::MAX + 1
        format!(" {id}:1"),
        "a".repeat(7_000),
    ];
    app.execute(
        "SELECT pg_notify('hearth_feed', p) FROM unnest($1::text[]) p",
        &[&malformed],
    )
    .await
    .unwrap();
    // 20,000 made-up households, 20 times the cap.
    app.execute(
        "SELECT pg_notify('hearth_feed', gen_random_uuid()::text || ':' || g)
           FROM generate_series(1, $1) g",
        &[&FORGED],
    )
    .await
    .unwrap();

    // A real household commits after all of them; its doorbell comes last.
    let tenant = household();
    let Appended::Committed { events, .. } = store
        .append(append(tenant, order_id(), 0, 1))
        .await
        .unwrap()
    else {
        panic!("not committed");
    };
    let committed = events[0].id;
    // A reader that reads from its cursor on its household's signal (or a Resync,
    // which the feed sends if it had to drop doorbells) gets the event.
    let got = timeout(Duration::from_secs(30), async {
        while let Some(signal) = signals.next().await {
            let relevant = match signal {
                FeedSignal::Committed { tenant: t, .. } => t == tenant,
                FeedSignal::Resync => true,
            };
            if relevant {
                let page = store.read_feed(tenant, 0, 10).await.unwrap();
                if !page.is_empty() {
                    return page;
                }
            }
        }
        panic!("the feed ended");
    })
    .await
    .expect("the real household's event arrives after the flood");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, committed);

    // Everything sent has been through the feed (counted as a doorbell, malformed or
    // dropped); other tests' real doorbells on the shared database only add to it.
    let sent = malformed.len() as u64 + FORGED as u64 + 1;
    let through = |s: hearth_postgres::FeedStats| s.doorbells + s.malformed + s.overflowed;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while through(feed.stats()) < sent {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the feed did not take every notification: {:?}",
            feed.stats()
        );
        // A bounded poll: the notifications come from the PostgreSQL server.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = feed.stats();
    assert_eq!(stats.malformed, malformed.len() as u64, "{stats:?}");
    assert!(stats.doorbells >= 2 * CAP as u64, "past the cap: {stats:?}");
    assert_eq!(
        stats.rung_households, CAP,
        "made-up households are remembered up to the cap, not beyond: {stats:?}"
    );
    assert_eq!(feed.connects(), 1, "the flood did not break the listener");
}
