//! `hearth demo`: one household, two members, three orders, in memory.
//! It drives the pure fulfilment process step by step with the in-memory providers;
//! the real executors (Temporal, embedded) do the same with durability.

use anyhow::bail;
use chrono::TimeDelta;
use hearth_core::fulfilment::{Advanced, Fulfilment};
use hearth_core::order::{CancelOrder, Command, OrderLine, OrderRef, PlaceOrder};
use hearth_core::ports::{Clock, EventStore};
use hearth_core::process::{self, Step};
use hearth_core::{
    Actor, CommandEnvelope, CommandId, Dispatched, HouseholdId, HouseholdView, MemberId, OrderId,
    Service,
};
use hearth_memory::{ManualClock, MemoryEventStore, MemoryInventory, MemoryPayments};
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Print every event envelope as JSON, not just the final board.
    #[arg(long)]
    pub events: bool,
}

struct Demo {
    fulfilment: Fulfilment,
    clock: Arc<ManualClock>,
    payments: Arc<MemoryPayments>,
    household: HouseholdId,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let store = Arc::new(MemoryEventStore::new());
    let clock = Arc::new(ManualClock::starting_now());
    let payments = Arc::new(MemoryPayments::new());
    let service = Service::new(store.clone(), clock.clone());
    let demo = Demo {
        fulfilment: Fulfilment::new(
            service,
            payments.clone(),
            Arc::new(MemoryInventory::default()),
        ),
        clock,
        payments,
        household: HouseholdId(Uuid::now_v7()),
    };
    let (ana, ben) = (MemberId(Uuid::now_v7()), MemberId(Uuid::now_v7()));

    // Ana orders bread and milk for 18:30-ish (two hours from now).
    let breakfast = OrderId(Uuid::now_v7());
    let ready_at = demo.clock.now() + TimeDelta::hours(2);
    demo.member(
        ana,
        place(
            breakfast,
            vec![line("bread", 1, 450), line("milk", 2, 129)],
            Some(ready_at),
        ),
    )
    .await?;
    demo.fulfil(breakfast).await?;

    // Ben orders pizza, then cancels after it was paid: refund and release.
    let pizza = OrderId(Uuid::now_v7());
    demo.member(ben, place(pizza, vec![line("pizza", 2, 1150)], None))
        .await?;
    demo.fulfil_until(pizza, |s| matches!(s, Step::Confirm))
        .await?;
    demo.member(
        ben,
        Command::CancelOrder(CancelOrder {
            order_id: pizza,
            reason: Some("plans changed".into()),
        }),
    )
    .await?;
    demo.fulfil(pizza).await?;

    // Ana collects breakfast.
    demo.member(
        ana,
        Command::CompleteOrder(OrderRef {
            order_id: breakfast,
        }),
    )
    .await?;

    let events = store.read_feed(demo.household, 0, usize::MAX).await?;
    if args.events {
        for e in &events {
            println!("{}", serde_json::to_string(e)?);
        }
    }
    let view = HouseholdView::fold(&events)?;
    println!("{}", serde_json::to_string_pretty(&view)?);
    eprintln!(
        "household {}: {} events; captures at the provider: {}, refunds: {}",
        demo.household,
        view.seq,
        demo.payments.captures(),
        demo.payments.refunds()
    );
    Ok(())
}

fn line(sku: &str, quantity: u32, cents: u64) -> OrderLine {
    OrderLine {
        sku: sku.into(),
        name: sku.into(),
        quantity,
        unit_price_cents: cents,
    }
}

fn place(
    order_id: OrderId,
    lines: Vec<OrderLine>,
    ready_at: Option<hearth_core::Timestamp>,
) -> Command {
    Command::PlaceOrder(PlaceOrder {
        order_id,
        lines,
        ready_at,
        note: None,
    })
}

impl Demo {
    async fn member(&self, member: MemberId, command: Command) -> anyhow::Result<()> {
        let envelope = CommandEnvelope::new(
            CommandId(Uuid::now_v7()),
            self.household,
            Actor::Member { id: member },
            command,
        );
        let kind = envelope.command.type_name();
        match self.service().dispatch(envelope).await? {
            Dispatched::Accepted { seq, .. } => eprintln!("{kind}: accepted, visible at seq {seq}"),
            other => bail!("{kind}: {other:?}"),
        }
        Ok(())
    }

    /// Runs the process until it waits (then jumps the manual clock to ready-at, where a
    /// real executor sets a durable timer) or ends.
    async fn fulfil(&self, order: OrderId) -> anyhow::Result<()> {
        loop {
            match self.fulfilment.run(self.household, order).await? {
                Advanced::Waiting { until } => {
                    let wait = until - self.clock.now();
                    eprintln!("waiting {} min until ready-at", wait.num_minutes());
                    self.clock.set(until);
                }
                Advanced::Done => return Ok(()),
                other => bail!("order {order}: {other:?}"),
            }
        }
    }

    /// Runs process steps until the next one is `stop`.
    async fn fulfil_until(
        &self,
        order: OrderId,
        stop: impl Fn(&Step) -> bool,
    ) -> anyhow::Result<()> {
        loop {
            let state = self
                .service()
                .load::<hearth_core::Orders>(self.household, order)
                .await?;
            if stop(&process::next_step(&state, self.clock.now())) {
                return Ok(());
            }
            match self.fulfilment.advance(self.household, order).await? {
                Advanced::Progressed(_) => {}
                other => bail!("order {order} stopped early: {other:?}"),
            }
        }
    }

    fn service(&self) -> &Service {
        self.fulfilment.service()
    }
}
