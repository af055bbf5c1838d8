//! The port contract suites against the in-memory adapters.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use async_trait::async_trait;
use hearth_contract::StoreFixture;
use hearth_contract::scheduler::{SchedulerFixture, SchedulerProbe};
use hearth_core::ports::{Catalog, Inventory, Job, Payments};
use hearth_memory::{MemoryEventStore, MemoryInventory, MemoryJobScheduler, MemoryPayments};
use std::sync::Arc;

async fn store() -> StoreFixture {
    let store = Arc::new(MemoryEventStore::new());
    let feed = Arc::new(store.feed());
    StoreFixture {
        outbox: store.clone(),
        store,
        feed,
    }
}

mod event_store {
    use super::*;
    hearth_contract::event_store_contract!(store);
}

mod payments {
    use super::*;
    hearth_contract::payments_contract!(|| async {
        Arc::new(MemoryPayments::new()) as Arc<dyn Payments>
    });
}

fn stocked() -> hearth_contract::providers::Stocked {
    let inventory = Arc::new(MemoryInventory::default());
    hearth_contract::providers::Stocked {
        inventory: inventory.clone() as Arc<dyn Inventory>,
        catalog: inventory as Arc<dyn Catalog>,
    }
}

mod inventory {
    use super::*;
    hearth_contract::inventory_contract!(|| async { stocked() });
}

mod catalog {
    use super::*;
    hearth_contract::catalog_contract!(|| async { stocked() });
}

struct QueueProbe(Arc<MemoryJobScheduler>);

#[async_trait]
impl SchedulerProbe for QueueProbe {
    async fn runs(&self, job: &Job) -> usize {
        self.0.queued(job.id)
    }
}

mod scheduler {
    use super::*;
    hearth_contract::scheduler_contract!(|| async {
        let scheduler = Arc::new(MemoryJobScheduler::new());
        SchedulerFixture {
            scheduler: scheduler.clone(),
            probe: Arc::new(QueueProbe(scheduler)),
        }
    });
}

mod directory {
    use super::*;
    hearth_contract::directory_contract!(|| async {
        Arc::new(hearth_memory::MemoryDirectory::new()) as Arc<dyn hearth_core::ports::Directory>
    });
}
