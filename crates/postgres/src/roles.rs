//! [`check_role`]: a process refuses to run as a role that row-level security does
//! not bind. PostgreSQL lets a superuser and a BYPASSRLS role past every policy
//! without a word, and the owner of a table (or a member of its owner) can switch
//! its policies off; so an application connected as one of them would serve every
//! household's rows to whoever asks.

use crate::PgError;
use tokio_postgres::Client;

/// The tables (and the migrations ledger) `hearth migrate` creates.
pub const HEARTH_TABLES: &[&str] = &[
    "households",
    "events",
    "snapshots",
    "commands",
    "jobs",
    "members",
    "invites",
    "hearth_migrations",
];

/// Why a role is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsafeRole {
    /// `rolsuper`: no policy applies to a superuser.
    Superuser,
    /// `rolbypassrls`: no policy applies to it.
    BypassRls,
    /// It owns `table` (or may act as its owner, being a member of the owning role),
    /// so it can disable or rewrite the table's policies.
    Owner { table: String, owner: String },
}

impl std::fmt::Display for UnsafeRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Superuser => write!(
                f,
                "it is a superuser, and row-level security never applies to a superuser"
            ),
            Self::BypassRls => write!(
                f,
                "it has BYPASSRLS, so row-level security does not apply to it"
            ),
            Self::Owner { table, owner } => write!(
                f,
                "it owns table {table} (owner {owner}, or a role it is a member of), \
                 so it can switch that table's row-level security off"
            ),
        }
    }
}

/// Checks that the connected role (`current_user`) is one row-level security binds:
/// not a superuser, not BYPASSRLS, and neither owner of a Hearth table nor a member
/// of the role that owns one. Run it before serving, for every role the process
/// connects as.
pub async fn check_role(client: &Client) -> Result<(), PgError> {
    let db = |e: tokio_postgres::Error| PgError::Db(crate::sql::describe(&e));
    let row = client
        .query_one(
            "SELECT r.rolname::text, r.rolsuper, r.rolbypassrls,
                    (SELECT c.relname::text || chr(31) || pg_get_userbyid(c.relowner)::text
                       FROM pg_class c
                      WHERE c.relkind IN ('r', 'p')
                        AND c.relname = ANY($1)
                        AND pg_has_role(r.oid, c.relowner, 'MEMBER')
                      ORDER BY c.relname LIMIT 1)
               FROM pg_roles r
              WHERE r.rolname = current_user",
            &[&HEARTH_TABLES],
        )
        .await
        .map_err(db)?;
    let role: String = row.try_get(0).map_err(db)?;
    let superuser: bool = row.try_get(1).map_err(db)?;
    let bypass: bool = row.try_get(2).map_err(db)?;
    let owned: Option<String> = row.try_get(3).map_err(db)?;
    let reason = if superuser {
        UnsafeRole::Superuser
    } else if bypass {
        UnsafeRole::BypassRls
    } else if let Some(owned) = owned {
        let (table, owner) = owned.split_once('\u{1f}').unwrap_or((&owned, ""));
        UnsafeRole::Owner {
            table: table.to_owned(),
            owner: owner.to_owned(),
        }
    } else {
        return Ok(());
    };
    Err(PgError::UnsafeRole { role, reason })
}
