//! The server: settings, ports, the router and the `Application` that runs it.

use crate::auth::{TokenSecret, Tokens};
use crate::limits::{LimitSettings, Limits};
use crate::metrics::Metrics;
use crate::origins::{LoopbackOrigins, Origin, OriginPolicy};
use crate::rooms::Rooms;
use crate::wire::codes;
use crate::{http, room};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::IntoResponse as _;
use axum::routing::{any, delete, get, post, put};
use hearth_core::Service;
use hearth_core::ports::{Clock, Directory, EventFeed, EventStore};
use hearth_core::window::List;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tower::Layer as _;
use tower_http::set_header::SetResponseHeaderLayer;

/// Everything tunable. `Default` gives production values; tests shorten the timers.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub token_secret: TokenSecret,
    /// During a secret rotation, the previous secret: tokens it signed are still
    /// accepted (nothing is signed with it). Drop it once one `access_token_ttl` has
    /// passed since the switch.
    pub previous_token_secret: Option<TokenSecret>,
    /// Lifetime of the access tokens a session gets (renewed with its refresh
    /// credential; sockets take the renewed token over the socket).
    pub access_token_ttl: Duration,
    /// Default lifetime of an invite code.
    pub invite_ttl: Duration,
    /// How often the server pings each socket.
    pub ping_interval: Duration,
    /// A socket silent for this long (no pong, no message) is dropped.
    pub ping_timeout: Duration,
    /// Batches waiting for a socket before it counts as a slow consumer.
    pub outgoing_queue: usize,
    /// Largest text frame accepted (answered with `frame_too_large` above it).
    pub max_frame_bytes: usize,
    /// Frames above this close the socket with 1009 without being read.
    pub hard_max_frame_bytes: usize,
    /// Longest request URI (path and query) answered; above it, 414. (hyper itself
    /// answers 414, with an empty body, above 65,534 bytes whatever this says.)
    pub max_uri_bytes: usize,
    /// Commands a socket may have waiting for execution (its own, run one at a time in
    /// order); while that many wait, the socket is not read (TCP pushes back).
    pub commands_in_flight: usize,
    /// Token bucket per socket, for every frame it sends (commands, syncs, anything):
    /// burst size and refill rate. Commands also count against the member's rate in
    /// [`LimitSettings::member_rate`], shared by all of the member's sockets.
    pub rate_burst: u32,
    pub rate_per_second: f64,
    /// The edge's limits: connections, sockets, rates.
    pub limits: LimitSettings,
    /// How long the directory's word that someone is a member (or that a session goes
    /// on) is trusted; each room with open sockets asks again for them every half of
    /// it (one timer per room, [`crate::rooms::Recheck`]), and closes those for which
    /// the answer is no or whose token expired. A change made on another node is felt when
    /// this node's room of the household folds its membership event, and at the latest
    /// within 1.5 times this (on this node, at once).
    pub membership_ttl: Duration,
    /// The rooms' fallback poll of the store, in case a doorbell is lost.
    pub feed_poll: Duration,
    /// What `/readyz` checks besides the store and the feed (the schema is current,
    /// Temporal answers), given by the composition root. Default: none.
    pub ready_checks: Vec<crate::ready::ReadyCheck>,
    /// A built web client (e.g. `web/dist`) served at `/` with an `index.html` fallback
    /// for client routes; the API routes keep priority. `None`: no web client.
    pub web_dir: Option<PathBuf>,
    /// Browser origins allowed besides the server's own (WebSocket upgrades, POSTs and
    /// CORS); see [`crate::origins`].
    pub allowed_origins: Vec<Origin>,
    /// Whether `http://localhost:*` and the like are allowed too (default: when
    /// listening on a loopback address).
    pub loopback_origins: LoopbackOrigins,
    /// Serve `/metrics` on this address only (404 on `listen`); `None`: on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// How many items of each of a household's lists (orders, chores) the welcome, `GET`
    /// of a room's state and each page of `GET /households/{id}/{list}` carry (the most
    /// recent first): so that their size does not grow with the household's history.
    pub view_bound: hearth_core::window::Bound,
    /// The shared secret of each provider allowed to send webhooks
    /// (`POST /webhooks/{provider}`, [`crate::webhooks`]); none by default.
    pub webhook_secrets: crate::webhooks::WebhookSecrets,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            token_secret: TokenSecret::random(),
            previous_token_secret: None,
            access_token_ttl: Duration::from_secs(10 * 60),
            invite_ttl: Duration::from_secs(24 * 3600),
            ping_interval: Duration::from_secs(20),
            ping_timeout: Duration::from_secs(45),
            outgoing_queue: 256,
            max_frame_bytes: 64 * 1024,
            hard_max_frame_bytes: 1024 * 1024,
            max_uri_bytes: 8 * 1024,
            commands_in_flight: 64,
            rate_burst: 50,
            rate_per_second: 20.0,
            limits: LimitSettings::default(),
            membership_ttl: Duration::from_millis(500),
            feed_poll: Duration::from_secs(5),
            ready_checks: Vec::new(),
            web_dir: None,
            allowed_origins: Vec::new(),
            loopback_origins: LoopbackOrigins::default(),
            metrics_listen: None,
            view_bound: hearth_core::window::Bound::default(),
            webhook_secrets: crate::webhooks::WebhookSecrets::default(),
        }
    }
}

