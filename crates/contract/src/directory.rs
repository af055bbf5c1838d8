//! The Directory contract: households, members, single-use expiring invites.

use crate::fixtures::{household, member, now};
use chrono::TimeDelta;
use hearth_core::ports::{
    CredentialHash, Directory, DirectoryError, Enrolled, Household, Invite, Member, Role, Session,
};
use hearth_core::{HouseholdId, MemberId, SessionId};
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
            removed_member_is_gone_with_their_sessions,
            the_last_owner_cannot_go,
            role_changes,
            concurrent_demotions_keep_an_owner,
            refresh_rotates_the_credential,
            a_rotated_credential_ends_the_session,
            concurrent_refreshes_rotate_once,
            sessions_belong_to_their_member,
            time_zone_is_kept_and_changed,
            roster_is_the_members_with_their_sessions_still_going,
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
            time_zone: "Europe/Berlin".into(),
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
                time_zone: "UTC".into(),
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
    let shown = d.invite(id, "code-one", now()).await.unwrap();
    assert_eq!(
        (shown.created_by, shown.code.as_str()),
        (owner.id, "code-one")
    );
    let joined = d
        .accept_invite(id, "code-one", joiner.clone(), now())
        .await
        .unwrap();
    assert_eq!(
        d.invite(id, "code-one", now()).await.unwrap_err(),
        DirectoryError::InviteUsed
    );
    assert_eq!(
        d.invite(id, "nope", now()).await.unwrap_err(),
        DirectoryError::InviteNotFound
    );
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
    assert_eq!(
        d.invite(id, "old", later).await.unwrap_err(),
        DirectoryError::InviteExpired
    );
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

/// A second member joined by invite.
async fn joined(d: &Arc<dyn Directory>, id: HouseholdId, owner: &Member, role: Role) -> Member {
    let code = format!("code-{}", uuid::Uuid::new_v4());
    d.create_invite(invite(id, owner.id, &code, TimeDelta::hours(1)))
        .await
        .unwrap();
    let m = d
        .accept_invite(id, &code, person(id, member(), Role::Member), now())
        .await
        .unwrap();
    if role == Role::Owner {
        d.set_role(id, m.id, Role::Owner).await.unwrap()
    } else {
        m
    }
}

fn hash(label: &str) -> CredentialHash {
    CredentialHash(format!("{label}-{}", uuid::Uuid::new_v4().simple()))
}

async fn new_session(d: &Arc<dyn Directory>, m: &Member) -> (Session, CredentialHash) {
    let session = Session {
        household: m.household,
        id: SessionId(uuid::Uuid::now_v7()),
        member: m.id,
        device: "test device".into(),
        created_at: now(),
        last_used_at: now(),
    };
    let first = hash("first");
    d.create_session(session.clone(), &first).await.unwrap();
    (session, first)
}

pub async fn removed_member_is_gone_with_their_sessions(d: Arc<dyn Directory>) {
    let (id, owner) = new_household(&d).await;
    let bob = joined(&d, id, &owner, Role::Member).await;
    let (session, credential) = new_session(&d, &bob).await;
    assert_eq!(
        d.session(id, session.id).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(d.remove_member(id, bob.id, now()).await.unwrap(), bob);
    assert_eq!(d.member(id, bob.id).await.unwrap(), None);
    assert_eq!(d.members(id).await.unwrap(), vec![owner.clone()]);
    assert_eq!(d.session(id, session.id).await.unwrap(), None);
    assert_eq!(d.sessions(id, bob.id).await.unwrap(), vec![]);
    assert_eq!(
        d.refresh_session(id, &credential, &hash("next"), now())
            .await
            .unwrap_err(),
        DirectoryError::SessionEnded
    );
    assert_eq!(
        d.remove_member(id, bob.id, now()).await.unwrap_err(),
        DirectoryError::NoSuchMember(bob.id)
    );
    assert_eq!(
        d.set_role(id, bob.id, Role::Owner).await.unwrap_err(),
        DirectoryError::NoSuchMember(bob.id)
    );
    assert_eq!(
        d.create_session(session.clone(), &hash("again"))
            .await
            .unwrap_err(),
        DirectoryError::NoSuchMember(bob.id)
    );
    // A removed member's id does not come back through an invite.
    d.create_invite(invite(id, owner.id, "back", TimeDelta::hours(1)))
        .await
        .unwrap();
    assert_eq!(
        d.accept_invite(id, "back", bob.clone(), now())
            .await
            .unwrap_err(),
        DirectoryError::MemberExists(bob.id)
    );
}

pub async fn the_last_owner_cannot_go(d: Arc<dyn Directory>) {
    let (id, owner) = new_household(&d).await;
    let bob = joined(&d, id, &owner, Role::Member).await;
    assert_eq!(
        d.remove_member(id, owner.id, now()).await.unwrap_err(),
        DirectoryError::LastOwner
    );
    assert_eq!(
        d.set_role(id, owner.id, Role::Member).await.unwrap_err(),
        DirectoryError::LastOwner
    );
    assert_eq!(d.member(id, owner.id).await.unwrap(), Some(owner.clone()));
    // With a second owner, the first may go.
    d.set_role(id, bob.id, Role::Owner).await.unwrap();
    d.remove_member(id, owner.id, now()).await.unwrap();
    assert_eq!(
        d.remove_member(id, bob.id, now()).await.unwrap_err(),
        DirectoryError::LastOwner,
        "bob is now the last owner"
    );
    let left: Vec<_> = d
        .members(id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.id, m.role))
        .collect();
    assert_eq!(left, vec![(bob.id, Role::Owner)]);
}

