//! `hearth serve` and `hearth token`: the realtime server and a development token minter.

use crate::durable::{Durable, DurableArgs};
use crate::stores::StoreArgs;
use anyhow::Context as _;
use hearth_axum::webhooks::{WebhookSecret, WebhookSecrets};
use hearth_axum::{Application, LimitSettings, Origin, Ports, Rate, Settings, TokenSecret, Tokens};
use hearth_core::ports::Clock;
use hearth_core::ports::Role;
use hearth_core::service::ServiceConfig;
use hearth_core::{HouseholdId, MemberId, Service};
use hearth_memory::SystemClock;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The longest preparation time: as far ahead as a member may set a ready time.
const MAX_PREP_TIME_SECS: i64 = hearth_core::order::limits::MAX_READY_AT_DAYS * 24 * 3600;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, host:port (a name such as localhost:8787 is resolved; port 0
    /// picks a free one; the chosen address is printed).
    #[arg(long, env = "HEARTH_LISTEN", default_value = "127.0.0.1:8787", value_parser = crate::cli::socket_addr)]
    listen: SocketAddr,
    /// Secret that signs member tokens (HS256, at least 32 bytes). Without it the
    /// embedded default keeps a generated one in its data directory (tokens survive a
    /// restart); with --memory or a database URL a random one is used.
    #[arg(long, env = "HEARTH_TOKEN_SECRET", hide_env_values = true)]
    token_secret: Option<String>,
    /// During a rotation of the token secret: the previous secret, whose tokens are
    /// still accepted (nothing is signed with it). Keep it for one access-token lifetime
    /// after switching, then drop it (docs/rooms.md, "Rotating the token secret").
    #[arg(long, env = "HEARTH_PREVIOUS_TOKEN_SECRET", hide_env_values = true)]
    previous_token_secret: Option<String>,
    /// Shared secret of the payment provider's webhooks (`POST /webhooks/payments`,
    /// HMAC-SHA256, at least 32 bytes; docs/webhooks.md). Without it that route is 404.
    #[arg(long, env = "HEARTH_PAYMENTS_WEBHOOK_SECRET", hide_env_values = true)]
    payments_webhook_secret: Option<String>,
    /// Shared secret of the inventory provider's webhooks (`POST /webhooks/inventory`).
    #[arg(long, env = "HEARTH_INVENTORY_WEBHOOK_SECRET", hide_env_values = true)]
    inventory_webhook_secret: Option<String>,
    /// Lifetime of an access token, in seconds (a client renews it with its session's
    /// refresh credential before it expires).
    #[arg(long, env = "HEARTH_ACCESS_TOKEN_TTL_SECS", default_value_t = 600)]
    access_token_ttl_secs: u64,
    /// Seconds between server pings on each socket.
    #[arg(long, env = "HEARTH_PING_INTERVAL_SECS", default_value_t = 20)]
    ping_interval_secs: u64,
    /// Batches queued for one socket before it is dropped as a slow consumer.
    #[arg(long, env = "HEARTH_OUTGOING_QUEUE", default_value_t = 256)]
    outgoing_queue: usize,
    /// The built web client (`npm run build` in web/) served at `/`. Relative paths are
    /// resolved from the working directory; a missing directory serves no web client.
    #[arg(long, env = "HEARTH_WEB_DIR", default_value = "web/dist")]
    web_dir: std::path::PathBuf,
    /// A browser origin (scheme://host[:port]) allowed to open sockets, send POSTs and
    /// read answers (CORS), besides the server's own origin; repeatable (env:
    /// comma-separated). When listening on a loopback address, http://localhost:*,
    /// http://127.0.0.1:* and http://[::1]:* are allowed too (development).
    #[arg(
        long = "allowed-origin",
        env = "HEARTH_ALLOWED_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    allowed_origins: Vec<Origin>,
    /// Serve /metrics on this address only (404 on --listen), e.g. to keep it private.
    /// Without it, /metrics is on --listen.
    #[arg(long, env = "HEARTH_METRICS_LISTEN", value_parser = crate::cli::socket_addr)]
    metrics_listen: Option<SocketAddr>,
    /// Seconds an order takes to prepare: one placed "as soon as possible" is expected
    /// (and marked) ready this long after it is placed, and members see that time. At
    /// most 7 days, as far ahead as a member may set a ready time.
    #[arg(long, env = "HEARTH_PREP_TIME_SECS", default_value_t = 600, value_parser = clap::value_parser!(u32).range(0..=MAX_PREP_TIME_SECS))]
    prep_time_secs: u32,
    #[command(flatten)]
    stores: StoreArgs,
    #[command(flatten)]
    durable: DurableArgs,
    #[command(flatten)]
    edge: EdgeArgs,
}

