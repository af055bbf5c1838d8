//! Reconciliation: the providers' ledgers against the log.
//!
//! [`compare`] is pure: given one order's state from the log and the ledger entries
//! that name it, the differences, each named, and whether the fulfilment process can
//! repair it. [`Reconciler`] reads the ledgers page by page, loads each order they name
//! within its household, compares, repairs by running the order's process
//! ([`Fulfilment::run`]: its `FindUnrecorded` and compensation steps record and give
//! back what the log missed), then compares again. See docs/durable.md,
//! "Reconciliation".

use crate::Timestamp;
use crate::fulfilment::{Advanced, Fulfilment, FulfilmentError};
use crate::ids::{HouseholdId, OrderId};
use crate::order::{OrderState, OrderStatus};
use crate::ports::{CaptureEntry, MAX_LEDGER_PAGE, ProviderError, ReservationEntry};
use crate::process::{capture_key, reserve_key};
use crate::service::ServiceError;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A way the providers' records and the log disagree about one order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Difference {
    /// Ledger entries name an order the log does not have (in that household).
    UnknownOrder {
        captures: usize,
        reservations: usize,
    },
    /// A capture or reservation still in effect for the order, made under a key its
    /// process never uses (so the process cannot find it).
    ForeignKey {
        what: &'static str,
        id: String,
        key: String,
    },
    /// A capture under the order's capture key the log does not show, on a closed order.
    CaptureNotInLog {
        payment_id: String,
        amount_cents: u64,
        refunded: bool,
    },
    /// The log and the provider name different captures (or amounts) for the order.
    CaptureMismatch { log: String, provider: String },
    /// A charge on a closed order that the provider has not refunded.
    ChargeNotRefunded {
        payment_id: String,
        amount_cents: u64,
    },
    /// The provider refunded the order's charge; the log does not show it.
    RefundNotInLog { payment_id: String },
    /// The log shows a refund the provider does not.
    RefundNotAtProvider { payment_id: String },
    /// A reservation under the order's reserve key the log does not show, on a closed order.
    ReservationNotInLog { reservation_id: String, held: bool },
    /// The log and the provider name different reservations for the order.
    ReservationMismatch { log: String, provider: String },
    /// Stock still held for a closed order.
    StockHeld { reservation_id: String },
    /// The provider released the order's stock; the log does not show it.
    ReleaseNotInLog { reservation_id: String },
    /// The log shows a release the provider does not.
    ReleaseNotAtProvider { reservation_id: String },
}

impl Difference {
    /// A stable name, for logs and reports.
    pub fn name(&self) -> &'static str {
        match self {
            Difference::UnknownOrder { .. } => "unknown-order",
            Difference::ForeignKey { .. } => "foreign-key",
            Difference::CaptureNotInLog { .. } => "capture-not-in-log",
            Difference::CaptureMismatch { .. } => "capture-mismatch",
            Difference::ChargeNotRefunded { .. } => "charge-not-refunded",
            Difference::RefundNotInLog { .. } => "refund-not-in-log",
            Difference::RefundNotAtProvider { .. } => "refund-not-at-provider",
            Difference::ReservationNotInLog { .. } => "reservation-not-in-log",
            Difference::ReservationMismatch { .. } => "reservation-mismatch",
            Difference::StockHeld { .. } => "stock-held",
            Difference::ReleaseNotInLog { .. } => "release-not-in-log",
            Difference::ReleaseNotAtProvider { .. } => "release-not-at-provider",
        }
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::UnknownOrder {
                captures,
                reservations,
            } => write!(
                f,
                "the log has no such order, the providers have {captures} capture(s) and {reservations} reservation(s) for it"
            ),
            Difference::ForeignKey { what, id, key } => {
                write!(
                    f,
                    "{what} {id} under key {key}, which the process never uses"
                )
            }
            Difference::CaptureNotInLog {
                payment_id,
                amount_cents,
                refunded,
            } => write!(
                f,
                "capture {payment_id} of {amount_cents} cents{} is not in the log of a closed order",
                if *refunded { " (refunded)" } else { "" }
            ),
            Difference::CaptureMismatch { log, provider } => {
                write!(f, "the log shows capture {log}, the provider {provider}")
            }
            Difference::ChargeNotRefunded {
                payment_id,
                amount_cents,
            } => write!(
                f,
                "capture {payment_id} of {amount_cents} cents on a closed order is not refunded"
            ),
            Difference::RefundNotInLog { payment_id } => {
                write!(
                    f,
                    "the provider refunded {payment_id}, the log does not show it"
                )
            }
            Difference::RefundNotAtProvider { payment_id } => {
                write!(
                    f,
                    "the log shows {payment_id} refunded, the provider does not"
                )
            }
            Difference::ReservationNotInLog {
                reservation_id,
                held,
            } => write!(
                f,
                "reservation {reservation_id}{} is not in the log of a closed order",
                if *held { " (held)" } else { " (released)" }
            ),
            Difference::ReservationMismatch { log, provider } => {
                write!(
                    f,
                    "the log shows reservation {log}, the provider {provider}"
                )
            }
            Difference::StockHeld { reservation_id } => {
                write!(
                    f,
                    "reservation {reservation_id} is still held for a closed order"
                )
            }
            Difference::ReleaseNotInLog { reservation_id } => write!(
                f,
                "the provider released {reservation_id}, the log does not show it"
            ),
            Difference::ReleaseNotAtProvider { reservation_id } => write!(
                f,
                "the log shows {reservation_id} released, the provider does not"
            ),
        }
    }
}

