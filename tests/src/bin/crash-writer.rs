//! Child process of the crash test: logs visits on one account in a loop and prints
//! `ok <visit id>` after each call returns. The parent kills it with SIGKILL at random
//! moments and checks that every printed visit survived.

#![forbid(unsafe_code)]

use std::io::Write;

use fieldline_client_core::Replica;
use fieldline_protocol::ids::AccountId;
use fieldline_protocol::ops::VisitReport;
use fieldline_protocol::wire::Identity;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(db), Some(identity), Some(account)) = (args.next(), args.next(), args.next()) else {
        anyhow::bail!("usage: crash-writer <replica.db> <identity.json> <account id>");
    };
    let identity: Identity = serde_json::from_str(&std::fs::read_to_string(identity)?)?;
    let account = AccountId::parse(&account)?;
    let replica = Replica::open(&db)?;
    replica.set_identity(identity)?;
    let mut out = std::io::stdout().lock();
    let mut n = 0u64;
    loop {
        n += 1;
        let report = VisitReport {
            outcome: Some(format!("visit {n}")),
            notes: Some("x".repeat((n % 50) as usize)),
            ..Default::default()
        };
        let visit = replica.log_visit(account, None, Some("crash test"), &report)?;
        writeln!(out, "ok {visit}")?;
        out.flush()?;
    }
}
