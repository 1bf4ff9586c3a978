//! # fieldline-client-transport
//!
//! Moves the sync messages of [`fieldline_client_core`] between a rep's replica and the
//! server. It is the only client crate that knows HTTP: the replica builds requests and
//! applies answers without any I/O ([`Replica::prepare_sync`], [`Replica::apply_sync`]); this
//! crate sends them.
//!
//! - [`SyncClient::sync`]: rounds over HTTP (`POST /v1/sync`), with retries.
//! - [`SyncClient::connect_live`] → [`LiveSession`]: the same rounds over a WebSocket
//!   (`/v1/sync/ws`), then the server's pushes, applied as they arrive.
//! - [`SyncClient::login`], [`refresh`](SyncClient::refresh), [`logout`](SyncClient::logout).
//! - [`TransportError`]: what went wrong, sorted by what the app should do.
//!
//! ## Rounds
//! A sync is a series of rounds: prepare a request (the replica's cursor, its pending
//! changes up to [`ClientConfig::max_upload_bytes`], documents it needs whole), exchange
//! it, apply the answer. It goes on while the server says `more`, or the
//! replica still has something to send (the outbox holds more than one round's worth, a
//! refusal was rebased into new changes, a document is wanted whole). A round after which
//! nothing arrived and the next request would be the same ends the sync instead of looping,
//! and [`ClientConfig::max_rounds`] caps the rest; the summary then says it is not complete.
//!
//! ## Why retrying a round is safe
//! - **Uploads are idempotent.** A change is identified by its hash; the server stores it at
//!   most once and answers `Accepted` for one it already has. If the connection drops after
//!   the server committed a round but before its answer arrived, sending the *same bytes*
//!   again gets the same outcomes. A retry therefore re-sends the request exactly as it was
//!   encoded for the first attempt.
//! - **The device only moves when it applies an answer**, in one SQLite transaction: an
//!   answer that never arrived changed nothing on the device, and the repeated request asks
//!   for the same changes after the same cursor.
//! - **Preparing anew is also correct**: [`Replica::prepare_sync`] gives the same request
//!   until an answer is applied, plus whatever the user edited meanwhile.
//!
//! So a round is retried after network errors, timeouts and 5xx answers, with exponential
//! backoff and *full jitter* (a delay uniform in `[0, min(max, initial·2ⁿ)]`, see
//! [`RetryPolicy::backoff`]) so that the phones that all come back after an outage do not
//! retry in lockstep; after a 429 it waits for `Retry-After` when the server sends one (up
//! to [`RetryPolicy::max_retry_after`]). It is **not** retried after 401 (the same token
//! fails the same way: the app must refresh it or sign the user in again — unless the
//! [`TokenProvider`] already hands out a different token, which gets one try), 403 (the user
//! may not), or 400/413/415/422 and other 4xx (the request itself is wrong: a bug, retrying
//! cannot help). The auth calls are not idempotent (a refresh rotates the refresh token) and
//! are retried only when no connection could be made (see [`SyncClient::refresh`]).
//!
//! ## Blocking and cancellation
//! Replica calls are blocking SQLite and automerge work: they run on tokio's blocking pool
//! (`spawn_blocking`), never on the async workers, which is why the API takes an
//! `Arc<Replica>`. Dropping a sync future is safe at any await point: a request in flight
//! is idempotent, and an answer being applied is applied completely or not at all.
//! [`CancelToken`] does the same for callers that cannot drop futures.
//!
//! ## TLS
//! rustls with the *ring* provider (installed as the process default if the app installed
//! none) and the platform's certificate verifier, for both HTTP and the WebSocket.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

mod auth;
mod cancel;
mod client;
mod config;
mod error;
mod live;
mod rounds;
mod tls;
mod token;

pub use auth::{AuthTokens, AuthUser};
pub use cancel::CancelToken;
pub use client::SyncClient;
pub use config::{ClientConfig, RetryPolicy};
pub use error::TransportError;
pub use live::{LiveEvent, LiveHandler, LiveSession};
pub use rounds::{SyncPhase, SyncProgress, SyncSummary};
pub use token::{SharedToken, TokenProvider};

pub use fieldline_client_core::Replica;
pub use fieldline_client_core::sync::SyncReport;

/// Installs rustls' *ring* crypto provider as the process default, unless one is installed.
///
/// [`SyncClient::new`] does this itself. Call it before building any other
/// `reqwest::Client` in a program that links this crate: cargo unifies features, so every
/// reqwest in that program is built with `rustls-no-provider`, and `reqwest::Client::new()`
/// panics while no provider is installed — even for plain `http://` use.
pub fn ensure_crypto_provider() {
    tls::crypto_provider();
}
