//! The Directory port on SQLite: households, members and invites, in the same file
//! as the event store.

use crate::db::Sharing;
use crate::db::{Db, Fail, from_micros, micros};
use async_trait::async_trait;
use hearth_core::ports::{
    CredentialHash, Directory, DirectoryError, Enrolled, Household, Invite, Member, Role, Session,
    StoreError,
};
use hearth_core::{HouseholdId, MemberId, SessionId, Timestamp};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::path::Path;
use std::sync::Arc;
use uuid::Uuid;

/// Who belongs to which household. Every statement is scoped by `tenant_id`.
#[derive(Debug, Clone)]
pub struct SqliteDirectory {
    db: Arc<Db>,
}

impl SqliteDirectory {
    /// Opens (or creates) the file at `path` on its own connections. To share the
    /// event store's connections, use [`crate::SqliteEventStore::directory`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Ok(Self::from_db(Db::open(path.as_ref(), Sharing::Shared)?))
    }

    pub(crate) fn from_db(db: Arc<Db>) -> Self {
        Self { db }
    }
}

fn role_str(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Member => "member",
    }
}

fn role(s: &str) -> Result<Role, Fail> {
    match s {
        "owner" => Ok(Role::Owner),
        "member" => Ok(Role::Member),
        other => Err(Fail::corrupt(format!("unknown role {other:?}"))),
    }
}

