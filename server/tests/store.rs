//! The SQLite store on its own: the access SQL agrees with the protocol's rules, old
//! databases upgrade, and the sync feed pages, purges and tracks what devices hold.

use std::sync::Arc;

use fieldline_protocol::access::{Principal, can_read_doc};
use fieldline_protocol::ids::*;
use fieldline_protocol::model::*;
use fieldline_protocol::wire::DocData;
use fieldline_server::demo::{DemoSpec, generate};
use fieldline_server::engine::{Engine, acl_of};
use fieldline_server::metrics::Metrics;
use fieldline_server::store::sqlite::SqliteStore;
use fieldline_server::store::*;

const NOW: i64 = 1_790_000_000_000;

/// A store holding the demo organisation, and the engine over it.
fn demo_store(dir: &std::path::Path) -> (Arc<Engine>, fieldline_server::demo::DemoData) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.join("s.db")).unwrap());
    let engine = Arc::new(Engine::new(store.clone(), 16, Arc::new(Metrics::default())));
    let mut spec = DemoSpec::demo(NOW);
    spec.accounts = 40;
    let data = generate(&spec).unwrap();
    for t in &data.teams {
        store.insert_team(t.id, &t.name).unwrap();
    }
    for u in &data.users {
        store
            .insert_user(&NewUser {
                id: u.id,
                username: u.username.clone(),
                display_name: u.display_name.clone(),
                role: u.role,
                password_hash: None,
                created_at: NOW,
            })
            .unwrap();
        for t in &u.teams {
            store
                .set_membership(*t, u.id, Membership::Member, true)
                .unwrap();
        }
        for t in &u.manages {
            store
                .set_membership(*t, u.id, Membership::Manager, true)
                .unwrap();
        }
    }
    engine
        .import_doc(DocId::Catalog, &data.catalog, None, NOW)
        .unwrap();
    for (id, d) in &data.accounts {
        engine
            .import_doc(DocId::Account(*id), d, None, NOW)
            .unwrap();
    }
    for (id, d) in &data.user_docs {
        engine.import_doc(DocId::User(*id), d, None, NOW).unwrap();
    }
    (engine, data)
}

fn pull_all(
    store: &dyn Store,
    p: &Principal,
    device: DeviceId,
    cursor: Seq,
) -> (PullPage, Vec<DocId>) {
    let page = store
        .pull(&PullRequest {
            principal: p,
            device,
            cursor,
            want_full: &[],
            rebase: &[],
            max_docs: 10_000,
            max_bytes: usize::MAX,
            now: NOW,
        })
        .unwrap();
    let docs = page.docs.iter().map(|d| d.doc).collect();
    (page, docs)
}

#[test]
fn the_feed_sql_agrees_with_the_access_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, data) = demo_store(dir.path());
    let store = engine.store();
    // Make visibility varied: some team, some company accounts exist in the demo; add a
    // user document of every user (done by the import). Compare for every user.
    let mut all_docs: Vec<DocId> = vec![DocId::Catalog];
    all_docs.extend(data.accounts.iter().map(|(id, _)| DocId::Account(*id)));
    all_docs.extend(data.user_docs.iter().map(|(id, _)| DocId::User(*id)));
    let visibilities: std::collections::BTreeSet<_> = all_docs
        .iter()
        .filter_map(|d| store.doc_meta(*d).unwrap().and_then(|m| m.visibility))
        .collect();
    assert!(
        visibilities.len() >= 2,
        "the demo mixes visibilities: {visibilities:?}"
    );
    for u in &data.users {
        let p = store.principal(u.id, u.role).unwrap();
        let (_, got) = pull_all(store.as_ref(), &p, DeviceId::new(), 0);
        let mut got = got;
        got.sort();
        let mut expected: Vec<DocId> = all_docs
            .iter()
            .copied()
            .filter(|d| {
                let meta = store.doc_meta(*d).unwrap().unwrap();
                can_read_doc(&p, d, acl_of(&meta).as_ref())
            })
            .collect();
        expected.sort();
        assert_eq!(
            got, expected,
            "{} ({:?}) receives exactly what the rules allow",
            u.username, u.role
        );
        assert!(!got.is_empty());
    }
}

