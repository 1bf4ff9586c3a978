//! The replica's public API end to end: edits, durability, queries, errors, merging.

mod common;

use common::*;
use fieldline_client_core::{Error, FollowUp};
use fieldline_protocol::ids::*;
use fieldline_protocol::model::*;
use fieldline_protocol::money::{Currency, Quantity};
use fieldline_protocol::ops::{AccountInput, ContactInput, TaskInput, VisitReport};

fn sample_input(name: &str, city: &str) -> AccountInput {
    let mut a = AccountInput::named(name, Currency::CNY);
    a.address.city = Some(city.into());
    a.phone = Some("+86 21 5555 0100".into());
    a
}

#[test]
fn a_days_work_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rep.db");
    let org = Org::new();
    let (account, visit, task) = {
        let (r, clock) = open(&path, &org.rep);
        let account = r
            .create_account(
                &sample_input("上海华联超市", "上海"),
                Visibility::Private,
                "",
                &["vip".into()],
            )
            .unwrap();
        r.add_contact(
            account,
            &ContactInput {
                name: "王芳".into(),
                title: Some("采购经理".into()),
                primary: true,
                ..Default::default()
            },
        )
        .unwrap();
        let visit = r
            .plan_visit(account, T0 + 3_600_000, Some("quarterly review"))
            .unwrap();
        clock.advance(3_600_000);
        r.check_in(
            account,
            visit,
            Some(GeoPoint {
                lat: 31.23,
                lon: 121.47,
                accuracy_m: Some(8.0),
            }),
        )
        .unwrap();
        clock.advance(1_800_000);
        let report = VisitReport {
            outcome: Some("wants a price list".into()),
            next_step: Some("send offer".into()),
            notes: Some("met 王芳".into()),
        };
        let task = r
            .complete_visit(
                account,
                visit,
                None,
                &report,
                Some(&FollowUp {
                    title: "Send offer".into(),
                    due_at: Some(T0 + 86_400_000),
                }),
            )
            .unwrap()
            .unwrap();
        (account, visit, task)
    };
    let (r, _) = open(&path, &org.rep);
    let a = r.account(account).unwrap().unwrap();
    assert_eq!(a.name, "上海华联超市");
    assert_eq!(a.tags, vec!["vip"]);
    assert_eq!(r.contacts(account).unwrap()[0].name, "王芳");
    let v = r.visit(visit).unwrap().unwrap();
    assert_eq!(v.status, VisitStatus::Completed);
    assert_eq!(v.check_in_location.map(|g| g.lat), Some(31.23));
    assert_eq!(v.notes, "met 王芳");
    let t = r.task(task).unwrap().unwrap();
    assert_eq!(
        (t.title.as_str(), t.account_id, t.visit_id),
        ("Send offer", Some(account), Some(visit))
    );
    assert_eq!(r.tasks(true, None, 10).unwrap().len(), 1);
    // Create, contact, plan, check in, complete (+ the follow-up in the user document).
    assert_eq!(r.pending_changes().unwrap(), 6);
    assert_eq!(
        r.timeline(account, 10).unwrap().len(),
        2,
        "the visit and its follow-up task"
    );
}

