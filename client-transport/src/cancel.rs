//! [`CancelToken`]: stop a sync from elsewhere (a "cancel" button, the app going to the
//! background). Dropping the sync future works too; the token is for callers, such as FFI
//! bindings, for which dropping a future is awkward.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

use crate::TransportError;

/// Cancels the operations it is passed to; clones share the state. Once cancelled, it stays
/// cancelled.
#[derive(Clone, Debug)]
pub struct CancelToken(Arc<watch::Sender<bool>>);

impl Default for CancelToken {
    fn default() -> Self {
        Self::new()
    }
}

impl CancelToken {
    pub fn new() -> Self {
        CancelToken(Arc::new(watch::Sender::new(false)))
    }

    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the token is cancelled.
    pub async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so waiting cannot fail for lack of one.
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// Runs `fut` unless `cancel` fires first.
pub(crate) async fn cancellable<T>(
    cancel: Option<&CancelToken>,
    fut: impl Future<Output = T>,
) -> Result<T, TransportError> {
    match cancel {
        None => Ok(fut.await),
        Some(c) => {
            tokio::select! {
                biased;
                _ = c.cancelled() => Err(TransportError::Cancelled),
                v = fut => Ok(v),
            }
        }
    }
}
