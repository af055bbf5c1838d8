//! The spans that follow a command through Hearth, named once.
//!
//! Every span the path opens (a socket's connection, a command, its append, the
//! fan-out of its events, the job it asks for, each step of the process and each
//! provider call, each Temporal activity) is built by a function here, so a span's
//! name and its fields are written in one place; [`name`] and [`field`] spell them for
//! readers (tests, docs/tracing.md). `tracing` is a facade: it does no I/O, and what
//! becomes of a span (a log line, an OTLP export) is the composition root's choice.
//!
//! A correlation id groups everything one intent caused: the client's, or the command
//! id when the client gave none ([`CommandEnvelope::correlation_id`]). It is stored on
//! the command's events, carried by the job an event asks for ([`Job::correlation_id`])
//! and by the commands the process dispatches for it ([`Cause`]), and is a field of
//! every span below that concerns the command.

use crate::contracts::{CommandEnvelope, EventEnvelope};
use crate::domain::AggregateId;
use crate::ids::HouseholdId;
use crate::ports::Job;
use tracing::Span;
use tracing::field::Empty;
use uuid::Uuid;

/// Span names.
pub mod name {
    /// A WebSocket connection, open to close.
    pub const CONNECTION: &str = "connection";
    /// One command through the service: decide, append, retry.
    pub const COMMAND: &str = "command";
    /// One append to the event store.
    pub const APPEND: &str = "append";
    /// Committed events handed to this node's rooms.
    pub const FANOUT: &str = "fanout";
    /// A job (from the outbox) run by an executor.
    pub const JOB: &str = "job";
    /// One step of an aggregate's process.
    pub const STEP: &str = "process_step";
    /// One call to a provider (payments, inventory).
    pub const PROVIDER_CALL: &str = "provider_call";
    /// One Temporal activity.
    pub const ACTIVITY: &str = "activity";
}

/// Field names, the same on every span that has the field.
pub mod field {
    pub const HOUSEHOLD: &str = "household";
    pub const MEMBER: &str = "member";
    pub const CONNECTION: &str = "connection";
    pub const PEER: &str = "peer";
    pub const COMMAND_ID: &str = "command_id";
    pub const COMMAND_TYPE: &str = "command_type";
    pub const CORRELATION_ID: &str = "correlation_id";
    pub const CAUSATION_ID: &str = "causation_id";
    pub const FIRST_SEQ: &str = "first_seq";
    pub const LAST_SEQ: &str = "last_seq";
    pub const EVENTS: &str = "events";
    pub const AGGREGATE: &str = "aggregate";
    pub const JOB: &str = "job";
    pub const JOB_KIND: &str = "job_kind";
    pub const STEP: &str = "step";
    pub const PROVIDER: &str = "provider";
    pub const OPERATION: &str = "operation";
    pub const IDEMPOTENCY_KEY: &str = "idempotency_key";
    pub const ACTIVITY: &str = "activity";
}

/// What a process step acts on behalf of: the correlation id of the intent that asked
/// for the work and the event that asked (the job's id). The commands the step
/// dispatches carry both; a step with no job behind it (a reconciliation's repair)
/// carries neither, and its commands correlate to themselves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cause {
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
}

impl Cause {
    /// The cause of the work a job asks for.
    pub fn of(job: &Job) -> Self {
        Self {
            correlation_id: Some(job.correlation_id),
            causation_id: Some(job.id.0),
        }
    }
}

