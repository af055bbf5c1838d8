//! What a household domain is (DESIGN.md section 10): its pure rules as a decider,
//! and the names the platform needs to route, store and show it.
//!
//! A domain is a type implementing [`Domain`] (the order domain: [`crate::order::Order`];
//! the chore rota: [`crate::chore::Chores`]) and a line in the registry
//! ([`crate::registry`]). Everything else (the service and its cache, the stores, the
//! rooms, the wire parser, the outbox and both durable-work adapters) works on the
//! registry's [`AnyCommand`](crate::AnyCommand) and [`AnyEvent`](crate::AnyEvent) and
//! needs no change for a new domain.

use crate::Timestamp;
use crate::catalog::CatalogEntries;
use crate::contracts::Actor;
use crate::ports::Role;
use crate::registry::DomainId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// What a decision may read besides the state: who asks, with which role in the
/// household (a member's, from the directory; `None` for a process or the system),
/// when, and the server's settings that rules read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    pub actor: Actor,
    pub role: Option<Role>,
    pub now: Timestamp,
    /// How long an order takes to prepare: one placed "as soon as possible" is expected
    /// ready this long after it is placed (the server's setting,
    /// [`ServiceConfig::prep_time`](crate::service::ServiceConfig::prep_time)).
    pub prep_time: chrono::Duration,
    /// The catalog entries the command named ([`Domain::catalog_skus`]), loaded by the
    /// service before deciding; empty for a command that names none.
    pub catalog: CatalogEntries,
}

impl Context {
    /// Whether the actor is an owner of the household.
    pub fn is_owner(&self) -> bool {
        self.role == Some(Role::Owner)
    }
}

/// An aggregate (a stream of events) of one domain: the domain and the id its
/// commands and events name. Ids are unique within a domain and a household; two
/// domains may use the same uuid without meeting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregateId {
    pub domain: DomainId,
    pub id: Uuid,
}

impl AggregateId {
    pub fn new(domain: DomainId, id: impl Into<Uuid>) -> Self {
        Self {
            domain,
            id: id.into(),
        }
    }
}

impl fmt::Display for AggregateId {
    /// `order/<uuid>`: the domain's name and the id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain.name(), self.id)
    }
}

/// A broken business rule of some domain, as the platform handles it: a stable code
/// (the wire's `rejected.code`), whether it is a conflict with the state at the time
/// (HTTP 409) rather than invalid whenever sent (422), and the message (`Display`).
pub trait Rule: std::error::Error + Clone + Send + Sync + 'static {
    fn code(&self) -> &'static str;
    fn is_conflict(&self) -> bool;
}

/// A refusal code as clients learn it: the code, whether it is a conflict, and a
/// sentence a person can read (what the web client shows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefusalInfo {
    pub code: &'static str,
    pub conflict: bool,
    pub sentence: &'static str,
}

/// What kind of durable work an event asks for (the outbox's `jobs.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JobKind {
    /// Start the aggregate's process (an order placed, a chore scheduled).
    Start,
    /// Wake the aggregate's running process so it looks at the state again at once (an
    /// order cancelled: compensate; a chore done: stop reminding).
    Wake,
}

impl JobKind {
    pub const ALL: [JobKind; 2] = [JobKind::Start, JobKind::Wake];

    /// The name stores keep (`jobs.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Start => "start",
            JobKind::Wake => "wake",
        }
    }

    /// The kind stored as `name`, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// A household domain as a decider: `initial`, `decide`, `evolve`, pure and
/// synchronous, plus the names and the durable-work hints the platform needs.
/// Implemented on a unit type; the registry lists it.
pub trait Domain: Send + Sync + 'static {
    /// Its place in the registry.
    const ID: DomainId;
    /// Schema version of the event payloads written today.
    const EVENT_SCHEMA_VERSION: u32;
    /// Schema version of the state's snapshots: bump it when the state changes shape,
    /// and older snapshots are ignored (rebuilt from events).
    const SNAPSHOT_SCHEMA_VERSION: u32;

    /// Commands, tagged on the wire as `{"type": ..., "payload": ...}`.
    type Command: Clone + fmt::Debug + Eq + Serialize + DeserializeOwned + Send + Sync;
    /// Events, tagged like commands.
    type Event: Clone + fmt::Debug + Eq + Serialize + DeserializeOwned + Send + Sync;
    /// One aggregate's state, folded from its events.
    type State: Clone + fmt::Debug + Default + Serialize + DeserializeOwned + Send + Sync;
    /// Its broken rules.
    type Rule: Rule;

    /// Every command type name, member commands first.
    const COMMAND_TYPES: &'static [&'static str];
    /// The command types a member may send (the others are its process's).
    const MEMBER_COMMAND_TYPES: &'static [&'static str];
    /// Every event type name.
    const EVENT_TYPES: &'static [&'static str];

    /// The aggregate a command addresses.
    fn command_aggregate(command: &Self::Command) -> Uuid;
    /// The aggregate an event belongs to.
    fn event_aggregate(event: &Self::Event) -> Uuid;
    fn command_type(command: &Self::Command) -> &'static str;
    fn event_type(event: &Self::Event) -> &'static str;
    /// Internal commands may only come from the process or the system, never a member.
    fn is_internal(command: &Self::Command) -> bool;
    /// Whether the command starts a new aggregate (its stream is expected empty): the
    /// service decides it without reading the store.
    fn creates(command: &Self::Command) -> bool;
    /// The skus whose catalog entries deciding the command reads (an order's lines):
    /// the service loads them from the [`Catalog`](crate::ports::Catalog) port before
    /// deciding and passes them in [`Context::catalog`], so the decision stays pure.
    /// None by default: most commands name nothing from the catalog.
    fn catalog_skus(_command: &Self::Command) -> Vec<String> {
        Vec::new()
    }

    /// How many events the state has folded (the stream's version).
    fn version(state: &Self::State) -> u32;
    fn decide(
        state: &Self::State,
        command: &Self::Command,
        ctx: &Context,
    ) -> Result<Vec<Self::Event>, Self::Rule>;
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// The durable work an event asks for, if any (the seed's `requiresJob`).
    fn job(event: &Self::Event) -> Option<JobKind>;

    /// Every refusal of the domain's rules.
    fn refusals() -> Vec<RefusalInfo>;
}
