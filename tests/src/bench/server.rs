//! Server benchmarks: a rep's initial sync of 2,000 accounts, a sync with nothing new, 200
//! simulated reps uploading a visit and pulling, and server memory with 100,000 stored
//! accounts while those 200 reps sync.
//!
//! The database is seeded through the server library (the same engine the API uses), then
//! the real `fieldline-server` binary serves it; clients are real replicas with the real
//! transport, over loopback.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use fieldline_client_core::Replica;
use fieldline_client_transport::{ClientConfig, SharedToken, SyncClient};
use fieldline_protocol::ids::{DocId, UserId};
use fieldline_protocol::model::Role;
use fieldline_protocol::ops::VisitReport;
use fieldline_server::auth::{TokenIssuer, load_or_create_hs256_secret};
use fieldline_server::demo::{self, DemoData, DemoSpec};
use fieldline_server::engine::Engine;
use fieldline_server::metrics::Metrics;
use fieldline_server::store::sqlite::SqliteStore;
use fieldline_server::store::{Membership, NewUser, Store};

use super::{now_ms, progress, report, report_latencies};
use crate::TestServer;

/// Stores a generated organisation and its documents into a server database.
fn seed(data_dir: &Path, orgs: &[&DemoData]) -> Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(data_dir.join("fieldline.db"))?);
    let engine = Engine::new(store.clone(), 64, Arc::new(Metrics::default()));
    let now = now_ms();
    for data in orgs {
        for t in &data.teams {
            store.insert_team(t.id, &format!("{} {}", t.name, t.id))?;
        }
        for u in &data.users {
            // Unique across the seeded organisations (a UUIDv7 ends in its random part).
            let id = u.id.to_string();
            let username = format!("{}-{}", u.username, &id[id.len() - 12..]);
            store.insert_user(&NewUser {
                id: u.id,
                username,
                display_name: u.display_name.clone(),
                role: u.role,
                password_hash: None,
                created_at: now,
            })?;
            for t in &u.teams {
                store.set_membership(*t, u.id, Membership::Member, true)?;
            }
            for t in &u.manages {
                store.set_membership(*t, u.id, Membership::Manager, true)?;
            }
        }
        engine.import_doc(DocId::Catalog, &data.catalog, None, now)?;
        let total = data.accounts.len();
        for (i, (id, doc)) in data.accounts.iter().enumerate() {
            engine.import_doc(DocId::Account(*id), doc, None, now)?;
            if (i + 1) % 10_000 == 0 {
                progress(&format!("  stored {}/{total} accounts", i + 1));
            }
        }
        for (id, doc) in &data.user_docs {
            engine.import_doc(DocId::User(*id), doc, None, now)?;
        }
    }
    Ok(())
}

fn issuer(data_dir: &Path) -> Result<TokenIssuer> {
    let secret = load_or_create_hs256_secret(&data_dir.join("token-signing-key"))?;
    Ok(TokenIssuer::new(
        secret,
        "fieldline",
        "fieldline-sync",
        3600,
    )?)
}

struct Rep {
    replica: Arc<Replica>,
    client: SyncClient,
}

fn rep(dir: &Path, base: &str, issuer: &TokenIssuer, user: UserId) -> Result<Rep> {
    let (token, _) = issuer.issue_access(user, Role::Rep, now_ms() / 1000)?;
    let replica = Arc::new(Replica::open(dir.join(format!("{user}.db")))?);
    let client = SyncClient::new(
        ClientConfig::new(base),
        Arc::new(SharedToken::with_token(token)),
    )?;
    Ok(Rep { replica, client })
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics")).await.ok();
    let text = match text {
        Some(r) => r.text().await.unwrap_or_default(),
        None => String::new(),
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

pub fn run(accounts: usize, reps: usize, stored: usize) -> Result<()> {
    fieldline_client_transport::ensure_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        initial_and_empty_sync(accounts).await?;
        // The same reps on a server storing only their accounts, then `stored`: memory and
        // per-round cost should not follow the number of stored documents.
        many_reps(reps, reps * 10).await?;
        many_reps(reps, stored).await
    })
}

