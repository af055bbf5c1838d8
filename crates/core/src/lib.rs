//! Hearth's core: the hexagon.
//!
//! Everything here is pure: no I/O, no async runtime, no database, web or
//! Temporal crate (a workspace test, `tests/purity.rs`, enforces it).
//! Adapters implement the [`ports`]; the composition root wires them into an
//! [`service::OrderService`].

mod cache;
pub mod contracts;
pub mod fulfilment;
pub mod ids;
pub mod order;
pub mod ports;
pub mod process;
pub mod projection;
pub mod reconcile;
pub mod service;

pub use contracts::{
    Actor, CommandEnvelope, CommandMetadata, CommandOutcome, EventEnvelope, EventMetadata,
    ExternalEvent, NewEvent,
};
pub use ids::{CommandId, EventId, HouseholdId, MemberId, OrderId, SessionId};
pub use order::{Command, DomainError, Event, OrderLine, OrderState, OrderStatus, Refusal};
pub use projection::HouseholdView;
pub use service::{Dispatched, OrderService, ServiceError};

/// Timestamps everywhere are UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
