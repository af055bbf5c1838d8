//! In-memory adapters: real implementations of the ports, kept in process memory.
//! Used by unit tests, the demo, and as the reference each contract suite runs against.

mod clock;
mod directory;
mod providers;
mod scheduler;
mod store;

pub use clock::{ManualClock, SystemClock};
pub use directory::MemoryDirectory;
pub use providers::{MemoryInventory, MemoryPayments, default_catalog};
pub use scheduler::MemoryJobScheduler;
pub use store::{MemoryEventFeed, MemoryEventStore};
