//! A token proves identity only while the directory agrees (issue 14, guarantee 7):
//! every request and socket open asks the directory, open sockets ask again and close
//! when the answer is no or their token expires, and a `_pk` takes over only a socket
//! of the same member.
#![allow(clippy::unwrap_used)]

mod common;

use common::TestApp;
use futures::{SinkExt, StreamExt};
use hearth_core::{HouseholdId, MemberId};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use uuid::Uuid;

const GUARD: Duration = Duration::from_secs(20);

async fn spawn() -> TestApp {
    common::spawn(|s| s.membership_ttl = Duration::from_millis(100)).await
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn room_url_pk(app: &TestApp, hh: HouseholdId, token: &str, pk: &str) -> String {
    format!(
        "ws://{}/parties/household/{hh}?_pk={pk}&token={token}",
        app.addr
    )
}

async fn socket(app: &TestApp, hh: HouseholdId, token: &str, pk: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(room_url_pk(app, hh, token, pk))
        .await
        .unwrap();
    let welcome = next(&mut ws).await.unwrap();
    assert!(welcome.get("welcome").is_some(), "{welcome}");
    ws
}

/// The next text message; `Err(code)` when the socket closes.
async fn next(ws: &mut Ws) -> Result<Value, u16> {
    loop {
        match tokio::time::timeout(GUARD, ws.next()).await.unwrap() {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(frame))) => {
                return Err(frame.map_or(1005, |f| u16::from(f.code)));
            }
            Some(Ok(_)) => {}
            other => panic!("socket ended without a close frame: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_signed_token_for_someone_the_directory_does_not_know_is_refused_everywhere() {
    let app = spawn().await;
    let hh = app.household().await.id;
    let stranger = app.mint(hh, MemberId(Uuid::now_v7()), chrono::Duration::hours(1));
    let nowhere = HouseholdId(Uuid::now_v7());
    let ghost = app.mint(
        nowhere,
        MemberId(Uuid::now_v7()),
        chrono::Duration::hours(1),
    );
    for (room, token) in [(hh, &stranger), (nowhere, &ghost)] {
        let room_url = app.url(&format!("/parties/household/{room}"));
        let requests = [
            app.http.get(&room_url).bearer_auth(token),
            app.http.post(&room_url).bearer_auth(token).json(&json!({
                "id": Uuid::now_v7(), "type": "CancelOrder", "payload": {"orderId": Uuid::now_v7()}
            })),
            app.http
                .get(app.url(&format!("/households/{room}/members")))
                .bearer_auth(token),
            app.http
                .post(app.url(&format!("/households/{room}/invites")))
                .bearer_auth(token)
                .json(&json!({})),
        ];
        for request in requests {
            let res = request.send().await.unwrap();
            assert_eq!(res.status(), 401);
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized", "{body}");
        }
        match tokio_tungstenite::connect_async(app.room_url(room, token)).await {
            Err(WsError::Http(response)) => assert_eq!(response.status(), 401),
            other => panic!("expected 401 before the upgrade, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_open_socket_closes_when_its_member_is_removed() {
    let app = spawn().await;
    let household = app.household().await;
    let hh = household.id;
    let (bob, bob_token) = app.member(hh, &household.token).await;
    let mut ws = socket(&app, hh, &bob_token, "bob").await;
    app.directory.remove(bob);
    let closed = loop {
        match next(&mut ws).await {
            Ok(_) => continue,
            Err(code) => break code,
        }
    };
    assert_eq!(closed, 4003, "closed as no longer a member");
    let res = app
        .http
        .get(app.url(&format!("/parties/household/{hh}")))
        .bearer_auth(&bob_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "and the token no longer works");
}

#[tokio::test]
async fn an_open_socket_closes_when_its_token_expires() {
    let app = spawn().await;
    let household = app.household().await;
    let hh = household.id;
    let short = app.mint(hh, household.owner, chrono::Duration::seconds(1));
    let mut ws = socket(&app, hh, &short, "ann").await;
    let closed = loop {
        match next(&mut ws).await {
            Ok(_) => continue,
            Err(code) => break code,
        }
    };
    assert_eq!(closed, 4001, "closed at its token's expiry");
}

#[tokio::test]
async fn a_pk_takes_over_only_a_socket_of_the_same_member() {
    let app = spawn().await;
    let household = app.household().await;
    let (hh, owner) = (household.id, household.token);
    let (_, bob) = app.member(hh, &owner).await;
    let mut ann_ws = socket(&app, hh, &owner, "shared-pk").await;
    let _bob_ws = socket(&app, hh, &bob, "shared-pk").await;
    // Ann's socket is still open: it answers her command.
    let id = Uuid::now_v7();
    let command = json!({"command": {"id": id, "type": "CancelOrder", "payload": {"orderId": Uuid::now_v7()}}});
    ann_ws
        .send(Message::Text(command.to_string().into()))
        .await
        .unwrap();
    let reply = loop {
        let message = next(&mut ann_ws).await.expect("Ann's socket was closed");
        if message.get("rejected").is_some() {
            break message;
        }
    };
    assert_eq!(reply["rejected"]["id"], json!(id));
    // The same member with the same _pk does take over.
    let _ann_again = socket(&app, hh, &owner, "shared-pk").await;
    let closed = loop {
        match next(&mut ann_ws).await {
            Ok(_) => continue,
            Err(code) => break code,
        }
    };
    assert_eq!(closed, 4009);
}

/// A change the directory made but the log did not record (the server died in between,
/// or the store was down) is recorded by the next listing of the members: the log
/// follows the directory, and a second listing records nothing more.
#[tokio::test]
async fn a_departure_the_log_missed_is_recorded_when_the_members_are_listed() {
    let app = spawn().await;
    let household = app.household().await;
    let hh = household.id;
    let (bob, _) = app.member(hh, &household.token).await;
    let mut ann = socket(&app, hh, &household.token, "ann").await;
    let head = app.head(hh).await;
    // Bob is gone from the directory with no record in the log.
    app.directory.remove(bob);
    assert_eq!(app.head(hh).await, head);
    let list = || {
        app.http
            .get(app.url(&format!("/households/{hh}/members")))
            .bearer_auth(&household.token)
            .send()
    };
    let listed: Value = list().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    // Ann's board sees Bob go, found by the reconciliation: no one is named as doing it.
    let event = loop {
        if let Some(event) = next(&mut ann).await.unwrap().get("event") {
            break event.clone();
        }
    };
    assert_eq!(event["type"], "MemberRemoved", "{event}");
    assert_eq!(event["payload"]["memberId"], json!(bob));
    assert_eq!(event["payload"]["by"], Value::Null);
    assert_eq!(app.head(hh).await, head + 1);
    assert_eq!(list().await.unwrap().status(), 200);
    assert_eq!(app.head(hh).await, head + 1, "nothing more to record");
}
