//! The network side: sign-in ([`login`], [`refresh`], [`logout`]), syncing a replica
//! ([`Replica::sync`]) and live sessions ([`Replica::connect_live`] → [`LiveSync`]).
//!
//! These are `async` in every language (Kotlin `suspend fun`, Swift `async`, Python
//! coroutines). The transport uses tokio and reqwest; the exports run on uniffi's tokio
//! support, and the replica's SQLite work runs on tokio's blocking pool, never on the
//! caller's thread. Cancelling the caller (a Kotlin coroutine, a Swift task, an asyncio
//! task) drops the sync safely: a request in flight is idempotent and an answer being
//! applied is applied completely or not at all.
//!
//! `fieldline_client_transport::ensure_crypto_provider()` is called before any client is
//! built (rustls with the ring provider).

use std::sync::Arc;

use fieldline_client_transport::{
    self as transport, ClientConfig, LiveEvent, SharedToken, SyncClient, TransportError,
};

use crate::ApiError;
use crate::listener::{SyncProgressListener, call_quietly};
use crate::replica::Replica;
use crate::types::{ChangeSet, ReviewStatus, Role};

// ---- records ----------------------------------------------------------------------------

/// The step a sync round is at.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum SyncPhase {
    /// The round's request is being sent (attempt 1, 2, …).
    Sending { attempt: u32 },
    /// The last attempt failed with a retryable error (`code`); the next starts after
    /// `delay_ms`.
    Retrying {
        attempt: u32,
        delay_ms: u64,
        code: String,
    },
    /// The server's answer arrived and is being applied.
    Applying,
    /// The round's answer is applied (the counters include it).
    Applied,
    /// The sync is over.
    Done,
}

/// Where a sync is, for a progress display.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct SyncProgress {
    /// The current round, from 1.
    pub round: u32,
    pub phase: SyncPhase,
    /// Changes sent so far.
    pub uploaded_changes: u64,
    /// Documents received and applied so far.
    pub documents_received: u64,
    /// The server's estimate of documents still to come (0 before its first answer).
    pub remaining_estimate: u64,
}

impl From<transport::SyncProgress> for SyncProgress {
    fn from(p: transport::SyncProgress) -> Self {
        SyncProgress {
            round: p.round,
            phase: match p.phase {
                transport::SyncPhase::Sending { attempt } => SyncPhase::Sending { attempt },
                transport::SyncPhase::Retrying {
                    attempt,
                    delay,
                    code,
                } => SyncPhase::Retrying {
                    attempt,
                    delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    code,
                },
                transport::SyncPhase::Applying => SyncPhase::Applying,
                transport::SyncPhase::Applied => SyncPhase::Applied,
                transport::SyncPhase::Done => SyncPhase::Done,
            },
            uploaded_changes: p.uploaded_changes as u64,
            documents_received: p.documents_received as u64,
            remaining_estimate: p.remaining_estimate,
        }
    }
}

/// A manager's decision on one of this user's refused writes.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ReviewNotice {
    pub review_id: i64,
    /// The document: `account:<id>`, `user:<id>` or `catalog`.
    pub doc_id: String,
    pub status: ReviewStatus,
}

/// What a whole sync did.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct SyncResult {
    pub rounds: u32,
    /// Changes uploaded (each counted once per round that carried it).
    pub uploaded: u64,
    pub accepted: u64,
    /// Changes the server refused and parked for review.
    pub rejected: u64,
    /// Edits replayed after a refusal that are still allowed.
    pub replayed: u64,
    /// Edits that could not be replayed and now wait for a manager (see `parked_writes`).
    pub parked: u64,
    /// Accounts removed from this device.
    pub purged: u64,
    pub documents_received: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Attempts that failed and were retried.
    pub retries: u32,
    /// False when the sync stopped early (it made no progress, or hit the round limit); run
    /// it again later. Everything applied stays applied either way.
    pub complete: bool,
    /// What changed on the device (the change listener was told too).
    pub changes: ChangeSet,
    /// Review decisions on this user's refused writes.
    pub reviews: Vec<ReviewNotice>,
}

impl From<transport::SyncSummary> for SyncResult {
    fn from(s: transport::SyncSummary) -> Self {
        SyncResult {
            rounds: s.rounds,
            uploaded: s.uploaded as u64,
            accepted: s.accepted as u64,
            rejected: s.rejected as u64,
            replayed: s.replayed as u64,
            parked: s.parked as u64,
            purged: s.purged as u64,
            documents_received: s.documents_received as u64,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            retries: s.retries,
            complete: s.complete,
            changes: (&s.changes).into(),
            reviews: s
                .reviews
                .into_iter()
                .map(|r| ReviewNotice {
                    review_id: r.review_id,
                    doc_id: r.doc.to_string(),
                    status: r.status.into(),
                })
                .collect(),
        }
    }
}

/// The user a sign-in is for, as the server reports them.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct AuthUser {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
}

