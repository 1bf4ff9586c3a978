//! The sans-IO sync round against hand-written server answers: acknowledgements, refusals
//! with rebase and replay, purges, review decisions. (The real server is exercised by the
//! end-to-end tests in `tests/`.)

mod common;

use common::*;
use fieldline_client_core::Replica;
use fieldline_protocol::automerge::{ActorId, Automerge, Change, ReadDoc};
use fieldline_protocol::ids::*;
use fieldline_protocol::model::*;
use fieldline_protocol::money::{Currency, Quantity};
use fieldline_protocol::ops::{self, AccountInput, VisitReport};
use fieldline_protocol::validate::Authority;
use fieldline_protocol::wire::*;

fn respond(
    r: &Replica,
    who: &fieldline_protocol::wire::Identity,
    cursor: u64,
    f: impl FnOnce(&SyncRequest, &mut SyncResponse),
) -> fieldline_client_core::sync::SyncReport {
    let req = r.prepare_sync(usize::MAX).unwrap();
    let mut resp = SyncResponse {
        cursor: Cursor(cursor),
        more: false,
        remaining: 0,
        identity: who.clone(),
        docs: vec![],
        purged: vec![],
        outcomes: vec![],
        reviews: vec![],
    };
    f(&req, &mut resp);
    r.apply_sync(&req, resp).unwrap()
}

fn accept_all(req: &SyncRequest, resp: &mut SyncResponse) {
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
}

fn reject_all(review: i64, code: &str) -> impl Fn(&SyncRequest, &mut SyncResponse) + '_ {
    move |req, resp| {
        for u in &req.uploads {
            for c in &u.changes {
                let hash = Change::from_bytes(c.0.clone()).unwrap().hash();
                resp.outcomes.push(ChangeOutcome {
                    doc: u.doc,
                    hash: hash.into(),
                    result: Outcome::Rejected {
                        review_id: review,
                        code: code.into(),
                        message: "refused".into(),
                    },
                });
            }
        }
    }
}

/// A rep's replica with one synced account, and the server's copy of that account.
fn synced_account(dir: &std::path::Path, org: &Org) -> (Replica, AccountId, Automerge) {
    let (r, _) = open(&dir.join("rep.db"), &org.rep);
    let a = r
        .create_account(
            &AccountInput::named("Secret Customer 秘密客户", Currency::CNY),
            Visibility::Private,
            "",
            &[],
        )
        .unwrap();
    let report = respond(&r, &org.rep, 5, accept_all);
    assert_eq!((report.uploaded, report.accepted), (1, 1));
    assert_eq!(r.pending_changes().unwrap(), 0);
    assert_eq!(r.cursor().unwrap(), Cursor(5));
    let server = Automerge::load(&r.save_document(DocId::Account(a)).unwrap().unwrap())
        .unwrap()
        .with_actor(ActorId::random());
    (r, a, server)
}

#[test]
fn nothing_to_say_is_a_tiny_round() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, _, _) = synced_account(dir.path(), &org);
    let req = r.prepare_sync(usize::MAX).unwrap();
    assert!(req.uploads.is_empty());
    assert!(encode(&req).len() < 64);
    assert_eq!(
        req,
        r.prepare_sync(usize::MAX).unwrap(),
        "preparing twice gives the same request"
    );
}

