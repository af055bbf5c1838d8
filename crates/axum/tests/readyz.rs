//! `/readyz` past its limit: a store that does not answer within 2 s makes the node not
//! ready (503, the check named, nothing of the cause); once it answers, ready again.
//! (Against a real PostgreSQL stopped and started: crates/hearth/tests/readyz.rs.)

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use common::Gated;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_does_not_answer_in_time_makes_the_node_not_ready() {
    let gated = Gated::closed();
    let app = common::spawn_wrapped(|store| gated.wrap(store), |_| {}).await;
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["checks"]["store"]["error"], "timed out", "{body}");
    assert_eq!(body["checks"]["feed"]["ok"], true, "{body}");
    // The process is alive all the same.
    let alive = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(alive.status(), 200);

    gated.heads.add_permits(1);
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["ready"], true, "{body}");
}
