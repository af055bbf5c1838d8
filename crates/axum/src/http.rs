//! The HTTP JSON API: households and membership, the room's HTTP side, health and
//! metrics.

use crate::app::AppState;
use crate::auth::TokenError;
use crate::changes;
use crate::commands;
use crate::limits::Refusal;
use crate::members::MembershipError;
use crate::rooms::PAGE;
use crate::sessions::{self, Issued};
use crate::wire::{self, ServerMessage, codes};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_core::ports::{
    DEFAULT_TIME_ZONE, DirectoryError, Household, Invite, Member, Role, Session,
};
use hearth_core::window::{self, Bound, List, Older, Window};
use hearth_core::{EventEnvelope, HouseholdId, HouseholdView, MemberId, SessionId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What a client is told when the event store fails.
const STORE: &str = "the event store";

/// An HTTP error with the same body shape as the socket's: `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Seconds, for `Retry-After`.
    retry_after: Option<u64>,
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        Self {
            status: refusal.status(),
            code: refusal.code(),
            message: refusal.message(),
            retry_after: Some(refusal.retry_after_secs()),
        }
    }
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A store, the directory or a provider failed. What it said stays in the server's
    /// log: a client never sees a database's (or provider's) error text.
    pub(crate) fn unavailable(what: &'static str, error: &dyn std::fmt::Display) -> Self {
        tracing::warn!(%error, "{what} failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::UNAVAILABLE,
            format!("{what} is unavailable; retry"),
        )
    }
}

impl From<wire::BadInput> for ApiError {
    fn from(bad: wire::BadInput) -> Self {
        Self::new(StatusCode::BAD_REQUEST, bad.code, bad.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = wire::BadInput::new(self.code, self.message)
            .to_message()
            .to_json();
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Some(secs) = self.retry_after
            && let Ok(value) = header::HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// The error code of an HTTP status the framework (or hyper) answers by itself.
fn status_code_name(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => codes::INVALID_MESSAGE,
        StatusCode::UNAUTHORIZED => codes::UNAUTHORIZED,
        StatusCode::NOT_FOUND => codes::NOT_FOUND,
        StatusCode::METHOD_NOT_ALLOWED => codes::METHOD_NOT_ALLOWED,
        StatusCode::PAYLOAD_TOO_LARGE => codes::BODY_TOO_LARGE,
        StatusCode::URI_TOO_LONG => codes::URI_TOO_LONG,
        StatusCode::TOO_MANY_REQUESTS => codes::RATE_LIMITED,
        StatusCode::SERVICE_UNAVAILABLE => codes::UNAVAILABLE,
        s if s.is_server_error() => codes::INTERNAL,
        _ => codes::BAD_REQUEST,
    }
}

/// Middleware around every route: refuses a URI above `max_uri_bytes` (414), and gives
/// every error status without a JSON body (axum's own 404, 405, 413, an extractor's 400,
/// ...) the error shape `{"error": {"code", "message"}}`, keeping its status and
/// headers (e.g. `Allow` on a 405).
pub(crate) async fn json_errors(
    State(app): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let max_uri = app.settings.max_uri_bytes;
    let uri_len = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if uri_len > max_uri {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            codes::URI_TOO_LONG,
            format!("the request URI has {uri_len} bytes; at most {max_uri} are accepted"),
        )
        .into_response();
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let message = match status {
        StatusCode::NOT_FOUND => format!("nothing at {path}"),
        StatusCode::METHOD_NOT_ALLOWED => format!("{method} is not allowed on {path}"),
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "the request body is above {} bytes",
            app.settings.max_frame_bytes
        ),
        s if s.is_server_error() => s.canonical_reason().unwrap_or("error").to_owned(),
        // The framework's own words (e.g. why a path did not parse), if short; never a
        // body of ours (ours are JSON), never a server error's.
        _ => axum::body::to_bytes(body, 1024)
            .await
            .ok()
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
    };
    let body = wire::BadInput::new(status_code_name(status), message)
        .to_message()
        .to_json();
    parts.headers.insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Parses a JSON body, naming the field at fault; text no store can hold is refused
/// wherever it is, before anything else looks at the body.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_JSON,
            format!("not valid JSON: {e}"),
        )
    })?;
    wire::check_storable(&value, "")?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        };
        ApiError::new(StatusCode::BAD_REQUEST, codes::INVALID_MESSAGE, message)
    })
}

