//! The sandbox provider: an HTTP server that keeps stock and charges in memory, with
//! idempotency keys and fault injection. See docs/durable.md for the endpoints.

use crate::wire::{
    CaptureBody, CaptureLedgerEntry, CaptureLedgerPage, CaptureLedgerReply, CaptureReply,
    CatalogEntry, ErrorBody, Faults, IDEMPOTENCY_KEY, LedgerCapture, LedgerReservation, RefundBody,
    RefundReply, ReleaseBody, ReleaseReply, ReservationLedgerEntry, ReservationLedgerPage,
    ReservationLedgerReply, ReserveBody, ReserveReply, Stats,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hearth_core::ports::{CatalogItem, MAX_LEDGER_PAGE};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Longest idempotency key accepted.
const MAX_KEY_LEN: usize = 255;

/// A sandbox provider's state; cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct Sandbox {
    inner: Arc<Mutex<Inner>>,
    /// Rung after every request has had its effect, for [`Sandbox::wait_for`].
    changed: Arc<watch::Sender<()>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Op {
    Capture,
    Refund,
    Reserve,
    Release,
}

/// What must match when a key is reused: the request's effect (amount, payment,
/// lines, reservation). Tenant and order are metadata: a retry that differs only there
/// still gets the first reply (as the port contracts expect).
trait Fingerprint {
    fn fingerprint(&self) -> serde_json::Value;
}

impl Fingerprint for CaptureBody {
    fn fingerprint(&self) -> serde_json::Value {
        serde_json::json!({ "amountCents": self.amount_cents })
    }
}

impl Fingerprint for RefundBody {
    fn fingerprint(&self) -> serde_json::Value {
        serde_json::json!({ "paymentId": self.payment_id, "amountCents": self.amount_cents })
    }
}

impl Fingerprint for ReserveBody {
    fn fingerprint(&self) -> serde_json::Value {
        json(&self.lines)
    }
}

impl Fingerprint for ReleaseBody {
    fn fingerprint(&self) -> serde_json::Value {
        serde_json::json!({ "reservationId": self.reservation_id })
    }
}

/// A reply kept under its idempotency key, with the request it answered.
#[derive(Debug)]
struct Stored {
    request: serde_json::Value,
    status: StatusCode,
    body: serde_json::Value,
}

#[derive(Debug)]
struct Inner {
    faults: Faults,
    catalog: Vec<CatalogItem>,
    replies: HashMap<(Op, String), Stored>,
    /// payment id -> captured cents.
    captures: HashMap<String, u64>,
    /// payment ids refunded.
    refunded: HashSet<String>,
    /// reservation id -> (sku, quantity) held.
    reservations: HashMap<String, Vec<(String, u32)>>,
    /// The ledgers, in the order effects happened: (key, tenant, order, payment id).
    capture_ledger: Vec<(String, Uuid, Uuid, String)>,
    /// (key, tenant, order, reservation id).
    reservation_ledger: Vec<(String, Uuid, Uuid, String)>,
    stats: Stats,
    /// `GET /inventory/catalog` requests answered (a request, not an effect: how a test
    /// sees a client's cache at work).
    catalog_reads: u64,
    rng: u64,
    /// Where provider events go (`POST /admin/events`); none: they cannot be sent.
    webhook: Option<crate::webhook::WebhookTarget>,
}

type Reply = (StatusCode, serde_json::Value);

fn json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

fn refusal(status: StatusCode, code: &str, message: String) -> Reply {
    (
        status,
        json(&ErrorBody {
            code: code.into(),
            message,
            sku: None,
        }),
    )
}

fn respond((status, body): Reply) -> Response {
    (status, axum::Json(body)).into_response()
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new(Faults::default())
    }
}

impl Sandbox {
    /// A sandbox with the default household-shop catalog and these faults.
    pub fn new(faults: Faults) -> Self {
        Self::with_catalog(hearth_memory::default_catalog(), faults)
    }

