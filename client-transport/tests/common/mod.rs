//! A tiny scripted stand-in for the sync server (axum on 127.0.0.1:0) and replica fixtures.
//! It speaks the wire contract but knows nothing of documents: it accepts every upload and
//! answers with canned responses, so the tests exercise the transport's own logic.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fieldline_client_core::Replica;
use fieldline_client_transport::{ClientConfig, RetryPolicy, SharedToken, SyncClient};
use fieldline_protocol::access::Principal;
use fieldline_protocol::automerge::{ActorId, Automerge, Change, transaction::CommitOptions};
use fieldline_protocol::doc::{self, Reader};
use fieldline_protocol::ids::*;
use fieldline_protocol::model::{Role, Visibility};
use fieldline_protocol::money::Currency;
use fieldline_protocol::ops::{self, AccountInput, Edit};
use fieldline_protocol::validate::{Authority, WriteContext, validate_change};
use fieldline_protocol::wire::{self, *};
use tokio::sync::mpsc;

pub const T0: i64 = 1_790_000_000_000;

/// What the server does with the next `POST /v1/sync`.
#[derive(Clone, Debug)]
pub enum Step {
    /// An error status with the JSON error body (and `Retry-After` if given).
    Fail {
        status: u16,
        code: &'static str,
        retry_after: Option<&'static str>,
    },
    /// 200: accepts every upload, advances the cursor, says `more`.
    Answer { more: bool },
    /// 200 with `more`, but nothing else: same cursor, no outcomes.
    Stall,
    /// 200 whose body stops halfway: the connection drops mid-answer.
    Truncate,
}

/// One request the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn request(&self) -> SyncRequest {
        wire::decode(&self.body).unwrap()
    }
}

/// What the WebSocket side sends besides replies.
pub enum WsOut {
    Frame(ServerFrame),
    Close,
}

pub struct ServerState {
    pub identity: Identity,
    pub cursor: u64,
    pub script: VecDeque<Step>,
    pub seen: Vec<Seen>,
    /// Frames the WebSocket sends right before its next reply.
    pub before_reply: Vec<ServerFrame>,
    pub ws_seen: Vec<Seen>,
    ws_out: Option<mpsc::UnboundedReceiver<WsOut>>,
}

pub type Shared = Arc<Mutex<ServerState>>;

pub struct TestServer {
    pub base: String,
    pub state: Shared,
    /// Sends frames (pushes, errors) or a close on the WebSocket.
    pub ws_tx: mpsc::UnboundedSender<WsOut>,
}

