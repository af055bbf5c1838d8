//! Deployment safety at the edge (issue 13, item 7): which browser origins may open a
//! socket or change anything, CORS for them, the security headers, and `/metrics` on a
//! listener of its own. A server on port 0, real HTTP and WebSocket clients on loopback.
#![allow(clippy::unwrap_used)]

mod common;

use common::TestApp;
use futures::StreamExt;
use hearth_axum::{LoopbackOrigins, Settings};
use hearth_core::HouseholdId;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

const GUARD: Duration = Duration::from_secs(20);
/// An origin the tests configure with `allowed_origins`.
const LISTED: &str = "https://app.example";
/// A site the server knows nothing of.
const FOREIGN: &str = "https://evil.example";

async fn spawn(change: impl FnOnce(&mut Settings)) -> TestApp {
    common::spawn(|s| {
        s.allowed_origins = vec![LISTED.parse().unwrap()];
        change(s);
    })
    .await
}

impl TestApp {
    /// The server's own origin, as a browser on its web app sends it.
    fn own_origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn created(&self) -> usize {
        self.directory.households_created()
    }

    /// POST /households with this `Origin` (none: `None`) and content type.
    async fn create_household_from(
        &self,
        origin: Option<&str>,
        content_type: &str,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.url("/households"))
            .header("content-type", content_type)
            .body(json!({"name": "Home", "ownerName": "Ann"}).to_string());
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send().await.unwrap()
    }

    async fn household_pair(&self) -> (HouseholdId, String) {
        let res = self.create_household_from(None, "application/json").await;
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        (
            serde_json::from_value(body["household"]["id"].clone()).unwrap(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Opens a socket to the room with this `Origin`: `Ok(first message)` or
    /// `Err((status, body))` of the refused handshake.
    async fn open(
        &self,
        hh: HouseholdId,
        token: &str,
        origin: Option<&str>,
    ) -> Result<Value, (u16, Value)> {
        let url = format!(
            "ws://{}/parties/household/{hh}?_pk={}&token={token}",
            self.addr,
            Uuid::new_v4()
        );
        let mut request = url.into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        let connected = tokio::time::timeout(GUARD, tokio_tungstenite::connect_async(request))
            .await
            .unwrap();
        match connected {
            Ok((mut ws, _)) => {
                let first = tokio::time::timeout(GUARD, ws.next()).await.unwrap();
                let text = first.unwrap().unwrap().into_text().unwrap();
                Ok(serde_json::from_str(&text).unwrap())
            }
            Err(WsError::Http(response)) => {
                let status = response.status().as_u16();
                let body = response.into_body().unwrap_or_default();
                Err((status, serde_json::from_slice(&body).unwrap()))
            }
            Err(e) => panic!("handshake failed otherwise: {e}"),
        }
    }

    async fn refused_origins(&self) -> u64 {
        self.metric(r#"hearth_refused_total{reason="origin"}"#)
            .await
    }
}

fn assert_origin_refusal(status: u16, body: &Value) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "origin_not_allowed", "{body}");
}

#[tokio::test]
async fn a_socket_from_a_foreign_origin_is_refused_before_the_upgrade() {
    let app = spawn(|_| {}).await;
    let (hh, token) = app.household_pair().await;
    // A valid token: only the origin is wrong.
    let (status, body) = app.open(hh, &token, Some(FOREIGN)).await.unwrap_err();
    assert_origin_refusal(status, &body);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("evil.example"),
        "{body}"
    );
    let (status, body) = app.open(hh, &token, Some("null")).await.unwrap_err();
    assert_origin_refusal(status, &body);
    assert_eq!(app.refused_origins().await, 2);
    // The web app's own origin, a listed one, a loopback dev server (the server listens
    // on loopback) and a client that sends no Origin all get in.
    let own = app.own_origin();
    for origin in [
        Some(own.as_str()),
        Some(LISTED),
        Some("http://localhost:5173"),
        None,
    ] {
        let first = app.open(hh, &token, origin).await.unwrap();
        assert!(first["welcome"].is_object(), "{origin:?}: {first}");
    }
    assert_eq!(app.refused_origins().await, 2);
}

#[tokio::test]
async fn loopback_origins_are_refused_when_not_in_development() {
    let app = spawn(|s| s.loopback_origins = LoopbackOrigins::Refused).await;
    let (hh, token) = app.household_pair().await;
    for origin in ["http://localhost:5173", "http://127.0.0.1:3000"] {
        let (status, body) = app.open(hh, &token, Some(origin)).await.unwrap_err();
        assert_origin_refusal(status, &body);
    }
    // Its own origin is 127.0.0.1 too, and still allowed.
    let own = app.own_origin();
    assert!(app.open(hh, &token, Some(&own)).await.unwrap()["welcome"].is_object());
}

