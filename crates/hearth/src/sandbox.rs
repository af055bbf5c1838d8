//! `hearth sandbox`: the bundled payment and inventory provider, over HTTP.

use anyhow::Context;
use hearth_sandbox::{Faults, Sandbox, WebhookTarget};
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
    /// Skus whose stock is lost after the fact: once an order holding one is paid, the
    /// sandbox reports `StockLost` to its webhook URL (comma-separated; the URL from
    /// --webhook-url or `PUT /admin/webhook`).
    #[arg(long, value_delimiter = ',')]
    lose_stock_after_capture: Vec<String>,
    /// How long after the payment that report is sent, in milliseconds.
    #[arg(long, default_value_t = 0)]
    stock_lost_delay_ms: u64,
    /// Hearth's base URL, where provider events (`POST /admin/events`) are sent as
    /// signed webhooks (docs/webhooks.md). Needs both webhook secrets.
    #[arg(long, env = "HEARTH_SANDBOX_WEBHOOK_URL", requires_all = ["payments_webhook_secret", "inventory_webhook_secret"])]
    webhook_url: Option<String>,
    /// The secret the payment provider's webhooks are signed with (the server's
    /// --payments-webhook-secret; at least 32 bytes).
    #[arg(long, env = "HEARTH_PAYMENTS_WEBHOOK_SECRET", hide_env_values = true)]
    payments_webhook_secret: Option<String>,
    /// The secret the inventory provider's webhooks are signed with.
    #[arg(long, env = "HEARTH_INVENTORY_WEBHOOK_SECRET", hide_env_values = true)]
    inventory_webhook_secret: Option<String>,
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
        lose_stock_after_capture: args.lose_stock_after_capture,
        stock_lost_delay_ms: args.stock_lost_delay_ms,
    };
    let sandbox = Sandbox::new(faults.clone());
    if let Some(url) = args.webhook_url {
        let secret = |secret: Option<String>, flag: &str| -> anyhow::Result<std::sync::Arc<[u8]>> {
            let secret = secret.unwrap_or_default();
            anyhow::ensure!(
                secret.len() >= 32,
                "{flag} must be at least 32 bytes, got {}",
                secret.len()
            );
            Ok(std::sync::Arc::from(secret.as_bytes()))
        };
        sandbox.set_webhook(WebhookTarget {
            url,
            payments_secret: secret(args.payments_webhook_secret, "--payments-webhook-secret")?,
            inventory_secret: secret(args.inventory_webhook_secret, "--inventory-webhook-secret")?,
        });
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, ?faults, "sandbox provider listening");
    // Tests and scripts read the address from stdout (useful with port 0).
    println!("sandbox listening on http://{addr}");
    hearth_sandbox::serve(listener, sandbox, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .context("sandbox server failed")
}
