//! The room protocol on the wire (DESIGN.md section 5): every message a client and
//! the server exchange, in one module, as plain serde types (so TypeScript types can
//! be generated from them later).
//!
//! Parsing is done in steps so that each kind of bad input gets its own error code and
//! a message naming what is wrong: [`parse_client_message`] for WebSocket frames,
//! [`parse_command`] for a command body (also used by the HTTP API).

use hearth_core::registry::CommandOf;
use hearth_core::window::Older;
use hearth_core::{AnyCommand, CommandId, DomainId, EventEnvelope, HouseholdId, HouseholdView};
use serde::de::DeserializeOwned;
use serde::de::DeserializeSeed;
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

/// `{"renew": {"token": "<access token>"}}`: carry on with a fresh access token (of
/// the same member), so the socket outlives the token it opened with. Answered with
/// `{"renewed": {...}}`, or an `unauthorized` error (the socket then keeps its old
/// expiry and closes with 4001 when it comes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct Renew {
    pub token: String,
}

/// Every message a client may send: an object with exactly one key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub enum ClientMessage {
    Command(WireCommand),
    Sync(Sync),
    Renew(Renew),
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
    /// The projection at `seq` of the household's most recently placed orders (within
    /// the server's bound: 100 orders and 128 KiB of JSON by default): `state.orders` is
    /// the tail of the household's orders, in the order they were placed.
    pub state: HouseholdView,
    /// How many orders and chores came before those in `state` (0: `state` holds the
    /// whole list): `olderOrders`, `olderChores`. `GET /households/{id}/orders?before=<olderOrders>`
    /// pages them (likewise `chores`).
    #[serde(flatten)]
    #[cfg_attr(feature = "ts", ts(flatten))]
    pub older: Older,
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

/// The welcome frame, with the state already serialized: the same JSON as
/// `ServerMessage::Welcome(...).to_json()`, so a room serializes its view once for every
/// socket that joins at one seq instead of once per socket.
pub fn welcome_frame(
    room: HouseholdId,
    connection: &str,
    seq: u64,
    state_json: &str,
    older: &Older,
) -> String {
    let text = |v: String| serde_json::to_string(&v).unwrap_or_else(|_| "\"\"".into());
    let mut frame = String::with_capacity(state_json.len() + 128);
    frame.push_str(r#"{"welcome":{"room":"#);
    frame.push_str(&text(room.0.to_string()));
    frame.push_str(r#","connection":"#);
    frame.push_str(&text(connection.to_owned()));
    frame.push_str(r#","seq":"#);
    frame.push_str(&seq.to_string());
    frame.push_str(r#","state":"#);
    frame.push_str(state_json);
    // `Older`'s fields, spliced in (it is an object of numbers: `{"olderOrders":1,...}`).
    let older = serde_json::to_string(older).unwrap_or_default();
    if let Some(fields) = older.strip_prefix('{').and_then(|o| o.strip_suffix('}'))
        && !fields.is_empty()
    {
        frame.push(',');
        frame.push_str(fields);
    }
    frame.push_str("}}");
    frame
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
    Renewed(Renewed),
}

/// The socket took a renewed token: it now closes (4001) at `expiresAt`, unless
/// renewed again before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Renewed {
    /// Seconds since the epoch.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub expires_at: i64,
}

impl ServerMessage {
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail (no maps with non-string keys).
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"error":{{"code":"internal","message":"cannot encode a reply: {e}"}}}}"#)
        })
    }
}

