//! End to end: refused writes, their replays and the managers' decisions, raced against
//! each other on the real server. One edit is applied at most once, waits for a manager at
//! most once, and an approval and a dismissal of the same item never both win.

use fieldline_client_core::sync::SyncReport;
use fieldline_protocol::ids::*;
use fieldline_protocol::model::*;
use fieldline_protocol::money::Currency;
use fieldline_protocol::ops::{AccountInput, VisitReport};
use fieldline_tests::*;
use serde_json::{Value, json};

fn input(name: &str) -> AccountInput {
    AccountInput::named(name, Currency::CNY)
}

/// One sync round by hand (prepare → POST → apply), so a test can act between rounds.
async fn one_round(device: &Device, session: &Session) -> SyncReport {
    let req = device.replica.prepare_sync(usize::MAX).unwrap();
    let (status, resp, body) = raw_sync(&session.base, &session.access, &req)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    device.replica.apply_sync(&req, resp.unwrap()).unwrap()
}

async fn reviews(org: &Org, status: &str) -> Vec<Value> {
    let v = org
        .api
        .ok(
            "GET",
            &format!("/v1/reviews?status={status}"),
            &org.manager.access,
            None,
        )
        .await
        .unwrap();
    v["reviews"].as_array().cloned().unwrap_or_default()
}

fn id_with_code(items: &[Value], code: &str) -> i64 {
    items
        .iter()
        .find(|r| r["code"] == code)
        .and_then(|r| r["id"].as_i64())
        .unwrap_or_else(|| panic!("no item with code {code}: {items:?}"))
}

async fn decide(org: &Org, id: i64, decision: &str) -> (u16, Value) {
    org.api
        .call(
            "POST",
            &format!("/v1/reviews/{id}/{decision}"),
            Some(&org.manager.access),
            Some(json!({})),
        )
        .await
        .unwrap()
}

async fn history_len(org: &Org, account: AccountId) -> usize {
    let v = org
        .api
        .ok(
            "GET",
            &format!("/v1/accounts/{account}/history"),
            &org.manager.access,
            None,
        )
        .await
        .unwrap();
    v["changes"].as_array().map(Vec::len).unwrap_or_default()
}

async fn reassign(org: &Org, account: AccountId, body: Value) {
    org.api
        .ok(
            "POST",
            &format!("/v1/accounts/{account}/assignment"),
            &org.manager.access,
            Some(body),
        )
        .await
        .unwrap();
}

/// Rep A owns a team account; offline, A edits its notes and logs a visit while the
/// manager gives the account to rep B (still shared with the team). A's first round: the
/// notes edit is refused (only the owner edits an account), the visit with it (it builds on
/// the notes change); A's device rebases, parks the notes edit and replays the visit, which
/// a team member may log.
async fn refused_notes_and_replayed_visit(
    dir: &std::path::Path,
    org: &Org,
) -> (Device, AccountId, VisitId) {
    let a = Device::open(dir, "rep_a", &org.rep_a).unwrap();
    a.sync().await.unwrap();
    let account = a
        .replica
        .create_account(&input("Teahouse 茶馆"), Visibility::Team, "", &[])
        .unwrap();
    a.sync().await.unwrap();
    a.replica
        .edit_account_notes(account, "A: wants samples of the oolong.")
        .unwrap();
    let visit = a
        .replica
        .log_visit(account, None, Some("tasting"), &VisitReport::default())
        .unwrap();
    reassign(org, account, json!({ "owner": org.rep_b.user_id })).await;
    let r = one_round(&a, &org.rep_a).await;
    assert_eq!(
        (r.rejected, r.replayed, r.parked),
        (2, 1, 1),
        "notes refused and parked, visit refused and replayed"
    );
    assert_eq!(a.replica.pending_changes().unwrap(), 1);
    (a, account, visit)
}

/// The manager approves both refused originals before A's replay of the visit reaches the
/// server. The server answers the replay as stale and stores nothing; A's device drops it,
/// since the approved visit is already in the server's copy. The visit exists once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_that_overtakes_a_replay_applies_the_edit_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("server")).unwrap();
    let org = Org::create(&server.base).await.unwrap();
    let (a, account, visit) = refused_notes_and_replayed_visit(dir.path(), &org).await;
    let open = reviews(&org, "open").await;
    assert_eq!(open.len(), 2, "{open:?}");
    let notes_item = id_with_code(&open, "forbidden");
    let visit_item = id_with_code(&open, "depends_on_rejected");
    // The visit builds on the notes change: approving it first is refused with a pointer.
    let (status, body) = decide(&org, visit_item, "approve").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("missing_dependencies"))
    );
    assert_eq!(decide(&org, notes_item, "approve").await.0, 204);
    assert_eq!(decide(&org, visit_item, "approve").await.0, 204);
    let stored_before = history_len(&org, account).await;

    let r = one_round(&a, &org.rep_a).await;
    assert_eq!((r.accepted, r.rejected, r.parked), (0, 0, 0), "{r:?}");
    assert_eq!(
        a.replica.pending_changes().unwrap(),
        0,
        "the replay is done"
    );
    assert!(
        a.replica.parked_writes().unwrap().is_empty(),
        "the parked notes edit was approved"
    );
    assert_eq!(
        history_len(&org, account).await,
        stored_before,
        "the stale replay was not stored"
    );
    let summary = a.sync().await.unwrap();
    assert_eq!(summary.uploaded, 0, "nothing left to send");

    let b = Device::open(dir.path(), "rep_b", &org.rep_b).unwrap();
    b.sync().await.unwrap();
    for (who, d) in [("A", &a), ("B", &b)] {
        let notes = d.replica.account(account).unwrap().unwrap().notes;
        assert_eq!(
            notes.matches("wants samples").count(),
            1,
            "{who} has the notes once: {notes}"
        );
        assert_eq!(d.replica.visits(account).unwrap().len(), 1, "{who}");
        assert_eq!(
            d.replica.visit(visit).unwrap().unwrap().purpose.as_deref(),
            Some("tasting")
        );
    }
    assert!(reviews(&org, "open").await.is_empty());
    assert_eq!(reviews(&org, "approved").await.len(), 2);
}

