//! `POST /webhooks/{provider}` from the outside: signatures, the time window, the
//! answers, idempotency by the provider's event id, and the edge's limits.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use common::{Owned, TestApp, spawn};
use hearth_axum::LimitSettings;
use hearth_axum::Rate;
use hearth_axum::webhooks::{
    MAX_WEBHOOK_BYTES, Provider, SIGNATURE_HEADER, SIGNATURE_WINDOW_SECS, WebhookSecret,
    WebhookSecrets, external_id, sign,
};
use hearth_core::contracts::{ExternalEvent, ExternalKind};
use hearth_core::order::{
    Command, OrderRef, OrderStatus, PlaceOrder, RecordPaymentCaptured, RecordStockReserved,
    RequestedLine,
};
use hearth_core::ports::EventStore;
use hearth_core::service::reaction_id;
use hearth_core::{
    Actor, CommandEnvelope, CommandId, CommandOutcome, HouseholdView, OrderId, Service,
};
use hearth_memory::SystemClock;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

const INVENTORY_SECRET: &str = "inventory-secret-of-at-least-32-bytes";
const PAYMENTS_SECRET: &str = "payments-secret-of-at-least-32-bytes!";

fn secrets() -> WebhookSecrets {
    WebhookSecrets {
        payments: Some(WebhookSecret::new(PAYMENTS_SECRET).unwrap()),
        inventory: Some(WebhookSecret::new(INVENTORY_SECRET).unwrap()),
    }
}

async fn app() -> TestApp {
    spawn(|s| s.webhook_secrets = secrets()).await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn signed(secret: &str, t: i64, body: &[u8]) -> String {
    sign(&WebhookSecret::new(secret).unwrap(), t, body)
}

async fn post(
    app: &TestApp,
    provider: &str,
    body: Vec<u8>,
    signature: Option<String>,
) -> (u16, Value) {
    let mut request = app
        .http
        .post(app.url(&format!("/webhooks/{provider}")))
        .header("content-type", "application/json")
        .body(body);
    if let Some(signature) = signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    // Errors come in the edge's shape, `{"error": {"code", "message"}}`.
    match body.get("error") {
        Some(error) => (status, error.clone()),
        None => (status, body),
    }
}

/// Posts `body` to the inventory webhook, signed now with its secret.
async fn inventory(app: &TestApp, body: &Value) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let signature = signed(INVENTORY_SECRET, now(), &bytes);
    post(app, "inventory", bytes, Some(signature)).await
}

fn stock_lost(id: &str, hh: &Owned, order: OrderId) -> Value {
    json!({
        "id": id,
        "household": hh.id,
        "type": "StockLost",
        "payload": {"orderId": order, "sku": "bread"}
    })
}

/// An order of `hh`'s owner, taken by the fulfilment process as far as confirmed.
async fn confirmed_order(app: &TestApp, hh: &Owned) -> (Service, OrderId) {
    let service = Service::new(app.store.clone(), Arc::new(SystemClock))
        .with_catalog(Arc::new(hearth_memory::MemoryInventory::default()));
    let order = OrderId(Uuid::now_v7());
    let send = |actor: Actor, command: Command| {
        CommandEnvelope::new(CommandId(Uuid::now_v7()), hh.id, actor, command)
    };
    let steps = [
        (
            Actor::Member { id: hh.owner },
            Command::PlaceOrder(PlaceOrder {
                order_id: order,
                lines: vec![RequestedLine::new("bread", 1)],
                ready_at: None,
                note: None,
            }),
        ),
        (
            Actor::Process,
            Command::RecordStockReserved(RecordStockReserved {
                order_id: order,
                reservation_id: "res_1".into(),
            }),
        ),
        (
            Actor::Process,
            Command::RecordPaymentCaptured(RecordPaymentCaptured {
                order_id: order,
                payment_id: "pay_1".into(),
                amount_cents: 450,
            }),
        ),
        (
            Actor::Process,
            Command::ConfirmOrder(OrderRef { order_id: order }),
        ),
    ];
    for (actor, command) in steps {
        let done = service.dispatch(send(actor, command)).await.unwrap();
        assert!(
            matches!(done, hearth_core::Dispatched::Accepted { .. }),
            "{done:?}"
        );
    }
    (service, order)
}

async fn view(app: &TestApp, hh: &Owned) -> HouseholdView {
    let events = app.store.read_feed(hh.id, 0, 1000).await.unwrap();
    HouseholdView::fold(&events).unwrap()
}

