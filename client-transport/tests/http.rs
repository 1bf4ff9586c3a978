//! `SyncClient::sync` and the auth helpers against a scripted in-process server.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use fieldline_client_transport::{
    CancelToken, SyncPhase, SyncProgress, TokenProvider, TransportError,
};
use fieldline_protocol::wire::{CONTENT_TYPE, Cursor};

fn quiet(_: SyncProgress) {}

fn fail(status: u16, code: &'static str) -> Step {
    Step::Fail {
        status,
        code,
        retry_after: None,
    }
}

#[tokio::test]
async fn a_server_error_is_retried_with_identical_bytes() {
    let who = rep_identity();
    let server = TestServer::start(
        who.clone(),
        vec![fail(503, "unavailable"), Step::Answer { more: false }],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let replica = replica(dir.path(), &who, 3);
    assert_eq!(replica.pending_changes().unwrap(), 3);

    let summary = server.client("tok").sync(&replica, &quiet).await.unwrap();

    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].body, seen[1].body,
        "a retry re-sends the same bytes"
    );
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer tok"));
    assert_eq!(seen[0].content_type.as_deref(), Some(CONTENT_TYPE));
    assert_eq!(seen[0].request().uploads[0].changes.len(), 3);
    assert_eq!(summary.rounds, 1);
    assert_eq!(summary.retries, 1);
    assert_eq!(summary.uploaded, 3);
    assert_eq!(summary.accepted, 3);
    assert!(summary.complete);
    assert_eq!(summary.bytes_sent, 2 * seen[0].body.len() as u64);
    assert!(summary.bytes_received > 0);
    assert_eq!(replica.pending_changes().unwrap(), 0);
    assert_eq!(replica.cursor().unwrap(), Cursor(1));
}

#[tokio::test]
async fn a_connection_dropped_mid_answer_is_retried() {
    let who = rep_identity();
    let server = TestServer::start(who.clone(), vec![Step::Truncate]).await;
    let dir = tempfile::tempdir().unwrap();
    let replica = replica(dir.path(), &who, 2);

    let summary = server.client("tok").sync(&replica, &quiet).await.unwrap();

    let seen = server.seen();
    assert_eq!(seen.len(), 2, "the truncated answer was retried");
    assert_eq!(seen[0].body, seen[1].body);
    assert_eq!(summary.retries, 1);
    assert_eq!(summary.accepted, 2);
    assert_eq!(replica.pending_changes().unwrap(), 0);
}

#[tokio::test]
async fn unauthorized_is_not_retried() {
    let who = rep_identity();
    let server = TestServer::start(who.clone(), vec![fail(401, "token_expired")]).await;
    let dir = tempfile::tempdir().unwrap();
    let replica = replica(dir.path(), &who, 1);

    let err = server
        .client("old")
        .sync(&replica, &quiet)
        .await
        .unwrap_err();

    assert!(err.is_auth() && !err.is_retryable(), "{err:?}");
    assert!(matches!(&err, TransportError::Unauthorized { code, .. } if code == "token_expired"));
    assert_eq!(err.code(), "token_expired");
    assert!(!err.to_string().contains("old"), "no token in the message");
    assert_eq!(server.seen().len(), 1);
    assert_eq!(replica.pending_changes().unwrap(), 1, "nothing was lost");
}

#[tokio::test]
async fn a_token_refreshed_meanwhile_gets_one_try() {
    let who = rep_identity();
    let server = TestServer::start(who.clone(), vec![fail(401, "token_expired")]).await;
    let dir = tempfile::tempdir().unwrap();
    let replica = replica(dir.path(), &who, 1);
    // The first call hands out the old token; the app has refreshed it by the next.
    let calls = AtomicUsize::new(0);
    let tokens: Arc<dyn TokenProvider> = Arc::new(move || {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        Some(if n == 0 { "old" } else { "new" }.to_owned())
    });
    let client = server.client_with(|_| {}, tokens);

    client.sync(&replica, &quiet).await.unwrap();

    let auth: Vec<_> = server.seen().into_iter().map(|s| s.authorization).collect();
    assert_eq!(auth, [Some("Bearer old".into()), Some("Bearer new".into())]);
}

