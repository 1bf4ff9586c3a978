//! Where access tokens come from: [`TokenProvider`], and [`SharedToken`] for the common case.

use std::sync::{Arc, RwLock};

/// Supplies the access token for each request.
///
/// Asked before every attempt (not once per sync), so an app that refreshes the token in the
/// background — or in reaction to [`TransportError::Unauthorized`](crate::TransportError) —
/// is picked up by the next attempt. Return `None` when the user is not signed in. Must be
/// quick: it is called on the async runtime.
pub trait TokenProvider: Send + Sync {
    fn access_token(&self) -> Option<String>;
}

impl<F> TokenProvider for F
where
    F: Fn() -> Option<String> + Send + Sync,
{
    fn access_token(&self) -> Option<String> {
        self()
    }
}

/// A token cell the app updates after [`login`](crate::SyncClient::login) and
/// [`refresh`](crate::SyncClient::refresh); clones share the same token.
#[derive(Clone, Default)]
pub struct SharedToken {
    inner: Arc<RwLock<Option<String>>>,
}

impl SharedToken {
    /// An empty cell (not signed in).
    pub fn new() -> Self {
        Self::default()
    }

    /// A cell holding `token`.
    pub fn with_token(token: impl Into<String>) -> Self {
        let cell = Self::new();
        cell.set(token);
        cell
    }

    pub fn set(&self, token: impl Into<String>) {
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = Some(token.into());
    }

    pub fn clear(&self) {
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl TokenProvider for SharedToken {
    fn access_token(&self) -> Option<String> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl std::fmt::Debug for SharedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.access_token().is_some() {
            "set"
        } else {
            "empty"
        };
        write!(f, "SharedToken({state})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_token_is_shared_and_never_printed() {
        let a = SharedToken::new();
        let b = a.clone();
        assert_eq!(b.access_token(), None);
        a.set("secret-value");
        assert_eq!(b.access_token().as_deref(), Some("secret-value"));
        assert!(!format!("{a:?}").contains("secret"));
        b.clear();
        assert_eq!(a.access_token(), None);
        let f = || Some("t".to_owned());
        assert_eq!(f.access_token().as_deref(), Some("t"));
    }
}
