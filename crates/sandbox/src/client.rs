//! The HTTP adapters of the Payments, Inventory and Catalog ports, speaking the sandbox's API
//! (a real provider would get adapters of its own shape, with the same error mapping).
//!
//! Errors: a connection error, a timeout or a 5xx (also 408 and 429) is
//! [`ProviderError::Transient`]; 402 is `Declined`; 409 `out_of_stock` is `OutOfStock`;
//! any other 4xx, and a 2xx whose body cannot be read as the expected reply, is `Invalid`.

use crate::wire::{
    CaptureBody, CaptureLedgerPage, CaptureLedgerReply, CaptureReply, CatalogEntry, ErrorBody,
    IDEMPOTENCY_KEY, LineBody, RefundBody, RefundReply, ReleaseBody, ReleaseReply,
    ReservationLedgerPage, ReservationLedgerReply, ReserveBody, ReserveReply,
};
use async_trait::async_trait;
use hearth_core::ports::{
    Capture, CaptureEntry, CaptureRequest, Catalog, CatalogItem, Inventory, Payments,
    ProviderError, RefundRequest, ReleaseRequest, ReservationEntry, ReserveRequest,
};
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use uuid::Uuid;

/// At most this much of a provider's error body goes into an error message.
const MAX_MESSAGE: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid provider base url {0:?}: {1}")]
    BadUrl(String, String),
    #[error("cannot build the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

/// One HTTP connection pool to one provider, shared by its payments and inventory adapters.
#[derive(Clone, Debug)]
pub struct HttpProvider {
    base: reqwest::Url,
    client: reqwest::Client,
}

impl HttpProvider {
    /// `base_url` is e.g. `http://127.0.0.1:7070`; `timeout` bounds each whole request
    /// (connect, send, and read the reply).
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, ClientError> {
        let mut base = reqwest::Url::parse(base_url)
            .map_err(|e| ClientError::BadUrl(base_url.into(), e.to_string()))?;
        // Paths are joined relative to the base: keep its last segment.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ClientError::BadUrl(
                base_url.into(),
                "expected an http(s) base url".into(),
            ));
        }
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Self { base, client })
    }

    pub fn payments(&self) -> HttpPayments {
        HttpPayments(self.clone())
    }

    pub fn inventory(&self) -> HttpInventory {
        HttpInventory(self.clone())
    }

    /// The provider's catalog, each read kept for `ttl`.
    pub fn catalog(&self, ttl: Duration) -> HttpCatalog {
        HttpCatalog {
            provider: self.clone(),
            ttl,
            kept: tokio::sync::Mutex::new(None),
        }
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, ProviderError> {
        self.base
            .join(path)
            .map_err(|e| ProviderError::Invalid(format!("bad url for {path}: {e}")))
    }

    async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        key: Uuid,
        body: &B,
    ) -> Result<R, ProviderError> {
        let request = self
            .client
            .post(self.url(path)?)
            .header(IDEMPOTENCY_KEY, key.to_string())
            .json(body);
        read(path, request.send().await).await
    }

    async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R, ProviderError> {
        read(path, self.client.get(self.url(path)?).send().await).await
    }
}

fn transport(path: &str, e: &reqwest::Error) -> ProviderError {
    if e.is_builder() {
        ProviderError::Invalid(format!("{path}: cannot build the request: {e}"))
    } else {
        // Timeouts, refused or reset connections, a body cut short: the request may or
        // may not have taken effect, so the caller retries with the same key.
        ProviderError::Transient(format!("{path}: {e}"))
    }
}

fn message(status: StatusCode, bytes: &[u8]) -> (String, Option<ErrorBody>) {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => (format!("{}: {}", body.code, body.message), Some(body)),
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            let text: String = text.chars().take(MAX_MESSAGE).collect();
            (format!("HTTP {status}: {text}"), None)
        }
    }
}

async fn read<R: DeserializeOwned>(
    path: &str,
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<R, ProviderError> {
    let response = sent.map_err(|e| transport(path, &e))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| transport(path, &e))?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| {
            ProviderError::Invalid(format!("{path}: unreadable {status} reply: {e}"))
        });
    }
    let (text, body) = message(status, &bytes);
    let text = format!("{path}: {text}");
    Err(match status {
        s if s.is_server_error()
            || s == StatusCode::REQUEST_TIMEOUT
            || s == StatusCode::TOO_MANY_REQUESTS =>
        {
            ProviderError::Transient(text)
        }
        StatusCode::PAYMENT_REQUIRED => ProviderError::Declined(body.map_or(text, |b| b.message)),
        StatusCode::CONFLICT => match body {
            Some(ErrorBody {
                code,
                sku: Some(sku),
                ..
            }) if code == "out_of_stock" => ProviderError::OutOfStock { sku },
            _ => ProviderError::Invalid(text),
        },
        _ => ProviderError::Invalid(text),
    })
}