#[tokio::test]
async fn stock_lost_rejects_a_confirmed_order_once_however_often_it_is_sent() {
    let app = app().await;
    let hh = app.household().await;
    let (_, order) = confirmed_order(&app, &hh).await;
    let body = stock_lost("evt_1", &hh, order);
    let (status, first) = inventory(&app, &body).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["result"], "reacted");
    let head = app.head(hh.id).await;
    assert_eq!(first["seq"], head);
    // The same provider event again, signed afresh: the same answer, no second reaction.
    let (status, again) = inventory(&app, &body).await;
    assert_eq!((status, &again), (200, &first));
    assert_eq!(app.head(hh.id).await, head);
    let order = view(&app, &hh).await.order(order).cloned().unwrap();
    assert_eq!(order.status, OrderStatus::Rejected);
    assert_eq!(
        order.rejection,
        Some(hearth_core::order::RejectionReason::StockLost {
            sku: "bread".into()
        })
    );
}

#[tokio::test]
async fn an_unknown_order_is_answered_202_and_recorded_as_ignored() {
    let app = app().await;
    let hh = app.household().await;
    let order = OrderId(Uuid::now_v7());
    let (status, body) = inventory(&app, &stock_lost("evt_unknown", &hh, order)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["result"], "ignored");
    assert_eq!(body["code"], "order_not_found");
    let external = ExternalEvent {
        id: external_id(Provider::Inventory, "evt_unknown"),
        tenant: hh.id,
        kind: ExternalKind::StockLost {
            order_id: order,
            sku: "bread".into(),
        },
    };
    let recorded = app
        .store
        .outcome(hh.id, reaction_id(&external))
        .await
        .unwrap();
    assert!(
        matches!(&recorded, Some(CommandOutcome::Rejected { code, .. }) if code == "order_not_found"),
        "{recorded:?}"
    );
    assert_eq!(
        app.head(hh.id).await,
        1,
        "no event: only the owner's joining"
    );
    // An unknown household: ignored, and nothing to record it in.
    let stranger = json!({
        "id": "evt_2", "household": Uuid::now_v7(), "type": "PickedUp",
        "payload": {"orderId": order}
    });
    let (status, body) = inventory(&app, &stranger).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (202, Some("unknown_household"))
    );
}

#[tokio::test]
async fn a_pick_up_of_an_order_not_ready_is_recorded_as_no_reaction() {
    let app = app().await;
    let hh = app.household().await;
    let (_, order) = confirmed_order(&app, &hh).await;
    let body = json!({
        "id": "pick_1", "household": hh.id, "type": "PickedUp", "payload": {"orderId": order}
    });
    let head = app.head(hh.id).await;
    let (status, answer) = inventory(&app, &body).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (202, Some("noReaction")),
        "{answer}"
    );
    assert_eq!(answer["code"], "no_reaction");
    assert_eq!(app.head(hh.id).await, head);
    assert_eq!(inventory(&app, &body).await, (status, answer));
}

#[tokio::test]
async fn a_provider_refund_is_recorded_from_the_payments_webhook_only() {
    let app = app().await;
    let hh = app.household().await;
    let (_, order) = confirmed_order(&app, &hh).await;
    let body = json!({
        "id": "re_evt", "household": hh.id, "type": "ProviderRefunded",
        "payload": {"orderId": order, "paymentId": "pay_1", "amountCents": 450, "refundId": "re_1"}
    });
    // Not the inventory's to report.
    let (status, answer) = inventory(&app, &body).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid_payload"))
    );
    let bytes = serde_json::to_vec(&body).unwrap();
    // Signed with the inventory's secret: not the payment provider's.
    let wrong = signed(INVENTORY_SECRET, now(), &bytes);
    let (status, _) = post(&app, "payments", bytes.clone(), Some(wrong)).await;
    assert_eq!(status, 401);
    let (status, answer) = post(
        &app,
        "payments",
        bytes.clone(),
        Some(signed(PAYMENTS_SECRET, now(), &bytes)),
    )
    .await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("reacted")),
        "{answer}"
    );
    let order = view(&app, &hh).await.order(order).cloned().unwrap();
    assert_eq!(order.status, OrderStatus::Confirmed);
    assert!(order.refunded);
    assert_eq!(order.timeline.last().unwrap().event, "RefundedByProvider");
}

