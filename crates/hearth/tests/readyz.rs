//! `/readyz` against a real PostgreSQL that stops and starts again: not ready while the
//! database is down (store and feed), ready again once it is back; `/healthz` says alive
//! all along.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

#[path = "../../postgres/tests/common/mod.rs"]
mod pg;

use hearth_axum::{Application, Ports, Settings, TokenSecret};
use hearth_core::Service;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads `/readyz` until it answers `want` (a bounded poll: the database is another
/// process, with no event to wait on), and returns the last body.
async fn until_ready(http: &reqwest::Client, url: &str, want: bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let res = http.get(url).send().await.unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status == 200, body["ready"] == true, "{status} {body}");
        if body["ready"] == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "readyz never became {want}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_database_down_and_back() {
    let server = pg::PrivateServer::start();
    let db = pg::setup(server.config(), "hearth_readyz").await;
    let ports = Ports {
        service: Service::new(db.store(), Arc::new(hearth_memory::SystemClock)),
        feed: Arc::new(db.feed(hearth_postgres::FeedOptions::default())),
        directory: db.directory(),
    };
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        token_secret: TokenSecret::new("readyz-test-secret-0123456789abcdef").unwrap(),
        ..Settings::default()
    };
    let app = Application::build(settings, ports).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let readyz = format!("{base}/readyz");

    let up = until_ready(&http, &readyz, true).await;
    assert_eq!(up["checks"]["store"]["ok"], true, "{up}");
    assert_eq!(up["checks"]["feed"]["ok"], true, "{up}");

    server.stop();
    let down = until_ready(&http, &readyz, false).await;
    assert_eq!(down["checks"]["store"]["ok"], false, "{down}");
    let text = down.to_string();
    assert!(
        !text.contains("postgres") && !text.contains("SQLSTATE"),
        "{text}"
    );
    let alive = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(alive.status(), 200, "alive while not ready");

    server.start_again();
    let back = until_ready(&http, &readyz, true).await;
    assert_eq!(back["checks"]["feed"]["ok"], true, "{back}");
}