/// The Payments port over HTTP.
#[derive(Clone, Debug)]
pub struct HttpPayments(HttpProvider);

impl HttpPayments {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, ClientError> {
        Ok(HttpProvider::new(base_url, timeout)?.payments())
    }
}

#[async_trait]
impl Payments for HttpPayments {
    async fn capture(&self, request: CaptureRequest) -> Result<String, ProviderError> {
        let body = CaptureBody {
            tenant: request.tenant.0,
            order_id: request.order_id.0,
            amount_cents: request.amount_cents,
        };
        let reply: CaptureReply = self.0.post("payments/capture", request.key, &body).await?;
        Ok(reply.payment_id)
    }

    async fn refund(&self, request: RefundRequest) -> Result<String, ProviderError> {
        let body = RefundBody {
            tenant: request.tenant.0,
            payment_id: request.payment_id,
            amount_cents: request.amount_cents,
        };
        let reply: RefundReply = self.0.post("payments/refund", request.key, &body).await?;
        Ok(reply.refund_id)
    }

    async fn find_capture(&self, key: Uuid) -> Result<Option<Capture>, ProviderError> {
        let reply: CaptureLedgerReply = self.0.get(&format!("ledger/captures/{key}")).await?;
        Ok(reply.capture.map(|c| Capture {
            payment_id: c.payment_id,
            amount_cents: c.amount_cents,
        }))
    }

    async fn capture_ledger(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<CaptureEntry>, ProviderError> {
        let page: CaptureLedgerPage = self
            .0
            .get(&format!("ledger/captures?after={after}&limit={limit}"))
            .await?;
        Ok(page.entries.into_iter().map(Into::into).collect())
    }
}

/// The Inventory port over HTTP.
#[derive(Clone, Debug)]
pub struct HttpInventory(HttpProvider);

impl HttpInventory {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, ClientError> {
        Ok(HttpProvider::new(base_url, timeout)?.inventory())
    }
}

#[async_trait]
impl Inventory for HttpInventory {
    async fn reserve(&self, request: ReserveRequest) -> Result<String, ProviderError> {
        let body = ReserveBody {
            tenant: request.tenant.0,
            order_id: request.order_id.0,
            lines: request
                .lines
                .into_iter()
                .map(|l| LineBody {
                    sku: l.sku,
                    quantity: l.quantity,
                })
                .collect(),
        };
        let reply: ReserveReply = self.0.post("inventory/reserve", request.key, &body).await?;
        Ok(reply.reservation_id)
    }

    async fn release(&self, request: ReleaseRequest) -> Result<(), ProviderError> {
        let body = ReleaseBody {
            tenant: request.tenant.0,
            reservation_id: request.reservation_id,
        };
        let _: ReleaseReply = self.0.post("inventory/release", request.key, &body).await?;
        Ok(())
    }

    async fn find_reservation(&self, key: Uuid) -> Result<Option<String>, ProviderError> {
        let reply: ReservationLedgerReply =
            self.0.get(&format!("ledger/reservations/{key}")).await?;
        Ok(reply.reservation.map(|r| r.reservation_id))
    }

    async fn reservation_ledger(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ReservationEntry>, ProviderError> {
        let page: ReservationLedgerPage = self
            .0
            .get(&format!("ledger/reservations?after={after}&limit={limit}"))
            .await?;
        Ok(page.entries.into_iter().map(Into::into).collect())
    }
}

/// How long [`HttpCatalog`] answers from its copy by default.
pub const DEFAULT_CATALOG_TTL: Duration = Duration::from_secs(2);

/// The catalog the provider serves (`GET inventory/catalog`), kept for a short time:
/// every order placed reads it, so a busy server asks the provider about once per
/// `ttl` instead of once per order. One read at a time: callers arriving while it is
/// read wait for it and share its answer. A failed read is not kept.
#[derive(Debug)]
pub struct HttpCatalog {
    provider: HttpProvider,
    ttl: Duration,
    kept: tokio::sync::Mutex<Option<(std::time::Instant, Vec<CatalogItem>)>>,
}

impl HttpCatalog {
    /// Reads the catalog at `base_url`, keeping it [`DEFAULT_CATALOG_TTL`].
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, ClientError> {
        Ok(HttpProvider::new(base_url, timeout)?.catalog(DEFAULT_CATALOG_TTL))
    }

    /// How long a read is answered from (zero: every call asks the provider).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

#[async_trait]
impl Catalog for HttpCatalog {
    async fn items(&self) -> Result<Vec<CatalogItem>, ProviderError> {
        let mut kept = self.kept.lock().await;
        if let Some((at, items)) = kept.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(items.clone());
        }
        let entries: Vec<CatalogEntry> = self.provider.get("inventory/catalog").await?;
        let items: Vec<CatalogItem> = entries.into_iter().map(Into::into).collect();
        if !self.ttl.is_zero() {
            *kept = Some((std::time::Instant::now(), items.clone()));
        }
        Ok(items)
    }
}
