//! The Outbox port on PostgreSQL: the jobs `hearth_append` recorded with their events.
//!
//! The scan reads every household's pending jobs, so it runs as the relay role (no
//! row-level security binds it, and it may only `SELECT`); marking a job runs as the
//! application role inside the job's household, so the relay role never writes.

use crate::sql::{BEGIN, client, describe, in_tenant, unavailable};
use async_trait::async_trait;
use deadpool_postgres::Pool;
use hearth_core::ports::{Job, JobKind, Outbox, StoreError};
use hearth_core::{AggregateId, CommandId, DomainId, EventId, HouseholdId};
use tokio_postgres::Row;

const PENDING_JOBS: &str = "
SELECT tenant_id, id, domain, aggregate_id, kind, command_id, created_at, correlation_id,
       traceparent
FROM jobs
WHERE status = 'pending'
ORDER BY created_at, tenant_id, id
LIMIT $1";

const MARK_STARTED: &str = "
UPDATE jobs SET status = 'started', started_at = now()
WHERE tenant_id = $1 AND id = $2 AND status = 'pending'";

/// The outbox on PostgreSQL: `relay` connects as the relay role (the scan), `app` as
/// the application role (marking a job started).
pub struct PgOutbox {
    relay: Pool,
    app: Pool,
}

impl std::fmt::Debug for PgOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOutbox")
            .field("relay", &self.relay.status())
            .field("app", &self.app.status())
            .finish()
    }
}

impl PgOutbox {
    pub fn new(relay: Pool, app: Pool) -> Self {
        Self { relay, app }
    }
}

#[async_trait]
impl Outbox for PgOutbox {
    async fn pending_jobs(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = client(&self.relay).await?;
        let stmt = client
            .prepare_cached(PENDING_JOBS)
            .await
            .map_err(unavailable)?;
        let rows = client.query(&stmt, &[&limit]).await.map_err(unavailable)?;
        rows.iter().map(job_from_row).collect()
    }

    async fn mark_job_started(&self, tenant: HouseholdId, job: EventId) -> Result<(), StoreError> {
        let client = client(&self.app).await?;
        let stmt = client
            .prepare_cached(MARK_STARTED)
            .await
            .map_err(unavailable)?;
        in_tenant(
            &client,
            BEGIN,
            tenant,
            client.execute(&stmt, &[&tenant.0, &job.0]),
        )
        .await
        .map_err(unavailable)?;
        Ok(())
    }
}

fn job_from_row(row: &Row) -> Result<Job, StoreError> {
    let get = |e: tokio_postgres::Error| StoreError::Corrupt(describe(&e));
    let domain: String = row.try_get(2).map_err(get)?;
    let domain = DomainId::from_name(&domain)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown domain {domain}")))?;
    let kind: String = row.try_get(4).map_err(get)?;
    let kind = JobKind::parse(&kind)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown job kind {kind}")))?;
    let command_id = CommandId(row.try_get(5).map_err(get)?);
    // A job recorded before correlation ids were kept (migration 6) has none.
    let correlation: Option<uuid::Uuid> = row.try_get(7).map_err(get)?;
    Ok(Job {
        tenant: HouseholdId(row.try_get(0).map_err(get)?),
        id: EventId(row.try_get(1).map_err(get)?),
        aggregate: AggregateId::new(domain, row.try_get::<_, uuid::Uuid>(3).map_err(get)?),
        kind,
        command_id,
        correlation_id: correlation.unwrap_or(command_id.0),
        traceparent: row.try_get(8).map_err(get)?,
        created_at: row.try_get(6).map_err(get)?,
    })
}
