//! Architecture invariant: the core does no I/O. It may depend only on pure crates;
//! this test fails if its dependency tree (normal dependencies, transitively) holds an
//! async runtime, a database, web or Temporal crate, or another Hearth crate.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::process::Command;

const FORBIDDEN: &[&str] = &[
    "tokio",
    "async-std",
    "smol",
    "mio",
    "actix",
    "hyper",
    "axum",
    "tower",
    "warp",
    "reqwest",
    "tungstenite",
    "tokio-tungstenite",
    "postgres",
    "tokio-postgres",
    "deadpool",
    "deadpool-postgres",
    "sqlx",
    "rusqlite",
    "libsqlite3-sys",
    "diesel",
    "temporalio",
    "temporal",
    "tonic",
    "prost",
    "hearth-memory",
    "hearth-postgres",
    "hearth-sqlite",
    "hearth-axum",
    "hearth-temporal",
    "hearth",
];

const ALLOWED_DIRECT: &[&str] = &[
    "async-trait",
    "chrono",
    "futures-core",
    // A channel that needs no runtime: the snapshot queue (`Service::with_snapshot_writer`),
    // drained by a task the composition root runs.
    "futures-channel",
    "serde",
    "serde_json",
    // Derives names from enum variants (type names, refusal codes): no runtime code
    // beyond the generated matches.
    "strum",
    "thiserror",
    // The facade of spans and events (`trace.rs`): records nothing by itself and does no
    // I/O; the composition root installs what writes or exports them.
    "tracing",
    // Optional (feature `ts`): a pure derive crate that writes TypeScript declarations
    // of the contracts for the web client; no I/O at runtime, no async, no adapters.
    "ts-rs",
    "uuid",
];

#[test]
fn core_depends_only_on_pure_crates() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let tree = |depth: &str| {
        let out = Command::new(&cargo)
            .args([
                "tree",
                "--offline",
                "--manifest-path",
                manifest,
                "-p",
                "hearth-core",
                "-e",
                "normal",
                "--prefix",
                "none",
                "--format",
                "{p}",
                "--depth",
                depth,
            ])
            .output()
            .expect("cargo tree runs");
        assert!(
            out.status.success(),
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let all = tree("100");
    assert!(
        all.iter().any(|c| c == "serde"),
        "the tree was read: {all:?}"
    );
    let bad: Vec<_> = all
        .iter()
        .filter(|c| c.as_str() != "hearth-core")
        .filter(|c| {
            FORBIDDEN
                .iter()
                .any(|f| c == f || c.starts_with(&format!("{f}-")))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "hearth-core must stay pure, but depends on {bad:?}"
    );
    let direct: Vec<_> = tree("1")
        .into_iter()
        .filter(|c| c != "hearth-core")
        .collect();
    let unexpected: Vec<_> = direct
        .iter()
        .filter(|c| !ALLOWED_DIRECT.contains(&c.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "new direct dependencies of hearth-core need a review for purity (add them to ALLOWED_DIRECT if pure): {unexpected:?}"
    );
}
