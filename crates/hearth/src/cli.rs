//! What every subcommand shares: the log's format, reading addresses, reporting errors.

use std::io::IsTerminal as _;
use std::net::{SocketAddr, ToSocketAddrs as _};

/// How log lines are written (to stderr).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event; colours only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line (for a log collector).
    Json,
}

/// Installs the log: `RUST_LOG` filters (default `info`), lines go to stderr. With an
/// OTLP endpoint, the spans are exported too (`otel.rs`); what it returns must be shut
/// down before exit, so the last batch is sent.
pub fn init_log(
    format: LogFormat,
    otlp: Option<(&str, String)>,
) -> anyhow::Result<Option<crate::otel::Otel>> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = match format {
        LogFormat::Text => lines.with_ansi(std::io::stderr().is_terminal()).boxed(),
        LogFormat::Json => lines.json().boxed(),
    };
    let (otel, export) = match otlp {
        Some((endpoint, service)) => {
            let (otel, layer) = crate::otel::init(endpoint, service)?;
            (Some(otel), Some(layer))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .with(export)
        .init();
    Ok(otel)
}

/// An address to listen on or connect to: `host:port`, where the host is an IP address
/// or a name (`localhost:8787`); a name is resolved now and its first address taken.
pub fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    const FORM: &str = "expected host:port, e.g. 127.0.0.1:8787, [::1]:8787 or localhost:8787";
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("{text:?} has no port: {FORM}"));
    };
    if host.is_empty() {
        return Err(format!("{text:?} has no host: {FORM}"));
    }
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "{text:?}: the port {port:?} is not a number from 0 to 65535 ({FORM})"
        ));
    }
    match text.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("{host:?} resolves to no address ({FORM})")),
        Err(e) => Err(format!("cannot resolve {host:?}: {e} ({FORM})")),
    }
}

/// Prints a failed command's error and its causes, one per line, without a backtrace
/// (an expected failure, such as a missing file, is not a crash), and returns the exit
/// status.
pub fn report(error: &anyhow::Error) -> std::process::ExitCode {
    let mut text = format!("error: {error}");
    for cause in error.chain().skip(1) {
        text.push_str(&format!("\n  because: {cause}"));
    }
    eprintln!("{text}");
    std::process::ExitCode::FAILURE
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn addresses_take_ip_literals_and_host_names() {
        assert_eq!(
            socket_addr("127.0.0.1:8787").unwrap(),
            "127.0.0.1:8787".parse().unwrap()
        );
        assert_eq!(socket_addr("[::1]:0").unwrap(), "[::1]:0".parse().unwrap());
        let local = socket_addr("localhost:8787").unwrap();
        assert!(local.ip().is_loopback(), "{local}");
        assert_eq!(local.port(), 8787);
    }

    #[test]
    fn a_bad_address_says_what_form_is_expected() {
        for (bad, says) in [
            ("localhost", "has no port"),
            (":8787", "has no host"),
            ("localhost:http", "not a number"),
            ("localhost:70000", "not a number"),
            ("no-such-host.invalid:80", "cannot resolve"),
        ] {
            let message = socket_addr(bad).unwrap_err();
            assert!(message.contains(says), "{bad}: {message}");
            assert!(message.contains("localhost:8787"), "{bad}: {message}");
        }
    }
}
