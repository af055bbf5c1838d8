//! What `/readyz` checks besides the store and the feed: the dependencies only the
//! composition root knows of (the schema is current, Temporal answers), each a named
//! check it hands over in [`crate::Settings::ready_checks`].

use futures::future::BoxFuture;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// Why a check failed: what `/readyz` says (no addresses, no database text) and the
/// cause, for the log only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotReady {
    /// Shown in `/readyz` as the check's `error`.
    pub error: String,
    /// Logged, never shown.
    pub cause: String,
}

impl NotReady {
    pub fn new(error: impl Into<String>, cause: impl fmt::Display) -> Self {
        Self {
            error: error.into(),
            cause: cause.to_string(),
        }
    }
}

type Run = dyn Fn() -> BoxFuture<'static, Result<(), NotReady>> + Send + Sync;

/// One named check of `/readyz`, run at each request (bounded by the same 2 s as the
/// store's).
#[derive(Clone)]
pub struct ReadyCheck {
    name: &'static str,
    run: Arc<Run>,
}

impl ReadyCheck {
    /// A check named `name` (its key in `/readyz`'s `checks`) that runs `check`.
    pub fn new<F, Fut>(name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), NotReady>> + Send + 'static,
    {
        Self {
            name,
            run: Arc::new(move || Box::pin(check())),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn run(&self) -> BoxFuture<'static, Result<(), NotReady>> {
        (self.run)()
    }
}

impl fmt::Debug for ReadyCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReadyCheck").field(&self.name).finish()
    }
}
