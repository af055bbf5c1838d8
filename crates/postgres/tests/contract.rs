//! The port contract suites against PostgreSQL, connected as the application role
//! (the relay role for pending jobs and the feed).

mod common;

use hearth_contract::StoreFixture;
use hearth_core::ports::Directory;
use hearth_postgres::FeedOptions;
use std::sync::Arc;

async fn store() -> StoreFixture {
    let db = common::db().await;
    let feed = Arc::new(db.feed(FeedOptions::default()));
    // The contract expects signals for commits after subscribe(); make sure the
    // listener is up before the case starts.
    assert!(
        feed.wait_connected(1, std::time::Duration::from_secs(10))
            .await
    );
    StoreFixture {
        store: db.store(),
        outbox: db.outbox(),
        feed,
    }
}

mod event_store {
    use super::*;
    hearth_contract::event_store_contract!(store);
}

mod directory {
    use super::*;
    hearth_contract::directory_contract!(|| async {
        common::db().await.directory() as Arc<dyn Directory>
    });
}