/// The ports the server runs on, as trait objects: any store plugs in.
#[derive(Clone, Debug)]
pub struct Ports {
    /// The service, built once by the composition root and shared with durable work
    /// (one cache of states); its store and clock are the server's.
    pub service: Service,
    pub feed: Arc<dyn EventFeed>,
    pub directory: Arc<dyn Directory>,
}

#[derive(Debug)]
pub(crate) struct AppState {
    pub settings: Settings,
    pub service: Service,
    pub store: Arc<dyn EventStore>,
    /// For the readiness check (the rooms hold their own subscription).
    pub feed: Arc<dyn EventFeed>,
    pub directory: Arc<dyn Directory>,
    pub clock: Arc<dyn Clock>,
    pub tokens: Tokens,
    pub rooms: Arc<Rooms>,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
    pub membership: Arc<crate::members::Membership>,
    pub catchup: crate::limits::CatchupPacer,
    /// The budget of welcome bytes in flight, in KiB permits.
    pub welcomes: tokio::sync::Semaphore,
    pub welcome_budget_kib: u32,
    pub origins: Arc<OriginPolicy>,
    /// Set when the server shuts down: every socket closes with 1001 once its queued
    /// commands are answered.
    pub going_away: tokio::sync::watch::Sender<bool>,
    /// The open sockets, so a shutdown can wait for them.
    pub sockets: tokio_util::task::TaskTracker,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// How long a shutdown waits for the sockets to close.
const SOCKETS_GRACE: Duration = Duration::from_secs(10);

/// A bound, ready-to-run server.
#[derive(Debug)]
pub struct Application {
    listener: tokio::net::TcpListener,
    local_addr: SocketAddr,
    state: Arc<AppState>,
    /// The private listener of `/metrics`, when it has its own.
    metrics_listener: Option<(tokio::net::TcpListener, SocketAddr)>,
    router_task: tokio::task::JoinHandle<()>,
    forget_task: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Binds the listener (port 0 picks a free port) and subscribes to the feed.
    pub async fn build(settings: Settings, ports: Ports) -> Result<Self, ServeError> {
        let addr = settings.listen;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServeError::Bind { addr, source })?;
        let metrics_listener = match settings.metrics_listen {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServeError::Bind { addr, source })?;
                let local = listener
                    .local_addr()
                    .map_err(|source| ServeError::Bind { addr, source })?;
                Some((listener, local))
            }
            None => None,
        };
        let origins = Arc::new(OriginPolicy::new(
            settings.allowed_origins.clone(),
            settings.loopback_origins,
            local_addr.ip().is_loopback(),
        ));
        let metrics = Arc::new(Metrics::default());
        let membership = Arc::new(crate::members::Membership::new(
            ports.directory.clone(),
            settings.membership_ttl,
        ));
        let rooms = Rooms::new(
            ports.service.store().clone(),
            metrics.clone(),
            settings.feed_poll,
            settings.limits.kept_views,
            settings.view_bound,
            Some(crate::rooms::Recheck::new(
                membership.clone(),
                ports.service.clock().clone(),
                settings.membership_ttl,
            )),
        );
        let router_task = rooms.spawn_router(ports.feed.clone());
        let limits = Limits::new(settings.limits.clone(), metrics.clone());
        // Rate state of idle clients is dropped now and then, so it stays bounded.
        let forget_task = tokio::spawn({
            let limits = limits.clone();
            async move {
                let mut every = tokio::time::interval(Duration::from_secs(60));
                loop {
                    every.tick().await;
                    limits.forget_idle();
                }
            }
        });
        let catchup =
            crate::limits::CatchupPacer::new(settings.limits.catchup_rate, metrics.clone());

        let welcome_budget_kib = u32::try_from(settings.limits.welcome_bytes_in_flight / 1024)
            .unwrap_or(u32::MAX)
            .clamp(
                1,
                u32::try_from(tokio::sync::Semaphore::MAX_PERMITS).unwrap_or(u32::MAX),
            );
        let state = Arc::new(AppState {
            welcomes: tokio::sync::Semaphore::new(welcome_budget_kib as usize),
            welcome_budget_kib,
            membership,
            catchup,
            limits,
            origins,
            going_away: tokio::sync::watch::Sender::new(false),
            sockets: tokio_util::task::TaskTracker::new(),
            tokens: Tokens::new(&settings.token_secret)
                .with_previous(settings.previous_token_secret.as_ref()),
            store: ports.service.store().clone(),
            clock: ports.service.clock().clone(),
            service: ports.service,
            feed: ports.feed.clone(),
            directory: ports.directory,
            rooms,
            metrics,
            settings,
        });
        Ok(Self {
            listener,
            local_addr,
            state,
            metrics_listener,
            router_task,
            forget_task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address `/metrics` is served on when it has its own listener.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|(_, addr)| *addr)
    }

    /// The counters `/metrics` exposes, for work this process runs beside the rooms
    /// (the reconciler).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.state.metrics.clone()
    }

    /// The token signer this server trusts (for development tools and tests).
    pub fn tokens(&self) -> Tokens {
        self.state.tokens.clone()
    }

    /// Serves until the process stops.
    pub async fn run_until_stopped(self) -> Result<(), ServeError> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `shutdown` completes, then shuts down cleanly and returns: stops
    /// accepting, closes every socket with 1001 once the commands it already read are
    /// answered, lets HTTP requests in flight finish (each bounded), and logs what it did.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let state = self.state.clone();
        let shutdown = async move {
            shutdown.await;
            let open = state
                .metrics
                .connections
                .load(std::sync::atomic::Ordering::Relaxed);
            tracing::info!(
                sockets = open,
                "shutting down: closing sockets with 1001 (going away)"
            );
            state.going_away.send_replace(true);
        };
        let limits = self.state.limits.clone();
        let metrics = self.state.metrics.clone();
        // The metrics listener has its own connection caps (same settings), so a flood
        // of the public listener cannot keep an operator from reading its metrics.
        let (stop_metrics, metrics_stopped) = tokio::sync::watch::channel(false);
        let metrics_task = self.metrics_listener.map(|(listener, _)| {
            let limits = Limits::new(limits.settings().clone(), metrics.clone());
            let app = metrics_router(self.state.clone());
            let metrics = metrics.clone();
            let mut stopped = metrics_stopped;
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                if let Err(e) =
                    crate::listener::serve(listener, app, limits, metrics, shutdown).await
                {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            })
        });
        let app = router(self.state.clone());
        let result = crate::listener::serve(self.listener, app, limits, metrics, shutdown).await;
        let _ = stop_metrics.send(true);
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        self.state.sockets.close();
        if tokio::time::timeout(SOCKETS_GRACE, self.state.sockets.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.state.sockets.len(),
                "shutdown: sockets still open after the grace period"
            );
        } else {
            tracing::info!("shutdown: every socket closed");
        }
        self.router_task.abort();
        self.forget_task.abort();
        result.map_err(ServeError::Serve)
    }
}