/// Displays an optional id as the id or nothing.
fn opt(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

/// A WebSocket connection: its household, member, connection id and peer address.
pub fn connection(
    household: HouseholdId,
    member: impl std::fmt::Display,
    connection: &str,
    peer: Option<std::net::SocketAddr>,
) -> Span {
    tracing::info_span!(
        "connection",
        household = %household,
        member = %member,
        connection = connection,
        peer = peer.map(|p| p.to_string()).unwrap_or_default(),
    )
}

/// A command through the service.
pub fn command(command: &CommandEnvelope) -> Span {
    tracing::info_span!(
        "command",
        household = %command.tenant,
        command_id = %command.id,
        command_type = command.command.type_name(),
        correlation_id = %command.correlation_id(),
        causation_id = %command.causation_id(),
    )
}

/// One append; [`append_committed`] records the `seq` range it was given.
pub fn append(household: HouseholdId, aggregate: AggregateId) -> Span {
    tracing::info_span!(
        "append",
        household = %household,
        aggregate = %aggregate,
        first_seq = Empty,
        last_seq = Empty,
        events = Empty,
    )
}

/// Records on an [`append`] span the `seq` range its events were committed at.
pub fn append_committed(span: &Span, first_seq: u64, last_seq: u64, events: usize) {
    span.record("first_seq", first_seq);
    span.record("last_seq", last_seq);
    span.record("events", events);
}

/// Committed events handed to this node's rooms (by the command path; rooms on other
/// nodes read them after the doorbell).
pub fn fanout(household: HouseholdId, events: &[EventEnvelope]) -> Span {
    tracing::info_span!(
        "fanout",
        household = %household,
        first_seq = events.first().map_or(0, |e| e.seq),
        last_seq = events.last().map_or(0, |e| e.seq),
        correlation_id = opt(events.first().map(|e| e.metadata.correlation_id)),
    )
}

/// A job as an executor (or the relay) takes it on: it continues the trace of the
/// command whose event asked for it.
pub fn job(job: &Job) -> Span {
    let span = tracing::info_span!(
        "job",
        household = %job.tenant,
        aggregate = %job.aggregate,
        job = %job.id,
        job_kind = job.kind.as_str(),
        command_id = %job.command_id,
        correlation_id = %job.correlation_id,
        causation_id = %job.id,
    );
    continue_from(&span, job.traceparent.as_deref());
    span
}

/// One step of an aggregate's process; its name is recorded once it is known
/// ([`step_named`]).
pub fn step(household: HouseholdId, aggregate: AggregateId, cause: &Cause) -> Span {
    tracing::info_span!(
        "process_step",
        household = %household,
        aggregate = %aggregate,
        step = Empty,
        correlation_id = opt(cause.correlation_id),
        causation_id = opt(cause.causation_id),
    )
}

/// Records which step a [`step`] span is.
pub fn step_named(span: &Span, step: &str) {
    span.record("step", step);
}

/// One call to a provider under an idempotency key.
pub fn provider_call(
    provider: &'static str,
    operation: &'static str,
    idempotency_key: Uuid,
    cause: &Cause,
) -> Span {
    tracing::info_span!(
        "provider_call",
        provider,
        operation,
        idempotency_key = %idempotency_key,
        correlation_id = opt(cause.correlation_id),
        causation_id = opt(cause.causation_id),
    )
}

/// One Temporal activity on an aggregate, continuing the trace `traceparent` names
/// (the workflow's start carried it).
pub fn activity(
    activity: &'static str,
    household: HouseholdId,
    aggregate: AggregateId,
    cause: &Cause,
    traceparent: Option<&str>,
) -> Span {
    let span = tracing::info_span!(
        "activity",
        activity,
        household = %household,
        aggregate = %aggregate,
        correlation_id = opt(cause.correlation_id),
        causation_id = opt(cause.causation_id),
    );
    continue_from(&span, traceparent);
    span
}

/// How a trace crosses what a span cannot: a job in the outbox, a Temporal workflow's
/// input, another process. The carrier is W3C `traceparent` text. The composition root
/// installs one when it exports traces (OpenTelemetry); without one, nothing is
/// carried and every function below does nothing.
pub trait Propagation: Send + Sync + std::fmt::Debug {
    /// The `traceparent` of `span`, if it belongs to an exported trace.
    fn traceparent(&self, span: &Span) -> Option<String>;
    /// Makes `span` a child of the span `traceparent` names.
    fn continue_from(&self, span: &Span, traceparent: &str);
    /// Makes `span` the root of a trace of its own (linked to the span it was opened
    /// in), while logs keep showing it within that span.
    fn start_trace(&self, span: &Span);
}

static PROPAGATION: std::sync::OnceLock<Box<dyn Propagation>> = std::sync::OnceLock::new();

/// Installs the process's propagation, once; false if one was installed before.
pub fn install_propagation(propagation: Box<dyn Propagation>) -> bool {
    PROPAGATION.set(propagation).is_ok()
}

/// The `traceparent` of `span`, when traces are exported.
pub fn traceparent(span: &Span) -> Option<String> {
    PROPAGATION.get().and_then(|p| p.traceparent(span))
}

/// Makes `span` continue the trace `traceparent` names, if any and when traces are
/// exported.
pub fn continue_from(span: &Span, traceparent: Option<&str>) {
    if let (Some(p), Some(traceparent)) = (PROPAGATION.get(), traceparent) {
        p.continue_from(span, traceparent);
    }
}

/// Makes `span` the root of its own trace, when traces are exported.
pub fn start_trace(span: &Span) {
    if let Some(p) = PROPAGATION.get() {
        p.start_trace(span);
    }
}
