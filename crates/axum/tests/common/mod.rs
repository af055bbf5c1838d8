//! What the edge tests (limits, membership, origins) share: a server on port 0 over the
//! memory store, with a directory the test can watch and change, and a client.
#![allow(dead_code, clippy::unwrap_used)] // each test file uses its own part

use async_trait::async_trait;
use hearth_axum::{Application, Ports, Settings, TokenSecret, Tokens};
use hearth_core::Service;
use hearth_core::SessionId;
use hearth_core::ports::{
    Append, Appended, CredentialHash, Directory, DirectoryError, Enrolled, EventStore, Household,
    Invite, Loaded, Member, Role, Session, Snapshot, StoreError,
};
use hearth_core::{CommandId, CommandOutcome, EventEnvelope, HouseholdId, MemberId, Timestamp};
use hearth_memory::{MemoryDirectory, MemoryEventStore, SystemClock};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

pub const SECRET: &str = "test-secret-of-at-least-32-bytes!";

/// The memory directory, counting the households created through it, and able to
/// remove a member (the product's remove and leave are issue 14's).
#[derive(Debug, Default)]
pub struct Watched {
    inner: MemoryDirectory,
    households: AtomicUsize,
    removed: Mutex<HashSet<MemberId>>,
}

impl Watched {
    pub fn remove(&self, member: MemberId) {
        self.removed.lock().unwrap().insert(member);
    }

