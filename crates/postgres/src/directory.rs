//! [`PgDirectory`]: the Directory port on PostgreSQL (households, members, invites).

use crate::sql::{BEGIN, BEGIN_READ, SET_TENANT, client, describe, in_tenant, unavailable};
use async_trait::async_trait;
use deadpool_postgres::Pool;
use hearth_core::ports::{
    CredentialHash, Directory, DirectoryError, Enrolled, Household, Invite, Member, Role, Session,
    StoreError,
};
use hearth_core::{HouseholdId, MemberId, SessionId, Timestamp};
use tokio_postgres::Row;

/// Registers the household (its counter row may already exist, created by a first
/// append, with a NULL name) and its owner, in one statement: if the household is
/// already registered the statement aborts (HR003) and nothing is written.
const CREATE_HOUSEHOLD: &str = "
WITH h AS (
    INSERT INTO households AS h (tenant_id, name, created_at, time_zone) VALUES ($1, $2, $3, $8)
    ON CONFLICT (tenant_id) DO UPDATE
    SET name = EXCLUDED.name, created_at = EXCLUDED.created_at, time_zone = EXCLUDED.time_zone
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

const SELECT_HOUSEHOLD: &str = "SELECT name, created_at, time_zone FROM households
     WHERE tenant_id = $1 AND name IS NOT NULL";
const SET_TIME_ZONE: &str = "UPDATE households SET time_zone = $2
     WHERE tenant_id = $1 AND name IS NOT NULL
     RETURNING name, created_at, time_zone";
const SELECT_MEMBER: &str = "SELECT id, name, role, joined_at FROM members
     WHERE tenant_id = $1 AND id = $2 AND removed_at IS NULL";
const SELECT_MEMBERS: &str = "SELECT id, name, role, joined_at FROM members
     WHERE tenant_id = $1 AND removed_at IS NULL ORDER BY joined_at, id";

/// Each current member with the ids of their sessions still going, in one statement.
const SELECT_ROSTER: &str = "SELECT m.id, m.name, m.role, m.joined_at,
            coalesce(array_agg(s.id) FILTER (WHERE s.id IS NOT NULL), '{}') AS sessions
     FROM members m
     LEFT JOIN sessions s
       ON s.tenant_id = m.tenant_id AND s.member_id = m.id AND s.ended_at IS NULL
     WHERE m.tenant_id = $1 AND m.removed_at IS NULL
     GROUP BY m.tenant_id, m.id ORDER BY m.joined_at, m.id";

/// Locks the household's owners (in one order, so two changes cannot deadlock): a
/// removal or demotion then counts owners no concurrent change can take away.
const LOCK_OWNERS: &str = "SELECT id FROM members
     WHERE tenant_id = $1 AND role = 'owner' AND removed_at IS NULL ORDER BY id FOR UPDATE";
const LOCK_MEMBER: &str = "SELECT id, name, role, joined_at FROM members
     WHERE tenant_id = $1 AND id = $2 AND removed_at IS NULL FOR UPDATE";
const REMOVE_MEMBER: &str =
    "UPDATE members SET removed_at = $3 WHERE tenant_id = $1 AND id = $2 AND removed_at IS NULL";
const END_SESSIONS_OF: &str = "UPDATE sessions SET ended_at = $3
     WHERE tenant_id = $1 AND member_id = $2 AND ended_at IS NULL";
const SET_ROLE: &str = "UPDATE members SET role = $3 WHERE tenant_id = $1 AND id = $2";

const INSERT_SESSION: &str = "INSERT INTO sessions
     (tenant_id, id, member_id, device, created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6)";
const INSERT_CREDENTIAL: &str = "INSERT INTO session_credentials (tenant_id, hash, session_id, issued_at) VALUES ($1, $2, $3, $4)";
/// The credential and its session, both locked: concurrent refreshes of one session
/// queue, and each sees what the one before it did.
const LOCK_CREDENTIAL: &str = "SELECT c.session_id, c.rotated_at IS NOT NULL,
        s.ended_at IS NOT NULL OR m.removed_at IS NOT NULL
     FROM session_credentials c
     JOIN sessions s ON s.tenant_id = c.tenant_id AND s.id = c.session_id
     JOIN members m ON m.tenant_id = s.tenant_id AND m.id = s.member_id
     WHERE c.tenant_id = $1 AND c.hash = $2
     FOR UPDATE OF c, s";
const ROTATE_CREDENTIAL: &str =
    "UPDATE session_credentials SET rotated_at = $3 WHERE tenant_id = $1 AND hash = $2";
const END_SESSION: &str = "UPDATE sessions SET ended_at = $3 WHERE tenant_id = $1 AND id = $2";
const TOUCH_SESSION: &str = "UPDATE sessions SET last_used_at = $3 WHERE tenant_id = $1 AND id = $2
     RETURNING id, member_id, device, created_at, last_used_at";
const SELECT_SESSION: &str = "SELECT s.id, s.member_id, s.device, s.created_at, s.last_used_at
     FROM sessions s JOIN members m ON m.tenant_id = s.tenant_id AND m.id = s.member_id
     WHERE s.tenant_id = $1 AND s.id = $2 AND s.ended_at IS NULL AND m.removed_at IS NULL";
const SELECT_SESSIONS: &str = "SELECT s.id, s.member_id, s.device, s.created_at, s.last_used_at
     FROM sessions s JOIN members m ON m.tenant_id = s.tenant_id AND m.id = s.member_id
     WHERE s.tenant_id = $1 AND s.member_id = $2 AND s.ended_at IS NULL
       AND m.removed_at IS NULL
     ORDER BY s.created_at, s.id";
const END_OWN_SESSION: &str = "UPDATE sessions SET ended_at = $4
     WHERE tenant_id = $1 AND id = $2 AND member_id = $3 AND ended_at IS NULL";

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

const READ_INVITE: &str = "SELECT created_by, created_at, expires_at, used_at IS NOT NULL
     FROM invites WHERE tenant_id = $1 AND code = $2";

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

/// A household from `name, created_at, time_zone`.
fn household_from_row(id: HouseholdId, row: &Row) -> Result<Household, DirectoryError> {
    Ok(Household {
        id,
        name: row.try_get(0).map_err(store)?,
        created_at: row.try_get(1).map_err(store)?,
        time_zone: row.try_get(2).map_err(store)?,
    })
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

fn session_from_row(household: HouseholdId, row: &Row) -> Result<Session, DirectoryError> {
    let corrupt =
        |e: tokio_postgres::Error| DirectoryError::Store(StoreError::Corrupt(describe(&e)));
    Ok(Session {
        household,
        id: SessionId(row.try_get(0).map_err(corrupt)?),
        member: MemberId(row.try_get(1).map_err(corrupt)?),
        device: row.try_get(2).map_err(corrupt)?,
        created_at: row.try_get(3).map_err(corrupt)?,
        last_used_at: row.try_get(4).map_err(corrupt)?,
    })
}

/// A transaction of `household` (READ COMMITTED; the setting is local to it), for the
/// changes that read, decide and write.
async fn begin(
    client: &mut deadpool_postgres::Object,
    household: HouseholdId,
) -> Result<deadpool_postgres::Transaction<'_>, DirectoryError> {
    let tx = client.transaction().await.map_err(store)?;
    tx.execute(SET_TENANT, &[&household.to_string()])
        .await
        .map_err(store)?;
    Ok(tx)
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
                    &household.time_zone,
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
        row.map(|row| household_from_row(id, &row)).transpose()
    }

    async fn set_time_zone(
        &self,
        id: HouseholdId,
        time_zone: &str,
    ) -> Result<Household, DirectoryError> {
        let client = client(&self.app).await?;
        let stmt = client.prepare_cached(SET_TIME_ZONE).await.map_err(store)?;
        let row = in_tenant(
            &client,
            BEGIN,
            id,
            client.query_opt(&stmt, &[&id.0, &time_zone]),
        )
        .await
        .map_err(store)?;
        let Some(row) = row else {
            return Err(DirectoryError::NoSuchHousehold(id));
        };
        household_from_row(id, &row)
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

    async fn roster(&self, household: HouseholdId) -> Result<Vec<Enrolled>, DirectoryError> {
        let client = client(&self.app).await?;
        let stmt = client.prepare_cached(SELECT_ROSTER).await.map_err(store)?;
        let rows = in_tenant(
            &client,
            BEGIN_READ,
            household,
            client.query(&stmt, &[&household.0]),
        )
        .await
        .map_err(store)?;
        rows.iter()
            .map(|row| {
                let sessions: Vec<uuid::Uuid> = row
                    .try_get(4)
                    .map_err(|e| DirectoryError::Store(StoreError::Corrupt(describe(&e))))?;
                Ok(Enrolled {
                    member: member_from_row(household, row)?,
                    sessions: sessions.into_iter().map(SessionId).collect(),
                })
            })
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

    async fn invite(
        &self,
        household: HouseholdId,
        code: &str,
        now: Timestamp,
    ) -> Result<Invite, DirectoryError> {
        let client = client(&self.app).await?;
        let stmt = client.prepare_cached(READ_INVITE).await.map_err(store)?;
        let row = in_tenant(
            &client,
            BEGIN_READ,
            household,
            client.query_opt(&stmt, &[&household.0, &code]),
        )
        .await
        .map_err(store)?
        .ok_or(DirectoryError::InviteNotFound)?;
        let used: bool = row.try_get(3).map_err(store)?;
        let expires_at: Timestamp = row.try_get(2).map_err(store)?;
        if used {
            return Err(DirectoryError::InviteUsed);
        }
        if expires_at <= now {
            return Err(DirectoryError::InviteExpired);
        }
        Ok(Invite {
            household,
            code: code.to_owned(),
            created_by: MemberId(row.try_get(0).map_err(store)?),
            created_at: row.try_get(1).map_err(store)?,
            expires_at,
        })
    }

    async fn remove_member(
        &self,
        household: HouseholdId,
        member: MemberId,
        now: Timestamp,
    ) -> Result<Member, DirectoryError> {
        let mut client = client(&self.app).await?;
        let tx = begin(&mut client, household).await?;
        let owners = tx
            .query(LOCK_OWNERS, &[&household.0])
            .await
            .map_err(store)?;
        let Some(row) = tx
            .query_opt(LOCK_MEMBER, &[&household.0, &member.0])
            .await
            .map_err(store)?
        else {
            return Err(DirectoryError::NoSuchMember(member));
        };
        let found = member_from_row(household, &row)?;
        if found.role == Role::Owner && owners.len() <= 1 {
            return Err(DirectoryError::LastOwner);
        }
        tx.execute(REMOVE_MEMBER, &[&household.0, &member.0, &now])
            .await
            .map_err(store)?;
        tx.execute(END_SESSIONS_OF, &[&household.0, &member.0, &now])
            .await
            .map_err(store)?;
        tx.commit().await.map_err(store)?;
        Ok(found)
    }

    async fn set_role(
        &self,
        household: HouseholdId,
        member: MemberId,
        role: Role,
    ) -> Result<Member, DirectoryError> {
        let mut client = client(&self.app).await?;
        let tx = begin(&mut client, household).await?;
        let owners = tx
            .query(LOCK_OWNERS, &[&household.0])
            .await
            .map_err(store)?;
        let Some(row) = tx
            .query_opt(LOCK_MEMBER, &[&household.0, &member.0])
            .await
            .map_err(store)?
        else {
            return Err(DirectoryError::NoSuchMember(member));
        };
        let found = member_from_row(household, &row)?;
        if found.role == Role::Owner && role != Role::Owner && owners.len() <= 1 {
            return Err(DirectoryError::LastOwner);
        }
        tx.execute(SET_ROLE, &[&household.0, &member.0, &role_name(role)])
            .await
            .map_err(store)?;
        tx.commit().await.map_err(store)?;
        Ok(Member { role, ..found })
    }

    async fn create_session(
        &self,
        session: Session,
        credential: &CredentialHash,
    ) -> Result<(), DirectoryError> {
        let household = session.household;
        let mut client = client(&self.app).await?;
        let tx = begin(&mut client, household).await?;
        // Locked, so a removal cannot slip in between the check and the insert.
        if tx
            .query_opt(LOCK_MEMBER, &[&household.0, &session.member.0])
            .await
            .map_err(store)?
            .is_none()
        {
            return Err(DirectoryError::NoSuchMember(session.member));
        }
        tx.execute(
            INSERT_SESSION,
            &[
                &household.0,
                &session.id.0,
                &session.member.0,
                &session.device,
                &session.created_at,
                &session.last_used_at,
            ],
        )
        .await
        .map_err(store)?;
        tx.execute(
            INSERT_CREDENTIAL,
            &[
                &household.0,
                &credential.0,
                &session.id.0,
                &session.created_at,
            ],
        )
        .await
        .map_err(store)?;
        tx.commit().await.map_err(store)?;
        Ok(())
    }

    async fn refresh_session(
        &self,
        household: HouseholdId,
        presented: &CredentialHash,
        next: &CredentialHash,
        now: Timestamp,
    ) -> Result<Session, DirectoryError> {
        let mut client = client(&self.app).await?;
        let tx = begin(&mut client, household).await?;
        let Some(row) = tx
            .query_opt(LOCK_CREDENTIAL, &[&household.0, &presented.0])
            .await
            .map_err(store)?
        else {
            return Err(DirectoryError::SessionNotFound);
        };
        let id: uuid::Uuid = row.try_get(0).map_err(store)?;
        let rotated: bool = row.try_get(1).map_err(store)?;
        let ended: bool = row.try_get(2).map_err(store)?;
        if ended {
            return Err(DirectoryError::SessionEnded);
        }
        if rotated {
            // A reuse: the session ends, committed before the answer.
            tx.execute(END_SESSION, &[&household.0, &id, &now])
                .await
                .map_err(store)?;
            tx.commit().await.map_err(store)?;
            return Err(DirectoryError::CredentialReused(SessionId(id)));
        }
        tx.execute(ROTATE_CREDENTIAL, &[&household.0, &presented.0, &now])
            .await
            .map_err(store)?;
        tx.execute(INSERT_CREDENTIAL, &[&household.0, &next.0, &id, &now])
            .await
            .map_err(store)?;
        let row = tx
            .query_one(TOUCH_SESSION, &[&household.0, &id, &now])
            .await
            .map_err(store)?;
        let session = session_from_row(household, &row)?;
        tx.commit().await.map_err(store)?;
        Ok(session)
    }

    async fn session(
        &self,
        household: HouseholdId,
        id: SessionId,
    ) -> Result<Option<Session>, DirectoryError> {
        let client = client(&self.app).await?;
        let stmt = client.prepare_cached(SELECT_SESSION).await.map_err(store)?;
        let row = in_tenant(
            &client,
            BEGIN_READ,
            household,
            client.query_opt(&stmt, &[&household.0, &id.0]),
        )
        .await
        .map_err(store)?;
        row.map(|row| session_from_row(household, &row)).transpose()
    }

    async fn sessions(
        &self,
        household: HouseholdId,
        member: MemberId,
    ) -> Result<Vec<Session>, DirectoryError> {
        let client = client(&self.app).await?;
        let stmt = client
            .prepare_cached(SELECT_SESSIONS)
            .await
            .map_err(store)?;
        let rows = in_tenant(
            &client,
            BEGIN_READ,
            household,
            client.query(&stmt, &[&household.0, &member.0]),
        )
        .await
        .map_err(store)?;
        rows.iter()
            .map(|row| session_from_row(household, row))
            .collect()
    }

    async fn end_session(
        &self,
        household: HouseholdId,
        member: MemberId,
        id: SessionId,
        now: Timestamp,
    ) -> Result<(), DirectoryError> {
        let client = client(&self.app).await?;
        let stmt = client
            .prepare_cached(END_OWN_SESSION)
            .await
            .map_err(store)?;
        let n = in_tenant(
            &client,
            BEGIN,
            household,
            client.execute(&stmt, &[&household.0, &id.0, &member.0, &now]),
        )
        .await
        .map_err(store)?;
        if n == 0 {
            return Err(DirectoryError::SessionNotFound);
        }
        Ok(())
    }
}
