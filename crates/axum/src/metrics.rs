//! A small hand-written Prometheus text exposition: a few counters, two gauges and
//! one histogram do not need a metrics framework.

use crate::limits::reasons;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Upper bounds (seconds) of the fan-out latency histogram.
const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Debug, Default)]
pub struct Metrics {
    pub connections: AtomicI64,
    pub rooms: AtomicI64,
    pub commands_accepted: AtomicU64,
    pub commands_duplicate: AtomicU64,
    pub commands_rejected: AtomicU64,
    pub commands_failed: AtomicU64,
    pub bad_input: AtomicU64,
    pub unauthorized: AtomicU64,
    pub slow_consumers: AtomicU64,
    pub dead_sockets: AtomicU64,
    pub takeovers: AtomicU64,
    pub events_pushed: AtomicU64,
    pub room_reads: AtomicU64,
    /// Events folded into kept views (to answer `GET` of a room's state).
    pub view_events: AtomicU64,
    /// Catch-up pages that waited for the node's catch-up rate.
    pub catchup_waits: AtomicU64,
    /// Refusals by the edge's limits, by [`REFUSAL_REASONS`] index.
    refused: [AtomicU64; REFUSAL_REASONS.len()],
    /// Reconciliation (the providers' ledgers against the log), when this process runs it.
    pub reconcile_runs: AtomicU64,
    pub reconcile_failed_runs: AtomicU64,
    pub reconcile_found: AtomicU64,
    pub reconcile_repaired: AtomicU64,
    pub reconcile_remaining: AtomicI64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    /// Sum in microseconds.
    latency_sum_us: AtomicU64,
}

/// The `reason` label values of `hearth_refused_total` (see `limits::Refusal::reason`,
/// `origins::check` and `webhooks::receive`).
pub const REFUSAL_REASONS: [&str; 9] = [
    reasons::RATE_ADDRESS,
    reasons::RATE_SIGNUP,
    reasons::RATE_MEMBER,
    reasons::CONNECTIONS,
    reasons::CONNECTIONS_PER_ADDRESS,
    reasons::SOCKETS_PER_MEMBER,
    reasons::SOCKETS_PER_ROOM,
    crate::origins::REFUSAL_REASON,
    crate::webhooks::REFUSAL_REASON,
];

fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Counts one refusal by the edge's limits.
    pub fn refused(&self, reason: &str) {
        if let Some(i) = REFUSAL_REASONS.iter().position(|r| *r == reason) {
            inc(&self.refused[i]);
        }
    }

    /// Records one event's fan-out latency: commit time to hand-off to the sockets' queues.
    pub fn observe_fanout(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if seconds <= *bound {
                inc(bucket);
            }
        }
        inc(&self.latency_count);
        // Saturating float-to-int conversion: absurd values clamp.
        self.latency_sum_us
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP hearth_connections Open WebSocket connections on this node.\n# TYPE hearth_connections gauge\nhearth_connections {}",
            self.connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP hearth_rooms Rooms with local connections on this node.\n# TYPE hearth_rooms gauge\nhearth_rooms {}",
            self.rooms.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP hearth_commands_total Commands received, by outcome.\n# TYPE hearth_commands_total counter"
        );
        for (outcome, value) in [
            ("accepted", get(&self.commands_accepted)),
            ("duplicate", get(&self.commands_duplicate)),
            ("rejected", get(&self.commands_rejected)),
            ("invalid", get(&self.bad_input)),
            ("failed", get(&self.commands_failed)),
        ] {
            let _ = writeln!(
                out,
                "hearth_commands_total{{outcome=\"{outcome}\"}} {value}"
            );
        }
        for (name, help, value) in [
            (
                "hearth_unauthorized_total",
                "Requests refused with HTTP 401.",
                get(&self.unauthorized),
            ),
            (
                "hearth_slow_consumers_total",
                "Connections closed because their outgoing queue overflowed.",
                get(&self.slow_consumers),
            ),
            (
                "hearth_dead_sockets_total",
                "Connections closed because they stopped answering pings.",
                get(&self.dead_sockets),
            ),
            (
                "hearth_takeovers_total",
                "Connections closed because a new socket with the same _pk joined.",
                get(&self.takeovers),
            ),
            (
                "hearth_events_pushed_total",
                "Events handed to connections' outgoing queues.",
                get(&self.events_pushed),
            ),
            (
                "hearth_reconcile_runs_total",
                "Reconciliations of the providers' ledgers with the log that completed.",
                get(&self.reconcile_runs),
            ),
            (
                "hearth_reconcile_failed_runs_total",
                "Reconciliations that could not complete (a ledger or the store unavailable).",
                get(&self.reconcile_failed_runs),
            ),
            (
                "hearth_reconcile_differences_found_total",
                "Differences between the providers' ledgers and the log found by reconciliations.",
                get(&self.reconcile_found),
            ),
            (
                "hearth_reconcile_differences_repaired_total",
                "Differences a reconciliation repaired by running the order's process.",
                get(&self.reconcile_repaired),
            ),
            (
                "hearth_view_events_total",
                "Events folded into the node's kept views of households (a GET of a room's state reads only what its view lacks).",
                get(&self.view_events),
            ),
            (
                "hearth_catchup_waits_total",
                "Catch-up pages that waited for the node's catch-up rate.",
                get(&self.catchup_waits),
            ),
            (
                "hearth_room_reads_total",
                "Reads of new events from the store by rooms (events this node committed are delivered without one).",
                get(&self.room_reads),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP hearth_refused_total Connections, sockets and requests refused by the edge's limits or origin check, by reason.\n# TYPE hearth_refused_total counter"
        );
        for (reason, value) in REFUSAL_REASONS.iter().zip(&self.refused) {
            let _ = writeln!(
                out,
                "hearth_refused_total{{reason=\"{reason}\"}} {}",
                get(value)
            );
        }
        let _ = writeln!(
            out,
            "# HELP hearth_reconcile_differences_remaining Differences left after the last reconciliation.\n# TYPE hearth_reconcile_differences_remaining gauge\nhearth_reconcile_differences_remaining {}",
            self.reconcile_remaining.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP hearth_fanout_latency_seconds From an event's commit to its hand-off to local connections.\n# TYPE hearth_fanout_latency_seconds histogram"
        );
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "hearth_fanout_latency_seconds_bucket{{le=\"{bound}\"}} {}",
                get(bucket)
            );
        }
        let count = get(&self.latency_count);
        let _ = writeln!(
            out,
            "hearth_fanout_latency_seconds_bucket{{le=\"+Inf\"}} {count}\nhearth_fanout_latency_seconds_sum {}\nhearth_fanout_latency_seconds_count {count}",
            get(&self.latency_sum_us) as f64 / 1e6
        );
        out
    }
}