    pub fn households_created(&self) -> usize {
        self.households.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Directory for Watched {
    async fn create_household(&self, h: Household, owner: Member) -> Result<(), DirectoryError> {
        self.households.fetch_add(1, Ordering::SeqCst);
        self.inner.create_household(h, owner).await
    }
    async fn household(&self, id: HouseholdId) -> Result<Option<Household>, DirectoryError> {
        self.inner.household(id).await
    }
    async fn set_time_zone(
        &self,
        id: HouseholdId,
        zone: &str,
    ) -> Result<Household, DirectoryError> {
        self.inner.set_time_zone(id, zone).await
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
        let removed = self.removed.lock().unwrap().clone();
        let mut members = self.inner.members(household).await?;
        members.retain(|m| !removed.contains(&m.id));
        Ok(members)
    }
    async fn roster(&self, household: HouseholdId) -> Result<Vec<Enrolled>, DirectoryError> {
        let removed = self.removed.lock().unwrap().clone();
        let mut roster = self.inner.roster(household).await?;
        roster.retain(|e| !removed.contains(&e.member.id));
        Ok(roster)
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
    async fn invite(
        &self,
        h: HouseholdId,
        code: &str,
        now: Timestamp,
    ) -> Result<Invite, DirectoryError> {
        self.inner.invite(h, code, now).await
    }
    async fn remove_member(
        &self,
        h: HouseholdId,
        m: MemberId,
        now: Timestamp,
    ) -> Result<Member, DirectoryError> {
        self.inner.remove_member(h, m, now).await
    }
    async fn set_role(
        &self,
        h: HouseholdId,
        m: MemberId,
        role: Role,
    ) -> Result<Member, DirectoryError> {
        self.inner.set_role(h, m, role).await
    }
    async fn create_session(&self, s: Session, c: &CredentialHash) -> Result<(), DirectoryError> {
        self.inner.create_session(s, c).await
    }
    async fn refresh_session(
        &self,
        h: HouseholdId,
        presented: &CredentialHash,
        next: &CredentialHash,
        now: Timestamp,
    ) -> Result<Session, DirectoryError> {
        self.inner.refresh_session(h, presented, next, now).await
    }
    async fn session(
        &self,
        h: HouseholdId,
        id: SessionId,
    ) -> Result<Option<Session>, DirectoryError> {
        self.inner.session(h, id).await
    }
    async fn sessions(&self, h: HouseholdId, m: MemberId) -> Result<Vec<Session>, DirectoryError> {
        self.inner.sessions(h, m).await
    }
    async fn end_session(
        &self,
        h: HouseholdId,
        m: MemberId,
        id: SessionId,
        now: Timestamp,
    ) -> Result<(), DirectoryError> {
        self.inner.end_session(h, m, id, now).await
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub tokens: Tokens,
    pub directory: Arc<Watched>,
    /// The server's store, to check from outside what was applied.
    pub store: Arc<MemoryEventStore>,
    pub http: reqwest::Client,
    /// Notify once to shut the server down (as a signal would).
    pub stop: Arc<tokio::sync::Notify>,
    /// The server's run: it ends when the shutdown is complete.
    pub served: tokio::task::JoinHandle<Result<(), hearth_axum::ServeError>>,
}

/// A server on port 0 with the default settings changed by `change`.
pub async fn spawn(change: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_wrapped(|store| store, change).await
}

/// [`spawn`], with the service's store wrapped by `wrap` (to slow or hold its calls).
pub async fn spawn_wrapped(
    wrap: impl FnOnce(Arc<MemoryEventStore>) -> Arc<dyn EventStore>,
    change: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        token_secret: TokenSecret::new(SECRET).unwrap(),
        ..Settings::default()
    };
    change(&mut settings);
    let store = Arc::new(MemoryEventStore::new());
    let directory = Arc::new(Watched::default());
    let ports = Ports {
        feed: Arc::new(store.feed()),
        service: Service::new(wrap(store.clone()), Arc::new(SystemClock))
            .with_catalog(Arc::new(hearth_memory::MemoryInventory::default())),
        directory: directory.clone(),
    };
    let app = Application::build(settings, ports).await.unwrap();
    let addr = app.local_addr();
    let metrics_addr = app.metrics_addr();
    let tokens = app.tokens();
    let stop = Arc::new(tokio::sync::Notify::new());
    let served = tokio::spawn(app.run_until({
        let stop = stop.clone();
        async move { stop.notified().await }
    }));
    TestApp {
        addr,
        metrics_addr,
        tokens,
        directory,
        store,
        http: reqwest::Client::new(),
        stop,
        served,
    }
}

/// A household as its owner sees it.
pub struct Owned {
    pub id: HouseholdId,
    pub owner: MemberId,
    pub token: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn room_url(&self, hh: HouseholdId, token: &str) -> String {
        format!(
            "ws://{}/parties/household/{hh}?_pk={}&token={token}",
            self.addr,
            Uuid::new_v4()
        )
    }

    pub async fn create_household(&self) -> reqwest::Response {
        self.http
            .post(self.url("/households"))
            .json(&json!({"name": "Home", "ownerName": "Ann"}))
            .send()
            .await
            .unwrap()
    }

    /// A new household: its id, its owner and the owner's token.
    pub async fn household(&self) -> Owned {
        let res = self.create_household().await;
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        Owned {
            id: serde_json::from_value(body["household"]["id"].clone()).unwrap(),
            owner: serde_json::from_value(body["member"]["id"].clone()).unwrap(),
            token: body["token"].as_str().unwrap().to_owned(),
        }
    }

    /// A second member of `hh`, invited by its owner: their id and token.
    pub async fn member(&self, hh: HouseholdId, owner_token: &str) -> (MemberId, String) {
        let invite: Value = self
            .http
            .post(self.url(&format!("/households/{hh}/invites")))
            .bearer_auth(owner_token)
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let res = self
            .http
            .post(self.url(&format!("/households/{hh}/join")))
            .json(&json!({"code": invite["code"], "name": "Bob"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        (
            serde_json::from_value(body["member"]["id"].clone()).unwrap(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    /// The household's head: its log's last `seq`.
    pub async fn head(&self, hh: HouseholdId) -> u64 {
        use hearth_core::ports::EventStore;
        self.store.head(hh).await.unwrap()
    }

    /// A token signed by the server for anyone, member or not.
    pub fn mint(&self, hh: HouseholdId, member: MemberId, ttl: chrono::Duration) -> String {
        self.tokens
            .issue(
                hh,
                member,
                hearth_core::ports::Role::Owner,
                chrono::Utc::now(),
                ttl,
            )
            .unwrap()
    }

    /// The value of one line of `/metrics`, e.g. `hearth_refused_total{reason="origin"}`.
    pub async fn metric(&self, line: &str) -> u64 {
        let addr = self.metrics_addr.unwrap_or(self.addr);
        let text = self
            .http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(line))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {line} in\n{text}"))
    }
}

/// The memory store with two gates, both closed at first: `appends` holds every append
/// of a member's command and `heads` every read of a household's head until a test
/// opens them (`add_permits`), so a call is surely in flight when the test acts. The
/// server's records of membership changes (the household's setup) pass.
#[derive(Debug)]
pub struct Gated {
    inner: std::sync::OnceLock<Arc<MemoryEventStore>>,
    pub appends: tokio::sync::Semaphore,
    pub heads: tokio::sync::Semaphore,
    /// Rung when an append reaches its gate.
    pub append_held: tokio::sync::Notify,
}

impl Gated {
    pub fn closed() -> Arc<Self> {
        Arc::new(Self {
            inner: std::sync::OnceLock::new(),
            appends: tokio::sync::Semaphore::new(0),
            heads: tokio::sync::Semaphore::new(0),
            append_held: tokio::sync::Notify::new(),
        })
    }

    /// For [`spawn_wrapped`]: this gate around the server's memory store.
    pub fn wrap(self: &Arc<Self>, store: Arc<MemoryEventStore>) -> Arc<dyn EventStore> {
        self.inner.set(store).unwrap();
        self.clone()
    }

    fn inner(&self) -> &MemoryEventStore {
        self.inner.get().unwrap()
    }
}

#[async_trait]
impl EventStore for Gated {
    async fn append(&self, append: Append) -> Result<Appended, StoreError> {
        if append.command.command.domain() == hearth_core::DomainId::People {
            return self.inner().append(append).await;
        }
        self.append_held.notify_one();
        let _pass = self.appends.acquire().await.unwrap();
        self.inner().append(append).await
    }
    async fn load(
        &self,
        t: HouseholdId,
        a: hearth_core::AggregateId,
        s: u32,
    ) -> Result<Loaded, StoreError> {
        self.inner().load(t, a, s).await
    }
    async fn read_feed(
        &self,
        t: HouseholdId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        self.inner().read_feed(t, after, limit).await
    }
    async fn head(&self, t: HouseholdId) -> Result<u64, StoreError> {
        let _pass = self.heads.acquire().await.unwrap();
        self.inner().head(t).await
    }
    async fn outcome(
        &self,
        t: HouseholdId,
        c: CommandId,
    ) -> Result<Option<CommandOutcome>, StoreError> {
        self.inner().outcome(t, c).await
    }
    async fn save_snapshot(&self, s: Snapshot) -> Result<(), StoreError> {
        self.inner().save_snapshot(s).await
    }
}