/// Error codes of `{"error": ...}` (and of HTTP 4xx bodies), each defined once: the
/// constant, and its place in [`codes::ALL`] (which `names.ts` lists for the client).
pub mod codes {
    macro_rules! codes {
        ($($(#[$doc:meta])* $name:ident = $code:literal,)*) => {
            $($(#[$doc])* pub const $name: &str = $code;)*
            /// Every code, in the order defined.
            pub const ALL: &[&str] = &[$($code),*];
        };
    }

    codes! {
        INVALID_JSON = "invalid_json",
        UNKNOWN_MESSAGE_TYPE = "unknown_message_type",
        INVALID_MESSAGE = "invalid_message",
        UNKNOWN_COMMAND_TYPE = "unknown_command_type",
        INVALID_PAYLOAD = "invalid_payload",
        TENANT_MISMATCH = "tenant_mismatch",
        FRAME_TOO_LARGE = "frame_too_large",
        RATE_LIMITED = "rate_limited",
        TOO_MANY_CONNECTIONS = "too_many_connections",
        TOO_MANY_SOCKETS = "too_many_sockets",
        BINARY_NOT_SUPPORTED = "binary_not_supported",
        UNAVAILABLE = "unavailable",
        CONTENTION = "contention",
        UNAUTHORIZED = "unauthorized",
        NOT_FOUND = "not_found",
        INVITE_EXPIRED = "invite_expired",
        INVITE_USED = "invite_used",
        CONFLICT = "conflict",
        METHOD_NOT_ALLOWED = "method_not_allowed",
        /// An HTTP body above the limit (413).
        BODY_TOO_LARGE = "body_too_large",
        /// A request URI above the limit (414).
        URI_TOO_LONG = "uri_too_long",
        /// Any other refusal by the HTTP layer itself (4xx).
        BAD_REQUEST = "bad_request",
        /// A server fault (5xx) with nothing more to say.
        INTERNAL = "internal",
        /// Text that a store cannot hold (see [`super::UNSTORABLE`]), anywhere in what a
        /// client sends.
        UNSTORABLE_TEXT = "unstorable_text",
        /// A browser request (WebSocket upgrade, POST, preflight) from an origin the server
        /// does not allow (403).
        ORIGIN_NOT_ALLOWED = "origin_not_allowed",
        /// Membership: only an owner may do this (invite, remove, change a role) (403).
        NOT_AN_OWNER = "not_an_owner",
        /// Membership: the household would be left without an owner (409).
        LAST_OWNER = "last_owner",
        /// Membership: no such (current) member in this household (404).
        NO_SUCH_MEMBER = "no_such_member",
        /// Sessions: no session has this refresh credential, or no such session of yours.
        SESSION_NOT_FOUND = "session_not_found",
        /// Sessions: the session was ended; the device must join again (401).
        SESSION_ENDED = "session_ended",
        /// Sessions: a refresh credential was used twice; its session is now ended (401).
        CREDENTIAL_REUSED = "credential_reused",
        /// Households: `timeZone` is not an IANA time zone name (400).
        UNKNOWN_TIME_ZONE = "unknown_time_zone",
        /// Webhooks: no `Hearth-Signature`, a malformed one, or one that does not match
        /// the body under the provider's secret (401).
        SIGNATURE_INVALID = "signature_invalid",
        /// Webhooks: a matching signature whose timestamp is outside the window (401).
        SIGNATURE_EXPIRED = "signature_expired",
        /// Webhooks: the event names a household the server does not know (202: ignored,
        /// not recorded).
        UNKNOWN_HOUSEHOLD = "unknown_household",
    }
}

/// Code points that some store refuses, so the wire refuses them from every client on
/// every store: U+0000 (PostgreSQL's `text` and `jsonb` refuse it: SQLSTATE 22021 and
/// 22P05). Checked on PostgreSQL 15 (UTF8): every other scalar value is stored,
/// including other control characters and noncharacters (U+FFFE, U+FFFF, U+10FFFF);
/// SQLite stores any text. Lone surrogates cannot occur: JSON escapes of them are
/// refused by the parser (`invalid_json`) and a Rust string cannot hold one.
pub const UNSTORABLE: &[char] = &['\0'];

/// One step of the path to a JSON value.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The path to the first text in `value` (a string or an object key) holding an
/// [`UNSTORABLE`] code point, innermost step first; `Some(path, true)` if it is a key.
fn find_unstorable(value: &serde_json::Value) -> Option<(Vec<Step<'_>>, bool)> {
    use serde_json::Value;
    let bad = |text: &str| text.contains(UNSTORABLE);
    match value {
        Value::String(text) if bad(text) => Some((Vec::new(), false)),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            find_unstorable(item).map(|(mut path, key)| {
                path.push(Step::Index(i));
                (path, key)
            })
        }),
        Value::Object(map) => map.iter().find_map(|(k, item)| {
            if bad(k) {
                return Some((vec![Step::Key(k)], true));
            }
            find_unstorable(item).map(|(mut path, key)| {
                path.push(Step::Key(k));
                (path, key)
            })
        }),
        _ => None,
    }
}

/// Refuses text a store cannot hold anywhere in `value` (every string and every object
/// key, however deep), naming the field as `at.path[0].to.it` (`at` may be empty).
pub fn check_storable(value: &serde_json::Value, at: &str) -> Result<(), BadInput> {
    let Some((steps, is_key)) = find_unstorable(value) else {
        return Ok(());
    };
    let mut field = at.to_owned();
    for step in steps.iter().rev() {
        match step {
            Step::Key(k) if field.is_empty() => field.push_str(&k.escape_debug().to_string()),
            Step::Key(k) => {
                field.push('.');
                field.push_str(&k.escape_debug().to_string());
            }
            Step::Index(i) => field.push_str(&format!("[{i}]")),
        }
    }
    let what = if is_key { "the key" } else { "the text" };
    Err(BadInput::new(
        codes::UNSTORABLE_TEXT,
        format!("{field}: {what} holds U+0000 (NUL), which no store can hold"),
    ))
}

/// [`check_storable`] of each query parameter (name and value), naming it.
pub fn check_storable_query<'a>(
    params: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(), BadInput> {
    for (name, value) in params {
        if name.contains(UNSTORABLE) || value.contains(UNSTORABLE) {
            return Err(BadInput::new(
                codes::UNSTORABLE_TEXT,
                format!(
                    "query parameter {}: holds U+0000 (NUL), which no store can hold",
                    name.escape_debug()
                ),
            ));
        }
    }
    Ok(())
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
    // The command id, to name it in any refusal.
    let id = value
        .get("command")
        .and_then(|c| c.get("id"))
        .and_then(|v| serde_json::from_value::<CommandId>(v.clone()).ok());
    check_storable(&value, "").map_err(|e| e.with_id(id))?;
    let serde_json::Value::Object(map) = value else {
        return Err(BadInput::new(
            codes::INVALID_MESSAGE,
            r#"a message is a JSON object with one key: "command", "sync" or "renew""#,
        ));
    };
    let mut entries = map.into_iter();
    let (Some((kind, body)), None) = (entries.next(), entries.next()) else {
        return Err(BadInput::new(
            codes::INVALID_MESSAGE,
            r#"a message is a JSON object with exactly one key: "command", "sync" or "renew""#,
        ));
    };
    match kind.as_str() {
        "command" => {
            let command = typed::<WireCommand>(body, "command", codes::INVALID_MESSAGE)
                .map_err(|e| e.with_id(id))?;
            Ok(ClientMessage::Command(command))
        }
        "sync" => Ok(ClientMessage::Sync(typed::<Sync>(
            body,
            "sync",
            codes::INVALID_MESSAGE,
        )?)),
        "renew" => Ok(ClientMessage::Renew(typed::<Renew>(
            body,
            "renew",
            codes::INVALID_MESSAGE,
        )?)),
        other => Err(BadInput::new(
            codes::UNKNOWN_MESSAGE_TYPE,
            format!(r#"unknown message type "{other}": expected "command", "sync" or "renew""#),
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
    check_storable(&value, "command").map_err(|e| e.with_id(id))?;
    typed::<WireCommand>(value, "command", codes::INVALID_MESSAGE).map_err(|e| e.with_id(id))
}

/// Turns a wire command's `type` and `payload` into a core command of the domain
/// that has the type. The known types are the registry's ([`AnyCommand::types`]); the
/// domain's serde tag picks the payload's shape, so no type is named here.
pub fn parse_command(command: &WireCommand) -> Result<AnyCommand, BadInput> {
    let Some(domain) = DomainId::of_command_type(&command.kind) else {
        return Err(BadInput::new(
            codes::UNKNOWN_COMMAND_TYPE,
            format!(
                r#"command.type: unknown command type "{}"; known: {}"#,
                command.kind,
                AnyCommand::types().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    // The tag first, so serde reads the payload straight into the variant's type
    // (rather than buffering it), and the path to a bad field names it.
    let tagged = format!(
        r#"{{"type":{},"payload":{}}}"#,
        serde_json::Value::from(command.kind.as_str()),
        command.payload
    );
    let mut reader = serde_json::Deserializer::from_str(&tagged);
    let mut track = serde_path_to_error::Track::new();
    let tracked = serde_path_to_error::Deserializer::new(&mut reader, &mut track);
    CommandOf(domain).deserialize(tracked).map_err(|e| {
        BadInput::new(
            codes::INVALID_PAYLOAD,
            format!("command.{}: {}", track.path(), e),
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_welcome_frame_is_the_welcome_message() {
        let mut view = HouseholdView::new();
        view.seq = 7;
        let room = HouseholdId(Uuid::now_v7());
        let message = ServerMessage::Welcome(Box::new(Welcome {
            room,
            connection: "ab\"c-1".into(),
            seq: 7,
            state: view.clone(),
            older: Older {
                older_orders: 3,
                ..Older::default()
            },
        }));
        let state = serde_json::to_string(&view).unwrap();
        let older = Older {
            older_orders: 3,
            ..Older::default()
        };
        assert_eq!(
            welcome_frame(room, "ab\"c-1", 7, &state, &older),
            message.to_json()
        );
    }

    #[test]
    fn names_the_field_at_fault() {
        let err =
            parse_client_message(r#"{"command":{"id":"nope","type":"PlaceOrder","payload":{}}}"#)
                .unwrap_err();
        assert_eq!(err.code, codes::INVALID_MESSAGE);
        assert!(err.message.starts_with("command.id"), "{}", err.message);

        let id = Uuid::nil();
        let msg = format!(
            r#"{{"command":{{"id":"{id}","type":"PlaceOrder","payload":{{"orderId":"{id}","lines":[{{"sku":"a","quantity":"x","unitPriceCents":1}}]}}}}}}"#
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
    fn text_no_store_can_hold_is_refused_naming_the_field() {
        let id = Uuid::nil();
        let cases = [
            (
                json!({"command": {"id": id, "type": "PlaceOrder", "payload": {"lines": [{"sku": "a"}, {"name": "b\u{0}"}]}}}),
                "command.payload.lines[1].name: the text",
            ),
            (
                json!({"command": {"id": id, "type": "P\u{0}", "payload": {}}}),
                "command.type: the text",
            ),
            (
                json!({"command": {"id": id, "type": "PlaceOrder", "payload": {"no\u{0}te": "x"}}}),
                "command.payload.no\\0te: the key",
            ),
            (json!({"sync\u{0}": {}}), "sync\\0: the key"),
        ];
        for (message, field) in cases {
            let err = parse_client_message(&message.to_string()).unwrap_err();
            assert_eq!(err.code, codes::UNSTORABLE_TEXT, "{message}");
            assert!(err.message.starts_with(field), "{}", err.message);
        }
        // The command id is named when it can be read.
        let err = parse_client_message(&cases_id_message(id)).unwrap_err();
        assert_eq!(err.id, Some(CommandId(id)));
        let err =
            parse_wire_command(br#"{"id": "x\u0000", "type": "A", "payload": {}}"#).unwrap_err();
        assert_eq!(
            (err.code, err.message.split(':').next()),
            (codes::UNSTORABLE_TEXT, Some("command.id"))
        );
        // Other control characters and noncharacters are storable: the core judges them.
        assert!(check_storable(&json!({"a": ["\u{1}\u{7f}\u{fffe}\u{10ffff}"]}), "").is_ok());
        // A lone surrogate never becomes text.
        assert_eq!(
            parse_client_message(r#"{"sync": "\ud800"}"#)
                .unwrap_err()
                .code,
            codes::INVALID_JSON
        );
    }

    #[test]
    fn the_command_id_of_an_unparsed_frame_or_body() {
        let id = Uuid::now_v7();
        let framed = json!({"command": {"id": id, "type": "X"}}).to_string();
        let bare = json!({"id": id, "type": "X", "payload": {}}).to_string();
        assert_eq!(command_id_of(framed.as_bytes()), Some(CommandId(id)));
        assert_eq!(command_id_of(bare.as_bytes()), Some(CommandId(id)));
        for none in [
            r#"{"sync":{"since":1}}"#,
            r#"{"command":{"id":"x"}}"#,
            "{",
            "[]",
        ] {
            assert_eq!(command_id_of(none.as_bytes()), None, "{none}");
        }
    }

    fn cases_id_message(id: Uuid) -> String {
        json!({"command": {"id": id, "type": "PlaceOrder", "payload": {"note": "\u{0}"}}})
            .to_string()
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