impl TestServer {
    pub async fn start(identity: Identity, script: Vec<Step>) -> TestServer {
        let (ws_tx, ws_rx) = mpsc::unbounded_channel();
        let state = Arc::new(Mutex::new(ServerState {
            identity,
            cursor: 0,
            script: script.into(),
            seen: Vec::new(),
            before_reply: Vec::new(),
            ws_seen: Vec::new(),
            ws_out: Some(ws_rx),
        }));
        let app = Router::new()
            .route("/v1/sync", post(sync))
            .route("/v1/sync/ws", get(sync_ws))
            .route("/v1/auth/login", post(login))
            .route("/v1/auth/refresh", post(login))
            .route("/v1/auth/logout", post(logout))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        TestServer {
            base: format!("http://{addr}"),
            state,
            ws_tx,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, ServerState> {
        self.state.lock().unwrap()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }

    /// A client with fast retries and the token `token`.
    pub fn client(&self, token: &str) -> SyncClient {
        self.client_with(|_| {}, Arc::new(SharedToken::with_token(token)))
    }

    pub fn client_with(
        &self,
        tweak: impl FnOnce(&mut ClientConfig),
        tokens: Arc<dyn fieldline_client_transport::TokenProvider>,
    ) -> SyncClient {
        let mut config = ClientConfig::new(&self.base);
        config.request_timeout = Duration::from_secs(10);
        config.retry = RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
        };
        tweak(&mut config);
        SyncClient::new(config, tokens).unwrap()
    }
}

/// The answer to `req`: every upload accepted, the cursor advanced.
pub fn accept_all(state: &mut ServerState, req: &SyncRequest, more: bool) -> SyncResponse {
    state.cursor += 1;
    let mut resp = empty_response(&state.identity, state.cursor);
    resp.more = more;
    resp.remaining = if more { 1 } else { 0 };
    for u in &req.uploads {
        for c in &u.changes {
            let hash = Change::from_bytes(c.0.clone()).unwrap().hash();
            resp.outcomes.push(ChangeOutcome {
                doc: u.doc,
                hash: hash.into(),
                result: Outcome::Accepted,
            });
        }
    }
    resp
}

pub fn empty_response(identity: &Identity, cursor: u64) -> SyncResponse {
    SyncResponse {
        cursor: Cursor(cursor),
        more: false,
        remaining: 0,
        identity: identity.clone(),
        docs: vec![],
        purged: vec![],
        outcomes: vec![],
        reviews: vec![],
    }
}

fn error_json(status: u16, code: &str, retry_after: Option<&str>) -> Response {
    let body = format!(r#"{{"error":{{"code":"{code}","message":"canned {code}"}}}}"#);
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(after) = retry_after {
        builder = builder.header(header::RETRY_AFTER, after);
    }
    builder.body(Body::from(body)).unwrap()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn sync(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (step, answer) = {
        let mut st = state.lock().unwrap();
        st.seen.push(Seen {
            authorization: header_str(&headers, header::AUTHORIZATION),
            content_type: header_str(&headers, header::CONTENT_TYPE),
            body: body.to_vec(),
        });
        let step = st
            .script
            .pop_front()
            .unwrap_or(Step::Answer { more: false });
        let req: SyncRequest = wire::decode(&body).unwrap();
        let answer = match &step {
            Step::Answer { more } => Some(accept_all(&mut st, &req, *more)),
            Step::Stall => {
                let mut r = empty_response(&st.identity, st.cursor);
                r.more = true;
                Some(r)
            }
            Step::Truncate => Some(accept_all(&mut st, &req, false)),
            Step::Fail { .. } => None,
        };
        (step, answer)
    };
    match (step, answer) {
        (
            Step::Fail {
                status,
                code,
                retry_after,
            },
            _,
        ) => error_json(status, code, retry_after),
        (Step::Truncate, Some(resp)) => {
            let bytes = wire::encode(&resp);
            let half = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(half),
                Err(std::io::Error::other("the server drops the connection")),
            ];
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, CONTENT_TYPE)
                .header(header::CONTENT_LENGTH, bytes.len())
                .body(Body::from_stream(futures_util::stream::iter(chunks)))
                .unwrap()
        }
        (_, Some(resp)) => {
            ([(header::CONTENT_TYPE, CONTENT_TYPE)], wire::encode(&resp)).into_response()
        }
        (_, None) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn sync_ws(
    State(state): State<Shared>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let authorization = header_str(&headers, header::AUTHORIZATION);
    if authorization.as_deref() == Some("Bearer expired") {
        return error_json(401, "token_expired", None);
    }
    state.lock().unwrap().ws_seen.push(Seen {
        authorization,
        content_type: None,
        body: Vec::new(),
    });
    upgrade.on_upgrade(move |socket| serve_ws(socket, state))
}

async fn send_frame(socket: &mut WebSocket, frame: &ServerFrame) -> bool {
    socket
        .send(WsMessage::Binary(wire::encode(frame).into()))
        .await
        .is_ok()
}

async fn serve_ws(mut socket: WebSocket, state: Shared) {
    let mut out = state.lock().unwrap().ws_out.take();
    loop {
        let command = async {
            match out.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(WsMessage::Binary(b))) => {
                    let ClientFrame::Sync(req) = wire::decode(&b).unwrap();
                    let (before, reply) = {
                        let mut st = state.lock().unwrap();
                        st.ws_seen.push(Seen { authorization: None, content_type: None, body: wire::encode(&req) });
                        let before = std::mem::take(&mut st.before_reply);
                        let reply = accept_all(&mut st, &req, false);
                        (before, reply)
                    };
                    for f in &before {
                        if !send_frame(&mut socket, f).await { return; }
                    }
                    if !send_frame(&mut socket, &ServerFrame::Reply(reply)).await { return; }
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            cmd = command => match cmd {
                Some(WsOut::Frame(f)) => {
                    if !send_frame(&mut socket, &f).await { return; }
                }
                Some(WsOut::Close) | None => {
                    let _ = socket.send(WsMessage::Close(None)).await;
                    return;
                }
            },
        }
    }
}

async fn login(headers: HeaderMap, body: Bytes) -> Response {
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        header_str(&headers, header::CONTENT_TYPE).as_deref(),
        Some("application/json")
    );
    if v.get("password").and_then(|p| p.as_str()) == Some("wrong")
        || v.get("refresh_token").and_then(|p| p.as_str()) == Some("spent")
    {
        return error_json(401, "invalid_credentials", None);
    }
    let id = UserId::new();
    let body = format!(
        r#"{{"access_token":"acc-1","token_type":"Bearer","expires_in":900,"refresh_token":"ref-2",
            "user":{{"id":"{id}","username":"li.wei","display_name":"李伟","role":"rep"}}}}"#
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn logout(body: Bytes) -> StatusCode {
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v.get("refresh_token").is_some());
    StatusCode::NO_CONTENT
}

// ---- replica fixtures -------------------------------------------------------------------

pub fn rep_identity() -> Identity {
    Identity {
        principal: Principal {
            user_id: UserId::new(),
            role: Role::Rep,
            teams: vec![TeamId::new()],
            managed_teams: vec![],
            managed_users: vec![],
        },
        username: "rep".into(),
        display_name: "Rep".into(),
    }
}

pub fn admin_principal() -> Principal {
    Principal {
        user_id: UserId::new(),
        role: Role::Admin,
        teams: vec![],
        managed_teams: vec![],
        managed_users: vec![],
    }
}

/// A replica signed in as `who`, with `edits` pending changes (one new account, then notes).
pub fn replica(dir: &std::path::Path, who: &Identity, edits: usize) -> Arc<Replica> {
    let r = Replica::open(dir.join("rep.db")).unwrap();
    r.set_identity(who.clone()).unwrap();
    if edits > 0 {
        let a = r
            .create_account(
                &AccountInput::named("Teahouse 茶馆", Currency::CNY),
                Visibility::Private,
                "",
                &[],
            )
            .unwrap();
        for i in 1..edits {
            r.edit_account_notes(a, &format!("note {i}")).unwrap();
        }
    }
    Arc::new(r)
}

fn apply(doc: &mut Automerge, edit: &Edit, who: &Principal) {
    let before = doc.get_heads();
    let mut tx = doc.transaction();
    edit.apply(&mut tx, who.user_id, T0).unwrap();
    tx.commit_with(CommitOptions::default().with_time(T0));
    validate_change(
        &WriteContext {
            principal: who,
            doc_id: edit.doc,
            authority: Authority::Device,
            catalog: None,
        },
        doc,
        &before,
    )
    .unwrap();
}

/// A saved catalog document with one product, as the server would send it whole.
pub fn catalog_doc(admin: &Principal) -> Vec<u8> {
    let mut cat = doc::skeleton(&DocId::Catalog).unwrap();
    cat.set_actor(ActorId::random());
    apply(&mut cat, &ops::set_base_currency(Currency::CNY), admin);
    apply(
        &mut cat,
        &ops::set_tax_class("standard", "VAT 13%", 1300),
        admin,
    );
    let snapshot = Reader::new(&cat).catalog().unwrap();
    let input = ops::ProductInput {
        sku: "SKU-0001".into(),
        name: "Oolong 乌龙茶".into(),
        category: Some("tea".into()),
        unit: "box".into(),
        base_price_minor: 1000,
        tax_class: "standard".into(),
        active: true,
    };
    apply(
        &mut cat,
        &ops::upsert_product(ProductId::new(), &input, &snapshot).unwrap(),
        admin,
    );
    cat.save()
}

/// A push carrying the catalog whole.
pub fn catalog_push(identity: &Identity, cursor: u64) -> ServerFrame {
    let mut resp = empty_response(identity, cursor);
    resp.docs.push(DocPayload {
        doc: DocId::Catalog,
        data: DocData::Whole(vec![wire::Bytes(catalog_doc(&admin_principal()))]),
    });
    ServerFrame::Push(resp)
}
