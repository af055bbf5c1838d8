//! `check_role`: a process refuses a role that row-level security does not bind
//! (superuser, BYPASSRLS, owner of a Hearth table or member of its owner), naming
//! the role and what to do, and accepts the application and relay roles.

#![allow(clippy::unwrap_used)]

mod common;

use hearth_postgres::{PgError, UnsafeRole, check_role, connect, parse_url};

/// Roles of this test only (roles are cluster-wide), dropped at the end.
struct Roles {
    admin: tokio_postgres::Client,
    names: Vec<String>,
}

impl Roles {
    async fn create(&mut self, name: &str, attributes: &str) {
        self.admin
            .batch_execute(&format!(
                "CREATE ROLE {name} LOGIN NOINHERIT {attributes}; \
                 GRANT CONNECT ON DATABASE {} TO {name}",
                common::db().await.name
            ))
            .await
            .unwrap();
        self.names.push(name.to_owned());
    }

    async fn drop_all(self) {
        for name in self.names {
            self.admin
                .batch_execute(&format!(
                    "REVOKE ALL ON DATABASE {} FROM {name}; DROP ROLE {name}",
                    common::db().await.name
                ))
                .await
                .unwrap();
        }
    }
}

async fn check_as(role: &str) -> Result<(), PgError> {
    let db = common::db().await;
    let mut config = db.app.clone();
    config.user(role).password(role);
    check_role(&connect(&config).await.unwrap()).await
}

fn refused(result: Result<(), PgError>, role: &str) -> UnsafeRole {
    let error = result.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(&format!("database role {role}:"))
            && message.contains("hearth_app")
            && message.contains("hearth migrate"),
        "the refusal names the role and what to do: {message}"
    );
    match error {
        PgError::UnsafeRole {
            role: named,
            reason,
        } => {
            assert_eq!(named, role);
            reason
        }
        other => panic!("not a role refusal: {other}"),
    }
}

#[tokio::test]
async fn roles_that_row_level_security_does_not_bind_are_refused() {
    let db = common::db().await;
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    let superuser = format!("hearth_t_super_{suffix}");
    let bypass = format!("hearth_t_bypass_{suffix}");
    let member = format!("hearth_t_member_{suffix}");
    let mut roles = Roles {
        admin: connect(&parse_url(&common::server_url()).unwrap())
            .await
            .unwrap(),
        names: Vec::new(),
    };
    roles.create(&superuser, "SUPERUSER").await;
    roles.create(&bypass, "NOSUPERUSER BYPASSRLS").await;
    roles
        .create(&member, "NOSUPERUSER NOBYPASSRLS IN ROLE hearth_owner")
        .await;

    // The application and relay roles: accepted.
    check_role(&db.connect(&db.app).await).await.unwrap();
    check_role(&db.connect(&db.relay).await).await.unwrap();

    assert_eq!(
        refused(check_as(&superuser).await, &superuser),
        UnsafeRole::Superuser
    );
    assert_eq!(
        refused(check_as(&bypass).await, &bypass),
        UnsafeRole::BypassRls
    );
    // The owner that migrated the schema.
    let owner = refused(
        check_role(&db.connect(&db.owner).await).await,
        common::OWNER,
    );
    assert!(
        matches!(&owner, UnsafeRole::Owner { table, owner }
            if hearth_postgres::HEARTH_TABLES.contains(&table.as_str()) && owner == common::OWNER),
        "{owner:?}"
    );
    // A member of the owner role (NOINHERIT, but it may SET ROLE to it).
    let as_member = refused(check_as(&member).await, &member);
    assert!(
        matches!(&as_member, UnsafeRole::Owner { owner, .. } if owner == common::OWNER),
        "{as_member:?}"
    );

    roles.drop_all().await;
}
