//! The sync endpoints: `POST /v1/sync` (one round per request) and `/v1/sync/ws` (the same
//! rounds over a WebSocket, plus live pushes).
//!
//! A round: decode and parse everything first (a malformed body or change is a 4xx and
//! nothing is stored), judge and store the uploads (a replayed change closes the review
//! items of the refused changes it re-makes in the same commit), then answer with what changed for this user after the device's cursor.
//! A live push is the same answer computed for a connected device when something it may
//! read changes — the very same code path, so a push can never show more than a round.

use std::collections::{BTreeSet, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use automerge::Change;
use axum::Router;
use axum::body::Bytes as BodyBytes;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fieldline_protocol::access::can_read_doc;
use fieldline_protocol::ids::DocId;
use fieldline_protocol::wire::{
    self, ClientFrame, Cursor, Identity, MAX_REPLACED_ORIGINALS, Outcome, PROTOCOL_VERSION,
    ServerFrame, SyncRequest, SyncResponse,
};

use crate::app::{AppState, Caller, blocking, now_ms};
use crate::engine::{Engine, Event, acl_of};
use crate::store::PullRequest;
use crate::{Error, Result};

/// Most changes, wanted documents and replaced originals one request may carry.
const MAX_ITEMS: usize = 20_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/sync", post(sync_http))
        .route("/v1/sync/ws", get(sync_ws))
}

/// One sync round for an authenticated caller. Blocking: run it on the blocking pool.
pub fn round(
    state: &AppState,
    caller: &Caller,
    req: SyncRequest,
    now: i64,
) -> Result<SyncResponse> {
    let started = Instant::now();
    if req.protocol != PROTOCOL_VERSION {
        return Err(Error::bad_request(
            "unsupported_protocol",
            format!(
                "this server speaks sync protocol {PROTOCOL_VERSION}, the app sent {}; update the app",
                req.protocol
            ),
        ));
    }
    let items = req.uploads.iter().map(|u| u.changes.len()).sum::<usize>()
        + req.want_full.len()
        + req
            .uploads
            .iter()
            .flat_map(|u| &u.replaces)
            .map(|r| r.originals.len())
            .sum::<usize>();
    if items > MAX_ITEMS {
        return Err(Error::bad_request(
            "too_many_items",
            format!("send at most {MAX_ITEMS} changes and documents per round"),
        ));
    }
    // Parse every change before touching anything: bad bytes fail the whole round.
    let mut parsed = Vec::new();
    for up in &req.uploads {
        for (i, bytes) in up.changes.iter().enumerate() {
            let c = catch_unwind(AssertUnwindSafe(|| Change::from_bytes(bytes.0.clone())))
                .ok()
                .and_then(|r| r.ok())
                .ok_or_else(|| {
                    Error::bad_request(
                        "invalid_change",
                        format!("change {i} of {} is not a valid automerge change", up.doc),
                    )
                })?;
            parsed.push((up.doc, c));
        }
    }
    let uploaded: HashSet<(DocId, automerge::ChangeHash)> =
        parsed.iter().map(|(d, c)| (*d, c.hash())).collect();
    let mut replaces = Vec::new();
    for up in &req.uploads {
        for r in &up.replaces {
            if r.originals.is_empty() || r.originals.len() > MAX_REPLACED_ORIGINALS {
                return Err(Error::bad_request(
                    "invalid_replacement",
                    format!(
                        "a replacement in {} must name 1 to {MAX_REPLACED_ORIGINALS} original changes",
                        up.doc
                    ),
                ));
            }
            let change = automerge::ChangeHash::from(r.change);
            if !uploaded.contains(&(up.doc, change)) {
                return Err(Error::bad_request(
                    "invalid_replacement",
                    format!(
                        "a replacement in {} names a change this request does not upload",
                        up.doc
                    ),
                ));
            }
            let originals = r.originals.iter().map(|h| (*h).into()).collect();
            replaces.push((up.doc, change, originals));
        }
    }
    let p = &caller.principal;
    // Documents asked for whole that the user may not read and never held: refused outright.
    for doc in &req.want_full {
        let meta = state.store.doc_meta(*doc)?;
        let readable = meta
            .as_ref()
            .is_some_and(|m| can_read_doc(p, doc, acl_of(m).as_ref()));
        if !readable && !state.store.device_holds(p.user_id, req.device_id, *doc)? {
            return Err(Error::Forbidden(format!("read document {doc}")));
        }
    }
    let outcomes = state.engine.upload(
        p,
        req.device_id,
        Engine::group_uploads(parsed, replaces),
        now,
    )?;
    let rebase: Vec<DocId> = outcomes
        .iter()
        .filter(|o| matches!(o.result, Outcome::Rejected { .. } | Outcome::Stale { .. }))
        .map(|o| o.doc)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let page = state.store.pull(&PullRequest {
        principal: p,
        device: req.device_id,
        cursor: req.cursor.0,
        want_full: &req.want_full,
        rebase: &rebase,
        max_docs: state.config.sync_page_docs,
        max_bytes: state.config.sync_page_bytes,
        now,
    })?;
    if let Some(doc) = page.forbidden.first() {
        return Err(Error::Forbidden(format!("read document {doc}")));
    }
    let m = &state.metrics;
    m.inc(&m.sync_rounds);
    m.add(&m.docs_sent, page.docs.len() as u64);
    m.add(&m.sync_micros_total, started.elapsed().as_micros() as u64);
    Ok(SyncResponse {
        cursor: Cursor(page.cursor),
        more: page.more,
        remaining: page.remaining,
        identity: Identity {
            principal: p.clone(),
            username: caller.user.username.clone(),
            display_name: caller.user.display_name.clone(),
        },
        docs: page.docs,
        purged: page.purged,
        outcomes,
        reviews: page.reviews,
    })
}

