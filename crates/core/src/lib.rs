//! Hearth's core: the hexagon.
//!
//! Everything here is pure: no I/O, no async runtime, no database, web or
//! Temporal crate (a workspace test, `tests/purity.rs`, enforces it).
//! Adapters implement the [`ports`]; the composition root wires them into a
//! [`service::Service`], which serves every domain in the [`registry`].

mod cache;
pub mod catalog;
pub mod chore;
pub mod contracts;
pub mod domain;
pub mod durable;
pub mod fulfilment;
pub mod ids;
pub mod membership;
pub mod order;
pub mod people;
pub mod ports;
pub mod process;
pub mod projection;
pub mod reconcile;
pub mod registry;
pub mod service;
pub mod trace;
pub mod window;

pub use catalog::{CatalogEntries, CatalogItem};
pub use contracts::{
    Actor, CommandEnvelope, CommandMetadata, CommandOutcome, EventEnvelope, EventMetadata,
    ExternalEvent, NewEvent,
};
pub use domain::{AggregateId, Context, Domain, JobKind, Rule};
pub use ids::{CommandId, EventId, HouseholdId, MemberId, OrderId, SessionId};
pub use order::{Command, DomainError, Event, OrderLine, OrderState, OrderStatus, Orders, Refusal};
pub use projection::HouseholdView;
pub use registry::{AnyCommand, AnyEvent, DomainId, Registered};
pub use service::{Dispatched, Received, Refused, Service, ServiceError, SnapshotWriter};

/// Timestamps everywhere are UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;