/// The edge's limits (docs/threat-model.md). Defaults suit one node serving households
/// directly; behind a proxy every client shares the proxy's address, so raise the
/// per-address limits there.
#[derive(Debug, clap::Args)]
struct EdgeArgs {
    /// Open connections on the listener, all clients together.
    #[arg(long, env = "HEARTH_MAX_CONNECTIONS", default_value_t = 8192)]
    max_connections: usize,
    /// Open connections from one client address.
    #[arg(
        long,
        env = "HEARTH_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 256
    )]
    max_connections_per_address: usize,
    /// Seconds a client has to send a request's headers (also the idle limit between
    /// requests on a kept-alive connection).
    #[arg(long, env = "HEARTH_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    header_timeout_secs: u64,
    /// Open sockets of one member.
    #[arg(long, env = "HEARTH_MAX_SOCKETS_PER_MEMBER", default_value_t = 16)]
    max_sockets_per_member: usize,
    /// Open sockets in one household's room on this node.
    #[arg(long, env = "HEARTH_MAX_SOCKETS_PER_ROOM", default_value_t = 256)]
    max_sockets_per_room: usize,
    /// Requests from one address: burst, and per second after it.
    #[arg(long, env = "HEARTH_ADDRESS_BURST", default_value_t = 200)]
    address_burst: u32,
    #[arg(long, env = "HEARTH_ADDRESS_PER_SECOND", default_value_t = 100.0)]
    address_per_second: f64,
    /// Households created or joined from one address: burst, and per minute after it.
    #[arg(long, env = "HEARTH_SIGNUP_BURST", default_value_t = 20)]
    signup_burst: u32,
    #[arg(long, env = "HEARTH_SIGNUP_PER_MINUTE", default_value_t = 20.0)]
    signup_per_minute: f64,
    /// Commands and authenticated calls of one member, across all of their sockets:
    /// burst, and per second after it.
    #[arg(long, env = "HEARTH_MEMBER_BURST", default_value_t = 50)]
    member_burst: u32,
    #[arg(long, env = "HEARTH_MEMBER_PER_SECOND", default_value_t = 20.0)]
    member_per_second: f64,
    /// Events replayed by catch-ups (`since`, `sync`) per second, all sockets together.
    #[arg(long, env = "HEARTH_CATCHUP_PER_SECOND", default_value_t = 20_000.0)]
    catchup_per_second: f64,
    /// Households whose projection the node keeps for GET of a room's state.
    #[arg(long, env = "HEARTH_KEPT_VIEWS", default_value_t = 1024)]
    kept_views: usize,
    /// MiB of welcome frames (each carries the household's most recent orders) sent at once.
    #[arg(long, env = "HEARTH_WELCOME_MIB", default_value_t = 64)]
    welcome_mib: usize,
}

