//! End to end: the real `fieldline-server` binary on a loopback port, real replicas, the real
//! transport. Convergence, privacy, reassignment while offline, live push.

use std::time::Duration;

use fieldline_client_transport::LiveEvent;
use fieldline_protocol::ids::*;
use fieldline_protocol::model::*;
use fieldline_protocol::money::Currency;
use fieldline_protocol::ops::{AccountInput, ContactInput, VisitReport};
use fieldline_protocol::wire::{Cursor, PROTOCOL_VERSION, SyncRequest};
use fieldline_tests::*;
use serde_json::json;

fn input(name: &str) -> AccountInput {
    let mut a = AccountInput::named(name, Currency::CNY);
    a.address.city = Some("上海".into());
    a
}

/// Two reps and their manager edit the same team account offline, then sync in every
/// order: all converge and every visit is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_account_edited_offline_converges_in_every_sync_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("server")).unwrap();
    let org = Org::create(&server.base).await.unwrap();
    let devices = [
        Device::open(dir.path(), "rep_a", &org.rep_a).unwrap(),
        Device::open(dir.path(), "rep_b", &org.rep_b).unwrap(),
        Device::open(dir.path(), "manager", &org.manager).unwrap(),
    ];
    for d in &devices {
        d.sync().await.unwrap();
    }
    let orders: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for (round, order) in orders.iter().enumerate() {
        // rep A's team account, known to everyone.
        let a = devices[0]
            .replica
            .create_account(
                &input(&format!("Team account {round}")),
                Visibility::Team,
                "",
                &[],
            )
            .unwrap();
        for d in &devices {
            d.sync().await.unwrap();
        }
        assert!(
            devices[1].replica.account(a).unwrap().is_some(),
            "the teammate reads the team account"
        );
        // Offline edits on all three devices.
        let mut visits = Vec::new();
        for (i, d) in devices.iter().enumerate() {
            let v = d
                .replica
                .log_visit(
                    a,
                    None,
                    Some(&format!("visit by {}", d.name)),
                    &VisitReport::default(),
                )
                .unwrap();
            visits.push(v);
            if i != 1 {
                d.replica
                    .edit_account_notes(a, &format!("note from {}", d.name))
                    .unwrap();
            }
        }
        devices[2]
            .replica
            .update_account(
                a,
                &input(&format!("Team account {round} (renamed by manager)")),
            )
            .unwrap();
        devices[0]
            .replica
            .add_contact(
                a,
                &ContactInput {
                    name: format!("Contact {round}"),
                    ..Default::default()
                },
            )
            .unwrap();
        // Sync in this order, twice round so everyone hears everyone.
        for _ in 0..2 {
            for &i in order {
                let s = devices[i].sync().await.unwrap();
                assert_eq!(s.rejected, 0, "honest devices are never refused");
            }
        }
        let reference = devices[0].replica.visits(a).unwrap();
        for d in &devices {
            let mine = d.replica.visits(a).unwrap();
            assert_eq!(mine.len(), 3, "{}: every visit kept", d.name);
            for v in &visits {
                assert_eq!(mine.iter().filter(|x| x.id == *v).count(), 1);
            }
            assert_eq!(mine, reference, "{} converged", d.name);
            assert_eq!(
                d.replica.account(a).unwrap(),
                devices[0].replica.account(a).unwrap()
            );
            assert_eq!(d.replica.pending_changes().unwrap(), 0);
        }
        assert_eq!(
            devices[0].replica.account(a).unwrap().unwrap().name,
            format!("Team account {round} (renamed by manager)")
        );
    }
}

