//! Convergence: four replicas of three users (a rep's phone and tablet, their manager, a
//! teammate) make random edits and merge over the automerge sync protocol in random pairs
//! and partitions. After a full sync every shared document and every projection is identical,
//! and every visit and order line created anywhere exists exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use fieldline_client_core::{Replica, ReplicaOptions};
use fieldline_protocol::access::Principal;
use fieldline_protocol::automerge::{ActorId, transaction::CommitOptions};
use fieldline_protocol::doc::{self, Reader};
use fieldline_protocol::ids::*;
use fieldline_protocol::model::*;
use fieldline_protocol::money::{Currency, Quantity};
use fieldline_protocol::ops::{self, AccountInput, ContactInput, TaskInput, VisitReport};
use fieldline_protocol::wire::Identity;
use proptest::prelude::*;

const T0: i64 = 1_790_000_000_000;

#[derive(Clone, Debug)]
enum Action {
    CreateAccount {
        by: usize,
    },
    LogVisit {
        by: usize,
        account: usize,
    },
    PlanVisit {
        by: usize,
        account: usize,
    },
    ProgressVisit {
        by: usize,
        account: usize,
        pick: usize,
    },
    AddContact {
        by: usize,
        account: usize,
    },
    EditNotes {
        by: usize,
        account: usize,
        text: String,
    },
    Tag {
        by: usize,
        account: usize,
        tag: usize,
        present: bool,
    },
    Order {
        by: usize,
        account: usize,
        lines: Vec<(usize, i64)>,
        submit: bool,
    },
    EditLine {
        by: usize,
        account: usize,
        pick: usize,
        qty: i64,
    },
    Task {
        by: usize,
    },
    Sync {
        a: usize,
        b: usize,
    },
}

fn action() -> impl Strategy<Value = Action> {
    let r = 0usize..4;
    let acc = 0usize..6;
    prop_oneof![
        1 => (0usize..2).prop_map(|by| Action::CreateAccount { by: [0, 2][by] }),
        4 => (r.clone(), acc.clone()).prop_map(|(by, account)| Action::LogVisit { by, account }),
        2 => (r.clone(), acc.clone()).prop_map(|(by, account)| Action::PlanVisit { by, account }),
        2 => (r.clone(), acc.clone(), 0usize..8).prop_map(|(by, account, pick)| Action::ProgressVisit { by, account, pick }),
        2 => (r.clone(), acc.clone()).prop_map(|(by, account)| Action::AddContact { by, account }),
        2 => (r.clone(), acc.clone(), "[a-z 华联]{0,12}").prop_map(|(by, account, text)| Action::EditNotes { by, account, text }),
        1 => (r.clone(), acc.clone(), 0usize..3, any::<bool>()).prop_map(|(by, account, tag, present)| Action::Tag { by, account, tag, present }),
        2 => (r.clone(), acc.clone(), prop::collection::vec((0usize..3, 1i64..20), 1..4), any::<bool>())
            .prop_map(|(by, account, lines, submit)| Action::Order { by, account, lines, submit }),
        1 => (r.clone(), acc.clone(), 0usize..8, 1i64..50).prop_map(|(by, account, pick, qty)| Action::EditLine { by, account, pick, qty }),
        1 => r.clone().prop_map(|by| Action::Task { by }),
        5 => (r.clone(), r).prop_map(|(a, b)| Action::Sync { a, b }),
    ]
}

