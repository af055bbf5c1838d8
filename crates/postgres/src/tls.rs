//! [`Config`]: where and how to connect, including TLS, which tokio-postgres's own
//! `Config` cannot fully say.
//!
//! TLS is rustls (through `tokio-postgres-rustls`, with the ring provider), and the
//! URL's `sslmode` means what it means to libpq:
//!
//! | sslmode | encrypted | certificate checked |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (the default) | if the server agrees; plaintext only if it refuses TLS | no |
//! | `require` | always | no (with `sslrootcert`: as `verify-ca`, as libpq does) |
//! | `verify-ca` | always | chain to `sslrootcert` (or the system roots) |
//! | `verify-full` | always | chain, and the host name (or IP address) it names |
//!
//! `sslrootcert` is a PEM file of trusted certificates, or `system` for the
//! operating system's roots (the default of the verifying modes). Client
//! certificates (`sslcert`, `sslkey`) are not supported and refused.

use crate::PgError;
use percent_encoding::percent_decode_str;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, PgError> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(PgError::Url(format!(
                    "sslmode {other:?} is not one of disable, prefer, require, verify-ca, \
                     verify-full"
                )));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// Where the trusted roots come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    File(PathBuf),
    System,
}

/// A PostgreSQL connection target: tokio-postgres's settings, the `sslmode`, and the
/// TLS connector built for it (certificates are read when the URL is parsed, so a
/// missing `sslrootcert` fails at start, naming the file).
#[derive(Clone)]
pub struct Config {
    pg: tokio_postgres::Config,
    ssl_mode: SslMode,
    root_cert: Option<RootCert>,
    tls: MakeRustlsConnect,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("pg", &self.pg) // tokio-postgres redacts the password
            .field("ssl_mode", &self.ssl_mode)
            .field("root_cert", &self.root_cert)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Parses a `postgres://` URL or a `key=value` string, with libpq's `sslmode`
    /// and `sslrootcert`.
    pub fn parse(url: &str) -> Result<Self, PgError> {
        let (rest, params) = split_ssl_params(url);
        let mut ssl_mode = SslMode::Prefer;
        let mut root_cert = None;
        for (key, value) in params {
            match key.as_str() {
                "sslmode" => ssl_mode = SslMode::parse(&value)?,
                "sslrootcert" if value == "system" => root_cert = Some(RootCert::System),
                "sslrootcert" => root_cert = Some(RootCert::File(PathBuf::from(value))),
                other => {
                    return Err(PgError::Url(format!(
                        "{other} is not supported: TLS client certificates and CRLs are not \
                         implemented (supported: sslmode, sslrootcert)"
                    )));
                }
            }
        }
        let mut pg = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| PgError::Url(crate::sql::describe(&e)))?;
        pg.ssl_mode(match ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let tls = connector(ssl_mode, root_cert.as_ref())?;
        Ok(Self {
            pg,
            ssl_mode,
            root_cert,
            tls,
        })
    }

    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    pub fn user(&mut self, user: &str) -> &mut Self {
        self.pg.user(user);
        self
    }

    pub fn password(&mut self, password: impl AsRef<[u8]>) -> &mut Self {
        self.pg.password(password);
        self
    }

    pub fn dbname(&mut self, dbname: &str) -> &mut Self {
        self.pg.dbname(dbname);
        self
    }

    pub fn application_name(&mut self, name: &str) -> &mut Self {
        self.pg.application_name(name);
        self
    }

    pub fn get_user(&self) -> Option<&str> {
        self.pg.get_user()
    }

    /// tokio-postgres's settings (host, port, user, ...).
    pub fn pg(&self) -> &tokio_postgres::Config {
        &self.pg
    }

    pub(crate) fn tls(&self) -> MakeRustlsConnect {
        self.tls.clone()
    }

    /// "host:port (sslmode=...)", for errors.
    pub fn target(&self) -> String {
        let host = match self.pg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => "?".into(),
        };
        let port = self.pg.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port} (sslmode={})", self.ssl_mode.as_str())
    }
}

