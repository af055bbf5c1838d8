//! The edge's limits: how many connections and sockets a client may hold, and how fast
//! it may call. Every refusal is JSON with a code, `Retry-After` where waiting helps,
//! and is counted in `/metrics` (`hearth_refused_total{reason}`).
//!
//! - Connections: at most `max_connections` on the listener and
//!   `max_connections_per_address` from one client address (see [`crate::listener`]).
//! - Sockets: at most `max_sockets_per_member` for one member and
//!   `max_sockets_per_room` in one room, counted across the node.
//! - Rates (GCRA, from `governor`): every request per client address; household
//!   creation and joining per client address (they need no token); commands and every
//!   authenticated call per member, shared by all of the member's sockets and HTTP calls.

use crate::metrics::Metrics;
use crate::wire::{self, codes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use hearth_core::{CommandId, HouseholdId, MemberId};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A rate: `burst` at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub burst: u32,
    pub per_second: f64,
}

impl Rate {
    pub const fn new(burst: u32, per_second: f64) -> Self {
        Self { burst, per_second }
    }

    fn quota(self) -> Quota {
        let burst = NonZeroU32::new(self.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        // One cell per 1/per_second; a rate at or below zero (or absurdly small) becomes
        // one per day rather than a division by zero.
        let period = if self.per_second > 0.0 {
            Duration::from_secs_f64((1.0 / self.per_second).min(86_400.0))
        } else {
            Duration::from_secs(86_400)
        };
        Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or(Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst)
    }

    /// How the rate reads in a refusal.
    fn describe(self) -> String {
        if self.per_second >= 1.0 {
            format!("{} at once, {} per second", self.burst, self.per_second)
        } else {
            format!(
                "{} at once, {} per minute",
                self.burst,
                self.per_second * 60.0
            )
        }
    }
}

/// Every limit of the edge. `Default` gives production values; tests lower them.
#[derive(Clone, Debug)]
pub struct LimitSettings {
    /// Open connections on the listener (HTTP and WebSocket alike).
    pub max_connections: usize,
    /// Open connections from one client address.
    pub max_connections_per_address: usize,
    /// A client must send a request's headers within this time, also when a kept-alive
    /// connection sits idle between requests.
    pub header_timeout: Duration,
    /// WebSockets open for one member (all their devices and tabs).
    pub max_sockets_per_member: usize,
    /// WebSockets open in one room (household) on this node.
    pub max_sockets_per_room: usize,
    /// Every request from one client address.
    pub address_rate: Rate,
    /// Household creation and joining (no token needed) from one client address.
    pub signup_rate: Rate,
    /// Commands (WebSocket and HTTP) and authenticated HTTP calls of one member.
    pub member_rate: Rate,
    /// Events replayed by catch-ups (`since`, `sync`), all sockets of the node together:
    /// a catch-up waits for its next page's share, so catch-ups cannot crowd out the
    /// node's other work however many ask at once.
    pub catchup_rate: Rate,
    /// Households whose projection the node keeps for `GET` of a room's state (least
    /// recently used dropped first); a kept view is brought up to date with only the
    /// events after it.
    pub kept_views: usize,
    /// Bytes of welcome frames (each carries the household's most recent orders, at most 128 KiB by default) being sent at
    /// once, the whole node: further joins wait their turn.
    pub welcome_bytes_in_flight: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_connections: 8_192,
            max_connections_per_address: 256,
            header_timeout: Duration::from_secs(10),
            max_sockets_per_member: 16,
            max_sockets_per_room: 256,
            address_rate: Rate::new(200, 100.0),
            signup_rate: Rate::new(20, 20.0 / 60.0),
            member_rate: Rate::new(50, 20.0),
            catchup_rate: Rate::new(5_000, 20_000.0),
            kept_views: 1_024,
            welcome_bytes_in_flight: 64 * 1024 * 1024,
        }
    }
}

