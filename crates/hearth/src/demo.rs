//! `hearth demo`: one household's afternoon, in memory, told as its members see it.
//! Ann creates a household and invites Bob; each orders; Bob cancels his order after it
//! was paid; Ann asks Bob to take out the bins, he is reminded when it is due and does
//! it; Ann's order is ready at its time and she collects it. The processes run step by
//! step with the in-memory providers on a manual clock (the real executors, Temporal
//! and embedded, do the same durably), and every event of the household's log becomes
//! a line of the story.

use anyhow::{Context as _, bail};
use chrono::{DateTime, DurationRound, Local, TimeDelta};
use hearth_core::chore::{ChoreCommand, ChoreEvent, ChoreId, ChoreRef, ScheduleChore};
use hearth_core::durable::{Advance, Processes};
use hearth_core::order::{CancelOrder, OrderRef, PlaceOrder, RejectionReason, RequestedLine};
use hearth_core::ports::{Clock, Directory, EventStore, Household, Invite, Member, Role};
use hearth_core::process::{self, Step};
use hearth_core::{
    Actor, AggregateId, AnyCommand, AnyEvent, Command, CommandEnvelope, CommandId, Dispatched,
    Event, EventEnvelope, HouseholdId, HouseholdView, MemberId, OrderId, Service, Timestamp,
};
use hearth_memory::{
    ManualClock, MemoryDirectory, MemoryEventStore, MemoryInventory, MemoryPayments,
    default_catalog,
};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Print the household's events and its final board as JSON (one object per line)
    /// instead of the story.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let store = Arc::new(MemoryEventStore::new());
    let clock = Arc::new(ManualClock::starting_now());
    let payments = Arc::new(MemoryPayments::new());
    // As `serve` does by default: an order "as soon as possible" is expected after the
    // kitchen's preparation time.
    let config = hearth_core::service::ServiceConfig {
        prep_time: chrono::Duration::minutes(20),
        ..hearth_core::service::ServiceConfig::default()
    };
    // The inventory serves the catalog orders are placed from.
    let inventory = Arc::new(MemoryInventory::default());
    let service =
        Service::with_config(store.clone(), clock.clone(), config).with_catalog(inventory.clone());
    let mut demo = Demo {
        processes: Processes::new(service, payments.clone(), inventory),
        store: store.clone(),
        directory: MemoryDirectory::new(),
        clock: clock.clone(),
        household: HouseholdId(Uuid::now_v7()),
        story: Story::new(clock.now()),
        told: 0,
        json: args.json,
    };

    let ann = demo.create_household("Home", "Ann").await?;
    let bob = demo.invite(ann, "Bob").await?;

    // Ann orders breakfast things for later today (between an hour and an hour and a
    // half from now, on the half hour).
    let breakfast = OrderId(Uuid::now_v7());
    let ready_at = (demo.clock.now() + TimeDelta::minutes(90))
        .duration_trunc(TimeDelta::minutes(30))
        .context("rounding the ready-at time")?;
    let lines = vec![line("bread", 1)?, line("milk", 2)?];
    demo.member(ann, place(breakfast, lines, Some(ready_at)))
        .await?;
    demo.run_until_waiting(breakfast.into()).await?;

    // Bob orders pizza as soon as possible, then cancels after it was paid.
    let pizza = OrderId(Uuid::now_v7());
    demo.member(bob, place(pizza, vec![line("pizza", 2)?], None))
        .await?;
    demo.fulfil_until(pizza, |s| matches!(s, Step::Confirm))
        .await?;
    let cancel = CancelOrder {
        order_id: pizza,
        reason: Some("plans changed".into()),
    };
    demo.member(bob, Command::CancelOrder(cancel)).await?;
    demo.run(pizza.into()).await?;

    // Ann asks Bob to take out the bins in half an hour; he is reminded then, and does it.
    let bins = ChoreId(Uuid::now_v7());
    let schedule = ScheduleChore {
        chore_id: bins,
        title: "Take out the bins".into(),
        assignee: bob,
        due_at: demo.clock.now() + TimeDelta::minutes(30),
        every_days: None,
        escalate_after_minutes: None,
    };
    demo.member(ann, ChoreCommand::ScheduleChore(schedule))
        .await?;
    let due = demo.run_until_waiting(bins.into()).await?;
    demo.clock
        .set(due.context("the chore's process waits for its due time")?);
    demo.run_until_waiting(bins.into()).await?;
    demo.member(
        bob,
        ChoreCommand::CompleteChore(ChoreRef { chore_id: bins }),
    )
    .await?;
    demo.run(bins.into()).await?;

    // Breakfast is ready at its time; Ann collects it.
    demo.run(breakfast.into()).await?;
    let collect = OrderRef {
        order_id: breakfast,
    };
    demo.member(ann, Command::CompleteOrder(collect)).await?;

    let events = store.read_feed(demo.household, 0, usize::MAX).await?;
    let view = HouseholdView::fold(&events)?;
    if args.json {
        println!("{}", serde_json::to_string(&view)?);
    } else {
        println!();
        for line in demo.story.board(&view) {
            println!("{line}");
        }
        println!(
            "At the payment provider: captures {}, refunds {}.",
            payments.captures(),
            payments.refunds()
        );
    }
    Ok(())
}

