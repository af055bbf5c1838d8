//! From a wire command to the core and back: shared by the WebSocket and HTTP paths.

use crate::app::AppState;
use crate::listener::LogEvery;
use crate::wire::{self, Ack, AckStatus, BadInput, Rejected, ServerMessage, WireCommand, codes};
use hearth_core::ports::Role;
use hearth_core::{
    Actor, CommandEnvelope, CommandMetadata, CommandOutcome, Dispatched, HouseholdId, MemberId,
    ServiceError,
};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Checks and dispatches a command from `member` of `room`. The actor always comes
/// from the token; a `tenant` in the command must equal the room.
pub(crate) async fn execute(
    app: &AppState,
    room: HouseholdId,
    member: MemberId,
    role: Role,
    command: WireCommand,
) -> ServerMessage {
    match check(room, &command) {
        Ok(()) => {}
        Err(bad) => {
            app.metrics.bad_input.fetch_add(1, Ordering::Relaxed);
            return bad.to_message();
        }
    }
    let core = match wire::parse_command(&command) {
        Ok(core) => core,
        Err(bad) => {
            app.metrics.bad_input.fetch_add(1, Ordering::Relaxed);
            return bad.with_id(Some(command.id)).to_message();
        }
    };
    let metadata = command.metadata.unwrap_or_default();
    // `role` is the member's role as the directory said it when the request or socket
    // was let in (a socket's is refreshed at each recheck): owners may act on what other
    // members own.
    let role = Some(role);
    let envelope = CommandEnvelope {
        id: command.id,
        tenant: room,
        command: core,
        metadata: CommandMetadata {
            actor: Actor::Member { id: member },
            correlation_id: metadata.correlation_id,
            causation_id: metadata.causation_id,
            role,
            traceparent: None,
        },
    };
    let id = command.id;
    let m = &app.metrics;
    // Held until the events are offered (or the command failed): the room need not
    // read the log for this commit's doorbell.
    let _expecting = app.rooms.expect(room);
    match app.service.dispatch(envelope).await {
        Ok(Dispatched::Accepted { seq, events }) => {
            m.commands_accepted.fetch_add(1, Ordering::Relaxed);
            // This node's rooms get the events without reading them back.
            app.rooms.offer(room, events);
            ServerMessage::Ack(Ack {
                id,
                status: AckStatus::Accepted,
                seq,
            })
        }
        Ok(Dispatched::Duplicate(CommandOutcome::Accepted { seq, .. })) => {
            m.commands_duplicate.fetch_add(1, Ordering::Relaxed);
            ServerMessage::Ack(Ack {
                id,
                status: AckStatus::Duplicate,
                seq,
            })
        }
        Ok(Dispatched::Duplicate(CommandOutcome::Rejected { code, message })) => {
            m.commands_duplicate.fetch_add(1, Ordering::Relaxed);
            ServerMessage::Rejected(Rejected { id, code, message })
        }
        Ok(Dispatched::Rejected(refused)) => {
            m.commands_rejected.fetch_add(1, Ordering::Relaxed);
            ServerMessage::Rejected(Rejected {
                id,
                code: refused.code.to_owned(),
                message: refused.message,
            })
        }
        Err(e) => {
            m.commands_failed.fetch_add(1, Ordering::Relaxed);
            // A store that is down fails every command alike: one line per 10 s, with the
            // count of those held back (the metric counts each).
            static FAILED: LogEvery = LogEvery::new(Duration::from_secs(10));
            if let Some(held) = FAILED.ready() {
                tracing::warn!(%room, command = %id, error = %e, held_back = held, "command failed");
            }
            // What the store said stays in the log: no database text reaches a client.
            let (code, message) = match e {
                ServiceError::Contention { .. } => (
                    codes::CONTENTION,
                    "what the command addresses is busy with other commands; retry with the same id",
                ),
                ServiceError::Store(_) => (
                    codes::UNAVAILABLE,
                    "the event store is unavailable; retry with the same id",
                ),
                ServiceError::CatalogUnavailable(_) => (
                    codes::UNAVAILABLE,
                    "the catalog is unavailable, so nothing was ordered; retry with the same id",
                ),
            };
            BadInput::new(code, message).with_id(Some(id)).to_message()
        }
    }
}

fn check(room: HouseholdId, command: &WireCommand) -> Result<(), BadInput> {
    match command.tenant {
        Some(tenant) if tenant != room => Err(BadInput::new(
            codes::TENANT_MISMATCH,
            format!("command.tenant: {tenant} is not this room's household {room}"),
        )
        .with_id(Some(command.id))),
        _ => Ok(()),
    }
}

/// Whether a rejection depends on the state at the time (409) rather than on the
/// command alone (422): what the domain that has the code says.
pub(crate) fn is_conflict(code: &str) -> bool {
    hearth_core::registry::refusal(code).is_some_and(|r| r.conflict)
}
