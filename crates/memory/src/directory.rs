use async_trait::async_trait;
use hearth_core::ports::{
    CredentialHash, Directory, DirectoryError, Enrolled, Household, Invite, Member, Role, Session,
};
use hearth_core::{HouseholdId, MemberId, SessionId, Timestamp};
use std::collections::HashMap;
use std::sync::Mutex;

/// Households, members and invites in memory.
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    households: HashMap<HouseholdId, Household>,
    members: HashMap<(HouseholdId, MemberId), Member>,
    /// (household, code) -> (invite, used)
    invites: HashMap<(HouseholdId, String), (Invite, bool)>,
    /// Removed members: their ids are never admitted again.
    removed: HashMap<(HouseholdId, MemberId), Member>,
    sessions: HashMap<(HouseholdId, SessionId), SessionRecord>,
    /// Every credential hash a session had: (household, hash) -> (session, current).
    credentials: HashMap<(HouseholdId, String), (SessionId, bool)>,
}

#[derive(Debug)]
struct SessionRecord {
    session: Session,
    ended: bool,
}

impl Inner {
    fn owners(&self, household: HouseholdId) -> usize {
        self.members
            .values()
            .filter(|m| m.household == household && m.role == Role::Owner)
            .count()
    }

    fn end_sessions_of(&mut self, household: HouseholdId, member: MemberId) {
        for record in self.sessions.values_mut() {
            if record.session.household == household && record.session.member == member {
                record.ended = true;
            }
        }
    }
}

impl MemoryDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Directory for MemoryDirectory {
    async fn create_household(
        &self,
        household: Household,
        owner: Member,
    ) -> Result<(), DirectoryError> {
        let mut inner = self.lock();
        if inner.households.contains_key(&household.id) {
            return Err(DirectoryError::HouseholdExists(household.id));
        }
        inner.members.insert((household.id, owner.id), owner);
        inner.households.insert(household.id, household);
        Ok(())
    }

    async fn household(&self, id: HouseholdId) -> Result<Option<Household>, DirectoryError> {
        Ok(self.lock().households.get(&id).cloned())
    }

    async fn set_time_zone(
        &self,
        id: HouseholdId,
        time_zone: &str,
    ) -> Result<Household, DirectoryError> {
        let mut inner = self.lock();
        let household = inner
            .households
            .get_mut(&id)
            .ok_or(DirectoryError::NoSuchHousehold(id))?;
        time_zone.clone_into(&mut household.time_zone);
        Ok(household.clone())
    }

    async fn member(
        &self,
        household: HouseholdId,
        member: MemberId,
    ) -> Result<Option<Member>, DirectoryError> {
        Ok(self.lock().members.get(&(household, member)).cloned())
    }

    async fn members(&self, household: HouseholdId) -> Result<Vec<Member>, DirectoryError> {
        let inner = self.lock();
        let mut members: Vec<Member> = inner
            .members
            .values()
            .filter(|m| m.household == household)
            .cloned()
            .collect();
        members.sort_by_key(|m| (m.joined_at, m.id));
        Ok(members)
    }

    async fn create_invite(&self, invite: Invite) -> Result<(), DirectoryError> {
        let mut inner = self.lock();
        if !inner.households.contains_key(&invite.household) {
            return Err(DirectoryError::NoSuchHousehold(invite.household));
        }
        inner
            .invites
            .insert((invite.household, invite.code.clone()), (invite, false));
        Ok(())
    }

    async fn accept_invite(
        &self,
        household: HouseholdId,
        code: &str,
        member: Member,
        now: Timestamp,
    ) -> Result<Member, DirectoryError> {
        let mut inner = self.lock();
        let key = (household, code.to_owned());
        let (invite, used) = inner
            .invites
            .get(&key)
            .ok_or(DirectoryError::InviteNotFound)?;
        if *used {
            return Err(DirectoryError::InviteUsed);
        }
        if invite.expires_at <= now {
            return Err(DirectoryError::InviteExpired);
        }
        if inner.members.contains_key(&(household, member.id))
            || inner.removed.contains_key(&(household, member.id))
        {
            return Err(DirectoryError::MemberExists(member.id));
        }
        let member = Member {
            household,
            ..member
        };
        if let Some(entry) = inner.invites.get_mut(&key) {
            entry.1 = true;
        }
        inner.members.insert((household, member.id), member.clone());
        Ok(member)
    }

    async fn invite(
        &self,
        household: HouseholdId,
        code: &str,
        now: Timestamp,
    ) -> Result<Invite, DirectoryError> {
        let inner = self.lock();
        let (invite, used) = inner
            .invites
            .get(&(household, code.to_owned()))
            .ok_or(DirectoryError::InviteNotFound)?;
        if *used {
            return Err(DirectoryError::InviteUsed);
        }
        if invite.expires_at <= now {
            return Err(DirectoryError::InviteExpired);
        }
        Ok(invite.clone())
    }