    pub fn with_catalog(catalog: Vec<CatalogItem>, faults: Faults) -> Self {
        // Some bits that differ between runs: the random tail of a v7 uuid.
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&Uuid::now_v7().into_bytes()[8..16]);
        let seed = u64::from_le_bytes(tail);
        Self {
            inner: Arc::new(Mutex::new(Inner {
                faults,
                catalog,
                replies: HashMap::new(),
                captures: HashMap::new(),
                refunded: HashSet::new(),
                reservations: HashMap::new(),
                capture_ledger: Vec::new(),
                reservation_ledger: Vec::new(),
                stats: Stats::default(),
                catalog_reads: 0,
                rng: seed,
                webhook: None,
            })),
            changed: Arc::new(watch::channel(()).0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// Waits until the stats satisfy `done` (checked now and after every request's
    /// effect), up to `timeout`: the stats then, or `None` at the timeout. For a test
    /// in the sandbox's process that must act once a call has reached the provider.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&Stats) -> bool,
    ) -> Option<Stats> {
        // Subscribed before the first look: a request after it always wakes us.
        let mut changed = self.changed.subscribe();
        let wait = async {
            loop {
                let stats = self.stats();
                if done(&stats) {
                    return stats;
                }
                // The sender lives as long as `self`: this never errs while we wait.
                let _ = changed.changed().await;
            }
        };
        tokio::time::timeout(timeout, wait).await.ok()
    }

    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Sends provider events to `target` (`POST /admin/events`).
    pub fn set_webhook(&self, target: crate::webhook::WebhookTarget) {
        self.lock().webhook = Some(target);
    }

    /// The provider event `request` asks for, from the ledgers (and, for a refund, the
    /// refund itself, done now): the provider that reports it, the event and where to
    /// send it; or the refusal.
    fn provider_event(
        &self,
        request: &crate::webhook::EmitRequest,
    ) -> Result<
        (
            &'static str,
            serde_json::Value,
            crate::webhook::WebhookTarget,
        ),
        Reply,
    > {
        let mut inner = self.lock();
        let target = inner.webhook.clone().ok_or_else(|| {
            refusal(
                StatusCode::CONFLICT,
                "no_webhook",
                "no webhook URL and secrets configured (--webhook-url)".into(),
            )
        })?;
        let order = request.order_id;
        let unknown = || {
            refusal(
                StatusCode::NOT_FOUND,
                "unknown_order",
                format!("no reservation or capture for order {order}"),
            )
        };
        let reservation = inner
            .reservation_ledger
            .iter()
            .rev()
            .find(|(_, _, o, _)| *o == order)
            .cloned();
        let capture = inner
            .capture_ledger
            .iter()
            .rev()
            .find(|(_, _, o, _)| *o == order)
            .cloned();
        let id = request
            .id
            .clone()
            .unwrap_or_else(|| format!("evt_{}", Uuid::now_v7().simple()));
        let (provider, tenant, payload) = match request.kind.as_str() {
            "StockLost" => {
                let (_, tenant, _, reservation_id) = reservation.ok_or_else(unknown)?;
                let sku = match &request.sku {
                    Some(sku) => sku.clone(),
                    None => inner
                        .reservations
                        .get(&reservation_id)
                        .and_then(|held| held.first())
                        .map(|(sku, _)| sku.clone())
                        .ok_or_else(|| {
                            refusal(
                                StatusCode::CONFLICT,
                                "not_held",
                                format!("reservation {reservation_id} holds nothing now"),
                            )
                        })?,
                };
                // The stock is gone: the reservation holds it no more.
                if let Some(held) = inner.reservations.get_mut(&reservation_id) {
                    held.retain(|(s, _)| *s != sku);
                }
                (
                    "inventory",
                    tenant,
                    serde_json::json!({ "orderId": order, "sku": sku }),
                )
            }
            "ProviderRefunded" => {
                let (_, tenant, _, payment_id) = capture.ok_or_else(unknown)?;
                let amount = inner.captures.get(&payment_id).copied().unwrap_or(0);
                if !inner.refunded.insert(payment_id.clone()) {
                    return Err(refusal(
                        StatusCode::CONFLICT,
                        "already_refunded",
                        format!("payment {payment_id} already refunded"),
                    ));
                }
                inner.stats.refunds += 1;
                inner.stats.refunded_cents += amount;
                let refund_id = format!("ref_{}", Uuid::now_v7().simple());
                (
                    "payments",
                    tenant,
                    serde_json::json!({
                        "orderId": order, "paymentId": payment_id,
                        "amountCents": amount, "refundId": refund_id,
                    }),
                )
            }
            "PickedUp" => {
                let (_, tenant, _, _) = reservation.ok_or_else(unknown)?;
                ("inventory", tenant, serde_json::json!({ "orderId": order }))
            }
            other => {
                return Err(refusal(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unknown_event_type",
                    format!("{other:?}: expected StockLost, ProviderRefunded or PickedUp"),
                ));
            }
        };
        let event = serde_json::json!({
            "id": id, "household": tenant, "type": request.kind, "payload": payload,
        });
        Ok((provider, event, target))
    }

    pub fn catalog(&self) -> Vec<CatalogItem> {
        self.lock().catalog.clone()
    }

    /// How many times the catalog was read over HTTP.
    pub fn catalog_reads(&self) -> u64 {
        self.lock().catalog_reads
    }

    /// Sets the catalog's price of `sku`.
    pub fn set_price(&self, sku: &str, cents: u64) {
        if let Some(item) = self.lock().catalog.iter_mut().find(|i| i.sku == sku) {
            item.unit_price_cents = cents;
        }
    }

    /// The ledger: the capture that took effect under `key`, if any.
    pub fn capture_by_key(&self, key: &str) -> Option<LedgerCapture> {
        let inner = self.lock();
        let payment_id = inner.succeeded(Op::Capture, key, "paymentId")?;
        let amount_cents = *inner.captures.get(&payment_id)?;
        Some(LedgerCapture {
            refunded: inner.refunded.contains(&payment_id),
            payment_id,
            amount_cents,
        })
    }

    /// The ledger: the reservation made under `key`, if any.
    pub fn reservation_by_key(&self, key: &str) -> Option<LedgerReservation> {
        let inner = self.lock();
        let reservation_id = inner.succeeded(Op::Reserve, key, "reservationId")?;
        Some(LedgerReservation {
            held: inner.reservations.contains_key(&reservation_id),
            reservation_id,
        })
    }

    /// A page of the capture ledger: entries with `position > after` (positions from
    /// 1, in the order captures took effect), at most `limit` and [`MAX_LEDGER_PAGE`].
    pub fn capture_ledger(&self, after: u64, limit: usize) -> Vec<CaptureLedgerEntry> {
        let inner = self.lock();
        page(&inner.capture_ledger, after, limit)
            .map(
                |(position, (key, tenant, order_id, payment_id))| CaptureLedgerEntry {
                    position,
                    key: key.clone(),
                    tenant: *tenant,
                    order_id: *order_id,
                    payment_id: payment_id.clone(),
                    amount_cents: inner.captures.get(payment_id).copied().unwrap_or(0),
                    refunded: inner.refunded.contains(payment_id),
                },
            )
            .collect()
    }

    /// A page of the reservation ledger, as [`Sandbox::capture_ledger`].
    pub fn reservation_ledger(&self, after: u64, limit: usize) -> Vec<ReservationLedgerEntry> {
        let inner = self.lock();
        page(&inner.reservation_ledger, after, limit)
            .map(
                |(position, (key, tenant, order_id, reservation_id))| ReservationLedgerEntry {
                    position,
                    key: key.clone(),
                    tenant: *tenant,
                    order_id: *order_id,
                    reservation_id: reservation_id.clone(),
                    held: inner.reservations.contains_key(reservation_id),
                },
            )
            .collect()
    }

    /// The HTTP API of this sandbox.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/payments/capture", post(capture))
            .route("/payments/refund", post(refund))
            .route("/inventory/reserve", post(reserve))
            .route("/inventory/release", post(release))
            .route("/inventory/catalog", get(catalog))
            .route("/ledger/captures", get(capture_page))
            .route("/ledger/reservations", get(reservation_page))
            .route("/ledger/captures/{key}", get(capture_ledger))
            .route("/ledger/reservations/{key}", get(reservation_ledger))
            .route("/stats", get(stats))
            .route("/admin/faults", get(get_faults).put(put_faults))
            .route("/admin/events", post(emit_event))
            .route("/admin/webhook", axum::routing::put(put_webhook))
            .with_state(self.clone())
    }
}

