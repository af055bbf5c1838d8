//! Member tokens: JWT HS256 carrying the member, the household and an expiry.

use hearth_core::ports::Role;
use hearth_core::{HouseholdId, MemberId};
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

/// Signs and checks tokens with one secret.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
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
        }
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
        let claims = Claims {
            sub: member,
            hh: household,
            role,
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
            nbf: None,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// Checks signature and expiry, and that the token is for `household`.
    pub fn verify(&self, token: &str, household: HouseholdId) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                _ => TokenError::Invalid(e.to_string()),
            },
        )?;
        if data.claims.hh != household {
            return Err(TokenError::WrongHousehold);
        }
        Ok(data.claims)
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
        };
        let early =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &later, &tokens.encoding).unwrap();
        assert_eq!(tokens.verify(&early, hh), Err(TokenError::NotYetValid));
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
