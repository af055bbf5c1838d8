//! The room protocol on the wire (DESIGN.md section 5): every message a client and
//! the server exchange, in one module, as plain serde types (so TypeScript types can
//! be generated from them later).
//!
//! Parsing is done in steps so that each kind of bad input gets its own error code and
//! a message naming what is wrong: [`parse_client_message`] for WebSocket frames,
//! [`parse_command`] for a command body (also used by the HTTP API).

use hearth_core::order::{
    CancelOrder, OrderRef, PlaceOrder, RecordPaymentCaptured, RecordRefundIssued,
    RecordStockReserved, RejectOrder,
};
use hearth_core::{Command, CommandId, EventEnvelope, HouseholdId, HouseholdView};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Client -> server
// ---------------------------------------------------------------------------

/// A command as a client sends it: `{"id", "type", "payload", "tenant"?, "metadata"?}`.
/// The actor is never taken from the client: it comes from the token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireCommand {
    /// Chosen by the client: the idempotency key.
    pub id: CommandId,
    /// Optional; when present it must equal the room's household.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub tenant: Option<HouseholdId>,
    #[serde(rename = "type")]
    pub kind: String,
    pub payload: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub metadata: Option<WireMetadata>,
}

/// What a client may say about a command's context. No actor: that is the token's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WireMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub correlation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub causation_id: Option<Uuid>,
}

/// `{"sync": {"since": N}}`: replay the events after `N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Sync {
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub since: u64,
}

/// Every message a client may send: an object with exactly one key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub enum ClientMessage {
    Command(WireCommand),
    Sync(Sync),
}

// ---------------------------------------------------------------------------
// Server -> client
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Welcome {
    /// The household id.
    pub room: HouseholdId,
    /// This connection's internal handle (not the client's `_pk`).
    pub connection: String,
    /// The household position `state` is at.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub seq: u64,
    pub state: HouseholdView,
}

/// Status of an acknowledged command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub enum AckStatus {
    /// Applied now.
    Accepted,
    /// Applied before (same id): nothing new was written.
    Duplicate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    pub id: CommandId,
    pub status: AckStatus,
    /// The household position after which the command's effects are visible.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Rejected {
    pub id: CommandId,
    /// The broken rule, from `DomainError::code()`.
    pub code: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct WireError {
    /// One of the constants in [`codes`].
    pub code: String,
    /// Says what is wrong, naming the field where one is at fault.
    pub message: String,
    /// The command id, when the bad input was a command whose id could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub id: Option<CommandId>,
}

/// Every message the server sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub enum ServerMessage {
    Welcome(Box<Welcome>),
    Event(Box<EventEnvelope>),
    Ack(Ack),
    Rejected(Rejected),
    Error(WireError),
}

impl ServerMessage {
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail (no maps with non-string keys).
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"error":{{"code":"internal","message":"cannot encode a reply: {e}"}}}}"#)
        })
    }
}

/// Error codes of `{"error": ...}` (and of HTTP 4xx bodies).
pub mod codes {
    pub const INVALID_JSON: &str = "invalid_json";
    pub const UNKNOWN_MESSAGE_TYPE: &str = "unknown_message_type";
    pub const INVALID_MESSAGE: &str = "invalid_message";
    pub const UNKNOWN_COMMAND_TYPE: &str = "unknown_command_type";
    pub const INVALID_PAYLOAD: &str = "invalid_payload";
    pub const TENANT_MISMATCH: &str = "tenant_mismatch";
    pub const FRAME_TOO_LARGE: &str = "frame_too_large";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const BINARY_NOT_SUPPORTED: &str = "binary_not_supported";
    pub const UNAVAILABLE: &str = "unavailable";
    pub const CONTENTION: &str = "contention";
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const NOT_FOUND: &str = "not_found";
    pub const INVITE_EXPIRED: &str = "invite_expired";
    pub const INVITE_USED: &str = "invite_used";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// An HTTP body above the limit (413).
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    /// A request URI above the limit (414).
    pub const URI_TOO_LONG: &str = "uri_too_long";
    /// Any other refusal by the HTTP layer itself (4xx).
    pub const BAD_REQUEST: &str = "bad_request";
    /// A server fault (5xx) with nothing more to say.
    pub const INTERNAL: &str = "internal";
}

/// Bad input, ready to be sent as `{"error": ...}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct BadInput {
    pub code: &'static str,
    pub message: String,
    pub id: Option<CommandId>,
}

impl BadInput {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            id: None,
        }
    }

    pub fn with_id(mut self, id: Option<CommandId>) -> Self {
        self.id = id;
        self
    }

    pub fn to_message(&self) -> ServerMessage {
        ServerMessage::Error(WireError {
            code: self.code.to_owned(),
            message: self.message.clone(),
            id: self.id,
        })
    }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// Deserializes `value`, naming the path of the field at fault (prefixed by `at`).
fn typed<T: DeserializeOwned>(
    value: serde_json::Value,
    at: &str,
    code: &'static str,
) -> Result<T, BadInput> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() {
            at.to_owned()
        } else {
            format!("{at}.{path}")
        };
        BadInput::new(code, format!("{field}: {}", e.inner()))
    })
}

