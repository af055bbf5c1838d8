/// What can go wrong talking to Temporal.
#[derive(Debug, thiserror::Error)]
pub enum TemporalError {
    #[error("invalid Temporal address {address:?}: {message}")]
    Address { address: String, message: String },
    #[error("cannot connect to Temporal at {address}: {message}")]
    Connect { address: String, message: String },
    #[error("Temporal client: {0}")]
    Client(String),
    #[error("Temporal worker: {0}")]
    Worker(String),
    #[error("Temporal dev server: {0}")]
    DevServer(String),
}
