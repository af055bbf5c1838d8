//! Hearth's realtime rooms: a PartyKit-compatible WebSocket and HTTP adapter on axum.
//!
//! The real `partysocket` client connects unchanged to
//! `/parties/household/<household id>?_pk=<id>&token=<jwt>`; the protocol is in
//! [`wire`] and documented in `docs/rooms.md`. The server runs on any store: it takes
//! its ports as trait objects ([`Ports`]).

mod app;
pub mod auth;
mod changes;
mod commands;
mod http;
mod limits;
mod listener;
mod members;
mod metrics;
mod origins;
mod ready;
mod room;
mod rooms;
mod sessions;
mod socket;
mod socket_queue;
pub mod webhooks;
pub mod wire;

pub use app::{Application, Ports, ServeError, Settings};
pub use auth::{Claims, TokenError, TokenSecret, Tokens};
pub use http::{
    AcceptInvite, CreateHousehold, CreateInvite, InvitePreview, Membership, Refresh, Refreshed,
    RoomEvents, RoomState, SessionView, SetRole, SetTimeZone,
};
pub use limits::{LimitSettings, Rate};
pub use metrics::Metrics;
pub use origins::{LoopbackOrigins, Origin, OriginError};
pub use ready::{NotReady, ReadyCheck};
pub use sessions::Issued;
