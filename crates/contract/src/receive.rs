//! External events received through `Service::receive` (provider webhooks), against a
//! store: each is recorded with its outcome in the household's log of command
//! outcomes, so a repeat gets the same answer and reacts at most once, per household.
//! Part of [`crate::event_store_contract!`].

use crate::fixtures::{household, now, order_id, place};
use hearth_core::contracts::{ExternalEvent, ExternalKind};
use hearth_core::order::{Command, RecordStockReserved};
use hearth_core::ports::{Catalog, CatalogItem, Clock, EventStore, ProviderError};
use hearth_core::{Actor, CommandEnvelope, CommandOutcome, Received, Service, Timestamp};
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug)]
struct Now;

impl Clock for Now {
    fn now(&self) -> Timestamp {
        now()
    }
}

/// The two items [`place`] orders, for the service to price the order from (the
/// subject here is the store, not the catalog; the catalog has its own contract).
#[derive(Debug)]
struct Shop;

#[async_trait::async_trait]
impl Catalog for Shop {
    async fn items(&self) -> Result<Vec<CatalogItem>, ProviderError> {
        let item = |sku: &str, name: &str, unit_price_cents| CatalogItem {
            sku: sku.into(),
            name: name.into(),
            unit_price_cents,
            available: 100,
        };
        Ok(vec![
            item("bread", "Sourdough loaf", 450),
            item("milk", "Milk 1 L", 129),
        ])
    }
}

pub async fn external_events_are_received_once_per_household(
    fx: crate::StoreFixture,
    _: crate::event_store::Streams,
) {
    let store: Arc<dyn EventStore> = fx.store.clone();
    let service = Service::new(store.clone(), Arc::new(Now)).with_catalog(Arc::new(Shop));
    let (tenant, other) = (household(), household());
    let order = order_id();
    let send = |command: Command| {
        CommandEnvelope::new(
            crate::fixtures::command_id(),
            tenant,
            Actor::Process,
            command,
        )
    };
    let external = |id: u128, tenant, kind| ExternalEvent {
        id: Uuid::from_u128(id),
        tenant,
        kind,
    };
    let lost = |id| {
        external(
            id,
            tenant,
            ExternalKind::StockLost {
                order_id: order,
                sku: "bread".into(),
            },
        )
    };
    // An order that does not exist: recorded as such, and the same answer again.
    let unknown = service.receive(lost(1)).await.unwrap();
    assert!(
        matches!(&unknown.outcome, CommandOutcome::Rejected { code, .. } if code == "order_not_found"),
        "{unknown:?}"
    );
    assert!(!unknown.duplicate);
    // The order appears, the event comes again: still the first answer.
    service.dispatch(send(place(order))).await.unwrap();
    let again = service.receive(lost(1)).await.unwrap();
    assert_eq!(
        again,
        Received {
            outcome: unknown.outcome.clone(),
            duplicate: true
        }
    );
    // Nothing to react to yet (no stock reserved): recorded as no reaction.
    let early = service.receive(lost(2)).await.unwrap();
    assert!(
        matches!(&early.outcome, CommandOutcome::Rejected { code, .. } if code == "no_reaction"),
        "{early:?}"
    );
    service
        .dispatch(send(Command::RecordStockReserved(RecordStockReserved {
            order_id: order,
            reservation_id: "res".into(),
        })))
        .await
        .unwrap();
    assert_eq!(
        service.receive(lost(2)).await.unwrap().outcome,
        early.outcome
    );
    // Now it reacts, once.
    let reacted = service.receive(lost(3)).await.unwrap();
    assert!(
        matches!(reacted.outcome, CommandOutcome::Accepted { events: 1, .. }),
        "{reacted:?}"
    );
    let head = store.head(tenant).await.unwrap();
    let repeat = service.receive(lost(3)).await.unwrap();
    assert_eq!((repeat.outcome, repeat.duplicate), (reacted.outcome, true));
    assert_eq!(store.head(tenant).await.unwrap(), head, "one reaction");
    // The same provider event id in another household is that household's own.
    let elsewhere = service
        .receive(external(
            3,
            other,
            ExternalKind::StockLost {
                order_id: order,
                sku: "bread".into(),
            },
        ))
        .await
        .unwrap();
    assert!(
        matches!(&elsewhere.outcome, CommandOutcome::Rejected { code, .. } if code == "order_not_found"),
        "{elsewhere:?}"
    );
    assert!(!elsewhere.duplicate);
    assert_eq!(store.head(other).await.unwrap(), 0);
}
