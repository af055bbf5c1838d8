//! cqrs-es with postgres-es: an Order aggregate, `postgres_cqrs` over a sqlx pool, as
//! the crate's README and book show. Each `execute` loads the aggregate's events
//! (`SELECT .. WHERE aggregate_type = $1 AND aggregate_id = $2`), calls `handle`, and
//! inserts the new events in a transaction; the primary key (type, id, sequence)
//! refuses a concurrent writer. The events table is the crate's `db/init.sql`
//! (bench/peers.sh creates it). No query processors: the bench compares the write
//! path, and a view would be a second write of the peer's choosing.

use crate::order::{self, Cancelled, Placed, Refusal, RequestedLine, Status};
use crate::{Client, Driver};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use postgres_es::{PostgresCqrs, postgres_cqrs};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Order {
    status: Status,
}

#[derive(Debug, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrderEvent {
    OrderPlaced(Placed),
    OrderCancelled(Cancelled),
}

impl DomainEvent for OrderEvent {
    fn event_type(&self) -> String {
        match self {
            OrderEvent::OrderPlaced(_) => "OrderPlaced",
            OrderEvent::OrderCancelled(_) => "OrderCancelled",
        }
        .to_owned()
    }
    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl Aggregate for Order {
    const TYPE: &'static str = "order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = Refusal;
    type Services = ();

    async fn handle(
        &mut self,
        command: OrderCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), Refusal> {
        let event = match command {
            OrderCommand::PlaceOrder {
                order_id,
                household_id,
                member,
                lines,
            } => OrderEvent::OrderPlaced(order::place(
                self.status,
                order_id,
                household_id,
                member,
                &lines,
                chrono::Utc::now(),
            )?),
            OrderCommand::CancelOrder { order_id, member } => {
                OrderEvent::OrderCancelled(order::cancel(self.status, order_id, member)?)
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: OrderEvent) {
        self.status = match event {
            OrderEvent::OrderPlaced(_) => Status::Placed,
            OrderEvent::OrderCancelled(_) => Status::Cancelled,
        };
    }
}

pub struct CqrsEs {
    cqrs: PostgresCqrs<Order>,
}

impl CqrsEs {
    pub async fn start(url: &str, pool: usize) -> anyhow::Result<Self> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(u32::try_from(pool)?)
            .connect(url)
            .await?;
        Ok(Self {
            cqrs: postgres_cqrs(pool, vec![], ()),
        })
    }

    async fn execute(
        &self,
        client: Client,
        order: Uuid,
        command: OrderCommand,
    ) -> anyhow::Result<()> {
        // The metadata the book suggests recording with each event: who, and the request.
        let metadata = HashMap::from([
            ("household".to_owned(), client.household.to_string()),
            ("member".to_owned(), client.member.to_string()),
            ("command_id".to_owned(), Uuid::now_v7().to_string()),
        ]);
        self.cqrs
            .execute_with_metadata(&order.to_string(), command, metadata)
            .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Driver for CqrsEs {
    async fn place(&self, client: Client, order: Uuid) -> anyhow::Result<()> {
        let command = OrderCommand::PlaceOrder {
            order_id: order,
            household_id: client.household,
            member: client.member,
            lines: order::workload_lines(),
        };
        self.execute(client, order, command).await
    }

    async fn cancel(&self, client: Client, order: Uuid) -> anyhow::Result<()> {
        let command = OrderCommand::CancelOrder {
            order_id: order,
            member: client.member,
        };
        self.execute(client, order, command).await
    }
}