/// The web app's Content-Security-Policy: everything from this origin only (`'self'`
/// also covers `ws:`/`wss:` to this host in CSP Level 3), no inline script or style, no
/// plugins, never framed.
/// The web client's routes (those of `parseRoute` in web/src/App.tsx, and its service
/// worker's `navigateFallbackAllowlist` in web/vite.config.ts): each is answered with the
/// app's `index.html`. Other paths are the app's files or a JSON 404.
pub(crate) const APP_ROUTES: [&str; 5] = [
    "/",
    "/h/{household}",
    "/h/{household}/",
    "/join/{household}/{code}",
    "/join/{household}/{code}/",
];

pub(crate) const WEB_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";
/// The API's (JSON and text are never rendered as a document): nothing, never framed.
pub(crate) const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The security headers of every response: nosniff, never framed, no referrer (invite
/// links carry their code in the path), and a CSP where a route did not set its own.
fn security_headers(router: Router) -> Router {
    let fixed = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    router
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CSP),
        ))
        .layer(fixed(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(fixed(header::X_FRAME_OPTIONS, "DENY"))
        .layer(fixed(header::REFERRER_POLICY, "no-referrer"))
}

/// One log line per HTTP request (target `hearth::access`): method, path (never the
/// query, which may hold a token), status, duration and client address. An upgrade
/// logs 101 here, and the socket its own open and close.
async fn access_log(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let response = next.run(request).await;
    tracing::info!(
        target: "hearth::access",
        %method,
        path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        peer = ?peer,
        "request"
    );
    response
}

/// The router of the private metrics listener: `/metrics`, and `/healthz` for probes.
fn metrics_router(state: Arc<AppState>) -> Router {
    let routes = Router::new()
        .route("/metrics", get(http::metrics))
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(http::readyz))
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            state,
            http::json_errors,
        ));
    security_headers(routes)
}

fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.settings.max_frame_bytes;
    let web_dir = state.settings.web_dir.clone();
    let api = Router::new()
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(http::readyz));
    let api = if state.settings.metrics_listen.is_some() {
        // Not here (and not the web app's index.html either): only on its listener.
        api.route(
            "/metrics",
            get(|| async {
                http::ApiError::new(
                    StatusCode::NOT_FOUND,
                    codes::NOT_FOUND,
                    "nothing at /metrics",
                )
                .into_response()
            }),
        )
    } else {
        api.route("/metrics", get(http::metrics))
    };
    // One paging route per list of the household view (`orders`, `chores`): the core
    // names the lists (hearth_core::window::List).
    let api = List::ALL.into_iter().fold(api, |api, list| {
        api.route(
            &format!("/households/{{household}}/{}", list.name()),
            get(
                move |State(app): State<Arc<AppState>>,
                      Path(household): Path<String>,
                      Query(query): Query<HashMap<String, String>>,
                      headers: HeaderMap| {
                    http::list_page(app, list, household, query, headers)
                },
            ),
        )
    });
    let api = api
        .route("/catalog", get(http::catalog))
        .route("/households", post(http::create_household))
        .route("/households/{household}", get(http::household))
        .route(
            "/households/{household}/time-zone",
            put(http::set_time_zone),
        )
        .route("/households/{household}/members", get(http::members))
        .route(
            "/households/{household}/members/{member}",
            delete(http::remove_member),
        )
        .route(
            "/households/{household}/members/{member}/role",
            put(http::set_role),
        )
        .route("/households/{household}/sessions", get(http::list_sessions))
        .route(
            "/households/{household}/sessions/refresh",
            post(http::refresh_session),
        )
        .route(
            "/households/{household}/sessions/{session}",
            delete(http::end_session),
        )
        .route(
            "/households/{household}/invites/{code}",
            get(http::invite_preview),
        )
        .route("/households/{household}/invites", post(http::create_invite))
        .route("/households/{household}/join", post(http::accept_invite))
        .route("/parties/{party}/{room}", any(room::room))
        .route("/parties/{party}/{room}/{*path}", any(room::room))
        .route("/party/{room}", any(room::default_party_room))
        .route("/party/{room}/{*path}", any(room::default_party_room))
        .layer(DefaultBodyLimit::max(body_limit))
        // Unauthenticated like signing up: the per-address rate (below) covers it, and
        // its body has a limit of its own, read before the signature is checked.
        .route(
            "/webhooks/{provider}",
            post(crate::webhooks::receive)
                .layer(DefaultBodyLimit::max(crate::webhooks::MAX_WEBHOOK_BYTES)),
        )
        .with_state(state.clone());
    let routed = match web_dir {
        // Routes above win. The app's own routes (APP_ROUTES, the client routes of
        // web/src/App.tsx) get its index.html; anything else is a file of the built app
        // or, if there is none, a JSON 404 (never the app's HTML with 200).
        Some(dir) => {
            let csp = SetResponseHeaderLayer::overriding(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(WEB_CSP),
            );
            let index = tower_http::services::ServeFile::new(dir.join("index.html"));
            let api = APP_ROUTES.iter().fold(api, |api, route| {
                api.route_service(route, csp.clone().layer(index.clone()))
            });
            api.fallback_service(csp.layer(tower_http::services::ServeDir::new(dir)))
        }
        None => api,
    };
    // From the inside out: CORS for allowed origins; a browser request from an origin
    // not allowed is refused (before CORS could answer its preflight); every request,
    // static files included, counts against its client address; every error status
    // leaves with the JSON error shape, whoever made it; every response has the
    // security headers.
    let cors = state.origins.cors();
    let routed = routed
        .layer(cors)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::origins::check,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::per_address,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state,
            http::json_errors,
        ))
        .layer(axum::middleware::from_fn(access_log));
    security_headers(routed)
}