/// A difference, and whether running the order's process can repair it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub difference: Difference,
    pub repairable: bool,
}

/// The ledger entries that name one order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderLedger {
    pub captures: Vec<CaptureEntry>,
    pub reservations: Vec<ReservationEntry>,
}

/// The differences between one order's state in the log and the providers' entries
/// for it. In-flight steps of open orders are not differences: an open order's
/// forward step may have taken effect at the provider before its result is recorded.
/// Only what contradicts the log is (another id, a refund or release nobody
/// recorded). On a closed (cancelled or rejected) order everything must be given back.
pub fn compare(
    tenant: HouseholdId,
    order_id: OrderId,
    state: &OrderState,
    ledger: &OrderLedger,
) -> Vec<Found> {
    let Some(order) = state.order.as_ref() else {
        if ledger.captures.is_empty() && ledger.reservations.is_empty() {
            return Vec::new();
        }
        return vec![Found {
            difference: Difference::UnknownOrder {
                captures: ledger.captures.len(),
                reservations: ledger.reservations.len(),
            },
            repairable: false,
        }];
    };
    let closed = matches!(order.status, OrderStatus::Cancelled | OrderStatus::Rejected);
    let capture_key = capture_key(tenant, order_id).to_string();
    let reserve_key = reserve_key(tenant, order_id).to_string();
    let mut found = Vec::new();
    let mut push = |difference, repairable| {
        found.push(Found {
            difference,
            repairable,
        });
    };

    // Reservations first: the process gives stock back before money, and looks for
    // an unrecorded capture only once a reservation is known.
    let reserved_at_provider = ledger.reservations.iter().any(|e| e.key == reserve_key);
    for entry in &ledger.reservations {
        if entry.key != reserve_key {
            if entry.held {
                push(
                    Difference::ForeignKey {
                        what: "reservation",
                        id: entry.reservation_id.clone(),
                        key: entry.key.clone(),
                    },
                    false,
                );
            }
            continue;
        }
        match &order.reservation_id {
            Some(logged) if *logged != entry.reservation_id => push(
                Difference::ReservationMismatch {
                    log: logged.clone(),
                    provider: entry.reservation_id.clone(),
                },
                false,
            ),
            Some(_) => match (closed, entry.held, order.stock_released) {
                // The release step's key replays or makes the release, then records it.
                (true, true, false) => push(
                    Difference::StockHeld {
                        reservation_id: entry.reservation_id.clone(),
                    },
                    true,
                ),
                (true, false, false) => push(
                    Difference::ReleaseNotInLog {
                        reservation_id: entry.reservation_id.clone(),
                    },
                    true,
                ),
                (false, false, _) => push(
                    Difference::ReleaseNotInLog {
                        reservation_id: entry.reservation_id.clone(),
                    },
                    false,
                ),
                (_, true, true) => push(
                    Difference::ReleaseNotAtProvider {
                        reservation_id: entry.reservation_id.clone(),
                    },
                    false,
                ),
                _ => {}
            },
            // An open order's reservation not yet recorded is a step in flight.
            None if !closed => {}
            // FindUnrecorded records it, then the release gives it back; one released
            // already cannot be released again by the process.
            None => push(
                Difference::ReservationNotInLog {
                    reservation_id: entry.reservation_id.clone(),
                    held: entry.held,
                },
                entry.held,
            ),
        }
    }

    for entry in &ledger.captures {
        if entry.key != capture_key {
            if !entry.refunded {
                push(
                    Difference::ForeignKey {
                        what: "capture",
                        id: entry.payment_id.clone(),
                        key: entry.key.clone(),
                    },
                    false,
                );
            }
            continue;
        }
        match &order.payment_id {
            Some(logged)
                if *logged != entry.payment_id || order.captured_cents != entry.amount_cents =>
            {
                push(
                    Difference::CaptureMismatch {
                        log: format!("{logged} of {} cents", order.captured_cents),
                        provider: format!("{} of {} cents", entry.payment_id, entry.amount_cents),
                    },
                    false,
                )
            }
            Some(_) => match (closed, entry.refunded, order.refunded) {
                (true, false, false) => push(
                    Difference::ChargeNotRefunded {
                        payment_id: entry.payment_id.clone(),
                        amount_cents: entry.amount_cents,
                    },
                    true,
                ),
                // The refund step's key replays the provider's refund and records it.
                (true, true, false) => push(
                    Difference::RefundNotInLog {
                        payment_id: entry.payment_id.clone(),
                    },
                    true,
                ),
                (false, true, _) => push(
                    Difference::RefundNotInLog {
                        payment_id: entry.payment_id.clone(),
                    },
                    false,
                ),
                (_, false, true) => push(
                    Difference::RefundNotAtProvider {
                        payment_id: entry.payment_id.clone(),
                    },
                    false,
                ),
                _ => {}
            },
            None if !closed => {}
            // FindUnrecorded looks for a capture once a reservation is known (in the
            // log, or found under the reserve key first); a capture refunded already
            // cannot be refunded again by the process.
            None => push(
                Difference::CaptureNotInLog {
                    payment_id: entry.payment_id.clone(),
                    amount_cents: entry.amount_cents,
                    refunded: entry.refunded,
                },
                !entry.refunded && (order.reservation_id.is_some() || reserved_at_provider),
            ),
        }
    }
    found
}

