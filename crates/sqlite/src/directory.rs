//! The Directory port on SQLite: households, members and invites, in the same file
//! as the event store.

use crate::db::Sharing;
use crate::db::{Db, Fail, from_micros, micros};
use async_trait::async_trait;
use hearth_core::ports::{Directory, DirectoryError, Household, Invite, Member, Role, StoreError};
use hearth_core::{HouseholdId, MemberId, Timestamp};
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
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

fn member_from(household: HouseholdId, (id, name, r, joined): MemberRow) -> Result<Member, Fail> {
    Ok(Member {
        household,
        id: MemberId(id),
        name,
        role: role(&r)?,
        joined_at: from_micros(joined)?,
    })
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
                    "INSERT INTO households (tenant_id, name, created_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (tenant_id) DO UPDATE
                     SET name = excluded.name, created_at = excluded.created_at
                     WHERE households.name IS NULL",
                    params![id.0, household.name, micros(household.created_at)],
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
        let found = self
            .db
            .read(move |conn| {
                let row = conn
                    .query_row(
                        "SELECT name, created_at FROM households
                         WHERE tenant_id = ?1 AND name IS NOT NULL",
                        params![id.0],
                        |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?)),
                    )
                    .optional()?;
                row.map(|(name, created)| {
                    let created = created
                        .ok_or_else(|| Fail::corrupt("named household without created_at"))?;
                    Ok(Household {
                        id,
                        name,
                        created_at: from_micros(created)?,
                    })
                })
                .transpose()
            })
            .await?;
        Ok(found)
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
                         WHERE tenant_id = ?1 AND member_id = ?2",
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
                     WHERE tenant_id = ?1 ORDER BY joined_at, member_id",
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
}
