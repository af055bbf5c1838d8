//! Ports: what the core needs from the outside world. Each has at least two real
//! implementations (in-memory plus a technology), injected as `Arc<dyn Port>`.

use crate::Timestamp;
use crate::contracts::{CommandEnvelope, CommandOutcome, EventEnvelope, NewEvent};
use crate::domain::AggregateId;
pub use crate::domain::JobKind;
use crate::ids::{CommandId, EventId, HouseholdId, OrderId};
use crate::order::OrderLine;
use async_trait::async_trait;
use futures_core::Stream;
use serde::{Deserialize, Serialize};
use std::pin::Pin;
use uuid::Uuid;

// ---------------------------------------------------------------------------
// EventStore
// ---------------------------------------------------------------------------

/// One append: a command and what was decided about it. Stored in one transaction.
#[derive(Clone, Debug)]
pub struct Append {
    pub command: CommandEnvelope,
    pub decision: Decision,
}

#[derive(Clone, Debug)]
pub enum Decision {
    /// Events for one aggregate, valid only if the stream is still at `expected_version`.
    /// An empty list records the command as accepted without touching the stream.
    Events {
        aggregate: AggregateId,
        expected_version: u32,
        events: Vec<NewEvent>,
    },
    /// A broken rule: the command is recorded as rejected, nothing else changes.
    Rejected { code: String, message: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Appended {
    /// Stored now. `seq` is the household position after the last event.
    Committed {
        events: Vec<EventEnvelope>,
        outcome: CommandOutcome,
    },
    /// The command id was already recorded: here is what became of it then.
    /// Nothing was written.
    Duplicate(CommandOutcome),
}

/// A stream as loaded for a decision: the latest usable snapshot, then the events after it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Loaded {
    pub snapshot: Option<Snapshot>,
    pub events: Vec<EventEnvelope>,
}

/// A cached state of one aggregate at `version` (the seed's `aggregates` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub tenant: HouseholdId,
    pub aggregate: AggregateId,
    pub version: u32,
    pub schema_version: u32,
    pub state: serde_json::Value,
}

/// Durable work recorded in the same transaction as the event that needs it (outbox).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Equal to the id of the event that asked for it.
    pub id: EventId,
    pub tenant: HouseholdId,
    /// The aggregate whose process the job starts or wakes.
    pub aggregate: AggregateId,
    pub kind: JobKind,
    pub command_id: CommandId,
    /// The correlation id of the command whose event asked for the job (stored with
    /// the event): the process's commands, provider calls and spans carry it on. A job
    /// recorded before stores kept it reads as its command id.
    pub correlation_id: Uuid,
    /// The W3C `traceparent` of the command's span, when traces are exported: the
    /// job's work continues the command's trace (`trace::continue_from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub created_at: Timestamp,
}

impl Job {
    /// The job an event of `command` asks for, if it asks for one: with the command's
    /// trace context.
    pub fn for_append(command: &CommandEnvelope, event: &EventEnvelope) -> Option<Self> {
        let mut job = Self::for_event(event)?;
        job.traceparent = command.metadata.traceparent.clone();
        Some(job)
    }