#[test]
fn invalid_input_is_a_clear_error_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, _) = open(&dir.path().join("r.db"), &org.rep);
    let account = r
        .create_account(
            &sample_input("ACME", "Shanghai"),
            Visibility::Private,
            "",
            &[],
        )
        .unwrap();
    let before = (
        r.pending_changes().unwrap(),
        r.projection_fingerprint().unwrap(),
    );
    let err = r
        .update_account(account, &sample_input("  ", "Shanghai"))
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    assert_eq!(err.to_string(), "account name must not be empty");
    let err = r
        .add_contact(
            account,
            &ContactInput {
                name: "A".into(),
                email: Some("nope".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("e-mail"), "{err}");
    let err = r
        .create_account(&sample_input("", "x"), Visibility::Private, "", &[])
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    let err = r
        .create_account(&sample_input("Shared", "x"), Visibility::Company, "", &[])
        .unwrap_err();
    assert_eq!(err.code(), "forbidden");
    let err = r
        .log_visit(AccountId::new(), None, None, &VisitReport::default())
        .unwrap_err();
    assert_eq!(err.code(), "not_found");
    // A rep changing owner or visibility is refused.
    let acl = AccountAcl {
        owner: org.rep2.principal.user_id,
        team: org.team,
        visibility: Visibility::Company,
    };
    let err = r
        .apply_edits(&[fieldline_protocol::ops::set_account_acl(account, acl)])
        .unwrap_err();
    assert_eq!(err.code(), "protected_field");
    // Writing the catalog is refused for a rep.
    let err = r
        .apply_edits(&[fieldline_protocol::ops::set_tax_class("zero", "Zero", 0)])
        .unwrap_err();
    assert_eq!(err.code(), "forbidden");
    assert_eq!(
        (
            r.pending_changes().unwrap(),
            r.projection_fingerprint().unwrap()
        ),
        before,
        "nothing was written"
    );
    // And the replica still works afterwards.
    r.log_visit(
        account,
        None,
        Some("after the errors"),
        &VisitReport::default(),
    )
    .unwrap();
}

#[test]
fn orders_are_priced_from_the_catalog_and_lock_once_submitted() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, _) = open(&dir.path().join("r.db"), &org.rep);
    let account = r
        .create_account(
            &sample_input("Hotel Pudong", "Shanghai"),
            Visibility::Private,
            "",
            &[],
        )
        .unwrap();
    let order = r.create_order(account, None, None).unwrap();
    let product = ProductId::new();
    assert_eq!(
        r.add_order_line(account, order, product, Quantity::whole(1), 0)
            .unwrap_err()
            .code(),
        "no_catalog"
    );
    let (cat, products) = catalog(&org.admin.principal, 3);
    r.import_documents(&[(DocId::Catalog, cat.save())], &mut |_, _| {})
        .unwrap();
    assert_eq!(r.products("", 10).unwrap().len(), 3);
    assert_eq!(
        r.add_order_line(account, order, product, Quantity::whole(1), 0)
            .unwrap_err()
            .code(),
        "not_found"
    );
    let line = r
        .add_order_line(
            account,
            order,
            products[0],
            Quantity::parse("2.5").unwrap(),
            1000,
        )
        .unwrap();
    r.add_order_line(account, order, products[1], Quantity::whole(1), 0)
        .unwrap();
    assert_eq!(
        r.add_order_line(account, order, products[1], Quantity::whole(-3), 0)
            .unwrap_err()
            .code(),
        "invalid_input"
    );
    let detail = r.order(order).unwrap().unwrap();
    assert_eq!(detail.order.lines.len(), 2);
    // 2.5 × 10.00 − 10 % = 22.50; + 10.01 = 32.51 net; tax 13 % per line: 2.93 + 1.30.
    assert_eq!(detail.totals.net_minor, 2250 + 1001);
    assert_eq!(detail.totals.tax_minor, 293 + 130);
    r.submit_order(account, order).unwrap();
    assert_eq!(
        r.update_order_line(account, order, line, Quantity::whole(9), 0)
            .unwrap_err()
            .code(),
        "locked"
    );
    assert_eq!(
        r.orders_with_status(OrderStatus::Submitted, 10)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn search_finds_latin_prefixes_and_chinese_substrings() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, _) = open(&dir.path().join("r.db"), &org.rep);
    let a = r
        .create_account(
            &sample_input("上海华联超市", "上海"),
            Visibility::Private,
            "",
            &[],
        )
        .unwrap();
    let b = r
        .create_account(
            &sample_input("Golden Dragon Restaurant", "Hangzhou"),
            Visibility::Private,
            "",
            &[],
        )
        .unwrap();
    r.add_contact(
        b,
        &ContactInput {
            name: "Zhang Wei".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let ids = |q: &str| {
        r.search_accounts(q, 10)
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("华联"), vec![a]);
    assert_eq!(ids("上海"), vec![a]);
    assert_eq!(ids("gold"), vec![b]);
    assert_eq!(ids("hangz"), vec![b]);
    assert_eq!(ids("zhang"), vec![b], "contact names are searchable");
    assert!(
        ids("联华").is_empty(),
        "characters must be adjacent and in order"
    );
    assert!(ids("").is_empty());
    r.update_account(b, &sample_input("Silver Dragon Restaurant", "Hangzhou"))
        .unwrap();
    assert!(ids("gold").is_empty(), "the index follows edits");
    assert_eq!(ids("silver drag"), vec![b]);
}

#[test]
fn the_projection_can_be_rebuilt_from_the_documents() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, clock) = open(&dir.path().join("r.db"), &org.rep);
    for i in 0..5 {
        let a = r
            .create_account(
                &sample_input(&format!("Account {i}"), "Nanjing"),
                Visibility::Team,
                "note",
                &[],
            )
            .unwrap();
        r.plan_visit(a, T0 + i * 1000, None).unwrap();
        r.log_visit(a, None, None, &VisitReport::default()).unwrap();
        clock.advance(1000);
    }
    r.create_task(&TaskInput {
        title: "Call".into(),
        ..Default::default()
    })
    .unwrap();
    let before = r.projection_fingerprint().unwrap();
    let mut steps = 0;
    r.rebuild_projection(&mut |done, total| {
        steps += 1;
        assert!(done <= total);
    })
    .unwrap();
    assert_eq!(steps, 6, "progress per document");
    assert_eq!(r.projection_fingerprint().unwrap(), before);
    assert_eq!(r.upcoming_visits(T0, 50).unwrap().len(), 5);
    assert_eq!(r.accounts_by_next_visit(50).unwrap().len(), 5);
}

