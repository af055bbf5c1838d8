//! A token proves identity only while the directory agrees (issue 14, guarantee 7):
//! every request and socket open asks the directory, open sockets ask again and close
//! when the answer is no or their token expires, and a `_pk` takes over only a socket
//! of the same member.
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use hearth_axum::{Application, Ports, Settings, TokenSecret, Tokens};
use hearth_core::ports::{Directory, DirectoryError, Household, Invite, Member, Role};
use hearth_core::{HouseholdId, MemberId, Timestamp};
use hearth_memory::{MemoryDirectory, MemoryEventStore, SystemClock};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use uuid::Uuid;

const GUARD: Duration = Duration::from_secs(20);

/// The memory directory, except that the test can remove a member (the product's
/// remove and leave commands are issue 14's).
#[derive(Debug, Default)]
struct Removable {
    inner: MemoryDirectory,
    removed: Mutex<HashSet<MemberId>>,
}

impl Removable {
    fn remove(&self, member: MemberId) {
        self.removed.lock().unwrap().insert(member);
    }
}

#[async_trait]
impl Directory for Removable {
    async fn create_household(&self, h: Household, owner: Member) -> Result<(), DirectoryError> {
        self.inner.create_household(h, owner).await
    }
    async fn household(&self, id: HouseholdId) -> Result<Option<Household>, DirectoryError> {
        self.inner.household(id).await
    }
    async fn member(
        &self,
        household: HouseholdId,
        member: MemberId,
    ) -> Result<Option<Member>, DirectoryError> {
        if self.removed.lock().unwrap().contains(&member) {
            return Ok(None);
        }
        self.inner.member(household, member).await
    }
    async fn members(&self, household: HouseholdId) -> Result<Vec<Member>, DirectoryError> {
        self.inner.members(household).await
    }
    async fn create_invite(&self, invite: Invite) -> Result<(), DirectoryError> {
        self.inner.create_invite(invite).await
    }
    async fn accept_invite(
        &self,
        household: HouseholdId,
        code: &str,
        member: Member,
        now: Timestamp,
    ) -> Result<Member, DirectoryError> {
        self.inner.accept_invite(household, code, member, now).await
    }
}

struct TestApp {
    addr: std::net::SocketAddr,
    tokens: Tokens,
    directory: Arc<Removable>,
    http: reqwest::Client,
}

async fn spawn() -> TestApp {
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        token_secret: TokenSecret::new("membership-test-secret-0123456789").unwrap(),
        membership_ttl: Duration::from_millis(100),
        ..Settings::default()
    };
    let store = Arc::new(MemoryEventStore::new());
    let directory = Arc::new(Removable::default());
    let ports = Ports {
        feed: Arc::new(store.feed()),
        store,
        directory: directory.clone(),
        clock: Arc::new(SystemClock),
        inventory: None,
    };
    let app = Application::build(settings, ports).await.unwrap();
    let addr = app.local_addr();
    let tokens = app.tokens();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        tokens,
        directory,
        http: reqwest::Client::new(),
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl TestApp {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A household: its id, its owner's id and token.
    async fn household(&self) -> (HouseholdId, MemberId, String) {
        let body: Value = self
            .http
            .post(self.url("/households"))
            .json(&json!({"name": "Home", "ownerName": "Ann"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            serde_json::from_value(body["household"]["id"].clone()).unwrap(),
            serde_json::from_value(body["member"]["id"].clone()).unwrap(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    async fn member(&self, hh: HouseholdId, owner: &str) -> (MemberId, String) {
        let invite: Value = self
            .http
            .post(self.url(&format!("/households/{hh}/invites")))
            .bearer_auth(owner)
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let body: Value = self
            .http
            .post(self.url(&format!("/households/{hh}/join")))
            .json(&json!({"code": invite["code"], "name": "Bob"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            serde_json::from_value(body["member"]["id"].clone()).unwrap(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    fn mint(&self, hh: HouseholdId, member: MemberId, ttl: chrono::Duration) -> String {
        self.tokens
            .issue(hh, member, Role::Owner, chrono::Utc::now(), ttl)
            .unwrap()
    }

    fn room_url(&self, hh: HouseholdId, token: &str, pk: &str) -> String {
        format!(
            "ws://{}/parties/household/{hh}?_pk={pk}&token={token}",
            self.addr
        )
    }

    async fn socket(&self, hh: HouseholdId, token: &str, pk: &str) -> Ws {
        let (mut ws, _) = tokio_tungstenite::connect_async(self.room_url(hh, token, pk))
            .await
            .unwrap();
        let welcome = next(&mut ws).await.unwrap();
        assert!(welcome.get("welcome").is_some(), "{welcome}");
        ws
    }
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
    let (hh, _, _) = app.household().await;
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
        match tokio_tungstenite::connect_async(app.room_url(room, token, "x")).await {
            Err(WsError::Http(response)) => assert_eq!(response.status(), 401),
            other => panic!("expected 401 before the upgrade, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_open_socket_closes_when_its_member_is_removed() {
    let app = spawn().await;
    let (hh, _, owner) = app.household().await;
    let (bob, bob_token) = app.member(hh, &owner).await;
    let mut ws = app.socket(hh, &bob_token, "bob").await;
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
    let (hh, ann, _) = app.household().await;
    let short = app.mint(hh, ann, chrono::Duration::seconds(1));
    let mut ws = app.socket(hh, &short, "ann").await;
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
    let (hh, _, owner) = app.household().await;
    let (_, bob) = app.member(hh, &owner).await;
    let mut ann_ws = app.socket(hh, &owner, "shared-pk").await;
    let _bob_ws = app.socket(hh, &bob, "shared-pk").await;
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
    let _ann_again = app.socket(hh, &owner, "shared-pk").await;
    let closed = loop {
        match next(&mut ann_ws).await {
            Ok(_) => continue,
            Err(code) => break code,
        }
    };
    assert_eq!(closed, 4009);
}
