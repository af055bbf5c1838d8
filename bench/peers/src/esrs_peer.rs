//! prima's event_sourcing.rs (`esrs`, feature `postgres`): an Order aggregate in a
//! `PgStore` (its table `order_events`, made by the builder's migrations), driven by an
//! `AggregateManager` as the crate's README shows: a new order is handled on a fresh
//! `AggregateState`, a cancel on the state `load` folds from the order's events. The
//! insert's unique (aggregate_id, sequence_number) refuses a concurrent writer. No
//! event handlers or buses: the bench compares the write path.

use crate::order::{self, Cancelled, Placed, Refusal, RequestedLine, Status};
use crate::{Client, Driver};
use anyhow::Context as _;
use esrs::manager::AggregateManager;
use esrs::store::postgres::{PgStore, PgStoreBuilder};
use esrs::{Aggregate, AggregateState};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub struct Order;

pub enum OrderCommand {
    PlaceOrder {
        order_id: Uuid,
        household_id: Uuid,
        member: Uuid,
        lines: Vec<RequestedLine>,
    },
    CancelOrder {
        order_id: Uuid,
        member: Uuid,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum OrderEvent {
    OrderPlaced(Placed),
    OrderCancelled(Cancelled),
}

impl Aggregate for Order {
    const NAME: &'static str = "order";
    type State = Status;
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = Refusal;

    fn handle_command(state: &Status, command: OrderCommand) -> Result<Vec<OrderEvent>, Refusal> {
        Ok(vec![match command {
            OrderCommand::PlaceOrder {
                order_id,
                household_id,
                member,
                lines,
            } => OrderEvent::OrderPlaced(order::place(
                *state,
                order_id,
                household_id,
                member,
                &lines,
                chrono::Utc::now(),
            )?),
            OrderCommand::CancelOrder { order_id, member } => {
                OrderEvent::OrderCancelled(order::cancel(*state, order_id, member)?)
            }
        }])
    }

    fn apply_event(_state: Status, event: OrderEvent) -> Status {
        match event {
            OrderEvent::OrderPlaced(_) => Status::Placed,
            OrderEvent::OrderCancelled(_) => Status::Cancelled,
        }
    }
}

pub struct Esrs {
    manager: AggregateManager<PgStore<Order>>,
}

impl Esrs {
    pub async fn start(url: &str, pool: usize) -> anyhow::Result<Self> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(u32::try_from(pool)?)
            .connect(url)
            .await?;
        let store: PgStore<Order> = PgStoreBuilder::new(pool).try_build().await?;
        Ok(Self {
            manager: AggregateManager::new(store),
        })
    }
}

#[async_trait::async_trait]
impl Driver for Esrs {
    async fn place(&self, client: Client, order: Uuid) -> anyhow::Result<()> {
        let command = OrderCommand::PlaceOrder {
            order_id: order,
            household_id: client.household,
            member: client.member,
            lines: order::workload_lines(),
        };
        self.manager
            .handle_command(AggregateState::with_id(order), command)
            .await??;
        Ok(())
    }

    async fn cancel(&self, client: Client, order: Uuid) -> anyhow::Result<()> {
        let state = self
            .manager
            .load(order)
            .await?
            .with_context(|| format!("esrs has no order {order}"))?;
        let command = OrderCommand::CancelOrder {
            order_id: order,
            member: client.member,
        };
        self.manager.handle_command(state, command).await??;
        Ok(())
    }
}
