//! Hearth's whole command path on PostgreSQL, as `hearth serve` composes it minus the
//! WebSocket: `Service` (the order decider, the state cache, the catalog read) over
//! `PgEventStore` as the non-owner application role, so each command's append runs
//! under row-level security for its household, records the command id and outcome
//! (idempotency), takes the household's next gap-free seq, writes the outbox job its
//! event asks for (OrderPlaced starts fulfilment, OrderCancelled wakes it), is
//! group-committed, and rings the doorbell after commit.

use crate::{Client, Driver, order};
use anyhow::{Context as _, bail};
use hearth_core::order::{CancelOrder, PlaceOrder, RequestedLine};
use hearth_core::ports::Role;
use hearth_core::service::ServiceConfig;
use hearth_core::{
    Actor, Command, CommandEnvelope, CommandId, Dispatched, HouseholdId, MemberId, OrderId, Service,
};
use std::sync::Arc;
use uuid::Uuid;

pub struct Hearth {
    service: Service,
    store: Arc<hearth_postgres::PgEventStore>,
}

impl Hearth {
    /// Migrates as the owner (as `hearth migrate` does), then opens the store as the
    /// application role with `pool` connections, checking the role as `serve` does.
    pub async fn start(owner_url: &str, app_url: &str, pool: usize) -> anyhow::Result<Self> {
        let owner = hearth_postgres::connect(&hearth_postgres::parse_url(owner_url)?).await?;
        hearth_postgres::migrate(&owner).await?;
        // PEER_HEARTH_SQL=file runs that SQL as the owner after migrating (an
        // experiment on the schema, e.g. another hearth_append; not what `serve` runs).
        if let Ok(path) = std::env::var("PEER_HEARTH_SQL") {
            let sql = std::fs::read_to_string(&path).context("PEER_HEARTH_SQL")?;
            owner.batch_execute(&sql).await.context("PEER_HEARTH_SQL")?;
        }
        drop(owner);
        let app_config = hearth_postgres::parse_url(app_url)?;
        let check = hearth_postgres::connect(&app_config).await?;
        hearth_postgres::check_role(&check)
            .await
            .context("checking the application role")?;
        hearth_postgres::check_schema(&check).await?;
        drop(check);
        // The default batching, as `serve` has it; PEER_HEARTH_BATCHERS tries another
        // number of batchers (an experiment, not what `serve` runs).
        let mut batching = hearth_postgres::Batching::default();
        if let Ok(batchers) = std::env::var("PEER_HEARTH_BATCHERS") {
            batching.batchers = batchers.parse().context("PEER_HEARTH_BATCHERS")?;
        }
        if let Ok(ms) = std::env::var("PEER_HEARTH_DOORBELL_MS") {
            let ms = ms.parse().context("PEER_HEARTH_DOORBELL_MS")?;
            batching.doorbell_pace = std::time::Duration::from_millis(ms);
        }
        let store = Arc::new(hearth_postgres::PgEventStore::with_batching(
            hearth_postgres::pool(app_config, pool)?,
            batching,
        ));
        // As `serve` configures it (its default preparation time of 10 minutes); the
        // catalog is the default one in memory, as `serve` has without a provider.
        let config = ServiceConfig {
            prep_time: chrono::Duration::seconds(order::PREP_TIME_SECS),
            ..ServiceConfig::default()
        };
        let service =
            Service::with_config(store.clone(), Arc::new(hearth_memory::SystemClock), config)
                .with_catalog(Arc::new(hearth_memory::MemoryInventory::default()));
        Ok(Self { service, store })
    }

    async fn dispatch(&self, client: Client, command: Command) -> anyhow::Result<()> {
        let mut envelope = CommandEnvelope::new(
            CommandId(Uuid::now_v7()),
            HouseholdId(client.household),
            Actor::Member {
                id: MemberId(client.member),
            },
            command,
        );
        // The role the edge reads from the directory for a member's socket.
        envelope.metadata.role = Some(Role::Member);
        match self.service.dispatch(envelope).await? {
            Dispatched::Accepted { .. } => Ok(()),
            other => bail!("hearth did not accept the command: {other:?}"),
        }
    }
}

#[async_trait::async_trait]
impl Driver for Hearth {
    async fn place(&self, client: Client, order: Uuid) -> anyhow::Result<()> {
        let lines = order::workload_lines()
            .into_iter()
            .map(|l| RequestedLine::shown(l.sku, l.quantity, l.unit_price_cents))
            .collect();
        let place = PlaceOrder {
            order_id: OrderId(order),
            lines,
            ready_at: None,
            note: None,
        };
        self.dispatch(client, Command::PlaceOrder(place)).await
    }

    async fn cancel(&self, client: Client, order: Uuid) -> anyhow::Result<()> {
        let cancel = CancelOrder {
            order_id: OrderId(order),
            reason: Some("plans changed".to_owned()),
        };
        self.dispatch(client, Command::CancelOrder(cancel)).await
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let stats = self.store.batch_stats();
        vec![
            ("batches", stats.batches),
            ("batched", stats.appends),
            ("reruns", stats.reruns),
        ]
    }
}