impl Inner {
    /// The id field of the successful reply stored under `(op, key)`.
    fn succeeded(&self, op: Op, key: &str, field: &str) -> Option<String> {
        let stored = self.replies.get(&(op, key.trim().to_owned()))?;
        if !stored.status.is_success() {
            return None;
        }
        stored.body.get(field)?.as_str().map(str::to_owned)
    }

    /// splitmix64: a uniform draw in [0, 1).
    fn draw(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Whether to fail this request on purpose (503, no effect).
    fn inject_failure(&mut self) -> bool {
        if self.faults.fail_next > 0 {
            self.faults.fail_next -= 1;
            return true;
        }
        let rate = self.faults.failure_rate;
        rate > 0.0 && self.draw() < rate
    }

    fn capture(&mut self, key: &str, body: CaptureBody) -> Reply {
        if body.amount_cents == 0 {
            return refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_amount",
                "cannot capture zero".into(),
            );
        }
        if let Some(limit) = self.faults.decline_above_cents
            && body.amount_cents > limit
        {
            self.stats.declines += 1;
            return refusal(
                StatusCode::PAYMENT_REQUIRED,
                "declined",
                format!(
                    "amount {} above the sandbox limit {limit}",
                    body.amount_cents
                ),
            );
        }
        let payment_id = format!("pay_{}", Uuid::now_v7().simple());
        self.captures.insert(payment_id.clone(), body.amount_cents);
        self.capture_ledger.push((
            key.to_owned(),
            body.tenant,
            body.order_id,
            payment_id.clone(),
        ));
        self.stats.captures += 1;
        self.stats.captured_cents += body.amount_cents;
        (StatusCode::OK, json(&CaptureReply { payment_id }))
    }

