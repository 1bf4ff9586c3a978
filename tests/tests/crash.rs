//! Durability: a child process logs visits in a loop and is killed with SIGKILL at random
//! moments, many times over. After each kill the replica reopens, every visit whose call had
//! returned is there, and the projection matches the documents.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fieldline_client_core::Replica;
use fieldline_protocol::access::Principal;
use fieldline_protocol::ids::*;
use fieldline_protocol::model::{Role, Visibility};
use fieldline_protocol::money::Currency;
use fieldline_protocol::ops::AccountInput;
use fieldline_protocol::wire::Identity;

/// A small deterministic generator for kill delays (no external RNG needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn every_acknowledged_visit_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rep.db");
    let team = TeamId::new();
    let identity = Identity {
        principal: Principal {
            user_id: UserId::new(),
            role: Role::Rep,
            teams: vec![team],
            managed_teams: vec![],
            managed_users: vec![],
        },
        username: "rep".into(),
        display_name: "Rep".into(),
    };
    let identity_file = dir.path().join("identity.json");
    std::fs::write(&identity_file, serde_json::to_string(&identity).unwrap()).unwrap();
    let account = {
        let r = Replica::open(&db).unwrap();
        r.set_identity(identity.clone()).unwrap();
        r.create_account(
            &AccountInput::named("Crash Test Co", Currency::CNY),
            Visibility::Private,
            "",
            &[],
        )
        .unwrap()
    };

    let mut acknowledged: BTreeSet<VisitId> = BTreeSet::new();
    let mut rng = Lcg(0x5eed);
    let runs = 30;
    for run in 0..runs {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
            .arg(&db)
            .arg(&identity_file)
            .arg(account.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            // Only complete lines count: a line cut by the kill was never acknowledged.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(id) = line.strip_prefix("ok ") {
                    let _ = tx.send(VisitId::parse(id).unwrap());
                }
            }
        });
        // Wait for the child to get going, then kill it at a random moment.
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the writer started");
        acknowledged.insert(first);
        std::thread::sleep(Duration::from_millis(rng.next(120)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        reader.join().unwrap();
        acknowledged.extend(rx.try_iter());

        // Reopen: everything acknowledged is there, projection and documents agree.
        let r = Replica::open(&db).unwrap();
        let visits: BTreeSet<VisitId> = r
            .visits(account)
            .unwrap()
            .into_iter()
            .map(|v| v.id)
            .collect();
        let missing: Vec<_> = acknowledged.difference(&visits).collect();
        assert!(
            missing.is_empty(),
            "run {run}: {} acknowledged visits lost: {missing:?}",
            missing.len()
        );
        let projected = r.projection_fingerprint().unwrap();
        r.rebuild_projection(&mut |_, _| {}).unwrap();
        assert_eq!(
            r.projection_fingerprint().unwrap(),
            projected,
            "run {run}: projection drifted from the documents"
        );
    }
    assert!(
        acknowledged.len() > runs,
        "the writer made progress ({} visits)",
        acknowledged.len()
    );
    // Every acknowledged visit is also waiting in the outbox for the server.
    let r = Replica::open(&db).unwrap();
    assert!(r.pending_changes().unwrap() as usize > acknowledged.len());
}
