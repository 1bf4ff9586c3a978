//! `fieldline-bench`: Fieldline's benchmarks. Prints one JSON object per line
//! (`{"scenario", "metric", "value", "unit"}`) on stdout; progress goes to stderr.
//!
//! ```text
//! cargo run --release -p fieldline-tests --bin fieldline-bench -- client
//! cargo run --release -p fieldline-tests --bin fieldline-bench -- server
//! ```

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "fieldline-bench",
    about = "Fieldline benchmarks (JSON lines on stdout)"
)]
struct Cli {
    #[command(subcommand)]
    suite: Suite,
}

#[derive(Subcommand)]
enum Suite {
    /// The phone replica: 2,000 accounts × (3 contacts, 20 visits, 5 orders of 5 lines).
    Client {
        #[arg(long, default_value_t = 2000)]
        accounts: usize,
    },
    /// The sync server: initial sync, empty sync, 200 reps, memory with 100,000 accounts.
    Server {
        #[arg(long, default_value_t = 2000)]
        accounts: usize,
        #[arg(long, default_value_t = 200)]
        reps: usize,
        #[arg(long, default_value_t = 100_000)]
        stored_accounts: usize,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().suite {
        Suite::Client { accounts } => fieldline_tests::bench::client::run(accounts),
        Suite::Server {
            accounts,
            reps,
            stored_accounts,
        } => fieldline_tests::bench::server::run(accounts, reps, stored_accounts),
    }
}
