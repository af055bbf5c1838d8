//! Sessions: a member's sign-in on one device. Joining (or creating a household)
//! starts one; it gives a short-lived access token (a JWT naming the session, see
//! [`crate::auth`]) and a refresh credential, random and secret, of which the directory
//! keeps only the SHA-256. `POST /households/{id}/sessions/refresh` exchanges the
//! credential for a new access token and a new credential (rotation); presenting an
//! exchanged credential again ends the session (reuse detection: one of two holders is
//! not the member). A member lists and ends their own sessions; removing a member ends
//! all of theirs.

use crate::app::AppState;
use crate::http::ApiError;
use hearth_core::ports::{CredentialHash, Member, Session};
use hearth_core::{SessionId, Timestamp};
use serde::Serialize;
use sha2::Digest as _;

/// Longest device label kept (characters).
const DEVICE_CHARS: usize = 100;

/// What a client holds for a session: send `token` with every request and socket,
/// and `refresh` (once) to get the next pair before `expiresAt`.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Issued {
    /// The access token.
    pub token: String,
    /// When `token` expires.
    pub expires_at: Timestamp,
    /// The refresh credential: single use.
    pub refresh: String,
    pub session: SessionId,
}

/// A fresh refresh credential: 256 random bits, hex.
fn credential() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// What the directory keeps of a credential.
pub(crate) fn hash(credential: &str) -> CredentialHash {
    let digest = sha2::Sha256::digest(credential.as_bytes());
    CredentialHash(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// The device label from a `User-Agent`, shortened; "unknown device" without one.
pub(crate) fn device(headers: &axum::http::HeaderMap) -> String {
    let label: String = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(DEVICE_CHARS)
        .collect();
    if label.trim().is_empty() {
        "unknown device".into()
    } else {
        label
    }
}

fn access_token(
    app: &AppState,
    member: &Member,
    session: SessionId,
    now: Timestamp,
) -> Result<(String, Timestamp), ApiError> {
    let ttl = chrono::Duration::from_std(app.settings.access_token_ttl)
        .unwrap_or_else(|_| chrono::Duration::minutes(10));
    let token = app
        .tokens
        .issue_for_session(member, session, now, ttl)
        .map_err(|e| ApiError::unavailable("the token signer", &e))?;
    Ok((token, now + ttl))
}

/// Starts a session of `member` (who must be a current member) on `device`.
pub(crate) async fn start(
    app: &AppState,
    member: &Member,
    device: String,
) -> Result<Issued, ApiError> {
    let now = app.clock.now();
    let session = Session {
        household: member.household,
        id: SessionId(uuid::Uuid::now_v7()),
        member: member.id,
        device,
        created_at: now,
        last_used_at: now,
    };
    let refresh = credential();
    app.directory
        .create_session(session.clone(), &hash(&refresh))
        .await
        .map_err(crate::http::directory_error)?;
    let (token, expires_at) = access_token(app, member, session.id, now)?;
    Ok(Issued {
        token,
        expires_at,
        refresh,
        session: session.id,
    })
}

/// Exchanges `presented` for the next access token and credential.
pub(crate) async fn refresh(
    app: &AppState,
    household: hearth_core::HouseholdId,
    presented: &str,
) -> Result<(Member, Issued), ApiError> {
    let now = app.clock.now();
    let next = credential();
    let session = match app
        .directory
        .refresh_session(household, &hash(presented), &hash(&next), now)
        .await
    {
        Ok(session) => session,
        Err(e) => {
            if let hearth_core::ports::DirectoryError::CredentialReused(session) = e {
                // Ended in the directory: felt at once on this node too.
                tracing::warn!(%household, %session, "a rotated refresh credential was reused: session ended");
                app.membership.forget_session(household, session);
                app.rooms.kick(
                    household,
                    None,
                    Some(session),
                    crate::rooms::Kick::SessionEnded,
                );
            }
            return Err(crate::http::directory_error(e));
        }
    };
    // A session of a removed member is ended with the removal; this read only gives
    // the member's current role to the token.
    let member = app
        .membership
        .check(household, session.member, Some(session.id))
        .await
        .map_err(|e| crate::http::membership_refused(app, e))?;
    let (token, expires_at) = access_token(app, &member, session.id, now)?;
    Ok((
        member,
        Issued {
            token,
            expires_at,
            refresh: next,
            session: session.id,
        },
    ))
}
