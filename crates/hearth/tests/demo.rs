//! `hearth demo` as a user runs it: a story of what the members see, in words.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use std::process::Command;

fn demo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("demo")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("hearth demo runs");
    assert!(
        out.status.success(),
        "hearth demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The story's lines as (time of day, sentence); the board's lines have no time.
fn timed(story: &str) -> Vec<(&str, &str)> {
    story
        .lines()
        .filter_map(|line| {
            let (time, sentence) = line.split_once("  ")?;
            let digits = time.chars().filter(char::is_ascii_digit).count();
            (time.len() == 5 && digits == 4 && time.as_bytes()[2] == b':')
                .then_some((time, sentence))
        })
        .collect()
}

/// The sentence starting with `start` at or after `from`: its index, time and text.
fn find<'a>(lines: &[(&'a str, &'a str)], from: usize, start: &str) -> (usize, &'a str, &'a str) {
    lines
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, (_, s))| s.starts_with(start))
        .map(|(i, (t, s))| (i, *t, *s))
        .unwrap_or_else(|| panic!("no line starting {start:?} after line {from} in:\n{lines:#?}"))
}

/// "... at HH:MM" at the end of `sentence` (before its full stop): the time it names.
fn named_time(sentence: &str) -> &str {
    let at = sentence.rfind(" at ").expect("a time") + 4;
    &sentence[at..at + 5]
}

#[test]
fn the_demo_tells_what_members_see_in_order_in_words() {
    let story = demo(&[]);
    let lines = timed(&story);

    // What happened, in the order it happened.
    let expected = [
        "Ann created household 'Home'.",
        "Ann invited Bob, who joined.",
        "Ann placed order #1: 1 x Sourdough loaf, 2 x Milk 1 L, 7.08, ready ",
        "order #1: the shop set the items aside.",
        "order #1: paid 7.08.",
        "order #1 is confirmed.",
        "Bob placed order #2: 2 x Margherita pizza, 23.00, ready ",
        "order #2: paid 23.00.",
        "Bob cancelled order #2 (plans changed).",
        "order #2: the shop put the items back on the shelf.",
        "order #2: refunded 23.00.",
        "Ann asked Bob to do 'Take out the bins' ",
        "Bob was reminded: 'Take out the bins' is due.",
        "Bob did 'Take out the bins'.",
        "order #1 is ready.",
        "Ann collected order #1.",
    ];
    let mut at = 0;
    for start in expected {
        at = find(&lines, at, start).0 + 1;
    }

    // Timed work happens at the time members were told: the reminder at the chore's
    // due time, the order ready at its ready-at.
    let (_, _, asked) = find(&lines, 0, "Ann asked Bob");
    let (_, reminded_at, _) = find(&lines, 0, "Bob was reminded");
    assert_eq!(reminded_at, named_time(asked), "{story}");
    let (_, _, placed) = find(&lines, 0, "Ann placed order #1");
    let (_, ready_at, _) = find(&lines, 0, "order #1 is ready.");
    assert_eq!(ready_at, named_time(placed), "{story}");

    // Then the board, as members see it at the end, and the provider's count.
    for board_line in [
        "  order #1 (Ann, 7.08): completed",
        "  order #2 (Bob, 23.00): cancelled, refunded",
        "  'Take out the bins' (Bob): done",
        "At the payment provider: captures 2, refunds 1.",
    ] {
        assert!(
            story.lines().any(|l| l == board_line),
            "no {board_line:?} in:\n{story}"
        );
    }

    // Readable: no ids, no JSON, short.
    for word in story.split(|c: char| !(c.is_ascii_hexdigit() || c == '-')) {
        assert!(
            uuid::Uuid::parse_str(word).is_err(),
            "an id in the story: {word}\n{story}"
        );
    }
    assert!(!story.contains('{'), "JSON in the story:\n{story}");
    assert!(
        story.lines().count() <= 30,
        "{} lines:\n{story}",
        story.lines().count()
    );
}

#[test]
fn the_demo_gives_its_events_and_board_as_json_on_request() {
    let out = demo(&["--json"]);
    let objects: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let (board, events) = objects.split_last().expect("some lines");
    assert_eq!(board["seq"], events.len(), "the board folds every event");
    assert!(
        events
            .iter()
            .all(|e| e["seq"].is_u64() && e["type"].is_string())
    );
    assert_eq!(board["orders"].as_array().map(Vec::len), Some(2));
    assert_eq!(board["chores"].as_array().map(Vec::len), Some(1));
}