/// Takes `sslmode`, `sslrootcert` and the other `ssl*` keys tokio-postgres does not
/// know (all but `sslnegotiation`) out of a URL's query or a key=value string, and
/// returns the rest for tokio-postgres with what was taken out.
fn split_ssl_params(url: &str) -> (String, Vec<(String, String)>) {
    let ours = |key: &str| key.starts_with("ssl") && key != "sslnegotiation";
    let mut taken = Vec::new();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_owned(), taken);
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key_text = percent_decode_str(key).decode_utf8_lossy();
            if ours(&key_text) {
                let value = percent_decode_str(value).decode_utf8_lossy().into_owned();
                taken.push((key_text.into_owned(), value));
            } else {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rest, taken);
    }
    // key=value form: keys, `=`, values plain or single-quoted with backslash escapes.
    let mut rest = String::with_capacity(url.len());
    let mut chars = url.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            rest.push(c);
            chars.next();
            continue;
        }
        let mut key = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|&(_, c)| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_some_and(|&(_, c)| c == '=') {
            chars.next();
        }
        while chars.peek().is_some_and(|&(_, c)| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek().is_some_and(|&(_, c)| c == '\'') {
            chars.next();
            while let Some((_, c)) = chars.next() {
                match c {
                    '\'' => break,
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        let end = chars.peek().map_or(url.len(), |&(i, _)| i);
        if ours(&key) {
            taken.push((key, value));
        } else {
            rest.push_str(&url[start..end]);
        }
    }
    (rest, taken)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn connector(mode: SslMode, root_cert: Option<&RootCert>) -> Result<MakeRustlsConnect, PgError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Tls(format!("TLS versions: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, root_cert) {
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => {
            Arc::new(Unverified(provider.signature_verification_algorithms))
        }
        (SslMode::Require | SslMode::VerifyCa, roots) => Arc::new(AnyName(webpki(
            roots.unwrap_or(&RootCert::System),
            provider,
        )?)),
        (SslMode::VerifyFull, roots) => webpki(roots.unwrap_or(&RootCert::System), provider)?,
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn webpki(
    roots: &RootCert,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, PgError> {
    let mut store = RootCertStore::empty();
    match roots {
        RootCert::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| PgError::Tls(format!("sslrootcert {}: {e}", path.display())))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(PgError::Tls(format!(
                    "sslrootcert {}: no usable certificate in it",
                    path.display()
                )));
            }
        }
        RootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(PgError::Tls(format!(
                    "sslrootcert=system: no trusted root certificate found on this system ({} \
                     errors); give sslrootcert=<PEM file>",
                    found.errors.len()
                )));
            }
        }
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
        .build()
        .map_err(|e| PgError::Tls(format!("certificate verifier: {e}")))
}

/// `prefer` and `require` without roots: encrypted, the certificate not checked (as
/// libpq does), the handshake's signatures still checked.
#[derive(Debug)]
struct Unverified(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name is not checked.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            // webpki checks the name only after the chain.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, Vec<(String, String)>) {
        split_ssl_params(url)
    }

    #[test]
    fn ssl_parameters_are_taken_out_of_urls() {
        assert_eq!(
            split(
                "postgres://u@h/db?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem"
            ),
            (
                "postgres://u@h/db?application_name=x".into(),
                vec![
                    ("sslmode".into(), "verify-full".into()),
                    ("sslrootcert".into(), "/tmp/ca.pem".into())
                ]
            )
        );
        assert_eq!(
            split("postgres://u@h/db?sslmode=require"),
            (
                "postgres://u@h/db".into(),
                vec![("sslmode".into(), "require".into())]
            )
        );
        assert_eq!(
            split("postgres://u@h/db"),
            ("postgres://u@h/db".into(), vec![])
        );
    }

    #[test]
    fn ssl_parameters_are_taken_out_of_key_value_strings() {
        let (rest, taken) =
            split("host=h user=u sslmode = verify-ca sslrootcert='/a b/c\\'s.pem' dbname=d");
        assert_eq!(
            taken,
            vec![
                ("sslmode".into(), "verify-ca".into()),
                ("sslrootcert".into(), "/a b/c's.pem".into())
            ]
        );
        let config = tokio_postgres::Config::from_str(&rest).unwrap();
        assert_eq!(config.get_user(), Some("u"));
        assert_eq!(config.get_dbname(), Some("d"));
    }

    #[test]
    fn modes_and_refusals() {
        let mode = |url: &str| Config::parse(url).map(|c| c.ssl_mode());
        assert_eq!(mode("postgres://u@h/db").unwrap(), SslMode::Prefer);
        assert_eq!(
            mode("postgres://u@h/db?sslmode=disable").unwrap(),
            SslMode::Disable
        );
        let bad = mode("postgres://u@h/db?sslmode=allow")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("sslmode \"allow\""), "{bad}");
        let bad = mode("postgres://u@h/db?sslcert=/c.pem")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("sslcert is not supported"), "{bad}");
        let bad = mode("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("sslrootcert /nonexistent/ca.pem"), "{bad}");
    }
}