/// Why the edge refused.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Refusal {
    /// Too fast: retry after this long.
    RateLimited {
        what: &'static str,
        /// The `hearth_refused_total` label of this rate.
        reason: &'static str,
        rate: Rate,
        retry_after: Duration,
        id: Option<CommandId>,
    },
    TooManyConnections {
        per_address: bool,
        max: usize,
    },
    TooManySockets {
        per_member: bool,
        max: usize,
    },
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::RateLimited { .. } => codes::RATE_LIMITED,
            Refusal::TooManyConnections { .. } => codes::TOO_MANY_CONNECTIONS,
            Refusal::TooManySockets { .. } => codes::TOO_MANY_SOCKETS,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::RateLimited {
                what,
                rate,
                id: Some(id),
                ..
            } => format!(
                "command {id} refused: too many {what}: at most {}",
                rate.describe()
            ),
            Refusal::RateLimited { what, rate, .. } => {
                format!("too many {what}: at most {}", rate.describe())
            }
            Refusal::TooManyConnections {
                per_address: true,
                max,
            } => format!("at most {max} open connections from one address"),
            Refusal::TooManyConnections { max, .. } => {
                format!("the server holds its maximum of {max} connections; retry later")
            }
            Refusal::TooManySockets {
                per_member: true,
                max,
            } => format!("at most {max} open sockets for one member; close one first"),
            Refusal::TooManySockets { max, .. } => {
                format!("at most {max} open sockets in one household; close one first")
            }
        }
    }

    /// Whole seconds to wait before retrying (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Refusal::RateLimited { retry_after, .. } => {
                retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)
            }
            _ => 1,
        }
        .max(1)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::TooManyConnections {
                per_address: false, ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The `reason` label of `hearth_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::RateLimited { reason, .. } => reason,
            Refusal::TooManyConnections {
                per_address: true, ..
            } => reasons::CONNECTIONS_PER_ADDRESS,
            Refusal::TooManyConnections { .. } => reasons::CONNECTIONS,
            Refusal::TooManySockets {
                per_member: true, ..
            } => reasons::SOCKETS_PER_MEMBER,
            Refusal::TooManySockets { .. } => reasons::SOCKETS_PER_ROOM,
        }
    }

    /// The refusal as the socket's `{"error": ...}`, naming the command it refused.
    pub fn to_bad_input(&self) -> wire::BadInput {
        let id = match self {
            Refusal::RateLimited { id, .. } => *id,
            _ => None,
        };
        wire::BadInput::new(self.code(), self.message()).with_id(id)
    }
}

const WHAT_REQUESTS: &str = "requests from this address";
const WHAT_SIGNUPS: &str = "households created or joined from this address";
const WHAT_MEMBER: &str = "commands and calls from this member";

/// The `reason` labels of `hearth_refused_total` for the edge's limits (the metrics list
/// them from here).
pub(crate) mod reasons {
    pub const RATE_ADDRESS: &str = "rate_address";
    pub const RATE_SIGNUP: &str = "rate_signup";
    pub const RATE_MEMBER: &str = "rate_member";
    pub const CONNECTIONS: &str = "connections";
    pub const CONNECTIONS_PER_ADDRESS: &str = "connections_per_address";
    pub const SOCKETS_PER_MEMBER: &str = "sockets_per_member";
    pub const SOCKETS_PER_ROOM: &str = "sockets_per_room";
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = self.to_bad_input().to_message().to_json();
        let mut response = (
            self.status(),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Ok(value) = HeaderValue::from_str(&self.retry_after_secs().to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// One keyed GCRA limiter.
struct Keyed<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    rate: Rate,
    what: &'static str,
    reason: &'static str,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(rate: Rate, what: &'static str, reason: &'static str) -> Self {
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(rate.quota()),
            rate,
            what,
            reason,
        }
    }

    fn check(&self, key: &K, id: Option<CommandId>) -> Result<(), Refusal> {
        self.limiter
            .check_key(key)
            .map_err(|not_until| Refusal::RateLimited {
                what: self.what,
                reason: self.reason,
                rate: self.rate,
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
                id,
            })
    }

    fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[derive(Debug, Default)]
struct SocketCounts {
    per_member: HashMap<(HouseholdId, MemberId), usize>,
    per_room: HashMap<HouseholdId, usize>,
}

/// The node's limits, shared by the listener, the HTTP routes and the sockets.
pub(crate) struct Limits {
    settings: LimitSettings,
    metrics: Arc<Metrics>,
    address: Keyed<IpAddr>,
    signup: Keyed<IpAddr>,
    member: Keyed<(HouseholdId, MemberId)>,
    sockets: Mutex<SocketCounts>,
    connections: Mutex<Connections>,
}

#[derive(Debug, Default)]
struct Connections {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Limits {
    pub fn new(settings: LimitSettings, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            address: Keyed::new(settings.address_rate, WHAT_REQUESTS, reasons::RATE_ADDRESS),
            signup: Keyed::new(settings.signup_rate, WHAT_SIGNUPS, reasons::RATE_SIGNUP),
            member: Keyed::new(settings.member_rate, WHAT_MEMBER, reasons::RATE_MEMBER),
            sockets: Mutex::default(),
            connections: Mutex::default(),
            settings,
            metrics,
        })
    }

    pub fn settings(&self) -> &LimitSettings {
        &self.settings
    }

    fn counted<T>(&self, result: Result<T, Refusal>) -> Result<T, Refusal> {
        if let Err(refusal) = &result {
            self.metrics.refused(refusal.reason());
        }
        result
    }

    /// Any request from `address`.
    pub fn request(&self, address: IpAddr) -> Result<(), Refusal> {
        self.counted(self.address.check(&address, None))
    }

    /// Creating or joining a household from `address`.
    pub fn signup(&self, address: IpAddr) -> Result<(), Refusal> {
        self.counted(self.signup.check(&address, None))
    }

    /// A command or an authenticated call of a member; `id` names the command refused.
    pub fn member(
        &self,
        household: HouseholdId,
        member: MemberId,
        id: Option<CommandId>,
    ) -> Result<(), Refusal> {
        self.counted(self.member.check(&(household, member), id))
    }

    /// Drops the rate state of keys idle long enough to be full again (bounds memory).
    pub fn forget_idle(&self) {
        self.address.forget_idle();
        self.signup.forget_idle();
        self.member.forget_idle();
    }

    /// A WebSocket for `member` in `room`: held until the permit drops.
    pub fn open_socket(
        self: &Arc<Self>,
        room: HouseholdId,
        member: MemberId,
    ) -> Result<SocketPermit, Refusal> {
        let mut counts = lock(&self.sockets);
        let of_member = counts.per_member.get(&(room, member)).copied().unwrap_or(0);
        let of_room = counts.per_room.get(&room).copied().unwrap_or(0);
        let refusal = if of_member >= self.settings.max_sockets_per_member {
            Some(Refusal::TooManySockets {
                per_member: true,
                max: self.settings.max_sockets_per_member,
            })
        } else if of_room >= self.settings.max_sockets_per_room {
            Some(Refusal::TooManySockets {
                per_member: false,
                max: self.settings.max_sockets_per_room,
            })
        } else {
            None
        };
        if let Some(refusal) = refusal {
            drop(counts);
            return self.counted(Err(refusal));
        }
        *counts.per_member.entry((room, member)).or_default() += 1;
        *counts.per_room.entry(room).or_default() += 1;
        Ok(SocketPermit {
            limits: self.clone(),
            room,
            member,
        })
    }

    /// A connection from `address` on the listener.
    pub fn open_connection(self: &Arc<Self>, address: IpAddr) -> Result<ConnectionPermit, Refusal> {
        let mut connections = lock(&self.connections);
        if connections.total >= self.settings.max_connections {
            return self.counted(Err(Refusal::TooManyConnections {
                per_address: false,
                max: self.settings.max_connections,
            }));
        }
        let count = connections.per_address.get(&address).copied().unwrap_or(0);
        if count >= self.settings.max_connections_per_address {
            drop(connections);
            return self.counted(Err(Refusal::TooManyConnections {
                per_address: true,
                max: self.settings.max_connections_per_address,
            }));
        }
        connections.total += 1;
        *connections.per_address.entry(address).or_default() += 1;
        Ok(ConnectionPermit {
            limits: self.clone(),
            address,
        })
    }
}

/// An open WebSocket, counted until dropped.
#[derive(Debug)]
pub(crate) struct SocketPermit {
    limits: Arc<Limits>,
    room: HouseholdId,
    member: MemberId,
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        let mut counts = lock(&self.limits.sockets);
        let SocketCounts {
            per_member,
            per_room,
        } = &mut *counts;
        decrement(per_member, &(self.room, self.member));
        decrement(per_room, &self.room);
    }
}

/// An open connection, counted until dropped.
#[derive(Debug)]
pub(crate) struct ConnectionPermit {
    limits: Arc<Limits>,
    address: IpAddr,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut connections = lock(&self.limits.connections);
        connections.total = connections.total.saturating_sub(1);
        decrement(&mut connections.per_address, &self.address);
    }
}

fn decrement<K: Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = map.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            map.remove(key);
        }
    }
}

/// Paces catch-ups node-wide ([`LimitSettings::catchup_rate`]).
pub(crate) struct CatchupPacer {
    limiter: governor::DefaultDirectRateLimiter,
    burst: u32,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for CatchupPacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatchupPacer")
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

impl CatchupPacer {
    pub fn new(rate: Rate, metrics: Arc<Metrics>) -> Self {
        Self {
            limiter: governor::RateLimiter::direct(rate.quota()),
            burst: rate.burst.max(1),
            metrics,
        }
    }

    /// Waits until `events` more may be replayed (at most the burst at a time).
    pub async fn take(&self, events: u32) {
        let n = NonZeroU32::new(events.clamp(1, self.burst)).unwrap_or(NonZeroU32::MIN);
        let mut waited = false;
        loop {
            match self.limiter.check_n(n) {
                Ok(Ok(())) => break,
                Ok(Err(not_until)) => {
                    waited = true;
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
                }
                // More than the burst: cannot happen after the clamp.
                Err(_) => break,
            }
        }
        if waited {
            self.metrics
                .catchup_waits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The client address of a request (set by [`crate::listener`]).
pub(crate) fn client_address(request: &axum::extract::Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
}

/// Middleware: every request counts against its client address.
pub(crate) async fn per_address(
    axum::extract::State(app): axum::extract::State<Arc<crate::app::AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(address) = client_address(&request)
        && let Err(refusal) = app.limits.request(address)
    {
        return refusal.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_allows_its_burst_then_refuses_with_a_wait() {
        let limits = Limits::new(
            LimitSettings {
                signup_rate: Rate::new(3, 1.0 / 60.0),
                ..LimitSettings::default()
            },
            Arc::new(Metrics::default()),
        );
        let ip: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..3 {
            assert_eq!(limits.signup(ip), Ok(()));
        }
        let refusal = limits.signup(ip).unwrap_err();
        assert_eq!(refusal.code(), codes::RATE_LIMITED);
        assert!(
            (50..=60).contains(&refusal.retry_after_secs()),
            "{refusal:?}"
        );
        // Another address has its own allowance.
        assert_eq!(limits.signup([10, 0, 0, 1].into()), Ok(()));
    }

    #[test]
    fn socket_and_connection_permits_are_given_back_on_drop() {
        let limits = Limits::new(
            LimitSettings {
                max_sockets_per_member: 2,
                max_sockets_per_room: 3,
                max_connections_per_address: 1,
                ..LimitSettings::default()
            },
            Arc::new(Metrics::default()),
        );
        let room = HouseholdId(uuid::Uuid::now_v7());
        let (ann, bob) = (
            MemberId(uuid::Uuid::now_v7()),
            MemberId(uuid::Uuid::now_v7()),
        );
        let a1 = limits.open_socket(room, ann).unwrap();
        let _a2 = limits.open_socket(room, ann).unwrap();
        assert!(matches!(
            limits.open_socket(room, ann),
            Err(Refusal::TooManySockets {
                per_member: true,
                ..
            })
        ));
        let _b1 = limits.open_socket(room, bob).unwrap();
        assert!(matches!(
            limits.open_socket(room, bob),
            Err(Refusal::TooManySockets {
                per_member: false,
                ..
            })
        ));
        drop(a1);
        let _b2 = limits.open_socket(room, bob).unwrap();

        let ip: IpAddr = [127, 0, 0, 1].into();
        let c = limits.open_connection(ip).unwrap();
        assert!(limits.open_connection(ip).is_err());
        drop(c);
        assert!(limits.open_connection(ip).is_ok());
        drop(limits.open_connection(ip));
        let connections = lock(&limits.connections);
        assert_eq!(connections.total, 0);
        assert!(connections.per_address.is_empty(), "no entry left behind");
    }
}