/// A's replay of the visit is refused too (meanwhile the account became private to B):
/// the server parks the replay and closes the item of the original it re-makes, so the
/// manager sees the visit once, not twice. Approving it brings the visit to B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_refused_again_waits_for_a_manager_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("server")).unwrap();
    let org = Org::create(&server.base).await.unwrap();
    let (a, account, visit) = refused_notes_and_replayed_visit(dir.path(), &org).await;
    let original_item = id_with_code(&reviews(&org, "open").await, "depends_on_rejected");
    reassign(&org, account, json!({ "visibility": "private" })).await;

    let r = one_round(&a, &org.rep_a).await;
    assert_eq!((r.rejected, r.purged), (1, 1), "{r:?}");
    assert!(a.replica.account(account).unwrap().is_none());
    let parked = a.replica.parked_writes().unwrap();
    assert_eq!(parked.len(), 2, "notes and visit wait, nothing is lost");

    let open = reviews(&org, "open").await;
    assert_eq!(open.len(), 2, "one item per edit: {open:?}");
    assert!(open.iter().all(|r| r["id"] != original_item));
    let superseded = reviews(&org, "superseded").await;
    assert_eq!(superseded.len(), 1);
    assert_eq!(superseded[0]["id"], original_item);

    // Both are refusals for access; the visit replay is the newer item.
    let replay_item = open.iter().filter_map(|r| r["id"].as_i64()).max().unwrap();
    assert_eq!(decide(&org, replay_item, "approve").await.0, 204);
    let b = Device::open(dir.path(), "rep_b", &org.rep_b).unwrap();
    b.sync().await.unwrap();
    assert_eq!(b.replica.visits(account).unwrap().len(), 1);
    assert!(b.replica.visit(visit).unwrap().is_some());
    a.sync().await.unwrap();
    let parked = a.replica.parked_writes().unwrap();
    assert_eq!(parked.len(), 1, "the approved visit left the parked list");
    assert_eq!(parked[0].action.as_deref(), Some("edit_account_notes"));
}

/// Managers approving and dismissing the same items at the same moment: for every item
/// exactly one decision wins, the other gets `already_resolved`, and the document agrees
/// with the item's final status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_and_a_dismissal_never_both_win() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("server")).unwrap();
    let org = Org::create(&server.base).await.unwrap();
    let a = Device::open(dir.path(), "rep_a", &org.rep_a).unwrap();
    a.sync().await.unwrap();
    let mut accounts = Vec::new();
    for i in 0..6 {
        accounts.push(
            a.replica
                .create_account(&input(&format!("Shop {i}")), Visibility::Private, "", &[])
                .unwrap(),
        );
    }
    a.sync().await.unwrap();
    // Offline, A logs a visit on each; meanwhile each goes to B.
    for account in &accounts {
        a.replica
            .log_visit(*account, None, Some("offline"), &VisitReport::default())
            .unwrap();
        reassign(&org, *account, json!({ "owner": org.rep_b.user_id })).await;
    }
    let s = a.sync().await.unwrap();
    assert_eq!(s.rejected, 6);
    let open = reviews(&org, "open").await;
    assert_eq!(open.len(), 6);
    let mut outcomes = Vec::new();
    for (n, item) in open.iter().enumerate() {
        let id = item["id"].as_i64().unwrap();
        // Sent together, in alternating order; for the first two items one after the
        // other, so both orders are seen whatever the timing.
        let (approve, dismiss) = match n {
            0 => {
                let a = decide(&org, id, "approve").await;
                (a, decide(&org, id, "dismiss").await)
            }
            1 => {
                let d = decide(&org, id, "dismiss").await;
                (decide(&org, id, "approve").await, d)
            }
            n if n % 2 == 0 => {
                tokio::join!(decide(&org, id, "approve"), decide(&org, id, "dismiss"))
            }
            _ => {
                let (d, a) = tokio::join!(decide(&org, id, "dismiss"), decide(&org, id, "approve"));
                (a, d)
            }
        };
        let winners = [approve.0, dismiss.0].iter().filter(|s| **s == 204).count();
        assert_eq!(winners, 1, "item {id}: {approve:?} {dismiss:?}");
        let loser = if approve.0 == 204 { &dismiss } else { &approve };
        assert_eq!(
            (loser.0, loser.1["error"]["code"].as_str()),
            (409, Some("already_resolved"))
        );
        outcomes.push((
            item["doc_id"].as_str().unwrap().to_owned(),
            approve.0 == 204,
        ));
    }
    assert!(
        outcomes[0].1 && !outcomes[1].1,
        "approve first wins, dismiss first wins"
    );
    let b = Device::open(dir.path(), "rep_b", &org.rep_b).unwrap();
    b.sync().await.unwrap();
    for (doc, approved) in outcomes {
        let account = match DocId::parse(&doc).unwrap() {
            DocId::Account(id) => id,
            other => panic!("unexpected document {other}"),
        };
        assert_eq!(
            b.replica.visits(account).unwrap().len(),
            usize::from(approved),
            "{doc}: the visit is there exactly when the item was approved"
        );
    }
}