#[test]
fn visit_kept_when_the_account_was_shared_with_the_team_and_reassigned_offline() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, a, mut server) = synced_account(dir.path(), &org);
    // While the rep is offline, the manager gives the account to a colleague, shared with the team.
    let acl = AccountAcl {
        owner: org.rep2.principal.user_id,
        team: org.team,
        visibility: Visibility::Team,
    };
    apply(
        &mut server,
        &ops::set_account_acl(a, acl),
        &org.manager.principal,
        Authority::Server,
    );
    // Offline, the rep logs a visit on it (their replica still says they own it).
    let visit = r
        .log_visit(
            a,
            None,
            Some("offline visit"),
            &VisitReport {
                outcome: Some("ordered".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let whole = server.save();
    let original = only_upload(&r);
    let report = respond(&r, &org.rep, 9, |req, resp| {
        reject_all(7, "forbidden")(req, resp);
        resp.docs.push(DocPayload {
            doc: DocId::Account(a),
            data: DocData::Whole(vec![Bytes(whole.clone())]),
        });
    });
    assert_eq!((report.rejected, report.replayed, report.parked), (1, 1, 0));
    // The replica is back in line with the server (new owner) and still has the visit.
    let acc = r.account(a).unwrap().unwrap();
    assert_eq!(acc.acl.owner, org.rep2.principal.user_id);
    assert_eq!(
        r.visit(visit).unwrap().unwrap().purpose.as_deref(),
        Some("offline visit")
    );
    assert_eq!(
        r.pending_changes().unwrap(),
        1,
        "the replayed visit waits for upload"
    );
    assert!(r.parked_writes().unwrap().is_empty());
    // The replay names the refused original it re-makes (the server closes that review
    // item when it stores the replay), and builds on the server's state only.
    let req = r.prepare_sync(usize::MAX).unwrap();
    let replay = Change::from_bytes(req.uploads[0].changes[0].0.clone()).unwrap();
    assert_eq!(
        req.uploads[0].replaces,
        vec![Replacement {
            change: replay.hash().into(),
            originals: vec![original.hash().into()],
        }]
    );
    assert!(
        replay
            .deps()
            .iter()
            .all(|d| server.get_change_by_hash(d).is_some()),
        "the replay builds on the server's state only"
    );
    server.apply_changes([replay]).unwrap();
    respond(&r, &org.rep, 10, accept_all);
    assert!(r.prepare_sync(usize::MAX).unwrap().uploads.is_empty());
}

/// The one change waiting in the outbox.
fn only_upload(r: &Replica) -> Change {
    let req = r.prepare_sync(usize::MAX).unwrap();
    assert_eq!(req.uploads.len(), 1);
    assert_eq!(req.uploads[0].changes.len(), 1);
    Change::from_bytes(req.uploads[0].changes[0].0.clone()).unwrap()
}

/// Refuses everything uploaded and sends `server` whole, as the real server does.
fn refuse_and_rebase(
    r: &Replica,
    org: &Org,
    cursor: u64,
    review: i64,
    a: AccountId,
    server: &Automerge,
) -> fieldline_client_core::sync::SyncReport {
    let whole = server.save();
    respond(r, &org.rep, cursor, |req, resp| {
        reject_all(review, "forbidden")(req, resp);
        resp.docs.push(DocPayload {
            doc: DocId::Account(a),
            data: DocData::Whole(vec![Bytes(whole.clone())]),
        });
    })
}

/// A replay the server refuses again is replayed again, and then names both refused
/// changes: the server closes both items when it stores it, so no manager is left with an
/// item for an edit that already landed.
#[test]
fn a_replay_refused_again_names_the_whole_chain() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, a, server) = synced_account(dir.path(), &org);
    r.log_visit(a, None, Some("twice refused"), &VisitReport::default())
        .unwrap();
    let first = only_upload(&r);
    let report = refuse_and_rebase(&r, &org, 8, 7, a, &server);
    assert_eq!((report.rejected, report.replayed), (1, 1));
    let second = only_upload(&r);
    let report = refuse_and_rebase(&r, &org, 9, 8, a, &server);
    assert_eq!((report.rejected, report.replayed), (1, 1));
    let req = r.prepare_sync(usize::MAX).unwrap();
    let third = Change::from_bytes(req.uploads[0].changes[0].0.clone()).unwrap();
    assert_eq!(
        req.uploads[0].replaces,
        vec![Replacement {
            change: third.hash().into(),
            originals: vec![first.hash().into(), second.hash().into()],
        }],
        "oldest first"
    );
    assert!(r.parked_writes().unwrap().is_empty());
    assert_eq!(r.visits(a).unwrap().len(), 1);
}