fn household_named(tx: &Transaction<'_>, id: HouseholdId) -> Result<bool, Fail> {
    Ok(tx
        .query_row(
            "SELECT 1 FROM households WHERE tenant_id = ?1 AND name IS NOT NULL",
            params![id.0],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn insert_member(tx: &Transaction<'_>, household: HouseholdId, m: &Member) -> Result<(), Fail> {
    tx.execute(
        "INSERT INTO members (tenant_id, member_id, name, role, joined_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            household.0,
            m.id.0,
            m.name,
            role_str(m.role),
            micros(m.joined_at)
        ],
    )?;
    Ok(())
}

type MemberRow = (Uuid, String, String, i64);

/// A current member, read in a write transaction.
fn current_member(
    tx: &Transaction<'_>,
    household: HouseholdId,
    member: MemberId,
) -> Result<Option<Member>, Fail> {
    let row: Option<MemberRow> = tx
        .query_row(
            "SELECT member_id, name, role, joined_at FROM members
             WHERE tenant_id = ?1 AND member_id = ?2 AND removed_at IS NULL",
            params![household.0, member.0],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    row.map(|row| member_from(household, row)).transpose()
}

fn owners(tx: &Transaction<'_>, household: HouseholdId) -> Result<i64, Fail> {
    Ok(tx.query_row(
        "SELECT count(*) FROM members
         WHERE tenant_id = ?1 AND role = 'owner' AND removed_at IS NULL",
        params![household.0],
        |r| r.get(0),
    )?)
}

type SessionRow = (Uuid, Uuid, String, i64, i64);

const SESSION_COLUMNS: &str = "s.session_id, s.member_id, s.device, s.created_at, s.last_used_at";

fn session_from(
    household: HouseholdId,
    (id, member, device, created, used): SessionRow,
) -> Result<Session, Fail> {
    Ok(Session {
        household,
        id: SessionId(id),
        member: MemberId(member),
        device,
        created_at: from_micros(created)?,
        last_used_at: from_micros(used)?,
    })
}

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn member_from(household: HouseholdId, (id, name, r, joined): MemberRow) -> Result<Member, Fail> {
    Ok(Member {
        household,
        id: MemberId(id),
        name,
        role: role(&r)?,
        joined_at: from_micros(joined)?,
    })
}

/// The named household `id`, if there is one.
fn select_household(conn: &Connection, id: HouseholdId) -> Result<Option<Household>, Fail> {
    let row = conn
        .query_row(
            "SELECT name, created_at, time_zone FROM households
             WHERE tenant_id = ?1 AND name IS NOT NULL",
            params![id.0],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )
        .optional()?;
    row.map(|(name, created, time_zone)| {
        let created = created.ok_or_else(|| Fail::corrupt("named household without created_at"))?;
        Ok(Household {
            id,
            name,
            time_zone,
            created_at: from_micros(created)?,
        })
    })
    .transpose()
}

#[async_trait]
impl Directory for SqliteDirectory {
    async fn create_household(
        &self,
        household: Household,
        owner: Member,
    ) -> Result<(), DirectoryError> {
        self.db
            .write(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let id = household.id;
                // The row may exist already, unnamed, if the event store saw the
                // household first; a named row is a household that exists.
                let claimed = tx.execute(
                    "INSERT INTO households (tenant_id, name, created_at, time_zone)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tenant_id) DO UPDATE
                     SET name = excluded.name, created_at = excluded.created_at,
                         time_zone = excluded.time_zone
                     WHERE households.name IS NULL",
                    params![
                        id.0,
                        household.name,
                        micros(household.created_at),
                        household.time_zone
                    ],
                )?;
                if claimed == 0 {
                    return Err(DirectoryError::HouseholdExists(id).into());
                }
                insert_member(&tx, id, &owner)?;
                tx.commit()?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn household(&self, id: HouseholdId) -> Result<Option<Household>, DirectoryError> {
        let found = self.db.read(move |conn| select_household(conn, id)).await?;
        Ok(found)
    }

    async fn set_time_zone(
        &self,
        id: HouseholdId,
        time_zone: &str,
    ) -> Result<Household, DirectoryError> {
        let time_zone = time_zone.to_owned();
        let changed = self
            .db
            .write(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let changed = tx.execute(
                    "UPDATE households SET time_zone = ?2
                     WHERE tenant_id = ?1 AND name IS NOT NULL",
                    params![id.0, time_zone],
                )?;
                if changed == 0 {
                    return Err(DirectoryError::NoSuchHousehold(id).into());
                }
                let household = select_household(&tx, id)?
                    .ok_or_else(|| Fail::corrupt("a household changed, then not found"))?;
                tx.commit()?;
                Ok(household)
            })
            .await?;
        Ok(changed)
    }

    async fn member(
        &self,
        household: HouseholdId,
        member: MemberId,
    ) -> Result<Option<Member>, DirectoryError> {
        let found = self
            .db
            .read(move |conn| {
                let row: Option<MemberRow> = conn
                    .query_row(
                        "SELECT member_id, name, role, joined_at FROM members
                         WHERE tenant_id = ?1 AND member_id = ?2 AND removed_at IS NULL",
                        params![household.0, member.0],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .optional()?;
                row.map(|row| member_from(household, row)).transpose()
            })
            .await?;
        Ok(found)
    }

    async fn members(&self, household: HouseholdId) -> Result<Vec<Member>, DirectoryError> {
        let members = self
            .db
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT member_id, name, role, joined_at FROM members
                     WHERE tenant_id = ?1 AND removed_at IS NULL ORDER BY joined_at, member_id",
                )?;
                let rows = stmt
                    .query_map(params![household.0], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })?
                    .collect::<Result<Vec<MemberRow>, _>>()?;
                rows.into_iter()
                    .map(|row| member_from(household, row))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(members)
    }

    async fn roster(&self, household: HouseholdId) -> Result<Vec<Enrolled>, DirectoryError> {
        let roster = self
            .db
            .read(move |conn| {
                // One read transaction: the members and their sessions as of one moment.
                let tx = conn.transaction()?;
                let rows = tx
                    .prepare_cached(
                        "SELECT member_id, name, role, joined_at FROM members
                         WHERE tenant_id = ?1 AND removed_at IS NULL
                         ORDER BY joined_at, member_id",
                    )?
                    .query_map(params![household.0], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })?
                    .collect::<Result<Vec<MemberRow>, _>>()?;
                let pairs = tx
                    .prepare_cached(
                        "SELECT member_id, session_id FROM sessions
                         WHERE tenant_id = ?1 AND ended_at IS NULL",
                    )?
                    .query_map(params![household.0], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<Vec<(uuid::Uuid, uuid::Uuid)>, _>>()?;
                let mut live: std::collections::HashMap<uuid::Uuid, Vec<SessionId>> =
                    std::collections::HashMap::new();
                for (member, session) in pairs {
                    live.entry(member).or_default().push(SessionId(session));
                }
                tx.finish()?;
                rows.into_iter()
                    .map(|row| {
                        let member = member_from(household, row)?;
                        Ok(Enrolled {
                            sessions: live.remove(&member.id.0).unwrap_or_default(),
                            member,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(roster)
    }

    /// An invite whose code already exists in the household is left as it was (a
    /// used code is never revived).
    async fn create_invite(&self, invite: Invite) -> Result<(), DirectoryError> {
        self.db
            .write(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if !household_named(&tx, invite.household)? {
                    return Err(DirectoryError::NoSuchHousehold(invite.household).into());
                }
                tx.execute(
                    "INSERT INTO invites (tenant_id, code, created_by, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (tenant_id, code) DO NOTHING",
                    params![
                        invite.household.0,
                        invite.code,
                        invite.created_by.0,
                        micros(invite.created_at),
                        micros(invite.expires_at)
                    ],
                )?;
                tx.commit()?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn accept_invite(
        &self,
        household: HouseholdId,
        code: &str,
        member: Member,
        now: Timestamp,
    ) -> Result<Member, DirectoryError> {
        let code = code.to_owned();
        let joined = self
            .db
            .write(move |conn| {
                // One writer and an immediate transaction: the check and the use of
                // the invite cannot interleave with another accept.
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let invite: Option<(i64, Option<Uuid>)> = tx
                    .query_row(
                        "SELECT expires_at, used_by FROM invites
                         WHERE tenant_id = ?1 AND code = ?2",
                        params![household.0, code],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let Some((expires_at, used_by)) = invite else {
                    return Err(DirectoryError::InviteNotFound.into());
                };
                if used_by.is_some() {
                    return Err(DirectoryError::InviteUsed.into());
                }
                if expires_at <= micros(now) {
                    return Err(DirectoryError::InviteExpired.into());
                }
                let exists = tx
                    .query_row(
                        "SELECT 1 FROM members WHERE tenant_id = ?1 AND member_id = ?2",
                        params![household.0, member.id.0],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                if exists {
                    return Err(DirectoryError::MemberExists(member.id).into());
                }
                let member = Member {
                    household,
                    ..member
                };
                insert_member(&tx, household, &member)?;
                tx.execute(
                    "UPDATE invites SET used_by = ?3, used_at = ?4
                     WHERE tenant_id = ?1 AND code = ?2",
                    params![household.0, code, member.id.0, micros(now)],
                )?;
                tx.commit()?;
                Ok(member)
            })
            .await?;
        Ok(joined)
    }

    async fn invite(
        &self,
        household: HouseholdId,
        code: &str,
        now: Timestamp,
    ) -> Result<Invite, DirectoryError> {
        let code = code.to_owned();
        self.db
            .read(move |conn| {
                let row: Option<(Uuid, i64, i64, Option<Uuid>)> = conn
                    .query_row(
                        "SELECT created_by, created_at, expires_at, used_by FROM invites
                         WHERE tenant_id = ?1 AND code = ?2",
                        params![household.0, code],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .optional()?;
                let Some((by, created, expires, used_by)) = row else {
                    return Ok(Err(DirectoryError::InviteNotFound));
                };
                if used_by.is_some() {
                    return Ok(Err(DirectoryError::InviteUsed));
                }
                if expires <= micros(now) {
                    return Ok(Err(DirectoryError::InviteExpired));
                }
                Ok(Ok(Invite {
                    household,
                    code,
                    created_by: MemberId(by),
                    created_at: from_micros(created)?,
                    expires_at: from_micros(expires)?,
                }))
            })
            .await?
    }

    async fn remove_member(
        &self,
        household: HouseholdId,
        member: MemberId,
        now: Timestamp,
    ) -> Result<Member, DirectoryError> {
        let removed = self
            .db
            .write(move |conn| {
                // Immediate: the owner count and the removal cannot interleave with
                // another role change or removal.
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let Some(found) = current_member(&tx, household, member)? else {
                    return Err(DirectoryError::NoSuchMember(member).into());
                };
                if found.role == Role::Owner && owners(&tx, household)? <= 1 {
                    return Err(DirectoryError::LastOwner.into());
                }
                tx.execute(
                    "UPDATE members SET removed_at = ?3 WHERE tenant_id = ?1 AND member_id = ?2",
                    params![household.0, member.0, micros(now)],
                )?;
                tx.execute(
                    "UPDATE sessions SET ended_at = ?3
                     WHERE tenant_id = ?1 AND member_id = ?2 AND ended_at IS NULL",
                    params![household.0, member.0, micros(now)],
                )?;
                tx.commit()?;
                Ok(found)
            })
            .await?;
        Ok(removed)
    }

    async fn set_role(
        &self,
        household: HouseholdId,
        member: MemberId,
        role: Role,
    ) -> Result<Member, DirectoryError> {
        let changed = self
            .db
            .write(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let Some(found) = current_member(&tx, household, member)? else {
                    return Err(DirectoryError::NoSuchMember(member).into());
                };
                if found.role == Role::Owner && role != Role::Owner && owners(&tx, household)? <= 1
                {
                    return Err(DirectoryError::LastOwner.into());
                }
                tx.execute(
                    "UPDATE members SET role = ?3 WHERE tenant_id = ?1 AND member_id = ?2",
                    params![household.0, member.0, role_str(role)],
                )?;
                tx.commit()?;
                Ok(Member { role, ..found })
            })
            .await?;
        Ok(changed)
    }

    async fn create_session(
        &self,
        session: Session,
        credential: &CredentialHash,
    ) -> Result<(), DirectoryError> {
        let credential = credential.0.clone();
        self.db
            .write(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let household = session.household;
                if current_member(&tx, household, session.member)?.is_none() {
                    return Err(DirectoryError::NoSuchMember(session.member).into());
                }
                tx.execute(
                    "INSERT INTO sessions
                     (tenant_id, session_id, member_id, device, created_at, last_used_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        household.0,
                        session.id.0,
                        session.member.0,
                        session.device,
                        micros(session.created_at),
                        micros(session.last_used_at)
                    ],
                )?;
                tx.execute(
                    "INSERT INTO session_credentials (tenant_id, hash, session_id, issued_at)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        household.0,
                        credential,
                        session.id.0,
                        micros(session.created_at)
                    ],
                )?;
                tx.commit()?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn refresh_session(
        &self,
        household: HouseholdId,
        presented: &CredentialHash,
        next: &CredentialHash,
        now: Timestamp,
    ) -> Result<Session, DirectoryError> {
        let (presented, next) = (presented.0.clone(), next.0.clone());
        self.db
            .write(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let found: Option<(Uuid, Option<i64>, Option<i64>, bool)> = tx
                    .query_row(
                        "SELECT c.session_id, c.rotated_at, s.ended_at,
                                m.removed_at IS NULL
                         FROM session_credentials c
                         JOIN sessions s
                           ON s.tenant_id = c.tenant_id AND s.session_id = c.session_id
                         JOIN members m
                           ON m.tenant_id = s.tenant_id AND m.member_id = s.member_id
                         WHERE c.tenant_id = ?1 AND c.hash = ?2",
                        params![household.0, presented],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .optional()?;
                let Some((id, rotated, ended, member_current)) = found else {
                    return Ok(Err(DirectoryError::SessionNotFound));
                };
                if ended.is_some() || !member_current {
                    return Ok(Err(DirectoryError::SessionEnded));
                }
                if rotated.is_some() {
                    // A reuse: the session ends, and that is committed before answering.
                    tx.execute(
                        "UPDATE sessions SET ended_at = ?3
                         WHERE tenant_id = ?1 AND session_id = ?2",
                        params![household.0, id, micros(now)],
                    )?;
                    tx.commit()?;
                    return Ok(Err(DirectoryError::CredentialReused(SessionId(id))));
                }
                tx.execute(
                    "UPDATE session_credentials SET rotated_at = ?3
                     WHERE tenant_id = ?1 AND hash = ?2",
                    params![household.0, presented, micros(now)],
                )?;
                tx.execute(
                    "INSERT INTO session_credentials (tenant_id, hash, session_id, issued_at)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![household.0, next, id, micros(now)],
                )?;
                tx.execute(
                    "UPDATE sessions SET last_used_at = ?3 WHERE tenant_id = ?1 AND session_id = ?2",
                    params![household.0, id, micros(now)],
                )?;
                let row = tx.query_row(
                    &format!(
                        "SELECT {SESSION_COLUMNS} FROM sessions s
                         WHERE s.tenant_id = ?1 AND s.session_id = ?2"
                    ),
                    params![household.0, id],
                    session_row,
                )?;
                let session = session_from(household, row)?;
                tx.commit()?;
                Ok(Ok(session))
            })
            .await?
    }

    async fn session(
        &self,
        household: HouseholdId,
        id: SessionId,
    ) -> Result<Option<Session>, DirectoryError> {
        let found = self
            .db
            .read(move |conn| {
                let row = conn
                    .query_row(
                        &format!(
                            "SELECT {SESSION_COLUMNS} FROM sessions s
                             JOIN members m
                               ON m.tenant_id = s.tenant_id AND m.member_id = s.member_id
                             WHERE s.tenant_id = ?1 AND s.session_id = ?2
                               AND s.ended_at IS NULL AND m.removed_at IS NULL"
                        ),
                        params![household.0, id.0],
                        session_row,
                    )
                    .optional()?;
                row.map(|row| session_from(household, row)).transpose()
            })
            .await?;
        Ok(found)
    }

    async fn sessions(
        &self,
        household: HouseholdId,
        member: MemberId,
    ) -> Result<Vec<Session>, DirectoryError> {
        let found = self
            .db
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions s
                     JOIN members m
                       ON m.tenant_id = s.tenant_id AND m.member_id = s.member_id
                     WHERE s.tenant_id = ?1 AND s.member_id = ?2
                       AND s.ended_at IS NULL AND m.removed_at IS NULL
                     ORDER BY s.created_at, s.session_id"
                ))?;
                let rows = stmt
                    .query_map(params![household.0, member.0], session_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                rows.into_iter()
                    .map(|row| session_from(household, row))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(found)
    }

    async fn end_session(
        &self,
        household: HouseholdId,
        member: MemberId,
        id: SessionId,
        now: Timestamp,
    ) -> Result<(), DirectoryError> {
        let ended = self
            .db
            .write(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let n = tx.execute(
                    "UPDATE sessions SET ended_at = ?4
                     WHERE tenant_id = ?1 AND session_id = ?2 AND member_id = ?3
                       AND ended_at IS NULL",
                    params![household.0, id.0, member.0, micros(now)],
                )?;
                tx.commit()?;
                Ok(n)
            })
            .await?;
        if ended == 0 {
            return Err(DirectoryError::SessionNotFound);
        }
        Ok(())
    }
}
