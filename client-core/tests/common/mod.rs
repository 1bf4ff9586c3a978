//! Shared fixtures: an organisation, identities and a catalog built with the protocol's own
//! operations (exactly what the server's admin API does).
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use fieldline_client_core::{Replica, ReplicaOptions};
use fieldline_protocol::access::Principal;
use fieldline_protocol::automerge::{ActorId, Automerge, transaction::CommitOptions};
use fieldline_protocol::doc::{self, Reader};
use fieldline_protocol::ids::*;
use fieldline_protocol::model::Role;
use fieldline_protocol::money::Currency;
use fieldline_protocol::ops::{self, Edit};
use fieldline_protocol::validate::{Authority, WriteContext, validate_change};
use fieldline_protocol::wire::Identity;

pub const T0: i64 = 1_790_000_000_000;

pub struct Org {
    pub team: TeamId,
    pub rep: Identity,
    pub rep2: Identity,
    pub manager: Identity,
    pub admin: Identity,
}

fn identity(
    role: Role,
    name: &str,
    teams: &[TeamId],
    managed: &[TeamId],
    managed_users: &[UserId],
) -> Identity {
    Identity {
        principal: Principal {
            user_id: UserId::new(),
            role,
            teams: teams.to_vec(),
            managed_teams: managed.to_vec(),
            managed_users: managed_users.to_vec(),
        },
        username: name.into(),
        display_name: name.into(),
    }
}

impl Org {
    pub fn new() -> Self {
        let team = TeamId::new();
        let rep = identity(Role::Rep, "rep", &[team], &[], &[]);
        let rep2 = identity(Role::Rep, "rep2", &[team], &[], &[]);
        let manager = identity(
            Role::Manager,
            "manager",
            &[team],
            &[team],
            &[rep.principal.user_id, rep2.principal.user_id],
        );
        let admin = identity(Role::Admin, "admin", &[], &[], &[]);
        Org {
            team,
            rep,
            rep2,
            manager,
            admin,
        }
    }
}

/// A clock the test moves by hand.
pub struct TestClock(pub Arc<AtomicI64>);

impl TestClock {
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

pub fn open(path: &std::path::Path, who: &Identity) -> (Replica, TestClock) {
    let now = Arc::new(AtomicI64::new(T0));
    let n = now.clone();
    let replica = Replica::open_with(
        path,
        ReplicaOptions {
            clock: Arc::new(move || n.load(Ordering::SeqCst)),
            cached_documents: 16,
        },
    )
    .unwrap();
    replica.set_identity(who.clone()).unwrap();
    (replica, TestClock(now))
}

/// Applies an edit to a bare document on some authority (the server's, in these tests).
pub fn apply(doc: &mut Automerge, edit: &Edit, who: &Principal, authority: Authority) {
    let before = doc.get_heads();
    let mut tx = doc.transaction();
    edit.apply(&mut tx, who.user_id, T0).unwrap();
    tx.commit_with(CommitOptions::default().with_time(T0));
    let catalog = None;
    validate_change(
        &WriteContext {
            principal: who,
            doc_id: edit.doc,
            authority,
            catalog,
        },
        doc,
        &before,
    )
    .unwrap();
}

/// A catalog with base currency CNY, one tax class and `n` products.
pub fn catalog(admin: &Principal, n: usize) -> (Automerge, Vec<ProductId>) {
    let mut cat = doc::skeleton(&DocId::Catalog).unwrap();
    cat.set_actor(ActorId::random());
    apply(
        &mut cat,
        &ops::set_base_currency(Currency::CNY),
        admin,
        Authority::Device,
    );
    apply(
        &mut cat,
        &ops::set_tax_class("standard", "VAT 13%", 1300),
        admin,
        Authority::Device,
    );
    let mut ids = Vec::new();
    for i in 0..n {
        let id = ProductId::new();
        let snapshot = Reader::new(&cat).catalog().unwrap();
        let input = ops::ProductInput {
            sku: format!("SKU-{i:04}"),
            name: format!("Product {i} 产品"),
            category: Some("tea".into()),
            unit: "box".into(),
            base_price_minor: 1000 + i as i64,
            tax_class: "standard".into(),
            active: true,
        };
        apply(
            &mut cat,
            &ops::upsert_product(id, &input, &snapshot).unwrap(),
            admin,
            Authority::Device,
        );
        ids.push(id);
    }
    (cat, ids)
}