/// Rep A's private account never reaches rep B: not in B's file, not on request, not in a push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_account_never_reaches_another_rep() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("server")).unwrap();
    let org = Org::create(&server.base).await.unwrap();
    let a = Device::open(dir.path(), "rep_a", &org.rep_a).unwrap();
    let b = Device::open(dir.path(), "rep_b", &org.rep_b).unwrap();
    let outsider = Device::open(dir.path(), "outsider", &org.outsider).unwrap();
    for d in [&a, &b, &outsider] {
        d.sync().await.unwrap();
    }
    // B is online (live) while A works on the private account.
    let pushes = std::sync::Arc::new(std::sync::Mutex::new(0usize));
    let p = pushes.clone();
    let live = b.client.connect_live(b.replica.clone(), move |e| {
        if matches!(e, LiveEvent::Push(_)) {
            *p.lock().unwrap() += 1;
        }
    });
    let live = live.await.unwrap();
    let secret = "Secret Customer 秘密客户 7f3a";
    let account = a
        .replica
        .create_account(
            &input(secret),
            Visibility::Private,
            "very private notes",
            &["vip".into()],
        )
        .unwrap();
    a.replica
        .add_contact(
            account,
            &ContactInput {
                name: "Hidden Contact 隐藏联系人".into(),
                ..Default::default()
            },
        )
        .unwrap();
    a.sync().await.unwrap();
    // Meanwhile a team-visible account does reach B live (proving the push path works).
    let shared = a
        .replica
        .create_account(&input("Shared Shop 共享商店"), Visibility::Team, "", &[])
        .unwrap();
    a.sync().await.unwrap();
    let mut waited = 0;
    while b.replica.account(shared).unwrap().is_none() && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert!(
        b.replica.account(shared).unwrap().is_some(),
        "the live push brought the team account"
    );
    live.close().await.unwrap();
    for d in [&b, &outsider] {
        d.sync().await.unwrap();
        assert!(d.replica.account(account).unwrap().is_none());
        assert!(
            !d.replica
                .document_ids()
                .unwrap()
                .contains(&DocId::Account(account))
        );
        let bytes = d.file_bytes();
        for needle in [
            secret,
            "秘密客户",
            "Hidden Contact",
            "very private notes",
            &account.to_string(),
        ] {
            assert!(
                !contains_bytes(&bytes, needle.as_bytes()),
                "{} holds {needle}",
                d.name
            );
        }
    }
    // Asking for it by ID is refused, over sync and over the API.
    let req = SyncRequest {
        protocol: PROTOCOL_VERSION,
        device_id: b.replica.device_id(),
        cursor: Cursor(0),
        uploads: vec![],
        want_full: vec![DocId::Account(account)],
    };
    let (status, resp, body) = raw_sync(&server.base, &org.rep_b.access, &req)
        .await
        .unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(resp.is_none());
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(
        !body.to_string().contains("Secret"),
        "errors carry no content"
    );
    let (status, body) = org
        .api
        .call(
            "GET",
            &format!("/v1/accounts/{account}"),
            Some(&org.rep_b.access),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 403);
    assert!(!body.to_string().contains("Secret"));
    let (status, _) = org
        .api
        .call(
            "GET",
            &format!("/v1/accounts/{account}/history"),
            Some(&org.outsider.access),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 403);
    // The manager of A's team does read it.
    let v = org
        .api
        .ok(
            "GET",
            &format!("/v1/accounts/{account}"),
            &org.manager.access,
            None,
        )
        .await
        .unwrap();
    assert_eq!(v["account"]["name"], secret);
}

/// An account reassigned while its old owner is offline logging a visit on it: the visit is
/// parked for review, the old owner's device purges the account, the new owner has it, and
/// a manager's approval brings the visit to the new owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassignment_while_offline_parks_the_visit_and_moves_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("server")).unwrap();
    let org = Org::create(&server.base).await.unwrap();
    let old = Device::open(dir.path(), "old_owner", &org.rep_a).unwrap();
    let new = Device::open(dir.path(), "new_owner", &org.rep_b).unwrap();
    old.sync().await.unwrap();
    new.sync().await.unwrap();
    let name = "Reassigned Restaurant 转手餐厅";
    let account = old
        .replica
        .create_account(&input(name), Visibility::Private, "", &[])
        .unwrap();
    old.sync().await.unwrap();
    // Offline: the old owner logs a visit.
    let visit = old
        .replica
        .log_visit(
            account,
            None,
            Some("offline visit"),
            &VisitReport {
                outcome: Some("ordered 20 boxes".into()),
                ..Default::default()
            },
        )
        .unwrap();
    // Meanwhile the manager gives the account to rep B.
    org.api
        .ok(
            "POST",
            &format!("/v1/accounts/{account}/assignment"),
            &org.manager.access,
            Some(json!({ "owner": org.rep_b.user_id })),
        )
        .await
        .unwrap();
    // The old owner comes back online.
    let s = old.sync().await.unwrap();
    assert_eq!((s.rejected, s.purged), (1, 1));
    assert!(old.replica.account(account).unwrap().is_none());
    assert!(
        !contains_bytes(&old.file_bytes(), "转手餐厅".as_bytes()),
        "purged without a trace"
    );
    let parked = old.replica.parked_writes().unwrap();
    assert_eq!(parked.len(), 1, "the visit is parked, not lost");
    assert_eq!(parked[0].action.as_deref(), Some("log_visit"));
    // The new owner has the account, without the refused visit.
    new.sync().await.unwrap();
    assert_eq!(
        new.replica.account(account).unwrap().unwrap().acl.owner,
        org.rep_b.user_id
    );
    assert!(new.replica.visit(visit).unwrap().is_none());
    // The manager sees the parked visit and approves it.
    let reviews = org
        .api
        .ok("GET", "/v1/reviews?status=open", &org.manager.access, None)
        .await
        .unwrap();
    let items = reviews["reviews"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["user_id"], org.rep_a.user_id.to_string());
    let id = items[0]["id"].as_i64().unwrap();
    let detail = org
        .api
        .ok(
            "GET",
            &format!("/v1/reviews/{id}"),
            &org.manager.access,
            None,
        )
        .await
        .unwrap();
    assert!(
        detail["change"]["ops"]
            .as_array()
            .is_some_and(|o| !o.is_empty()),
        "the reviewer sees what the change does"
    );
    org.api
        .ok(
            "POST",
            &format!("/v1/reviews/{id}/approve"),
            &org.manager.access,
            Some(json!({ "note": "real visit" })),
        )
        .await
        .unwrap();
    let (status, body) = org
        .api
        .call(
            "POST",
            &format!("/v1/reviews/{id}/approve"),
            Some(&org.manager.access),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("already_resolved"))
    );
    new.sync().await.unwrap();
    let v = new
        .replica
        .visit(visit)
        .unwrap()
        .expect("the approved visit reached the new owner");
    assert_eq!(v.outcome.as_deref(), Some("ordered 20 boxes"));
    // The old owner's parked copy is cleared; the account stays gone.
    old.sync().await.unwrap();
    assert!(old.replica.parked_writes().unwrap().is_empty());
    assert!(old.replica.account(account).unwrap().is_none());
}