/// One rep with `accounts` accounts (3 contacts, 20 visits, 5 orders × 5 lines each).
async fn initial_and_empty_sync(accounts: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("server");
    progress(&format!(
        "seeding a server with one rep owning {accounts} accounts"
    ));
    let data = demo::generate(&DemoSpec::single_rep(accounts, 3, 20, 5, 5, now_ms()))?;
    seed(&data_dir, &[&data])?;
    let rep_id = data
        .users
        .iter()
        .find(|u| u.role == Role::Rep)
        .context("a rep")?
        .id;
    drop(data);
    let issuer = issuer(&data_dir)?;
    let server = TestServer::start_existing(&data_dir, &[])?;
    let r = rep(dir.path(), &server.base, &issuer, rep_id)?;

    let started = Instant::now();
    let s = r.client.sync(&r.replica, &|_| {}).await?;
    let took = started.elapsed();
    report(
        "server.initial_sync_2000_accounts",
        "seconds",
        took.as_secs_f64(),
        "s",
    );
    report(
        "server.initial_sync_2000_accounts",
        "bytes_received",
        s.bytes_received as f64 / 1e6,
        "MB",
    );
    report(
        "server.initial_sync_2000_accounts",
        "bytes_sent",
        s.bytes_sent as f64,
        "bytes",
    );
    report(
        "server.initial_sync_2000_accounts",
        "rounds",
        s.rounds as f64,
        "count",
    );
    report(
        "server.initial_sync_2000_accounts",
        "documents",
        s.documents_received as f64,
        "count",
    );
    report(
        "server.initial_sync_2000_accounts",
        "accounts_on_device",
        r.replica.account_count()? as f64,
        "count",
    );

    // Nothing new: bytes each way, client round trip, server time per round.
    let rounds_before = metric(&server.base, "fieldline_sync_rounds_total").await;
    let micros_before = metric(&server.base, "fieldline_sync_seconds_total").await;
    let mut latencies = Vec::new();
    let (mut sent, mut received) = (0, 0);
    let n = 200;
    for _ in 0..n {
        let started = Instant::now();
        let s = r.client.sync(&r.replica, &|_| {}).await?;
        latencies.push(started.elapsed());
        sent = s.bytes_sent;
        received = s.bytes_received;
    }
    let rounds = metric(&server.base, "fieldline_sync_rounds_total").await - rounds_before;
    let micros = metric(&server.base, "fieldline_sync_seconds_total").await - micros_before;
    report("server.empty_sync", "request_bytes", sent as f64, "bytes");
    report(
        "server.empty_sync",
        "response_bytes",
        received as f64,
        "bytes",
    );
    report(
        "server.empty_sync",
        "server_time_per_round",
        micros / rounds.max(1.0) / 1000.0,
        "ms",
    );
    report(
        "server.empty_sync",
        "documents_loaded_by_server",
        metric(&server.base, "fieldline_document_loads_total").await,
        "count",
    );
    report_latencies("server.empty_sync_round_trip", &mut latencies);
    Ok(())
}

