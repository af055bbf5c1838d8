//! TLS to PostgreSQL honours the URL's `sslmode`, as libpq does, on the shared
//! server (ssl on, Debian's snakeoil certificate) and on private servers: one with a
//! certificate this test issues from its own CA, one with TLS off.

#![allow(clippy::unwrap_used)]

mod common;

use hearth_postgres::{FeedOptions, PgEventFeed, connect, parse_url, pool};
use std::time::Duration;

async fn encrypted(client: &tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// `host:port` of the shared server.
fn shared_host_port() -> (String, u16) {
    let config: tokio_postgres::Config = common::server_url().parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".into(),
    };
    (host, config.get_ports().first().copied().unwrap_or(5432))
}

fn shared_url(user: &str, db: &str, query: &str) -> String {
    let (host, port) = shared_host_port();
    format!("postgres://{user}:{user}@{host}:{port}/{db}?{query}")
}

#[tokio::test]
async fn sslmode_decides_whether_the_session_is_encrypted() {
    let db = common::db().await;
    let admin = connect(&db.admin).await.unwrap();
    let ssl: String = admin.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        ssl, "on",
        "the shared server must have ssl on for this test"
    );

    let session = |query: &str| {
        let url = shared_url(common::APP, &db.name, query);
        async move {
            let config = parse_url(&url).unwrap();
            encrypted(&connect(&config).await.unwrap()).await
        }
    };
    assert!(!session("sslmode=disable").await, "disable: plaintext");
    assert!(
        session("sslmode=prefer").await,
        "prefer: TLS when the server has it"
    );
    assert!(session("application_name=x").await, "no sslmode is prefer");
    assert!(session("sslmode=require").await, "require: TLS");

    // The pool takes the same settings.
    let pooled = pool(
        parse_url(&shared_url(common::APP, &db.name, "sslmode=require")).unwrap(),
        1,
    )
    .unwrap();
    assert!(encrypted(&pooled.get().await.unwrap()).await, "pooled");

    // The feed's dedicated listener too.
    let name = format!("hearth-feed-tls-{}", uuid::Uuid::now_v7().simple());
    let feed = PgEventFeed::start(
        parse_url(&shared_url(common::RELAY, &db.name, "sslmode=require")).unwrap(),
        FeedOptions {
            application_name: name.clone(),
            ..FeedOptions::default()
        },
    );
    assert!(feed.wait_connected(1, Duration::from_secs(10)).await);
    let listener_ssl: bool = admin
        .query_one(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
              WHERE a.application_name = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(listener_ssl, "the feed's listener is encrypted");
}

struct Pki {
    ca: String,
    other_ca: String,
    server_cert: String,
    server_key: String,
}

/// A CA, a server certificate it signs for `db.example.invalid` only, and an
/// unrelated CA.
fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        (params, key, cert)
    };
    let (ca_params, ca_key, ca_cert) = ca("hearth test CA");
    let (_, _, other_ca) = ca("another CA");
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["db.example.invalid".to_owned()])
        .unwrap()
        .signed_by(&server_key, &Issuer::from_params(&ca_params, &ca_key))
        .unwrap();
    Pki {
        ca: ca_cert.pem(),
        other_ca: other_ca.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
    }
}

#[tokio::test]
async fn verify_full_and_verify_ca_check_the_certificate() {
    let pki = pki();
    let server = {
        let (cert, key) = (pki.server_cert.clone(), pki.server_key.clone());
        tokio::task::spawn_blocking(move || common::PrivateServer::start_with_tls(&cert, &key))
            .await
            .unwrap()
    };
    let ca = format!("{}/ca.pem", server.dir);
    let other_ca = format!("{}/other-ca.pem", server.dir);
    std::fs::write(&ca, &pki.ca).unwrap();
    std::fs::write(&other_ca, &pki.other_ca).unwrap();
    let port = server.port;
    let url = |host: &str, query: &str| {
        format!("postgres://postgres@{host}:{port}/postgres?hostaddr=127.0.0.1&{query}")
    };
    let try_connect = |url: String| async move {
        let config = parse_url(&url).unwrap();
        match connect(&config).await {
            Ok(client) => Ok(encrypted(&client).await),
            Err(e) => Err(e.to_string()),
        }
    };

    // The name the certificate is for, and the CA that signed it: accepted.
    assert_eq!(
        try_connect(url(
            "db.example.invalid",
            &format!("sslmode=verify-full&sslrootcert={ca}")
        ))
        .await,
        Ok(true)
    );
    // Another name: refused, saying why.
    let error = try_connect(url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await
    .unwrap_err();
    assert!(
        error.contains("127.0.0.1")
            && error.contains("sslmode=verify-full")
            && error.contains("not valid for name"),
        "{error}"
    );
    // verify-ca checks the chain, not the name.
    assert_eq!(
        try_connect(url(
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={ca}")
        ))
        .await,
        Ok(true)
    );
    // A CA that did not sign it: refused by verify-ca, verify-full, and by require
    // given that root (libpq's rule: require with a root certificate is verify-ca).
    for mode in ["verify-ca", "verify-full", "require"] {
        let error = try_connect(url(
            "db.example.invalid",
            &format!("sslmode={mode}&sslrootcert={other_ca}"),
        ))
        .await
        .unwrap_err();
        assert!(error.contains("UnknownIssuer"), "{mode}: {error}");
    }
    // The system's roots do not know the test's CA.
    let error = try_connect(url(
        "db.example.invalid",
        "sslmode=verify-full&sslrootcert=system",
    ))
    .await
    .unwrap_err();
    assert!(error.contains("UnknownIssuer"), "{error}");
    // require without a root: encrypted, certificate not checked.
    assert_eq!(
        try_connect(url("127.0.0.1", "sslmode=require")).await,
        Ok(true)
    );
}

#[tokio::test]
async fn prefer_falls_back_to_plaintext_only_when_the_server_refuses_tls() {
    let server = tokio::task::spawn_blocking(common::PrivateServer::start)
        .await
        .unwrap();
    let url = |mode: &str| {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode={mode}",
            server.port
        )
    };
    let prefer = connect(&parse_url(&url("prefer")).unwrap()).await.unwrap();
    assert!(
        !encrypted(&prefer).await,
        "prefer, server without TLS: plaintext"
    );
    let error = connect(&parse_url(&url("require")).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("sslmode=require") && error.contains("server does not support TLS"),
        "{error}"
    );
}
