//! [`PgDirectory`]: the Directory port on PostgreSQL (households, members, invites).

use crate::sql::{BEGIN, BEGIN_READ, client, describe, in_tenant, unavailable};
use async_trait::async_trait;
use deadpool_postgres::Pool;
use hearth_core::ports::{Directory, DirectoryError, Household, Invite, Member, Role, StoreError};
use hearth_core::{HouseholdId, MemberId, Timestamp};
use tokio_postgres::Row;

/// Registers the household (its counter row may already exist, created by a first
/// append, with a NULL name) and its owner, in one statement: if the household is
/// already registered the statement aborts (HR003) and nothing is written.
const CREATE_HOUSEHOLD: &str = "
WITH h AS (
    INSERT INTO households AS h (tenant_id, name, created_at) VALUES ($1, $2, $3)
    ON CONFLICT (tenant_id) DO UPDATE SET name = EXCLUDED.name, created_at = EXCLUDED.created_at
    WHERE h.name IS NULL
    RETURNING 1
), m AS (
    INSERT INTO members (tenant_id, id, name, role, joined_at)
    SELECT $1, $4, $5, $6, $7 FROM h
    RETURNING 1
)
SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM h)
            THEN hearth_abort('HR003', 'household already exists')
            ELSE (SELECT count(*) FROM m) END";

const SELECT_HOUSEHOLD: &str =
    "SELECT name, created_at FROM households WHERE tenant_id = $1 AND name IS NOT NULL";
const SELECT_MEMBER: &str =
    "SELECT id, name, role, joined_at FROM members WHERE tenant_id = $1 AND id = $2";
const SELECT_MEMBERS: &str =
    "SELECT id, name, role, joined_at FROM members WHERE tenant_id = $1 ORDER BY joined_at, id";

/// Same semantics as the in-memory directory: a code written again replaces the invite.
const CREATE_INVITE: &str = "
INSERT INTO invites AS i (tenant_id, code, created_by, created_at, expires_at)
SELECT $1, $2, $3, $4, $5 FROM households WHERE tenant_id = $1 AND name IS NOT NULL
ON CONFLICT (tenant_id, code) DO UPDATE
SET created_by = EXCLUDED.created_by, created_at = EXCLUDED.created_at,
    expires_at = EXCLUDED.expires_at, used_by = NULL, used_at = NULL
RETURNING 1";

/// Uses the invite and adds the member in one statement. The UPDATE's row lock makes
/// concurrent accepts of one code queue; each re-checks `used_at IS NULL` after the
/// wait, so one invite admits one member.
const ACCEPT_INVITE: &str = "
WITH inv AS (
    UPDATE invites SET used_by = $3, used_at = $4
    WHERE tenant_id = $1 AND code = $2 AND used_at IS NULL AND expires_at > $4
    RETURNING 1
), m AS (
    INSERT INTO members (tenant_id, id, name, role, joined_at)
    SELECT $1, $3, $5, $6, $7 FROM inv
    RETURNING 1
)
SELECT (SELECT count(*) FROM inv) AS used, (SELECT count(*) FROM m) AS added";

const SELECT_INVITE: &str =
    "SELECT used_at IS NOT NULL, expires_at FROM invites WHERE tenant_id = $1 AND code = $2";

/// The directory on PostgreSQL, connected as the application role.
pub struct PgDirectory {
    app: Pool,
}

impl std::fmt::Debug for PgDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDirectory")
            .field("app", &self.app.status())
            .finish()
    }
}

impl PgDirectory {
    pub fn new(app: Pool) -> Self {
        Self { app }
    }
}

fn store(e: tokio_postgres::Error) -> DirectoryError {
    DirectoryError::Store(unavailable(e))
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Member => "member",
    }
}

fn member_from_row(household: HouseholdId, row: &Row) -> Result<Member, DirectoryError> {
    let corrupt =
        |e: tokio_postgres::Error| DirectoryError::Store(StoreError::Corrupt(describe(&e)));
    let role: String = row.try_get(2).map_err(corrupt)?;
    let role = match role.as_str() {
        "owner" => Role::Owner,
        "member" => Role::Member,
        other => {
            return Err(DirectoryError::Store(StoreError::Corrupt(format!(
                "unknown member role {other}"
            ))));
        }
    };
    Ok(Member {
        household,
        id: MemberId(row.try_get(0).map_err(corrupt)?),
        name: row.try_get(1).map_err(corrupt)?,
        role,
        joined_at: row.try_get(3).map_err(corrupt)?,
    })
}

fn member_exists(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|db| db.code().code() == "23505" && db.constraint() == Some("members_pkey"))
}