pub async fn role_changes(d: Arc<dyn Directory>) {
    let (id, owner) = new_household(&d).await;
    let bob = joined(&d, id, &owner, Role::Member).await;
    let promoted = d.set_role(id, bob.id, Role::Owner).await.unwrap();
    assert_eq!(promoted.role, Role::Owner);
    assert_eq!(d.member(id, bob.id).await.unwrap(), Some(promoted));
    // Setting the role it has is no change and no refusal.
    d.set_role(id, bob.id, Role::Owner).await.unwrap();
    let demoted = d.set_role(id, owner.id, Role::Member).await.unwrap();
    assert_eq!(demoted.role, Role::Member);
    let stranger = member();
    assert_eq!(
        d.set_role(id, stranger, Role::Owner).await.unwrap_err(),
        DirectoryError::NoSuchMember(stranger)
    );
    // Another household's member is not this one's.
    let (other, _) = new_household(&d).await;
    assert_eq!(
        d.set_role(other, bob.id, Role::Member).await.unwrap_err(),
        DirectoryError::NoSuchMember(bob.id)
    );
}

pub async fn concurrent_demotions_keep_an_owner(d: Arc<dyn Directory>) {
    for _ in 0..4 {
        let (id, owner) = new_household(&d).await;
        let bob = joined(&d, id, &owner, Role::Owner).await;
        let (a, b) = (d.clone(), d.clone());
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { a.set_role(id, owner.id, Role::Member).await }),
            tokio::spawn(async move { b.remove_member(id, bob.id, now()).await }),
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(ra.is_ok() != rb.is_ok(), "one of {ra:?} and {rb:?}");
        let owners = d
            .members(id)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.role == Role::Owner)
            .count();
        assert_eq!(owners, 1);
    }
}

pub async fn refresh_rotates_the_credential(d: Arc<dyn Directory>) {
    let (id, owner) = new_household(&d).await;
    let (session, first) = new_session(&d, &owner).await;
    let second = hash("second");
    let later = now() + TimeDelta::minutes(5);
    let refreshed = d.refresh_session(id, &first, &second, later).await.unwrap();
    assert_eq!(refreshed.id, session.id);
    assert_eq!(refreshed.last_used_at, later);
    let third = hash("third");
    d.refresh_session(id, &second, &third, later).await.unwrap();
    assert_eq!(
        d.refresh_session(id, &hash("never"), &hash("x"), later)
            .await
            .unwrap_err(),
        DirectoryError::SessionNotFound
    );
    let (other, _) = new_household(&d).await;
    assert_eq!(
        d.refresh_session(other, &third, &hash("x"), later)
            .await
            .unwrap_err(),
        DirectoryError::SessionNotFound,
        "a credential is looked up within its household"
    );
    assert_eq!(
        d.sessions(id, owner.id).await.unwrap(),
        vec![Session {
            last_used_at: later,
            ..session
        }]
    );
}

pub async fn a_rotated_credential_ends_the_session(d: Arc<dyn Directory>) {
    let (id, owner) = new_household(&d).await;
    let (session, first) = new_session(&d, &owner).await;
    let (other, other_credential) = new_session(&d, &owner).await;
    let second = hash("second");
    d.refresh_session(id, &first, &second, now()).await.unwrap();
    assert_eq!(
        d.refresh_session(id, &first, &hash("thief"), now())
            .await
            .unwrap_err(),
        DirectoryError::CredentialReused(session.id)
    );
    assert_eq!(d.session(id, session.id).await.unwrap(), None);
    assert_eq!(
        d.refresh_session(id, &second, &hash("x"), now())
            .await
            .unwrap_err(),
        DirectoryError::SessionEnded,
        "the current credential died with its session"
    );
    // Only that session: the member's other device goes on.
    d.refresh_session(id, &other_credential, &hash("y"), now())
        .await
        .unwrap();
    assert_eq!(
        d.sessions(id, owner.id)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        vec![other.id]
    );
}

pub async fn concurrent_refreshes_rotate_once(d: Arc<dyn Directory>) {
    let (id, owner) = new_household(&d).await;
    let (_, first) = new_session(&d, &owner).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (d, first) = (d.clone(), first.clone());
        tasks.push(tokio::spawn(async move {
            d.refresh_session(id, &first, &hash("next"), now()).await
        }));
    }
    let mut rotated = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => rotated += 1,
            Err(DirectoryError::CredentialReused(_) | DirectoryError::SessionEnded) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(rotated <= 1, "{rotated} refreshes used one credential");
}

