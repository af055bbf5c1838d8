//! The sandbox's provider events (`POST /admin/events`): found in its ledgers, signed
//! with the provider's secret as docs/webhooks.md says, and sent to the configured URL.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use hearth_core::ports::{Inventory, ReserveRequest};
use hearth_core::{HouseholdId, OrderId, OrderLine};
use hearth_sandbox::{HttpProvider, RunningSandbox, Sandbox, WebhookTarget};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

const INVENTORY_SECRET: &str = "inventory-secret-of-at-least-32-bytes";
const PAYMENTS_SECRET: &str = "payments-secret-of-at-least-32-bytes!";

type Received = (String, String, Vec<u8>);

/// A stand-in for Hearth's webhook route: keeps what it gets and answers `reacted`.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel::<Received>();
    let app = axum::Router::new()
        .route(
            "/webhooks/{provider}",
            axum::routing::post(
                |State(tx): State<mpsc::UnboundedSender<Received>>,
                 Path(provider): Path<String>,
                 headers: HeaderMap,
                 body: axum::body::Bytes| async move {
                    let signature = headers
                        .get("hearth-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send((provider, signature, body.to_vec()));
                    axum::Json(json!({"result": "reacted", "seq": 7}))
                },
            ),
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

async fn emit(sandbox: &RunningSandbox, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/admin/events", sandbox.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn stock_lost_is_found_in_the_ledger_signed_and_sent() {
    let running = RunningSandbox::start(([127, 0, 0, 1], 0).into(), Sandbox::default())
        .await
        .unwrap();
    let inventory = HttpProvider::new(&running.url(), Duration::from_secs(5))
        .unwrap()
        .inventory();
    let (tenant, order) = (HouseholdId(Uuid::now_v7()), OrderId(Uuid::now_v7()));
    inventory
        .reserve(ReserveRequest {
            key: Uuid::now_v7(),
            tenant,
            order_id: order,
            lines: vec![OrderLine {
                sku: "bread".into(),
                name: "Bread".into(),
                quantity: 1,
                unit_price_cents: 450,
            }],
        })
        .await
        .unwrap();

    // Nowhere to send it yet.
    let (status, body) = emit(&running, json!({"type": "StockLost", "orderId": order})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("no_webhook")));

    let (url, mut got) = receiver().await;
    running.sandbox().set_webhook(WebhookTarget {
        url,
        payments_secret: Arc::from(PAYMENTS_SECRET.as_bytes()),
        inventory_secret: Arc::from(INVENTORY_SECRET.as_bytes()),
    });
    let (status, reply) = emit(
        &running,
        json!({"type": "StockLost", "orderId": order, "id": "evt_7"}),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["status"], 200);
    assert_eq!(reply["answer"], json!({"result": "reacted", "seq": 7}));
    let (provider, signature, body) = got.recv().await.unwrap();
    assert_eq!(provider, "inventory");
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        event,
        json!({"id": "evt_7", "household": tenant, "type": "StockLost",
               "payload": {"orderId": order, "sku": "bread"}})
    );
    // t=<secs>,v1=<hex HMAC-SHA256 of "<t>.<body>">, recomputed here.
    let (t, v1) = signature
        .strip_prefix("t=")
        .and_then(|s| s.split_once(",v1="))
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(INVENTORY_SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(v1, expected);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(t.parse::<u64>().unwrap()) < 60);

    // The stock is gone from the reservation: nothing more to lose without a sku.
    let (status, body) = emit(&running, json!({"type": "StockLost", "orderId": order})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("not_held")));
    // An order it never served, a refund without a capture, an unknown type.
    let stranger = OrderId(Uuid::now_v7());
    for (request, code) in [
        (
            json!({"type": "StockLost", "orderId": stranger}),
            "unknown_order",
        ),
        (
            json!({"type": "ProviderRefunded", "orderId": order}),
            "unknown_order",
        ),
        (
            json!({"type": "Teleported", "orderId": order}),
            "unknown_event_type",
        ),
    ] {
        let (_, body) = emit(&running, request).await;
        assert_eq!(body["code"], code);
    }
}

#[tokio::test]
async fn the_lose_stock_fault_reports_stock_lost_once_an_order_holding_it_is_paid() {
    use hearth_core::ports::{CaptureRequest, Payments};
    let running = RunningSandbox::start(
        ([127, 0, 0, 1], 0).into(),
        Sandbox::new(hearth_sandbox::Faults {
            lose_stock_after_capture: vec!["milk".into()],
            ..hearth_sandbox::Faults::default()
        }),
    )
    .await
    .unwrap();
    let (url, mut got) = receiver().await;
    running.sandbox().set_webhook(WebhookTarget {
        url,
        payments_secret: Arc::from(PAYMENTS_SECRET.as_bytes()),
        inventory_secret: Arc::from(INVENTORY_SECRET.as_bytes()),
    });
    let provider = HttpProvider::new(&running.url(), Duration::from_secs(5)).unwrap();
    let tenant = HouseholdId(Uuid::now_v7());
    let line = |sku: &str| OrderLine {
        sku: sku.into(),
        name: sku.into(),
        quantity: 1,
        unit_price_cents: 100,
    };
    // An order of bread only is paid, then one with milk: only the second is reported
    // (the first report to arrive is the milk order's).
    let bread_only = OrderId(Uuid::now_v7());
    let with_milk = OrderId(Uuid::now_v7());
    for (order, lines) in [
        (bread_only, vec![line("bread")]),
        (with_milk, vec![line("bread"), line("milk")]),
    ] {
        provider
            .inventory()
            .reserve(ReserveRequest {
                key: Uuid::now_v7(),
                tenant,
                order_id: order,
                lines,
            })
            .await
            .unwrap();
        provider
            .payments()
            .capture(CaptureRequest {
                key: Uuid::now_v7(),
                tenant,
                order_id: order,
                amount_cents: 100,
            })
            .await
            .unwrap();
    }
    let (provider_name, _, body) = tokio::time::timeout(Duration::from_secs(10), got.recv())
        .await
        .expect("a report within 10 s")
        .unwrap();
    assert_eq!(provider_name, "inventory");
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["type"], "StockLost");
    assert_eq!(event["household"], json!(tenant));
    assert_eq!(
        event["payload"],
        json!({"orderId": with_milk, "sku": "milk"})
    );
}
