use async_trait::async_trait;
use hearth_core::ports::{Directory, DirectoryError, Household, Invite, Member};
use hearth_core::{HouseholdId, MemberId, Timestamp};
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
        if inner.members.contains_key(&(household, member.id)) {
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
}
