//! disintegrate with disintegrate-postgres: events with the order id as their domain
//! id, a state query per order, one `Decision` per command, made by the PostgreSQL
//! `DecisionMaker` over `PgEventStore` with JSON payloads and no snapshots, as the
//! crate's README shows (`PgEventStore::try_new` creates its schema). Each `make`
//! streams the order's events, decides, and appends in a SERIALIZABLE transaction that
//! first checks no event of the query came after the state it decided on; a decision
//! refused as conflicting, or on a stale read, is made again and counted (see
//! `Disintegrate::make`).

use crate::order::{self, OrderLine, Refusal, Status};
use crate::{Client, Driver};
use chrono::{DateTime, Utc};
use disintegrate::serde::json::Json;
use disintegrate::{Decision, DecisionError, Event, NoSnapshot, StateMutate, StateQuery};
use disintegrate_postgres::{PgDecisionMaker, PgEventStore};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Event, Serialize, Deserialize)]
#[stream(OrderEvent, [OrderPlaced, OrderCancelled])]
pub enum DomainEvent {
    OrderPlaced {
        #[id]
        order_id: Uuid,
        household_id: Uuid,
        lines: Vec<OrderLine>,
        total_cents: u64,
        ready_at: DateTime<Utc>,
        placed_by: Uuid,
    },
    OrderCancelled {
        #[id]
        order_id: Uuid,
        by: Uuid,
        reason: Option<String>,
    },
}

#[derive(Default, StateQuery, Clone, Serialize, Deserialize)]
#[state_query(OrderEvent)]
pub struct OrderState {
    #[id]
    order_id: Uuid,
    status: Status,
}

impl OrderState {
    fn new(order_id: Uuid) -> Self {
        Self {
            order_id,
            status: Status::None,
        }
    }
}

impl StateMutate for OrderState {
    fn mutate(&mut self, event: Self::Event) {
        self.status = match event {
            OrderEvent::OrderPlaced { .. } => Status::Placed,
            OrderEvent::OrderCancelled { .. } => Status::Cancelled,
        };
    }
}

pub struct PlaceOrder {
    order_id: Uuid,
    client: Client,
    lines: Vec<order::RequestedLine>,
}

impl Decision for PlaceOrder {
    type Event = DomainEvent;
    type StateQuery = OrderState;
    type Error = Refusal;

    fn state_query(&self) -> OrderState {
        OrderState::new(self.order_id)
    }

    fn process(&self, state: &OrderState) -> Result<Vec<DomainEvent>, Refusal> {
        let placed = order::place(
            state.status,
            self.order_id,
            self.client.household,
            self.client.member,
            &self.lines,
            Utc::now(),
        )?;
        Ok(vec![DomainEvent::OrderPlaced {
            order_id: placed.order_id,
            household_id: placed.household_id,
            lines: placed.lines,
            total_cents: placed.total_cents,
            ready_at: placed.ready_at,
            placed_by: placed.placed_by,
        }])
    }
}

pub struct CancelOrder {
    order_id: Uuid,
    by: Uuid,
}

impl Decision for CancelOrder {
    type Event = DomainEvent;
    type StateQuery = OrderState;
    type Error = Refusal;

    fn state_query(&self) -> OrderState {
        OrderState::new(self.order_id)
    }

    fn process(&self, state: &OrderState) -> Result<Vec<DomainEvent>, Refusal> {
        let cancelled = order::cancel(state.status, self.order_id, self.by)?;
        Ok(vec![DomainEvent::OrderCancelled {
            order_id: cancelled.order_id,
            by: cancelled.by,
            reason: cancelled.reason,
        }])
    }
}

pub struct Disintegrate {
    decisions: PgDecisionMaker<DomainEvent, Json<DomainEvent>, NoSnapshot>,
    conflicts: AtomicU64,
    stale: AtomicU64,
}

/// Most decisions made for one command after conflicts: a bound that only keeps a run
/// from spinning for ever. It was Hearth's `ServiceConfig::max_attempts` (16), but at
/// 8 and 32 clients a cancel was refused 16 times in a row by serializable isolation
/// (40001) and ended the run; the crate's docs try again until it goes through, and the
/// decisions made again are counted in its CPU per command anyway.
const MAX_ATTEMPTS: u32 = 1_000;
/// Most decisions made again for one command after stale reads: a bound that only
/// keeps a run from spinning for ever (the bench does not record the most one needed).
const MAX_STALE: u32 = 1_000;

/// Whether the store refused the decision as made on stale state: a conflicting event
/// was found, or PostgreSQL's serializable isolation refused the transaction (40001),
/// which it also does between decisions on different orders whose reads and writes it
/// cannot tell apart. The crate's docs resolve a conflict by trying the decision again.
fn is_conflict(error: &DecisionError<Refusal>) -> bool {
    let DecisionError::StateStore(error) = error else {
        return false;
    };
    match error.downcast_ref::<disintegrate_postgres::Error>() {
        Some(disintegrate_postgres::Error::Concurrency) => true,
        Some(disintegrate_postgres::Error::Database(sqlx::Error::Database(db))) => {
            db.code().as_deref() == Some("40001")
        }
        _ => false,
    }
}

