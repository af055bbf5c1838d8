//! The port contract suites against the SQLite adapters, a fresh file per case.

use crate::fresh_file;
use hearth_contract::StoreFixture;
use hearth_core::ports::Directory;
use hearth_sqlite::{Sharing, SqliteDirectory, SqliteEventStore};
use std::sync::Arc;

async fn store() -> StoreFixture {
    let (store, feed) = SqliteEventStore::open(fresh_file()).unwrap();
    StoreFixture {
        outbox: store.clone(),
        store,
        feed: Arc::new(feed),
    }
}

/// Opened for this process alone (`unix-excl`: the WAL index in memory), as `hearth
/// serve` on the embedded executor opens it.
async fn exclusive_store() -> StoreFixture {
    let (store, feed) = SqliteEventStore::open_with(fresh_file(), Sharing::Exclusive).unwrap();
    StoreFixture {
        outbox: store.clone(),
        store,
        feed: Arc::new(feed),
    }
}

async fn directory() -> Arc<dyn Directory> {
    Arc::new(SqliteDirectory::open(fresh_file()).unwrap())
}

/// The directory sharing the event store's connections.
async fn shared_directory() -> Arc<dyn Directory> {
    let (store, _feed) = SqliteEventStore::open(fresh_file()).unwrap();
    Arc::new(store.directory())
}

mod event_store {
    use super::*;
    hearth_contract::event_store_contract!(store);
}

mod exclusive_event_store {
    use super::*;
    hearth_contract::event_store_contract!(exclusive_store);
}

mod directory {
    use super::*;
    hearth_contract::directory_contract!(directory);
}

mod shared_directory {
    use super::*;
    hearth_contract::directory_contract!(shared_directory);
}