    fn refund(&mut self, _key: &str, body: RefundBody) -> Reply {
        let Some(&captured) = self.captures.get(&body.payment_id) else {
            return refusal(
                StatusCode::NOT_FOUND,
                "unknown_payment",
                format!("unknown payment {}", body.payment_id),
            );
        };
        if self.refunded.contains(&body.payment_id) {
            return refusal(
                StatusCode::CONFLICT,
                "already_refunded",
                format!("payment {} already refunded", body.payment_id),
            );
        }
        if body.amount_cents > captured {
            return refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_amount",
                format!("refund {} above capture {captured}", body.amount_cents),
            );
        }
        self.refunded.insert(body.payment_id);
        self.stats.refunds += 1;
        self.stats.refunded_cents += body.amount_cents;
        let refund_id = format!("ref_{}", Uuid::now_v7().simple());
        (StatusCode::OK, json(&RefundReply { refund_id }))
    }

    fn reserve(&mut self, key: &str, body: ReserveBody) -> Reply {
        if body.lines.is_empty() {
            return refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no_lines",
                "a reservation needs at least one line".into(),
            );
        }
        // All or nothing: check every line (summed per sku) before holding any.
        let mut wanted: HashMap<&str, u64> = HashMap::new();
        for line in &body.lines {
            *wanted.entry(line.sku.as_str()).or_default() += u64::from(line.quantity);
        }
        for line in &body.lines {
            let forced = self.faults.out_of_stock.iter().any(|s| s == &line.sku);
            let available = self
                .catalog
                .iter()
                .find(|i| i.sku == line.sku)
                .map_or(0, |i| u64::from(i.available));
            let want = wanted.get(line.sku.as_str()).copied().unwrap_or(0);
            if forced || available < want {
                return (
                    StatusCode::CONFLICT,
                    json(&ErrorBody {
                        code: "out_of_stock".into(),
                        message: format!("{} available of {}, {want} wanted", available, line.sku),
                        sku: Some(line.sku.clone()),
                    }),
                );
            }
        }
        let mut held = Vec::with_capacity(body.lines.len());
        for line in body.lines {
            if let Some(item) = self.catalog.iter_mut().find(|i| i.sku == line.sku) {
                item.available = item.available.saturating_sub(line.quantity);
                held.push((line.sku, line.quantity));
            }
        }
        let reservation_id = format!("res_{}", Uuid::now_v7().simple());
        self.reservations.insert(reservation_id.clone(), held);
        self.reservation_ledger.push((
            key.to_owned(),
            body.tenant,
            body.order_id,
            reservation_id.clone(),
        ));
        self.stats.reservations += 1;
        self.stats.held = self.reservations.len() as u64;
        (StatusCode::OK, json(&ReserveReply { reservation_id }))
    }

    fn release(&mut self, _key: &str, body: ReleaseBody) -> Reply {
        let Some(held) = self.reservations.remove(&body.reservation_id) else {
            return refusal(
                StatusCode::NOT_FOUND,
                "unknown_reservation",
                format!("unknown reservation {}", body.reservation_id),
            );
        };
        for (sku, quantity) in held {
            if let Some(item) = self.catalog.iter_mut().find(|i| i.sku == sku) {
                item.available = item.available.saturating_add(quantity);
            }
        }
        self.stats.releases += 1;
        self.stats.held = self.reservations.len() as u64;
        (
            StatusCode::OK,
            json(&ReleaseReply {
                reservation_id: body.reservation_id,
            }),
        )
    }
}

