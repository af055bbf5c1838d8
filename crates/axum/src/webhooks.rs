//! Provider events in: `POST /webhooks/{provider}` (docs/webhooks.md).
//!
//! A provider (`payments`, `inventory`) tells Hearth something after the fact: stock
//! lost after a reservation, a refund it made on its own, a pick-up. Each request is
//! signed with the provider's shared secret: `Hearth-Signature: t=<unix seconds>,
//! v1=<hex HMAC-SHA256 of "<t>.<body>">`. A missing or wrong signature, or one outside
//! [`SIGNATURE_WINDOW_SECS`] of the server's clock either way, is answered 401 before
//! the body is read as JSON. The body names the provider's event id, the household and
//! the event (`{"id", "household", "type", "payload"}`); it becomes an
//! [`ExternalEvent`] whose id derives from the provider and its event id, and
//! [`Service::receive`](hearth_core::Service::receive) records what became of it in the
//! household's log of command outcomes (so per household, under RLS on PostgreSQL): the
//! same provider event twice gets the same answer and reacts once.

use crate::app::AppState;
use crate::http::ApiError;
use crate::wire::{self, codes};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hearth_core::contracts::{ExternalEvent, ExternalKind};
use hearth_core::ids::derive;
use hearth_core::{CommandOutcome, HouseholdId, Refusal};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::fmt;
use std::sync::Arc;
use uuid::Uuid;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "hearth-signature";
/// How far the signature's timestamp may be from the server's clock, either way.
pub const SIGNATURE_WINDOW_SECS: i64 = 5 * 60;
/// The largest webhook body read (413 above it).
pub const MAX_WEBHOOK_BYTES: usize = 16 * 1024;
/// The longest provider event id accepted.
pub const MAX_EVENT_ID_CHARS: usize = 255;
/// The `reason` label of `hearth_refused_total` for a webhook whose signature was
/// refused (missing, wrong or expired).
pub const REFUSAL_REASON: &str = "webhook_signature";
/// The namespace of the ids of external events that came through a webhook.
const NAMESPACE: Uuid = Uuid::from_u128(0x6865_6172_7468_2d77_6562_686f_6f6b_7301);

/// A provider that may send webhooks, as its path segment names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    Payments,
    Inventory,
}

impl Provider {
    pub const ALL: [Provider; 2] = [Provider::Payments, Provider::Inventory];

    pub fn name(self) -> &'static str {
        match self {
            Provider::Payments => "payments",
            Provider::Inventory => "inventory",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether this provider may report `kind` (a payment provider knows nothing of
    /// stock).
    fn reports(self, kind: &ExternalKind) -> bool {
        match self {
            Provider::Payments => matches!(kind, ExternalKind::ProviderRefunded { .. }),
            Provider::Inventory => matches!(
                kind,
                ExternalKind::InventoryShortage { .. }
                    | ExternalKind::StockLost { .. }
                    | ExternalKind::PickedUp { .. }
            ),
        }
    }
}

/// A provider's shared secret. Its `Debug` never shows it.
#[derive(Clone)]
pub struct WebhookSecret(Arc<[u8]>);

impl WebhookSecret {
    /// Refuses a secret under [`crate::auth::MIN_SECRET_BYTES`] (32), like the token
    /// secret.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, WeakWebhookSecret> {
        let secret = secret.as_ref();
        if secret.len() < crate::auth::MIN_SECRET_BYTES {
            return Err(WeakWebhookSecret { len: secret.len() });
        }
        Ok(Self(Arc::from(secret)))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "a webhook secret must be at least {min} bytes, got {len}",
    min = crate::auth::MIN_SECRET_BYTES
)]
pub struct WeakWebhookSecret {
    pub len: usize,
}

/// The secret of each provider allowed to send webhooks; a provider without one gets
/// 404 (its route does not exist).
#[derive(Clone, Debug, Default)]
pub struct WebhookSecrets {
    pub payments: Option<WebhookSecret>,
    pub inventory: Option<WebhookSecret>,
}

impl WebhookSecrets {
    pub fn get(&self, provider: Provider) -> Option<&WebhookSecret> {
        match provider {
            Provider::Payments => self.payments.as_ref(),
            Provider::Inventory => self.inventory.as_ref(),
        }
    }
}

/// The `Hearth-Signature` value for `body` sent at `timestamp` (unix seconds):
/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub fn sign(secret: &WebhookSecret, timestamp: i64, body: &[u8]) -> String {
    let mac = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex(&mac))
}

fn mac(secret: &WebhookSecret, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this never fails.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Why a signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// No header, a malformed one, or a MAC that does not match.
    Invalid,
    /// Well-formed and matching, but its timestamp is outside the window.
    Expired,
}

