//! `fieldline-server`: the command line. `serve` runs the server, `demo` runs it with a demo
//! organisation seeded into an empty database, `create-user` adds a user (the first admin).

#![forbid(unsafe_code)]

use std::io::{IsTerminal, Read, Write};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use fieldline_protocol::model::Role;
use fieldline_server::config::{Config, Flags};
use fieldline_server::store::{Membership, NewUser};

#[derive(Parser)]
#[command(name = "fieldline-server", version, about = "Fieldline sync server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        #[command(flatten)]
        flags: Flags,
        /// Seed a demo organisation if the database is empty.
        #[arg(long)]
        demo: bool,
    },
    /// Run the server with demo data a newcomer can try at once (same as `serve --demo`).
    Demo {
        #[command(flatten)]
        flags: Flags,
    },
    /// Create a user, for example the first admin. The password is read from the
    /// FIELDLINE_NEW_PASSWORD environment variable or from standard input.
    CreateUser {
        #[command(flatten)]
        flags: Flags,
        #[arg(long)]
        username: String,
        #[arg(long)]
        display_name: Option<String>,
        /// rep, manager or admin
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Name of a team to put the user in (created if missing).
        #[arg(long)]
        team: Option<String>,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).map_err(|e| e.to_string())
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,tower_http=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down");
}

async fn run_server(flags: Flags, demo: bool) -> anyhow::Result<()> {
    let config = Config::resolve(&flags)?;
    init_logging(config.log_json);
    let addr = config.addr;
    let db = config.database_path();
    let state = fieldline_server::build(config).context("starting the server")?;
    let mut out = std::io::stdout();
    writeln!(out, "Fieldline server {}", env!("CARGO_PKG_VERSION"))?;
    writeln!(out, "  database: {}", db.display())?;
    if demo {
        let engine = state.engine.clone();
        let signins = tokio::task::spawn_blocking(move || {
            fieldline_server::seed::seed_demo(&engine, &mut |line| {
                let _ = writeln!(std::io::stdout(), "  {line}");
            })
        })
        .await??;
        if signins.is_empty() {
            writeln!(
                out,
                "  demo: the database already has users; nothing seeded"
            )?;
        } else {
            writeln!(
                out,
                "  demo organisation seeded. Sign in with any of these (password: {}):",
                fieldline_server::demo::DEMO_PASSWORD
            )?;
            for s in &signins {
                writeln!(
                    out,
                    "    {:<18} {:<8} {:<22} {}",
                    s.username,
                    s.role.as_str(),
                    s.team.as_deref().unwrap_or("-"),
                    s.display_name
                )?;
            }
        }
    } else if state.store.users()?.is_empty() {
        writeln!(
            out,
            "  no users yet: create an admin with `fieldline-server create-user --role admin --username admin`"
        )?;
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    writeln!(out, "listening on http://{local}")?;
    writeln!(
        out,
        "  try: curl http://{local}/healthz   ·   API: http://{local}/v1/openapi.json"
    )?;
    out.flush()?;
    fieldline_server::serve(state, listener, shutdown_signal()).await?;
    Ok(())
}

fn create_user(
    flags: Flags,
    username: String,
    display_name: Option<String>,
    role: Role,
    team: Option<String>,
) -> anyhow::Result<()> {
    let config = Config::resolve(&flags)?;
    init_logging(config.log_json);
    let password = match std::env::var("FIELDLINE_NEW_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            if std::io::stdin().is_terminal() {
                eprint!("password for {username}: ");
            }
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    fieldline_server::auth::check_password_policy(&password)?;
    let state = fieldline_server::build(config)?;
    let store = state.store.clone();
    if store.user_by_username(&username)?.is_some() {
        bail!("a user named {username} already exists");
    }
    let id = fieldline_protocol::ids::UserId::new();
    store.insert_user(&NewUser {
        id,
        username: username.clone(),
        display_name: display_name.unwrap_or_else(|| username.clone()),
        role,
        password_hash: Some(fieldline_server::auth::hash_password(&password)?),
        created_at: fieldline_server::app::now_ms(),
    })?;
    if let Some(name) = team {
        let teams = store.teams()?;
        let team_id = match teams.iter().find(|t| t.name.eq_ignore_ascii_case(&name)) {
            Some(t) => t.id,
            None => {
                let t = fieldline_protocol::ids::TeamId::new();
                store.insert_team(t, &name)?;
                t
            }
        };
        store.set_membership(team_id, id, Membership::Member, true)?;
        if role == Role::Manager {
            store.set_membership(team_id, id, Membership::Manager, true)?;
        }
    }
    state.engine.ensure_doc(
        fieldline_protocol::ids::DocId::User(id),
        fieldline_server::app::now_ms(),
    )?;
    println!("created {} {username} ({id})", role.as_str());
    Ok(())
}

/// The server's runtime. Storage and document work runs on the blocking pool; capping it
/// bounds memory and keeps a burst of requests queueing instead of spawning hundreds of
/// threads (the store allows 8 readers and 1 writer at a time anyway).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(32)
        .build()
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::CreateUser {
            flags,
            username,
            display_name,
            role,
            team,
        } => create_user(flags, username, display_name, role, team),
        Command::Serve { flags, demo } => runtime()?.block_on(run_server(flags, demo)),
        Command::Demo { flags } => runtime()?.block_on(run_server(flags, true)),
    }
}