/// Whether an order whose last event was committed at `last_event` has had `settle`
/// to finish what its process was doing. Differences of an order that has not settled
/// may be a compensation in progress, so they are not reported yet.
pub fn settled(last_event: Option<Timestamp>, now: Timestamp, settle: chrono::Duration) -> bool {
    last_event.is_none_or(|at| now - at >= settle)
}

/// One difference of one order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub tenant: HouseholdId,
    pub order: OrderId,
    /// The order's status in the log (`None`: the log does not know it).
    pub status: Option<OrderStatus>,
    pub difference: Difference,
    pub repairable: bool,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "household {} order {} ({}): {}: {}",
            self.tenant,
            self.order,
            self.status.map_or("unknown", OrderStatus::as_str),
            self.difference.name(),
            self.difference,
        )
    }
}

/// What one reconciliation found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Ledger entries read (captures and reservations).
    pub entries: usize,
    /// Orders named by the ledgers and compared.
    pub orders: usize,
    /// Orders not compared because their last event is younger than the settle time.
    pub unsettled: usize,
    /// Every difference found by the first comparison.
    pub found: Vec<Finding>,
    /// Found differences the second comparison no longer sees (after a repair).
    pub repaired: Vec<Finding>,
    /// Differences still there at the end (all of `found` when not repairing).
    pub remaining: Vec<Finding>,
    /// Orders whose process was run to repair them, and how it ended when not `Done`.
    pub repair_notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reading the {ledger} ledger: {error}")]
    Ledger {
        ledger: &'static str,
        error: ProviderError,
    },
    #[error("loading order {order} of household {tenant}: {error}")]
    Load {
        tenant: HouseholdId,
        order: OrderId,
        error: ServiceError,
    },
}

/// Compares the providers' ledgers with the log and repairs what the process can.
#[derive(Clone, Debug)]
pub struct Reconciler {
    fulfilment: Fulfilment,
    /// How long an order's last event must be old before its differences count.
    pub settle: chrono::Duration,
    /// Entries asked for per ledger page.
    pub page: usize,
}

type Orders = BTreeMap<(HouseholdId, OrderId), OrderLedger>;

impl Reconciler {
    pub fn new(fulfilment: Fulfilment, settle: chrono::Duration) -> Self {
        Self {
            fulfilment,
            settle,
            page: MAX_LEDGER_PAGE,
        }
    }