impl Disintegrate {
    pub async fn start(url: &str, pool: usize) -> anyhow::Result<Self> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(u32::try_from(pool)?)
            .connect(url)
            .await?;
        let serde = Json::<DomainEvent>::default();
        let version: String = sqlx::query_scalar("SHOW server_version_num")
            .fetch_one(&pool)
            .await?;
        let store = if version.parse::<u32>()? >= 160_000 {
            PgEventStore::try_new(pool, serde).await?
        } else {
            schema_before_pg16(&pool, serde.clone()).await?;
            PgEventStore::new_uninitialized(pool, serde)
        };
        Ok(Self {
            decisions: disintegrate_postgres::decision_maker(store, NoSnapshot),
            conflicts: AtomicU64::new(0),
            stale: AtomicU64::new(0),
        })
    }

    /// Makes the decision, again after a conflict or a stale read (both counted).
    ///
    /// A stale read: disintegrate-postgres 4.0.1 streams only the events up to its
    /// epoch, the event sequence's value when the oldest append still in flight began,
    /// so that a reader never skips an event committed later with a lower id. An order this client
    /// placed a moment ago is therefore not seen while another client's append that
    /// began before it commits, and its cancel is refused as `NotFound`. Every order
    /// of the workload was placed (the place was acknowledged), so that refusal is
    /// decided again rather than ending the run.
    async fn make<D>(&self, decision: impl Fn() -> D) -> anyhow::Result<()>
    where
        D: Decision<Event = DomainEvent, StateQuery = OrderState, Error = Refusal>,
    {
        let (mut conflicts, mut stale) = (0, 0);
        loop {
            match self.decisions.make(decision()).await {
                Ok(_) => return Ok(()),
                Err(e) if is_conflict(&e) && conflicts + 1 < MAX_ATTEMPTS => {
                    conflicts += 1;
                    self.conflicts.fetch_add(1, Ordering::Relaxed);
                }
                Err(DecisionError::Domain(Refusal::NotFound(_))) if stale < MAX_STALE => {
                    stale += 1;
                    self.stale.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// disintegrate-postgres 4.0.1's migrator creates `event_store_begin_epoch()` with the
/// integer literal `0xFFFFFFFF`, which PostgreSQL reads only from version 16 on; on
/// 15 that statement fails, after the sequence, the table, its index and
/// `event_store_current_epoch()` were made. This makes what the migrator does from
/// there on: the same function with the literal written as 4294967295 (the same
/// number, so the same locks), then the column and partial index of the events' one
/// domain id (`order_id`). Nothing else of the crate is changed.
async fn schema_before_pg16(pool: &sqlx::PgPool, serde: Json<DomainEvent>) -> anyhow::Result<()> {
    match PgEventStore::try_new(pool.clone(), serde).await {
        Ok(_) => return Ok(()),
        Err(e) if e.to_string().contains("0xFFFFFFFF") => {}
        Err(e) => return Err(e.into()),
    }
    for statement in [
        r#"CREATE OR REPLACE FUNCTION event_store_begin_epoch()
RETURNS void AS $$
DECLARE
    id BIGINT;
    db_id INT;
BEGIN
    SELECT last_value INTO id FROM seq_event_event_id;
    SELECT oid INTO db_id FROM pg_database WHERE datname = current_database();
    PERFORM pg_try_advisory_xact_lock_shared(db_id, 0);
    PERFORM pg_try_advisory_xact_lock_shared(1, (id & 4294967295)::bit(32)::integer);
    PERFORM pg_try_advisory_xact_lock_shared(2, (id >> 32)::bit(32)::integer);
END;
$$ LANGUAGE plpgsql"#,
        "ALTER TABLE event ADD COLUMN IF NOT EXISTS order_id UUID",
        "CREATE INDEX IF NOT EXISTS idx_event_order_id ON event (order_id) WHERE order_id IS NOT NULL",
    ] {
        sqlx::query(statement).execute(pool).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl Driver for Disintegrate {
    async fn place(&self, client: Client, order: Uuid) -> anyhow::Result<()> {
        self.make(|| PlaceOrder {
            order_id: order,
            client,
            lines: order::workload_lines(),
        })
        .await
    }

    async fn cancel(&self, client: Client, order: Uuid) -> anyhow::Result<()> {
        self.make(|| CancelOrder {
            order_id: order,
            by: client.member,
        })
        .await
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("conflicts", self.conflicts.load(Ordering::Relaxed)),
            ("stale", self.stale.load(Ordering::Relaxed)),
        ]
    }
}
