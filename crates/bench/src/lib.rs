//! Pieces of the Hearth load generator that can be tested without a server: the
//! open-loop schedule, the per-connection seq check, latency histograms and the
//! parsing of the server's frames. See BENCHMARKS.md and `bench/run.sh`.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The open-loop schedule. Global command `k` (0-based) is due at `k / rate` seconds
/// after the start and is sent by connection `k mod senders`. Send times are fixed in
/// advance: a late send is still measured from its due time, so a slow server cannot
/// slow the offered load down (no coordinated omission).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// Commands per second, over all senders.
    pub rate: f64,
    /// Number of sending connections.
    pub senders: usize,
    /// Length of the schedule.
    pub duration: Duration,
}

impl Schedule {
    /// Total commands in the schedule.
    pub fn total(&self) -> u64 {
        if self.rate <= 0.0 {
            return 0;
        }
        (self.rate * self.duration.as_secs_f64()).floor() as u64
    }

    /// Due times (offsets from the start) of the commands of sender `index`.
    pub fn offsets(&self, index: usize) -> impl Iterator<Item = Duration> + use<> {
        let total = self.total();
        let senders = self.senders.max(1) as u64;
        let rate = self.rate;
        let first = index as u64;
        (0..)
            .map(move |j: u64| first + j * senders)
            .take_while(move |k| *k < total)
            .map(move |k| Duration::from_secs_f64(k as f64 / rate))
    }
}

/// Loss check of one connection: every event must carry the next seq of its room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SeqCheck {
    /// Last seq seen (the welcome's seq before any event).
    pub last: u64,
    /// Events missing in the middle of the stream (sum of the gap sizes).
    pub gaps: u64,
    /// Events at or below a seq already seen.
    pub duplicates: u64,
    /// Events received.
    pub received: u64,
}

impl SeqCheck {
    pub fn starting_at(seq: u64) -> Self {
        Self {
            last: seq,
            ..Self::default()
        }
    }

    pub fn observe(&mut self, seq: u64) {
        self.received += 1;
        if seq <= self.last {
            self.duplicates += 1;
        } else {
            self.gaps += seq - self.last - 1;
            self.last = seq;
        }
    }

    /// Events the room committed (up to `head`) that this connection has not seen.
    pub fn missing_tail(&self, head: u64) -> u64 {
        head.saturating_sub(self.last)
    }
}

/// A latency histogram in microseconds (1 us to 60 s, 3 significant digits).
#[derive(Clone, Debug)]
pub struct Latency(hdrhistogram::Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    pub fn new() -> Self {
        #[allow(clippy::expect_used)]
        let h = hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3)
            .expect("constant bounds are valid");
        Self(h)
    }

    pub fn record(&mut self, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, 60_000_000);
        self.0.saturating_record(us);
    }

    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn summary(&self) -> LatencySummary {
        let ms = |us: u64| us as f64 / 1000.0;
        if self.0.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.0.len(),
            mean_ms: self.0.mean() / 1000.0,
            p50_ms: ms(self.0.value_at_quantile(0.50)),
            p90_ms: ms(self.0.value_at_quantile(0.90)),
            p99_ms: ms(self.0.value_at_quantile(0.99)),
            p999_ms: ms(self.0.value_at_quantile(0.999)),
            max_ms: ms(self.0.max()),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// The server frames the generator looks at; every other field is skipped.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Incoming {
    Welcome(WelcomeFrame),
    Event(EventFrame),
    Ack(AckFrame),
    Rejected(serde::de::IgnoredAny),
    Error(ErrorFrame),
}

#[derive(Debug, Deserialize)]
pub struct WelcomeFrame {
    pub seq: u64,
}

#[derive(Debug, Deserialize)]
pub struct EventFrame {
    pub seq: u64,
    pub metadata: EventMetadata,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventMetadata {
    pub command_id: Option<uuid::Uuid>,
}

#[derive(Debug, Deserialize)]
pub struct AckFrame {
    pub id: uuid::Uuid,
    pub seq: u64,
}

#[derive(Debug, Deserialize)]
pub struct ErrorFrame {
    pub code: String,
}

pub fn parse_incoming(text: &str) -> Result<Incoming, serde_json::Error> {
    serde_json::from_str(text)
}

/// How a `PlaceOrder` line is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderLines {
    /// A sku, a quantity and the price shown (the server names and prices the line from
    /// its catalog): what servers since the catalog (issue 16) accept.
    #[default]
    Skus,
    /// A sku, a name, a quantity and a unit price: what servers before the catalog took,
    /// for a before/after benchmark against an older binary (a newer one refuses it).
    Legacy,
}

/// The command frame every mode sends: a `PlaceOrder` of a new order (two milk at the
/// default catalog's price).
pub fn command_frame(id: uuid::Uuid, order: uuid::Uuid) -> String {
    command_frame_with(id, order, OrderLines::Skus)
}

/// [`command_frame`] with its lines written as `lines` says.
pub fn command_frame_with(id: uuid::Uuid, order: uuid::Uuid, lines: OrderLines) -> String {
    let line = match lines {
        OrderLines::Skus => r#"{"sku":"milk","quantity":2,"unitPriceCents":129}"#,
        OrderLines::Legacy => r#"{"sku":"milk","name":"Milk","quantity":2,"unitPriceCents":120}"#,
    };
    format!(
        r#"{{"command":{{"id":"{id}","type":"PlaceOrder","payload":{{"orderId":"{order}","lines":[{line}]}}}}}}"#
    )
}

/// Resident set size of a process, from `/proc/<pid>/status`, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// CPU time (user + system) a process has used, from `/proc/<pid>/stat`, in ms
/// (clock ticks taken as 100 Hz, Linux's USER_HZ on every mainstream architecture).
pub fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    // After ')': state is field 3, so utime (14) and stime (15) are the 12th and 13th.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 10.0)
}

