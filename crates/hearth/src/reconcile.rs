//! `hearth reconcile`, and the periodic reconciliation `serve` (embedded executor) and
//! `worker` run: the providers' ledgers against the log (hearth_core::reconcile).

use crate::stores::StoreArgs;
use anyhow::Context as _;
use hearth_axum::Metrics;
use hearth_core::Service;
use hearth_core::fulfilment::Fulfilment;
use hearth_core::ports::{Inventory, Payments};
use hearth_core::reconcile::{Reconciler, Report};
use hearth_memory::SystemClock;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// The store holding the log (the same flags as `hearth serve`).
    #[command(flatten)]
    stores: StoreArgs,
    /// Base URL of the payment and inventory provider whose ledgers are compared.
    #[arg(long, env = "HEARTH_PROVIDERS_URL")]
    providers_url: String,
    /// Timeout of one provider call, in milliseconds.
    #[arg(long, env = "HEARTH_PROVIDERS_TIMEOUT_MS", default_value_t = 5_000)]
    providers_timeout_ms: u64,
    /// Repair what the fulfilment process can (record and give back), then compare again.
    #[arg(long)]
    repair: bool,
    /// Orders whose last event is younger than this are skipped: their process may
    /// still be compensating.
    #[arg(long, default_value_t = 120)]
    settle_secs: u64,
}

/// Settings of the periodic reconciliation, shared by `serve` and `worker`.
#[derive(Debug, Clone, clap::Args)]
pub struct JobArgs {
    /// Milliseconds between reconciliations of the providers' ledgers with the log
    /// (with repair); 0 runs none.
    #[arg(
        long = "reconcile-interval-ms",
        env = "HEARTH_RECONCILE_INTERVAL_MS",
        default_value_t = 60_000
    )]
    pub interval_ms: u64,
    /// Orders whose last event is younger than this many seconds are left to their
    /// process for now.
    #[arg(
        long = "reconcile-settle-secs",
        env = "HEARTH_RECONCILE_SETTLE_SECS",
        default_value_t = 120
    )]
    pub settle_secs: u64,
}

fn settle(secs: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1_000_000))
}

pub async fn run(args: ReconcileArgs) -> anyhow::Result<()> {
    // Shared: refused ("another process has it open") while an embedded `hearth
    // serve` has the SQLite file; that serve runs the reconciler itself.
    let stores = args.stores.open(hearth_sqlite::Sharing::Shared).await?;
    let timeout = Duration::from_millis(args.providers_timeout_ms.max(1));
    let url = &args.providers_url;
    let payments: Arc<dyn Payments> = Arc::new(hearth_sandbox::HttpPayments::new(url, timeout)?);
    let inventory: Arc<dyn Inventory> = Arc::new(hearth_sandbox::HttpInventory::new(url, timeout)?);
    let fulfilment = Fulfilment::new(
        Service::new(stores.store, Arc::new(SystemClock)),
        payments,
        inventory,
    );
    let reconciler = Reconciler::new(fulfilment, settle(args.settle_secs));
    let report = reconciler
        .run(args.repair)
        .await
        .with_context(|| format!("reconciling the ledgers of {url} with the log"))?;
    print!("{}", render(&report, args.repair));
    if report.remaining.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} difference(s) between the providers and the log remain",
            report.remaining.len()
        )
    }
}

/// The readable report: one line per difference, then a summary.
fn render(report: &Report, repair: bool) -> String {
    let mut out = String::new();
    for finding in &report.found {
        let fate = if report.repaired.contains(finding) {
            "repaired"
        } else if !repair && finding.repairable {
            "repairable (run with --repair)"
        } else if finding.repairable {
            "not repaired"
        } else {
            "not repairable by the process: needs an operator"
        };
        out.push_str(&format!("{finding} [{fate}]\n"));
    }
    for finding in &report.remaining {
        if !report.found.contains(finding) {
            out.push_str(&format!("{finding} [after the repair]\n"));
        }
    }
    for note in &report.repair_notes {
        out.push_str(&format!("repair: {note}\n"));
    }
    out.push_str(&format!(
        "{} ledger entries, {} orders compared, {} not settled yet; {} difference(s) found, {} repaired, {} remaining\n",
        report.entries,
        report.orders,
        report.unsettled,
        report.found.len(),
        report.repaired.len(),
        report.remaining.len()
    ));
    out
}

/// Runs a reconciliation with repair every `interval`, counting into `metrics` when
/// given. A difference is logged (WARN) when first seen, not again while it remains.
pub fn spawn_job(
    fulfilment: Fulfilment,
    args: &JobArgs,
    metrics: Option<Arc<Metrics>>,
) -> Option<tokio::task::JoinHandle<()>> {
    if args.interval_ms == 0 {
        tracing::info!("no periodic reconciliation (--reconcile-interval-ms 0)");
        return None;
    }
    let interval = Duration::from_millis(args.interval_ms);
    let reconciler = Reconciler::new(fulfilment, settle(args.settle_secs));
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut known: HashSet<String> = HashSet::new();
        loop {
            ticks.tick().await;
            let report = match reconciler.run(true).await {
                Ok(report) => report,
                Err(e) => {
                    if let Some(m) = &metrics {
                        m.reconcile_failed_runs.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::warn!(error = %e, "reconciliation failed; trying again at the next interval");
                    continue;
                }
            };
            // Found: each difference once, not again at every run while it remains.
            let new = report
                .found
                .iter()
                .filter(|f| !known.contains(&f.to_string()))
                .count();
            if let Some(m) = &metrics {
                m.reconcile_runs.fetch_add(1, Ordering::Relaxed);
                m.reconcile_found.fetch_add(new as u64, Ordering::Relaxed);
                m.reconcile_repaired
                    .fetch_add(report.repaired.len() as u64, Ordering::Relaxed);
                m.reconcile_remaining.store(
                    i64::try_from(report.remaining.len()).unwrap_or(i64::MAX),
                    Ordering::Relaxed,
                );
            }
            for finding in &report.repaired {
                tracing::info!(%finding, "reconciliation repaired a difference");
            }
            let remaining: HashSet<String> =
                report.remaining.iter().map(ToString::to_string).collect();
            for finding in remaining.difference(&known) {
                tracing::warn!(%finding, "the providers and the log differ");
            }
            for note in &report.repair_notes {
                tracing::warn!(%note, "reconciliation repair did not finish");
            }
            known = remaining;
        }
    }))
}
