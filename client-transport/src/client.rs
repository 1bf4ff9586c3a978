//! [`SyncClient`]: sync over HTTP (`POST /v1/sync`), with retries.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fieldline_client_core::Replica;
use fieldline_protocol::wire::{self, SyncRequest, SyncResponse};
use reqwest::Url;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION, RETRY_AFTER};

use crate::cancel::{CancelToken, cancellable};
use crate::error::{describe, from_reqwest, from_status, parse_retry_after};
use crate::rounds::{Exchange, Exchanged, Progress, run_rounds};
use crate::{ClientConfig, SyncPhase, SyncProgress, SyncSummary, TokenProvider, TransportError};

/// Talks to one Fieldline server on behalf of one user. Cheap to clone (clones share the
/// connection pool); create one per server and keep it.
#[derive(Clone)]
pub struct SyncClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) http: reqwest::Client,
    pub(crate) tokens: Arc<dyn TokenProvider>,
    pub(crate) urls: Urls,
    pub(crate) ws_tls: Arc<rustls::ClientConfig>,
    /// Serialises [`SyncClient::sync`] calls: a second caller waits, then finds little to do,
    /// instead of uploading the same outbox twice at once.
    sync_lock: tokio::sync::Mutex<()>,
}

pub(crate) struct Urls {
    pub(crate) sync: Url,
    pub(crate) ws: Url,
    pub(crate) login: Url,
    pub(crate) refresh: Url,
    pub(crate) logout: Url,
}

impl std::fmt::Debug for SyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncClient")
            .field("base_url", &self.inner.config.base_url)
            .finish_non_exhaustive()
    }
}