impl EdgeArgs {
    fn limits(&self) -> LimitSettings {
        LimitSettings {
            max_connections: self.max_connections.max(1),
            max_connections_per_address: self.max_connections_per_address.max(1),
            header_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            max_sockets_per_member: self.max_sockets_per_member.max(1),
            max_sockets_per_room: self.max_sockets_per_room.max(1),
            address_rate: Rate::new(self.address_burst, self.address_per_second),
            signup_rate: Rate::new(self.signup_burst, self.signup_per_minute / 60.0),
            member_rate: Rate::new(self.member_burst, self.member_per_second),
            catchup_rate: Rate::new(5_000, self.catchup_per_second),
            kept_views: self.kept_views.max(1),
            welcome_bytes_in_flight: self.welcome_mib.max(1).saturating_mul(1024 * 1024),
        }
    }
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let secret = match args.token_secret {
        Some(secret) if !secret.is_empty() => {
            TokenSecret::new(secret).context("--token-secret (HEARTH_TOKEN_SECRET)")?
        }
        _ => match args.stores.persistent_token_secret()? {
            Some(secret) => {
                TokenSecret::new(secret).context("the token secret kept in the data directory")?
            }
            None => {
                tracing::warn!("HEARTH_TOKEN_SECRET not set: using a random secret");
                TokenSecret::random()
            }
        },
    };
    let previous = match args.previous_token_secret.filter(|s| !s.is_empty()) {
        Some(previous) => Some(
            TokenSecret::new(previous)
                .context("--previous-token-secret (HEARTH_PREVIOUS_TOKEN_SECRET)")?,
        ),
        None => None,
    };
    let webhook_secret = |secret: Option<String>, flag: &'static str| {
        secret
            .filter(|s| !s.is_empty())
            .map(|s| WebhookSecret::new(s).context(flag))
            .transpose()
    };
    let webhook_secrets = WebhookSecrets {
        payments: webhook_secret(
            args.payments_webhook_secret,
            "--payments-webhook-secret (HEARTH_PAYMENTS_WEBHOOK_SECRET)",
        )?,
        inventory: webhook_secret(
            args.inventory_webhook_secret,
            "--inventory-webhook-secret (HEARTH_INVENTORY_WEBHOOK_SECRET)",
        )?,
    };
    let interval = Duration::from_secs(args.ping_interval_secs.max(1));
    let mut settings = Settings {
        webhook_secrets,
        listen: args.listen,
        token_secret: secret,
        previous_token_secret: previous,
        access_token_ttl: Duration::from_secs(args.access_token_ttl_secs.max(1)),
        ping_interval: interval,
        ping_timeout: interval * 2 + Duration::from_secs(5),
        outgoing_queue: args.outgoing_queue.max(1),
        web_dir: web_dir(&args.web_dir),
        limits: args.edge.limits(),
        allowed_origins: args.allowed_origins,
        metrics_listen: args.metrics_listen,
        ..Settings::default()
    };
    tracing::info!(
        allowed = ?settings.allowed_origins.iter().map(ToString::to_string).collect::<Vec<_>>(),
        loopback = settings.listen.ip().is_loopback(),
        "browser origins allowed besides the server's own"
    );
    // On the embedded executor serve is the only process on the SQLite file: opened
    // for it alone, the WAL index lives in memory, and a data directory that turns
    // read-only fails commands (503, retry) instead of killing serve with SIGBUS. With
    // Temporal, `hearth worker` processes share the file.
    let sharing = if args.durable.temporal_address.is_some() {
        hearth_sqlite::Sharing::Shared
    } else {
        hearth_sqlite::Sharing::Exclusive
    };
    let stores = args.stores.open(sharing).await?;
    tracing::info!(store = %stores.kind, "store opened");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // One service (one cache of states) for the rooms and the durable work.
    let config = ServiceConfig {
        prep_time: chrono::Duration::seconds(i64::from(args.prep_time_secs)),
        ..ServiceConfig::default()
    };
    let providers = crate::durable::Providers::start(&args.durable).await?;
    // Snapshots are written after the answers, by a task of their own.
    let (service, snapshots) = Service::with_config(stores.store.clone(), clock, config)
        .with_catalog(providers.catalog(&args.durable)?)
        .with_snapshot_writer();
    tokio::spawn(snapshots.run());
    let mut durable = Durable::start(&args.durable, &stores, &service, providers).await?;
    settings.ready_checks = stores.ready_checks.clone();
    settings.ready_checks.extend(durable.ready_checks());
    let ports = Ports {
        service,
        feed: stores.feed,
        directory: stores.directory,
    };
    let app = Application::build(settings, ports).await?;
    durable.start_reconciler(&args.durable, app.metrics());
    // The first line on stdout: scripts read the address from it. The metrics
    // listener's follows, in the same write, so a reader that closes the pipe after the
    // first line costs nothing.
    let mut announce = format!("listening on http://{}\n", app.local_addr());
    if let Some(addr) = app.metrics_addr() {
        announce.push_str(&format!("metrics on http://{addr}/metrics\n"));
        tracing::info!(%addr, "metrics served on their own listener");
    }
    {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(announce.as_bytes());
        let _ = stdout.flush();
    }
    tracing::info!(addr = %app.local_addr(), "hearth serving");
    let served = app
        .run_until(async {
            shutdown_signal().await;
        })
        .await;
    tracing::info!("shutdown: durable work finishing its current steps");
    durable.stop().await;
    tracing::info!("shutdown complete");
    served?;
    Ok(())
}

/// The web client's directory, if it holds a built app (an `index.html`). A relative
/// path is resolved from the working directory; the log names the absolute path either
/// way, so a server started elsewhere says where it looked.
fn web_dir(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    if absolute.join("index.html").is_file() {
        tracing::info!(dir = %absolute.display(), "serving the web client");
        Some(absolute)
    } else {
        tracing::warn!(
            dir = %absolute.display(),
            "no web client at {} (no index.html there): serving the API only; build it with \
             `npm ci && npm run build` in web/, or point --web-dir (HEARTH_WEB_DIR) at a built \
             web/dist",
            absolute.display()
        );
        None
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The household (a uuid).
    #[arg(long)]
    household: uuid::Uuid,
    /// The member (a uuid; a new one if omitted).
    #[arg(long)]
    member: Option<uuid::Uuid>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl_secs: i64,
    /// Signing secret; must match the server's. Without it, the secret `hearth serve`
    /// keeps in its data directory.
    #[arg(long, env = "HEARTH_TOKEN_SECRET", hide_env_values = true)]
    token_secret: Option<String>,
    /// The data directory of the `hearth serve` whose kept secret signs the token.
    #[arg(long, env = "HEARTH_DATA_DIR", default_value = "hearth-data")]
    data_dir: std::path::PathBuf,
}

pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    let secret = match args.token_secret.filter(|s| !s.is_empty()) {
        Some(secret) => TokenSecret::new(secret).context("--token-secret (HEARTH_TOKEN_SECRET)")?,
        None => {
            let path = args.data_dir.join("token-secret");
            let kept = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "no --token-secret, and no secret kept at {} (run `hearth serve --data-dir {}` once, or pass the server's --token-secret)",
                    path.display(),
                    args.data_dir.display()
                )
            })?;
            TokenSecret::new(kept.trim())
                .with_context(|| format!("the token secret kept at {}", path.display()))?
        }
    };
    let tokens = Tokens::new(&secret);
    let member = MemberId(args.member.unwrap_or_else(uuid::Uuid::now_v7));
    let token = tokens
        .issue(
            HouseholdId(args.household),
            member,
            Role::Member,
            chrono::Utc::now(),
            chrono::Duration::seconds(args.ttl_secs),
        )
        .context("cannot sign the token")?;
    println!("{token}");
    Ok(())
}