    /// Reads both ledgers whole, grouped by the order they name.
    async fn read_ledgers(&self) -> Result<(Orders, usize), ReconcileError> {
        let mut orders = Orders::new();
        let mut entries = 0;
        let mut after = 0;
        loop {
            let page = self
                .fulfilment
                .payments()
                .capture_ledger(after, self.page)
                .await
                .map_err(|error| ReconcileError::Ledger {
                    ledger: "capture",
                    error,
                })?;
            let Some(last) = page.last() else { break };
            after = last.position;
            entries += page.len();
            for entry in page {
                let at = (entry.tenant, entry.order_id);
                orders.entry(at).or_default().captures.push(entry);
            }
        }
        after = 0;
        loop {
            let page = self
                .fulfilment
                .inventory()
                .reservation_ledger(after, self.page)
                .await
                .map_err(|error| ReconcileError::Ledger {
                    ledger: "reservation",
                    error,
                })?;
            let Some(last) = page.last() else { break };
            after = last.position;
            entries += page.len();
            for entry in page {
                let at = (entry.tenant, entry.order_id);
                orders.entry(at).or_default().reservations.push(entry);
            }
        }
        Ok((orders, entries))
    }

    /// Loads one order within its household and compares it with its entries.
    async fn check(
        &self,
        tenant: HouseholdId,
        order: OrderId,
        ledger: &OrderLedger,
        now: Option<Timestamp>,
    ) -> Result<Option<Vec<Finding>>, ReconcileError> {
        let (state, last_event) = self
            .fulfilment
            .service()
            .load_with_time::<crate::order::Orders>(tenant, order)
            .await
            .map_err(|error| ReconcileError::Load {
                tenant,
                order,
                error,
            })?;
        if let Some(now) = now
            && !settled(last_event, now, self.settle)
        {
            return Ok(None);
        }
        let status = state.order.as_ref().map(|o| o.status);
        Ok(Some(
            compare(tenant, order, &state, ledger)
                .into_iter()
                .map(|f| Finding {
                    tenant,
                    order,
                    status,
                    difference: f.difference,
                    repairable: f.repairable,
                })
                .collect(),
        ))
    }

    /// One reconciliation: compare; with `repair`, run the process of every order
    /// with a repairable difference, then compare those orders again.
    pub async fn run(&self, repair: bool) -> Result<Report, ReconcileError> {
        let now = self.fulfilment.service().clock().now();
        let (orders, entries) = self.read_ledgers().await?;
        let mut report = Report {
            entries,
            ..Report::default()
        };
        for ((tenant, order), ledger) in &orders {
            match self.check(*tenant, *order, ledger, Some(now)).await? {
                None => report.unsettled += 1,
                Some(findings) => {
                    report.orders += 1;
                    report.found.extend(findings);
                }
            }
        }
        if !repair {
            report.remaining = report.found.clone();
            return Ok(report);
        }
        let to_repair: BTreeSet<(HouseholdId, OrderId)> = report
            .found
            .iter()
            .filter(|f| f.repairable)
            .map(|f| (f.tenant, f.order))
            .collect();
        for &(tenant, order) in &to_repair {
            match self.fulfilment.run(tenant, order).await {
                Ok(Advanced::Done) => {}
                Ok(other) => report
                    .repair_notes
                    .push(format!("household {tenant} order {order}: {other:?}")),
                Err(e) => report.repair_notes.push(format!(
                    "household {tenant} order {order}: the process failed: {e}{}",
                    if FulfilmentError::is_retryable(&e) {
                        " (retryable)"
                    } else {
                        ""
                    }
                )),
            }
        }
        // Compare again: the orders with differences, against fresh ledgers.
        let touched: BTreeSet<(HouseholdId, OrderId)> =
            report.found.iter().map(|f| (f.tenant, f.order)).collect();
        let (orders, _) = self.read_ledgers().await?;
        let mut remaining = Vec::new();
        for &(tenant, order) in &touched {
            let ledger = orders.get(&(tenant, order)).cloned().unwrap_or_default();
            if let Some(findings) = self.check(tenant, order, &ledger, None).await? {
                remaining.extend(findings);
            }
        }
        report.repaired = report
            .found
            .iter()
            .filter(|f| {
                !remaining.iter().any(|r| {
                    (r.tenant, r.order, &r.difference) == (f.tenant, f.order, &f.difference)
                })
            })
            .cloned()
            .collect();
        report.remaining = remaining;
        Ok(report)
    }
}
