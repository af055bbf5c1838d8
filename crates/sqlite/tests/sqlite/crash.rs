//! Crash safety: SIGKILL the stress binary in the middle of appends, restart it on
//! the same file, and check that nothing acknowledged was lost, no append is
//! partial, and `seq` is still gap-free.

use crate::fresh_file;
use hearth_core::order::{Command, OrderRef};
use hearth_core::ports::Outbox;
use hearth_core::ports::{Append, Appended, Decision, EventStore};
use hearth_core::{Actor, CommandEnvelope, CommandId, CommandOutcome, HouseholdId};
use hearth_sqlite::SqliteEventStore;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use uuid::Uuid;

const STRESS: &str = env!("CARGO_BIN_EXE_hearth-sqlite-stress");

/// What the stress binary said before it died.
#[derive(Default)]
struct Heard {
    /// (household, command) -> the seq it was acknowledged at.
    acked: HashMap<(HouseholdId, CommandId), u64>,
    /// Repeats and the seq they reported.
    dups: Vec<(HouseholdId, CommandId, u64)>,
}

impl Heard {
    fn take(&mut self, line: &str) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [word, tenant, command, seq] = parts[..] else {
            panic!("unexpected line {line:?}");
        };
        let tenant = HouseholdId(tenant.parse().unwrap());
        let command = CommandId(command.parse().unwrap());
        let seq: u64 = seq.parse().unwrap();
        match word {
            "ack" => {
                let before = self.acked.insert((tenant, command), seq);
                assert!(before.is_none(), "{command} acknowledged twice");
            }
            "dup" => self.dups.push((tenant, command, seq)),
            _ => panic!("unexpected line {line:?}"),
        }
    }
}

/// Runs the stress binary until it has printed `lines` more lines, then kills it
/// with SIGKILL while its writers are mid-append, and collects what it printed.
fn run_and_kill(path: &Path, households: &[HouseholdId], lines: usize, heard: &mut Heard) {
    let mut child = Process::new(STRESS)
        .args(["--seconds", "60", "--writers", "3"])
        .arg(path)
        .args(households.iter().map(|h| h.to_string()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    for _ in 0..lines {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => heard.take(&line),
            Err(e) => {
                let _ = child.kill();
                panic!("the stress binary went quiet: {e}");
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "killed mid-run, not exited: {status}"
    );
    // Lines printed before the kill are acknowledgements too.
    for line in rx.iter() {
        heard.take(&line);
    }
    reader.join().unwrap();
}

#[test]
fn sigkill_mid_appends_loses_nothing_and_leaves_no_partial_append() {
    let path = fresh_file();
    let households = [HouseholdId(Uuid::now_v7()), HouseholdId(Uuid::now_v7())];
    let mut heard = Heard::default();
    // Kill at different depths, restarting on the same file each time.
    for lines in [40, 173, 9, 310, 77] {
        run_and_kill(&path, &households, lines, &mut heard);
    }
    assert!(heard.acked.len() > 300, "enough appends to mean something");
    assert!(!heard.dups.is_empty(), "repeats were exercised");

    // The file after five crashes: sound, foreign keys intact.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let broken: i64 = conn
            .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(broken, 0, "no dangling row");
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(verify(&path, &households, &heard));
}

async fn verify(path: &Path, households: &[HouseholdId], heard: &Heard) {
    let (store, _feed) = SqliteEventStore::open(path).unwrap();
    let jobs = store.pending_jobs(1_000_000).await.unwrap();
    for &tenant in households {
        let feed = store.read_feed(tenant, 0, 1_000_000).await.unwrap();
        let head = store.head(tenant).await.unwrap();
        // Seq gap-free from 1, and the head agrees.
        let seqs: Vec<u64> = feed.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=head).collect::<Vec<_>>(), "seq gap-free from 1");

        // No partial append: every command's events are all there, contiguous,
        // and agree with its stored outcome.
        let mut by_command: BTreeMap<CommandId, Vec<u64>> = BTreeMap::new();
        for event in &feed {
            by_command
                .entry(event.metadata.command_id)
                .or_default()
                .push(event.seq);
        }
        for (command, seqs) in &by_command {
            let last = *seqs.last().unwrap();
            assert_eq!(
                seqs,
                &((last + 1 - seqs.len() as u64)..=last).collect::<Vec<_>>(),
                "one command's events are contiguous"
            );
            assert_eq!(
                store.outcome(tenant, *command).await.unwrap(),
                Some(CommandOutcome::Accepted {
                    seq: last,
                    events: seqs.len() as u32
                }),
                "the outcome of {command} matches its events"
            );
        }
        // And no command was recorded without its events.
        let accepted: i64 = rusqlite::Connection::open(path)
            .unwrap()
            .query_row(
                "SELECT COUNT(*) FROM commands WHERE tenant_id = ?1 AND status = 'accepted'",
                [tenant.0],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            accepted as usize,
            by_command.len(),
            "no command without events"
        );

        // Every event that needs a job has its job (the outbox is in the append).
        for event in feed.iter().filter(|e| e.requires_job) {
            assert!(
                jobs.iter().any(|j| j.tenant == tenant && j.id == event.id),
                "job of event {} recorded",
                event.id
            );
        }

        // Every acknowledged command is stored with its events, at the acked seq.
        let mine: Vec<_> = heard
            .acked
            .iter()
            .filter(|((t, _), _)| *t == tenant)
            .collect();
        assert!(!mine.is_empty());
        for ((_, command), &seq) in mine {
            assert_eq!(
                store.outcome(tenant, *command).await.unwrap(),
                Some(CommandOutcome::Accepted { seq, events: 1 }),
                "acknowledged {command} is stored as acknowledged"
            );
            let event = &feed[usize::try_from(seq - 1).unwrap()];
            assert_eq!(event.metadata.command_id, *command);
        }

        // Repeats during the run reported the first outcome.
        for (t, command, seq) in heard.dups.iter().filter(|(t, _, _)| *t == tenant) {
            let acked = heard
                .acked
                .get(&(*t, *command))
                .expect("repeats are of acked commands");
            assert_eq!(seq, acked, "a repeat of {command} reported its first seq");
        }

        // A repeat now, even with another decision, writes nothing and gets the
        // stored outcome back.
        for ((_, command), &seq) in heard
            .acked
            .iter()
            .filter(|((t, _), _)| *t == tenant)
            .take(50)
        {
            let repeat = Append {
                command: CommandEnvelope::new(
                    *command,
                    tenant,
                    Actor::System,
                    Command::ConfirmOrder(OrderRef {
                        order_id: hearth_core::OrderId(Uuid::now_v7()),
                    }),
                ),
                decision: Decision::Rejected {
                    code: "late".into(),
                    message: "a late repeat".into(),
                },
            };
            assert_eq!(
                store.append(repeat).await.unwrap(),
                Appended::Duplicate(CommandOutcome::Accepted { seq, events: 1 })
            );
        }
        assert_eq!(
            store.head(tenant).await.unwrap(),
            head,
            "repeats wrote nothing"
        );
    }
}
