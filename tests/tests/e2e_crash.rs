//! The server killed with SIGKILL in the middle of syncs, again and again: every write it
//! acknowledged survives and all replicas converge.

use std::time::Duration;

use fieldline_protocol::model::*;
use fieldline_protocol::money::Currency;
use fieldline_protocol::ops::{AccountInput, VisitReport};
use fieldline_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_server_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(&dir.path().join("server")).unwrap();
    let org = Org::create(&server.base).await.unwrap();
    let mut devices = vec![
        Device::open(dir.path(), "rep_a", &org.rep_a).unwrap(),
        Device::open(dir.path(), "rep_b", &org.rep_b).unwrap(),
        Device::open(dir.path(), "manager", &org.manager).unwrap(),
    ];
    for d in &devices {
        d.sync().await.unwrap();
    }
    let account = devices[0]
        .replica
        .create_account(
            &AccountInput::named("Crash Co", Currency::CNY),
            Visibility::Team,
            "",
            &[],
        )
        .unwrap();
    for d in &devices {
        d.sync().await.unwrap();
    }
    let mut logged = Vec::new();
    let mut seed = 7u64;
    let kills = 25;
    for round in 0..kills {
        // Everyone records something, then syncs while the server is killed underneath.
        for d in &devices {
            for _ in 0..3 {
                logged.push(
                    d.replica
                        .log_visit(
                            account,
                            None,
                            Some(&format!("round {round}")),
                            &VisitReport::default(),
                        )
                        .unwrap(),
                );
            }
        }
        let mut tasks = Vec::new();
        for d in &devices {
            let (client, replica) = (d.client.clone(), d.replica.clone());
            tasks.push(tokio::spawn(async move {
                client.sync(&replica, &|_| {}).await.is_ok()
            }));
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        tokio::time::sleep(Duration::from_millis((seed >> 33) % 60)).await;
        server.kill9();
        for t in tasks {
            let _ = t.await;
        }
        server.restart().unwrap();
        for d in &mut devices {
            d.repoint(&server.base).unwrap();
        }
    }
    // Back to normal: a few rounds for everyone.
    for _ in 0..2 {
        for d in &devices {
            d.sync().await.unwrap();
        }
    }
    let reference = devices[0].replica.visits(account).unwrap();
    assert_eq!(
        reference.len(),
        logged.len(),
        "every visit recorded anywhere is there, once"
    );
    for v in &logged {
        assert_eq!(reference.iter().filter(|x| x.id == *v).count(), 1);
    }
    for d in &devices {
        let mine = d.replica.visits(account).unwrap();
        let missing: Vec<_> = reference
            .iter()
            .filter(|v| !mine.iter().any(|m| m.id == v.id))
            .map(|v| (v.id, v.purpose.clone(), v.created_by))
            .collect();
        assert!(
            missing.is_empty(),
            "{} lacks {} of {} visits: {missing:?}",
            d.name,
            missing.len(),
            reference.len()
        );
        assert_eq!(mine, reference, "{} converged", d.name);
        assert_eq!(
            d.replica.pending_changes().unwrap(),
            0,
            "{} has nothing left to send",
            d.name
        );
        assert!(d.replica.parked_writes().unwrap().is_empty());
    }
    // The server's own view agrees.
    let view = Api::new(&server.base)
        .ok(
            "GET",
            &format!("/v1/accounts/{account}"),
            &org.manager.access,
            None,
        )
        .await
        .unwrap();
    assert_eq!(view["visits"].as_array().unwrap().len(), logged.len());
}