#[tokio::test]
async fn no_token_means_no_request() {
    let who = rep_identity();
    let server = TestServer::start(who.clone(), vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let replica = replica(dir.path(), &who, 1);
    let client = server.client_with(|_| {}, Arc::new(|| None));

    let err = client.sync(&replica, &quiet).await.unwrap_err();

    assert_eq!(err.code(), "not_signed_in");
    assert!(err.is_auth());
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn forbidden_and_bad_requests_are_not_retried() {
    let who = rep_identity();
    let dir = tempfile::tempdir().unwrap();
    let replica = replica(dir.path(), &who, 1);
    for (status, code) in [
        (403, "forbidden"),
        (400, "bad_request"),
        (413, "payload_too_large"),
        (415, "unsupported_media_type"),
        (422, "invalid_input"),
    ] {
        let server = TestServer::start(who.clone(), vec![fail(status, code)]).await;
        let err = server
            .client("tok")
            .sync(&replica, &quiet)
            .await
            .unwrap_err();
        assert!(!err.is_retryable(), "{status}: {err:?}");
        assert_eq!(err.code(), code);
        match status {
            403 => assert!(matches!(err, TransportError::Forbidden { .. })),
            _ => assert!(
                matches!(err, TransportError::BadRequest { status: Some(s), .. } if s == status)
            ),
        }
        assert_eq!(server.seen().len(), 1, "{status} was not retried");
    }
}

#[tokio::test]
async fn rate_limiting_honours_retry_after() {
    let who = rep_identity();
    let server = TestServer::start(
        who.clone(),
        vec![
            Step::Fail {
                status: 429,
                code: "rate_limited",
                retry_after: Some("1"),
            },
            Step::Answer { more: false },
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let replica = replica(dir.path(), &who, 1);
    let phases = Mutex::new(Vec::new());
    let record = |p: SyncProgress| phases.lock().unwrap().push(p.phase);

    let summary = server.client("tok").sync(&replica, &record).await.unwrap();

    assert_eq!(server.seen().len(), 2);
    assert_eq!(summary.retries, 1);
    let phases = phases.into_inner().unwrap();
    assert!(
        phases.contains(&SyncPhase::Retrying {
            attempt: 1,
            delay: Duration::from_secs(1),
            code: "rate_limited".into(),
        }),
        "the wait is the server's Retry-After: {phases:?}"
    );
    assert_eq!(phases.last(), Some(&SyncPhase::Done));
}

#[tokio::test]
async fn a_retry_after_beyond_the_limit_is_returned() {
    let who = rep_identity();
    let server = TestServer::start(
        who.clone(),
        vec![Step::Fail {
            status: 429,
            code: "rate_limited",
            retry_after: Some("3600"),
        }],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let replica = replica(dir.path(), &who, 1);

    let err = server
        .client("tok")
        .sync(&replica, &quiet)
        .await
        .unwrap_err();

    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert!(err.is_retryable());
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn retries_stop_after_max_attempts() {
    let who = rep_identity();
    let server = TestServer::start(who.clone(), vec![fail(502, "bad_gateway"); 10]).await;
    let dir = tempfile::tempdir().unwrap();
    let replica = replica(dir.path(), &who, 1);
    let client = server.client_with(
        |c| c.retry.max_attempts = 3,
        Arc::new(fieldline_client_transport::SharedToken::with_token("tok")),
    );

    let err = client.sync(&replica, &quiet).await.unwrap_err();

    assert!(
        matches!(
            err,
            TransportError::Server {
                status: Some(502),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn more_leads_to_another_round() {
    let who = rep_identity();
    let server = TestServer::start(
        who.clone(),
        vec![
            Step::Answer { more: true },
            Step::Answer { more: true },
            Step::Answer { more: false },
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let replica = replica(dir.path(), &who, 0);
    let rounds = Mutex::new(Vec::new());
    let record = |p: SyncProgress| {
        if p.phase == SyncPhase::Applied {
            rounds.lock().unwrap().push((p.round, p.remaining_estimate));
        }
    };

    let summary = server.client("tok").sync(&replica, &record).await.unwrap();

    assert_eq!(summary.rounds, 3);
    assert!(summary.complete);
    let cursors: Vec<_> = server.seen().iter().map(|s| s.request().cursor).collect();
    assert_eq!(cursors, [Cursor(0), Cursor(1), Cursor(2)]);
    assert_eq!(replica.cursor().unwrap(), Cursor(3));
    assert_eq!(rounds.into_inner().unwrap(), [(1, 1), (2, 1), (3, 0)]);
}

#[tokio::test]
async fn a_large_outbox_goes_in_several_rounds() {
    let who = rep_identity();
    let server = TestServer::start(who.clone(), vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let replica = replica(dir.path(), &who, 4);
    // One change per round.
    let client = server.client_with(
        |c| c.max_upload_bytes = 1,
        Arc::new(fieldline_client_transport::SharedToken::with_token("tok")),
    );

    let summary = client.sync(&replica, &quiet).await.unwrap();

    assert_eq!(summary.rounds, 4);
    assert_eq!(summary.accepted, 4);
    assert!(summary.complete);
    assert!(
        server
            .seen()
            .iter()
            .all(|s| s.request().uploads[0].changes.len() == 1)
    );
    assert_eq!(replica.pending_changes().unwrap(), 0);
}

#[tokio::test]
async fn a_round_without_progress_ends_the_sync() {
    let who = rep_identity();
    let server = TestServer::start(who.clone(), vec![Step::Stall; 50]).await;
    let dir = tempfile::tempdir().unwrap();
    let replica = replica(dir.path(), &who, 1);

    let summary = server.client("tok").sync(&replica, &quiet).await.unwrap();

    assert_eq!(
        summary.rounds, 1,
        "a server that says more but sends nothing is not followed"
    );
    assert!(!summary.complete);
    assert_eq!(replica.pending_changes().unwrap(), 1);
}

#[tokio::test]
async fn a_cancelled_sync_stops() {
    let who = rep_identity();
    let server = TestServer::start(who.clone(), vec![fail(503, "unavailable"); 10]).await;
    let dir = tempfile::tempdir().unwrap();
    let replica = replica(dir.path(), &who, 1);
    let client = server.client_with(
        |c| {
            c.retry.max_attempts = 10;
            c.retry.initial_backoff = Duration::from_secs(60);
            c.retry.max_backoff = Duration::from_secs(60);
        },
        Arc::new(fieldline_client_transport::SharedToken::with_token("tok")),
    );
    let cancel = CancelToken::new();
    // Cancel as soon as the first attempt has failed (the client then waits to retry).
    let on_progress = {
        let cancel = cancel.clone();
        move |p: SyncProgress| {
            if matches!(p.phase, SyncPhase::Retrying { .. }) {
                cancel.cancel();
            }
        }
    };

    let err = client
        .sync_cancellable(&replica, &on_progress, &cancel)
        .await
        .unwrap_err();

    assert!(matches!(err, TransportError::Cancelled), "{err:?}");
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn login_refresh_and_logout() {
    let server = TestServer::start(rep_identity(), vec![]).await;
    let client = server.client_with(|_| {}, Arc::new(|| None));

    let tokens = client.login("li.wei", "correct horse").await.unwrap();
    assert_eq!(tokens.access_token, "acc-1");
    assert_eq!(tokens.refresh_token, "ref-2");
    assert_eq!(tokens.user.username, "li.wei");
    assert_eq!(tokens.expires_after(), Duration::from_secs(900));

    let refreshed = client.refresh(&tokens.refresh_token).await.unwrap();
    assert_eq!(refreshed.refresh_token, "ref-2");
    client.logout(&refreshed.refresh_token).await.unwrap();

    let err = client.login("li.wei", "wrong").await.unwrap_err();
    assert!(
        matches!(&err, TransportError::Unauthorized { code, .. } if code == "invalid_credentials")
    );
    let err = client.refresh("spent").await.unwrap_err();
    assert!(err.is_auth());
}

#[tokio::test]
async fn an_unreachable_server_is_a_network_error() {
    // Bind and drop a listener: the port is then (almost certainly) closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let who = rep_identity();
    let dir = tempfile::tempdir().unwrap();
    let replica = replica(dir.path(), &who, 1);
    let mut config =
        fieldline_client_transport::ClientConfig::new(format!("http://127.0.0.1:{port}"));
    config.retry.max_attempts = 2;
    config.retry.initial_backoff = Duration::from_millis(5);
    let client = fieldline_client_transport::SyncClient::new(
        config,
        Arc::new(fieldline_client_transport::SharedToken::with_token("tok")),
    )
    .unwrap();

    let err = client.sync(&replica, &quiet).await.unwrap_err();

    assert!(matches!(err, TransportError::Network(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(err.code(), "network");
}

#[test]
fn other_reqwest_clients_work_once_a_provider_is_installed() {
    fieldline_client_transport::ensure_crypto_provider();
    fieldline_client_transport::ensure_crypto_provider();
    reqwest::Client::builder().build().unwrap();
}
