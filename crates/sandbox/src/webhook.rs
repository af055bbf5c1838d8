//! The sandbox's provider events: what a real provider's webhook would tell Hearth
//! after the fact (stock lost after a reservation, a refund from its dashboard, a
//! pick-up), sent signed to `POST <hearth>/webhooks/{payments|inventory}` as
//! docs/webhooks.md describes. Emitted on demand with `POST /admin/events`.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;
use std::sync::Arc;
use uuid::Uuid;

/// Where the sandbox sends its provider events, and the secrets it signs them with.
#[derive(Clone)]
pub struct WebhookTarget {
    /// Hearth's base URL, e.g. `http://127.0.0.1:8787`.
    pub url: String,
    pub payments_secret: Arc<[u8]>,
    pub inventory_secret: Arc<[u8]>,
}

impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// `POST /admin/events`: the event to report for an order the sandbox served. The
/// household, the sku (unless given) and the payment come from its ledgers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmitRequest {
    /// `StockLost`, `ProviderRefunded` (the sandbox refunds the capture first) or
    /// `PickedUp`.
    #[serde(rename = "type")]
    pub kind: String,
    pub order_id: Uuid,
    /// The sku lost (default: the first the order's reservation holds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// The provider's event id (default: a new one); reuse one to send a duplicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// What `POST /admin/events` answers: the event sent and Hearth's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmitReply {
    pub provider: String,
    pub event: serde_json::Value,
    pub status: u16,
    pub answer: serde_json::Value,
}

/// The `Hearth-Signature` of `body` at `timestamp` under `secret`:
/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length: this never fails.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// Sends `event` to `target`'s webhook of `provider`, signed now; Hearth's status and
/// answer.
pub async fn deliver(
    target: &WebhookTarget,
    provider: &str,
    event: &serde_json::Value,
) -> Result<(u16, serde_json::Value), reqwest::Error> {
    let secret = match provider {
        "payments" => &target.payments_secret,
        _ => &target.inventory_secret,
    };
    let body = serde_json::to_vec(event).unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let res = reqwest::Client::new()
        .post(format!(
            "{}/webhooks/{provider}",
            target.url.trim_end_matches('/')
        ))
        .header("content-type", "application/json")
        .header("hearth-signature", sign(secret, now, &body))
        .body(body)
        .send()
        .await?;
    let status = res.status().as_u16();
    let answer = res.json().await.unwrap_or(serde_json::Value::Null);
    Ok((status, answer))
}