#[tokio::test]
async fn a_cross_site_post_creates_nothing() {
    let app = spawn(|_| {}).await;
    // A form or fetch from another site: text/plain needs no preflight, so only the
    // server can refuse it.
    for content_type in ["text/plain", "application/json"] {
        let res = app.create_household_from(Some(FOREIGN), content_type).await;
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        assert_origin_refusal(status, &body);
    }
    assert_eq!(app.created(), 0, "nothing was created");
    assert_eq!(app.refused_origins().await, 2);
    // The same requests from the web app itself, a listed origin, or no browser at all.
    let own = app.own_origin();
    for origin in [Some(own.as_str()), Some(LISTED), None] {
        let res = app.create_household_from(origin, "text/plain").await;
        assert_eq!(res.status(), 201, "{origin:?}");
    }
    assert_eq!(app.created(), 3);
    // A member's POST to the room is refused the same way.
    let (hh, token) = app.household_pair().await;
    let res = app
        .http
        .post(app.url(&format!("/parties/household/{hh}")))
        .bearer_auth(&token)
        .header("origin", FOREIGN)
        .body("{}")
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    assert_origin_refusal(status, &res.json().await.unwrap());
}

#[tokio::test]
async fn cors_answers_allowed_origins_only() {
    let app = spawn(|_| {}).await;
    let preflight = |origin: &str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/households"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization",
            )
            .send()
    };
    let res = preflight(LISTED).await.unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers();
    let header = |name: &str| {
        h.get(name)
            .map(|v| v.to_str().unwrap().to_ascii_lowercase())
    };
    assert_eq!(
        header("access-control-allow-origin").as_deref(),
        Some(LISTED)
    );
    let methods = header("access-control-allow-methods").unwrap();
    assert!(
        methods.contains("get") && methods.contains("post"),
        "{methods}"
    );
    let headers = header("access-control-allow-headers").unwrap();
    assert!(
        headers.contains("content-type") && headers.contains("authorization"),
        "{headers}"
    );
    assert!(header("access-control-allow-credentials").is_none());

    let res = preflight(FOREIGN).await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert_origin_refusal(403, &res.json().await.unwrap());

    // A read from an allowed origin may be read by its page; from a foreign one it is
    // answered (a GET changes nothing) but without the header, so the browser hides it.
    let get = |origin: &str| {
        app.http
            .get(app.url("/healthz"))
            .header("origin", origin)
            .send()
    };
    let res = get(LISTED).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], LISTED);
    let res = get(FOREIGN).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn the_web_app_and_the_api_send_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<html>app</html>").unwrap();
    let web_dir = dir.path().to_path_buf();
    let app = spawn(|s| s.web_dir = Some(web_dir)).await;
    for path in ["/", "/index.html", "/join/a/b"] {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {directive} not in {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
    }
    // The API's answers, errors and refusals included.
    let (hh, _) = app.household_pair().await;
    let api = [
        app.http.get(app.url("/healthz")).send().await.unwrap(),
        app.http
            .get(app.url(&format!("/parties/household/{hh}")))
            .send()
            .await
            .unwrap(),
        app.create_household_from(Some(FOREIGN), "text/plain").await,
        app.create_household_from(None, "application/json").await,
    ];
    let statuses: Vec<u16> = api.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [200, 401, 403, 201]);
    for res in &api {
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{}", res.url());
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(
            h["content-security-policy"],
            "default-src 'none'; frame-ancestors 'none'"
        );
    }
}

#[tokio::test]
async fn metrics_can_have_a_listener_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<html>app</html>").unwrap();
    let web_dir = dir.path().to_path_buf();
    let app = spawn(|s| {
        s.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        s.web_dir = Some(web_dir);
    })
    .await;
    let private = app.metrics_addr.unwrap();
    assert_ne!(private, app.addr);
    // A refusal on the public listener shows on the private one.
    let res = app.create_household_from(Some(FOREIGN), "text/plain").await;
    assert_eq!(res.status(), 403);
    let res = app
        .http
        .get(format!("http://{private}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("hearth_refused_total{reason=\"origin\"} 1"),
        "{text}"
    );
    // Not on the public listener: a JSON 404, not the web app's index.html.
    let res = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    // And the private listener serves nothing of the public API.
    let res = app
        .http
        .post(format!("http://{private}/households"))
        .json(&json!({"name": "Home", "ownerName": "Ann"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(app.created(), 0);
}
