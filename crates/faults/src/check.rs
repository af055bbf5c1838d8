//! The checker: reads every household's log (the room's HTTP API, paged with `since`)
//! and the sandbox's ledgers, and compares them with what the writers were told and
//! what the tails saw.

use crate::client::{Household, Kind, Outcome, Seen, Sent, lock};
use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// One event of the log, as the checker needs it.
#[derive(Debug, Clone)]
pub struct LogEvent {
    pub seq: u64,
    pub id: String,
    pub kind: String,
    pub order: String,
    pub command: String,
    pub payload: Value,
}

pub async fn read_log(http: &reqwest::Client, base: &str, hh: &Household) -> Result<Vec<LogEvent>> {
    let mut events = Vec::new();
    let mut since = 0u64;
    loop {
        let url = format!(
            "http://{base}/parties/household/{}?since={since}&limit=500",
            hh.id
        );
        let response = http.get(&url).bearer_auth(&hh.owner_token).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("GET {url}: {status} {body}");
        }
        let page = body
            .get("events")
            .and_then(Value::as_array)
            .context("no events")?;
        let head = body.get("head").and_then(Value::as_u64).unwrap_or(0);
        for e in page {
            let s = |p: &str| {
                e.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            events.push(LogEvent {
                seq: e.get("seq").and_then(Value::as_u64).unwrap_or(0),
                id: s("/id"),
                kind: s("/type"),
                order: s("/payload/orderId"),
                command: s("/metadata/commandId"),
                payload: e.get("payload").cloned().unwrap_or(Value::Null),
            });
        }
        match page
            .last()
            .and_then(|e| e.get("seq"))
            .and_then(Value::as_u64)
        {
            Some(last) if last < head => since = last,
            _ => return Ok(events),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct LedgerEntry {
    pub tenant: String,
    pub order: String,
    pub id: String,
    pub amount: u64,
    /// Refunded (captures) or released (reservations).
    pub given_back: bool,
}

/// One of the sandbox's ledgers, whole (`captures` or `reservations`).
pub async fn read_ledger(
    http: &reqwest::Client,
    sandbox: &str,
    which: &str,
) -> Result<Vec<LedgerEntry>> {
    let mut entries = Vec::new();
    let mut after = 0u64;
    loop {
        let url = format!("{sandbox}/ledger/{which}?after={after}&limit=1000");
        let body: Value = http
            .get(&url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let page = body
            .get("entries")
            .and_then(Value::as_array)
            .context("no entries")?;
        if page.is_empty() {
            return Ok(entries);
        }
        for e in page {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            after = after.max(e.get("position").and_then(Value::as_u64).unwrap_or(0));
            entries.push(if which == "captures" {
                LedgerEntry {
                    tenant: s("tenant"),
                    order: s("orderId"),
                    id: s("paymentId"),
                    amount: e.get("amountCents").and_then(Value::as_u64).unwrap_or(0),
                    given_back: e.get("refunded").and_then(Value::as_bool).unwrap_or(false),
                }
            } else {
                LedgerEntry {
                    tenant: s("tenant"),
                    order: s("orderId"),
                    id: s("reservationId"),
                    amount: 0,
                    given_back: !e.get("held").and_then(Value::as_bool).unwrap_or(true),
                }
            });
        }
    }
}

/// The counts of one check. Every field but the first four must be zero.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub orders: u64,
    pub cancelled: u64,
    pub acked: u64,
    pub events: u64,
    /// Acked commands whose events are not in the log.
    pub lost: u64,
    /// Commands applied more than once (an order's step twice, a command's events split).
    pub duplicated: u64,
    /// Missing seqs in the log, and events a tail missed.
    pub gaps: u64,
    /// Events a tail saw twice or out of order.
    pub tail_disorder: u64,
    /// Orders not settled: not ready/completed/cancelled/rejected, or closed with a
    /// capture not refunded or stock still held according to the log.
    pub stuck: u64,
    /// Orders whose captures, refunds, reservations or releases differ between the
    /// sandbox's ledger and the log.
    pub ledger: u64,
    /// Commands never answered, or answered with an error that is not "retry".
    pub unanswered: u64,
    /// Rejected commands whose events are in the log anyway.
    pub wrong_answers: u64,
    /// Rejections by code (not failures: e.g. a cancel of an order already ready).
    pub rejections: BTreeMap<String, u64>,
    /// The first few findings, for the report.
    pub notes: Vec<String>,
}

impl Counts {
    pub fn bad(&self) -> u64 {
        self.lost
            + self.duplicated
            + self.gaps
            + self.tail_disorder
            + self.stuck
            + self.ledger
            + self.unanswered
            + self.wrong_answers
    }

    fn note(&mut self, text: String) {
        if self.notes.len() < 20 {
            self.notes.push(text);
        }
    }
}

#[derive(Debug, Default)]
struct OrderLog {
    status: &'static str,
    counts: HashMap<String, u32>,
    captures: Vec<(String, u64)>,
    refunds: u32,
    reservations: Vec<String>,
    releases: u32,
}

pub struct HouseholdState<'a> {
    pub household: &'a Household,
    pub sent: &'a Arc<Mutex<Sent>>,
    pub seen: &'a Arc<Mutex<Seen>>,
}

/// Checks every household. `final_check`: count unanswered commands too (during the
/// wait for quiescence they may still be in flight).
pub async fn check(
    http: &reqwest::Client,
    base: &str,
    sandbox: &str,
    households: &[HouseholdState<'_>],
    final_check: bool,
) -> Result<Counts> {
    let mut c = Counts::default();
    let captures = read_ledger(http, sandbox, "captures").await?;
    let reservations = read_ledger(http, sandbox, "reservations").await?;
    for hh in households {
        let log = read_log(http, base, hh.household).await?;
        c.events += log.len() as u64;
        let hid = &hh.household.id;
        // Seqs: exactly 1..=n.
        for (i, e) in log.iter().enumerate() {
            if e.seq != i as u64 + 1 {
                c.gaps += 1;
                c.note(format!("{hid}: log position {} holds seq {}", i + 1, e.seq));
                break;
            }
        }
        // Each command's events: one run of consecutive seqs.
        let mut by_command: HashMap<&str, Vec<u64>> = HashMap::new();
        for e in &log {
            by_command.entry(&e.command).or_default().push(e.seq);
        }
        for (command, seqs) in &by_command {
            if seqs.windows(2).any(|w| w[1] != w[0] + 1) {
                c.duplicated += 1;
                c.note(format!(
                    "{hid}: command {command} applied in parts at seqs {seqs:?}"
                ));
            }
        }
        // The writer's answers against the log.
        {
            let sent = lock(hh.sent);
            for cmd in &sent.cmds {
                let id = cmd.id.to_string();
                let present = by_command.contains_key(id.as_str());
                match &cmd.outcome {
                    Outcome::Accepted | Outcome::Duplicate => {
                        c.acked += 1;
                        if cmd.kind == Kind::Place {
                            c.orders += 1;
                        } else {
                            c.cancelled += 1;
                        }
                        if !present {
                            c.lost += 1;
                            c.note(format!("{hid}: acked {:?} {id} has no event", cmd.kind));
                        }
                    }
                    Outcome::Rejected(code) => {
                        *c.rejections
                            .entry(format!("{:?} {code}", cmd.kind))
                            .or_default() += 1;
                        if present {
                            c.wrong_answers += 1;
                            c.note(format!("{hid}: {id} rejected ({code}) but in the log"));
                        }
                    }
                    Outcome::Invalid(e) => {
                        c.unanswered += 1;
                        c.note(format!("{hid}: {id} answered {e}"));
                    }
                    Outcome::Pending => {
                        if final_check {
                            c.unanswered += 1;
                            c.note(format!("{hid}: {id} never answered"));
                        }
                    }
                }
            }
        }
        // The tail: every event of the log once, in order.
        {
            let seen = lock(hh.seen);
            let mut times: HashMap<&str, u32> = HashMap::new();
            let mut last = 0u64;
            for (seq, id) in &seen.events {
                *times.entry(id.as_str()).or_default() += 1;
                if *seq <= last {
                    c.tail_disorder += 1;
                    c.note(format!("{hid}: tail saw seq {seq} after {last}"));
                }
                last = last.max(*seq);
            }
            for e in &log {
                if !times.contains_key(e.id.as_str()) {
                    c.gaps += 1;
                    c.note(format!("{hid}: tail never saw seq {}", e.seq));
                }
            }
            c.tail_disorder += times.values().filter(|&&n| n > 1).count() as u64;
        }
        // Orders: folded from the order domain's events of the log (a household's log
        // also holds the events of its other domains, e.g. its members').
        let order_types = hearth_core::DomainId::Order.event_types();
        let mut orders: BTreeMap<&str, OrderLog> = BTreeMap::new();
        for e in log
            .iter()
            .filter(|e| order_types.contains(&e.kind.as_str()))
        {
            let o = orders.entry(&e.order).or_default();
            *o.counts.entry(e.kind.clone()).or_default() += 1;
            let p = |k: &str| {
                e.payload
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            match e.kind.as_str() {
                "OrderPlaced" => o.status = "placed",
                "StockReserved" => {
                    o.status = "stockReserved";
                    o.reservations.push(p("reservationId"));
                }
                "StockReservedAfterClose" => o.reservations.push(p("reservationId")),
                "PaymentCaptured" | "PaymentCapturedAfterClose" => {
                    if e.kind == "PaymentCaptured" {
                        o.status = "paymentCaptured";
                    }
                    let amount = e.payload.get("amountCents").and_then(Value::as_u64);
                    o.captures.push((p("paymentId"), amount.unwrap_or(0)));
                }
                "OrderConfirmed" => o.status = "confirmed",
                "OrderReady" => o.status = "ready",
                "OrderCompleted" => o.status = "completed",
                "OrderRejected" => o.status = "rejected",
                "OrderCancelled" => o.status = "cancelled",
                "RefundIssued" => o.refunds += 1,
                "StockReleased" => o.releases += 1,
                _ => {}
            }
        }
        let mut ledger_orders: BTreeMap<&str, (Vec<&LedgerEntry>, Vec<&LedgerEntry>)> =
            BTreeMap::new();
        for e in captures.iter().filter(|e| &e.tenant == hid) {
            ledger_orders.entry(&e.order).or_default().0.push(e);
        }
        for e in reservations.iter().filter(|e| &e.tenant == hid) {
            ledger_orders.entry(&e.order).or_default().1.push(e);
        }
        for (order, o) in &orders {
            for (kind, n) in &o.counts {
                if *n > 1 {
                    c.duplicated += 1;
                    c.note(format!("{hid}: order {order}: {kind} x{n}"));
                }
            }
            if o.captures.len() > 1 || o.reservations.len() > 1 {
                c.duplicated += 1;
                c.note(format!(
                    "{hid}: order {order}: {} captures, {} reservations",
                    o.captures.len(),
                    o.reservations.len()
                ));
            }
            let closed = matches!(o.status, "cancelled" | "rejected");
            let settled = matches!(o.status, "ready" | "completed")
                || (closed
                    && o.refunds as usize >= o.captures.len()
                    && o.releases as usize >= o.reservations.len());
            if !settled {
                c.stuck += 1;
                c.note(format!(
                    "{hid}: order {order} {}: {} capture(s) {} refund(s), {} reservation(s) {} release(s)",
                    o.status,
                    o.captures.len(),
                    o.refunds,
                    o.reservations.len(),
                    o.releases
                ));
            }
            // The ledger against the log.
            let empty = (Vec::new(), Vec::new());
            let (lc, lr) = ledger_orders.get(order).unwrap_or(&empty);
            let mut log_caps: Vec<(String, u64)> = o.captures.clone();
            let mut led_caps: Vec<(String, u64)> =
                lc.iter().map(|e| (e.id.clone(), e.amount)).collect();
            log_caps.sort();
            led_caps.sort();
            let mut log_res = o.reservations.clone();
            let mut led_res: Vec<String> = lr.iter().map(|e| e.id.clone()).collect();
            log_res.sort();
            led_res.sort();
            let led_refunds = lc.iter().filter(|e| e.given_back).count();
            let led_releases = lr.iter().filter(|e| e.given_back).count();
            if log_caps != led_caps
                || log_res != led_res
                || led_refunds != o.refunds as usize
                || led_releases != o.releases as usize
            {
                c.ledger += 1;
                c.note(format!(
                    "{hid}: order {order} ({}): log captures {log_caps:?} refunds {} reservations {log_res:?} releases {}; provider captures {led_caps:?} refunded {led_refunds} reservations {led_res:?} released {led_releases}",
                    o.status, o.refunds, o.releases
                ));
            }
        }
        for order in ledger_orders.keys() {
            if !orders.contains_key(order) {
                c.ledger += 1;
                c.note(format!(
                    "{hid}: the provider has entries for order {order}, the log has no such order"
                ));
            }
        }
    }
    Ok(c)
}