#[test]
fn an_empty_round_sends_nothing_and_pages_resume_where_they_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, data) = demo_store(dir.path());
    let store = engine.store();
    let rep = data.users.iter().find(|u| u.role == Role::Rep).unwrap();
    let p = store.principal(rep.id, Role::Rep).unwrap();
    let device = DeviceId::new();
    // Page through the initial sync 3 documents at a time.
    let mut cursor = 0;
    let mut received = Vec::new();
    let mut rounds = 0;
    loop {
        let page = store
            .pull(&PullRequest {
                principal: &p,
                device,
                cursor,
                want_full: &[],
                rebase: &[],
                max_docs: 3,
                max_bytes: usize::MAX,
                now: NOW,
            })
            .unwrap();
        rounds += 1;
        for d in &page.docs {
            assert!(
                matches!(d.data, DocData::Whole(_)),
                "a first sync sends documents whole"
            );
            received.push(d.doc);
        }
        cursor = page.cursor;
        if !page.more {
            break;
        }
        assert!(page.remaining > 0);
    }
    let (_, all) = pull_all(store.as_ref(), &p, DeviceId::new(), 0);
    received.sort();
    let mut all = all;
    all.sort();
    assert_eq!(
        received, all,
        "paging delivers every readable document exactly once"
    );
    assert!(rounds > 2);
    // Nothing new: nothing sent, cursor unchanged.
    let (page, docs) = pull_all(store.as_ref(), &p, device, cursor);
    assert!(docs.is_empty() && page.purged.is_empty() && !page.more);
    assert_eq!(page.cursor, cursor);
}

#[test]
fn reassignment_purges_from_the_old_owner_and_reaches_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, data) = demo_store(dir.path());
    let store = engine.store();
    let reps: Vec<_> = data.users.iter().filter(|u| u.role == Role::Rep).collect();
    let (old, new) = (
        reps[0],
        reps.iter().find(|u| u.teams != reps[0].teams).unwrap(),
    );
    let p_old = store.principal(old.id, Role::Rep).unwrap();
    let p_new = store.principal(new.id, Role::Rep).unwrap();
    let (dev_old, dev_new) = (DeviceId::new(), DeviceId::new());
    let (page_old, _) = pull_all(store.as_ref(), &p_old, dev_old, 0);
    let (page_new, _) = pull_all(store.as_ref(), &p_new, dev_new, 0);
    // A private account of the old owner.
    let account = data
        .accounts
        .iter()
        .map(|(id, _)| *id)
        .find(|id| {
            let m = store.doc_meta(DocId::Account(*id)).unwrap().unwrap();
            m.owner == Some(old.id) && m.visibility == Some(Visibility::Private)
        })
        .unwrap();
    let acl = AccountAcl {
        owner: new.id,
        team: new.teams[0],
        visibility: Visibility::Private,
    };
    engine
        .server_edit(
            data.users[0].id,
            &[fieldline_protocol::ops::set_account_acl(account, acl)],
            NOW,
        )
        .unwrap();
    // The devices confirm their first sync by coming back with its cursor.
    let (after_old, docs_old) = pull_all(store.as_ref(), &p_old, dev_old, page_old.cursor);
    assert_eq!(after_old.purged, vec![DocId::Account(account)]);
    assert!(docs_old.is_empty());
    let (after_new, docs_new) = pull_all(store.as_ref(), &p_new, dev_new, page_new.cursor);
    assert_eq!(docs_new, vec![DocId::Account(account)]);
    assert!(
        matches!(after_new.docs[0].data, DocData::Whole(_)),
        "newly readable documents arrive whole"
    );
    // A device that never held it is not told about it.
    let (stranger, _) = pull_all(store.as_ref(), &p_old, DeviceId::new(), page_old.cursor);
    assert!(stranger.purged.is_empty());
}