struct Harness {
    _dir: tempfile::TempDir,
    names: Vec<&'static str>,
    replicas: Vec<Replica>,
    identities: Vec<Identity>,
    accounts: Vec<AccountId>,
    products: Vec<ProductId>,
    visits: BTreeSet<VisitId>,
    lines: BTreeSet<OrderLineId>,
    orders: BTreeMap<AccountId, Vec<(OrderId, Vec<OrderLineId>)>>,
    tag_names: [&'static str; 3],
}

fn identity(role: Role, name: &str, team: TeamId, user: UserId, manages: &[UserId]) -> Identity {
    let managed_teams = if role == Role::Manager {
        vec![team]
    } else {
        vec![]
    };
    Identity {
        principal: Principal {
            user_id: user,
            role,
            teams: vec![team],
            managed_teams,
            managed_users: manages.to_vec(),
        },
        username: name.into(),
        display_name: name.into(),
    }
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let team = TeamId::new();
        let (rep, manager, mate) = (UserId::new(), UserId::new(), UserId::new());
        let rep_id = identity(Role::Rep, "rep", team, rep, &[]);
        let identities = vec![
            rep_id.clone(),
            rep_id,
            identity(Role::Manager, "manager", team, manager, &[rep, mate]),
            identity(Role::Rep, "mate", team, mate, &[]),
        ];
        let clock = Arc::new(AtomicI64::new(T0));
        let names = vec!["phone", "tablet", "manager", "mate"];
        let replicas: Vec<Replica> = names
            .iter()
            .zip(&identities)
            .map(|(n, id)| {
                let c = clock.clone();
                let r = Replica::open_with(
                    dir.path().join(format!("{n}.db")),
                    ReplicaOptions {
                        clock: Arc::new(move || c.fetch_add(1000, Ordering::SeqCst)),
                        cached_documents: 8,
                    },
                )
                .unwrap();
                r.set_identity(id.clone()).unwrap();
                r
            })
            .collect();
        // The catalog, built as the admin API builds it, is on every device.
        let admin = Principal {
            user_id: UserId::new(),
            role: Role::Admin,
            teams: vec![],
            managed_teams: vec![],
            managed_users: vec![],
        };
        let mut cat = doc::skeleton(&DocId::Catalog).unwrap();
        cat.set_actor(ActorId::random());
        let mut edits = vec![
            ops::set_base_currency(Currency::CNY),
            ops::set_tax_class("standard", "VAT", 1300),
        ];
        let mut products = Vec::new();
        for i in 0..3 {
            let id = ProductId::new();
            let input = ops::ProductInput {
                sku: format!("P{i}"),
                name: format!("产品 {i}"),
                category: None,
                unit: "box".into(),
                base_price_minor: 1000 + 250 * i,
                tax_class: "standard".into(),
                active: true,
            };
            products.push((id, input));
        }
        for e in edits.drain(..) {
            let mut tx = cat.transaction();
            e.apply(&mut tx, admin.user_id, T0).unwrap();
            tx.commit_with(CommitOptions::default());
        }
        for (id, input) in &products {
            let snapshot = Reader::new(&cat).catalog().unwrap();
            let e = ops::upsert_product(*id, input, &snapshot).unwrap();
            let mut tx = cat.transaction();
            e.apply(&mut tx, admin.user_id, T0).unwrap();
            tx.commit_with(CommitOptions::default());
        }
        let saved = cat.save();
        for r in &replicas {
            r.import_documents(&[(DocId::Catalog, saved.clone())], &mut |_, _| {})
                .unwrap();
        }
        let mut h = Harness {
            _dir: dir,
            names,
            replicas,
            identities,
            accounts: Vec::new(),
            products: products.into_iter().map(|(id, _)| id).collect(),
            visits: BTreeSet::new(),
            lines: BTreeSet::new(),
            orders: BTreeMap::new(),
            tag_names: ["vip", "wholesale", "新客户"],
        };
        h.run(&Action::CreateAccount { by: 0 });
        h.run(&Action::CreateAccount { by: 2 });
        // Everyone starts with the first accounts; later ones spread only as pairs sync.
        h.sync_all();
        h
    }

    /// The documents replica `a` may offer replica `b`: team accounts, the catalog, and the
    /// rep's own document between the rep's devices and their manager.
    fn shared(&self, a: usize, b: usize) -> Vec<DocId> {
        let mut docs: Vec<DocId> = self.accounts.iter().map(|a| DocId::Account(*a)).collect();
        docs.push(DocId::Catalog);
        let rep_doc = DocId::User(self.identities[0].principal.user_id);
        if [0, 1, 2].contains(&a) && [0, 1, 2].contains(&b) {
            docs.push(rep_doc);
        }
        docs
    }