/// A manager approves a refused notes edit while the device's replay of it is still in the
/// outbox. The server answers the replay as stale; the device rebases on the server's copy
/// (which has the approved original) and the replay, finding its text already there,
/// leaves the outbox. Applying both would have written the rep's sentence twice.
#[test]
fn a_replay_whose_original_was_approved_is_not_made_twice() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, a, mut server) = synced_account(dir.path(), &org);
    let text = "Rep: asked for samples of the new oolong.";
    r.edit_account_notes(a, text).unwrap();
    let original = only_upload(&r);
    let report = refuse_and_rebase(&r, &org, 8, 7, a, &server);
    assert_eq!((report.rejected, report.replayed), (1, 1));
    let replay = only_upload(&r);
    // The manager approves the original, then adds a line of their own.
    server.apply_changes([original.clone()]).unwrap();
    let with_manager = format!("{text}\nManager: send them.");
    apply(
        &mut server,
        &ops::edit_account_notes(a, text, &with_manager),
        &org.manager.principal,
        Authority::Device,
    );
    let notes_of = |d: &Automerge| {
        fieldline_protocol::doc::Reader::new(d)
            .account()
            .unwrap()
            .unwrap()
            .notes
    };
    assert_eq!(notes_of(&server), with_manager);
    let mut both = server.fork();
    both.apply_changes([replay.clone()]).unwrap();
    assert_eq!(
        notes_of(&both).matches("samples").count(),
        2,
        "the hazard this guards against: original and replay together repeat the text"
    );
    let whole = server.save();
    let report = respond(&r, &org.rep, 9, |req, resp| {
        assert_eq!(
            req.uploads[0].replaces[0].originals,
            vec![original.hash().into()]
        );
        resp.outcomes.push(ChangeOutcome {
            doc: DocId::Account(a),
            hash: replay.hash().into(),
            result: Outcome::Stale {
                code: "already_applied".into(),
                message: "a manager already applied the edit it replays".into(),
            },
        });
        resp.docs.push(DocPayload {
            doc: DocId::Account(a),
            data: DocData::Whole(vec![Bytes(whole.clone())]),
        });
        resp.reviews.push(ReviewNotice {
            review_id: 7,
            doc: DocId::Account(a),
            hash: original.hash().into(),
            status: ReviewStatus::Approved,
        });
    });
    assert_eq!((report.replayed, report.parked), (0, 0));
    assert_eq!(r.pending_changes().unwrap(), 0, "nothing left to send");
    assert!(r.parked_writes().unwrap().is_empty());
    assert_eq!(r.account(a).unwrap().unwrap().notes, with_manager, "once");
    assert!(r.prepare_sync(usize::MAX).unwrap().uploads.is_empty());
}

/// Stale changes on a document the user may no longer read: a replay of an approved edit is
/// done (the edit is in the server's copy); a change that merely built on it goes back to
/// the outbox (the server parks it for review) instead of being parked on the device with
/// no review item anyone could act on.
#[test]
fn stale_changes_on_a_purged_document() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, a, _server) = synced_account(dir.path(), &org);
    r.log_visit(a, None, Some("approved meanwhile"), &VisitReport::default())
        .unwrap();
    r.log_visit(a, None, Some("built on it"), &VisitReport::default())
        .unwrap();
    let req = r.prepare_sync(usize::MAX).unwrap();
    let hashes: Vec<Hash> = req.uploads[0]
        .changes
        .iter()
        .map(|c| Change::from_bytes(c.0.clone()).unwrap().hash().into())
        .collect();
    respond(&r, &org.rep, 9, |_, resp| {
        for (hash, code) in hashes
            .iter()
            .zip([STALE_ALREADY_APPLIED, STALE_BUILDS_ON_STALE])
        {
            resp.outcomes.push(ChangeOutcome {
                doc: DocId::Account(a),
                hash: *hash,
                result: Outcome::Stale {
                    code: code.into(),
                    message: "stale".into(),
                },
            });
        }
        resp.purged.push(DocId::Account(a));
    });
    assert!(r.account(a).unwrap().is_none());
    assert!(r.parked_writes().unwrap().is_empty());
    let again: Hash = only_upload(&r).hash().into();
    assert_eq!(again, hashes[1], "only the dependent change is sent again");
}

