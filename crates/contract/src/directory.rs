//! The Directory contract: households, members, single-use expiring invites.

use crate::fixtures::{household, member, now};
use chrono::TimeDelta;
use hearth_core::ports::{Directory, DirectoryError, Household, Invite, Member, Role};
use hearth_core::{HouseholdId, MemberId};
use std::sync::Arc;

#[macro_export]
macro_rules! directory_contract {
    ($make:expr) => {
        $crate::directory_contract!(@cases $make;
            created_household_has_its_owner,
            household_id_is_unique,
            invite_admits_one_member_once,
            expired_invite_is_refused,
            invite_of_another_household_is_not_found,
            concurrent_accepts_admit_one,
            members_of_one_household_only,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let directory: std::sync::Arc<dyn hearth_core::ports::Directory> = ($make)().await;
                $crate::directory::$case(directory).await;
            }
        )*
    };
}

fn person(household: HouseholdId, id: MemberId, role: Role) -> Member {
    Member {
        household,
        id,
        name: format!("member {id}"),
        role,
        joined_at: now(),
    }
}

async fn new_household(d: &Arc<dyn Directory>) -> (HouseholdId, Member) {
    let id = household();
    let owner = person(id, member(), Role::Owner);
    d.create_household(
        Household {
            id,
            name: "The Test House".into(),
            created_at: now(),
        },
        owner.clone(),
    )
    .await
    .unwrap();
    (id, owner)
}

fn invite(household: HouseholdId, by: MemberId, code: &str, ttl: TimeDelta) -> Invite {
    Invite {
        household,
        code: code.into(),
        created_by: by,
        created_at: now(),
        expires_at: now() + ttl,
    }
}

pub async fn created_household_has_its_owner(d: Arc<dyn Directory>) {
    let (id, owner) = new_household(&d).await;
    assert_eq!(
        d.household(id).await.unwrap().map(|h| h.name),
        Some("The Test House".into())
    );
    assert_eq!(d.member(id, owner.id).await.unwrap(), Some(owner.clone()));
    assert_eq!(d.members(id).await.unwrap(), vec![owner]);
    assert_eq!(d.household(household()).await.unwrap(), None);
}

pub async fn household_id_is_unique(d: Arc<dyn Directory>) {
    let (id, _) = new_household(&d).await;
    let again = d
        .create_household(
            Household {
                id,
                name: "x".into(),
                created_at: now(),
            },
            person(id, member(), Role::Owner),
        )
        .await
        .unwrap_err();
    assert_eq!(again, DirectoryError::HouseholdExists(id));
    assert_eq!(d.members(id).await.unwrap().len(), 1, "nothing changed");
}

pub async fn invite_admits_one_member_once(d: Arc<dyn Directory>) {
    let (id, owner) = new_household(&d).await;
    d.create_invite(invite(id, owner.id, "code-one", TimeDelta::hours(1)))
        .await
        .unwrap();
    let joiner = person(id, member(), Role::Member);
    let joined = d
        .accept_invite(id, "code-one", joiner.clone(), now())
        .await
        .unwrap();
    assert_eq!(joined, joiner);
    assert_eq!(d.member(id, joiner.id).await.unwrap(), Some(joiner));
    let second = d
        .accept_invite(id, "code-one", person(id, member(), Role::Member), now())
        .await
        .unwrap_err();
    assert_eq!(second, DirectoryError::InviteUsed);
    let unknown = d
        .accept_invite(id, "nope", person(id, member(), Role::Member), now())
        .await
        .unwrap_err();
    assert_eq!(unknown, DirectoryError::InviteNotFound);
    assert_eq!(d.members(id).await.unwrap().len(), 2);
}

pub async fn expired_invite_is_refused(d: Arc<dyn Directory>) {
    let (id, owner) = new_household(&d).await;
    d.create_invite(invite(id, owner.id, "old", TimeDelta::minutes(5)))
        .await
        .unwrap();
    let later = now() + TimeDelta::minutes(6);
    let err = d
        .accept_invite(id, "old", person(id, member(), Role::Member), later)
        .await
        .unwrap_err();
    assert_eq!(err, DirectoryError::InviteExpired);
    assert_eq!(d.members(id).await.unwrap().len(), 1);
}

pub async fn invite_of_another_household_is_not_found(d: Arc<dyn Directory>) {
    let (a, owner) = new_household(&d).await;
    let (b, _) = new_household(&d).await;
    d.create_invite(invite(a, owner.id, "for-a", TimeDelta::hours(1)))
        .await
        .unwrap();
    let err = d
        .accept_invite(b, "for-a", person(b, member(), Role::Member), now())
        .await
        .unwrap_err();
    assert_eq!(err, DirectoryError::InviteNotFound);
    assert_eq!(d.members(b).await.unwrap().len(), 1);
}

pub async fn concurrent_accepts_admit_one(d: Arc<dyn Directory>) {
    let (id, owner) = new_household(&d).await;
    d.create_invite(invite(id, owner.id, "race", TimeDelta::hours(1)))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            d.accept_invite(id, "race", person(id, member(), Role::Member), now())
                .await
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 1);
    assert_eq!(d.members(id).await.unwrap().len(), 2);
}

pub async fn members_of_one_household_only(d: Arc<dyn Directory>) {
    let (a, owner_a) = new_household(&d).await;
    let (b, owner_b) = new_household(&d).await;
    assert_eq!(d.members(a).await.unwrap(), vec![owner_a.clone()]);
    assert_eq!(d.members(b).await.unwrap(), vec![owner_b]);
    assert_eq!(d.member(b, owner_a.id).await.unwrap(), None);
}
