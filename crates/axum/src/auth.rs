//! Access tokens: JWT HS256 carrying the member, the household, the session and an
//! expiry. Short-lived (minutes): a client renews its token with its session's refresh
//! credential ([`crate::sessions`]).
//!
//! Time claims: `exp` is checked exactly; `nbf` and `iat` with [`CLOCK_LEEWAY_SECS`]
//! of leeway (a token "issued" or "valid from" further in the future than that is
//! refused: a clock that far ahead, or a forgery). Secret rotation: a server may also
//! accept tokens signed with the previous secret ([`Tokens::with_previous`]), while
//! signing only with the current one.

use hearth_core::ports::Role;
use hearth_core::{HouseholdId, MemberId, SessionId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// The signing secret. Its `Debug` never shows it.
#[derive(Clone)]
pub struct TokenSecret(Arc<[u8]>);

/// The shortest secret accepted: HS256 with a short secret falls to a guess (the docs'
/// old example `change-me` fell to a 7-word list in 0.1 ms).
pub const MIN_SECRET_BYTES: usize = 32;

impl TokenSecret {
    /// Refuses a secret under [`MIN_SECRET_BYTES`].
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, TokenError> {
        let secret = secret.as_ref();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(TokenError::WeakSecret { len: secret.len() });
        }
        Ok(Self(Arc::from(secret)))
    }

    /// A random secret (tokens then die with the process).
    pub fn random() -> Self {
        let mut bytes = Vec::with_capacity(32);
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self(Arc::from(bytes))
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

/// How far ahead of the server's clock a token's `nbf` or `iat` may be.
pub const CLOCK_LEEWAY_SECS: i64 = 30;

/// What a token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The member id.
    pub sub: MemberId,
    /// The household id.
    pub hh: HouseholdId,
    pub role: Role,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Not before, seconds since the epoch (checked when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The session the token was issued for (absent on development tokens of
    /// `hearth token`, which then stand only on their member's membership).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<SessionId>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no token: pass token=<jwt> in the query or Authorization: Bearer <jwt>")]
    Missing,
    #[error("the token expired")]
    Expired,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the token is for another household")]
    WrongHousehold,
    #[error("cannot sign a token: {0}")]
    Signing(String),
    #[error(
        "the token secret has {len} bytes; at least {MIN_SECRET_BYTES} are needed (e.g. `openssl rand -hex 32`)"
    )]
    WeakSecret { len: usize },
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token was issued in the future (iat)")]
    IssuedInFuture,
    #[error("the token's member is not (or no longer) a member of this household")]
    NotAMember,
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is matched
/// without regard to case (RFC 9110, section 11.1): `bearer` and `BEARER` work too.
pub(crate) fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = value.split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Signs tokens with one secret, and checks them against it (and, during a rotation,
/// against the previous one too).
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    previous: Option<DecodingKey>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tokens(<redacted>)")
    }
}

impl Tokens {
    pub fn new(secret: &TokenSecret) -> Self {
        Self {
            encoding: EncodingKey::from_secret(&secret.0),
            decoding: DecodingKey::from_secret(&secret.0),
            previous: None,
        }
    }

    /// Also accepts tokens signed with `previous` (the rotation window: until the
    /// tokens it signed have expired, i.e. one access-token lifetime after the switch).
    pub fn with_previous(mut self, previous: Option<&TokenSecret>) -> Self {
        self.previous = previous.map(|p| DecodingKey::from_secret(&p.0));
        self
    }

    /// A token for `member` of `household`, valid for `ttl` from `now`.
    pub fn issue(
        &self,
        household: HouseholdId,
        member: MemberId,
        role: Role,
        now: chrono::DateTime<chrono::Utc>,
        ttl: chrono::Duration,
    ) -> Result<String, TokenError> {
        self.sign(&Claims {
            sub: member,
            hh: household,
            role,
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
            nbf: None,
            sid: None,
        })
    }

    /// An access token of `session`, valid for `ttl` from `now`.
    pub fn issue_for_session(
        &self,
        member: &hearth_core::ports::Member,
        session: SessionId,
        now: chrono::DateTime<chrono::Utc>,
        ttl: chrono::Duration,
    ) -> Result<String, TokenError> {
        self.sign(&Claims {
            sub: member.id,
            hh: member.household,
            role: member.role,
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
            nbf: None,
            sid: Some(session),
        })
    }

    fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// [`Self::verify_at`] the system clock's now.
    pub fn verify(&self, token: &str, household: HouseholdId) -> Result<Claims, TokenError> {
        self.verify_at(token, household, chrono::Utc::now())
    }

    /// Checks the signature (the current secret's, or the previous one's during a
    /// rotation), the time claims at `now` and that the token is for `household`.
    pub fn verify_at(
        &self,
        token: &str,
        household: HouseholdId,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Time is checked below, against the server's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let decode = |key: &DecodingKey| {
            jsonwebtoken::decode::<Claims>(token, key, &validation)
                .map_err(|e| TokenError::Invalid(e.to_string()))
        };
        let claims = match (decode(&self.decoding), &self.previous) {
            (Ok(data), _) => data.claims,
            (Err(e), None) => return Err(e),
            (Err(e), Some(previous)) => decode(previous).map_err(|_| e)?.claims,
        };
        let now = now.timestamp();
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf > now + CLOCK_LEEWAY_SECS) {
            return Err(TokenError::NotYetValid);
        }
        if claims.iat > now + CLOCK_LEEWAY_SECS {
            return Err(TokenError::IssuedInFuture);
        }
        if claims.hh != household {
            return Err(TokenError::WrongHousehold);
        }
        Ok(claims)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_matched_without_regard_to_case() {
        let with = |value: &str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert(
                axum::http::header::AUTHORIZATION,
                axum::http::HeaderValue::from_str(value).unwrap(),
            );
            bearer_token(&headers).map(str::to_owned)
        };
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "BeArEr   abc "] {
            assert_eq!(with(value).as_deref(), Some("abc"), "{value}");
        }
        for value in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "abc"] {
            assert_eq!(with(value), None, "{value}");
        }
        assert_eq!(bearer_token(&axum::http::HeaderMap::new()), None);
    }

    #[test]
    fn secrets_never_print() {
        let secret = TokenSecret::new("hunter2-hunter2-hunter2-hunter2-hunter2").unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert!(!format!("{:?}", Tokens::new(&secret)).contains("hunter2"));
    }

    #[test]
    fn round_trip_and_refusals() {
        let tokens = Tokens::new(&TokenSecret::new("s3cret-s3cret-s3cret-s3cret-s3cret").unwrap());
        let hh = HouseholdId(uuid::Uuid::new_v4());
        let me = MemberId(uuid::Uuid::new_v4());
        let now = chrono::Utc::now();
        let t = tokens
            .issue(hh, me, Role::Owner, now, chrono::Duration::hours(1))
            .unwrap();
        assert_eq!(tokens.verify(&t, hh).unwrap().sub, me);
        let other = HouseholdId(uuid::Uuid::new_v4());
        assert_eq!(tokens.verify(&t, other), Err(TokenError::WrongHousehold));
        let old = tokens
            .issue(hh, me, Role::Owner, now, chrono::Duration::hours(-1))
            .unwrap();
        assert_eq!(tokens.verify(&old, hh), Err(TokenError::Expired));
        let forged = Tokens::new(&TokenSecret::new("other-other-other-other-other-other").unwrap())
            .issue(hh, me, Role::Owner, now, chrono::Duration::hours(1))
            .unwrap();
        assert!(matches!(
            tokens.verify(&forged, hh),
            Err(TokenError::Invalid(_))
        ));
        // Not before: a token whose nbf is ahead is refused.
        let later = Claims {
            sub: me,
            hh,
            role: Role::Member,
            iat: now.timestamp(),
            exp: (now + chrono::Duration::hours(2)).timestamp(),
            nbf: Some((now + chrono::Duration::hours(1)).timestamp()),
            sid: None,
        };
        let early = tokens.sign(&later).unwrap();
        assert_eq!(tokens.verify(&early, hh), Err(TokenError::NotYetValid));
    }

    #[test]
    fn nbf_and_iat_have_a_small_leeway_and_exp_none() {
        let tokens = Tokens::new(&TokenSecret::new("s3cret-s3cret-s3cret-s3cret-s3cret").unwrap());
        let hh = HouseholdId(uuid::Uuid::new_v4());
        let now = chrono::Utc::now();
        let at = |secs: i64| (now + chrono::Duration::seconds(secs)).timestamp();
        let claims = |iat: i64, nbf: Option<i64>, exp: i64| Claims {
            sub: MemberId(uuid::Uuid::new_v4()),
            hh,
            role: Role::Member,
            iat,
            exp,
            nbf,
            sid: None,
        };
        let verify = |c: &Claims| tokens.verify_at(&tokens.sign(c).unwrap(), hh, now);
        let edge = CLOCK_LEEWAY_SECS;
        assert!(verify(&claims(at(edge), Some(at(edge)), at(600))).is_ok());
        assert_eq!(
            verify(&claims(at(0), Some(at(edge + 1)), at(600))),
            Err(TokenError::NotYetValid)
        );
        assert_eq!(
            verify(&claims(at(edge + 1), None, at(600))),
            Err(TokenError::IssuedInFuture)
        );
        assert!(verify(&claims(at(-60), None, at(1))).is_ok());
        assert_eq!(
            verify(&claims(at(-60), None, at(0))),
            Err(TokenError::Expired),
            "no leeway on expiry"
        );
    }

    #[test]
    fn the_previous_secret_is_accepted_during_a_rotation_and_not_used_to_sign() {
        let old = TokenSecret::new("old-old-old-old-old-old-old-old-old").unwrap();
        let new = TokenSecret::new("new-new-new-new-new-new-new-new-new").unwrap();
        let hh = HouseholdId(uuid::Uuid::new_v4());
        let me = MemberId(uuid::Uuid::new_v4());
        let now = chrono::Utc::now();
        let hour = chrono::Duration::hours(1);
        let by_old = Tokens::new(&old)
            .issue(hh, me, Role::Member, now, hour)
            .unwrap();
        let rotating = Tokens::new(&new).with_previous(Some(&old));
        assert_eq!(rotating.verify(&by_old, hh).unwrap().sub, me);
        let by_new = rotating.issue(hh, me, Role::Member, now, hour).unwrap();
        assert!(
            Tokens::new(&new).verify(&by_new, hh).is_ok(),
            "signed with the new one"
        );
        assert!(matches!(
            Tokens::new(&old).verify(&by_new, hh),
            Err(TokenError::Invalid(_))
        ));
        // After the window (no previous secret), the old token is refused.
        assert!(matches!(
            Tokens::new(&new).verify(&by_old, hh),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn a_secret_under_32_bytes_is_refused() {
        assert_eq!(
            TokenSecret::new("change-me").unwrap_err(),
            TokenError::WeakSecret { len: 9 }
        );
        assert!(TokenSecret::new([7u8; MIN_SECRET_BYTES]).is_ok());
        assert!(TokenSecret::new([7u8; MIN_SECRET_BYTES - 1]).is_err());
    }
}
