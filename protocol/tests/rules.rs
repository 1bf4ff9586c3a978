//! The rule engine judged on real documents: every row of the access matrix and every
//! lifecycle rule, including hand-crafted changes that bypass the typed operations.

use fieldline_protocol::access::Principal;
use fieldline_protocol::automerge::{
    self, ActorId, Automerge, ROOT, ReadDoc,
    transaction::{CommitOptions, Transactable},
};
use fieldline_protocol::doc::{self, Catalog, Reader};
use fieldline_protocol::ids::*;
use fieldline_protocol::model::*;
use fieldline_protocol::money::{Currency, Quantity};
use fieldline_protocol::ops::{self, AccountInput, Edit, VisitReport};
use fieldline_protocol::validate::{Authority, WriteContext, WriteSummary, validate_change};
use fieldline_protocol::{Error, Result};

const NOW: i64 = 1_790_000_000_000;

struct World {
    team: TeamId,
    rep: Principal,
    teammate: Principal,
    stranger: Principal,
    manager: Principal,
    admin: Principal,
    catalog: Catalog,
    product: ProductId,
}

fn principal(role: Role, teams: &[TeamId], managed: &[TeamId]) -> Principal {
    Principal {
        user_id: UserId::new(),
        role,
        teams: teams.to_vec(),
        managed_teams: managed.to_vec(),
        managed_users: vec![],
    }
}

impl World {
    fn new() -> Self {
        let team = TeamId::new();
        let rep = principal(Role::Rep, &[team], &[]);
        let teammate = principal(Role::Rep, &[team], &[]);
        let stranger = principal(Role::Rep, &[TeamId::new()], &[]);
        let mut manager = principal(Role::Manager, &[team], &[team]);
        manager.managed_users = vec![rep.user_id, teammate.user_id];
        let admin = principal(Role::Admin, &[], &[]);
        // A catalog built through the same operations the admin API uses.
        let mut cat = doc::skeleton(&DocId::Catalog).unwrap();
        cat.set_actor(ActorId::random());
        let product = ProductId::new();
        apply(
            &mut cat,
            &ops::set_base_currency(Currency::CNY),
            &admin,
            Authority::Device,
            None,
        )
        .unwrap();
        apply(
            &mut cat,
            &ops::set_tax_class("standard", "VAT 13%", 1300),
            &admin,
            Authority::Device,
            None,
        )
        .unwrap();
        let snapshot = Reader::new(&cat).catalog().unwrap();
        let input = ops::ProductInput {
            sku: "TEA-001".into(),
            name: "龙井茶 Longjing tea 500g".into(),
            category: Some("tea".into()),
            unit: "box".into(),
            base_price_minor: 12_800,
            tax_class: "standard".into(),
            active: true,
        };
        apply(
            &mut cat,
            &ops::upsert_product(product, &input, &snapshot).unwrap(),
            &admin,
            Authority::Device,
            None,
        )
        .unwrap();
        let catalog = Reader::new(&cat).catalog().unwrap();
        World {
            team,
            rep,
            teammate,
            stranger,
            manager,
            admin,
            catalog,
            product,
        }
    }

    fn account(&self, visibility: Visibility) -> (AccountId, Automerge) {
        let id = AccountId::new();
        let mut doc = new_doc(DocId::Account(id));
        let acl = AccountAcl {
            owner: self.rep.user_id,
            team: self.team,
            visibility,
        };
        let edit = ops::create_account(
            id,
            acl,
            &AccountInput::named("上海华联超市", Currency::CNY),
            "first note",
            &["vip".into()],
        );
        apply(
            &mut doc,
            &edit,
            &self.rep,
            Authority::Device,
            Some(&self.catalog),
        )
        .unwrap();
        (id, doc)
    }
}

fn new_doc(id: DocId) -> Automerge {
    let mut d = doc::skeleton(&id).unwrap();
    d.set_actor(ActorId::random());
    d
}

/// Applies an edit as `p` and validates the resulting change, like the phone does.
fn apply(
    doc: &mut Automerge,
    edit: &Edit,
    p: &Principal,
    authority: Authority,
    catalog: Option<&Catalog>,
) -> Result<WriteSummary> {
    let before = doc.get_heads();
    let mut tx = doc.transaction();
    if let Err(e) = edit.apply(&mut tx, p.user_id, NOW) {
        tx.rollback();
        return Err(e);
    }
    tx.commit_with(CommitOptions::default().with_time(NOW));
    let ctx = WriteContext {
        principal: p,
        doc_id: edit.doc,
        authority,
        catalog,
    };
    validate_change(&ctx, doc, &before)
}