#[async_trait]
impl Directory for PgDirectory {
    async fn create_household(
        &self,
        household: Household,
        owner: Member,
    ) -> Result<(), DirectoryError> {
        let client = client(&self.app).await?;
        let stmt = client
            .prepare_cached(CREATE_HOUSEHOLD)
            .await
            .map_err(store)?;
        let result = in_tenant(
            &client,
            BEGIN,
            household.id,
            client.query_one(
                &stmt,
                &[
                    &household.id.0,
                    &household.name,
                    &household.created_at,
                    &owner.id.0,
                    &owner.name,
                    &role_name(owner.role),
                    &owner.joined_at,
                ],
            ),
        )
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_db_error()
                    .is_some_and(|db| db.code().code() == "HR003") =>
            {
                Err(DirectoryError::HouseholdExists(household.id))
            }
            Err(e) if member_exists(&e) => Err(DirectoryError::MemberExists(owner.id)),
            Err(e) => Err(store(e)),
        }
    }

    async fn household(&self, id: HouseholdId) -> Result<Option<Household>, DirectoryError> {
        let client = client(&self.app).await?;
        let stmt = client
            .prepare_cached(SELECT_HOUSEHOLD)
            .await
            .map_err(store)?;
        let row = in_tenant(&client, BEGIN_READ, id, client.query_opt(&stmt, &[&id.0]))
            .await
            .map_err(store)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Household {
            id,
            name: row.try_get(0).map_err(store)?,
            created_at: row.try_get(1).map_err(store)?,
        }))
    }

    async fn member(
        &self,
        household: HouseholdId,
        member: MemberId,
    ) -> Result<Option<Member>, DirectoryError> {
        let client = client(&self.app).await?;
        let stmt = client.prepare_cached(SELECT_MEMBER).await.map_err(store)?;
        let row = in_tenant(
            &client,
            BEGIN_READ,
            household,
            client.query_opt(&stmt, &[&household.0, &member.0]),
        )
        .await
        .map_err(store)?;
        row.map(|row| member_from_row(household, &row)).transpose()
    }

    async fn members(&self, household: HouseholdId) -> Result<Vec<Member>, DirectoryError> {
        let client = client(&self.app).await?;
        let stmt = client.prepare_cached(SELECT_MEMBERS).await.map_err(store)?;
        let rows = in_tenant(
            &client,
            BEGIN_READ,
            household,
            client.query(&stmt, &[&household.0]),
        )
        .await
        .map_err(store)?;
        rows.iter()
            .map(|row| member_from_row(household, row))
            .collect()
    }

    async fn create_invite(&self, invite: Invite) -> Result<(), DirectoryError> {
        let client = client(&self.app).await?;
        let stmt = client.prepare_cached(CREATE_INVITE).await.map_err(store)?;
        let rows = in_tenant(
            &client,
            BEGIN,
            invite.household,
            client.query(
                &stmt,
                &[
                    &invite.household.0,
                    &invite.code,
                    &invite.created_by.0,
                    &invite.created_at,
                    &invite.expires_at,
                ],
            ),
        )
        .await
        .map_err(store)?;
        if rows.is_empty() {
            return Err(DirectoryError::NoSuchHousehold(invite.household));
        }
        Ok(())
    }

    async fn accept_invite(
        &self,
        household: HouseholdId,
        code: &str,
        member: Member,
        now: Timestamp,
    ) -> Result<Member, DirectoryError> {
        let client = client(&self.app).await?;
        let stmt = client.prepare_cached(ACCEPT_INVITE).await.map_err(store)?;
        let role = role_name(member.role);
        let result = in_tenant(
            &client,
            BEGIN,
            household,
            client.query_one(
                &stmt,
                &[
                    &household.0,
                    &code,
                    &member.id.0,
                    &now,
                    &member.name,
                    &role,
                    &member.joined_at,
                ],
            ),
        )
        .await;
        let row = match result {
            Ok(row) => row,
            Err(e) if member_exists(&e) => return Err(DirectoryError::MemberExists(member.id)),
            Err(e) => return Err(store(e)),
        };
        let used: i64 = row.try_get(0).map_err(store)?;
        if used == 1 {
            return Ok(Member {
                household,
                ..member
            });
        }
        // Refused: say why.
        let stmt = client.prepare_cached(SELECT_INVITE).await.map_err(store)?;
        let row = in_tenant(
            &client,
            BEGIN_READ,
            household,
            client.query_opt(&stmt, &[&household.0, &code]),
        )
        .await
        .map_err(store)?;
        match row {
            None => Err(DirectoryError::InviteNotFound),
            Some(row) => {
                let used: bool = row.try_get(0).map_err(store)?;
                if used {
                    Err(DirectoryError::InviteUsed)
                } else {
                    Err(DirectoryError::InviteExpired)
                }
            }
        }
    }
}
