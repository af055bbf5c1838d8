//! `check_schema`: a process refuses to start on a database that lacks migrations it
//! knows, and says what to do, instead of failing at its first append.

#![allow(clippy::unwrap_used)]

mod common;

use hearth_postgres::{MIGRATIONS, check_schema, connect, migrate};

#[tokio::test]
async fn a_database_behind_the_binary_is_refused_with_what_to_do() {
    // The shared test database is migrated: accepted.
    let shared = common::db().await;
    check_schema(&shared.connect(&shared.app).await)
        .await
        .unwrap();

    // A database of its own (not named like the shared ones, which other test
    // processes clean up), owned by the owner role the shared set-up created.
    let own = common::OwnDb::create("hearth_schema").await;
    let as_role = |role: &str| own.as_role(role);
    let owner = connect(&as_role("hearth_owner")).await.unwrap();
    let app = connect(&as_role("hearth_app")).await.unwrap();
    let refusal = |result: Result<(), hearth_postgres::PgError>| {
        let message = result.unwrap_err().to_string();
        assert!(message.contains("run `hearth migrate`"), "{message}");
        message
    };

    // Never migrated.
    let message = refusal(check_schema(&app).await);
    assert!(message.contains("not migrated"), "{message}");

    migrate(&owner).await.unwrap();
    check_schema(&app).await.unwrap();

    // The newest migration taken back: a database an older binary migrated.
    let latest = MIGRATIONS.last().unwrap().version;
    owner
        .execute(
            "DELETE FROM hearth_migrations WHERE version = $1",
            &[&latest],
        )
        .await
        .unwrap();
    let message = refusal(check_schema(&app).await);
    assert!(
        message.contains(&format!("at migration {}", latest - 1))
            && message.contains(&format!("needs migration {latest}")),
        "{message}"
    );

    // Before migration 2 the application role could not read the table at all.
    owner
        .batch_execute("REVOKE SELECT ON hearth_migrations FROM hearth_app")
        .await
        .unwrap();
    let message = refusal(check_schema(&app).await);
    assert!(message.contains("older than migration 2"), "{message}");

    drop((owner, app));
    own.drop_now().await;
}
