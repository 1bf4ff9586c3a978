//! Sign-in, token refresh and sign-out (`/v1/auth/*`), as small typed helpers.
//!
//! Unlike sync rounds these calls are **not** idempotent: a refresh rotates the refresh token,
//! so repeating one whose answer was lost would present a token the server has already
//! spent. They are therefore retried only when the connection could not be established at
//! all (the request never left the device); every other failure goes back to the caller.

use std::time::Duration;

use fieldline_protocol::ids::UserId;
use fieldline_protocol::model::Role;
use reqwest::Url;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::{Deserialize, Serialize};

use crate::error::from_reqwest;
use crate::{SyncClient, TransportError};

/// The answer to a login or a refresh.
///
/// Store `refresh_token` securely (it rotates: keep the newest), hand `access_token` to the
/// [`TokenProvider`](crate::TokenProvider). `Debug` does not print the tokens.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct AuthTokens {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds the access token stays valid.
    pub expires_in: i64,
    pub refresh_token: String,
    pub user: AuthUser,
}

impl AuthTokens {
    /// How long the access token stays valid.
    pub fn expires_after(&self) -> Duration {
        Duration::from_secs(self.expires_in.max(0).unsigned_abs())
    }
}

impl std::fmt::Debug for AuthTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthTokens")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &"<redacted>")
            .field("user", &self.user)
            .finish()
    }
}

/// The signed-in user, as the server reports them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct AuthUser {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub role: Role,
}

#[derive(Serialize)]
struct LoginRequest<'a> {
    username: &'a str,
    password: &'a str,
}

#[derive(Serialize)]
struct RefreshRequest<'a> {
    refresh_token: &'a str,
}

impl SyncClient {
    /// `POST /v1/auth/login`. A wrong password comes back as
    /// [`TransportError::Unauthorized`].
    pub async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<AuthTokens, TransportError> {
        let body = json(&LoginRequest { username, password })?;
        let bytes = self.post_auth(&self.inner.urls.login, body).await?;
        parse_tokens(&bytes)
    }

    /// `POST /v1/auth/refresh`: new tokens for a refresh token. The refresh token rotates:
    /// store the returned one and forget the old.
    pub async fn refresh(&self, refresh_token: &str) -> Result<AuthTokens, TransportError> {
        let body = json(&RefreshRequest { refresh_token })?;
        let bytes = self.post_auth(&self.inner.urls.refresh, body).await?;
        parse_tokens(&bytes)
    }

    /// `POST /v1/auth/logout`: revokes the refresh token on the server.
    pub async fn logout(&self, refresh_token: &str) -> Result<(), TransportError> {
        let body = json(&RefreshRequest { refresh_token })?;
        self.post_auth(&self.inner.urls.logout, body).await?;
        Ok(())
    }

    /// Posts JSON; retries only failures to connect (see the module docs).
    async fn post_auth(&self, url: &Url, body: Vec<u8>) -> Result<Vec<u8>, TransportError> {
        let policy = &self.inner.config.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .inner
                .http
                .post(url.clone())
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, "application/json")
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(response) => {
                    let response = crate::client::check_status(response).await?;
                    let bytes = response.bytes().await.map_err(from_reqwest)?;
                    return Ok(bytes.to_vec());
                }
                Err(e) if e.is_connect() && attempt < policy.max_attempts => {
                    let delay = policy.backoff(attempt - 1);
                    tracing::info!(attempt, "could not connect for an auth call; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(from_reqwest(e)),
            }
        }
    }
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, TransportError> {
    serde_json::to_vec(value).map_err(|e| TransportError::Config(format!("JSON encoding: {e}")))
}

/// Parses the tokens answer. The error names the position, never the content (which holds
/// tokens).
fn parse_tokens(bytes: &[u8]) -> Result<AuthTokens, TransportError> {
    serde_json::from_slice(bytes).map_err(|e| {
        TransportError::Protocol(format!(
            "the sign-in answer is not valid ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_never_print() {
        let id = UserId::new();
        let text = format!(
            r#"{{"access_token":"aaa.bbb.ccc","token_type":"Bearer","expires_in":900,
               "refresh_token":"r-secret","user":{{"id":"{id}","username":"li.wei",
               "display_name":"李伟","role":"rep"}}}}"#
        );
        let t = parse_tokens(text.as_bytes()).unwrap();
        assert_eq!(t.user.id, id);
        assert_eq!(t.user.role, Role::Rep);
        assert_eq!(t.expires_after(), Duration::from_secs(900));
        let shown = format!("{t:?}");
        assert!(!shown.contains("aaa.bbb") && !shown.contains("r-secret"));

        let bad = parse_tokens(br#"{"access_token":"secret-token","expires_in":"x"}"#);
        let msg = bad.unwrap_err().to_string();
        assert!(!msg.contains("secret-token"), "{msg}");
    }
}
