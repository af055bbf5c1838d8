//! Durable appends per second through `PgEventStore` (used by bench/pg-append.sh).
//!
//! `pg_append_bench <owner-url> <app-url> <clients> <seconds> [batchers [max-batch]]`:
//! migrates the database as the owner, then runs `clients` tasks for `seconds`, each
//! appending one-event commands (OrderPlaced, which also writes an outbox job) to its
//! own household, one append at a time, on a pool of `clients` connections as the app
//! role. The store batches appends as configured (default: `Batching::default()`).
//! Prints `appends_per_second=<n>`.

use anyhow::Context;
use hearth_contract::fixtures::{append, household, order_id};
use hearth_core::ports::{Appended, EventStore};
use hearth_postgres::{Batching, PgEventStore};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (owner, app, clients, seconds, rest) = match args.as_slice() {
        [_, owner, app, clients, seconds, rest @ ..] if rest.len() <= 2 => {
            (owner, app, clients, seconds, rest)
        }
        _ => anyhow::bail!(
            "usage: pg_append_bench <owner-url> <app-url> <clients> <seconds> [batchers [max-batch]]"
        ),
    };
    let mut batching = Batching::default();
    if let Some(n) = rest.first() {
        batching.batchers = n.parse().context("batchers")?;
    }
    if let Some(n) = rest.get(1) {
        batching.max_batch = n.parse().context("max-batch")?;
    }
    let clients: usize = clients.parse().context("clients")?;
    let seconds: u64 = seconds.parse().context("seconds")?;

    let owner = hearth_postgres::connect(&hearth_postgres::parse_url(owner)?).await?;
    hearth_postgres::migrate(&owner).await?;

    let pool = hearth_postgres::pool(hearth_postgres::parse_url(app)?, clients)?;
    let pg = Arc::new(PgEventStore::with_batching(pool, batching));
    let store: Arc<dyn EventStore> = pg.clone();
    eprintln!("{batching:?}");
    // Warm up: one connection per client, statements prepared.
    let mut warm = Vec::new();
    for _ in 0..clients {
        let store = store.clone();
        warm.push(tokio::spawn(async move {
            store.append(append(household(), order_id(), 0, 1)).await
        }));
    }
    for w in warm {
        w.await??;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let before = pg.batch_stats();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (store, stop, count) = (store.clone(), stop.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            let tenant = household();
            while !stop.load(Ordering::Relaxed) {
                match store.append(append(tenant, order_id(), 0, 1)).await? {
                    Appended::Committed { .. } => count.fetch_add(1, Ordering::Relaxed),
                    Appended::Duplicate(_) => anyhow::bail!("unexpected duplicate"),
                };
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let n = count.load(Ordering::Relaxed);
    let after = pg.batch_stats();
    let batches = after.batches - before.batches;
    println!("appends={n} seconds={elapsed:.2}");
    println!(
        "batches={batches} appends_per_batch={:.2} reruns={}",
        (after.appends - before.appends) as f64 / batches.max(1) as f64,
        after.reruns - before.reruns
    );
    println!("appends_per_second={:.0}", n as f64 / elapsed);
    Ok(())
}
