//! The SQLite adapter's integration tests: one test binary, a module per concern.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod batch;
mod checkpoint;
mod contract;
mod crash;
mod isolation;
mod migrations;
mod permissions;
mod readonly;
mod sharing;

/// A fresh database file in a directory that lives as long as the test process
/// (leaked on purpose: stores outlive the functions that open them).
pub fn fresh_file() -> std::path::PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    dir.join("hearth.db")
}