    /// The job an event asks for, if it asks for one (no trace context).
    pub fn for_event(event: &EventEnvelope) -> Option<Self> {
        if !event.requires_job {
            return None;
        }
        Some(Job {
            id: event.id,
            tenant: event.tenant,
            aggregate: event.aggregate(),
            kind: event.event.job()?,
            command_id: event.metadata.command_id,
            correlation_id: event.metadata.correlation_id,
            traceparent: None,
            created_at: event.created_at,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Optimistic concurrency: the stream moved past `expected` since it was loaded.
    #[error("version conflict on {aggregate}: expected version {expected}")]
    VersionConflict {
        aggregate: AggregateId,
        expected: u32,
    },
    /// The store cannot be reached or refused the operation; retrying may help.
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// Stored data cannot be read back (a bug or a schema the code no longer knows).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// The event log of every household.
#[async_trait]
pub trait EventStore: Send + Sync + std::fmt::Debug {
    /// Stores a command and its decision atomically: the command id (a repeat gets
    /// `Duplicate` and writes nothing), the household's next `seq` values (gap-free,
    /// commit-ordered), the events (or `VersionConflict`), a job for each event that
    /// requires one, and a ring of the feed's doorbell.
    async fn append(&self, append: Append) -> Result<Appended, StoreError>;

    /// The latest snapshot of `snapshot_schema` (older schemas are ignored) and the
    /// events after it, in version order.
    async fn load(
        &self,
        tenant: HouseholdId,
        aggregate: AggregateId,
        snapshot_schema: u32,
    ) -> Result<Loaded, StoreError>;

    /// Up to `limit` events of one household with `seq > after`, in `seq` order.
    async fn read_feed(
        &self,
        tenant: HouseholdId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError>;

    /// The household's last `seq` (0 when it has no events).
    async fn head(&self, tenant: HouseholdId) -> Result<u64, StoreError>;

    /// What became of a command id, if it was recorded.
    async fn outcome(
        &self,
        tenant: HouseholdId,
        command_id: CommandId,
    ) -> Result<Option<CommandOutcome>, StoreError>;

    /// Caches a state; a snapshot older than the stored one is ignored.
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError>;
}

// ---------------------------------------------------------------------------
// Outbox
// ---------------------------------------------------------------------------

/// The jobs an [`EventStore`] recorded with the events that asked for them, as durable
/// work sees them: the one seam that reads across households. Which role may do that
/// is the adapter's business (PostgreSQL: the relay role; docs/postgres.md).
#[async_trait]
pub trait Outbox: Send + Sync + std::fmt::Debug {
    /// Jobs recorded but not yet started, oldest first, across households.
    async fn pending_jobs(&self, limit: usize) -> Result<Vec<Job>, StoreError>;

    /// Marks a job as taken care of: it is no longer pending. Idempotent.
    async fn mark_job_started(&self, tenant: HouseholdId, job: EventId) -> Result<(), StoreError>;
}

// ---------------------------------------------------------------------------
// EventFeed
// ---------------------------------------------------------------------------

/// A doorbell, not the data: readers fetch events from their cursor with
/// [`EventStore::read_feed`], so a lost signal delays delivery but never loses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedSignal {
    /// Household `tenant` has committed events up to at least `seq`.
    Committed { tenant: HouseholdId, seq: u64 },
    /// Signals may have been missed (lag, reconnect): every reader should re-read
    /// from its cursor.
    Resync,
}

pub type FeedStream = Pin<Box<dyn Stream<Item = FeedSignal> + Send>>;

/// Subscribes to newly committed household events.
pub trait EventFeed: Send + Sync + std::fmt::Debug {
    /// Signals from now on. Signals for commits made before the call may or may not
    /// arrive: subscribe first, then read from the cursor.
    fn subscribe(&self) -> FeedStream;

    /// Whether the feed is connected to what rings it, for a readiness check: `None`
    /// when that cannot fail (an in-process doorbell).
    fn listening(&self) -> Option<bool> {
        None
    }
}

// ---------------------------------------------------------------------------
// JobScheduler
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    #[error("job scheduler unavailable: {0}")]
    Unavailable(String),
    #[error("job rejected by the scheduler: {0}")]
    Rejected(String),
}

/// What the relay does with a job's outbox row once the scheduler has taken the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handoff {
    /// The scheduler holds the job durably now (Temporal): mark it started.
    Durable,
    /// The scheduler runs the job in this process and marks it itself when the work
    /// ends (the embedded executor): the pending row stays the job's durable state.
    InProcess,
}

/// Durably starts the work a job stands for. Starting the same job twice is a no-op.
#[async_trait]
pub trait JobScheduler: Send + Sync + std::fmt::Debug {
    async fn start(&self, job: Job) -> Result<Handoff, SchedulerError>;
}

// ---------------------------------------------------------------------------
// Payments, Inventory and Catalog (external providers)
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Worth retrying (timeout, 5xx, connection refused).
    #[error("provider failed transiently: {0}")]
    Transient(String),
    /// The payment was declined; retrying will not help.
    #[error("payment declined: {0}")]
    Declined(String),
    /// The inventory cannot supply this sku.
    #[error("out of stock: {sku}")]
    OutOfStock { sku: String },
    /// The request was malformed or refers to something unknown; retrying will not help.
    #[error("provider refused the request: {0}")]
    Invalid(String),
}

impl ProviderError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProviderError::Transient(_))
    }
}