#[test]
fn a_private_account_reassigned_offline_is_purged_and_the_visit_parked() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, a, _server) = synced_account(dir.path(), &org);
    r.add_contact(
        a,
        &ops::ContactInput {
            name: "联系人甲".into(),
            ..Default::default()
        },
    )
    .unwrap();
    respond(&r, &org.rep, 6, accept_all);
    r.log_visit(a, None, Some("offline visit"), &VisitReport::default())
        .unwrap();
    let report = respond(&r, &org.rep, 9, |req, resp| {
        reject_all(8, "forbidden")(req, resp);
        resp.purged.push(DocId::Account(a));
    });
    assert_eq!((report.rejected, report.purged), (1, 1));
    assert!(report.changes.purged.contains(&a));
    assert!(r.account(a).unwrap().is_none());
    assert!(r.search_accounts("秘密", 10).unwrap().is_empty());
    assert!(
        r.document_ids()
            .unwrap()
            .iter()
            .all(|d| *d != DocId::Account(a))
    );
    let parked = r.parked_writes().unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(
        (parked[0].review_id, parked[0].action.as_deref()),
        (Some(8), Some("log_visit"))
    );
    // Nothing of the account is left in the file: not its name, not its contact.
    drop(r);
    for f in ["rep.db", "rep.db-wal"] {
        let bytes = std::fs::read(dir.path().join(f)).unwrap_or_default();
        for needle in ["Secret Customer", "秘密客户", "联系人甲"] {
            assert!(
                !contains(&bytes, needle.as_bytes()),
                "{f} still holds {needle}"
            );
        }
    }
    // A manager approves the parked visit: the device drops its parked copy.
    let (r, _) = open(&dir.path().join("rep.db"), &org.rep);
    respond(&r, &org.rep, 12, |_, resp| {
        resp.reviews.push(ReviewNotice {
            review_id: 8,
            doc: DocId::Account(a),
            hash: Hash([0; 32]),
            status: ReviewStatus::Approved,
        });
    });
    assert!(r.parked_writes().unwrap().is_empty());
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn an_edit_to_an_order_submitted_elsewhere_is_parked() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, a, mut server) = synced_account(dir.path(), &org);
    let (cat, products) = catalog(&org.admin.principal, 2);
    r.import_documents(&[(DocId::Catalog, cat.save())], &mut |_, _| {})
        .unwrap();
    let order = r.create_order(a, None, None).unwrap();
    let line = r
        .add_order_line(a, order, products[0], Quantity::whole(2), 0)
        .unwrap();
    let req = r.prepare_sync(usize::MAX).unwrap();
    for c in &req.uploads[0].changes {
        server
            .apply_changes([Change::from_bytes(c.0.clone()).unwrap()])
            .unwrap();
    }
    respond(&r, &org.rep, 7, accept_all);
    // The rep's tablet submits the order; the phone, offline, changes the quantity.
    apply(
        &mut server,
        &ops::submit_order(a, order, T0),
        &org.rep.principal,
        Authority::Device,
    );
    r.update_order_line(a, order, line, Quantity::whole(5), 0)
        .unwrap();
    let whole = server.save();
    let report = respond(&r, &org.rep, 9, |req, resp| {
        reject_all(11, "locked")(req, resp);
        resp.docs.push(DocPayload {
            doc: DocId::Account(a),
            data: DocData::Whole(vec![Bytes(whole.clone())]),
        });
    });
    assert_eq!((report.replayed, report.parked), (0, 1));
    let detail = r.order(order).unwrap().unwrap();
    assert_eq!(detail.order.status, OrderStatus::Submitted);
    assert_eq!(
        detail.order.lines[0].quantity,
        Quantity::whole(2),
        "the server's order stands"
    );
    let parked = r.parked_writes().unwrap();
    assert_eq!(
        (parked[0].review_id, parked[0].code.as_deref()),
        (Some(11), Some("locked"))
    );
    // The replica keeps working on the rebased document.
    r.log_visit(a, None, None, &VisitReport::default()).unwrap();
}

