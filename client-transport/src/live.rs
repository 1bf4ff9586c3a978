//! [`LiveSession`]: sync over a WebSocket (`GET /v1/sync/ws`), then stay connected and apply
//! the server's pushes as they come.
//!
//! One task owns the socket and does everything in the order frames arrive: rounds (a
//! `Sync` frame out, then `Reply` in) and pushes (applied as soon as they are read, even
//! while a round waits for its reply). The session ends at its first error — a failed apply
//! included, since the server's idea of this device's cursor would then be wrong — and the
//! caller reconnects: [`LiveSession::wait`] says why it ended ([`TransportError::is_auth`]:
//! get a fresh token first; [`TransportError::is_retryable`]: reconnect after a backoff).

use std::sync::Arc;
use std::time::Duration;

use fieldline_client_core::Replica;
use fieldline_client_core::sync::SyncReport;
use fieldline_protocol::wire::{
    self, ClientFrame, PROTOCOL_VERSION, ServerFrame, SyncRequest, SyncResponse,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::{AUTHORIZATION, RETRY_AFTER, USER_AGENT};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::error::{describe, from_code, from_status, is_auth_code, parse_retry_after};
use crate::rounds::{Exchange, Exchanged, Progress, blocking, has_work, run_rounds};
use crate::{ClientConfig, SyncClient, SyncPhase, SyncProgress, SyncSummary, TransportError};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long [`LiveSession::close`] waits for the session to finish what it is doing.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What a live session reports, in the order it happens.
#[derive(Debug)]
pub enum LiveEvent {
    /// Progress of a burst of rounds (the first sync, or one asked for).
    Progress(SyncProgress),
    /// A burst of rounds finished.
    Synced(SyncSummary),
    /// A push from the server was applied (others' changes): refresh the screens in
    /// `report.changes`.
    Push(SyncReport),
}

/// Receives a live session's events. Called on the session's task: return quickly.
pub type LiveHandler = Arc<dyn Fn(LiveEvent) + Send + Sync>;

/// A connected WebSocket session. Dropping it closes the connection.
pub struct LiveSession {
    nudge: Arc<Notify>,
    close: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), TransportError>>>,
    initial: SyncSummary,
}

impl std::fmt::Debug for LiveSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSession")
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

impl SyncClient {
    /// Opens a live session: connects the WebSocket (with the current access token), runs
    /// rounds over it until caught up (reported through `on_event`, like
    /// [`sync`](Self::sync)), and returns once caught up. The session then keeps listening
    /// and applies every push, reporting each as [`LiveEvent::Push`].
    ///
    /// Rounds over the socket are not retried: any failure ends the session (and is returned
    /// here if it happens before the first sync is done).
    pub async fn connect_live(
        &self,
        replica: Arc<Replica>,
        on_event: impl Fn(LiveEvent) + Send + Sync + 'static,
    ) -> Result<LiveSession, TransportError> {
        let config = &self.inner.config;
        let token = self
            .inner
            .tokens
            .access_token()
            .ok_or_else(TransportError::not_signed_in)?;
        let mut request = self
            .inner
            .urls
            .ws
            .as_str()
            .into_client_request()
            .map_err(|e| TransportError::Config(describe(&e)))?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            TransportError::Config(
                "the access token contains characters a header cannot carry".into(),
            )
        })?;
        auth.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, auth);
        if let Ok(agent) = HeaderValue::from_str(&config.user_agent) {
            request.headers_mut().insert(USER_AGENT, agent);
        }
        let connector = Connector::Rustls(Arc::clone(&self.inner.ws_tls));
        let connecting =
            tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector));
        let (ws, _) =
            tokio::time::timeout(config.connect_timeout + config.request_timeout, connecting)
                .await
                .map_err(|_| TransportError::Timeout)?
                .map_err(handshake_error)?;

        let handler: LiveHandler = Arc::new(on_event);
        let link = Link {
            ws,
            replica: Arc::clone(&replica),
            handler: Arc::clone(&handler),
            reply_timeout: config.request_timeout,
            last_heard: Instant::now(),
            pending_error: None,
            round_wanted: false,
        };
        let conn = Conn {
            link,
            replica,
            handler,
            config: config.clone(),
        };
        let nudge = Arc::new(Notify::new());
        let (close_tx, close_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(conn.run(Arc::clone(&nudge), close_rx, ready_tx));
        match ready_rx.await {
            Ok(initial) => Ok(LiveSession {
                nudge,
                close: Some(close_tx),
                task: Some(task),
                initial,
            }),
            // The task ended before the first sync was done: its result says why.
            Err(_) => Err(match joined(task.await) {
                Err(e) => e,
                Ok(()) => {
                    TransportError::Network("the live session ended before its first sync".into())
                }
            }),
        }
    }
}

impl LiveSession {
    /// What the rounds run at connection did.
    pub fn initial_sync(&self) -> &SyncSummary {
        &self.initial
    }