/// Every provider call carries an idempotency key: repeating a call with the same
/// key returns the first result and has no second effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaptureRequest {
    pub key: Uuid,
    pub tenant: HouseholdId,
    pub order_id: OrderId,
    pub amount_cents: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundRequest {
    pub key: Uuid,
    pub tenant: HouseholdId,
    pub payment_id: String,
    pub amount_cents: u64,
}

#[async_trait]
pub trait Payments: Send + Sync + std::fmt::Debug {
    /// Captures the amount; returns the payment id.
    async fn capture(&self, request: CaptureRequest) -> Result<String, ProviderError>;
    /// Refunds a capture; returns the refund id.
    async fn refund(&self, request: RefundRequest) -> Result<String, ProviderError>;
    /// The provider's ledger: the capture that took effect under `key`, if any (a
    /// declined or failed attempt is none). How the process finds a charge whose
    /// result never reached the log (the order closed meanwhile, or the caller died).
    async fn find_capture(&self, key: Uuid) -> Result<Option<Capture>, ProviderError>;
    /// The provider's ledger, paged: up to `limit` captures with `position > after`, in
    /// the order they took effect (a provider may return fewer than `limit` and caps
    /// it; an empty page is the end). What the reconciler compares with the log.
    async fn capture_ledger(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<CaptureEntry>, ProviderError>;
}

/// Most ledger entries a provider returns in one page, whatever was asked.
pub const MAX_LEDGER_PAGE: usize = 1_000;

/// One capture in a provider's ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaptureEntry {
    /// Its place in the ledger, from 1, in the order captures took effect.
    pub position: u64,
    /// The idempotency key it was made under (the provider's, so any string).
    pub key: String,
    /// The household and order the caller named.
    pub tenant: HouseholdId,
    pub order_id: OrderId,
    pub payment_id: String,
    pub amount_cents: u64,
    /// Whether it was refunded since.
    pub refunded: bool,
}

/// One reservation in a provider's ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationEntry {
    /// Its place in the ledger, from 1, in the order reservations took effect.
    pub position: u64,
    pub key: String,
    pub tenant: HouseholdId,
    pub order_id: OrderId,
    pub reservation_id: String,
    /// Whether the stock is still held (not released).
    pub held: bool,
}

