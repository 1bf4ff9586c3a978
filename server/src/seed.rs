//! Seeding a server with the demo organisation (see [`crate::demo`]) so a newcomer can sign
//! in and sync at once. Only ever seeds an empty database.

use fieldline_protocol::ids::DocId;
use fieldline_protocol::model::Role;

use crate::app::now_ms;
use crate::demo::{self, DEMO_PASSWORD, DemoSpec};
use crate::engine::Engine;
use crate::store::{Membership, NewUser};
use crate::{Result, auth};

/// A sign-in to print for the newcomer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignIn {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub team: Option<String>,
}

/// Seeds the demo organisation if the database has no users; returns the sign-ins (empty
/// when the database was already in use). `progress` gets short status lines.
pub fn seed_demo(engine: &Engine, progress: &mut dyn FnMut(&str)) -> Result<Vec<SignIn>> {
    let store = engine.store();
    if !store.users()?.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    progress("generating demo data");
    let mut last = 0;
    let data = demo::generate_with_progress(&DemoSpec::demo(now), &mut |done, total| {
        if done * 10 / total.max(1) != last {
            last = done * 10 / total.max(1);
            progress(&format!("  accounts {done}/{total}"));
        }
    })?;
    progress("storing organisation");
    for t in &data.teams {
        store.insert_team(t.id, &t.name)?;
    }
    // Every demo user shares one password: hash it once.
    let hash = auth::hash_password(DEMO_PASSWORD)?;
    for u in &data.users {
        store.insert_user(&NewUser {
            id: u.id,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: u.role,
            password_hash: Some(hash.clone()),
            created_at: now,
        })?;
        for t in &u.teams {
            store.set_membership(*t, u.id, Membership::Member, true)?;
        }
        for t in &u.manages {
            store.set_membership(*t, u.id, Membership::Manager, true)?;
        }
    }
    progress("storing documents");
    engine.import_doc(DocId::Catalog, &data.catalog, None, now)?;
    for (id, doc) in &data.accounts {
        engine.import_doc(DocId::Account(*id), doc, None, now)?;
    }
    for (id, doc) in &data.user_docs {
        engine.import_doc(DocId::User(*id), doc, None, now)?;
    }
    Ok(data
        .users
        .iter()
        .map(|u| SignIn {
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: u.role,
            team: u
                .teams
                .first()
                .and_then(|t| data.teams.iter().find(|x| x.id == *t))
                .map(|t| t.name.clone()),
        })
        .collect())
}
