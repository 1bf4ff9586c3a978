//! Hostile clients: hand-crafted automerge changes that set `owner` to the attacker, edit the
//! catalog, or edit a submitted order. Each is refused, queued for review, and received by
//! nobody.

use fieldline_protocol::automerge::{
    ActorId, Automerge, Change, ROOT, ReadDoc, transaction::Transactable,
};
use fieldline_protocol::ids::*;
use fieldline_protocol::model::*;
use fieldline_protocol::money::{Currency, Quantity};
use fieldline_protocol::ops::AccountInput;
use fieldline_protocol::wire::{Bytes, Cursor, DocUpload, Outcome, PROTOCOL_VERSION, SyncRequest};
use fieldline_tests::*;

/// Makes a raw change on a copy of a document the attacker holds.
fn craft(
    doc_bytes: &[u8],
    f: impl FnOnce(&mut fieldline_protocol::automerge::transaction::Transaction<'_>),
) -> Change {
    let mut doc = Automerge::load(doc_bytes)
        .unwrap()
        .with_actor(ActorId::random());
    let mut tx = doc.transaction();
    f(&mut tx);
    tx.commit();
    doc.get_last_local_change().unwrap()
}

async fn upload(
    server: &TestServer,
    session: &Session,
    device: DeviceId,
    doc: DocId,
    change: &Change,
) -> Outcome {
    let req = SyncRequest {
        protocol: PROTOCOL_VERSION,
        device_id: device,
        cursor: Cursor(0),
        uploads: vec![DocUpload {
            doc,
            changes: vec![Bytes(change.raw_bytes().to_vec())],
            replaces: vec![],
        }],
        want_full: vec![],
    };
    let (status, resp, body) = raw_sync(&server.base, &session.access, &req).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let resp = resp.unwrap();
    assert_eq!(resp.outcomes.len(), 1);
    resp.outcomes[0].result.clone()
}

fn has_change(
    device: &Device,
    doc: DocId,
    hash: fieldline_protocol::automerge::ChangeHash,
) -> bool {
    device
        .replica
        .save_document(doc)
        .unwrap()
        .map(|b| {
            Automerge::load(&b)
                .unwrap()
                .get_change_by_hash(&hash)
                .is_some()
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_changes_are_refused_queued_and_seen_by_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("server")).unwrap();
    let org = Org::create(&server.base).await.unwrap();
    let owner = Device::open(dir.path(), "owner", &org.rep_a).unwrap();
    let attacker = Device::open(dir.path(), "attacker", &org.rep_b).unwrap();
    let manager = Device::open(dir.path(), "manager", &org.manager).unwrap();
    for d in [&owner, &attacker, &manager] {
        d.sync().await.unwrap();
    }
    // A team account the attacker (a teammate) can read.
    let account = owner
        .replica
        .create_account(
            &AccountInput::named("Target Co", Currency::CNY),
            Visibility::Team,
            "",
            &[],
        )
        .unwrap();
    let order = owner.replica.create_order(account, None, None).unwrap();
    let line = owner
        .replica
        .add_order_line(account, order, org.products[0], Quantity::whole(2), 0)
        .unwrap();
    owner.replica.submit_order(account, order).unwrap();
    owner.sync().await.unwrap();
    attacker.sync().await.unwrap();
    let doc = DocId::Account(account);
    let bytes = attacker.replica.save_document(doc).unwrap().unwrap();
    let me = org.rep_b.user_id.to_string();
    let device = attacker.replica.device_id();

    // 1. Take the account over.
    let steal = craft(&bytes, |tx| {
        let acc = tx.get(ROOT, "account").unwrap().unwrap().1;
        tx.put(&acc, "owner", me.as_str()).unwrap();
        tx.put(&acc, "visibility", "company").unwrap();
    });
    // 2. The order's own rep rewrites the quantity of the order after submitting it.
    let owner_bytes = owner.replica.save_document(doc).unwrap().unwrap();
    let cheat = craft(&owner_bytes, |tx| {
        let orders = tx.get(ROOT, "orders").unwrap().unwrap().1;
        let o = tx.get(&orders, order.to_string()).unwrap().unwrap().1;
        let lines = tx.get(&o, "lines").unwrap().unwrap().1;
        let l = tx.get(&lines, line.to_string()).unwrap().unwrap().1;
        tx.put(&l, "quantity_milli", 999_000).unwrap();
    });
    // 3. Edit the catalog.
    let catalog = attacker
        .replica
        .save_document(DocId::Catalog)
        .unwrap()
        .unwrap();
    let product = org.products[0].to_string();
    let vandal = craft(&catalog, |tx| {
        let products = tx.get(ROOT, "products").unwrap().unwrap().1;
        let p = tx.get(&products, product.as_str()).unwrap().unwrap().1;
        tx.put(&p, "base_price_minor", 1).unwrap();
    });
    let cases = [
        (&org.rep_b, device, doc, &steal, "protected_field"),
        (&org.rep_a, owner.replica.device_id(), doc, &cheat, "locked"),
        (&org.rep_b, device, DocId::Catalog, &vandal, "forbidden"),
    ];
    for (session, device, d, change, code) in cases {
        match upload(&server, session, device, d, change).await {
            Outcome::Rejected {
                code: got,
                review_id,
                ..
            } => {
                assert_eq!(got, code);
                assert!(review_id > 0);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Uploading again is harmless: the same review item.
        assert!(matches!(
            upload(&server, session, device, d, change).await,
            Outcome::Rejected { .. }
        ));
    }
    // All three wait in the review queue (the catalog one for an admin).
    let admin_view = org
        .api
        .ok("GET", "/v1/reviews?status=open", &org.admin.access, None)
        .await
        .unwrap();
    let codes: Vec<&str> = admin_view["reviews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 3, "{codes:?}");
    // Nobody receives them.
    for d in [&owner, &manager, &attacker] {
        d.sync().await.unwrap();
        assert!(
            !has_change(d, doc, steal.hash()),
            "{} received the takeover",
            d.name
        );
        assert!(
            !has_change(d, doc, cheat.hash()),
            "{} received the cheat",
            d.name
        );
        assert!(
            !has_change(d, DocId::Catalog, vandal.hash()),
            "{} received the vandalism",
            d.name
        );
    }
    let acc = owner.replica.account(account).unwrap().unwrap();
    assert_eq!(
        (acc.acl.owner, acc.acl.visibility),
        (org.rep_a.user_id, Visibility::Team)
    );
    assert_eq!(
        owner.replica.order(order).unwrap().unwrap().order.lines[0].quantity,
        Quantity::whole(2)
    );
    assert_eq!(
        attacker
            .replica
            .products("", 10)
            .unwrap()
            .iter()
            .map(|p| p.product.base_price_minor)
            .min(),
        Some(5000)
    );
    // Approving the takeover is refused too: a manager reassigns through the API.
    let id = admin_view["reviews"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == "protected_field")
        .unwrap()["id"]
        .as_i64()
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
        (409, Some("still_refused")),
        "{body}"
    );
    org.api
        .ok(
            "POST",
            &format!("/v1/reviews/{id}/dismiss"),
            &org.manager.access,
            None,
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_documents_one_cannot_read_are_parked_without_revealing_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("server")).unwrap();
    let org = Org::create(&server.base).await.unwrap();
    let owner = Device::open(dir.path(), "owner", &org.rep_a).unwrap();
    owner.sync().await.unwrap();
    let secret = owner
        .replica
        .create_account(
            &AccountInput::named("Private Co 私人", Currency::CNY),
            Visibility::Private,
            "",
            &[],
        )
        .unwrap();
    owner.sync().await.unwrap();
    // The outsider guesses the ID and sends a change built on the document's skeleton.
    let skeleton = fieldline_protocol::doc::skeleton(&DocId::Account(secret))
        .unwrap()
        .save();
    let change = craft(&skeleton, |tx| {
        let visits = tx.get(ROOT, "visits").unwrap().unwrap().1;
        tx.put_object(
            &visits,
            VisitId::new().to_string(),
            fieldline_protocol::automerge::ObjType::Map,
        )
        .unwrap();
    });
    let req = SyncRequest {
        protocol: PROTOCOL_VERSION,
        device_id: DeviceId::new(),
        cursor: Cursor(0),
        uploads: vec![DocUpload {
            doc: DocId::Account(secret),
            changes: vec![Bytes(change.raw_bytes().to_vec())],
            replaces: vec![],
        }],
        want_full: vec![],
    };
    let (status, resp, _) = raw_sync(&server.base, &org.outsider.access, &req)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let resp = resp.unwrap();
    assert!(
        matches!(resp.outcomes[0].result, Outcome::Rejected { ref code, .. } if code == "forbidden")
    );
    assert!(
        resp.docs.iter().all(|d| d.doc != DocId::Account(secret)),
        "nothing of the document comes back"
    );
    let everything = format!("{resp:?}");
    assert!(!everything.contains("Private Co"));
}

/// Approval is no back door: a manager cannot approve their own refused catalog edit, nor a
/// change to an account outside the teams they manage. An admin decides those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_cannot_approve_their_way_around_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("server")).unwrap();
    let org = Org::create(&server.base).await.unwrap();
    let manager = Device::open(dir.path(), "manager", &org.manager).unwrap();
    let outsider = Device::open(dir.path(), "outsider", &org.outsider).unwrap();
    manager.sync().await.unwrap();
    outsider.sync().await.unwrap();
    // 1. The manager forges a catalog edit, then tries to approve it.
    let catalog = manager
        .replica
        .save_document(DocId::Catalog)
        .unwrap()
        .unwrap();
    let product = org.products[0].to_string();
    let forged = craft(&catalog, |tx| {
        let products = tx.get(ROOT, "products").unwrap().unwrap().1;
        let p = tx.get(&products, product.as_str()).unwrap().unwrap().1;
        tx.put(&p, "base_price_minor", 1).unwrap();
    });
    let Outcome::Rejected { review_id, .. } = upload(
        &server,
        &org.manager,
        manager.replica.device_id(),
        DocId::Catalog,
        &forged,
    )
    .await
    else {
        panic!("the forged catalog edit must be refused");
    };
    let (status, _) = org
        .api
        .call(
            "POST",
            &format!("/v1/reviews/{review_id}/approve"),
            Some(&org.manager.access),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 403, "nobody approves their own refused write");
    let listed = org
        .api
        .ok("GET", "/v1/reviews?status=open", &org.manager.access, None)
        .await
        .unwrap();
    assert!(
        listed["reviews"].as_array().unwrap().is_empty(),
        "nor sees it as theirs to decide"
    );
    // 2. The outsider (another team) writes to the outsider's own account… fine; a visit
    //    forged onto it by the manager of *another* team is not the manager's to approve.
    let account = outsider
        .replica
        .create_account(
            &AccountInput::named("North Co", Currency::CNY),
            Visibility::Private,
            "",
            &[],
        )
        .unwrap();
    outsider.sync().await.unwrap();
    let skeleton = fieldline_protocol::doc::skeleton(&DocId::Account(account))
        .unwrap()
        .save();
    let visit = craft(&skeleton, |tx| {
        let visits = tx.get(ROOT, "visits").unwrap().unwrap().1;
        tx.put_object(
            &visits,
            VisitId::new().to_string(),
            fieldline_protocol::automerge::ObjType::Map,
        )
        .unwrap();
    });
    let Outcome::Rejected {
        review_id: other, ..
    } = upload(
        &server,
        &org.rep_a,
        DeviceId::new(),
        DocId::Account(account),
        &visit,
    )
    .await
    else {
        panic!("a rep of another team cannot write there");
    };
    let (status, _) = org
        .api
        .call(
            "POST",
            &format!("/v1/reviews/{other}/approve"),
            Some(&org.manager.access),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 403, "the account is not in the manager's teams");
    // The admin may decide it: approving a catalog edit is an admin's decision to make.
    org.api
        .ok(
            "POST",
            &format!("/v1/reviews/{review_id}/approve"),
            &org.admin.access,
            None,
        )
        .await
        .unwrap();
    manager.sync().await.unwrap();
    let prices: Vec<i64> = manager
        .replica
        .products("", 10)
        .unwrap()
        .iter()
        .map(|p| p.product.base_price_minor)
        .collect();
    assert!(
        prices.contains(&1),
        "the approved edit reached the devices: {prices:?}"
    );
}