/// The same, for an account that stays shared with the team: team members may log visits on
/// it, so the old owner's offline visit is simply accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visit_on_an_account_reassigned_within_the_team_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("server")).unwrap();
    let org = Org::create(&server.base).await.unwrap();
    let old = Device::open(dir.path(), "old_owner", &org.rep_a).unwrap();
    let new = Device::open(dir.path(), "new_owner", &org.rep_b).unwrap();
    old.sync().await.unwrap();
    let account = old
        .replica
        .create_account(&input("Kept Shop"), Visibility::Team, "", &[])
        .unwrap();
    old.sync().await.unwrap();
    let visit = old
        .replica
        .log_visit(account, None, Some("offline"), &VisitReport::default())
        .unwrap();
    org.api
        .ok(
            "POST",
            &format!("/v1/accounts/{account}/assignment"),
            &org.manager.access,
            Some(json!({ "owner": org.rep_b.user_id })),
        )
        .await
        .unwrap();
    let s = old.sync().await.unwrap();
    assert_eq!(
        (s.accepted, s.rejected, s.parked, s.purged),
        (1, 0, 0, 0),
        "accepted from a teammate"
    );
    assert_eq!(old.replica.pending_changes().unwrap(), 0);
    new.sync().await.unwrap();
    assert!(
        new.replica.visit(visit).unwrap().is_some(),
        "the visit is kept"
    );
    assert_eq!(
        old.replica.account(account).unwrap().unwrap().acl.owner,
        org.rep_b.user_id
    );
    // But the old owner may no longer edit the account itself.
    let err = old
        .replica
        .update_account(account, &input("Renamed by the old owner"))
        .unwrap_err();
    assert_eq!(err.code(), "forbidden");
    let reviews = org
        .api
        .ok("GET", "/v1/reviews?status=open", &org.manager.access, None)
        .await
        .unwrap();
    assert_eq!(reviews["reviews"].as_array().unwrap().len(), 0);
}

/// An admin demoted to rep: the old admin token stops working at once, and the next sync
/// with a fresh token purges everything a rep may not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_admin_loses_what_a_rep_may_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("server")).unwrap();
    let org = Org::create(&server.base).await.unwrap();
    let rep = Device::open(dir.path(), "rep_a", &org.rep_a).unwrap();
    rep.sync().await.unwrap();
    let secret = rep
        .replica
        .create_account(&input("Rep A's own 客户"), Visibility::Private, "", &[])
        .unwrap();
    rep.sync().await.unwrap();
    // A second admin, on a phone, holds every account.
    let boss_id = org
        .api
        .create_user(&org.admin, "boss", "admin", Some(org.other_team))
        .await
        .unwrap();
    let boss = org.api.login_user("boss").await.unwrap();
    let mut phone = Device::open(dir.path(), "boss", &boss).unwrap();
    phone.sync().await.unwrap();
    assert!(phone.replica.account(secret).unwrap().is_some());
    // Demoted to rep.
    org.api
        .ok(
            "PATCH",
            &format!("/v1/users/{boss_id}"),
            &org.admin.access,
            Some(json!({ "role": "rep" })),
        )
        .await
        .unwrap();
    let err = phone.sync().await.unwrap_err();
    assert!(err.is_auth(), "the admin token is refused: {err}");
    assert!(
        phone.replica.account(secret).unwrap().is_some(),
        "nothing changed yet on the phone"
    );
    // Signing in again gives a rep token; the next sync purges what a rep may not read.
    let again = org.api.login_user("boss").await.unwrap();
    phone.token.set(again.access.clone());
    phone.repoint(&server.base).unwrap();
    let s = phone.sync().await.unwrap();
    assert!(s.purged >= 1);
    assert!(phone.replica.account(secret).unwrap().is_none());
    assert!(!contains_bytes(
        &phone.file_bytes(),
        "Rep A's own".as_bytes()
    ));
    assert_eq!(phone.replica.identity().unwrap().principal.role, Role::Rep);
}