    fn sync_pair(&self, a: usize, b: usize) {
        if a == b {
            return;
        }
        // A few exchanges until quiet (each message answers the last).
        for _ in 0..8 {
            let mut quiet = true;
            for (x, y) in [(a, b), (b, a)] {
                for (doc, msg) in self.replicas[x]
                    .peer_messages(self.names[y], &self.shared(x, y))
                    .unwrap()
                {
                    quiet = false;
                    self.replicas[y]
                        .receive_peer_message(self.names[x], doc, &msg)
                        .unwrap();
                }
            }
            if quiet {
                break;
            }
        }
    }

    fn sync_all(&self) {
        for _ in 0..3 {
            for a in 0..self.replicas.len() {
                for b in 0..self.replicas.len() {
                    self.sync_pair(a, b);
                }
            }
        }
    }

    /// Runs one action. Refusals (editing what is not there yet, a lifecycle rule) are
    /// fine — they must be clean errors that write nothing.
    fn run(&mut self, action: &Action) {
        let pick_account =
            |h: &Harness, i: usize| h.accounts.get(i % h.accounts.len().max(1)).copied();
        match action {
            Action::CreateAccount { by } => {
                let input = AccountInput::named(
                    format!("Account {} 华联", self.accounts.len()),
                    Currency::CNY,
                );
                let id = self.replicas[*by]
                    .create_account(&input, Visibility::Team, "", &[])
                    .unwrap();
                self.accounts.push(id);
            }
            Action::LogVisit { by, account } => {
                let Some(a) = pick_account(self, *account) else {
                    return;
                };
                if let Ok(v) =
                    self.replicas[*by].log_visit(a, None, Some("random"), &VisitReport::default())
                {
                    self.visits.insert(v);
                }
            }
            Action::PlanVisit { by, account } => {
                let Some(a) = pick_account(self, *account) else {
                    return;
                };
                if let Ok(v) = self.replicas[*by].plan_visit(a, T0 + 86_400_000, None) {
                    self.visits.insert(v);
                }
            }
            Action::ProgressVisit { by, account, pick } => {
                let Some(a) = pick_account(self, *account) else {
                    return;
                };
                let r = &self.replicas[*by];
                let Ok(visits) = r.visits(a) else { return };
                let Some(v) = visits.get(pick % visits.len().max(1)) else {
                    return;
                };
                let _ = match v.status {
                    VisitStatus::Planned if pick % 3 == 0 => r.cancel_visit(a, v.id, Some("rain")),
                    VisitStatus::Planned => r.check_in(
                        a,
                        v.id,
                        Some(GeoPoint {
                            lat: 31.2,
                            lon: 121.4,
                            accuracy_m: None,
                        }),
                    ),
                    VisitStatus::InProgress => r
                        .complete_visit(a, v.id, None, &VisitReport::default(), None)
                        .map(|_| ()),
                    _ => r.edit_visit_notes(a, v.id, "later note"),
                };
            }
            Action::AddContact { by, account } => {
                let Some(a) = pick_account(self, *account) else {
                    return;
                };
                let _ = self.replicas[*by].add_contact(
                    a,
                    &ContactInput {
                        name: "王芳 Fang".into(),
                        ..Default::default()
                    },
                );
            }
            Action::EditNotes { by, account, text } => {
                let Some(a) = pick_account(self, *account) else {
                    return;
                };
                let _ = self.replicas[*by].edit_account_notes(a, text);
            }
            Action::Tag {
                by,
                account,
                tag,
                present,
            } => {
                let Some(a) = pick_account(self, *account) else {
                    return;
                };
                let _ = self.replicas[*by].set_tag(a, self.tag_names[*tag], *present);
            }
            Action::Order {
                by,
                account,
                lines,
                submit,
            } => {
                let Some(a) = pick_account(self, *account) else {
                    return;
                };
                let r = &self.replicas[*by];
                let Ok(order) = r.create_order(a, None, None) else {
                    return;
                };
                let mut created = Vec::new();
                for (p, q) in lines {
                    if let Ok(l) =
                        r.add_order_line(a, order, self.products[*p], Quantity::whole(*q), 0)
                    {
                        self.lines.insert(l);
                        created.push(l);
                    }
                }
                if *submit {
                    let _ = r.submit_order(a, order);
                }
                self.orders.entry(a).or_default().push((order, created));
            }
            Action::EditLine {
                by,
                account,
                pick,
                qty,
            } => {
                let Some(a) = pick_account(self, *account) else {
                    return;
                };
                let Some(orders) = self.orders.get(&a) else {
                    return;
                };
                let (order, lines) = &orders[pick % orders.len()];
                let Some(line) = lines.get(pick % lines.len().max(1)) else {
                    return;
                };
                let _ = self.replicas[*by].update_order_line(
                    a,
                    *order,
                    *line,
                    Quantity::whole(*qty),
                    0,
                );
            }
            Action::Task { by } => {
                let _ = self.replicas[*by].create_task(&TaskInput {
                    title: "follow up".into(),
                    ..Default::default()
                });
            }
            Action::Sync { a, b } => self.sync_pair(*a, *b),
        }
    }