    /// Asks for a round now, e.g. after local edits, to upload them at once. Returns
    /// immediately; the outcome arrives as [`LiveEvent::Synced`], and a failure ends the
    /// session. Requests made before the round starts are served by one round.
    pub fn request_sync(&self) {
        self.nudge.notify_one();
    }

    /// Whether the session has ended (see [`wait`](Self::wait) for why).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits until the session ends and says why: `Err` with what broke it (the server
    /// closing counts as [`TransportError::Network`], unless it sent an error first, e.g.
    /// `token_expired`), `Ok` if it was closed from this side. Returns at once when it
    /// already returned before.
    pub async fn wait(&mut self) -> Result<(), TransportError> {
        let Some(task) = self.task.as_mut() else {
            return Ok(());
        };
        let result = task.await;
        self.task = None;
        joined(result)
    }

    /// Closes the connection politely and waits (briefly) for the session to stop. Returns
    /// the error that had already ended the session, if one had.
    pub async fn close(mut self) -> Result<(), TransportError> {
        if let Some(close) = self.close.take() {
            let _ = close.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(CLOSE_GRACE, &mut task).await {
            Ok(result) => joined(result),
            Err(_) => {
                // Busy applying a large round: stop waiting. An apply under way completes on
                // its own thread, atomically.
                task.abort();
                Ok(())
            }
        }
    }
}

fn joined(result: Result<Result<(), TransportError>, JoinError>) -> Result<(), TransportError> {
    match result {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(TransportError::Cancelled),
    }
}

/// The session's task: the socket, and what to do with it.
struct Conn {
    link: Link,
    replica: Arc<Replica>,
    handler: LiveHandler,
    config: ClientConfig,
}

/// The socket and what reading it needs (pushes are applied while reading).
struct Link {
    ws: Socket,
    replica: Arc<Replica>,
    handler: LiveHandler,
    reply_timeout: Duration,
    last_heard: Instant,
    /// An `Error` frame received while idle, reported if the server then closes.
    pending_error: Option<TransportError>,
    /// A push left something to do (`more`, documents wanted whole, pending uploads).
    round_wanted: bool,
}

/// One frame, read.
enum Received {
    Reply(SyncResponse, u64),
    Error(TransportError),
    /// A push (already applied), a ping or a pong.
    Other,
}

impl Conn {
    async fn run(
        mut self,
        nudge: Arc<Notify>,
        mut close: oneshot::Receiver<()>,
        ready: oneshot::Sender<SyncSummary>,
    ) -> Result<(), TransportError> {
        let result = self.serve(&nudge, &mut close, ready).await;
        if let Err(e) = &result {
            tracing::info!(code = e.code(), "live session ended: {e}");
        }
        // Say goodbye if the socket still works; do not hang on a dead one.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.link.ws.close(None)).await;
        result
    }

    async fn serve(
        &mut self,
        nudge: &Notify,
        close: &mut oneshot::Receiver<()>,
        ready: oneshot::Sender<SyncSummary>,
    ) -> Result<(), TransportError> {
        let initial = self.rounds().await?;
        let _ = ready.send(initial);
        let interval = self.config.ping_interval.max(Duration::from_millis(100));
        let mut ping = tokio::time::interval_at(Instant::now() + interval, interval);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if self.link.round_wanted {
                self.rounds().await?;
                continue;
            }
            tokio::select! {
                biased;
                // Closed from this side, or the LiveSession was dropped.
                _ = &mut *close => return Ok(()),
                () = nudge.notified() => {
                    self.rounds().await?;
                }
                msg = self.link.ws.next() => match self.link.receive(msg).await? {
                    Received::Reply(..) => {
                        return Err(TransportError::Protocol(
                            "the server sent a reply although no request was waiting".into(),
                        ));
                    }
                    // The server is about to close; reconnecting needs a fresh token.
                    Received::Error(e) if e.is_auth() => return Err(e),
                    Received::Error(e) => {
                        tracing::warn!(code = e.code(), "the live session got an error: {e}");
                        self.link.pending_error = Some(e);
                    }
                    Received::Other => {}
                },
                _ = ping.tick() => {
                    if self.link.last_heard.elapsed() > interval * 2 {
                        return Err(TransportError::Network(
                            "the connection went silent (no answer to pings)".into(),
                        ));
                    }
                    self.link
                        .ws
                        .send(Message::Ping(Default::default()))
                        .await
                        .map_err(ws_error)?;
                }
            }
        }
    }

    /// Rounds over the socket until caught up.
    async fn rounds(&mut self) -> Result<SyncSummary, TransportError> {
        let handler = Arc::clone(&self.handler);
        let sink = move |p: SyncProgress| handler(LiveEvent::Progress(p));
        let summary = run_rounds(&self.replica, &self.config, &mut self.link, &sink, None).await?;
        // A push read during these rounds may have asked for one (it saw this round's own
        // uploads still pending, or said `more`); the rounds only ended once the replica had
        // nothing to send and the last reply nothing more, which answers it.
        self.link.round_wanted = false;
        (self.handler)(LiveEvent::Synced(summary.clone()));
        Ok(summary)
    }
}

