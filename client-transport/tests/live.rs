//! `LiveSession` over a WebSocket against the scripted in-process server.

mod common;

use std::time::Duration;

use common::*;
use fieldline_client_transport::{LiveEvent, SyncReport, SyncSummary, TransportError};
use fieldline_protocol::wire::{Cursor, ServerFrame};
use tokio::sync::mpsc;

type Events = mpsc::UnboundedReceiver<LiveEvent>;

fn channel() -> (impl Fn(LiveEvent) + Send + Sync + 'static, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        move |e| {
            let _ = tx.send(e);
        },
        rx,
    )
}

async fn next_push(events: &mut Events) -> SyncReport {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(LiveEvent::Push(report))) => return report,
            Ok(Some(_)) => continue,
            other => panic!("no push arrived: {other:?}"),
        }
    }
}

async fn next_synced(events: &mut Events) -> SyncSummary {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(LiveEvent::Synced(summary))) => return summary,
            Ok(Some(_)) => continue,
            other => panic!("no sync finished: {other:?}"),
        }
    }
}

#[tokio::test]
async fn round_trip_with_pushes() {
    let who = rep_identity();
    let server = TestServer::start(who.clone(), vec![]).await;
    {
        // During the first round the server pushes the catalog before its reply.
        let mut st = server.state();
        st.before_reply.push(catalog_push(&who, 1));
        st.cursor = 1;
    }
    let dir = tempfile::tempdir().unwrap();
    let replica = replica(dir.path(), &who, 2);
    let (on_event, mut events) = channel();

    let session = server
        .client("live-token")
        .connect_live(replica.clone(), on_event)
        .await
        .unwrap();

    // The first sync uploaded the outbox; the push that came first was applied first.
    let initial = session.initial_sync().clone();
    assert_eq!(initial.rounds, 1);
    assert_eq!(initial.accepted, 2);
    assert!(initial.complete);
    assert_eq!(replica.pending_changes().unwrap(), 0);
    assert_eq!(replica.cursor().unwrap(), Cursor(2));
    let push = next_push(&mut events).await;
    assert_eq!(push.documents_received, 1);
    assert!(push.changes.catalog);
    assert_eq!(replica.products("", 10).unwrap().len(), 1);
    assert_eq!(next_synced(&mut events).await, initial);
    {
        let st = server.state();
        assert_eq!(
            st.ws_seen[0].authorization.as_deref(),
            Some("Bearer live-token")
        );
        let req = st.ws_seen[1].request();
        assert_eq!(req.uploads[0].changes.len(), 2);
    }

    // An idle push is applied as it comes.
    let frame = ServerFrame::Push(empty_response(&who, 7));
    server.ws_tx.send(WsOut::Frame(frame)).unwrap();
    let push = next_push(&mut events).await;
    assert_eq!(push.documents_received, 0);
    assert_eq!(replica.cursor().unwrap(), Cursor(7));
    // No needless round: one upgrade and the one Sync frame so far.
    assert_eq!(server.state().ws_seen.len(), 2);

    // A local edit goes up as soon as the app asks.
    server.state().cursor = 7;
    replica
        .create_task(&fieldline_protocol::ops::TaskInput {
            title: "Call back".into(),
            due_at: None,
            account_id: None,
            visit_id: None,
            notes: None,
        })
        .unwrap();
    assert_eq!(replica.pending_changes().unwrap(), 1);
    session.request_sync();
    let summary = next_synced(&mut events).await;
    assert_eq!(summary.accepted, 1);
    assert_eq!(replica.pending_changes().unwrap(), 0);
    assert_eq!(replica.cursor().unwrap(), Cursor(8));

    assert!(!session.is_finished());
    session.close().await.unwrap();
}

#[tokio::test]
async fn an_expired_token_ends_the_session_as_unauthorized() {
    let who = rep_identity();
    let server = TestServer::start(who.clone(), vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let replica = replica(dir.path(), &who, 0);
    let (on_event, _events) = channel();
    let mut session = server
        .client("tok")
        .connect_live(replica, on_event)
        .await
        .unwrap();

    server
        .ws_tx
        .send(WsOut::Frame(ServerFrame::Error {
            code: "token_expired".into(),
            message: "the access token has expired".into(),
        }))
        .unwrap();
    server.ws_tx.send(WsOut::Close).unwrap();

    let err = tokio::time::timeout(Duration::from_secs(10), session.wait())
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_auth(), "{err:?}");
    assert_eq!(err.code(), "token_expired");
    assert!(session.is_finished());
    // Closing a finished session is fine.
    session.close().await.unwrap();
}

#[tokio::test]
async fn a_server_close_is_a_network_error() {
    let who = rep_identity();
    let server = TestServer::start(who.clone(), vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let replica = replica(dir.path(), &who, 0);
    let (on_event, _events) = channel();
    let mut session = server
        .client("tok")
        .connect_live(replica, on_event)
        .await
        .unwrap();

    server.ws_tx.send(WsOut::Close).unwrap();

    let err = tokio::time::timeout(Duration::from_secs(10), session.wait())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, TransportError::Network(_)), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_refused_upgrade_is_unauthorized() {
    let who = rep_identity();
    let server = TestServer::start(who.clone(), vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let replica = replica(dir.path(), &who, 0);
    let (on_event, _events) = channel();

    let err = server
        .client("expired")
        .connect_live(replica, on_event)
        .await
        .unwrap_err();

    assert!(matches!(&err, TransportError::Unauthorized { code, .. } if code == "token_expired"));
}