/// A capture as the provider's ledger holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capture {
    pub payment_id: String,
    pub amount_cents: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReserveRequest {
    pub key: Uuid,
    pub tenant: HouseholdId,
    pub order_id: OrderId,
    pub lines: Vec<OrderLine>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseRequest {
    pub key: Uuid,
    pub tenant: HouseholdId,
    pub reservation_id: String,
}

pub use crate::catalog::CatalogItem;

#[async_trait]
pub trait Inventory: Send + Sync + std::fmt::Debug {
    /// Reserves every line or none; returns the reservation id.
    async fn reserve(&self, request: ReserveRequest) -> Result<String, ProviderError>;
    /// Releases a reservation.
    async fn release(&self, request: ReleaseRequest) -> Result<(), ProviderError>;
    /// The provider's ledger: the id of the reservation that took effect under `key`,
    /// if any (held or released since; a refused attempt is none).
    async fn find_reservation(&self, key: Uuid) -> Result<Option<String>, ProviderError>;
    /// The provider's ledger, paged: up to `limit` reservations with `position > after`,
    /// in the order they took effect (capped by the provider; an empty page is the end).
    async fn reservation_ledger(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ReservationEntry>, ProviderError>;
}

/// The catalog (served by the Inventory provider): what can be ordered, with its name,
/// unit price and how many are available. The service reads it before deciding a
/// command that names skus (guarantee 8: prices, names and availability come from
/// here, never from the client); `GET /catalog` shows members the same entries.
#[async_trait]
pub trait Catalog: Send + Sync + std::fmt::Debug {
    /// Every item, in the catalog's order. An adapter may answer from a copy a few
    /// seconds old (the HTTP one does); the provider's reservation is the last word on
    /// stock.
    async fn items(&self) -> Result<Vec<CatalogItem>, ProviderError>;
}

// ---------------------------------------------------------------------------
// Clock
// ---------------------------------------------------------------------------

/// The time, as the core sees it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Timestamp;
}

// ---------------------------------------------------------------------------
// Directory: households, members, invites
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Household {
    pub id: HouseholdId,
    pub name: String,
    /// The household's time zone, an IANA name ("Europe/Berlin"): every member sees and
    /// picks times in it, wherever they are. Set when the household is created (the
    /// creator's zone), changed by an owner; checked by the edge that accepts it.
    pub time_zone: String,
    pub created_at: Timestamp,
}

/// The time zone of a household that was never given one (those created before zones,
/// and a creator that names none).
pub const DEFAULT_TIME_ZONE: &str = "UTC";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// Created the household, or was made an owner by one: invites, removes members,
    /// makes others owners. A household always keeps at least one.
    Owner,
    /// Joined by invite: uses the household and may leave it.
    Member,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub household: HouseholdId,
    pub id: crate::ids::MemberId,
    pub name: String,
    pub role: Role,
    pub joined_at: Timestamp,
}

/// A current member of a household with the ids of their sessions still going: one
/// line of what [`Directory::roster`] answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrolled {
    pub member: Member,
    /// Not ended, in no particular order.
    pub sessions: Vec<crate::ids::SessionId>,
}

/// A single-use invitation into a household, valid until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Invite {
    pub household: HouseholdId,
    /// Secret, random, URL-safe.
    pub code: String,
    pub created_by: crate::ids::MemberId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("household {0} already exists")]
    HouseholdExists(HouseholdId),
    #[error("household {0} does not exist")]
    NoSuchHousehold(HouseholdId),
    #[error("member {0} already exists")]
    MemberExists(crate::ids::MemberId),
    #[error("no such invite")]
    InviteNotFound,
    #[error("the invite expired")]
    InviteExpired,
    #[error("the invite was already used")]
    InviteUsed,
    #[error("member {0} is not a member of this household")]
    NoSuchMember(crate::ids::MemberId),
    /// Removing, or demoting, this member would leave the household without an owner.
    #[error("the household must keep at least one owner: make another member an owner first")]
    LastOwner,
    /// No session has this credential (or this id, for this member) in the household.
    #[error("no such session")]
    SessionNotFound,
    /// The session was ended (by its member, by a removal, or after a reuse).
    #[error("the session was ended")]
    SessionEnded,
    /// A refresh credential already rotated was presented again: someone else may hold
    /// a copy, so the session is ended (reuse detection).
    #[error("this refresh credential was already used; the session is ended")]
    CredentialReused(crate::ids::SessionId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A member's session on one device. Its refresh credential is kept only as a hash
/// ([`CredentialHash`]); each refresh replaces it, and the old one stays known as
/// rotated, so presenting it again is detected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub household: HouseholdId,
    pub id: crate::ids::SessionId,
    pub member: crate::ids::MemberId,
    /// What the device called itself when the session began (shortened), for the
    /// member's list of their sessions.
    pub device: String,
    pub created_at: Timestamp,
    /// The last refresh (or the start).
    pub last_used_at: Timestamp,
}

/// The hash of a refresh credential (lowercase hex of its SHA-256): what the
/// directory stores and looks up; the credential itself is never stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CredentialHash(pub String);

