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

/// A parked item for `user` on `doc` (the bytes are any change; the list does not decode them).
fn park_for(store: &dyn Store, user: UserId, doc: DocId, n: u8) -> i64 {
    store
        .park(&NewReview {
            doc_id: doc,
            hash: automerge::ChangeHash([n; 32]),
            bytes: vec![n],
            user,
            device: DeviceId::new(),
            code: "forbidden".into(),
            message: "refused".into(),
            received_at: NOW,
            supersedes: vec![],
        })
        .unwrap()
}

/// The review list is filtered in SQL exactly as `Engine::may_review` decides, before the
/// limit: a manager finds their teams' items however many other items are newer.
#[test]
fn the_review_list_sql_agrees_with_who_may_decide() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, data) = demo_store(dir.path());
    let store = engine.store();
    let mut n = 0u8;
    // Every user gets an item on an account of each team, on their own document and on the
    // catalog.
    let team_accounts: Vec<AccountId> =
        data.teams
            .iter()
            .filter_map(|t| {
                data.accounts.iter().map(|(id, _)| *id).find(|id| {
                    store.doc_meta(DocId::Account(*id)).unwrap().unwrap().team == Some(t.id)
                })
            })
            .collect();
    assert!(team_accounts.len() >= 2);
    for u in &data.users {
        for a in &team_accounts {
            n += 1;
            park_for(store.as_ref(), u.id, DocId::Account(*a), n);
        }
        n += 1;
        park_for(store.as_ref(), u.id, DocId::User(u.id), n);
        n += 1;
        park_for(store.as_ref(), u.id, DocId::Catalog, n);
    }
    let all = store
        .reviews(&ReviewFilter {
            limit: 10_000,
            ..ReviewFilter::default()
        })
        .unwrap();
    assert_eq!(all.len(), n as usize);
    let mut managers_checked = 0;
    for u in &data.users {
        let p = store.principal(u.id, u.role).unwrap();
        let expected: Vec<i64> = all
            .iter()
            .filter(|r| Engine::may_review(&p, r))
            .map(|r| r.id)
            .collect();
        let reviewer = (!p.is_admin()).then_some(p.user_id);
        let got: Vec<i64> = store
            .reviews(&ReviewFilter {
                limit: 10_000,
                reviewer,
                ..ReviewFilter::default()
            })
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(got, expected, "{} ({:?})", u.username, u.role);
        if u.role == Role::Manager {
            assert!(!expected.is_empty(), "a manager has items to decide");
            assert!(expected.len() < all.len());
            // The oldest of their items is found with a limit of exactly their count.
            let limited = store
                .reviews(&ReviewFilter {
                    limit: expected.len() as u32,
                    reviewer,
                    ..ReviewFilter::default()
                })
                .unwrap();
            assert_eq!(limited.len(), expected.len());
            managers_checked += 1;
        }
    }
    assert!(managers_checked > 0);
}

/// An approval is stored together with the change it applies: if the item was decided
/// meanwhile (dismissed, or approved by someone else), nothing of the change is stored.
#[test]
fn an_approval_commits_with_its_change_or_not_at_all() {
    use automerge::Automerge;
    let dir = tempfile::tempdir().unwrap();
    let (engine, data) = demo_store(dir.path());
    let store = engine.store();
    let admin = data.users.iter().find(|u| u.role == Role::Admin).unwrap();
    let (account, stored) = &data.accounts[0];
    let doc_id = DocId::Account(*account);
    let mut doc: Automerge = stored.fork();
    let before = doc.get_heads();
    let edit = fieldline_protocol::ops::edit_account_notes(*account, "", "approved words");
    let mut tx = doc.transaction();
    edit.apply(&mut tx, admin.id, NOW).unwrap();
    tx.commit();
    let change = doc.get_changes(&before)[0].clone();
    let commit_for = |review_id: i64| DocCommit {
        meta: fieldline_server::engine::meta_of(doc_id, &doc).unwrap(),
        changes: vec![NewChange {
            hash: change.hash(),
            bytes: change.raw_bytes().to_vec(),
        }],
        heads: doc.get_heads(),
        user: Some(admin.id),
        device: None,
        source: Source::Review,
        received_at: NOW,
        acl_changed: false,
        supersedes: vec![],
        resolves: Some(Resolution {
            review_id,
            status: fieldline_protocol::wire::ReviewStatus::Approved,
            by: admin.id,
            note: None,
            at: NOW,
        }),
    };
    let changes_stored = || store.change_log(doc_id, 10_000).unwrap().len();
    let start = changes_stored();
    // Dismissed first: the approval fails and stores nothing.
    let dismissed = park_for(store.as_ref(), admin.id, doc_id, 1);
    store
        .resolve_review(&Resolution {
            review_id: dismissed,
            status: fieldline_protocol::wire::ReviewStatus::Dismissed,
            by: admin.id,
            note: None,
            at: NOW,
        })
        .unwrap();
    assert!(matches!(
        store.commit(&commit_for(dismissed)),
        Err(StoreError::AlreadyResolved(id)) if id == dismissed
    ));
    assert_eq!(changes_stored(), start, "nothing stored");
    // Open: the approval stores the change and closes the item; a second one loses.
    let open = park_for(store.as_ref(), admin.id, doc_id, 2);
    assert_eq!(store.commit(&commit_for(open)).unwrap().stored, 1);
    assert_eq!(changes_stored(), start + 1);
    let (row, _) = store.review(open).unwrap().unwrap();
    assert_eq!(row.status, fieldline_protocol::wire::ReviewStatus::Approved);
    assert!(matches!(
        store.resolve_review(&Resolution {
            review_id: open,
            status: fieldline_protocol::wire::ReviewStatus::Dismissed,
            by: admin.id,
            note: None,
            at: NOW,
        }),
        Err(StoreError::AlreadyResolved(_))
    ));
    assert!(matches!(
        store.resolve_review(&Resolution {
            review_id: 999_999,
            status: fieldline_protocol::wire::ReviewStatus::Dismissed,
            by: admin.id,
            note: None,
            at: NOW,
        }),
        Err(StoreError::NotFound(_))
    ));
}