    async fn remove_member(
        &self,
        household: HouseholdId,
        member: MemberId,
        _now: Timestamp,
    ) -> Result<Member, DirectoryError> {
        let mut inner = self.lock();
        let found = inner
            .members
            .get(&(household, member))
            .cloned()
            .ok_or(DirectoryError::NoSuchMember(member))?;
        if found.role == Role::Owner && inner.owners(household) == 1 {
            return Err(DirectoryError::LastOwner);
        }
        inner.members.remove(&(household, member));
        inner.removed.insert((household, member), found.clone());
        inner.end_sessions_of(household, member);
        Ok(found)
    }

    async fn set_role(
        &self,
        household: HouseholdId,
        member: MemberId,
        role: Role,
    ) -> Result<Member, DirectoryError> {
        let mut inner = self.lock();
        let found = inner
            .members
            .get(&(household, member))
            .cloned()
            .ok_or(DirectoryError::NoSuchMember(member))?;
        if found.role == Role::Owner && role != Role::Owner && inner.owners(household) == 1 {
            return Err(DirectoryError::LastOwner);
        }
        let changed = Member { role, ..found };
        inner.members.insert((household, member), changed.clone());
        Ok(changed)
    }

    async fn create_session(
        &self,
        session: Session,
        credential: &CredentialHash,
    ) -> Result<(), DirectoryError> {
        let mut inner = self.lock();
        let household = session.household;
        if !inner.members.contains_key(&(household, session.member)) {
            return Err(DirectoryError::NoSuchMember(session.member));
        }
        inner
            .credentials
            .insert((household, credential.0.clone()), (session.id, true));
        inner.sessions.insert(
            (household, session.id),
            SessionRecord {
                session,
                ended: false,
            },
        );
        Ok(())
    }

    async fn refresh_session(
        &self,
        household: HouseholdId,
        presented: &CredentialHash,
        next: &CredentialHash,
        now: Timestamp,
    ) -> Result<Session, DirectoryError> {
        let mut inner = self.lock();
        let Some(&(id, current)) = inner.credentials.get(&(household, presented.0.clone())) else {
            return Err(DirectoryError::SessionNotFound);
        };
        let record = inner
            .sessions
            .get_mut(&(household, id))
            .ok_or(DirectoryError::SessionNotFound)?;
        if record.ended {
            return Err(DirectoryError::SessionEnded);
        }
        if !current {
            record.ended = true;
            return Err(DirectoryError::CredentialReused(id));
        }
        record.session.last_used_at = now;
        let session = record.session.clone();
        inner
            .credentials
            .insert((household, presented.0.clone()), (id, false));
        inner
            .credentials
            .insert((household, next.0.clone()), (id, true));
        Ok(session)
    }

    async fn session(
        &self,
        household: HouseholdId,
        id: SessionId,
    ) -> Result<Option<Session>, DirectoryError> {
        let inner = self.lock();
        Ok(inner
            .sessions
            .get(&(household, id))
            .filter(|r| !r.ended && inner.members.contains_key(&(household, r.session.member)))
            .map(|r| r.session.clone()))
    }

    async fn roster(&self, household: HouseholdId) -> Result<Vec<Enrolled>, DirectoryError> {
        let members = self.members(household).await?;
        let inner = self.lock();
        let mut live: HashMap<MemberId, Vec<SessionId>> = HashMap::new();
        for r in inner.sessions.values() {
            if !r.ended && r.session.household == household {
                live.entry(r.session.member).or_default().push(r.session.id);
            }
        }
        Ok(members
            .into_iter()
            .map(|member| Enrolled {
                sessions: live.remove(&member.id).unwrap_or_default(),
                member,
            })
            .collect())
    }

    async fn sessions(
        &self,
        household: HouseholdId,
        member: MemberId,
    ) -> Result<Vec<Session>, DirectoryError> {
        let inner = self.lock();
        if !inner.members.contains_key(&(household, member)) {
            return Ok(Vec::new());
        }
        let mut sessions: Vec<Session> = inner
            .sessions
            .values()
            .filter(|r| !r.ended && r.session.household == household && r.session.member == member)
            .map(|r| r.session.clone())
            .collect();
        sessions.sort_by_key(|s| (s.created_at, s.id));
        Ok(sessions)
    }

    async fn end_session(
        &self,
        household: HouseholdId,
        member: MemberId,
        id: SessionId,
        _now: Timestamp,
    ) -> Result<(), DirectoryError> {
        let mut inner = self.lock();
        match inner.sessions.get_mut(&(household, id)) {
            Some(record) if record.session.member == member && !record.ended => {
                record.ended = true;
                Ok(())
            }
            _ => Err(DirectoryError::SessionNotFound),
        }
    }
}