fn binary(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, wire::CONTENT_TYPE)], bytes).into_response()
}

async fn sync_http(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: BodyBytes,
) -> Result<Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with(wire::CONTENT_TYPE) {
        return Err(Error::bad_request(
            "unsupported_media_type",
            format!("send sync rounds as {}", wire::CONTENT_TYPE),
        ));
    }
    state
        .metrics
        .add(&state.metrics.sync_bytes_in, body.len() as u64);
    let req: SyncRequest =
        wire::decode(&body).map_err(|e| Error::bad_request("malformed_message", e.to_string()))?;
    let st = state.clone();
    let resp = blocking(move || round(&st, &caller, req, now_ms())).await?;
    let bytes = wire::encode(&resp);
    state
        .metrics
        .add(&state.metrics.sync_bytes_out, bytes.len() as u64);
    Ok(binary(bytes))
}

async fn sync_ws(State(state): State<AppState>, caller: Caller, ws: WebSocketUpgrade) -> Response {
    let max = state.config.max_body_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| session(state, caller, socket))
}

fn frame(f: &ServerFrame) -> Message {
    Message::Binary(wire::encode(f).into())
}

fn error_frame(e: &Error) -> ServerFrame {
    let (_, code) = e.status_and_code();
    ServerFrame::Error {
        code: code.to_owned(),
        message: e.to_string(),
    }
}

/// Whether an event may concern this connection (the push round decides for sure).
fn concerns(event: &Event, caller: &Caller) -> bool {
    let p = &caller.principal;
    match event {
        // Readable now, or an access change that may purge it from this device.
        Event::Doc {
            meta, acl_changed, ..
        } => *acl_changed || can_read_doc(p, &meta.doc_id, acl_of(meta).as_ref()),
        Event::Access { user } | Event::Review { user } => *user == p.user_id,
    }
}

