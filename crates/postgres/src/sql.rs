//! Helpers shared by the adapters: the tenant transaction, error translation, and
//! the `{type, payload}` split of tagged enums into columns.

use deadpool_postgres::{ClientWrapper, Pool};
use hearth_core::HouseholdId;
use hearth_core::ports::StoreError;
use serde_json::Value;
use std::future::Future;

/// Sets the household for the current transaction only (`is_local = true`): after
/// COMMIT the setting reads `''`, which the policies turn into NULL (no rows).
pub(crate) const SET_TENANT: &str = "SELECT set_config('app.tenant_id', $1, true)";

pub(crate) const BEGIN: &str = "BEGIN";
pub(crate) const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// A database error as text, with its SQLSTATE: what the ports carry.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            // tokio-postgres says only the kind ("error performing TLS handshake");
            // the cause (which certificate check failed, say) is its source.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

pub(crate) fn unavailable(e: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(describe(&e))
}

pub(crate) async fn client(pool: &Pool) -> Result<deadpool_postgres::Object, StoreError> {
    pool.get()
        .await
        .map_err(|e| StoreError::Unavailable(format!("no connection: {e}")))
}

/// Runs `body` in one transaction of household `tenant`, pipelined: BEGIN,
/// `set_config`, the body's statements and COMMIT are all sent before the first
/// answer comes back (one round trip). `body` must only use statements that are
/// already prepared, so that it sends its first query on its first poll; if any
/// statement fails, the server turns the COMMIT into a rollback.
pub(crate) async fn in_tenant<T, F>(
    client: &ClientWrapper,
    begin: &str,
    tenant: HouseholdId,
    body: F,
) -> Result<T, tokio_postgres::Error>
where
    F: Future<Output = Result<T, tokio_postgres::Error>>,
{
    let set = client.prepare_cached(SET_TENANT).await?;
    let tenant = tenant.to_string();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&tenant];
    let (began, set, result, committed) = futures::join!(
        client.batch_execute(begin),
        client.execute(&set, &params),
        body,
        client.batch_execute("COMMIT"),
    );
    began?;
    set?;
    let value = result?;
    committed?;
    Ok(value)
}

/// `{"type": t, "payload": p}` (the wire shape of commands and events) into its columns.
pub(crate) fn split_tagged(value: Value) -> Result<(String, Value), String> {
    let Value::Object(mut map) = value else {
        return Err("expected a tagged object".into());
    };
    let kind = match map.remove("type") {
        Some(Value::String(s)) => s,
        _ => return Err("tagged object without a type".into()),
    };
    Ok((kind, map.remove("payload").unwrap_or(Value::Null)))
}

/// The inverse of [`split_tagged`].
pub(crate) fn join_tagged(kind: String, payload: Value) -> Value {
    let mut map = serde_json::Map::new();
    map.insert("type".into(), Value::String(kind));
    if !payload.is_null() {
        map.insert("payload".into(), payload);
    }
    Value::Object(map)
}

pub(crate) fn to_i32(v: u32, what: &str) -> Result<i32, StoreError> {
    i32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v} is out of range")))
}

pub(crate) fn to_u32(v: i32, what: &str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("stored {what} {v} is negative")))
}

pub(crate) fn to_u64(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("stored {what} {v} is negative")))
}