/// The answer to a sign-in or a refresh. Keep `refresh_token` in the platform's secure
/// storage (it rotates: always keep the newest); pass `access_token` to `sync`.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct AuthSession {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds the access token stays valid (refresh before it runs out).
    pub expires_in_seconds: i64,
    pub user: AuthUser,
}

impl std::fmt::Debug for AuthSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSession")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("expires_in_seconds", &self.expires_in_seconds)
            .field("user", &self.user)
            .finish()
    }
}

impl From<transport::AuthTokens> for AuthSession {
    fn from(t: transport::AuthTokens) -> Self {
        AuthSession {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            expires_in_seconds: t.expires_in,
            user: AuthUser {
                id: t.user.id.to_string(),
                username: t.user.username,
                display_name: t.user.display_name,
                role: t.user.role.into(),
            },
        }
    }
}

// ---- clients ----------------------------------------------------------------------------

/// A sync client for one server and the token cell it reads.
pub(crate) struct Connection {
    base_url: String,
    client: SyncClient,
    token: SharedToken,
}

/// A client for `server_url` (the crypto provider installed first).
fn new_client(server_url: &str, token: SharedToken) -> Result<SyncClient, ApiError> {
    transport::ensure_crypto_provider();
    Ok(SyncClient::new(
        ClientConfig::new(server_url),
        Arc::new(token),
    )?)
}

impl Replica {
    /// The replica's client for `server_url`, holding `access_token` — reused between syncs
    /// (one connection pool), replaced when the address changes. The lock is held only to
    /// look it up.
    fn client(&self, server_url: &str, access_token: &str) -> Result<SyncClient, ApiError> {
        if access_token.trim().is_empty() {
            return Err(ApiError::Unauthorized {
                message: "no access token was given; sign in first".into(),
            });
        }
        let mut slot = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = slot.as_ref().filter(|c| c.base_url == server_url) {
            c.token.set(access_token);
            return Ok(c.client.clone());
        }
        let token = SharedToken::with_token(access_token);
        let client = new_client(server_url, token.clone())?;
        *slot = Some(Connection {
            base_url: server_url.to_owned(),
            client: client.clone(),
            token,
        });
        Ok(client)
    }
}

// ---- sign-in ----------------------------------------------------------------------------

/// Signs in with a username and password (`POST /v1/auth/login`). A wrong password is
/// `ApiError.Unauthorized`; an unreachable server `ApiError.Network`.
#[uniffi::export(async_runtime = "tokio")]
pub async fn login(
    server_url: String,
    username: String,
    password: String,
) -> Result<AuthSession, ApiError> {
    let client = new_client(&server_url, SharedToken::new())?;
    Ok(client.login(&username, &password).await?.into())
}

/// New tokens for a refresh token (`POST /v1/auth/refresh`). The refresh token rotates:
/// store the returned one and forget the old. `ApiError.Unauthorized` means sign in again.
#[uniffi::export(async_runtime = "tokio")]
pub async fn refresh(server_url: String, refresh_token: String) -> Result<AuthSession, ApiError> {
    let client = new_client(&server_url, SharedToken::new())?;
    Ok(client.refresh(&refresh_token).await?.into())
}

/// Signs out: revokes the refresh token on the server (`POST /v1/auth/logout`).
#[uniffi::export(async_runtime = "tokio")]
pub async fn logout(server_url: String, refresh_token: String) -> Result<(), ApiError> {
    let client = new_client(&server_url, SharedToken::new())?;
    client.logout(&refresh_token).await?;
    Ok(())
}

// ---- syncing ----------------------------------------------------------------------------

#[uniffi::export(async_runtime = "tokio")]
impl Replica {
    /// Syncs with the server at `server_url` as the user of `access_token`: uploads the
    /// edits made here, receives everyone else's, until both sides are caught up. Rounds
    /// are retried on network errors and 5xx answers (with backoff); on failure the rounds
    /// applied before stay applied. The first sync after sign-in also tells the replica who
    /// its user is. `progress`, if given, is told where the sync is; the change listener is
    /// told what changed.
    ///
    /// Errors: `Unauthorized` (refresh the token or sign in again), `Network` (try later),
    /// `Forbidden` (this replica file belongs to another user), `Incompatible`, `Storage`.
    pub async fn sync(
        &self,
        server_url: String,
        access_token: String,
        progress: Option<Arc<dyn SyncProgressListener>>,
    ) -> Result<SyncResult, ApiError> {
        let client = self.client(&server_url, &access_token)?;
        let sink = move |p: transport::SyncProgress| {
            if let Some(listener) = &progress {
                let p = SyncProgress::from(p);
                call_quietly(|| listener.on_progress(p));
            }
        };
        Ok(client.sync(&self.core, &sink).await?.into())
    }