/// CPU time of every process whose command line contains `needle`, in ms: e.g. the
/// PostgreSQL backends serving one database, whose process titles read
/// `postgres: 15/main: ROLE DATABASE ADDRESS STATE`. A backend that exits in between
/// takes its time with it, so measure over a span in which the pool stays up.
pub fn cpu_ms_matching(needle: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .filter_map(cpu_ms)
        .sum()
}

/// Peak resident set size (`VmHWM`) of a process in KiB, over its whole life.
pub fn rss_peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Smallest, median and largest of a set of counts (all 0 when empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Spread {
    pub count: usize,
    pub min: u64,
    pub median: u64,
    pub max: u64,
}

impl Spread {
    pub fn of(values: &[u64]) -> Self {
        let mut v = values.to_vec();
        v.sort_unstable();
        match (v.first(), v.get(v.len() / 2), v.last()) {
            (Some(&min), Some(&median), Some(&max)) => Self {
                count: v.len(),
                min,
                median,
                max,
            },
            _ => Self::default(),
        }
    }
}

/// Reads a started `hearth serve`'s stdout until its first line, `listening on
/// http://ADDR`, and returns ADDR (at most 60 s). `log` names the server's log file for
/// the error when it ends first.
pub async fn listening_addr(
    stdout: &mut tokio::io::BufReader<tokio::process::ChildStdout>,
    log: &std::path::Path,
) -> anyhow::Result<std::net::SocketAddr> {
    use anyhow::Context as _;
    use tokio::io::AsyncBufReadExt as _;
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            line.clear();
            if stdout.read_line(&mut line).await? == 0 {
                anyhow::bail!("the server ended before listening (see {})", log.display());
            }
            if let Some(addr) = line.trim().strip_prefix("listening on http://") {
                return Ok(addr.parse::<std::net::SocketAddr>()?);
            }
        }
    })
    .await
    .context("the server did not listen within 60 s")?
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn schedule_covers_every_slot_once_at_the_target_rate() {
        let s = Schedule {
            rate: 250.0,
            senders: 7,
            duration: Duration::from_secs(2),
        };
        assert_eq!(s.total(), 500);
        let mut all: Vec<Duration> = (0..7).flat_map(|i| s.offsets(i)).collect();
        assert_eq!(all.len(), 500);
        all.sort();
        for (k, d) in all.iter().enumerate() {
            let want = Duration::from_secs_f64(k as f64 / 250.0);
            assert_eq!(*d, want, "slot {k}");
        }
        // Each sender's own times are evenly spaced by senders / rate.
        let own: Vec<Duration> = s.offsets(3).collect();
        let step = Duration::from_secs_f64(7.0 / 250.0).as_secs_f64();
        for w in own.windows(2) {
            assert!(((w[1] - w[0]).as_secs_f64() - step).abs() < 1e-6);
        }
    }

    #[test]
    fn seq_check_counts_gaps_duplicates_and_tail() {
        let mut c = SeqCheck::starting_at(4);
        for s in [5, 6, 6, 9, 10, 3] {
            c.observe(s);
        }
        assert_eq!(c.gaps, 2);
        assert_eq!(c.duplicates, 2);
        assert_eq!(c.received, 6);
        assert_eq!(c.missing_tail(12), 2);
        assert_eq!(c.missing_tail(10), 0);
    }

    #[test]
    fn histogram_percentiles_and_merge() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        for ms in 1..=99 {
            a.record(Duration::from_millis(ms));
        }
        b.record(Duration::from_millis(1000));
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50_ms - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p99_ms - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.max_ms - 1000.0).abs() < 1.0, "{s:?}");
    }

    #[test]
    fn spread_of_counts() {
        assert_eq!(Spread::of(&[]), Spread::default());
        let s = Spread::of(&[9, 1, 5, 7]);
        assert_eq!((s.count, s.min, s.median, s.max), (4, 1, 7, 9));
    }

    #[test]
    fn parses_the_frames_it_needs() {
        let e = r#"{"event":{"id":"x","seq":5,"payload":{"a":[1,2]},"metadata":{"commandId":"0191e4c0-0000-7000-8000-000000000001","actor":{"kind":"member"}}}}"#;
        match parse_incoming(e).unwrap() {
            Incoming::Event(ev) => {
                assert_eq!(ev.seq, 5);
                assert!(ev.metadata.command_id.is_some());
            }
            other => panic!("{other:?}"),
        }
        let a =
            r#"{"ack":{"id":"0191e4c0-0000-7000-8000-000000000001","status":"accepted","seq":5}}"#;
        assert!(matches!(
            parse_incoming(a).unwrap(),
            Incoming::Ack(AckFrame { seq: 5, .. })
        ));
        let w =
            r#"{"welcome":{"room":"r","connection":"c","seq":0,"state":{"seq":0,"orders":[]}}}"#;
        assert!(matches!(
            parse_incoming(w).unwrap(),
            Incoming::Welcome(WelcomeFrame { seq: 0 })
        ));
        let c = command_frame(uuid::Uuid::nil(), uuid::Uuid::nil());
        let v: serde_json::Value = serde_json::from_str(&c).unwrap();
        assert_eq!(v["command"]["type"], "PlaceOrder");
        assert_eq!(
            v["command"]["payload"]["lines"],
            serde_json::json!([{"sku": "milk", "quantity": 2, "unitPriceCents": 129}])
        );
        let legacy = command_frame_with(uuid::Uuid::nil(), uuid::Uuid::nil(), OrderLines::Legacy);
        let v: serde_json::Value = serde_json::from_str(&legacy).unwrap();
        assert_eq!(v["command"]["payload"]["lines"][0]["name"], "Milk");
    }
}