/// One provider request: key, body, fault injection, the idempotency store, the
/// effect, then the latency.
async fn call<B: DeserializeOwned + Fingerprint>(
    sandbox: &Sandbox,
    op: Op,
    headers: &HeaderMap,
    raw: &Bytes,
    effect: impl FnOnce(&mut Inner, &str, B) -> Reply,
) -> Response {
    let (reply, latency) = {
        let mut inner = sandbox.lock();
        inner.stats.requests += 1;
        let latency = Duration::from_millis(inner.faults.latency_ms);
        (decide(&mut inner, op, headers, raw, effect), latency)
    };
    sandbox.changed.send_modify(|()| {});
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    respond(reply)
}

fn decide<B: DeserializeOwned + Fingerprint>(
    inner: &mut Inner,
    op: Op,
    headers: &HeaderMap,
    raw: &Bytes,
    effect: impl FnOnce(&mut Inner, &str, B) -> Reply,
) -> Reply {
    let key = match headers.get(IDEMPOTENCY_KEY).map(|v| v.to_str()) {
        Some(Ok(k)) if !k.trim().is_empty() && k.len() <= MAX_KEY_LEN => k.trim().to_owned(),
        _ => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "idempotency_key_required",
                format!("send an Idempotency-Key header (1 to {MAX_KEY_LEN} characters)"),
            );
        }
    };
    let body: B = match serde_json::from_slice(raw) {
        Ok(b) => b,
        Err(e) => {
            return refusal(StatusCode::BAD_REQUEST, "bad_request", e.to_string());
        }
    };
    if inner.inject_failure() {
        inner.stats.injected_failures += 1;
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "injected_failure",
            "the sandbox failed this request on purpose; retry with the same key".into(),
        );
    }
    let request = body.fingerprint();
    if let Some(stored) = inner.replies.get(&(op, key.clone())) {
        if stored.request != request {
            return refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this idempotency key was used for a different request".into(),
            );
        }
        let reply = (stored.status, stored.body.clone());
        inner.stats.replays += 1;
        return reply;
    }
    let (status, reply) = effect(inner, &key, body);
    inner.replies.insert(
        (op, key),
        Stored {
            request,
            status,
            body: reply.clone(),
        },
    );
    (status, reply)
}

async fn capture(State(s): State<Sandbox>, headers: HeaderMap, raw: Bytes) -> Response {
    let response = call(&s, Op::Capture, &headers, &raw, Inner::capture).await;
    if response.status() == StatusCode::OK {
        s.lose_stock_after_capture(&raw);
    }
    response
}