/// Who belongs to which household. Every call is scoped to one household.
#[async_trait]
pub trait Directory: Send + Sync + std::fmt::Debug {
    /// Creates a household with its owner.
    async fn create_household(
        &self,
        household: Household,
        owner: Member,
    ) -> Result<(), DirectoryError>;
    async fn household(&self, id: HouseholdId) -> Result<Option<Household>, DirectoryError>;
    /// Sets the household's time zone (an IANA name the caller checked), and returns the
    /// household as it is now. Refused with `NoSuchHousehold`.
    async fn set_time_zone(
        &self,
        id: HouseholdId,
        time_zone: &str,
    ) -> Result<Household, DirectoryError>;
    async fn member(
        &self,
        household: HouseholdId,
        member: crate::ids::MemberId,
    ) -> Result<Option<Member>, DirectoryError>;
    async fn members(&self, household: HouseholdId) -> Result<Vec<Member>, DirectoryError>;
    async fn create_invite(&self, invite: Invite) -> Result<(), DirectoryError>;
    /// Uses the invite `code` of `household` at `now` to add `member`: refused when the
    /// code is unknown (in this household), expired or already used. Atomic: one
    /// invite admits one member, whatever the concurrency.
    async fn accept_invite(
        &self,
        household: HouseholdId,
        code: &str,
        member: Member,
        now: Timestamp,
    ) -> Result<Member, DirectoryError>;
    /// The invite `code` of `household` as it stands at `now`: refused as
    /// `accept_invite` would refuse it (unknown, used, expired). Reads only.
    async fn invite(
        &self,
        household: HouseholdId,
        code: &str,
        now: Timestamp,
    ) -> Result<Invite, DirectoryError>;
    /// Removes `member` (removal and leaving alike) and ends all of their sessions, in
    /// one step. Refused with `NoSuchMember` when they are not (or no longer) a member
    /// and with `LastOwner` when they are the household's only owner. A removed member
    /// is gone from `member` and `members`; their id is never reused.
    async fn remove_member(
        &self,
        household: HouseholdId,
        member: crate::ids::MemberId,
        now: Timestamp,
    ) -> Result<Member, DirectoryError>;
    /// Sets `member`'s role. Refused with `NoSuchMember`, and with `LastOwner` when it
    /// would demote the household's only owner. Atomic with respect to other role
    /// changes and removals: two owners demoting each other leave one.
    async fn set_role(
        &self,
        household: HouseholdId,
        member: crate::ids::MemberId,
        role: Role,
    ) -> Result<Member, DirectoryError>;
    /// Records a new session of a current member with its first credential's hash.
    /// Refused with `NoSuchMember` when the member is not (or no longer) a member.
    async fn create_session(
        &self,
        session: Session,
        credential: &CredentialHash,
    ) -> Result<(), DirectoryError>;
    /// Rotates a session's credential: `presented` must be its current one, which is
    /// replaced by `next`, and `last_used_at` becomes `now`. Refused with
    /// `SessionNotFound` (no session ever had `presented`), `SessionEnded`, or
    /// `CredentialReused` (`presented` was already rotated: the session is ended by
    /// this call, durably, before it answers).
    async fn refresh_session(
        &self,
        household: HouseholdId,
        presented: &CredentialHash,
        next: &CredentialHash,
        now: Timestamp,
    ) -> Result<Session, DirectoryError>;
    /// The session `id` if it is still going (not ended, its member not removed).
    async fn session(
        &self,
        household: HouseholdId,
        id: crate::ids::SessionId,
    ) -> Result<Option<Session>, DirectoryError>;
    /// Who may act in `household` now, in one read: each current member (as `members`
    /// lists them, in that order) with the ids of their sessions still going. What a
    /// node keeps to check tokens, so a household costs one read per the keeping's
    /// lifetime whatever the number of its members, sockets and sessions.
    async fn roster(&self, household: HouseholdId) -> Result<Vec<Enrolled>, DirectoryError>;
    /// `member`'s sessions still going, oldest first.
    async fn sessions(
        &self,
        household: HouseholdId,
        member: crate::ids::MemberId,
    ) -> Result<Vec<Session>, DirectoryError>;
    /// Ends `member`'s session `id`: `SessionNotFound` when it is not theirs or
    /// already ended.
    async fn end_session(
        &self,
        household: HouseholdId,
        member: crate::ids::MemberId,
        id: crate::ids::SessionId,
        now: Timestamp,
    ) -> Result<(), DirectoryError>;
}