#[test]
fn changes_from_the_server_are_applied_and_projected() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, a, mut server) = synced_account(dir.path(), &org);
    let before = server.get_heads();
    apply(
        &mut server,
        &ops::plan_visit(a, VisitId::new(), T0 + 1000, Some("manager planned")),
        &org.manager.principal,
        Authority::Device,
    );
    let changes: Vec<Bytes> = server
        .get_changes(&before)
        .iter()
        .map(|c| Bytes(c.raw_bytes().to_vec()))
        .collect();
    let report = respond(&r, &org.rep, 20, |_, resp| {
        resp.docs.push(DocPayload {
            doc: DocId::Account(a),
            data: DocData::Changes(changes.clone()),
        });
    });
    assert!(report.changes.accounts.contains(&a));
    assert_eq!(
        r.upcoming_visits(T0, 10).unwrap()[0]
            .visit
            .purpose
            .as_deref(),
        Some("manager planned")
    );
    // Receiving the same changes twice is harmless.
    respond(&r, &org.rep, 21, |_, resp| {
        resp.docs.push(DocPayload {
            doc: DocId::Account(a),
            data: DocData::Changes(changes.clone()),
        });
    });
    assert_eq!(r.visits(a).unwrap().len(), 1);
    // Changes for a document this replica never had: it asks for it whole.
    let (other, foreign, tail) = foreign_account(&org, "New");
    respond(&r, &org.rep, 22, |_, resp| {
        resp.docs.push(DocPayload {
            doc: DocId::Account(other),
            data: DocData::Changes(tail.clone()),
        })
    });
    assert_eq!(
        r.prepare_sync(usize::MAX).unwrap().want_full,
        vec![DocId::Account(other)]
    );
    respond(&r, &org.rep, 23, |_, resp| {
        resp.docs.push(DocPayload {
            doc: DocId::Account(other),
            data: DocData::Whole(vec![Bytes(foreign.save())]),
        })
    });
    assert!(r.prepare_sync(usize::MAX).unwrap().want_full.is_empty());
    assert_eq!(r.account(other).unwrap().unwrap().name, "New");
    assert_eq!(r.visits(other).unwrap().len(), 1);
}

#[test]
fn a_response_for_another_user_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, _, _) = synced_account(dir.path(), &org);
    let req = r.prepare_sync(usize::MAX).unwrap();
    let resp = SyncResponse {
        cursor: Cursor(99),
        more: false,
        remaining: 0,
        identity: org.rep2.clone(),
        docs: vec![],
        purged: vec![],
        outcomes: vec![],
        reviews: vec![],
    };
    assert!(r.apply_sync(&req, resp).is_err());
    assert_eq!(r.cursor().unwrap(), Cursor(5));
}

/// An answer that fails halfway (here: a damaged whole document after good changes) writes
/// nothing; retrying the round then stores and shows everything.
#[test]
fn a_failed_round_leaves_nothing_half_applied() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, a, mut server) = synced_account(dir.path(), &org);
    let before = server.get_heads();
    let mut input = AccountInput::named("Renamed by the manager", Currency::CNY);
    input.status = AccountStatus::Lead;
    let current = fieldline_protocol::doc::Reader::new(&server)
        .account()
        .unwrap()
        .unwrap();
    apply(
        &mut server,
        &ops::update_account(&current, &input).unwrap(),
        &org.manager.principal,
        Authority::Device,
    );
    let good: Vec<Bytes> = server
        .get_changes(&before)
        .iter()
        .map(|c| Bytes(c.raw_bytes().to_vec()))
        .collect();
    let bad = DocPayload {
        doc: DocId::Account(AccountId::new()),
        data: DocData::Whole(vec![Bytes(vec![1, 2, 3])]),
    };
    let req = r.prepare_sync(usize::MAX).unwrap();
    let resp = SyncResponse {
        cursor: Cursor(30),
        more: false,
        remaining: 0,
        identity: org.rep.clone(),
        docs: vec![
            DocPayload {
                doc: DocId::Account(a),
                data: DocData::Changes(good.clone()),
            },
            bad,
        ],
        purged: vec![],
        outcomes: vec![],
        reviews: vec![],
    };
    assert!(r.apply_sync(&req, resp).is_err());
    assert_eq!(r.cursor().unwrap(), Cursor(5), "nothing was applied");
    // The retry (without the damaged part) applies the good changes for real.
    respond(&r, &org.rep, 30, |_, resp| {
        resp.docs.push(DocPayload {
            doc: DocId::Account(a),
            data: DocData::Changes(good.clone()),
        })
    });
    assert_eq!(
        r.account(a).unwrap().unwrap().name,
        "Renamed by the manager"
    );
    let path = dir.path().join("rep.db");
    drop(r);
    let (reopened, _) = open(&path, &org.rep);
    assert_eq!(
        reopened.account(a).unwrap().unwrap().name,
        "Renamed by the manager",
        "stored, not just cached"
    );
}