impl Exchange for Link {
    async fn exchange(
        &mut self,
        request: &SyncRequest,
        progress: &Progress<'_>,
    ) -> Result<Exchanged, TransportError> {
        progress.emit(SyncPhase::Sending { attempt: 1 });
        let frame = wire::encode(&ClientFrame::Sync(request.clone()));
        let bytes_sent = frame.len() as u64;
        let deadline = Instant::now() + self.reply_timeout;
        tokio::time::timeout_at(deadline, self.ws.send(Message::Binary(frame.into())))
            .await
            .map_err(|_| TransportError::Timeout)?
            .map_err(ws_error)?;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| TransportError::Timeout)?;
            match self.receive(msg).await? {
                Received::Reply(response, bytes_received) => {
                    return Ok(Exchanged {
                        response,
                        bytes_sent,
                        bytes_received,
                        retries: 0,
                    });
                }
                Received::Error(e) => return Err(e),
                Received::Other => {}
            }
        }
    }
}

impl Link {
    /// Reads one frame; applies it if it is a push.
    async fn receive(
        &mut self,
        msg: Option<Result<Message, WsError>>,
    ) -> Result<Received, TransportError> {
        let msg = match msg {
            None => return Err(self.closed_by_server(None)),
            Some(Err(e)) => return Err(self.pending_error.take().unwrap_or_else(|| ws_error(e))),
            Some(Ok(m)) => m,
        };
        self.last_heard = Instant::now();
        match msg {
            Message::Binary(data) => {
                let frame = wire::decode::<ServerFrame>(&data).map_err(|e| {
                    TransportError::Protocol(format!(
                        "a frame from the server is not a valid message: {e}"
                    ))
                })?;
                match frame {
                    ServerFrame::Reply(response) => {
                        Ok(Received::Reply(response, data.len() as u64))
                    }
                    ServerFrame::Push(response) => {
                        self.apply_push(response).await?;
                        Ok(Received::Other)
                    }
                    ServerFrame::Error { code, message } => {
                        Ok(Received::Error(from_code(code, message)))
                    }
                }
            }
            Message::Close(frame) => Err(self.closed_by_server(frame)),
            Message::Text(_) => Err(TransportError::Protocol(
                "the server sent a text frame; sync frames are binary".into(),
            )),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(Received::Other),
        }
    }

    /// Applies a push as the answer to an empty request (nothing uploaded, nothing asked).
    async fn apply_push(&mut self, response: SyncResponse) -> Result<(), TransportError> {
        let (report, follow_up) = blocking(&self.replica, move |r| {
            let request = SyncRequest {
                protocol: PROTOCOL_VERSION,
                device_id: r.device_id(),
                cursor: r.cursor()?,
                uploads: Vec::new(),
                want_full: Vec::new(),
            };
            let report = r.apply_sync(&request, response)?;
            // With a zero byte budget this reads at most one pending change: enough to know.
            let next = r.prepare_sync(0)?;
            Ok((report, has_work(&next)))
        })
        .await?;
        if report.more || follow_up {
            self.round_wanted = true;
        }
        (self.handler)(LiveEvent::Push(report));
        Ok(())
    }

    fn closed_by_server(&mut self, frame: Option<CloseFrame>) -> TransportError {
        if let Some(e) = self.pending_error.take() {
            return e;
        }
        match frame {
            Some(f) if is_auth_code(f.reason.as_str()) => TransportError::Unauthorized {
                code: f.reason.as_str().to_owned(),
                message: "the server closed the live connection".into(),
            },
            Some(f) => TransportError::Network(format!(
                "the server closed the connection (code {}{}{})",
                u16::from(f.code),
                if f.reason.is_empty() { "" } else { ": " },
                f.reason.as_str()
            )),
            None => TransportError::Network("the server closed the connection".into()),
        }
    }
}

/// Maps a failed WebSocket upgrade: an HTTP answer is judged like one from `POST /v1/sync`.
fn handshake_error(e: WsError) -> TransportError {
    match e {
        WsError::Http(response) => {
            let retry_after =
                parse_retry_after(response.headers().get(RETRY_AFTER).map(|v| v.as_bytes()));
            let body = response.body().as_deref().unwrap_or_default();
            from_status(response.status().as_u16(), retry_after, body)
        }
        other => ws_error(other),
    }
}

fn ws_error(e: WsError) -> TransportError {
    match &e {
        WsError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => TransportError::Timeout,
        WsError::Io(_)
        | WsError::Tls(_)
        | WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            TransportError::Network(describe(&e))
        }
        WsError::Url(_) => TransportError::Config(describe(&e)),
        _ => TransportError::Protocol(describe(&e)),
    }
}