/// An order line of the demo's catalog item `sku`, at the price the member was shown.
fn line(sku: &str, quantity: u32) -> anyhow::Result<RequestedLine> {
    let item = default_catalog()
        .into_iter()
        .find(|item| item.sku == sku)
        .with_context(|| format!("no {sku} in the demo's catalog"))?;
    Ok(RequestedLine::shown(
        item.sku,
        quantity,
        item.unit_price_cents,
    ))
}

fn place(order_id: OrderId, lines: Vec<RequestedLine>, ready_at: Option<Timestamp>) -> Command {
    Command::PlaceOrder(PlaceOrder {
        order_id,
        lines,
        ready_at,
        note: None,
    })
}

struct Demo {
    processes: Processes,
    store: Arc<MemoryEventStore>,
    directory: MemoryDirectory,
    clock: Arc<ManualClock>,
    household: HouseholdId,
    story: Story,
    /// The last event told.
    told: u64,
    json: bool,
}

impl Demo {
    fn service(&self) -> &Service {
        self.processes.service()
    }

    fn say(&self, sentence: &str) {
        if !self.json {
            println!("{}  {sentence}", self.story.clock(self.clock.now()));
        }
    }

    /// Tells the events appended since the last call.
    async fn tell(&mut self) -> anyhow::Result<()> {
        let events = self
            .store
            .read_feed(self.household, self.told, usize::MAX)
            .await?;
        for event in events {
            self.told = event.seq;
            if self.json {
                println!("{}", serde_json::to_string(&event)?);
            } else {
                println!(
                    "{}  {}",
                    self.story.clock(event.created_at),
                    self.story.sentence(&event)
                );
            }
        }
        Ok(())
    }

    async fn create_household(&mut self, name: &str, owner: &str) -> anyhow::Result<MemberId> {
        let now = self.clock.now();
        let member = Member {
            household: self.household,
            id: MemberId(Uuid::now_v7()),
            name: owner.into(),
            role: Role::Owner,
            joined_at: now,
        };
        let household = Household {
            id: self.household,
            name: name.into(),
            created_at: now,
            time_zone: hearth_core::ports::DEFAULT_TIME_ZONE.into(),
        };
        self.directory
            .create_household(household, member.clone())
            .await?;
        self.story.names.insert(member.id, member.name);
        self.say(&format!("{owner} created household '{name}'."));
        Ok(member.id)
    }

    async fn invite(&mut self, by: MemberId, name: &str) -> anyhow::Result<MemberId> {
        let now = self.clock.now();
        let code = Uuid::new_v4().simple().to_string();
        let invite = Invite {
            household: self.household,
            code: code.clone(),
            created_by: by,
            created_at: now,
            expires_at: now + TimeDelta::days(1),
        };
        self.directory.create_invite(invite).await?;
        let member = Member {
            household: self.household,
            id: MemberId(Uuid::now_v7()),
            name: name.into(),
            role: Role::Member,
            joined_at: now,
        };
        let member = self
            .directory
            .accept_invite(self.household, &code, member, now)
            .await?;
        self.say(&format!(
            "{} invited {name}, who joined.",
            self.story.name(by)
        ));
        self.story.names.insert(member.id, member.name);
        Ok(member.id)
    }

    /// `member` sends `command`; the events it caused are told.
    async fn member(
        &mut self,
        member: MemberId,
        command: impl Into<AnyCommand>,
    ) -> anyhow::Result<()> {
        let envelope = CommandEnvelope::new(
            CommandId(Uuid::now_v7()),
            self.household,
            Actor::Member { id: member },
            command,
        );
        let kind = envelope.command.type_name();
        match self.service().dispatch(envelope).await? {
            Dispatched::Accepted { .. } => self.tell().await,
            other => bail!("{kind} was not accepted: {other:?}"),
        }
    }

    /// Runs the aggregate's process until it ends, moving the clock to each time it
    /// waits for (where a real executor sets a durable timer).
    async fn run(&mut self, aggregate: AggregateId) -> anyhow::Result<()> {
        while let Some(until) = self.run_until_waiting(aggregate).await? {
            self.clock.set(until.max(self.clock.now()));
        }
        Ok(())
    }