/// Parking a replay closes the items of the refused changes it re-makes, so one edit never
/// waits twice for a manager; storing a replay does the same.
#[test]
fn a_replay_closes_the_items_of_what_it_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, data) = demo_store(dir.path());
    let store = engine.store();
    let rep = data.users.iter().find(|u| u.role == Role::Rep).unwrap();
    let doc = DocId::User(rep.id);
    let first = park_for(store.as_ref(), rep.id, doc, 1);
    let second = store
        .park(&NewReview {
            doc_id: doc,
            hash: automerge::ChangeHash([2; 32]),
            bytes: vec![2],
            user: rep.id,
            device: DeviceId::new(),
            code: "forbidden".into(),
            message: "refused again".into(),
            received_at: NOW,
            supersedes: vec![automerge::ChangeHash([1; 32])],
        })
        .unwrap();
    let status = |id| store.review(id).unwrap().unwrap().0.status;
    use fieldline_protocol::wire::ReviewStatus::*;
    assert_eq!((status(first), status(second)), (Superseded, Open));
    // Another user cannot close this user's items by naming them.
    let other = data.users.iter().find(|u| u.id != rep.id).unwrap();
    assert_eq!(
        store
            .supersede(other.id, &[automerge::ChangeHash([2; 32])], NOW)
            .unwrap(),
        0
    );
    assert_eq!(status(second), Open);
    let states = store
        .review_states(
            rep.id,
            doc,
            &[
                automerge::ChangeHash([1; 32]),
                automerge::ChangeHash([2; 32]),
            ],
        )
        .unwrap();
    assert_eq!(
        states
            .iter()
            .map(|(_, id, s)| (*id, *s))
            .collect::<Vec<_>>(),
        vec![(first, Superseded), (second, Open)]
    );
}

/// Documents asked for whole come a page at a time too: a device that lost many documents'
/// history gets them over several rounds, each within the page budget, and its cursor does
/// not skip anything meanwhile.
#[test]
fn documents_wanted_whole_are_paged() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, data) = demo_store(dir.path());
    let store = engine.store();
    let rep = data.users.iter().find(|u| u.role == Role::Rep).unwrap();
    let p = store.principal(rep.id, Role::Rep).unwrap();
    let device = DeviceId::new();
    let (first, mut wanted) = pull_all(store.as_ref(), &p, device, 0);
    assert!(wanted.len() > 4, "the rep reads several documents");
    let mut got = Vec::new();
    let mut rounds = 0;
    while !wanted.is_empty() {
        let page = store
            .pull(&PullRequest {
                principal: &p,
                device,
                cursor: first.cursor,
                want_full: &wanted,
                rebase: &[],
                max_docs: 2,
                max_bytes: usize::MAX,
                now: NOW,
            })
            .unwrap();
        rounds += 1;
        assert!(page.docs.len() <= 2, "within the page budget");
        assert_eq!(page.cursor, first.cursor, "nothing else changed");
        assert_eq!(page.more, page.docs.len() < wanted.len());
        assert_eq!(page.remaining as usize, wanted.len() - page.docs.len());
        for d in &page.docs {
            assert!(matches!(d.data, DocData::Whole(_)));
            got.push(d.doc);
        }
        wanted.retain(|w| !page.docs.iter().any(|d| d.doc == *w));
        assert!(rounds < 100, "progress every round");
    }
    let (_, mut all) = pull_all(store.as_ref(), &p, DeviceId::new(), 0);
    got.sort();
    all.sort();
    assert_eq!(got, all);
}