#[test]
fn a_version_1_database_upgrades_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let user = UserId::new();
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        fieldline_server::store::sqlite::migrate_for_tests(&mut conn, 1).unwrap();
        conn.execute(
            "INSERT INTO users (id, username, display_name, role, created_at) VALUES (?1, 'old.rep', 'Old Rep', 'rep', 1)",
            [user.to_string()],
        )
        .unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 1);
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.user(user).unwrap().unwrap().username, "old.rep");
    // Version 2's tables work.
    let doc = DocId::User(user);
    let engine = Engine::new(Arc::new(store), 4, Arc::new(Metrics::default()));
    engine.ensure_doc(doc, NOW).unwrap();
    let p = engine.store().principal(user, Role::Rep).unwrap();
    let (page, docs) = pull_all(engine.store().as_ref(), &p, DeviceId::new(), 0);
    assert!(docs.contains(&doc));
    assert!(page.reviews.is_empty());
}

/// A purge travels in an answer that may be lost: until the device comes back with a cursor
/// covering that answer, every round tells it again.
#[test]
fn a_lost_purge_is_sent_again_until_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, data) = demo_store(dir.path());
    let store = engine.store();
    let reps: Vec<_> = data.users.iter().filter(|u| u.role == Role::Rep).collect();
    let (old, new) = (
        reps[0],
        reps.iter().find(|u| u.teams != reps[0].teams).unwrap(),
    );
    let p_old = store.principal(old.id, Role::Rep).unwrap();
    let device = DeviceId::new();
    let (first, _) = pull_all(store.as_ref(), &p_old, device, 0);
    let account = data
        .accounts
        .iter()
        .map(|(id, _)| *id)
        .find(|id| {
            let m = store.doc_meta(DocId::Account(*id)).unwrap().unwrap();
            m.owner == Some(old.id) && m.visibility == Some(Visibility::Private)
        })
        .unwrap();
    let acl = AccountAcl {
        owner: new.id,
        team: new.teams[0],
        visibility: Visibility::Private,
    };
    engine
        .server_edit(
            data.users[0].id,
            &[fieldline_protocol::ops::set_account_acl(account, acl)],
            NOW,
        )
        .unwrap();
    let (purging, _) = pull_all(store.as_ref(), &p_old, device, first.cursor);
    assert_eq!(purging.purged, vec![DocId::Account(account)]);
    // The answer is lost: the device asks again with its old cursor, and is told again.
    let (again, _) = pull_all(store.as_ref(), &p_old, device, first.cursor);
    assert_eq!(
        again.purged,
        vec![DocId::Account(account)],
        "a lost purge is repeated"
    );
    // Once the device applied an answer carrying the purge, it is done.
    let (done, _) = pull_all(store.as_ref(), &p_old, device, again.cursor);
    assert!(done.purged.is_empty());
    let (later, _) = pull_all(store.as_ref(), &p_old, device, done.cursor);
    assert!(later.purged.is_empty());
    assert!(
        !store
            .device_holds(old.id, device, DocId::Account(account))
            .unwrap()
    );
    // If the account comes back to the old owner, the device receives it whole again.
    let back = AccountAcl {
        owner: old.id,
        team: old.teams[0],
        visibility: Visibility::Private,
    };
    engine
        .server_edit(
            data.users[0].id,
            &[fieldline_protocol::ops::set_account_acl(account, back)],
            NOW,
        )
        .unwrap();
    let (returned, docs) = pull_all(store.as_ref(), &p_old, device, later.cursor);
    assert_eq!(docs, vec![DocId::Account(account)]);
    assert!(matches!(returned.docs[0].data, DocData::Whole(_)));
    assert!(returned.purged.is_empty());
}