/// Parses one text frame from a client.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, BadInput> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| BadInput::new(codes::INVALID_JSON, format!("not valid JSON: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(BadInput::new(
            codes::INVALID_MESSAGE,
            r#"a message is a JSON object with one key: "command" or "sync""#,
        ));
    };
    let mut entries = map.into_iter();
    let (Some((kind, body)), None) = (entries.next(), entries.next()) else {
        return Err(BadInput::new(
            codes::INVALID_MESSAGE,
            r#"a message is a JSON object with exactly one key: "command" or "sync""#,
        ));
    };
    match kind.as_str() {
        "command" => {
            let id = body
                .get("id")
                .and_then(|v| serde_json::from_value::<CommandId>(v.clone()).ok());
            let command = typed::<WireCommand>(body, "command", codes::INVALID_MESSAGE)
                .map_err(|e| e.with_id(id))?;
            Ok(ClientMessage::Command(command))
        }
        "sync" => Ok(ClientMessage::Sync(typed::<Sync>(
            body,
            "sync",
            codes::INVALID_MESSAGE,
        )?)),
        other => Err(BadInput::new(
            codes::UNKNOWN_MESSAGE_TYPE,
            format!(r#"unknown message type "{other}": expected "command" or "sync""#),
        )),
    }
}

/// The command id of a frame or body that was not parsed (e.g. refused by a rate
/// limit), so the refusal can name it: `{"command": {"id": ...}}` or a bare command
/// `{"id": ...}`. `None` if there is none to read.
pub fn command_id_of(text: &[u8]) -> Option<CommandId> {
    #[derive(Deserialize)]
    struct Peek {
        #[serde(default)]
        command: Option<PeekId>,
        #[serde(default)]
        id: Option<CommandId>,
    }
    #[derive(Deserialize)]
    struct PeekId {
        #[serde(default)]
        id: Option<CommandId>,
    }
    let peek: Peek = serde_json::from_slice(text).ok()?;
    peek.command.and_then(|c| c.id).or(peek.id)
}

/// Parses a command body (as in the HTTP API: `{"id", "type", "payload", ...}`).
pub fn parse_wire_command(body: &[u8]) -> Result<WireCommand, BadInput> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| BadInput::new(codes::INVALID_JSON, format!("not valid JSON: {e}")))?;
    let id = value
        .get("id")
        .and_then(|v| serde_json::from_value::<CommandId>(v.clone()).ok());
    typed::<WireCommand>(value, "command", codes::INVALID_MESSAGE).map_err(|e| e.with_id(id))
}

/// Turns a wire command's `type` and `payload` into a core command.
pub fn parse_command(command: &WireCommand) -> Result<Command, BadInput> {
    let payload = command.payload.clone();
    let at = "command.payload";
    let code = codes::INVALID_PAYLOAD;
    let parsed = match command.kind.as_str() {
        "PlaceOrder" => Command::PlaceOrder(typed::<PlaceOrder>(payload, at, code)?),
        "CancelOrder" => Command::CancelOrder(typed::<CancelOrder>(payload, at, code)?),
        "CompleteOrder" => Command::CompleteOrder(typed::<OrderRef>(payload, at, code)?),
        "RecordStockReserved" => {
            Command::RecordStockReserved(typed::<RecordStockReserved>(payload, at, code)?)
        }
        "RecordPaymentCaptured" => {
            Command::RecordPaymentCaptured(typed::<RecordPaymentCaptured>(payload, at, code)?)
        }
        "ConfirmOrder" => Command::ConfirmOrder(typed::<OrderRef>(payload, at, code)?),
        "RejectOrder" => Command::RejectOrder(typed::<RejectOrder>(payload, at, code)?),
        "MarkReady" => Command::MarkReady(typed::<OrderRef>(payload, at, code)?),
        "RecordRefundIssued" => {
            Command::RecordRefundIssued(typed::<RecordRefundIssued>(payload, at, code)?)
        }
        "RecordStockReleased" => {
            Command::RecordStockReleased(typed::<OrderRef>(payload, at, code)?)
        }
        other => {
            return Err(BadInput::new(
                codes::UNKNOWN_COMMAND_TYPE,
                format!(
                    r#"command.type: unknown command type "{other}"; known: {}"#,
                    Command::TYPES.join(", ")
                ),
            ));
        }
    };
    Ok(parsed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_the_field_at_fault() {
        let err =
            parse_client_message(r#"{"command":{"id":"nope","type":"PlaceOrder","payload":{}}}"#)
                .unwrap_err();
        assert_eq!(err.code, codes::INVALID_MESSAGE);
        assert!(err.message.starts_with("command.id"), "{}", err.message);

        let id = Uuid::nil();
        let msg = format!(
            r#"{{"command":{{"id":"{id}","type":"PlaceOrder","payload":{{"orderId":"{id}","lines":[{{"sku":"a","name":"b","quantity":"x","unitPriceCents":1}}]}}}}}}"#
        );
        let ClientMessage::Command(cmd) = parse_client_message(&msg).unwrap() else {
            panic!("not a command")
        };
        let err = parse_command(&cmd).unwrap_err();
        assert_eq!(err.code, codes::INVALID_PAYLOAD);
        assert!(
            err.message.starts_with("command.payload.lines[0].quantity"),
            "{}",
            err.message
        );
    }

    #[test]
    fn unknown_types_and_bad_json() {
        assert_eq!(
            parse_client_message("{").unwrap_err().code,
            codes::INVALID_JSON
        );
        assert_eq!(
            parse_client_message(r#"{"hello":{}}"#).unwrap_err().code,
            codes::UNKNOWN_MESSAGE_TYPE
        );
        assert_eq!(
            parse_client_message("[1]").unwrap_err().code,
            codes::INVALID_MESSAGE
        );
    }
}