#[test]
fn listeners_hear_about_changes() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, _) = open(&dir.path().join("r.db"), &org.rep);
    let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = heard.clone();
    r.set_listener(Some(std::sync::Arc::new(
        move |c: &fieldline_client_core::ChangeSet| h.lock().unwrap().push(c.clone()),
    )));
    let a = r
        .create_account(&sample_input("ACME", "x"), Visibility::Private, "", &[])
        .unwrap();
    let _ = r.update_account(a, &sample_input("", "x"));
    r.create_task(&TaskInput {
        title: "t".into(),
        ..Default::default()
    })
    .unwrap();
    let heard = heard.lock().unwrap();
    assert_eq!(heard.len(), 2, "failed edits are not announced");
    assert!(heard[0].accounts.contains(&a));
    assert!(heard[1].tasks);
}

#[test]
fn preferences_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, _) = open(&dir.path().join("r.db"), &org.rep);
    assert_eq!(r.preferences().unwrap(), Preferences::default());
    let prefs = Preferences {
        language: Some(Language::Zh),
        currency: Some(Currency::CNY),
        visit_reminder_minutes: Some(30),
    };
    r.set_preferences(&prefs).unwrap();
    assert_eq!(r.preferences().unwrap(), prefs);
}

#[test]
fn a_replica_belongs_to_one_user() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (r, _) = open(&dir.path().join("r.db"), &org.rep);
    assert!(matches!(
        r.set_identity(org.rep2.clone()),
        Err(Error::Rule(_))
    ));
}

#[test]
fn replicas_merge_over_the_automerge_sync_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (phone, _) = open(&dir.path().join("phone.db"), &org.rep);
    let (tablet, _) = open(&dir.path().join("tablet.db"), &org.rep);
    let (boss, _) = open(&dir.path().join("boss.db"), &org.manager);
    let a = phone
        .create_account(
            &sample_input("Shared Co", "Tianjin"),
            Visibility::Team,
            "",
            &[],
        )
        .unwrap();
    let replicas = [("phone", &phone), ("tablet", &tablet), ("boss", &boss)];
    let sync_all = || {
        for _ in 0..6 {
            for (na, ra) in &replicas {
                for (nb, rb) in &replicas {
                    if na == nb {
                        continue;
                    }
                    let shared = [DocId::Account(a)];
                    for (doc, msg) in ra.peer_messages(nb, &shared).unwrap() {
                        rb.receive_peer_message(na, doc, &msg).unwrap();
                    }
                }
            }
        }
    };
    sync_all();
    // Concurrent edits on three devices.
    phone
        .log_visit(a, None, Some("phone"), &VisitReport::default())
        .unwrap();
    tablet
        .log_visit(a, None, Some("tablet"), &VisitReport::default())
        .unwrap();
    boss.edit_account_notes(a, "manager's note").unwrap();
    tablet.edit_account_notes(a, "tablet note").unwrap();
    sync_all();
    let fp = phone.projection_fingerprint().unwrap();
    assert_eq!(tablet.projection_fingerprint().unwrap(), fp);
    assert_eq!(boss.projection_fingerprint().unwrap(), fp);
    assert_eq!(phone.visits(a).unwrap().len(), 2);
    let notes = phone.account(a).unwrap().unwrap().notes;
    assert!(
        notes.contains("manager") || notes.contains("tablet"),
        "{notes}"
    );
}