    /// Runs the aggregate's process until it waits (`Some(until)`) or ends (`None`).
    async fn run_until_waiting(
        &mut self,
        aggregate: AggregateId,
    ) -> anyhow::Result<Option<Timestamp>> {
        let advance = self.processes.run(self.household, aggregate).await?;
        self.tell().await?;
        match advance {
            Advance::Waiting { until } => Ok(Some(until)),
            Advance::Done => Ok(None),
            other => bail!("the process of {aggregate:?} stopped: {other:?}"),
        }
    }

    /// Runs the order's process until its next step is `stop`.
    async fn fulfil_until(
        &mut self,
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
            match self.processes.advance(self.household, order.into()).await? {
                Advance::Progressed { .. } => self.tell().await?,
                other => bail!("order {order} stopped early: {other:?}"),
            }
        }
    }
}

/// What the story knows to tell events in words: members' names, orders by number,
/// chores by title, and the day the story began.
struct Story {
    names: HashMap<MemberId, String>,
    orders: HashMap<OrderId, usize>,
    chores: HashMap<ChoreId, String>,
    today: chrono::NaiveDate,
}

impl Story {
    fn new(start: Timestamp) -> Self {
        Self {
            names: HashMap::new(),
            orders: HashMap::new(),
            chores: HashMap::new(),
            today: DateTime::<Local>::from(start).date_naive(),
        }
    }

    fn name(&self, member: MemberId) -> &str {
        self.names.get(&member).map_or("someone", String::as_str)
    }

    fn order(&self, order: OrderId) -> String {
        self.orders
            .get(&order)
            .map_or_else(|| "an order".into(), |n| format!("order #{n}"))
    }

    fn chore(&self, chore: ChoreId) -> String {
        self.chores
            .get(&chore)
            .map_or_else(|| "a chore".into(), |title| format!("'{title}'"))
    }

    /// The time of day, as a clock on the wall shows it (local time).
    fn clock(&self, at: Timestamp) -> String {
        DateTime::<Local>::from(at).format("%H:%M").to_string()
    }

    /// A time members read: "today at 18:30", "tomorrow at 09:00", "on 2026-12-05 at ...".
    fn when(&self, at: Timestamp) -> String {
        let local = DateTime::<Local>::from(at);
        let day = match (local.date_naive() - self.today).num_days() {
            0 => "today".to_owned(),
            1 => "tomorrow".to_owned(),
            _ => format!("on {}", local.format("%a %-d %b")),
        };
        format!("{day} at {}", local.format("%H:%M"))
    }

    /// One event as a sentence of what members see.
    fn sentence(&mut self, envelope: &EventEnvelope) -> String {
        match &envelope.event {
            AnyEvent::Order(event) => self.order_sentence(event),
            AnyEvent::Chore(event) => self.chore_sentence(event),
            AnyEvent::People(event) => self.people_sentence(event),
        }
    }

    /// A membership change as the board says it.
    fn people_sentence(&self, event: &hearth_core::people::MemberEvent) -> String {
        use hearth_core::people::MemberEvent;
        let by = |by: &Option<MemberId>| by.map_or("someone", |m| self.name(m)).to_owned();
        match event {
            MemberEvent::MemberJoined { name, .. } => format!("{name} joined."),
            MemberEvent::MemberRemoved { name, by: who, .. } => {
                format!("{} removed {name}.", by(who))
            }
            MemberEvent::MemberLeft { name, .. } => format!("{name} left."),
            MemberEvent::MemberRoleChanged {
                name,
                role,
                by: who,
                ..
            } => format!("{} made {name} {}.", by(who), role_word(*role)),
        }
    }

