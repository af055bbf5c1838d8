//! Contract suites, one per port. An adapter crate runs a suite against itself with
//! the suite's macro, which expands to one `#[tokio::test]` per case:
//!
//! ```ignore
//! hearth_contract::event_store_contract!(|| async { my_fixture().await });
//! ```
//!
//! Cases use fresh random household ids, so one store may serve every case.

#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed case

pub mod directory;
pub mod event_store;
pub mod fixtures;
pub mod interleave;
pub mod providers;
pub mod receive;
pub mod scheduler;

pub use event_store::StoreFixture;
