//! The room URL: `/parties/{household|main}/<household id>` and `/party/<household id>`
//! (any sub-path is the same room). Auth and membership are checked first, before any
//! upgrade; then a WebSocket upgrade joins the room ([`crate::socket`]) and any other
//! request is the room's HTTP API ([`crate::http`]).

use crate::app::AppState;
use crate::auth::{Claims, TokenError, bearer_token};
use crate::http::{self, ApiError};
use crate::socket;
use crate::wire::{self, codes};
use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hearth_core::HouseholdId;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// `/parties/{party}/{room}`: the party must be `household` (or its alias `main`).
pub(crate) async fn room(
    State(app): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    query: Query<HashMap<String, String>>,
    // The method, the headers and the client's address (when the listener knows it).
    parts: Parts,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    body: Bytes,
) -> Response {
    let party = params.get("party").map(String::as_str).unwrap_or_default();
    if party != "household" && party != "main" {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            format!(r#"no party "{party}": the party is "household" (alias "main")"#),
        )
        .into_response();
    }
    let room = params.get("room").map(String::as_str).unwrap_or_default();
    serve_room(app, room, query.0, parts, ws, body).await
}

/// `/party/{room}`: the default party.
pub(crate) async fn default_party_room(
    State(app): State<Arc<AppState>>,
    Path(params): Path<HashMap<String, String>>,
    query: Query<HashMap<String, String>>,
    // The method, the headers and the client's address (when the listener knows it).
    parts: Parts,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    body: Bytes,
) -> Response {
    let room = params.get("room").map(String::as_str).unwrap_or_default();
    serve_room(app, room, query.0, parts, ws, body).await
}

async fn serve_room(
    app: Arc<AppState>,
    room: &str,
    query: HashMap<String, String>,
    parts: Parts,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    body: Bytes,
) -> Response {
    // The client's address, when the listener knows it.
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let Parts {
        method, headers, ..
    } = parts;
    let Ok(room) = room.parse::<uuid::Uuid>().map(HouseholdId) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            format!("no room {room:?}: a room is a household id (a uuid)"),
        )
        .into_response();
    };
    // Before anything reads them: no query parameter may carry text a store refuses.
    if let Err(bad) = wire::check_storable_query(&query) {
        app.metrics.bad_input.fetch_add(1, Ordering::Relaxed);
        return ApiError::from(bad).into_response();
    }
    let claims = match authenticate(&app, room, &query, &headers) {
        Ok(claims) => claims,
        Err(e) => {
            app.metrics.unauthorized.fetch_add(1, Ordering::Relaxed);
            return ApiError::new(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, e.to_string())
                .into_response();
        }
    };
    // A signed token is not enough: the directory must still count its member in.
    let role = match app.membership.check(room, claims.sub, claims.sid).await {
        Ok(member) => member.role,
        Err(e) => return http::membership_refused(&app, e).into_response(),
    };
    let since = match query.get("since").map(|s| s.parse::<u64>()) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                codes::INVALID_MESSAGE,
                "since: expected a non-negative integer (a seq)",
            )
            .into_response();
        }
    };
    // Opening a socket and reading the room count against the member's rate (commands
    // are counted where they are parsed, so a refusal names them).
    if method == Method::GET
        && let Err(refusal) = app.limits.member(room, claims.sub, None)
    {
        return refusal.into_response();
    }
    match ws {
        Ok(ws) => match app.limits.open_socket(room, claims.sub) {
            Ok(permit) => socket::upgrade(
                app,
                ws,
                room,
                socket::Admitted { claims, role },
                query.get("_pk").cloned(),
                since,
                (permit, peer),
            ),
            Err(refusal) => refusal.into_response(),
        },
        Err(_) if method == Method::GET => http::room_get(&app, room, since, &query).await,
        Err(_) if method == Method::POST => http::room_post(&app, room, claims.sub, role, &body).await,
        Err(_) => ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            codes::METHOD_NOT_ALLOWED,
            "the room takes GET (state, or events with since=N), POST (a command) or a WebSocket upgrade",
        )
        .into_response(),
    }
}

/// The token from `token=` or `Authorization: Bearer`, checked for this room.
fn authenticate(
    app: &AppState,
    room: HouseholdId,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Claims, TokenError> {
    let token = query
        .get("token")
        .map(String::as_str)
        .or_else(|| bearer_token(headers))
        .ok_or(TokenError::Missing)?;
    app.tokens.verify_at(token, room, app.clock.now())
}
