//! `hearth serve` on the embedded default (SQLite + embedded executor), the real binary
//! over HTTP: SIGKILLed while a chore's process sleeps until the chore's due time, then
//! started again on the same data directory, it reminds once, at the due time and not
//! before.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use uuid::Uuid;

/// A running `hearth serve`, with its log lines (JSON) as they come.
struct Node {
    child: Child,
    addr: String,
    log: mpsc::UnboundedReceiver<Value>,
}

/// `hearth --log-format json serve` on a free port over `data`, logging the embedded
/// executor's waits (debug); returns once it prints its address (within 30 s).
async fn spawn_serve(data: &str) -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .args(["--data-dir", data])
        .env("RUST_LOG", "warn,hearth_embedded=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("hearth serve starts");
    let (tx, log) = mpsc::unbounded_channel();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            eprintln!("{line}");
            if let Ok(value) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(value);
            }
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .expect("serve prints its address in time")
        .unwrap()
        .expect("a line");
    let addr = line.trim_start_matches("listening on http://").to_owned();
    Node { child, addr, log }
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

    /// Waits (at most 30 s) for the embedded executor to say the process of `chore`
    /// sleeps, and returns until when.
    async fn waiting(&mut self, chore: Uuid) -> DateTime<Utc> {
        let aggregate = format!("chore/{chore}");
        let wait = async {
            loop {
                let line = self.log.recv().await.expect("serve's log ended");
                let fields = &line["fields"];
                if fields["message"] == "process waiting" && fields["aggregate"] == *aggregate {
                    return fields["until"].as_str().unwrap().to_owned();
                }
            }
        };
        let until = tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("the chore's process waits within 30 s");
        // `DateTime<Utc>`'s Display: `2026-01-01 08:00:00.123 UTC`.
        let naive = until.strip_suffix(" UTC").expect("a UTC time");
        NaiveDateTime::parse_from_str(naive, "%Y-%m-%d %H:%M:%S%.f")
            .unwrap_or_else(|e| panic!("{until}: {e}"))
            .and_utc()
    }

    /// The household's state (`GET /parties/household/<id>`).
    async fn state(&self, household: &str, token: &str) -> Value {
        let res = reqwest::Client::new()
            .get(self.url(&format!("/parties/household/{household}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }
}

fn at(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .to_utc()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chore_reminder_fires_once_on_time_after_serve_is_killed_mid_wait() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").to_str().unwrap().to_owned();
    let mut node = spawn_serve(&data).await;
    let http = reqwest::Client::new();
    let made: Value = http
        .post(node.url("/households"))
        .json(&json!({"name": "Home", "ownerName": "Ann"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let household = made["household"]["id"].as_str().unwrap().to_owned();
    let token = made["token"].as_str().unwrap().to_owned();
    // The household's position after its setup: its events are counted from it.
    let base = node.state(&household, &token).await["seq"]
        .as_u64()
        .unwrap();

    let chore = Uuid::now_v7();
    let due_at = Utc::now() + chrono::Duration::seconds(6);
    let command = json!({"id": Uuid::now_v7(), "type": "ScheduleChore", "payload": {
        "choreId": chore,
        "title": "Take the bins out",
        "assignee": made["member"]["id"],
        "dueAt": due_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "escalateAfterMinutes": 5,
    }});
    let ack: Value = http
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
    // The due time as the server holds it (what the reminder is measured against).
    let due_at = at(&node.state(&household, &token).await["state"]["chores"][0]["dueAt"]);

    // The executor has taken the job on and sleeps until the due time: kill hard.
    assert_eq!(
        node.waiting(chore).await,
        due_at,
        "asleep until the due time"
    );
    let before = node.state(&household, &token).await;
    assert_eq!(
        before["state"]["chores"][0]["status"], "scheduled",
        "{before}"
    );
    node.kill().await;
    assert!(Utc::now() < due_at, "killed before the due time");

    // Same data dir: the pending job is resumed, the wait re-derived from the chore.
    // Once reminded, its process sleeps until the escalation.
    let mut node = spawn_serve(&data).await;
    let escalate_at = node.waiting(chore).await;
    let escalate_at = if escalate_at == due_at {
        // Restarted before the due time: first it slept until then.
        node.waiting(chore).await
    } else {
        escalate_at
    };
    assert_eq!(escalate_at, due_at + chrono::Duration::minutes(5));

    let state = node.state(&household, &token).await;
    let view = &state["state"]["chores"][0];
    assert_eq!(view["status"], "due", "{state}");
    let timeline = view["timeline"].as_array().unwrap();
    let events: Vec<&str> = timeline
        .iter()
        .map(|t| t["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, vec!["ChoreScheduled", "ChoreReminderSent"]);
    assert_eq!(state["seq"], base + 2, "each event once: {state}");
    let reminded = at(&timeline[1]["at"]);
    assert!(
        reminded >= due_at,
        "reminded at its due time, not before: {reminded} < {due_at}"
    );
    // On time: the restarted serve was up long before the due time (milliseconds late
    // in practice; the bound only leaves room for a loaded machine).
    assert!(
        reminded - due_at < chrono::Duration::seconds(5),
        "reminded on time, not {} late",
        reminded - due_at
    );
    node.kill().await;
}