impl SyncClient {
    /// A client for the server in `config`, authenticating with the tokens `tokens` hands out.
    ///
    /// Installs rustls' ring crypto provider as the process default if none is installed.
    /// Fails only on an unusable configuration (invalid address, TLS setup).
    pub fn new(
        config: ClientConfig,
        tokens: Arc<dyn TokenProvider>,
    ) -> Result<SyncClient, TransportError> {
        let urls = Urls::new(&config.base_url)?;
        let provider = crate::tls::crypto_provider();
        let ws_tls = crate::tls::websocket_config(provider)?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // A sync endpoint does not move; a redirect means a wrong address (e.g. http://
            // for an https:// server) and following it would turn the POST into a GET.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| TransportError::Config(describe(&e)))?;
        Ok(SyncClient {
            inner: Arc::new(Inner {
                config,
                http,
                tokens,
                urls,
                ws_tls,
                sync_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Syncs `replica` with the server over HTTP: rounds of prepare → `POST /v1/sync` →
    /// apply, until the server has nothing more (`more == false`) and the replica nothing
    /// more to send (outbox empty, no documents wanted whole). Each round is retried on retryable failures (see the crate docs); a round
    /// that changes nothing ends the sync early rather than looping.
    ///
    /// On error, the rounds applied before the failure stay applied.
    pub async fn sync(
        &self,
        replica: &Arc<Replica>,
        progress: &(dyn Fn(SyncProgress) + Send + Sync),
    ) -> Result<SyncSummary, TransportError> {
        self.run_sync(replica, progress, None).await
    }

    /// [`sync`](Self::sync) that stops with [`TransportError::Cancelled`] when `cancel`
    /// fires (between rounds, while waiting to retry, or with a request in flight; an
    /// answer that is being applied is applied first).
    pub async fn sync_cancellable(
        &self,
        replica: &Arc<Replica>,
        progress: &(dyn Fn(SyncProgress) + Send + Sync),
        cancel: &CancelToken,
    ) -> Result<SyncSummary, TransportError> {
        self.run_sync(replica, progress, Some(cancel)).await
    }

    async fn run_sync(
        &self,
        replica: &Arc<Replica>,
        progress: &(dyn Fn(SyncProgress) + Send + Sync),
        cancel: Option<&CancelToken>,
    ) -> Result<SyncSummary, TransportError> {
        let _one_at_a_time = cancellable(cancel, self.inner.sync_lock.lock()).await?;
        let mut transport = HttpExchange {
            client: self,
            cancel,
        };
        run_rounds(
            replica,
            &self.inner.config,
            &mut transport,
            progress,
            cancel,
        )
        .await
    }

    /// Runs `attempt` (given the current access token) until it succeeds, fails for good, or
    /// the attempts run out. Returns the value and the number of attempts made.
    pub(crate) async fn with_retries<T, F, Fut>(
        &self,
        cancel: Option<&CancelToken>,
        notify: &(dyn Fn(SyncPhase) + Send + Sync),
        mut attempt: F,
    ) -> Result<(T, u32), TransportError>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<T, TransportError>>,
    {
        let policy = &self.inner.config.retry;
        let max_attempts = policy.max_attempts.max(1);
        let mut tried_fresh_token = false;
        let mut n = 0;
        loop {
            n += 1;
            let token = self
                .inner
                .tokens
                .access_token()
                .ok_or_else(TransportError::not_signed_in)?;
            notify(SyncPhase::Sending { attempt: n });
            let error = match cancellable(cancel, attempt(token.clone())).await? {
                Ok(value) => return Ok((value, n)),
                Err(e) => e,
            };
            if n >= max_attempts {
                return Err(error);
            }
            let delay = match &error {
                // Never retried with the same token. But if the app refreshed the token while
                // this request was under way, the new token deserves one try.
                TransportError::Unauthorized { .. } => match self.inner.tokens.access_token() {
                    Some(fresh) if fresh != token && !tried_fresh_token => {
                        tried_fresh_token = true;
                        Duration::ZERO
                    }
                    _ => return Err(error),
                },
                TransportError::RateLimited {
                    retry_after: Some(wait),
                } => {
                    if *wait > policy.max_retry_after {
                        return Err(error);
                    }
                    *wait
                }
                e if e.is_retryable() => policy.backoff(n - 1),
                _ => return Err(error),
            };
            tracing::info!(
                attempt = n,
                code = error.code(),
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "sync attempt failed, retrying: {error}"
            );
            notify(SyncPhase::Retrying {
                attempt: n,
                delay,
                code: error.code().to_owned(),
            });
            cancellable(cancel, tokio::time::sleep(delay)).await?;
        }
    }

    /// One `POST /v1/sync`: the encoded request out, the decoded answer and its size back.
    async fn post_sync(
        &self,
        token: String,
        body: &[u8],
    ) -> Result<(SyncResponse, u64), TransportError> {
        let response = self
            .inner
            .http
            .post(self.inner.urls.sync.clone())
            .bearer_auth(token)
            .header(CONTENT_TYPE, wire::CONTENT_TYPE)
            .header(ACCEPT, wire::CONTENT_TYPE)
            .body(body.to_vec())
            .send()
            .await
            .map_err(from_reqwest)?;
        let response = check_status(response).await?;
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        if content_type.starts_with("text/html") {
            return Err(TransportError::Protocol(
                "a web page came back instead of a sync message; if this network needs a \
                 sign-in page (public Wi-Fi), open a browser and sign in first"
                    .into(),
            ));
        }
        // A connection dropped mid-answer fails here as a network error (and is retried).
        let bytes = response.bytes().await.map_err(from_reqwest)?;
        let decoded = wire::decode::<SyncResponse>(&bytes).map_err(|e| {
            TransportError::Protocol(format!(
                "the sync answer ({} bytes, content type {content_type:?}) is not a valid message: {e}",
                bytes.len()
            ))
        })?;
        Ok((decoded, bytes.len() as u64))
    }
}

/// HTTP as the round loop's transport.
struct HttpExchange<'a> {
    client: &'a SyncClient,
    cancel: Option<&'a CancelToken>,
}

impl Exchange for HttpExchange<'_> {
    async fn exchange(
        &mut self,
        request: &SyncRequest,
        progress: &Progress<'_>,
    ) -> Result<Exchanged, TransportError> {
        // Encoded once: a retry re-sends exactly these bytes (see the crate docs).
        let body = wire::encode(request);
        let body = body.as_slice();
        let client = self.client;
        let notify = |phase: SyncPhase| progress.emit(phase);
        let ((response, received), attempts) = client
            .with_retries(self.cancel, &notify, |token| client.post_sync(token, body))
            .await?;
        Ok(Exchanged {
            response,
            bytes_sent: body.len() as u64 * u64::from(attempts),
            bytes_received: received,
            retries: attempts - 1,
        })
    }
}

/// Passes a success through; turns anything else into the matching error.
pub(crate) async fn check_status(
    response: reqwest::Response,
) -> Result<reqwest::Response, TransportError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status.is_redirection() {
        let to = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("another address")
            .to_owned();
        return Err(TransportError::Protocol(format!(
            "the server redirects to {to} (HTTP {}); set the server address to that one \
             (https:// rather than http://?)",
            status.as_u16()
        )));
    }
    let retry_after = parse_retry_after(response.headers().get(RETRY_AFTER).map(|v| v.as_bytes()));
    let body = read_limited(response, 64 * 1024).await;
    Err(from_status(status.as_u16(), retry_after, &body))
}

/// Reads at most about `limit` bytes of an error body (a proxy's error page can be large).
async fn read_limited(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= limit {
            break;
        }
    }
    body
}

impl Urls {
    fn new(base_url: &str) -> Result<Urls, TransportError> {
        let mut base = Url::parse(base_url.trim()).map_err(|e| {
            TransportError::Config(format!(
                "the server address {base_url:?} is not a valid URL ({e}); use e.g. https://crm.example.com"
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(TransportError::Config(format!(
                "the server address {base_url:?} must start with https:// (or http:// for testing)"
            )));
        }
        base.set_query(None);
        base.set_fragment(None);
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let join = |path: &str| {
            base.join(path)
                .map_err(|e| TransportError::Config(format!("server address: {e}")))
        };
        let mut ws = join("v1/sync/ws")?;
        let scheme = if base.scheme() == "https" {
            "wss"
        } else {
            "ws"
        };
        ws.set_scheme(scheme).map_err(|()| {
            TransportError::Config(format!(
                "cannot derive a WebSocket address from {base_url:?}"
            ))
        })?;
        Ok(Urls {
            sync: join("v1/sync")?,
            ws,
            login: join("v1/auth/login")?,
            refresh: join("v1/auth/refresh")?,
            logout: join("v1/auth/logout")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_a_path_prefix() {
        let u = Urls::new("https://example.com/fieldline").unwrap();
        assert_eq!(u.sync.as_str(), "https://example.com/fieldline/v1/sync");
        assert_eq!(u.ws.as_str(), "wss://example.com/fieldline/v1/sync/ws");
        let u = Urls::new("http://127.0.0.1:8080/").unwrap();
        assert_eq!(u.sync.as_str(), "http://127.0.0.1:8080/v1/sync");
        assert_eq!(u.ws.as_str(), "ws://127.0.0.1:8080/v1/sync/ws");
        assert_eq!(u.logout.as_str(), "http://127.0.0.1:8080/v1/auth/logout");
        assert!(matches!(
            Urls::new("ftp://example.com"),
            Err(TransportError::Config(_))
        ));
        assert!(matches!(
            Urls::new("not a url"),
            Err(TransportError::Config(_))
        ));
    }
}
