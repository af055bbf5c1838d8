//! `hearth`: the composition root. Wires adapters into the core and runs them.

mod cli;
mod demo;
mod durable;
mod migrate;
mod otel;
mod reconcile;
mod sandbox;
mod serve;
mod stores;
mod worker;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hearth",
    version,
    about = "A realtime, event-sourced backend for household apps"
)]
struct Cli {
    /// How log lines are written to stderr.
    #[arg(
        long,
        global = true,
        env = "HEARTH_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    log_format: cli::LogFormat,
    /// Exports traces over OTLP (HTTP/protobuf) to this collector, e.g.
    /// http://localhost:4318 (they go to <URL>/v1/traces). Off when unset.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Runs a household through the whole order flow in memory and prints what members see.
    Demo(demo::DemoArgs),
    /// Runs the Temporal worker of the fulfilment workflow and the outbox relay.
    Worker(worker::WorkerArgs),
    /// Runs the sandbox payment and inventory provider over HTTP, with fault injection.
    Sandbox(sandbox::SandboxArgs),
    /// Applies the PostgreSQL schema migrations (connect as the owner role).
    Migrate(migrate::MigrateArgs),
    /// Compares the providers' ledgers with the log, reports every difference, and with
    /// --repair repairs what the fulfilment process can; exits non-zero if any remain.
    Reconcile(reconcile::ReconcileArgs),
    /// Serves the realtime rooms (WebSocket + HTTP, PartyKit-compatible).
    Serve(Box<serve::ServeArgs>),
    /// Mints a member token for development (signed with HEARTH_TOKEN_SECRET).
    Token(serve::TokenArgs),
}

impl Cmd {
    /// The subcommand's name, for the exported traces' `service.name`.
    fn name(&self) -> &'static str {
        match self {
            Cmd::Demo(_) => "demo",
            Cmd::Worker(_) => "worker",
            Cmd::Sandbox(_) => "sandbox",
            Cmd::Migrate(_) => "migrate",
            Cmd::Reconcile(_) => "reconcile",
            Cmd::Serve(_) => "serve",
            Cmd::Token(_) => "token",
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let parsed = Cli::parse();
    let otlp = parsed.otlp_endpoint.as_deref().map(|endpoint| {
        let service = std::env::var("OTEL_SERVICE_NAME")
            .unwrap_or_else(|_| format!("hearth-{}", parsed.command.name()));
        (endpoint, service)
    });
    let otel = match cli::init_log(parsed.log_format, otlp) {
        Ok(otel) => otel,
        Err(error) => return cli::report(&error),
    };
    let result = match parsed.command {
        Cmd::Demo(args) => demo::run(args).await,
        Cmd::Worker(args) => worker::run(args).await,
        Cmd::Sandbox(args) => sandbox::run(args).await,
        Cmd::Migrate(args) => migrate::run(args).await,
        Cmd::Reconcile(args) => reconcile::run(args).await,
        Cmd::Serve(args) => serve::serve(*args).await,
        Cmd::Token(args) => serve::token(args),
    };
    if let Some(otel) = otel {
        otel.shutdown().await;
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => cli::report(&error),
    }
}