impl Sandbox {
    /// The `lose_stock_after_capture` fault: if the captured order's reservation holds a
    /// sku it names, report that stock lost to the webhook, in the background, after
    /// `stock_lost_delay_ms`. Once per order and sku (the event id says which).
    fn lose_stock_after_capture(&self, raw: &Bytes) {
        let Ok(body) = serde_json::from_slice::<CaptureBody>(raw) else {
            return;
        };
        let (sku, delay) = {
            let inner = self.lock();
            let lost = &inner.faults.lose_stock_after_capture;
            let held = inner
                .reservation_ledger
                .iter()
                .filter(|(_, _, order, _)| *order == body.order_id)
                .filter_map(|(_, _, _, id)| inner.reservations.get(id))
                .flatten()
                .find(|(sku, _)| lost.contains(sku))
                .map(|(sku, _)| sku.clone());
            match held {
                Some(sku) => (sku, inner.faults.stock_lost_delay_ms),
                None => return,
            }
        };
        let sandbox = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let request = crate::webhook::EmitRequest {
                kind: "StockLost".into(),
                order_id: body.order_id,
                id: Some(format!("lost_{}_{sku}", body.order_id.simple())),
                sku: Some(sku),
            };
            match sandbox.provider_event(&request) {
                Ok((provider, event, target)) => {
                    sandbox.changed.send_modify(|()| {});
                    match crate::webhook::deliver(&target, provider, &event).await {
                        Ok((status, _)) => {
                            tracing::info!(order = %body.order_id, %status, "stock lost reported")
                        }
                        Err(e) => {
                            tracing::warn!(order = %body.order_id, error = %e, "stock lost not delivered")
                        }
                    }
                }
                Err((status, reply)) => {
                    tracing::warn!(order = %body.order_id, %status, %reply, "stock lost not reported");
                }
            }
        });
    }
}

async fn refund(State(s): State<Sandbox>, headers: HeaderMap, raw: Bytes) -> Response {
    call(&s, Op::Refund, &headers, &raw, Inner::refund).await
}

async fn reserve(State(s): State<Sandbox>, headers: HeaderMap, raw: Bytes) -> Response {
    call(&s, Op::Reserve, &headers, &raw, Inner::reserve).await
}

async fn release(State(s): State<Sandbox>, headers: HeaderMap, raw: Bytes) -> Response {
    call(&s, Op::Release, &headers, &raw, Inner::release).await
}

async fn catalog(State(s): State<Sandbox>) -> Response {
    let entries: Vec<CatalogEntry> = {
        let mut inner = s.lock();
        inner.catalog_reads += 1;
        inner.catalog.iter().cloned().map(Into::into).collect()
    };
    respond((StatusCode::OK, json(&entries)))
}

/// `?after=N&limit=M` of the ledger pages (defaults: from the start, a full page).
#[derive(Debug, serde::Deserialize)]
struct PageQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn capture_page(State(s): State<Sandbox>, Query(q): Query<PageQuery>) -> Response {
    let entries = s.capture_ledger(q.after.unwrap_or(0), q.limit.unwrap_or(MAX_LEDGER_PAGE));
    respond((StatusCode::OK, json(&CaptureLedgerPage { entries })))
}

async fn reservation_page(State(s): State<Sandbox>, Query(q): Query<PageQuery>) -> Response {
    let entries = s.reservation_ledger(q.after.unwrap_or(0), q.limit.unwrap_or(MAX_LEDGER_PAGE));
    respond((StatusCode::OK, json(&ReservationLedgerPage { entries })))
}

/// Entries with `position > after` (positions from 1), at most `limit` and
/// [`MAX_LEDGER_PAGE`].
fn page<T>(ledger: &[T], after: u64, limit: usize) -> impl Iterator<Item = (u64, &T)> {
    let start = usize::try_from(after).unwrap_or(usize::MAX);
    ledger
        .iter()
        .enumerate()
        .skip(start)
        .take(limit.min(MAX_LEDGER_PAGE))
        .map(|(i, entry)| (i as u64 + 1, entry))
}

async fn capture_ledger(State(s): State<Sandbox>, Path(key): Path<String>) -> Response {
    let reply = CaptureLedgerReply {
        capture: s.capture_by_key(&key),
    };
    respond((StatusCode::OK, json(&reply)))
}