/// A notes edit replayed after a refusal keeps what others wrote meanwhile.
#[test]
fn replayed_notes_keep_concurrent_text() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, a, mut server) = synced_account(dir.path(), &org);
    // While the rep is offline: the manager adds to the notes and shares the account with
    // the team (the rep's pending edits will be refused as owner, then replayed).
    apply(
        &mut server,
        &ops::edit_account_notes(a, "", "Manager: key customer."),
        &org.manager.principal,
        Authority::Device,
    );
    let acl = AccountAcl {
        owner: org.manager.principal.user_id,
        team: org.team,
        visibility: Visibility::Team,
    };
    apply(
        &mut server,
        &ops::set_account_acl(a, acl),
        &org.manager.principal,
        Authority::Server,
    );
    r.edit_account_notes(a, "Rep: asked for samples.").unwrap();
    r.log_visit(a, None, Some("offline"), &VisitReport::default())
        .unwrap();
    let whole = server.save();
    respond(&r, &org.rep, 9, |req, resp| {
        reject_all(7, "forbidden")(req, resp);
        resp.docs.push(DocPayload {
            doc: DocId::Account(a),
            data: DocData::Whole(vec![Bytes(whole.clone())]),
        });
    });
    let notes = r.account(a).unwrap().unwrap().notes;
    assert!(
        notes.contains("Manager: key customer."),
        "the manager's text stays: {notes}"
    );
    // The rep may no longer edit the account (not the owner), so the notes edit is parked,
    // not replayed over the manager's words; the visit (team members may log visits) is kept.
    let parked = r.parked_writes().unwrap();
    assert_eq!(
        parked
            .iter()
            .filter(|p| p.action.as_deref() == Some("edit_account_notes"))
            .count(),
        1
    );
    assert_eq!(r.pending_changes().unwrap(), 1, "the visit was replayed");
}

/// Documents asked for whole stay asked for until they arrive: the server sends them a page
/// at a time.
#[test]
fn wanted_documents_stay_wanted_until_they_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, _, _) = synced_account(dir.path(), &org);
    // Changes of two documents this replica never had: it asks for both whole.
    let mut foreign = Vec::new();
    for name in ["First", "Second"] {
        let (id, d, tail) = foreign_account(&org, name);
        respond(&r, &org.rep, 20, |_, resp| {
            resp.docs.push(DocPayload {
                doc: DocId::Account(id),
                data: DocData::Changes(tail.clone()),
            })
        });
        foreign.push((id, d));
    }
    let mut wanted = r.prepare_sync(usize::MAX).unwrap().want_full;
    wanted.sort();
    let mut expected: Vec<DocId> = foreign.iter().map(|(id, _)| DocId::Account(*id)).collect();
    expected.sort();
    assert_eq!(wanted, expected);
    // The server sends one of them this round (its page is full).
    let (first, first_doc) = &foreign[0];
    respond(&r, &org.rep, 21, |req, resp| {
        assert_eq!(req.want_full.len(), 2);
        resp.more = true;
        resp.docs.push(DocPayload {
            doc: DocId::Account(*first),
            data: DocData::Whole(vec![Bytes(first_doc.save())]),
        })
    });
    assert_eq!(
        r.prepare_sync(usize::MAX).unwrap().want_full,
        vec![DocId::Account(foreign[1].0)],
        "the other is still wanted"
    );
    assert_eq!(r.account(*first).unwrap().unwrap().name, "First");
}

/// An account document this replica never had, owned by the rep: the document, and its last
/// change alone (a visit planned after the account was created), as a server would send it
/// to a device that holds the document.
fn foreign_account(org: &Org, name: &str) -> (AccountId, Automerge, Vec<Bytes>) {
    let id = AccountId::new();
    let mut d = fieldline_protocol::doc::skeleton(&DocId::Account(id))
        .unwrap()
        .with_actor(ActorId::random());
    let acl = AccountAcl {
        owner: org.rep.principal.user_id,
        team: org.team,
        visibility: Visibility::Private,
    };
    apply(
        &mut d,
        &ops::create_account(id, acl, &AccountInput::named(name, Currency::CNY), "", &[]),
        &org.manager.principal,
        Authority::Server,
    );
    let heads = d.get_heads();
    apply(
        &mut d,
        &ops::plan_visit(id, VisitId::new(), T0, None),
        &org.rep.principal,
        Authority::Device,
    );
    let tail = d
        .get_changes(&heads)
        .iter()
        .map(|c| Bytes(c.raw_bytes().to_vec()))
        .collect();
    (id, d, tail)
}