#[tokio::test]
async fn a_missing_or_wrong_signature_is_401_and_changes_nothing() {
    let app = app().await;
    let hh = app.household().await;
    let (_, order) = confirmed_order(&app, &hh).await;
    let head = app.head(hh.id).await;
    let bytes = serde_json::to_vec(&stock_lost("evt_1", &hh, order)).unwrap();
    let good = signed(INVENTORY_SECRET, now(), &bytes);
    let t = now();
    let cases = [
        None,
        Some("garbage".to_owned()),
        Some(format!("t={t}")),
        Some(format!("t={t},v1=zz")),
        Some(signed("another-secret-of-at-least-32-bytes!!", t, &bytes)),
        // A signature of another body.
        Some(signed(INVENTORY_SECRET, t, b"{}")),
        // The right MAC under another timestamp than the one it names.
        Some(good.replacen(&format!("t={t}"), &format!("t={}", t - 1), 1)),
    ];
    for signature in cases {
        let (status, body) = post(&app, "inventory", bytes.clone(), signature.clone()).await;
        assert_eq!(status, 401, "{signature:?}: {body}");
        assert_eq!(body["code"], "signature_invalid", "{signature:?}");
    }
    assert_eq!(app.head(hh.id).await, head);
    assert!(
        app.metric("hearth_refused_total{reason=\"webhook_signature\"}")
            .await
            >= 7
    );
}

#[tokio::test]
async fn a_signature_outside_the_window_either_way_is_401() {
    let app = app().await;
    let hh = app.household().await;
    let order = OrderId(Uuid::now_v7());
    let bytes = serde_json::to_vec(&stock_lost("evt_w", &hh, order)).unwrap();
    let window = SIGNATURE_WINDOW_SECS;
    for t in [now() - window - 2, now() + window + 2] {
        let (status, body) = post(
            &app,
            "inventory",
            bytes.clone(),
            Some(signed(INVENTORY_SECRET, t, &bytes)),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("signature_expired"))
        );
    }
    // Inside the window, either way: taken.
    for t in [now() - window + 5, now() + window - 5] {
        let (status, body) = post(
            &app,
            "inventory",
            bytes.clone(),
            Some(signed(INVENTORY_SECRET, t, &bytes)),
        )
        .await;
        assert_eq!(status, 202, "{body}");
    }
}

#[tokio::test]
async fn a_malformed_body_is_400_and_changes_nothing() {
    let app = app().await;
    let hh = app.household().await;
    let order = OrderId(Uuid::now_v7());
    let head = app.head(hh.id).await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "invalid_json"),
        (b"{\"id\":\"x\"}".to_vec(), "invalid_payload"),
        (
            serde_json::to_vec(&json!({"id": "x", "household": hh.id, "type": "Teleported", "payload": {}})).unwrap(),
            "invalid_payload",
        ),
        (
            serde_json::to_vec(&json!({"id": "", "household": hh.id, "type": "PickedUp", "payload": {"orderId": order}})).unwrap(),
            "invalid_payload",
        ),
        (
            serde_json::to_vec(&json!({"id": "x".repeat(256), "household": hh.id, "type": "PickedUp", "payload": {"orderId": order}})).unwrap(),
            "invalid_payload",
        ),
        (
            serde_json::to_vec(&json!({"id": "x", "household": hh.id, "type": "StockLost", "payload": {"orderId": order, "sku": "a\u{0}b"}})).unwrap(),
            "unstorable_text",
        ),
    ];
    for (bytes, code) in cases {
        let signature = signed(INVENTORY_SECRET, now(), &bytes);
        let (status, body) = post(&app, "inventory", bytes.clone(), Some(signature)).await;
        assert_eq!((status, body["code"].as_str()), (400, Some(code)), "{body}");
    }
    assert_eq!(app.head(hh.id).await, head);
}

#[tokio::test]
async fn an_unknown_or_unconfigured_provider_is_404() {
    let app = spawn(|s| {
        s.webhook_secrets = WebhookSecrets {
            payments: None,
            inventory: Some(WebhookSecret::new(INVENTORY_SECRET).unwrap()),
        }
    })
    .await;
    for provider in ["courier", "payments"] {
        let (status, body) = post(&app, provider, b"{}".to_vec(), None).await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = app().await;
    let hh = app.household().await;
    let mut body = stock_lost("evt_big", &hh, OrderId(Uuid::now_v7()));
    body["pad"] = json!("x".repeat(MAX_WEBHOOK_BYTES));
    let bytes = serde_json::to_vec(&body).unwrap();
    let signature = signed(INVENTORY_SECRET, now(), &bytes);
    let (status, answer) = post(&app, "inventory", bytes, Some(signature)).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (413, Some("body_too_large"))
    );
}

#[tokio::test]
async fn webhooks_count_against_the_address_rate() {
    let app = spawn(|s| {
        s.webhook_secrets = secrets();
        s.limits = LimitSettings {
            address_rate: Rate::new(3, 0.001),
            ..LimitSettings::default()
        };
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, _) = post(&app, "inventory", b"{}".to_vec(), None).await;
        statuses.push(status);
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
}

#[test]
fn a_webhook_secret_under_32_bytes_is_refused() {
    assert!(WebhookSecret::new("short").is_err());
    assert!(WebhookSecret::new([7u8; 31]).is_err());
    assert!(WebhookSecret::new([7u8; 32]).is_ok());
}