/// Applies an edit on a fork (so the test can keep using the original).
fn try_on_fork(doc: &Automerge, edit: &Edit, p: &Principal, w: &World) -> Result<WriteSummary> {
    let mut fork = doc.fork().with_actor(ActorId::random());
    apply(&mut fork, edit, p, Authority::Device, Some(&w.catalog))
}

/// Writes raw automerge operations (what a hostile client could send) and validates.
fn raw(
    doc: &Automerge,
    doc_id: DocId,
    p: &Principal,
    f: impl FnOnce(&mut automerge::transaction::Transaction<'_>),
) -> Result<WriteSummary> {
    let mut fork = doc.fork().with_actor(ActorId::random());
    let before = fork.get_heads();
    let mut tx = fork.transaction();
    f(&mut tx);
    tx.commit();
    validate_change(
        &WriteContext {
            principal: p,
            doc_id,
            authority: Authority::Device,
            catalog: None,
        },
        &fork,
        &before,
    )
}

fn code(r: Result<WriteSummary>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

fn account_map(doc: &Automerge) -> automerge::ObjId {
    doc.get(ROOT, "account").unwrap().unwrap().1
}

#[test]
fn skeletons_are_identical_everywhere() {
    let id = DocId::Account(AccountId::new());
    let (mut a, mut b) = (new_doc(id), new_doc(id));
    assert_eq!(a.get_heads(), b.get_heads());
    a.merge(&mut b).unwrap();
    assert_eq!(
        a.get_changes(&[]).len(),
        1,
        "two peers creating the same document share one skeleton change"
    );
}

#[test]
fn a_rep_creates_and_edits_their_account() {
    let w = World::new();
    let (id, doc) = w.account(Visibility::Private);
    let account = Reader::new(&doc).account().unwrap().unwrap();
    assert_eq!(account.name, "上海华联超市");
    assert_eq!(account.tags, vec!["vip".to_string()]);
    assert_eq!(account.notes, "first note");
    assert_eq!(account.acl.owner, w.rep.user_id);
    let mut input = AccountInput::named("上海华联超市 (浦东店)", Currency::CNY);
    input.phone = Some("+86 21 5555 0100".into());
    let edit = ops::update_account(&account, &input).unwrap();
    let summary = try_on_fork(&doc, &edit, &w.rep, &w).unwrap();
    assert!(
        summary
            .touched
            .contains(&fieldline_protocol::schema::RecordPath::Account)
    );
    assert_eq!(
        code(try_on_fork(&doc, &ops::convert_lead(id), &w.rep, &w)),
        "ok"
    );
}

#[test]
fn invalid_input_is_refused_before_anything_is_written() {
    let w = World::new();
    let (id, doc) = w.account(Visibility::Private);
    let account = Reader::new(&doc).account().unwrap().unwrap();
    let input = AccountInput::named("   ", Currency::CNY);
    let err = try_on_fork(
        &doc,
        &ops::update_account(&account, &input).unwrap(),
        &w.rep,
        &w,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "account name must not be empty");
    let bad_email = ops::ContactInput {
        name: "王芳".into(),
        email: Some("not-an-email".into()),
        ..Default::default()
    };
    assert_eq!(
        code(try_on_fork(
            &doc,
            &ops::add_contact(id, ContactId::new(), &bad_email),
            &w.rep,
            &w
        )),
        "invalid_input"
    );
}

#[test]
fn reps_cannot_create_accounts_for_others() {
    let w = World::new();
    let id = AccountId::new();
    let doc = new_doc(DocId::Account(id));
    let acl = AccountAcl {
        owner: w.teammate.user_id,
        team: w.team,
        visibility: Visibility::Private,
    };
    let edit = ops::create_account(id, acl, &AccountInput::named("X", Currency::CNY), "", &[]);
    assert_eq!(code(try_on_fork(&doc, &edit, &w.rep, &w)), "forbidden");
    let acl = AccountAcl {
        owner: w.rep.user_id,
        team: w.team,
        visibility: Visibility::Company,
    };
    let edit = ops::create_account(id, acl, &AccountInput::named("X", Currency::CNY), "", &[]);
    assert_eq!(code(try_on_fork(&doc, &edit, &w.rep, &w)), "forbidden");
}

#[test]
fn owner_team_and_visibility_only_change_through_the_manager_api() {
    let w = World::new();
    let (id, doc) = w.account(Visibility::Private);
    let new_acl = AccountAcl {
        owner: w.stranger.user_id,
        team: w.team,
        visibility: Visibility::Company,
    };
    // Through the typed operation, even an admin's device is refused…
    for p in [&w.rep, &w.manager, &w.admin] {
        assert_eq!(
            code(try_on_fork(&doc, &ops::set_account_acl(id, new_acl), p, &w)),
            "protected_field"
        );
    }
    // …and the same edit on the server's authority is accepted and reported.
    let mut fork = doc.fork().with_actor(ActorId::random());
    let summary = apply(
        &mut fork,
        &ops::set_account_acl(id, new_acl),
        &w.manager,
        Authority::Server,
        Some(&w.catalog),
    )
    .unwrap();
    assert!(summary.acl_changed);
    // A hand-crafted write of the owner is refused.
    let attacker = w.stranger.user_id.to_string();
    let r = raw(&doc, DocId::Account(id), &w.rep, |tx| {
        let acc = tx.get(ROOT, "account").unwrap().unwrap().1;
        tx.put(&acc, "owner", attacker.as_str()).unwrap();
    });
    assert_eq!(code(r), "protected_field");
    // So is the tier, which the server computes.
    let r = raw(&doc, DocId::Account(id), &w.rep, |tx| {
        let acc = tx.get(ROOT, "account").unwrap().unwrap().1;
        tx.put(&acc, "tier", "key").unwrap();
    });
    assert_eq!(code(r), "protected_field");
}

#[test]
fn a_losing_conflicting_write_to_owner_is_still_refused() {
    let w = World::new();
    let (id, doc) = w.account(Visibility::Private);
    // A write of `owner` made on an old version (concurrent with the account's creation) by
    // an actor that sorts first: it loses the conflict and has no visible effect today, but
    // the operation itself is refused.
    let skeleton = doc::skeleton(&DocId::Account(id)).unwrap();
    let mut old = doc
        .fork_at(&skeleton.get_heads())
        .unwrap()
        .with_actor(ActorId::from([0u8; 16].as_slice()));
    let acc = account_map(&old);
    let mut tx = old.transaction();
    tx.put(&acc, "owner", w.stranger.user_id.to_string())
        .unwrap();
    tx.commit();
    let mut server = doc.fork();
    let before = server.get_heads();
    server.merge(&mut old).unwrap();
    assert_eq!(
        Reader::new(&server).account().unwrap().unwrap().acl.owner,
        w.rep.user_id,
        "the write lost the conflict"
    );
    let ctx = WriteContext {
        principal: &w.stranger,
        doc_id: DocId::Account(id),
        authority: Authority::Device,
        catalog: None,
    };
    assert_eq!(
        validate_change(&ctx, &server, &before).unwrap_err().code(),
        "protected_field"
    );
}

#[test]
fn teammates_log_visits_on_team_accounts_but_edit_nothing_else() {
    let w = World::new();
    let (id, doc) = w.account(Visibility::Team);
    let visit = VisitId::new();
    let report = VisitReport {
        outcome: Some("ordered samples".into()),
        ..Default::default()
    };
    let log = ops::log_visit(
        id,
        visit,
        NOW,
        None,
        Some("covering for a colleague"),
        &report,
    );
    assert_eq!(code(try_on_fork(&doc, &log, &w.teammate, &w)), "ok");
    assert_eq!(code(try_on_fork(&doc, &log, &w.stranger, &w)), "forbidden");
    let account = Reader::new(&doc).account().unwrap().unwrap();
    let rename =
        ops::update_account(&account, &AccountInput::named("Renamed", Currency::CNY)).unwrap();
    assert_eq!(
        code(try_on_fork(&doc, &rename, &w.teammate, &w)),
        "forbidden"
    );
    assert_eq!(
        code(try_on_fork(
            &doc,
            &ops::add_contact(
                id,
                ContactId::new(),
                &ops::ContactInput {
                    name: "A".into(),
                    ..Default::default()
                }
            ),
            &w.teammate,
            &w
        )),
        "forbidden"
    );
    // The owner's visit cannot be edited by the teammate.
    let mut with_visit = doc.fork();
    apply(
        &mut with_visit,
        &ops::plan_visit(id, visit, NOW + 3_600_000, None),
        &w.rep,
        Authority::Device,
        None,
    )
    .unwrap();
    let err = try_on_fork(
        &with_visit,
        &ops::cancel_visit(id, visit, None),
        &w.teammate,
        &w,
    )
    .unwrap_err();
    assert_eq!(err.code(), "forbidden");
    // In a private account, the teammate may not even log a visit.
    let (pid, private) = w.account(Visibility::Private);
    assert_eq!(
        code(try_on_fork(
            &private,
            &ops::log_visit(pid, VisitId::new(), NOW, None, None, &report),
            &w.teammate,
            &w
        )),
        "forbidden"
    );
}

#[test]
fn visit_lifecycle_and_location_only_at_check_in_and_out() {
    let w = World::new();
    let (id, mut doc) = w.account(Visibility::Private);
    let v = VisitId::new();
    apply(
        &mut doc,
        &ops::plan_visit(id, v, NOW + 86_400_000, Some("quarterly review")),
        &w.rep,
        Authority::Device,
        None,
    )
    .unwrap();
    let here = GeoPoint {
        lat: 31.23,
        lon: 121.47,
        accuracy_m: Some(12.0),
    };
    apply(
        &mut doc,
        &ops::check_in(id, v, NOW, Some(here)),
        &w.rep,
        Authority::Device,
        None,
    )
    .unwrap();
    // Moving the recorded check-in position later is refused.
    let moved = fieldline_protocol::ops::Edit {
        doc: DocId::Account(id),
        action: "tamper".into(),
        ops: vec![ops::Op::Set {
            record: fieldline_protocol::schema::RecordPath::Visit(v),
            fields: vec![(
                "check_in_lat".into(),
                Some(fieldline_protocol::schema::FieldValue::F64(30.0)),
            )],
        }],
    };
    assert_eq!(code(try_on_fork(&doc, &moved, &w.rep, &w)), "invalid_input");
    let visit = Reader::new(&doc).visit(id, v).unwrap().unwrap();
    assert_eq!(visit.status, VisitStatus::InProgress);
    assert_eq!(visit.check_in_location, Some(here));
    apply(
        &mut doc,
        &ops::complete_visit(id, &visit, NOW + 1_800_000, None, &VisitReport::default()),
        &w.rep,
        Authority::Device,
        None,
    )
    .unwrap();
    // A completed visit cannot be cancelled or re-planned.
    let err = try_on_fork(&doc, &ops::cancel_visit(id, v, Some("oops")), &w.rep, &w).unwrap_err();
    assert_eq!(err.code(), "invalid_transition");
    assert_eq!(
        err.to_string(),
        "visit cannot go from completed to cancelled"
    );
    // But notes can still be added after the visit.
    assert_eq!(
        code(try_on_fork(
            &doc,
            &ops::edit_visit_notes(id, v, "", "follow up on price"),
            &w.rep,
            &w
        )),
        "ok"
    );
}

#[test]
fn orders_lock_when_submitted_and_only_the_back_office_decides() {
    let w = World::new();
    let (id, mut doc) = w.account(Visibility::Private);
    let order = OrderId::new();
    apply(
        &mut doc,
        &ops::create_order(id, order, Currency::CNY, None, None),
        &w.rep,
        Authority::Device,
        Some(&w.catalog),
    )
    .unwrap();
    // Submitting an empty order is refused.
    assert_eq!(
        code(try_on_fork(
            &doc,
            &ops::submit_order(id, order, NOW),
            &w.rep,
            &w
        )),
        "invalid_input"
    );
    let quote = w
        .catalog
        .quote(w.product, Currency::CNY, None, Quantity::whole(10), NOW)
        .unwrap();
    let line = OrderLineId::new();
    apply(
        &mut doc,
        &ops::add_order_line(id, order, line, &quote, Quantity::whole(10), 500),
        &w.rep,
        Authority::Device,
        Some(&w.catalog),
    )
    .unwrap();
    let o = Reader::new(&doc).order(id, order).unwrap().unwrap();
    let totals = o.totals().unwrap();
    assert_eq!(totals.net_minor, 121_600); // 10 × 128.00 − 5 %
    assert_eq!(totals.tax_minor, 15_808);
    apply(
        &mut doc,
        &ops::submit_order(id, order, NOW),
        &w.rep,
        Authority::Device,
        Some(&w.catalog),
    )
    .unwrap();
    // Now every edit by the rep is refused.
    let err = try_on_fork(
        &doc,
        &ops::update_order_line(id, order, line, Quantity::whole(99), 0),
        &w.rep,
        &w,
    )
    .unwrap_err();
    assert_eq!(err.code(), "locked");
    assert_eq!(
        code(try_on_fork(
            &doc,
            &ops::add_order_line(id, order, OrderLineId::new(), &quote, Quantity::whole(1), 0),
            &w.rep,
            &w
        )),
        "locked"
    );
    assert_eq!(
        code(try_on_fork(
            &doc,
            &ops::discard_order(id, order),
            &w.rep,
            &w
        )),
        "locked"
    );
    // Prices copied at order time cannot be rewritten, even in a draft.
    let (id2, mut draft) = w.account(Visibility::Private);
    let o2 = OrderId::new();
    let l2 = OrderLineId::new();
    apply(
        &mut draft,
        &ops::create_order(id2, o2, Currency::CNY, None, None),
        &w.rep,
        Authority::Device,
        None,
    )
    .unwrap();
    apply(
        &mut draft,
        &ops::add_order_line(id2, o2, l2, &quote, Quantity::whole(1), 0),
        &w.rep,
        Authority::Device,
        None,
    )
    .unwrap();
    let r = raw(&draft, DocId::Account(id2), &w.rep, |tx| {
        let orders = tx.get(ROOT, "orders").unwrap().unwrap().1;
        let o = tx.get(&orders, o2.to_string()).unwrap().unwrap().1;
        let lines = tx.get(&o, "lines").unwrap().unwrap().1;
        let l = tx.get(&lines, l2.to_string()).unwrap().unwrap().1;
        tx.put(&l, "unit_price_minor", 1).unwrap();
    });
    assert_eq!(code(r), "protected_field");
    let r = raw(&draft, DocId::Account(id2), &w.rep, |tx| {
        let orders = tx.get(ROOT, "orders").unwrap().unwrap().1;
        let o = tx.get(&orders, o2.to_string()).unwrap().unwrap().1;
        tx.put_object(&o, "lines", automerge::ObjType::Map).unwrap();
    });
    assert_eq!(
        code(r),
        "protected_field",
        "replacing an order's lines would hide them"
    );
    // A device (even the manager's) cannot confirm; the back office (server authority) can.
    let confirm = ops::decide_order(id, order, OrderStatus::Confirmed, NOW, Some("ERP-1"), None);
    assert_eq!(
        code(try_on_fork(&doc, &confirm, &w.manager, &w)),
        "protected_field"
    );
    let mut fork = doc.fork().with_actor(ActorId::random());
    apply(
        &mut fork,
        &confirm,
        &w.admin,
        Authority::Server,
        Some(&w.catalog),
    )
    .unwrap();
    assert_eq!(
        Reader::new(&fork).order(id, order).unwrap().unwrap().status,
        OrderStatus::Confirmed
    );
    // Confirmed → draft is not a transition even for the server.
    let back = ops::Edit {
        doc: DocId::Account(id),
        action: "x".into(),
        ops: vec![ops::Op::Set {
            record: fieldline_protocol::schema::RecordPath::Order(order),
            fields: vec![(
                "status".into(),
                Some(fieldline_protocol::schema::FieldValue::Str("draft".into())),
            )],
        }],
    };
    let mut f2 = fork.fork().with_actor(ActorId::random());
    assert_eq!(
        code(apply(&mut f2, &back, &w.admin, Authority::Server, None)),
        "invalid_transition"
    );
}

#[test]
fn unknown_products_and_bad_quantities_are_refused() {
    let w = World::new();
    let (id, mut doc) = w.account(Visibility::Private);
    let order = OrderId::new();
    apply(
        &mut doc,
        &ops::create_order(id, order, Currency::CNY, None, None),
        &w.rep,
        Authority::Device,
        None,
    )
    .unwrap();
    let mut quote = w
        .catalog
        .quote(w.product, Currency::CNY, None, Quantity::whole(1), NOW)
        .unwrap();
    assert_eq!(
        code(try_on_fork(
            &doc,
            &ops::add_order_line(
                id,
                order,
                OrderLineId::new(),
                &quote,
                Quantity::whole(-1),
                0
            ),
            &w.rep,
            &w
        )),
        "invalid_input"
    );
    assert_eq!(
        code(try_on_fork(
            &doc,
            &ops::add_order_line(
                id,
                order,
                OrderLineId::new(),
                &quote,
                Quantity::whole(1),
                20_000
            ),
            &w.rep,
            &w
        )),
        "invalid_input"
    );
    quote.product.id = ProductId::new();
    assert_eq!(
        code(try_on_fork(
            &doc,
            &ops::add_order_line(id, order, OrderLineId::new(), &quote, Quantity::whole(1), 0),
            &w.rep,
            &w
        )),
        "not_found"
    );
    assert!(matches!(
        w.catalog.quote(
            ProductId::new(),
            Currency::CNY,
            None,
            Quantity::whole(1),
            NOW
        ),
        Err(Error::NotFound { .. })
    ));
    assert!(
        w.catalog
            .quote(w.product, Currency::USD, None, Quantity::whole(1), NOW)
            .is_err(),
        "no USD price anywhere"
    );
}

#[test]
fn the_catalog_is_for_admins() {
    let w = World::new();
    let cat = new_doc(DocId::Catalog);
    for p in [&w.rep, &w.manager] {
        assert_eq!(
            code(try_on_fork(
                &cat,
                &ops::set_tax_class("zero", "Zero", 0),
                p,
                &w
            )),
            "forbidden"
        );
    }
    assert_eq!(
        code(try_on_fork(
            &cat,
            &ops::set_tax_class("zero", "Zero", 0),
            &w.admin,
            &w
        )),
        "ok"
    );
}

#[test]
fn records_are_never_removed_and_the_skeleton_never_changes() {
    let w = World::new();
    let (id, mut doc) = w.account(Visibility::Private);
    let c = ContactId::new();
    apply(
        &mut doc,
        &ops::add_contact(
            id,
            c,
            &ops::ContactInput {
                name: "张伟".into(),
                ..Default::default()
            },
        ),
        &w.rep,
        Authority::Device,
        None,
    )
    .unwrap();
    let r = raw(&doc, DocId::Account(id), &w.rep, |tx| {
        let contacts = tx.get(ROOT, "contacts").unwrap().unwrap().1;
        tx.delete(&contacts, c.to_string()).unwrap();
    });
    assert_eq!(code(r), "forbidden");
    let r = raw(&doc, DocId::Account(id), &w.rep, |tx| {
        tx.put(ROOT, "kind", "catalog").unwrap()
    });
    assert_eq!(code(r), "protected_field");
    let r = raw(&doc, DocId::Account(id), &w.rep, |tx| {
        tx.put_object(ROOT, "visits", automerge::ObjType::Map)
            .unwrap();
    });
    assert_eq!(code(r), "protected_field");
    // Soft delete works and keeps the record.
    assert_eq!(
        code(try_on_fork(
            &doc,
            &ops::set_contact_deleted(id, c, true),
            &w.rep,
            &w
        )),
        "ok"
    );
}

#[test]
fn malformed_values_and_unknown_fields_are_refused() {
    let w = World::new();
    let (id, doc) = w.account(Visibility::Private);
    let r = raw(&doc, DocId::Account(id), &w.rep, |tx| {
        let acc = tx.get(ROOT, "account").unwrap().unwrap().1;
        tx.put(&acc, "name", 42).unwrap();
    });
    assert_eq!(code(r), "malformed_document");
    let r = raw(&doc, DocId::Account(id), &w.rep, |tx| {
        let acc = tx.get(ROOT, "account").unwrap().unwrap().1;
        tx.put(&acc, "favourite_colour", "blue").unwrap();
    });
    assert_eq!(code(r), "malformed_document");
    let r = raw(&doc, DocId::Account(id), &w.rep, |tx| {
        let visits = tx.get(ROOT, "visits").unwrap().unwrap().1;
        tx.put(&visits, "not-a-uuid", "x").unwrap();
    });
    assert_eq!(code(r), "malformed_document");
    // A visit created in someone else's name.
    let other = w.teammate.user_id.to_string();
    let r = raw(&doc, DocId::Account(id), &w.rep, |tx| {
        let visits = tx.get(ROOT, "visits").unwrap().unwrap().1;
        let v = VisitId::new();
        let m = tx
            .put_object(&visits, v.to_string(), automerge::ObjType::Map)
            .unwrap();
        tx.put(&m, "id", v.to_string()).unwrap();
        tx.put(&m, "status", "planned").unwrap();
        tx.put(&m, "created_at", automerge::ScalarValue::Timestamp(NOW))
            .unwrap();
        tx.put(&m, "created_by", other.as_str()).unwrap();
        tx.put_object(&m, "notes", automerge::ObjType::Text)
            .unwrap();
    });
    assert_eq!(code(r), "forbidden");
}

#[test]
fn writes_to_an_account_that_does_not_exist_are_refused() {
    let w = World::new();
    let id = AccountId::new();
    let doc = new_doc(DocId::Account(id));
    assert_eq!(
        code(try_on_fork(
            &doc,
            &ops::plan_visit(id, VisitId::new(), NOW, None),
            &w.rep,
            &w
        )),
        "not_found"
    );
}

#[test]
fn tasks_belong_to_their_user_and_their_managers() {
    let w = World::new();
    let doc = new_doc(DocId::User(w.rep.user_id));
    let task = ops::create_task(
        w.rep.user_id,
        TaskId::new(),
        &ops::TaskInput {
            title: "Call back 王经理".into(),
            due_at: Some(NOW),
            ..Default::default()
        },
    );
    assert_eq!(code(try_on_fork(&doc, &task, &w.rep, &w)), "ok");
    assert_eq!(code(try_on_fork(&doc, &task, &w.manager, &w)), "ok");
    assert_eq!(code(try_on_fork(&doc, &task, &w.teammate, &w)), "forbidden");
    let prefs = ops::set_preferences(
        w.rep.user_id,
        &Preferences {
            language: Some(Language::Zh),
            ..Default::default()
        },
    );
    assert_eq!(code(try_on_fork(&doc, &prefs, &w.rep, &w)), "ok");
    assert_eq!(code(try_on_fork(&doc, &prefs, &w.manager, &w)), "forbidden");
}

#[test]
fn replaying_a_creation_is_idempotent() {
    let w = World::new();
    let (id, mut doc) = w.account(Visibility::Private);
    let v = VisitId::new();
    let edit = ops::plan_visit(id, v, NOW, Some("demo"));
    apply(&mut doc, &edit, &w.rep, Authority::Device, None).unwrap();
    let heads = doc.get_heads();
    let mut tx = doc.transaction();
    assert_eq!(
        edit.apply(&mut tx, w.rep.user_id, NOW).unwrap(),
        ops::Applied::Unchanged
    );
    tx.commit();
    assert_eq!(doc.get_heads(), heads, "nothing was written");
}

#[test]
fn price_lists_win_over_base_prices_with_volume_breaks() {
    let w = World::new();
    let mut cat = new_doc(DocId::Catalog);
    // Rebuild the world's catalog contents plus a USD price list with a volume break.
    apply(
        &mut cat,
        &ops::set_base_currency(Currency::CNY),
        &w.admin,
        Authority::Device,
        None,
    )
    .unwrap();
    apply(
        &mut cat,
        &ops::set_tax_class("standard", "VAT", 1300),
        &w.admin,
        Authority::Device,
        None,
    )
    .unwrap();
    let input = ops::ProductInput {
        sku: "A".into(),
        name: "A".into(),
        category: None,
        unit: "pcs".into(),
        base_price_minor: 1000,
        tax_class: "standard".into(),
        active: true,
    };
    let p = ProductId::new();
    let snapshot = Reader::new(&cat).catalog().unwrap();
    apply(
        &mut cat,
        &ops::upsert_product(p, &input, &snapshot).unwrap(),
        &w.admin,
        Authority::Device,
        None,
    )
    .unwrap();
    let list = PriceListId::new();
    apply(
        &mut cat,
        &ops::create_price_list(list, "Export USD", Currency::USD),
        &w.admin,
        Authority::Device,
        None,
    )
    .unwrap();
    for (price, min) in [(150, None), (120, Some(Quantity::whole(100)))] {
        let item = ops::PriceInput {
            product_id: p,
            price_minor: price,
            min_qty: min,
            valid_from: None,
            valid_to: None,
        };
        apply(
            &mut cat,
            &ops::add_price(list, PriceListItemId::new(), &item).unwrap(),
            &w.admin,
            Authority::Device,
            None,
        )
        .unwrap();
    }
    let c = Reader::new(&cat).catalog().unwrap();
    assert_eq!(
        c.quote(p, Currency::USD, Some(list), Quantity::whole(5), NOW)
            .unwrap()
            .unit_price_minor,
        150
    );
    assert_eq!(
        c.quote(p, Currency::USD, Some(list), Quantity::whole(100), NOW)
            .unwrap()
            .unit_price_minor,
        120
    );
    assert_eq!(
        c.quote(p, Currency::CNY, Some(list), Quantity::whole(5), NOW)
            .unwrap()
            .unit_price_minor,
        1000
    );
}

/// Approval (review authority) vouches for access only: the lock of a submitted order,
/// authorship and lifecycles still hold, judged as the change's author.
#[test]
fn approving_a_parked_change_still_enforces_locks_and_authorship() {
    let w = World::new();
    let (id, mut doc) = w.account(Visibility::Private);
    let order = OrderId::new();
    apply(
        &mut doc,
        &ops::create_order(id, order, Currency::CNY, None, None),
        &w.rep,
        Authority::Device,
        Some(&w.catalog),
    )
    .unwrap();
    let quote = w
        .catalog
        .quote(w.product, Currency::CNY, None, Quantity::whole(1), NOW)
        .unwrap();
    let line = OrderLineId::new();
    apply(
        &mut doc,
        &ops::add_order_line(id, order, line, &quote, Quantity::whole(1), 0),
        &w.rep,
        Authority::Device,
        Some(&w.catalog),
    )
    .unwrap();
    apply(
        &mut doc,
        &ops::submit_order(id, order, NOW),
        &w.rep,
        Authority::Device,
        Some(&w.catalog),
    )
    .unwrap();
    let review = |edit: &Edit, p: &Principal| {
        let mut fork = doc.fork().with_actor(ActorId::random());
        apply(&mut fork, edit, p, Authority::Review, Some(&w.catalog))
    };
    // Access is vouched for: a stranger's visit on a private account can be approved…
    assert_eq!(
        code(review(
            &ops::log_visit(id, VisitId::new(), NOW, None, None, &VisitReport::default()),
            &w.stranger
        )),
        "ok"
    );
    // …but a submitted order stays locked, and only drafts are discarded.
    assert_eq!(
        code(review(
            &ops::update_order_line(id, order, line, Quantity::whole(50), 0),
            &w.rep
        )),
        "locked"
    );
    assert_eq!(
        code(review(&ops::discard_order(id, order), &w.rep)),
        "locked"
    );
    // Protected fields stay protected.
    let acl = AccountAcl {
        owner: w.stranger.user_id,
        team: w.team,
        visibility: Visibility::Company,
    };
    assert_eq!(
        code(review(&ops::set_account_acl(id, acl), &w.rep)),
        "protected_field"
    );
    // Records cannot be created in someone else's name.
    let r = {
        let mut fork = doc.fork().with_actor(ActorId::random());
        let before = fork.get_heads();
        let mut tx = fork.transaction();
        ops::log_visit(id, VisitId::new(), NOW, None, None, &VisitReport::default())
            .apply(&mut tx, w.teammate.user_id, NOW)
            .unwrap();
        tx.commit();
        let ctx = WriteContext {
            principal: &w.rep,
            doc_id: DocId::Account(id),
            authority: Authority::Review,
            catalog: None,
        };
        validate_change(&ctx, &fork, &before)
    };
    assert_eq!(code(r), "forbidden");
}

/// A write that loses a conflict has no visible effect, but who may write the record is
/// still judged: a teammate cannot slip a hidden value into a contact's field.
#[test]
fn a_hidden_losing_write_still_needs_permission() {
    let w = World::new();
    let (id, mut doc) = w.account(Visibility::Team);
    let c = ContactId::new();
    apply(
        &mut doc,
        &ops::add_contact(
            id,
            c,
            &ops::ContactInput {
                name: "Zhao".into(),
                ..Default::default()
            },
        ),
        &w.rep,
        Authority::Device,
        None,
    )
    .unwrap();
    let base = doc.get_heads();
    // The owner's two devices set the title concurrently: the field is now in conflict.
    for title in ["Buyer", "Head buyer"] {
        let mut f = doc.fork_at(&base).unwrap().with_actor(ActorId::random());
        let contacts = f.get(ROOT, "contacts").unwrap().unwrap().1;
        let obj = f.get(&contacts, c.to_string()).unwrap().unwrap().1;
        let mut tx = f.transaction();
        tx.put(&obj, "title", title).unwrap();
        tx.commit();
        doc.merge(&mut f).unwrap();
    }
    // The teammate writes the title from an old version with an actor that sorts first.
    let mut evil = doc
        .fork_at(&base)
        .unwrap()
        .with_actor(ActorId::from([0u8; 16].as_slice()));
    let contacts = evil.get(ROOT, "contacts").unwrap().unwrap().1;
    let obj = evil.get(&contacts, c.to_string()).unwrap().unwrap().1;
    let mut tx = evil.transaction();
    tx.put(&obj, "title", "hidden").unwrap();
    tx.commit();
    let before = doc.get_heads();
    doc.merge(&mut evil).unwrap();
    let title = Reader::new(&doc)
        .contact(id, c)
        .unwrap()
        .unwrap()
        .title
        .unwrap();
    assert_ne!(title, "hidden", "the write lost the conflict");
    let ctx = WriteContext {
        principal: &w.teammate,
        doc_id: DocId::Account(id),
        authority: Authority::Device,
        catalog: None,
    };
    assert_eq!(
        validate_change(&ctx, &doc, &before).unwrap_err().code(),
        "forbidden"
    );
}

/// Replaying a notes edit applies what the user changed, not the whole text they saw: text
/// added by others meanwhile stays.
#[test]
fn text_edits_merge_three_ways() {
    let merged = ops::merge_text(
        "Call back on Monday.",
        "Call back on Monday. Manager: bring samples.",
        "Call back on Monday or Tuesday.",
    )
    .unwrap();
    assert!(
        merged.contains("Tuesday") && merged.contains("bring samples"),
        "{merged}"
    );
    assert_eq!(ops::merge_text("a", "a", "ab").unwrap(), "ab");
    assert_eq!(
        ops::merge_text("a", "ab", "a").unwrap(),
        "ab",
        "we did nothing"
    );
    assert_eq!(
        ops::merge_text("", "same words", "same words").unwrap(),
        "same words",
        "the same edit on both sides is made once"
    );
    assert_eq!(
        ops::merge_text("abc", "abcX", "ac").unwrap(),
        "acX",
        "a deletion and an addition both hold"
    );
    // Through an edit on a document that moved on since the user saw it.
    let w = World::new();
    let (id, mut doc) = w.account(Visibility::Private);
    apply(
        &mut doc,
        &ops::edit_account_notes(id, "first note", "first note + manager"),
        &w.manager,
        Authority::Device,
        None,
    )
    .unwrap();
    apply(
        &mut doc,
        &ops::edit_account_notes(id, "first note", "first note + rep"),
        &w.rep,
        Authority::Device,
        None,
    )
    .unwrap();
    let notes = Reader::new(&doc).account().unwrap().unwrap().notes;
    assert!(
        notes.contains("+ manager") && notes.contains("+ rep"),
        "{notes}"
    );
}