/// `reps` reps with 10 accounts each, on a server that stores `stored` accounts in all (the
/// rest belong to a rep who is not syncing). Scenario names carry the stored count, so runs
/// at two sizes compare side by side.
async fn many_reps(reps: usize, stored: usize) -> Result<()> {
    let name = |what: &str| format!("server.stored_{stored}.{what}");
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("server");
    let teams = (reps / 20).max(1);
    let mut spec = DemoSpec::single_rep(reps * 10, 1, 2, 1, 2, now_ms());
    spec.teams = teams;
    spec.reps_per_team = reps / teams;
    spec.seed ^= 0x5eed;
    progress(&format!(
        "generating {} reps with 10 accounts each",
        spec.teams * spec.reps_per_team
    ));
    let active = demo::generate(&spec)?;
    let dormant_accounts = stored.saturating_sub(active.accounts.len());
    let mut dormant_spec = DemoSpec::single_rep(dormant_accounts, 0, 0, 0, 0, now_ms());
    dormant_spec.seed ^= 0xd0_4a_a7;
    // Nobody syncs these: they are private to their owner, so they are pure storage.
    dormant_spec.shared = false;
    let dormant = if dormant_accounts > 0 {
        progress(&format!(
            "generating {dormant_accounts} more accounts of a rep who is not syncing"
        ));
        Some(demo::generate_with_progress(
            &dormant_spec,
            &mut |done, total| {
                if done % 20_000 == 0 {
                    progress(&format!("  generated {done}/{total}"));
                }
            },
        )?)
    } else {
        None
    };
    progress("storing");
    let started = Instant::now();
    let mut orgs = vec![&active];
    orgs.extend(dormant.as_ref());
    seed(&data_dir, &orgs)?;
    report(
        &name("storage"),
        "seed_seconds",
        started.elapsed().as_secs_f64(),
        "s",
    );
    let total = active.accounts.len() + dormant.as_ref().map_or(0, |d| d.accounts.len());
    report(&name("storage"), "stored_accounts", total as f64, "count");
    let db_bytes = std::fs::metadata(data_dir.join("fieldline.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    report(&name("storage"), "database", db_bytes as f64 / 1e6, "MB");
    let rep_ids: Vec<UserId> = active
        .users
        .iter()
        .filter(|u| u.role == Role::Rep)
        .map(|u| u.id)
        .collect();
    drop(orgs);
    drop(active);
    drop(dormant);
    let issuer = issuer(&data_dir)?;
    let server = TestServer::start_existing(&data_dir, &["--requests-per-minute", "100000"])?;
    let pid = server.pid().context("server pid")?;
    report(
        &name("memory"),
        "rss_idle_after_start",
        rss_kib(pid).0 as f64 / 1024.0,
        "MiB",
    );

    let mut clients = Vec::new();
    for id in &rep_ids {
        clients.push(Arc::new(rep(dir.path(), &server.base, &issuer, *id)?));
    }
    // Every rep's first sync (their own accounts and those shared with them), all at once.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in &clients {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.client
                .sync(&c.replica, &|_| {})
                .await
                .map(|s| s.documents_received)
        }));
    }
    let mut docs_received = 0usize;
    for t in tasks {
        docs_received += t.await??;
    }
    report(
        &name("reps_first_sync"),
        "seconds_all",
        started.elapsed().as_secs_f64(),
        "s",
    );
    report(
        &name("reps_first_sync"),
        "mean_documents_per_rep",
        docs_received as f64 / clients.len() as f64,
        "count",
    );

    // One rep alone: what a round costs without queueing behind 199 others.
    {
        let c = &clients[0];
        let me = c.replica.identity().context("signed in")?.principal.user_id;
        let summaries = c.replica.accounts_by_name(1000, 0)?;
        let account = summaries
            .into_iter()
            .find(|a| a.owner == me)
            .map(|a| a.id)
            .context("an own account")?;
        let rounds_before = metric(&server.base, "fieldline_sync_rounds_total").await;
        let micros_before = metric(&server.base, "fieldline_sync_seconds_total").await;
        let mut lat = Vec::new();
        for _ in 0..50 {
            c.replica
                .log_visit(account, None, Some("bench"), &VisitReport::default())?;
            let t = Instant::now();
            c.client.sync(&c.replica, &|_| {}).await?;
            lat.push(t.elapsed());
        }
        let rounds = metric(&server.base, "fieldline_sync_rounds_total").await - rounds_before;
        let micros = metric(&server.base, "fieldline_sync_seconds_total").await - micros_before;
        let scenario = name("one_rep_visit_and_sync");
        report(
            &scenario,
            "server_time_per_round",
            micros / rounds.max(1.0) / 1000.0,
            "ms",
        );
        report_latencies(&scenario, &mut lat);
    }

    // Then each rep logs a visit and syncs, several times, all reps at once; the server's
    // memory is sampled meanwhile.
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let s2 = sampling.clone();
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        while s2.load(std::sync::atomic::Ordering::Relaxed) {
            peak = peak.max(rss_kib(pid).0);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak
    });
    let rounds_before = metric(&server.base, "fieldline_sync_rounds_total").await;
    let micros_before = metric(&server.base, "fieldline_sync_seconds_total").await;
    let rounds_per_rep = 5;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in &clients {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let me = c.replica.identity().context("signed in")?.principal.user_id;
            let account = c
                .replica
                .accounts_by_name(1000, 0)?
                .into_iter()
                .find(|a| a.owner == me)
                .map(|a| a.id)
                .context("an own account")?;
            let mut lat = Vec::new();
            for _ in 0..rounds_per_rep {
                c.replica
                    .log_visit(account, None, Some("bench"), &VisitReport::default())?;
                let t = Instant::now();
                c.client.sync(&c.replica, &|_| {}).await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let wall = started.elapsed();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await?;
    let rounds = metric(&server.base, "fieldline_sync_rounds_total").await - rounds_before;
    let micros = metric(&server.base, "fieldline_sync_seconds_total").await - micros_before;
    let syncs = latencies.len();
    let scenario = name("reps_visit_and_sync");
    report(&scenario, "reps", clients.len() as f64, "count");
    report(
        &scenario,
        "syncs_per_second",
        syncs as f64 / wall.as_secs_f64(),
        "syncs/s",
    );
    report(
        &scenario,
        "server_time_per_round",
        micros / rounds.max(1.0) / 1000.0,
        "ms",
    );
    report_latencies(&scenario, &mut latencies);
    report(
        &name("memory"),
        "rss_peak_while_reps_sync",
        peak as f64 / 1024.0,
        "MiB",
    );
    let (rss, hwm) = rss_kib(pid);
    report(&name("memory"), "rss_after", rss as f64 / 1024.0, "MiB");
    report(
        &name("memory"),
        "rss_high_water_mark",
        hwm as f64 / 1024.0,
        "MiB",
    );
    report(
        &name("memory"),
        "documents_loaded_now",
        metric(&server.base, "fieldline_documents_loaded").await,
        "count",
    );
    let pending: i64 = clients
        .iter()
        .map(|c| c.replica.pending_changes().unwrap_or(-1))
        .sum();
    report(
        &name("memory"),
        "pending_after_all_syncs",
        pending as f64,
        "count",
    );
    Ok(())
}
