//! A minimal server node for the crash test: the embedded executor on a SQLite store,
//! with the HTTP payment and inventory adapters pointed at a sandbox.
//!
//! ```text
//! hearth-embedded-node <db-file> <provider-url> [--poll-ms N]
//! ```
//!
//! Prints `started` once the executor runs; stops cleanly on Ctrl-C (and not at all on
//! SIGKILL, which is the point).

use anyhow::{Context, bail};
use hearth_core::Service;
use hearth_core::durable::Processes;
use hearth_core::ports::EventFeed;
use hearth_embedded::{EmbeddedExecutor, ExecutorConfig};
use hearth_memory::SystemClock;
use hearth_sandbox::HttpProvider;
use hearth_sqlite::SqliteEventStore;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let (Some(db), Some(url)) = (args.next(), args.next()) else {
        bail!("usage: hearth-embedded-node <db-file> <provider-url> [--poll-ms N]");
    };
    let mut config = ExecutorConfig {
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(2),
        ..ExecutorConfig::default()
    };
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--poll-ms", Some(ms)) => {
                config.poll_interval = Duration::from_millis(ms.parse().context("--poll-ms")?);
            }
            _ => bail!("unknown argument {flag}"),
        }
    }
    let (store, feed) = SqliteEventStore::open(&db).with_context(|| format!("opening {db}"))?;
    let provider = HttpProvider::new(&url, Duration::from_secs(5))?;
    let service = Service::new(store.clone(), Arc::new(SystemClock));
    let processes = Processes::new(
        service,
        Arc::new(provider.payments()),
        Arc::new(provider.inventory()),
    );
    let feed: Arc<dyn EventFeed> = Arc::new(feed);
    let executor = EmbeddedExecutor::start(processes, store, Some(feed), config);
    println!("started");
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c().await?;
    executor.shutdown().await;
    Ok(())
}