    /// Opens a live session over a WebSocket: syncs until caught up (like `sync`), then
    /// stays connected and applies the server's pushes as they come — the change listener
    /// is told about each. Returns once the first sync is done. `listener` is told about
    /// later syncs, pushes, and when the session ends (then reconnect, after a fresh token
    /// if it says so). End it with `LiveSync.disconnect()`.
    pub async fn connect_live(
        &self,
        server_url: String,
        access_token: String,
        listener: Arc<dyn LiveListener>,
    ) -> Result<Arc<LiveSync>, ApiError> {
        let client = self.client(&server_url, &access_token)?;
        let events = Arc::clone(&listener);
        let session = client
            .connect_live(Arc::clone(&self.core), move |event| match event {
                LiveEvent::Progress(_) => {}
                LiveEvent::Synced(summary) => {
                    let result = SyncResult::from(summary);
                    call_quietly(|| events.on_synced(result));
                }
                LiveEvent::Push(report) => {
                    let changes = ChangeSet::from(&report.changes);
                    call_quietly(|| events.on_push(changes));
                }
            })
            .await?;
        let initial = SyncResult::from(session.initial_sync().clone());
        let (commands, receiver) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(drive_live(session, receiver, listener));
        Ok(Arc::new(LiveSync { commands, initial }))
    }
}

// ---- live sessions ----------------------------------------------------------------------

/// Why a live session ended.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum LiveEnd {
    /// Ended by the app (`LiveSync.disconnect()`, or the last reference dropped).
    Closed,
    /// The token expired or was revoked: refresh it, then reconnect.
    Unauthorized { message: String },
    /// The connection broke or the server went away: reconnect after a backoff.
    Network { message: String },
    /// Anything else (storage, incompatible server): reconnecting may not help.
    Failed { message: String },
}

/// Told what a live session does. Called on a background thread: return quickly.
#[uniffi::export(foreign)]
pub trait LiveListener: Send + Sync {
    /// A burst of rounds asked for with `LiveSync.request_sync()` finished.
    fn on_synced(&self, result: SyncResult);
    /// The server pushed others' changes and they were applied.
    fn on_push(&self, changes: ChangeSet);
    /// The session ended; nothing more will be reported.
    fn on_ended(&self, reason: LiveEnd);
}

enum Command {
    Sync,
    Close(tokio::sync::oneshot::Sender<()>),
}

/// A connected live session (see `Replica.connect_live`). Closing it (or dropping the last
/// reference) disconnects.
#[derive(uniffi::Object)]
pub struct LiveSync {
    commands: tokio::sync::mpsc::UnboundedSender<Command>,
    initial: SyncResult,
}

impl std::fmt::Debug for LiveSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSync")
            .field("finished", &self.commands.is_closed())
            .finish_non_exhaustive()
    }
}

#[uniffi::export]
impl LiveSync {
    /// What the rounds run when connecting did.
    pub fn initial_sync(&self) -> SyncResult {
        self.initial.clone()
    }

    /// Asks for a round now (e.g. after local edits, to upload them at once). Returns at
    /// once; the outcome arrives as `LiveListener.on_synced`.
    pub fn request_sync(&self) {
        let _ = self.commands.send(Command::Sync);
    }

    /// Whether the session has ended.
    pub fn is_finished(&self) -> bool {
        self.commands.is_closed()
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl LiveSync {
    /// Disconnects politely and waits (briefly) until the session has stopped. (Not called
    /// `close`: that name is the generated `AutoCloseable.close()` in Kotlin, which frees the
    /// object.)
    pub async fn disconnect(&self) {
        let (done, finished) = tokio::sync::oneshot::channel();
        if self.commands.send(Command::Close(done)).is_ok() {
            let _ = finished.await;
        }
    }
}

/// Owns the session: serves the app's commands until the session ends or is closed, then
/// tells the listener why it ended. Dropping every `LiveSync` closes the channel, which
/// closes the session.
async fn drive_live(
    mut session: transport::LiveSession,
    mut commands: tokio::sync::mpsc::UnboundedReceiver<Command>,
    listener: Arc<dyn LiveListener>,
) {
    let (reason, done) = loop {
        tokio::select! {
            ended = session.wait() => {
                break (match ended {
                    Ok(()) => LiveEnd::Closed,
                    Err(e) => live_end(e),
                }, None);
            }
            command = commands.recv() => match command {
                Some(Command::Sync) => session.request_sync(),
                Some(Command::Close(done)) => {
                    let reason = match session.close().await {
                        Ok(()) => LiveEnd::Closed,
                        Err(e) => live_end(e),
                    };
                    break (reason, Some(done));
                }
                None => {
                    let reason = match session.close().await {
                        Ok(()) => LiveEnd::Closed,
                        Err(e) => live_end(e),
                    };
                    break (reason, None);
                }
            },
        }
    };
    commands.close();
    call_quietly(|| listener.on_ended(reason));
    if let Some(done) = done {
        let _ = done.send(());
    }
}

fn live_end(e: TransportError) -> LiveEnd {
    let auth = e.is_auth();
    let retryable = e.is_retryable();
    let message = ApiError::from(e).to_string();
    if auth {
        LiveEnd::Unauthorized { message }
    } else if retryable {
        LiveEnd::Network { message }
    } else {
        LiveEnd::Failed { message }
    }
}