async fn reservation_ledger(State(s): State<Sandbox>, Path(key): Path<String>) -> Response {
    let reply = ReservationLedgerReply {
        reservation: s.reservation_by_key(&key),
    };
    respond((StatusCode::OK, json(&reply)))
}

async fn stats(State(s): State<Sandbox>) -> Response {
    respond((StatusCode::OK, json(&s.stats())))
}

async fn get_faults(State(s): State<Sandbox>) -> Response {
    respond((StatusCode::OK, json(&s.faults())))
}

async fn put_faults(State(s): State<Sandbox>, raw: Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&raw) {
        Ok(f) => f,
        Err(e) => {
            return respond(refusal(
                StatusCode::BAD_REQUEST,
                "bad_request",
                e.to_string(),
            ));
        }
    };
    if !(0.0..=1.0).contains(&faults.failure_rate) {
        return respond(refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_failure_rate",
            "failureRate must be between 0 and 1".into(),
        ));
    }
    s.set_faults(faults.clone());
    respond((StatusCode::OK, json(&faults)))
}

/// `PUT /admin/webhook`: where provider events go from now on, and the secrets.
async fn put_webhook(State(s): State<Sandbox>, raw: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Body {
        url: String,
        payments_secret: String,
        inventory_secret: String,
    }
    let body: Body = match serde_json::from_slice(&raw) {
        Ok(b) => b,
        Err(e) => {
            return respond(refusal(
                StatusCode::BAD_REQUEST,
                "bad_request",
                e.to_string(),
            ));
        }
    };
    if body.payments_secret.len() < 32 || body.inventory_secret.len() < 32 {
        return respond(refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            "weak_secret",
            "webhook secrets must be at least 32 bytes".into(),
        ));
    }
    s.set_webhook(crate::webhook::WebhookTarget {
        url: body.url.clone(),
        payments_secret: Arc::from(body.payments_secret.as_bytes()),
        inventory_secret: Arc::from(body.inventory_secret.as_bytes()),
    });
    respond((StatusCode::OK, serde_json::json!({ "url": body.url })))
}

async fn emit_event(State(s): State<Sandbox>, raw: Bytes) -> Response {
    let request: crate::webhook::EmitRequest = match serde_json::from_slice(&raw) {
        Ok(r) => r,
        Err(e) => {
            return respond(refusal(
                StatusCode::BAD_REQUEST,
                "bad_request",
                e.to_string(),
            ));
        }
    };
    let (provider, event, target) = match s.provider_event(&request) {
        Ok(found) => found,
        Err(reply) => return respond(reply),
    };
    s.changed.send_modify(|()| {});
    match crate::webhook::deliver(&target, provider, &event).await {
        Ok((status, answer)) => {
            tracing::info!(provider, %status, "provider event delivered");
            respond((
                StatusCode::OK,
                json(&crate::webhook::EmitReply {
                    provider: provider.into(),
                    event,
                    status,
                    answer,
                }),
            ))
        }
        Err(e) => respond(refusal(
            StatusCode::BAD_GATEWAY,
            "webhook_unreachable",
            format!("sending to {}: {e}", target.url),
        )),
    }
}

/// Serves `sandbox` on `listener` until `shutdown` resolves: how `hearth sandbox` runs
/// it, and how another process (e.g. `hearth serve`) embeds it.
pub async fn serve(
    listener: TcpListener,
    sandbox: Sandbox,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, sandbox.router())
        .with_graceful_shutdown(shutdown)
        .await
}

/// A sandbox served in the background (tests, embedding).
#[derive(Debug)]
pub struct RunningSandbox {
    addr: SocketAddr,
    sandbox: Sandbox,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningSandbox {
    /// Binds `addr` (port 0 for any free port) and serves `sandbox` on it.
    pub async fn start(addr: SocketAddr, sandbox: Sandbox) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, sandbox.clone(), async move {
            let _ = stopped.await;
        }));
        Ok(Self {
            addr,
            sandbox,
            stop: Some(stop),
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, the base URL of the HTTP adapters.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Stops accepting, finishes in-flight requests, and returns the server's result.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}