/// Checks a `Hearth-Signature` value against `body` at `now` (unix seconds): the MAC in
/// constant time (`Mac::verify_slice`), then the window. Several `v1=` values are
/// allowed (a secret rotation); one matching is enough.
pub fn verify(
    secret: &WebhookSecret,
    header: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Invalid)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                timestamp = Some(t.parse::<i64>().map_err(|_| SignatureError::Invalid)?)
            }
            Some(("v1", v)) => signatures.push(unhex(v).ok_or(SignatureError::Invalid)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Invalid)?;
    let matches = signatures
        .iter()
        .any(|s| mac(secret, timestamp, body).verify_slice(s).is_ok());
    if !matches {
        return Err(SignatureError::Invalid);
    }
    if now.abs_diff(timestamp) > SIGNATURE_WINDOW_SECS.unsigned_abs() {
        return Err(SignatureError::Expired);
    }
    Ok(())
}

/// A webhook's body: the provider's event id, the household and the event.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Body {
    id: String,
    household: HouseholdId,
    #[serde(flatten)]
    kind: ExternalKind,
}

/// The id of the external event a provider's event becomes: the same provider and
/// event id always give the same id.
pub fn external_id(provider: Provider, event_id: &str) -> Uuid {
    derive(NAMESPACE, &format!("{}/{event_id}", provider.name()))
}

/// What became of a webhook, as answered (and as answered again for a repeat).
fn answer(outcome: &CommandOutcome) -> Response {
    match outcome {
        CommandOutcome::Accepted { seq, .. } => (
            StatusCode::OK,
            Json(serde_json::json!({ "result": "reacted", "seq": seq })),
        )
            .into_response(),
        CommandOutcome::Rejected { code, message } => {
            let result = match Refusal::from_code(code) {
                Some(Refusal::OrderNotFound) => "ignored",
                Some(Refusal::NoReaction) => "noReaction",
                _ => "refused",
            };
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({ "result": result, "code": code, "message": message })),
            )
                .into_response()
        }
    }
}

pub(crate) async fn receive(
    State(app): State<Arc<AppState>>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            format!("no webhooks are taken from {provider:?}"),
        )
    };
    let provider_id = Provider::from_name(&provider).ok_or_else(not_found)?;
    let secret = app
        .settings
        .webhook_secrets
        .get(provider_id)
        .ok_or_else(not_found)?;
    let header = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let now = app.clock.now().timestamp();
    match verify(secret, header, &body, now) {
        Ok(()) => {}
        Err(SignatureError::Invalid) => {
            app.metrics.refused(REFUSAL_REASON);
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                codes::SIGNATURE_INVALID,
                format!("missing or wrong {SIGNATURE_HEADER}"),
            ));
        }
        Err(SignatureError::Expired) => {
            app.metrics.refused(REFUSAL_REASON);
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                codes::SIGNATURE_EXPIRED,
                format!(
                    "the signature's timestamp is more than {SIGNATURE_WINDOW_SECS} seconds from the server's clock"
                ),
            ));
        }
    }
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_JSON,
            format!("the body is not JSON: {e}"),
        )
    })?;
    wire::check_storable(&value, "body")?;
    let body: Body = serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_PAYLOAD,
            format!("the body is not a provider event: {e}"),
        )
    })?;
    let chars = body.id.chars().count();
    if chars == 0 || chars > MAX_EVENT_ID_CHARS || body.id.chars().any(char::is_control) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_PAYLOAD,
            format!("id must be 1 to {MAX_EVENT_ID_CHARS} characters, none a control character"),
        ));
    }
    if !provider_id.reports(&body.kind) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_PAYLOAD,
            format!(
                "the {} provider does not report {}",
                provider_id.name(),
                body.kind.type_name()
            ),
        ));
    }
    // A household the directory does not know has no log to record the event in.
    let known = app
        .directory
        .household(body.household)
        .await
        .map_err(|e| ApiError::unavailable("the directory", &e))?;
    if known.is_none() {
        tracing::info!(provider = provider_id.name(), event = %body.id, household = %body.household, "webhook for an unknown household ignored");
        return Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({
                "result": "ignored",
                "code": codes::UNKNOWN_HOUSEHOLD,
                "message": format!("no household {}", body.household),
            })),
        )
            .into_response());
    }
    let external = ExternalEvent {
        id: external_id(provider_id, &body.id),
        tenant: body.household,
        kind: body.kind,
    };
    let received = app
        .service
        .receive(external)
        .await
        .map_err(|e| ApiError::unavailable("the store", &e))?;
    tracing::info!(
        provider = provider_id.name(),
        event = %body.id,
        household = %body.household,
        duplicate = received.duplicate,
        outcome = ?received.outcome,
        "webhook received"
    );
    Ok(answer(&received.outcome))
}