    fn order_sentence(&mut self, event: &Event) -> String {
        let order = self.order(event.order_id());
        match event {
            Event::OrderPlaced {
                order_id,
                lines,
                total_cents,
                ready_at,
                note,
                placed_by,
            } => {
                let number = self.orders.len() + 1;
                self.orders.insert(*order_id, number);
                let items = lines
                    .iter()
                    .map(|l| format!("{} x {}", l.quantity, l.name))
                    .collect::<Vec<_>>()
                    .join(", ");
                let when = ready_at.map_or_else(
                    || "as soon as possible".to_owned(),
                    |at| format!("ready {}", self.when(at)),
                );
                let note = note
                    .as_ref()
                    .map_or_else(String::new, |n| format!(" (note: {n})"));
                format!(
                    "{} placed order #{number}: {items}, {}, {when}{note}.",
                    self.name(*placed_by),
                    money(*total_cents)
                )
            }
            Event::StockReserved { .. } => format!("{order}: the shop set the items aside."),
            Event::PaymentCaptured { amount_cents, .. } => {
                format!("{order}: paid {}.", money(*amount_cents))
            }
            Event::OrderConfirmed { .. } => format!("{order} is confirmed."),
            Event::OrderRejected { reason, .. } => match reason {
                RejectionReason::OutOfStock { sku } => {
                    format!("{order} was turned down: {sku} is out of stock.")
                }
                RejectionReason::PaymentDeclined { message } => {
                    format!("{order} was turned down: the payment was declined ({message}).")
                }
                RejectionReason::StockLost { sku } => {
                    format!("{order} was turned down: the shop lost its stock of {sku}.")
                }
            },
            Event::OrderReady { .. } => format!("{order} is ready."),
            Event::OrderCancelled { by, reason, .. } => {
                let who = match by {
                    Actor::Member { id } => self.name(*id).to_owned(),
                    _ => "Hearth".to_owned(),
                };
                let why = reason
                    .as_ref()
                    .map_or_else(String::new, |r| format!(" ({r})"));
                format!("{who} cancelled {order}{why}.")
            }
            Event::OrderCompleted { by, .. } => format!("{} collected {order}.", self.name(*by)),
            Event::RefundIssued { amount_cents, .. } => {
                format!("{order}: refunded {}.", money(*amount_cents))
            }
            Event::StockReleased { .. } => {
                format!("{order}: the shop put the items back on the shelf.")
            }
            Event::StockReservedAfterClose { .. } => {
                format!("{order}: the shop set items aside after it closed; they go back.")
            }
            Event::PaymentCapturedAfterClose { amount_cents, .. } => format!(
                "{order}: {} was paid after it closed; it is refunded.",
                money(*amount_cents)
            ),
            Event::RefundedByProvider { amount_cents, .. } => format!(
                "{order}: the payment provider refunded {} on its own.",
                money(*amount_cents)
            ),
        }
    }

    fn chore_sentence(&mut self, event: &ChoreEvent) -> String {
        if let ChoreEvent::ChoreScheduled {
            chore_id, title, ..
        } = event
        {
            self.chores.insert(*chore_id, title.clone());
        }
        let chore = self.chore(event.chore_id());
        match event {
            ChoreEvent::ChoreScheduled {
                assignee,
                due_at,
                every_days,
                created_by,
                previous,
                ..
            } => {
                let every = every_days.map_or_else(String::new, |d| format!(", every {d} days"));
                let who = if previous.is_some() {
                    "Next time:".to_owned()
                } else {
                    format!("{} asked", self.name(*created_by))
                };
                format!(
                    "{who} {} to do {chore} {}{every}.",
                    self.name(*assignee),
                    self.when(*due_at)
                )
            }
            ChoreEvent::ChoreReminderSent { assignee, .. } => {
                format!("{} was reminded: {chore} is due.", self.name(*assignee))
            }
            ChoreEvent::ChoreEscalated { assignee, .. } => format!(
                "{chore} is still not done: the household is told ({} has it).",
                self.name(*assignee)
            ),
            ChoreEvent::SwapProposed { from, to, .. } => format!(
                "{} asked {} to take over {chore}.",
                self.name(*from),
                self.name(*to)
            ),
            ChoreEvent::SwapAccepted { from, to, .. } => format!(
                "{} took over {chore} from {}.",
                self.name(*to),
                self.name(*from)
            ),
            ChoreEvent::SwapDeclined { by, .. } => {
                format!("{} would rather not take over {chore}.", self.name(*by))
            }
            ChoreEvent::ChoreCompleted { by, .. } => format!("{} did {chore}.", self.name(*by)),
            ChoreEvent::ChoreSkipped { by, reason, .. } => {
                let why = reason
                    .as_ref()
                    .map_or_else(String::new, |r| format!(" ({r})"));
                format!("{} skipped {chore}{why}.", self.name(*by))
            }
        }
    }

    /// The board at the end: each order and chore with where it stands.
    fn board(&self, view: &HouseholdView) -> Vec<String> {
        let mut lines = vec![format!("The board after {} events:", view.seq)];
        for order in &view.orders {
            let status = serde_json::to_value(order.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let refunded = if order.refunded { ", refunded" } else { "" };
            lines.push(format!(
                "  {} ({}, {}): {status}{refunded}",
                self.order(order.id),
                self.name(order.placed_by),
                money(order.total_cents)
            ));
        }
        for chore in &view.chores {
            let status = serde_json::to_value(chore.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            lines.push(format!(
                "  {} ({}): {status}",
                self.chore(chore.id),
                self.name(chore.assignee)
            ));
        }
        lines
    }
}

/// An amount of money in cents, as people write it: 23.00.
fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// A role as a sentence says it: "an owner", "a member".
fn role_word(role: Role) -> &'static str {
    match role {
        Role::Owner => "an owner",
        Role::Member => "a member",
    }
}
