//! `hearth sandbox`: the bundled payment and inventory provider, over HTTP.

use anyhow::Context;
use hearth_sandbox::{Faults, Sandbox};
use std::net::SocketAddr;

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on.
    #[arg(long, env = "HEARTH_SANDBOX_LISTEN", default_value = "127.0.0.1:7070", value_parser = crate::cli::socket_addr)]
    listen: SocketAddr,
    /// Latency added to every provider request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of provider requests failed with 503 (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    failure_rate: f64,
    /// Captures above this many cents are declined (402).
    #[arg(long)]
    decline_above_cents: Option<u64>,
    /// Skus that are out of stock whatever the catalog says (comma-separated).
    #[arg(long, value_delimiter = ',')]
    out_of_stock: Vec<String>,
}

pub async fn run(args: SandboxArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.failure_rate),
        "--failure-rate must be between 0 and 1"
    );
    let faults = Faults {
        latency_ms: args.latency_ms,
        failure_rate: args.failure_rate,
        fail_next: 0,
        decline_above_cents: args.decline_above_cents,
        out_of_stock: args.out_of_stock,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, ?faults, "sandbox provider listening");
    // Tests and scripts read the address from stdout (useful with port 0).
    println!("sandbox listening on http://{addr}");
    hearth_sandbox::serve(listener, Sandbox::new(faults), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .context("sandbox server failed")
}