/// One live connection: answers rounds in order, pushes what others change meanwhile, and
/// ends when the access token expires (the app reconnects with a fresh one).
async fn session(state: AppState, mut caller: Caller, mut socket: WebSocket) {
    let m = state.metrics.clone();
    m.inc(&m.ws_connections);
    let mut events = state.engine.subscribe();
    // The device and cursor of the last answer sent: pushes continue from there.
    let mut position: Option<(fieldline_protocol::ids::DeviceId, Cursor)> = None;
    let mut dirty = false;
    let expires_in = Duration::from_secs((caller.expires_at - now_ms() / 1000).max(0) as u64);
    let expiry = tokio::time::sleep(expires_in);
    tokio::pin!(expiry);
    let debounce = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(debounce);
    loop {
        tokio::select! {
            msg = socket.recv() => {
                let Some(Ok(msg)) = msg else { break };
                let bytes = match msg {
                    Message::Binary(b) => b,
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => continue,
                    Message::Text(_) => {
                        let e = Error::bad_request("unsupported_media_type", "send binary frames");
                        if socket.send(frame(&error_frame(&e))).await.is_err() { break }
                        continue;
                    }
                };
                m.add(&m.sync_bytes_in, bytes.len() as u64);
                let reply = match wire::decode::<ClientFrame>(&bytes) {
                    Err(e) => error_frame(&Error::bad_request("malformed_message", e.to_string())),
                    Ok(ClientFrame::Sync(req)) => {
                        let device = req.device_id;
                        let (st, c) = (state.clone(), caller.clone());
                        match blocking(move || round(&st, &c, req, now_ms())).await {
                            Ok(resp) => {
                                position = Some((device, resp.cursor));
                                ServerFrame::Reply(resp)
                            }
                            Err(e) => error_frame(&e),
                        }
                    }
                };
                let out = wire::encode(&reply);
                m.add(&m.sync_bytes_out, out.len() as u64);
                if socket.send(Message::Binary(out.into())).await.is_err() { break }
            }
            ev = events.recv() => {
                match ev {
                    Ok(Event::Access { user }) if user == caller.principal.user_id => {
                        // Role, activity or memberships changed. A session whose token no
                        // longer matches the user ends (the app signs in again); otherwise it
                        // refreshes what it may see.
                        let (store, role) = (state.store.clone(), caller.principal.role);
                        let refreshed = blocking(move || {
                            let row = store.user(user)?.filter(|u| u.active && u.role == role);
                            Ok(match row {
                                Some(_) => Some(store.principal(user, role)?),
                                None => None,
                            })
                        })
                        .await;
                        match refreshed {
                            Ok(Some(p)) => caller.principal = p,
                            _ => {
                                let e = ServerFrame::Error {
                                    code: "unauthorized".into(),
                                    message: "this user's access changed; sign in again".into(),
                                };
                                let _ = socket.send(frame(&e)).await;
                                let _ = socket.send(Message::Close(None)).await;
                                break;
                            }
                        }
                        dirty = true;
                    }
                    Ok(ev) => dirty |= concerns(&ev, &caller),
                    // Missed events: be safe and look.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => dirty = true,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
                if dirty && position.is_some() {
                    // Coalesce bursts of changes into one push.
                    debounce.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(50));
                }
            }
            () = &mut debounce, if dirty && position.is_some() => {
                dirty = false;
                debounce.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(3600));
                let Some((device, cursor)) = position else { continue };
                let req = SyncRequest { protocol: PROTOCOL_VERSION, device_id: device, cursor, uploads: vec![], want_full: vec![] };
                let (st, c) = (state.clone(), caller.clone());
                match blocking(move || round(&st, &c, req, now_ms())).await {
                    Ok(resp) => {
                        let news = !resp.docs.is_empty() || !resp.purged.is_empty() || !resp.reviews.is_empty();
                        if news {
                            position = Some((device, resp.cursor));
                            m.inc(&m.pushes);
                            if socket.send(frame(&ServerFrame::Push(resp))).await.is_err() { break }
                        }
                    }
                    Err(e) => {
                        if socket.send(frame(&error_frame(&e))).await.is_err() { break }
                    }
                }
            }
            () = &mut expiry => {
                let e = ServerFrame::Error { code: "token_expired".into(), message: "the access token expired; reconnect with a fresh one".into() };
                let _ = socket.send(frame(&e)).await;
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
    m.dec(&m.ws_connections);
}