fn check_name(field: &str, name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > 200 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_MESSAGE,
            format!("{field}: must be 1 to 200 characters"),
        ));
    }
    // Not something a person types, and PostgreSQL's text refuses NUL.
    if name.chars().any(char::is_control) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_MESSAGE,
            format!("{field}: must not contain control characters"),
        ));
    }
    Ok(name.to_owned())
}

/// A household's time zone as a client names it: an IANA name the server's zone
/// database knows ("Europe/Berlin"; exact, as `Intl` gives it), refused otherwise with
/// `unknown_time_zone` naming `field`.
pub(crate) fn check_time_zone(field: &str, zone: &str) -> Result<String, ApiError> {
    match zone.parse::<chrono_tz::Tz>() {
        Ok(tz) => Ok(tz.name().to_owned()),
        Err(_) => {
            let shown: String = zone.chars().take(64).collect();
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::UNKNOWN_TIME_ZONE,
                format!(
                    "{field}: {shown:?} is not an IANA time zone name (e.g. \"Europe/Berlin\")"
                ),
            ))
        }
    }
}

/// `GET /healthz`: the process is alive (it answers).
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// How long a readiness check waits (the store, and each check of
/// [`crate::Settings::ready_checks`]).
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /readyz`: whether this node can serve households now: the store answers a read
/// (through the port), the feed is connected to what rings it (when it can be
/// disconnected: PostgreSQL's listener), and each check the composition root added
/// passes (the schema is current, Temporal answers), each within 2 s, all at once.
/// 200 with `"ready": true`, else 503; `checks` has each check by name, `{"ok": true}`
/// or `{"ok": false, "error": ...}`; the cause goes to the log, never to the client.
pub(crate) async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    let probe = HouseholdId(uuid::Uuid::nil());
    let store = ready_check("store", async {
        match app.store.head(probe).await {
            Ok(_) => Ok(()),
            Err(error) => Err(crate::NotReady::new("unavailable", error)),
        }
    });
    let added = futures::future::join_all(
        app.settings
            .ready_checks
            .iter()
            .map(|check| ready_check(check.name(), check.run())),
    );
    let (store, added) = tokio::join!(store, added);
    let feed = match app.feed.listening() {
        Some(true) | None => json!({"ok": true}),
        Some(false) => json!({"ok": false, "error": "not listening"}),
    };
    let mut checks = serde_json::Map::new();
    checks.insert(store.0.into(), store.1);
    checks.insert("feed".into(), feed);
    for (name, result) in added {
        checks.insert(name.into(), result);
    }
    let ready = checks.values().all(|check| check["ok"] == true);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({"ready": ready, "checks": checks}))).into_response()
}

/// Runs one readiness check within [`READY_TIMEOUT`]: its name and its JSON.
async fn ready_check(
    name: &'static str,
    check: impl std::future::Future<Output = Result<(), crate::NotReady>>,
) -> (&'static str, serde_json::Value) {
    match tokio::time::timeout(READY_TIMEOUT, check).await {
        Ok(Ok(())) => (name, json!({"ok": true})),
        Ok(Err(not)) => {
            tracing::warn!(check = name, cause = %not.cause, "readiness: {name}: {}", not.error);
            (name, json!({"ok": false, "error": not.error}))
        }
        Err(_) => {
            tracing::warn!(check = name, "readiness: {name} did not answer within 2 s");
            (name, json!({"ok": false, "error": "timed out"}))
        }
    }
}

/// `GET /catalog`: what can be ordered, at which price and how many are available: the
/// catalog the service decides with (404 without one).
pub(crate) async fn catalog(State(app): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let Some(catalog) = app.service.catalog() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            "no catalog is configured on this server",
        ));
    };
    let items = catalog
        .items()
        .await
        .map_err(|e| ApiError::unavailable("the catalog", &e))?;
    Ok(Json(items).into_response())
}

/// `GET /households/{household}/members` (member token): who belongs to the household.
pub(crate) async fn members(
    State(app): State<Arc<AppState>>,
    Path(household): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let household = household_id(&household)?;
    bearer(&app, household, &headers).await?;
    // A listing is also when a change the log missed is recorded (`changes::reconcile`).
    changes::reconcile(&app, household).await;
    let members = app
        .directory
        .members(household)
        .await
        .map_err(directory_error)?;
    Ok(Json(members).into_response())
}

fn member_id(raw: &str) -> Result<MemberId, ApiError> {
    raw.parse::<uuid::Uuid>().map(MemberId).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            codes::NO_SUCH_MEMBER,
            format!("no member {raw:?}: a member id is a uuid"),
        )
    })
}

/// `DELETE /households/{household}/members/{member}` (member token): an owner removes
/// a member; a member (owner or not) deleting themselves leaves. 200 with the member
/// as they were.
pub(crate) async fn remove_member(
    State(app): State<Arc<AppState>>,
    Path((household, member)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let household = household_id(&household)?;
    let caller = bearer(&app, household, &headers).await?;
    let target = member_id(&member)?;
    let removed = changes::remove(&app, &caller.member, target).await?;
    Ok(Json(removed).into_response())
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetRole {
    pub role: Role,
}

/// `PUT /households/{household}/members/{member}/role` (owner token), `{"role"}`.
pub(crate) async fn set_role(
    State(app): State<Arc<AppState>>,
    Path((household, member)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let household = household_id(&household)?;
    let caller = bearer(&app, household, &headers).await?;
    let target = member_id(&member)?;
    let request: SetRole = body(&bytes)?;
    let changed = changes::set_role(&app, &caller.member, target, request.role).await?;
    Ok(Json(changed).into_response())
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Refresh {
    /// The session's current refresh credential.
    pub refresh: String,
}

/// What a refresh gives: the member as they are now, and the session's next pair.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Refreshed {
    pub member: Member,
    #[serde(flatten)]
    #[cfg_attr(feature = "ts", ts(flatten))]
    pub issued: Issued,
}

/// `POST /households/{household}/sessions/refresh` (no token: the credential is the
/// secret), `{"refresh"}`: the next access token and credential. 401
/// `session_not_found`, `session_ended` or `credential_reused` (which ends the session).
pub(crate) async fn refresh_session(
    State(app): State<Arc<AppState>>,
    Path(household): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let household = household_id(&household)?;
    let request: Refresh = body(&bytes)?;
    // No member rate here: a refusal after the rotation would lose the client its new
    // credential (the old one is spent). The per-address rate applies, as everywhere.
    let (member, issued) = sessions::refresh(&app, household, &request.refresh).await?;
    Ok(Json(Refreshed { member, issued }).into_response())
}

/// One of the caller's sessions, as they list them.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    #[serde(flatten)]
    #[cfg_attr(feature = "ts", ts(flatten))]
    pub session: Session,
    /// The session of the token that asked.
    pub current: bool,
}

/// `GET /households/{household}/sessions` (member token): the caller's own sessions.
pub(crate) async fn list_sessions(
    State(app): State<Arc<AppState>>,
    Path(household): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let household = household_id(&household)?;
    let caller = bearer(&app, household, &headers).await?;
    let list: Vec<SessionView> = app
        .directory
        .sessions(household, caller.member.id)
        .await
        .map_err(directory_error)?
        .into_iter()
        .map(|session| SessionView {
            current: Some(session.id) == caller.session,
            session,
        })
        .collect();
    Ok(Json(list).into_response())
}

/// `DELETE /households/{household}/sessions/{session}` (member token): ends one of the
/// caller's own sessions (this one too); its sockets close with 4004. 204.
pub(crate) async fn end_session(
    State(app): State<Arc<AppState>>,
    Path((household, session)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let household = household_id(&household)?;
    let caller = bearer(&app, household, &headers).await?;
    let Ok(session) = session.parse::<uuid::Uuid>().map(SessionId) else {
        return Err(directory_error(DirectoryError::SessionNotFound));
    };
    app.directory
        .end_session(household, caller.member.id, session, app.clock.now())
        .await
        .map_err(directory_error)?;
    app.membership.forget_session(household, session);
    app.rooms.kick(
        household,
        Some(caller.member.id),
        Some(session),
        crate::rooms::Kick::SessionEnded,
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// What the join page shows before joining.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct InvitePreview {
    pub household: Household,
    /// The name of the member who made the invite (if still a member).
    #[cfg_attr(feature = "ts", ts(optional))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invited_by: Option<String>,
    pub expires_at: hearth_core::Timestamp,
}

/// `GET /households/{household}/invites/{code}` (no token: the code is the secret,
/// held to the address's signup rate): the household's name and who invited, for the
/// join page. 404 for an unknown code, 410 `invite_expired`, 409 `invite_used`.
pub(crate) async fn invite_preview(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((household, code)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    app.limits.signup(peer.ip())?;
    let household = household_id(&household)?;
    let Some(found) = app
        .directory
        .household(household)
        .await
        .map_err(directory_error)?
    else {
        return Err(directory_error(DirectoryError::InviteNotFound));
    };
    let invite = app
        .directory
        .invite(household, &code, app.clock.now())
        .await
        .map_err(directory_error)?;
    let invited_by = app
        .directory
        .member(household, invite.created_by)
        .await
        .map_err(directory_error)?
        .map(|m| m.name);
    Ok(Json(InvitePreview {
        household: found,
        invited_by,
        expires_at: invite.expires_at,
    })
    .into_response())
}

pub(crate) async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

// ---------------------------------------------------------------------------
// Households and membership
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateHousehold {
    pub name: String,
    /// The owner's display name.
    pub owner_name: String,
    /// The household's time zone, an IANA name (the web app sends the creator's
    /// browser zone); `UTC` when absent.
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub time_zone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetTimeZone {
    /// An IANA time zone name.
    pub time_zone: String,
}

/// `GET /households/{household}` (member token): the household (its name and time zone).
pub(crate) async fn household(
    State(app): State<Arc<AppState>>,
    Path(household): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let household = household_id(&household)?;
    bearer(&app, household, &headers).await?;
    let Some(found) = app
        .directory
        .household(household)
        .await
        .map_err(directory_error)?
    else {
        return Err(directory_error(DirectoryError::NoSuchHousehold(household)));
    };
    Ok(Json(found).into_response())
}

/// `PUT /households/{household}/time-zone` (owner token), `{"timeZone"}`: 200 with the
/// household as it is now; 400 `unknown_time_zone` (nothing changed), 403
/// `not_an_owner`.
pub(crate) async fn set_time_zone(
    State(app): State<Arc<AppState>>,
    Path(household): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let household = household_id(&household)?;
    let caller = bearer(&app, household, &headers).await?;
    let request: SetTimeZone = body(&bytes)?;
    let changed = changes::set_time_zone(&app, &caller.member, &request.time_zone).await?;
    Ok(Json(changed).into_response())
}

/// A member and the session that just began for them: `token` (the access token),
/// `expiresAt`, `refresh` and `session`.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub household: Household,
    pub member: Member,
    #[serde(flatten)]
    #[cfg_attr(feature = "ts", ts(flatten))]
    pub issued: Issued,
}

pub(crate) async fn create_household(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    app.limits.signup(peer.ip())?;
    let request: CreateHousehold = body(&bytes)?;
    let name = check_name("name", &request.name)?;
    let owner_name = check_name("ownerName", &request.owner_name)?;
    let time_zone = match &request.time_zone {
        Some(zone) => check_time_zone("timeZone", zone)?,
        None => DEFAULT_TIME_ZONE.to_owned(),
    };
    let now = app.clock.now();
    let household = Household {
        id: HouseholdId(uuid::Uuid::now_v7()),
        name,
        time_zone,
        created_at: now,
    };
    let owner = Member {
        household: household.id,
        id: MemberId(uuid::Uuid::now_v7()),
        name: owner_name,
        role: Role::Owner,
        joined_at: now,
    };
    changes::create(&app, household.clone(), owner.clone()).await?;
    let issued = sessions::start(&app, &owner, sessions::device(&headers)).await?;
    let out = Membership {
        household,
        member: owner,
        issued,
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// The HTTP answer to a directory refusal: every code defined once, here.
pub(crate) fn directory_error(e: DirectoryError) -> ApiError {
    match e {
        DirectoryError::NoSuchMember(_) => {
            ApiError::new(StatusCode::NOT_FOUND, codes::NO_SUCH_MEMBER, e.to_string())
        }
        DirectoryError::LastOwner => {
            ApiError::new(StatusCode::CONFLICT, codes::LAST_OWNER, e.to_string())
        }
        DirectoryError::SessionNotFound => ApiError::new(
            StatusCode::UNAUTHORIZED,
            codes::SESSION_NOT_FOUND,
            e.to_string(),
        ),
        DirectoryError::SessionEnded => ApiError::new(
            StatusCode::UNAUTHORIZED,
            codes::SESSION_ENDED,
            e.to_string(),
        ),
        DirectoryError::CredentialReused(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            codes::CREDENTIAL_REUSED,
            e.to_string(),
        ),
        DirectoryError::NoSuchHousehold(_) => {
            ApiError::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, e.to_string())
        }
        DirectoryError::InviteNotFound => {
            ApiError::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, e.to_string())
        }
        DirectoryError::InviteExpired => {
            ApiError::new(StatusCode::GONE, codes::INVITE_EXPIRED, e.to_string())
        }
        DirectoryError::InviteUsed => {
            ApiError::new(StatusCode::CONFLICT, codes::INVITE_USED, e.to_string())
        }
        DirectoryError::HouseholdExists(_) | DirectoryError::MemberExists(_) => {
            ApiError::new(StatusCode::CONFLICT, codes::CONFLICT, e.to_string())
        }
        DirectoryError::Store(e) => ApiError::unavailable("the directory", &e),
    }
}

fn household_id(raw: &str) -> Result<HouseholdId, ApiError> {
    raw.parse::<uuid::Uuid>().map(HouseholdId).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            format!("no household {raw:?}: a household id is a uuid"),
        )
    })
}

/// The refusal of a token whose member the directory does not (or no longer) count in,
/// or whose session was ended.
pub(crate) fn membership_refused(app: &AppState, e: MembershipError) -> ApiError {
    match e {
        MembershipError::NotAMember => {
            app.metrics.unauthorized.fetch_add(1, Ordering::Relaxed);
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                codes::UNAUTHORIZED,
                TokenError::NotAMember.to_string(),
            )
        }
        MembershipError::SessionEnded => {
            app.metrics.unauthorized.fetch_add(1, Ordering::Relaxed);
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                codes::SESSION_ENDED,
                e.to_string(),
            )
        }
        MembershipError::Unavailable => ApiError::unavailable("the directory", &e),
    }
}

/// Who is calling: the member as the directory has them now, and the session of their
/// token (if it names one).
pub(crate) struct Caller {
    pub member: Member,
    pub session: Option<SessionId>,
}

async fn bearer(
    app: &AppState,
    household: HouseholdId,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    let token = crate::auth::bearer_token(headers).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            codes::UNAUTHORIZED,
            "no token: send Authorization: Bearer <token>",
        )
    })?;
    let claims = app
        .tokens
        .verify_at(token, household, app.clock.now())
        .map_err(|e| {
            app.metrics.unauthorized.fetch_add(1, Ordering::Relaxed);
            ApiError::new(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, e.to_string())
        })?;
    // A signed token is not enough: the directory must still count its member in.
    let member = app
        .membership
        .check(household, claims.sub, claims.sid)
        .await
        .map_err(|e| membership_refused(app, e))?;
    // Every authenticated call counts against the member's rate.
    app.limits.member(household, member.id, None)?;
    Ok(Caller {
        member,
        session: claims.sid,
    })
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateInvite {
    /// Lifetime of the code in seconds (default: the server's invite TTL; at most 7 days).
    #[serde(default)]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub ttl_seconds: Option<u32>,
}

pub(crate) async fn create_invite(
    State(app): State<Arc<AppState>>,
    Path(household): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let household = household_id(&household)?;
    let caller = bearer(&app, household, &headers).await?;
    changes::owner_only(&caller.member, "invite")?;
    let member = caller.member.id;
    let request: CreateInvite = if bytes.is_empty() {
        CreateInvite::default()
    } else {
        body(&bytes)?
    };
    let default_ttl = app.settings.invite_ttl.as_secs();
    let ttl = request.ttl_seconds.map_or(default_ttl, u64::from);
    if ttl == 0 || ttl > 7 * 24 * 3600 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_MESSAGE,
            "ttlSeconds: must be 1 to 604800",
        ));
    }
    let now = app.clock.now();
    let invite = Invite {
        household,
        code: format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ),
        created_by: member,
        created_at: now,
        expires_at: now + chrono::Duration::seconds(i64::try_from(ttl).unwrap_or(3600)),
    };
    app.directory
        .create_invite(invite.clone())
        .await
        .map_err(directory_error)?;
    Ok((StatusCode::CREATED, Json(invite)).into_response())
}

#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceptInvite {
    pub code: String,
    /// The new member's display name.
    pub name: String,
}

pub(crate) async fn accept_invite(
    State(app): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(household): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    // No token here: guessing codes is held to the address's signup rate.
    app.limits.signup(peer.ip())?;
    let household = household_id(&household)?;
    let request: AcceptInvite = body(&bytes)?;
    let name = check_name("name", &request.name)?;
    let Some(found) = app
        .directory
        .household(household)
        .await
        .map_err(directory_error)?
    else {
        return Err(directory_error(DirectoryError::NoSuchHousehold(household)));
    };
    let member = Member {
        household,
        id: MemberId(uuid::Uuid::now_v7()),
        name,
        role: Role::Member,
        joined_at: app.clock.now(),
    };
    let member = changes::join(&app, household, &request.code, member).await?;
    let issued = sessions::start(&app, &member, sessions::device(&headers)).await?;
    let out = Membership {
        household: found,
        member,
        issued,
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

// ---------------------------------------------------------------------------
// The room's HTTP side
// ---------------------------------------------------------------------------

/// `GET` of a room: the same bounded view as the welcome.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct RoomState {
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub seq: u64,
    /// The projection at `seq` of each list's most recent items (orders, chores).
    pub state: HouseholdView,
    /// How many items of each list came before those in `state`.
    #[serde(flatten)]
    #[cfg_attr(feature = "ts", ts(flatten))]
    pub older: Older,
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RoomEvents {
    /// Events after `since`, in seq order (at most `limit`, default and cap 500).
    pub events: Vec<EventEnvelope>,
    /// The household's last seq when read: more follow if it is above the last event's.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub head: u64,
}

/// GET: `{seq, state}`, or with `since=N` `{events, head}`.
pub(crate) async fn room_get(
    app: &AppState,
    room: HouseholdId,
    since: Option<u64>,
    query: &HashMap<String, String>,
) -> Response {
    let result = match since {
        Some(since) => events_after(app, room, since, query).await,
        None => state(app, room).await,
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn events_after(
    app: &AppState,
    room: HouseholdId,
    since: u64,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => PAGE,
        Some(Ok(n)) if (1..=PAGE).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::INVALID_MESSAGE,
                format!("limit: expected an integer from 1 to {PAGE}"),
            ));
        }
    };
    let head = app
        .store
        .head(room)
        .await
        .map_err(|e| ApiError::unavailable(STORE, &e))?;
    let events = app
        .store
        .read_feed(room, since, limit)
        .await
        .map_err(|e| ApiError::unavailable(STORE, &e))?;
    Ok(Json(RoomEvents { events, head }).into_response())
}

async fn state(app: &AppState, room: HouseholdId) -> Result<Response, ApiError> {
    // The node's kept view, brought up to date: the cost is the events since it was last
    // read, not the household's history; and only its most recent orders are copied and
    // sent, as in the welcome.
    let bound = app.settings.view_bound;
    let state = app
        .rooms
        .read_view(room, |view| {
            let window = Window::of(view, bound);
            RoomState {
                seq: view.seq,
                older: window.older(),
                state: window.view(view),
            }
        })
        .await
        .map_err(|e| ApiError::unavailable(STORE, &e))?;
    Ok(Json(state).into_response())
}

/// `GET /households/{household}/{list}?before=K&limit=L` (member token), for each of the
/// view's lists (`orders`, `chores`): the items before the `K`-th (default: all of them),
/// the most recent first up to `L` (default and maximum: the server's view bound, 100)
/// and the bound's bytes, returned oldest first at the node's kept view of the household.
/// A client pages back with `before=<olderOrders>` (`olderChores`) from the welcome until
/// it is 0.
pub(crate) async fn list_page(
    app: Arc<AppState>,
    list: List,
    household: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    wire::check_storable_query(&query)?;
    let household = household_id(&household)?;
    bearer(&app, household, &headers).await?;
    let bound = app.settings.view_bound;
    let items = list.name();
    let number = |name: &str, max: usize| -> Result<Option<usize>, ApiError> {
        match query.get(name).map(|v| v.parse::<usize>()) {
            None => Ok(None),
            Some(Ok(n)) if (1..=max).contains(&n) || (name == "before" && n == 0) => Ok(Some(n)),
            Some(_) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::INVALID_MESSAGE,
                if name == "limit" {
                    format!("limit: expected an integer from 1 to {max}")
                } else {
                    format!("{name}: expected a non-negative integer (a count of {items})")
                },
            )),
        }
    };
    let before = number("before", usize::MAX)?.unwrap_or(usize::MAX);
    let limit = number("limit", bound.items.max(1))?.unwrap_or(bound.items.max(1));
    let bound = Bound {
        items: limit,
        bytes: bound.bytes,
    };
    let page = app
        .rooms
        .read_view(household, |view| window::page(view, list, before, bound))
        .await
        .map_err(|e| ApiError::unavailable(STORE, &e))?;
    Ok(Json(page).into_response())
}

/// POST: a command, as `{"id", "type", "payload", ...}` (or wrapped in `{"command": ...}`).
/// 200 ack, 409 or 422 rejected, 400 bad input, 503 store unavailable.
pub(crate) async fn room_post(
    app: &AppState,
    room: HouseholdId,
    member: MemberId,
    role: Role,
    bytes: &[u8],
) -> Response {
    let wrapped = matches!(
        serde_json::from_slice::<serde_json::Value>(bytes),
        Ok(serde_json::Value::Object(map)) if map.len() == 1 && map.contains_key("command")
    );
    let parsed = if wrapped {
        match wire::parse_client_message(&String::from_utf8_lossy(bytes)) {
            Ok(wire::ClientMessage::Command(command)) => Ok(command),
            Ok(wire::ClientMessage::Sync(_)) => Err(wire::BadInput::new(
                codes::UNKNOWN_MESSAGE_TYPE,
                "sync is for sockets; use GET with since=N",
            )),
            Ok(wire::ClientMessage::Renew(_)) => Err(wire::BadInput::new(
                codes::UNKNOWN_MESSAGE_TYPE,
                "renew is for sockets; over HTTP each request carries its token",
            )),
            Err(bad) => Err(bad),
        }
    } else {
        wire::parse_wire_command(bytes)
    };
    let command = match parsed {
        Ok(command) => command,
        Err(bad) => {
            app.metrics.bad_input.fetch_add(1, Ordering::Relaxed);
            return json_response(StatusCode::BAD_REQUEST, bad.to_message().to_json());
        }
    };
    if let Err(refusal) = app.limits.member(room, member, Some(command.id)) {
        return refusal.into_response();
    }
    let reply = commands::execute(app, room, member, role, command).await;
    let status = match &reply {
        ServerMessage::Ack(_) => StatusCode::OK,
        ServerMessage::Rejected(r) if commands::is_conflict(&r.code) => StatusCode::CONFLICT,
        ServerMessage::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ServerMessage::Error(e) if e.code == codes::UNAVAILABLE || e.code == codes::CONTENTION => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::BAD_REQUEST,
    };
    json_response(status, reply.to_json())
}