    fn check_converged(&self) {
        // 1. Every shared document has the same heads on every replica holding it.
        for doc in self
            .accounts
            .iter()
            .map(|a| DocId::Account(*a))
            .chain([DocId::Catalog])
        {
            let heads: Vec<_> = self
                .replicas
                .iter()
                .map(|r| r.heads(doc).unwrap())
                .collect();
            assert!(
                heads.iter().all(|h| h.is_some() && *h == heads[0]),
                "{doc} diverged"
            );
        }
        let rep_doc = DocId::User(self.identities[0].principal.user_id);
        let heads: Vec<_> = self.replicas[..3]
            .iter()
            .map(|r| r.heads(rep_doc).unwrap())
            .collect();
        assert!(
            heads.iter().all(|h| *h == heads[0]),
            "the rep's document diverged"
        );
        assert!(
            self.replicas[3].heads(rep_doc).unwrap().is_none(),
            "the teammate never receives the rep's private document"
        );

        // 2. Every projection is identical for what the replicas share, and matches a rebuild.
        let accounts_only = |fp: Vec<String>| {
            fp.into_iter()
                .filter(|l| !l.starts_with("tasks"))
                .collect::<Vec<_>>()
        };
        let reference = accounts_only(self.replicas[0].projection_fingerprint().unwrap());
        for (i, r) in self.replicas.iter().enumerate() {
            let fp = r.projection_fingerprint().unwrap();
            assert_eq!(
                accounts_only(fp.clone()),
                reference,
                "{} differs",
                self.names[i]
            );
            r.rebuild_projection(&mut |_, _| {}).unwrap();
            assert_eq!(
                r.projection_fingerprint().unwrap(),
                fp,
                "{}'s projection differs from its documents",
                self.names[i]
            );
        }

        // 3. Every visit and order line created anywhere exists exactly once, everywhere.
        for (i, r) in self.replicas.iter().enumerate() {
            let mut seen_visits = BTreeMap::new();
            for a in &self.accounts {
                for v in r.visits(*a).unwrap() {
                    *seen_visits.entry(v.id).or_insert(0) += 1;
                }
            }
            for v in &self.visits {
                assert_eq!(
                    seen_visits.get(v),
                    Some(&1),
                    "{}: visit {v} not exactly once",
                    self.names[i]
                );
            }
            assert_eq!(
                seen_visits.len(),
                self.visits.len(),
                "{}: unexpected visits",
                self.names[i]
            );
            let mut seen_lines = BTreeMap::new();
            for orders in self.orders.values() {
                for (o, _) in orders {
                    if let Some(d) = r.order(*o).unwrap() {
                        for l in d.order.lines {
                            *seen_lines.entry(l.id).or_insert(0) += 1;
                        }
                    }
                }
            }
            for l in &self.lines {
                assert_eq!(
                    seen_lines.get(l),
                    Some(&1),
                    "{}: order line {l} not exactly once",
                    self.names[i]
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 64, .. ProptestConfig::default() })]

    #[test]
    fn replicas_converge_and_lose_nothing(actions in prop::collection::vec(action(), 10..70)) {
        let mut h = Harness::new();
        for a in &actions {
            h.run(a);
        }
        h.sync_all();
        h.check_converged();
    }
}
