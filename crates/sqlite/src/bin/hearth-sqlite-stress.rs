//! Appends PlaceOrder commands to a SQLite store, through the application service,
//! until stopped (or until `--seconds` pass), for the crash test.
//!
//! ```text
//! hearth-sqlite-stress [--seconds N] [--writers N] <db-file> <household-uuid>...
//! ```
//!
//! Prints one line per answer, flushed before the next command is sent:
//! `ack <household> <command> <seq>` once a command is committed, and
//! `dup <household> <command> <seq>` when a repeat of an acknowledged command id
//! got the stored outcome back. A line is printed only after the store answered,
//! so every printed `ack` is a command the store acknowledged.

use anyhow::{Context, bail};
use chrono::{DurationRound, TimeDelta, Utc};
use hearth_core::order::{Command, PlaceOrder, RequestedLine};
use hearth_core::ports::Clock;
use hearth_core::{
    Actor, CommandEnvelope, CommandId, CommandOutcome, Dispatched, HouseholdId, MemberId, OrderId,
    Service, Timestamp,
};
use hearth_sqlite::SqliteEventStore;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Wall-clock time at the microsecond precision the store keeps.
#[derive(Debug)]
struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> Timestamp {
        let now = Utc::now();
        now.duration_trunc(TimeDelta::microseconds(1))
            .unwrap_or(now)
    }
}

struct Args {
    seconds: u64,
    writers: usize,
    path: String,
    households: Vec<HouseholdId>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut seconds = 60;
    let mut writers = 2;
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => seconds = args.next().context("--seconds needs a value")?.parse()?,
            "--writers" => writers = args.next().context("--writers needs a value")?.parse()?,
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    let path = positional
        .next()
        .context("usage: hearth-sqlite-stress [--seconds N] [--writers N] <db> <household>...")?;
    let households = positional
        .map(|h| h.parse::<Uuid>().map(HouseholdId))
        .collect::<Result<Vec<_>, _>>()
        .context("a household is a uuid")?;
    if households.is_empty() {
        bail!("name at least one household");
    }
    Ok(Args {
        seconds,
        writers: writers.max(1),
        path,
        households,
    })
}

/// What the writers order from: `sku-0` to `sku-3`, plenty of each.
#[derive(Debug)]
struct Shop;

#[async_trait::async_trait]
impl hearth_core::ports::Catalog for Shop {
    async fn items(
        &self,
    ) -> Result<Vec<hearth_core::CatalogItem>, hearth_core::ports::ProviderError> {
        Ok((0..4)
            .map(|i| hearth_core::CatalogItem {
                sku: format!("sku-{i}"),
                name: format!("item {i}"),
                unit_price_cents: 100 + 100 * i,
                available: 1_000,
            })
            .collect())
    }
}

fn place_order(tenant: HouseholdId, member: MemberId) -> CommandEnvelope {
    let order = OrderId(Uuid::now_v7());
    // The low bits of a v7 uuid are random: enough to vary the orders.
    let noise = Uuid::now_v7().as_u128();
    let lines = (0..=(noise % 3))
        .map(|i| RequestedLine {
            sku: format!("sku-{i}"),
            quantity: 1 + u32::try_from((noise >> (8 * i)) % 5).unwrap_or(0),
            unit_price_cents: None,
        })
        .collect();
    CommandEnvelope::new(
        CommandId(Uuid::now_v7()),
        tenant,
        Actor::Member { id: member },
        Command::PlaceOrder(PlaceOrder {
            order_id: order,
            lines,
            ready_at: None,
            note: None,
        }),
    )
}

fn say(word: &str, tenant: HouseholdId, command: CommandId, seq: u64) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{word} {tenant} {command} {seq}")?;
    out.flush()?;
    Ok(())
}

async fn writer(service: Service, tenant: HouseholdId, deadline: Instant) -> anyhow::Result<()> {
    let member = MemberId(Uuid::now_v7());
    let mut acknowledged: Vec<CommandEnvelope> = Vec::new();
    let mut round = 0u64;
    while Instant::now() < deadline {
        round += 1;
        // Now and then, repeat an acknowledged command: it must change nothing.
        if round.is_multiple_of(5)
            && let Some(previous) =
                acknowledged.get((round as usize / 5) % acknowledged.len().max(1))
        {
            match service.dispatch(previous.clone()).await? {
                Dispatched::Duplicate(CommandOutcome::Accepted { seq, .. }) => {
                    say("dup", tenant, previous.id, seq)?
                }
                other => bail!("a repeat of {} was not a duplicate: {other:?}", previous.id),
            }
            continue;
        }
        let command = place_order(tenant, member);
        match service.dispatch(command.clone()).await? {
            Dispatched::Accepted { seq, .. } => {
                say("ack", tenant, command.id, seq)?;
                acknowledged.push(command);
            }
            other => bail!("PlaceOrder {} was not accepted: {other:?}", command.id),
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let (store, _feed) =
        SqliteEventStore::open(&args.path).with_context(|| format!("opening {}", args.path))?;
    let service = Service::new(store, Arc::new(WallClock)).with_catalog(Arc::new(Shop));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for &tenant in &args.households {
        for _ in 0..args.writers {
            tasks.push(tokio::spawn(writer(service.clone(), tenant, deadline)));
        }
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}
