//! What the web client needs from the server: the catalog, the members, and the built
//! app served with an index.html fallback, behind the API routes.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use hearth_axum::{Application, Ports, Settings, TokenSecret};
use hearth_core::Service;
use hearth_core::ports::Catalog;
use hearth_memory::{MemoryDirectory, MemoryEventStore, MemoryInventory, SystemClock};
use serde_json::{Value, json};
use std::sync::Arc;

async fn spawn(catalog: Option<Arc<dyn Catalog>>, web_dir: Option<std::path::PathBuf>) -> String {
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        token_secret: TokenSecret::new("test-secret-of-at-least-32-bytes!").unwrap(),
        web_dir,
        ..Settings::default()
    };
    let store = Arc::new(MemoryEventStore::new());
    let mut service = Service::new(store.clone(), Arc::new(SystemClock));
    if let Some(catalog) = catalog {
        service = service.with_catalog(catalog);
    }
    let ports = Ports {
        feed: Arc::new(store.feed()),
        service,
        directory: Arc::new(MemoryDirectory::new()),
    };
    let app = Application::build(settings, ports).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped());
    base
}

#[tokio::test]
async fn catalog_is_the_service_s_or_404_without_one() {
    let http = reqwest::Client::new();
    let inventory = Arc::new(MemoryInventory::default());
    let base = spawn(Some(inventory.clone()), None).await;
    let res = http.get(format!("{base}/catalog")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let items: Vec<Value> = res.json().await.unwrap();
    assert!(!items.is_empty());
    assert!(items[0]["sku"].is_string() && items[0]["unitPriceCents"].is_u64());
    // Availability is shown, so a member sees before sending how many there are.
    let coffee = items.iter().find(|i| i["sku"] == "coffee").unwrap();
    assert_eq!(coffee["available"], 50);
    // A catalog that cannot be read is a 503, not an empty shop.
    inventory.catalog_down(true);
    let res = http.get(format!("{base}/catalog")).send().await.unwrap();
    assert_eq!(res.status(), 503);

    let base = spawn(None, None).await;
    let res = http.get(format!("{base}/catalog")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    // Without a web dir, unknown paths are plain 404s too.
    let res = http.get(format!("{base}/join/a/b")).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn members_need_a_token_of_the_household() {
    let http = reqwest::Client::new();
    let base = spawn(None, None).await;
    let created: Value = http
        .post(format!("{base}/households"))
        .json(&json!({"name": "Home", "ownerName": "Ann"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hh = created["household"]["id"].as_str().unwrap();
    let token = created["token"].as_str().unwrap();
    let members: Vec<Value> = http
        .get(format!("{base}/households/{hh}/members"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["name"], "Ann");
    let other: Value = http
        .post(format!("{base}/households"))
        .json(&json!({"name": "Other", "ownerName": "Carol"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let res = http
        .get(format!("{base}/households/{hh}/members"))
        .bearer_auth(other["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn names_with_control_characters_are_refused() {
    let http = reqwest::Client::new();
    let base = spawn(None, None).await;
    // A NUL no store can hold: refused at the wire, naming the field.
    let cases = [
        ("Home\u{0}", "Ann", "unstorable_text", "name: "),
        (
            "Home",
            "Ann\u{1b}[2J",
            "invalid_message",
            "must not contain control characters",
        ),
    ];
    for (name, owner, code, needle) in cases {
        let res = http
            .post(format!("{base}/households"))
            .json(&json!({"name": name, "ownerName": owner}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{body}"
        );
    }
}

#[tokio::test]
async fn serves_the_web_app_with_an_index_fallback_behind_the_api() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<html>app</html>").unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("assets/app.js"), "console.log(1)").unwrap();
    let base = spawn(None, Some(dir.path().to_path_buf())).await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{base}{path}")).send();
    let root = get("/").await.unwrap();
    assert_eq!(root.status(), 200);
    assert_eq!(root.text().await.unwrap(), "<html>app</html>");
    assert_eq!(
        get("/assets/app.js").await.unwrap().text().await.unwrap(),
        "console.log(1)"
    );
    // A client route gets the app.
    let join = get("/join/some-household/some-code").await.unwrap();
    assert_eq!(join.status(), 200);
    assert_eq!(join.text().await.unwrap(), "<html>app</html>");
    let board = get("/h/some-household").await.unwrap();
    assert_eq!(board.status(), 200);
    assert!(
        board
            .headers()
            .get("content-security-policy")
            .is_some_and(|v| v.to_str().unwrap().contains("script-src 'self'"))
    );
    assert_eq!(board.text().await.unwrap(), "<html>app</html>");
    // Anything else that is not a file is a JSON 404, never the app with 200.
    for path in [
        "/api/nope",
        "/nope",
        "/assets/missing.js",
        "/h/a/b",
        "/households/x/nope",
    ] {
        let res = get(path).await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{path}: {body}");
        assert_eq!(
            body["error"]["message"],
            format!("nothing at {path}"),
            "{path}"
        );
    }
    // API routes keep priority.
    assert_eq!(get("/healthz").await.unwrap().text().await.unwrap(), "ok\n");
    let room = get(&format!("/parties/household/{}", uuid::Uuid::nil()))
        .await
        .unwrap();
    assert_eq!(room.status(), 401);
}