pub async fn sessions_belong_to_their_member(d: Arc<dyn Directory>) {
    let (id, owner) = new_household(&d).await;
    let bob = joined(&d, id, &owner, Role::Member).await;
    let (mine, _) = new_session(&d, &owner).await;
    let (his, _) = new_session(&d, &bob).await;
    assert_eq!(d.sessions(id, owner.id).await.unwrap(), vec![mine.clone()]);
    assert_eq!(
        d.end_session(id, owner.id, his.id, now())
            .await
            .unwrap_err(),
        DirectoryError::SessionNotFound,
        "not hers to end"
    );
    assert!(d.session(id, his.id).await.unwrap().is_some());
    d.end_session(id, owner.id, mine.id, now()).await.unwrap();
    assert_eq!(d.session(id, mine.id).await.unwrap(), None);
    assert_eq!(d.sessions(id, owner.id).await.unwrap(), vec![]);
    assert_eq!(
        d.end_session(id, owner.id, mine.id, now())
            .await
            .unwrap_err(),
        DirectoryError::SessionNotFound,
        "already ended"
    );
    let stranger = person(id, member(), Role::Member);
    let none = Session {
        id: SessionId(uuid::Uuid::now_v7()),
        member: stranger.id,
        ..mine.clone()
    };
    assert_eq!(
        d.create_session(none, &hash("s")).await.unwrap_err(),
        DirectoryError::NoSuchMember(stranger.id)
    );
}

pub async fn time_zone_is_kept_and_changed(d: Arc<dyn Directory>) {
    let (id, _) = new_household(&d).await;
    let (other, _) = new_household(&d).await;
    let zone = |h: Option<Household>| h.map(|h| h.time_zone);
    assert_eq!(
        zone(d.household(id).await.unwrap()),
        Some("Europe/Berlin".into())
    );
    let changed = d.set_time_zone(id, "America/New_York").await.unwrap();
    assert_eq!(
        (
            changed.id,
            changed.name.as_str(),
            changed.time_zone.as_str()
        ),
        (id, "The Test House", "America/New_York")
    );
    assert_eq!(d.household(id).await.unwrap(), Some(changed));
    assert_eq!(
        zone(d.household(other).await.unwrap()),
        Some("Europe/Berlin".into()),
        "another household keeps its zone"
    );
    let nowhere = household();
    assert_eq!(
        d.set_time_zone(nowhere, "UTC").await.unwrap_err(),
        DirectoryError::NoSuchHousehold(nowhere)
    );
    assert_eq!(d.household(nowhere).await.unwrap(), None);
}

pub async fn roster_is_the_members_with_their_sessions_still_going(d: Arc<dyn Directory>) {
    let (id, owner) = new_household(&d).await;
    let bob = joined(&d, id, &owner, Role::Member).await;
    let carol = joined(&d, id, &owner, Role::Member).await;
    let (phone, _) = new_session(&d, &owner).await;
    let (laptop, _) = new_session(&d, &owner).await;
    let (bobs, _) = new_session(&d, &bob).await;
    let (carols, _) = new_session(&d, &carol).await;
    // Another household's sessions are not this one's.
    let (other, stranger) = new_household(&d).await;
    new_session(&d, &stranger).await;
    let roster = |d: Arc<dyn Directory>| async move {
        let mut roster = d.roster(id).await.unwrap();
        for e in &mut roster {
            e.sessions.sort();
        }
        roster
    };
    let sorted = |mut v: Vec<SessionId>| {
        v.sort();
        v
    };
    let members = d.members(id).await.unwrap();
    let got = roster(d.clone()).await;
    assert_eq!(
        got.iter().map(|e| e.member.clone()).collect::<Vec<_>>(),
        members,
        "the members, as `members` lists them"
    );
    let of = |got: &[Enrolled], m: MemberId| {
        got.iter()
            .find(|e| e.member.id == m)
            .map(|e| e.sessions.clone())
    };
    assert_eq!(of(&got, owner.id), Some(sorted(vec![phone.id, laptop.id])));
    assert_eq!(of(&got, bob.id), Some(vec![bobs.id]));
    assert_eq!(of(&got, carol.id), Some(vec![carols.id]));

    d.end_session(id, owner.id, laptop.id, now()).await.unwrap();
    d.remove_member(id, carol.id, now()).await.unwrap();
    let got = roster(d.clone()).await;
    assert_eq!(got.len(), 2);
    assert_eq!(of(&got, carol.id), None, "a removed member is gone");
    assert_eq!(
        of(&got, owner.id),
        Some(vec![phone.id]),
        "an ended session is gone"
    );
    assert_eq!(of(&got, bob.id), Some(vec![bobs.id]));
    assert_eq!(d.roster(other).await.unwrap().len(), 1);
    assert_eq!(d.roster(household()).await.unwrap(), vec![]);
}
