//! Provider events end to end, with the real binaries: `hearth sandbox` reports stock
//! lost after an order was confirmed, through the signed inventory webhook of
//! `hearth serve`; a member's board (`GET` of the household's room) then shows the order
//! rejected, its stock released and its payment refunded by the fulfilment process, and
//! the same provider event sent again changes nothing. Once on the embedded executor,
//! once on Temporal (`hearth serve` relaying, `hearth worker` running the workflow,
//! which the rejection wakes from its ready-at timer).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use hearth_temporal::dev_server::DevServer;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

const TOKEN_SECRET: &str = "test-secret-for-webhooks-0123456789";
const PAYMENTS_SECRET: &str = "payments-webhook-secret-0123456789abc";
const INVENTORY_SECRET: &str = "inventory-webhook-secret-0123456789ab";

/// Starts `hearth <args>` and reads the URL it prints first (`... listening on http://..`).
async fn spawn(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("HEARTH_TOKEN_SECRET", TOKEN_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("hearth starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("it prints its address in time")
        .unwrap()
        .expect("a line");
    let url = line
        .split_once("listening on ")
        .map(|(_, url)| url.trim().to_owned())
        .expect("an address");
    (child, url)
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

/// The room's state as a member's board gets it.
async fn board(serve: &str, household: &str, token: &str) -> Value {
    json_of(
        http()
            .get(format!("{serve}/parties/household/{household}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Waits until the board's first order satisfies `done`. A bounded poll: the server
/// and the worker are other processes.
async fn wait_order(
    serve: &str,
    household: &str,
    token: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = board(serve, household, token).await;
        let order = &state["state"]["orders"][0];
        if done(order) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "no order {what} within 60 s: {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A household, an order confirmed and waiting for a ready-at two minutes ahead, then
/// stock lost reported by the sandbox: the order ends rejected, released and refunded.
async fn stock_lost_after_confirmation(serve: &str, sandbox: &str) {
    // The sandbox sends its provider events to this server, signed with its secrets.
    let set = http()
        .put(format!("{sandbox}/admin/webhook"))
        .json(&json!({
            "url": serve, "paymentsSecret": PAYMENTS_SECRET, "inventorySecret": INVENTORY_SECRET,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let created = json_of(
        http()
            .post(format!("{serve}/households"))
            .json(&json!({"name": "Home", "ownerName": "Ann"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let household = created["household"]["id"].as_str().unwrap().to_owned();
    let token = created["token"].as_str().unwrap().to_owned();
    let order = Uuid::now_v7();
    let ready_at = (chrono::Utc::now() + chrono::TimeDelta::minutes(2)).to_rfc3339();
    let ack = json_of(
        http()
            .post(format!("{serve}/parties/household/{household}"))
            .bearer_auth(&token)
            .json(&json!({
                "id": Uuid::now_v7(), "type": "PlaceOrder",
                "payload": {
                    "orderId": order,
                    "lines": [{"sku": "bread", "quantity": 1, "unitPriceCents": 450}],
                    "readyAt": ready_at,
                },
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ack["ack"]["status"], "accepted", "{ack}");
    wait_order(serve, &household, &token, "confirmed", |o| {
        o["status"] == "confirmed"
    })
    .await;

    let reported = json_of(
        http()
            .post(format!("{sandbox}/admin/events"))
            .json(&json!({"type": "StockLost", "orderId": order}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reported["status"], 200, "{reported}");
    assert_eq!(reported["answer"]["result"], "reacted", "{reported}");

    let state = wait_order(serve, &household, &token, "rejected and refunded", |o| {
        o["status"] == "rejected" && o["refunded"] == true && o["stockReleased"] == true
    })
    .await;
    let order_view = &state["state"]["orders"][0];
    assert_eq!(
        order_view["rejection"],
        json!({"code": "stockLost", "sku": "bread"}),
        "{state}"
    );
    let timeline: Vec<&str> = order_view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        timeline,
        [
            "OrderPlaced",
            "StockReserved",
            "PaymentCaptured",
            "OrderConfirmed",
            "OrderRejected",
            "StockReleased",
            "RefundIssued"
        ]
    );

    // The same provider event again: the same answer, nothing new on the board.
    let seq = state["seq"].clone();
    let again = json_of(
        http()
            .post(format!("{sandbox}/admin/events"))
            .json(&json!({
                "type": "StockLost", "orderId": order, "sku": "bread", "id": reported["event"]["id"],
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(again["answer"], reported["answer"], "{again}");
    assert_eq!(board(serve, &household, &token).await["seq"], seq);
    let stats = json_of(http().get(format!("{sandbox}/stats")).send().await.unwrap()).await;
    assert_eq!(
        (&stats["refunds"], &stats["releases"]),
        (&json!(1), &json!(1)),
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_lost_after_confirmation_on_the_embedded_executor() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (_sandbox, sandbox) = spawn(&["sandbox", "--listen", "127.0.0.1:0"]).await;
    let (_serve, serve) = spawn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data,
        "--providers-url",
        &sandbox,
        "--payments-webhook-secret",
        PAYMENTS_SECRET,
        "--inventory-webhook-secret",
        INVENTORY_SECRET,
    ])
    .await;
    stock_lost_after_confirmation(&serve, &sandbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_lost_after_confirmation_on_temporal_wakes_the_waiting_workflow() {
    let temporal = DevServer::start(Duration::from_secs(60)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let queue = format!("hearth-webhooks-{}", Uuid::now_v7());
    let (_sandbox, sandbox) = spawn(&["sandbox", "--listen", "127.0.0.1:0"]).await;
    let (_serve, serve) = spawn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data,
        "--temporal-address",
        &temporal.url(),
        "--temporal-task-queue",
        &queue,
        "--payments-webhook-secret",
        PAYMENTS_SECRET,
        "--inventory-webhook-secret",
        INVENTORY_SECRET,
    ])
    .await;
    let _worker = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["worker", "--data-dir", data, "--no-relay"])
        .args(["--temporal-address", &temporal.url()])
        .args(["--task-queue", &queue])
        .args(["--providers-url", &sandbox])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    stock_lost_after_confirmation(&serve, &sandbox).await;
}

#[tokio::test]
async fn serve_refuses_a_webhook_secret_under_32_bytes() {
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--memory", "--listen", "127.0.0.1:0"])
        .args(["--inventory-webhook-secret", "too-short"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--inventory-webhook-secret") && stderr.contains("at least 32 bytes"),
        "{stderr}"
    );
}
