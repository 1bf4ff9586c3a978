//! Test kit for Fieldline's end-to-end tests and benchmarks: start the real
//! `fieldline-server` binary on a loopback port, kill it with SIGKILL and restart it, set up
//! an organisation through its API, and open client replicas.
//!
//! Nothing here mocks anything: tests drive the same binary and the same client code a
//! deployment runs.

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use fieldline_protocol::ids::{TeamId, UserId};
use serde_json::{Value, json};

/// The directory cargo builds into (the one holding this test's executable).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // …/target/<profile>/deps/<test> or …/target/<profile>/<bin>
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// The server binary next to this executable, (re)built once per test process so a test
/// never runs a stale server (`cargo build` is a quick no-op when it is up to date).
pub fn server_binary() -> Result<PathBuf> {
    static BUILT: std::sync::OnceLock<std::result::Result<PathBuf, String>> =
        std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let path =
                target_dir().join(format!("fieldline-server{}", std::env::consts::EXE_SUFFIX));
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args([
                "build",
                "-q",
                "-p",
                "fieldline-server",
                "--bin",
                "fieldline-server",
            ]);
            // Build where this executable was built, whatever the environment says.
            if let Some(root) = target_dir().parent() {
                cmd.arg("--target-dir").arg(root);
            }
            if target_dir().ends_with("release") {
                cmd.arg("--release");
            }
            match cmd.status() {
                Ok(s) if s.success() && path.exists() => Ok(path),
                Ok(s) => Err(format!("building fieldline-server failed ({s})")),
                Err(e) => Err(format!("cannot run cargo to build fieldline-server: {e}")),
            }
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// A running `fieldline-server` process on a loopback port.
pub struct TestServer {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    extra: Vec<String>,
    demo: bool,
}

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

impl TestServer {
    /// Starts a server on an empty data directory with one admin (`admin` /
    /// [`ADMIN_PASSWORD`]).
    pub fn start(data_dir: &Path) -> Result<TestServer> {
        Self::create_admin(data_dir)?;
        Self::spawn(data_dir, false, Vec::new())
    }

    /// Starts a server seeded with the demo organisation.
    pub fn start_demo(data_dir: &Path) -> Result<TestServer> {
        Self::spawn(data_dir, true, Vec::new())
    }

    /// Starts on a data directory prepared elsewhere (no admin is created).
    pub fn start_existing(data_dir: &Path, extra: &[&str]) -> Result<TestServer> {
        Self::spawn(
            data_dir,
            false,
            extra.iter().map(|s| s.to_string()).collect(),
        )
    }

    /// The server's process ID (for reading its memory use).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts with extra command-line settings.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Result<TestServer> {
        Self::create_admin(data_dir)?;
        Self::spawn(
            data_dir,
            false,
            extra.iter().map(|s| s.to_string()).collect(),
        )
    }

    /// The ID of the admin created by [`TestServer::start`] (`created admin admin (<id>)`).
    pub fn admin_id(data_dir: &Path) -> Result<UserId> {
        let text = std::fs::read_to_string(data_dir.join("admin-id"))?;
        Ok(UserId::parse(text.trim())?)
    }

    fn create_admin(data_dir: &Path) -> Result<()> {
        std::fs::create_dir_all(data_dir)?;
        let out = Command::new(server_binary()?)
            .args([
                "create-user",
                "--role",
                "admin",
                "--username",
                "admin",
                "--data-dir",
            ])
            .arg(data_dir)
            .env("FIELDLINE_NEW_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .output()?;
        if !out.status.success() {
            bail!(
                "create-user failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let id = stdout
            .rsplit('(')
            .next()
            .and_then(|s| s.split(')').next())
            .unwrap_or_default();
        std::fs::write(data_dir.join("admin-id"), id)?;
        Ok(())
    }

    fn spawn(data_dir: &Path, demo: bool, extra: Vec<String>) -> Result<TestServer> {
        let mut cmd = Command::new(server_binary()?);
        cmd.arg(if demo { "demo" } else { "serve" })
            .args(["--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(&extra)
            .env(
                "RUST_LOG",
                std::env::var("FIELDLINE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().context("starting fieldline-server")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = mpsc::channel();
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout)
                .lines()
                .map_while(std::result::Result::ok)
            {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                bail!("fieldline-server did not start listening");
            }
        };
        Ok(TestServer {
            child: Some(child),
            base,
            data_dir: data_dir.to_owned(),
            extra,
            demo,
        })
    }

    /// Kills the process with SIGKILL: no shutdown, no flush.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills and starts again on the same data (a new port: read [`TestServer::base`]).
    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        let next = Self::spawn(&self.data_dir, false, self.extra.clone())?;
        self.base = next.base.clone();
        self.child = next.into_child();
        let _ = self.demo;
        Ok(())
    }

    fn into_child(mut self) -> Option<Child> {
        self.child.take()
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A signed-in user of the JSON API.
#[derive(Clone, Debug)]
pub struct Session {
    pub base: String,
    pub access: String,
    pub refresh: String,
    pub user_id: UserId,
}

/// Small JSON client for the manager and admin API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        // reqwest is built with rustls and the ring provider: install it once.
        fieldline_client_transport::ensure_crypto_provider();
        Api {
            base: base.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<Session> {
        let (status, v) = self
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({ "username": username, "password": password })),
            )
            .await?;
        if status != 200 {
            bail!("login {username}: {status} {v}");
        }
        Ok(Session {
            base: self.base.clone(),
            access: v["access_token"].as_str().unwrap_or_default().to_owned(),
            refresh: v["refresh_token"].as_str().unwrap_or_default().to_owned(),
            user_id: UserId::parse(v["user"]["id"].as_str().unwrap_or_default())?,
        })
    }

    /// Any JSON call: returns the status and the body (JSON, or `null`).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method.parse()?, &url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, v))
    }

    /// A call that must succeed (2xx).
    pub async fn ok(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let (status, v) = self.call(method, path, Some(token), body).await?;
        if !(200..300).contains(&status) {
            bail!("{method} {path}: {status} {v}");
        }
        Ok(v)
    }

    pub async fn create_team(&self, admin: &Session, name: &str) -> Result<TeamId> {
        let v = self
            .ok(
                "POST",
                "/v1/teams",
                &admin.access,
                Some(json!({ "name": name })),
            )
            .await?;
        Ok(TeamId::parse(v["team"]["id"].as_str().unwrap_or_default())?)
    }

    pub async fn create_user(
        &self,
        admin: &Session,
        username: &str,
        role: &str,
        team: Option<TeamId>,
    ) -> Result<UserId> {
        let teams: Vec<String> = team.iter().map(|t| t.to_string()).collect();
        let body = json!({ "username": username, "display_name": username, "role": role, "password": format!("{username}-password"), "teams": teams });
        let v = self
            .ok("POST", "/v1/users", &admin.access, Some(body))
            .await?;
        let id = UserId::parse(v["user"]["id"].as_str().unwrap_or_default())?;
        if role == "manager"
            && let Some(t) = team
        {
            self.ok(
                "PUT",
                &format!("/v1/teams/{t}/managers/{id}"),
                &admin.access,
                None,
            )
            .await?;
        }
        Ok(id)
    }

    /// Signs in a user created by [`Api::create_user`].
    pub async fn login_user(&self, username: &str) -> Result<Session> {
        self.login(username, &format!("{username}-password")).await
    }
}

/// A small organisation: one team with a manager and two reps, a second team with one rep,
/// and a catalog with a few products.
pub struct Org {
    pub api: Api,
    pub admin: Session,
    pub team: TeamId,
    pub other_team: TeamId,
    pub manager: Session,
    pub rep_a: Session,
    pub rep_b: Session,
    pub outsider: Session,
    pub products: Vec<fieldline_protocol::ids::ProductId>,
}

impl Org {
    pub async fn create(base: &str) -> Result<Org> {
        let api = Api::new(base);
        let admin = api.login("admin", ADMIN_PASSWORD).await?;
        let team = api.create_team(&admin, "East").await?;
        let other_team = api.create_team(&admin, "North").await?;
        api.create_user(&admin, "manager", "manager", Some(team))
            .await?;
        api.create_user(&admin, "rep.a", "rep", Some(team)).await?;
        api.create_user(&admin, "rep.b", "rep", Some(team)).await?;
        api.create_user(&admin, "outsider", "rep", Some(other_team))
            .await?;
        api.ok(
            "PUT",
            "/v1/catalog/settings",
            &admin.access,
            Some(json!({ "base_currency": "CNY" })),
        )
        .await?;
        api.ok(
            "PUT",
            "/v1/catalog/tax-classes/standard",
            &admin.access,
            Some(json!({ "name": "VAT 13%", "rate_bp": 1300 })),
        )
        .await?;
        let mut products = Vec::new();
        for (i, name) in ["龙井茶 Longjing 500g", "Oolong 250g", "Green tea gift box"]
            .iter()
            .enumerate()
        {
            let body = json!({ "sku": format!("TEA-{i}"), "name": name, "category": "tea", "unit": "box", "base_price_minor": 5000 + i * 1000, "tax_class": "standard", "active": true });
            let v = api
                .ok("POST", "/v1/catalog/products", &admin.access, Some(body))
                .await?;
            products.push(fieldline_protocol::ids::ProductId::parse(
                v["id"].as_str().unwrap_or_default(),
            )?);
        }
        Ok(Org {
            manager: api.login_user("manager").await?,
            rep_a: api.login_user("rep.a").await?,
            rep_b: api.login_user("rep.b").await?,
            outsider: api.login_user("outsider").await?,
            api,
            admin,
            team,
            other_team,
            products,
        })
    }
}

/// Whether `haystack` contains `needle`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every byte of a SQLite replica on disk (the database and its WAL).
pub fn replica_bytes(path: &Path) -> Vec<u8> {
    let mut all = std::fs::read(path).unwrap_or_default();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    all.extend(std::fs::read(PathBuf::from(wal)).unwrap_or_default());
    all
}

pub mod bench;

use std::sync::Arc;

use fieldline_client_core::Replica;
use fieldline_client_transport::{
    ClientConfig, RetryPolicy, SharedToken, SyncClient, SyncSummary, TransportError,
};
use fieldline_protocol::wire::{self, SyncRequest, SyncResponse};

/// A phone: a replica file, a token and a sync client pointed at a server.
pub struct Device {
    pub name: String,
    pub path: PathBuf,
    pub replica: Arc<Replica>,
    pub token: SharedToken,
    pub client: SyncClient,
}

fn client_for(base: &str, token: &SharedToken) -> Result<SyncClient> {
    let mut config = ClientConfig::new(base);
    // Tests kill servers on purpose: fail fast, the test decides when to try again.
    config.retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..RetryPolicy::default()
    };
    config.request_timeout = Duration::from_secs(30);
    Ok(SyncClient::new(config, Arc::new(token.clone()))?)
}

impl Device {
    pub fn open(dir: &Path, name: &str, session: &Session) -> Result<Device> {
        let path = dir.join(format!("{name}.db"));
        let token = SharedToken::with_token(session.access.clone());
        Ok(Device {
            name: name.to_owned(),
            replica: Arc::new(Replica::open(&path)?),
            client: client_for(&session.base, &token)?,
            token,
            path,
        })
    }

    pub async fn sync(&self) -> std::result::Result<SyncSummary, TransportError> {
        self.client.sync(&self.replica, &|_| {}).await
    }

    /// Points the device at a server that came back on another port.
    pub fn repoint(&mut self, base: &str) -> Result<()> {
        self.client = client_for(base, &self.token)?;
        Ok(())
    }

    /// Every byte of the replica file on disk.
    pub fn file_bytes(&self) -> Vec<u8> {
        replica_bytes(&self.path)
    }
}

/// A sync round sent by hand (what a hostile client could send): status, decoded answer if
/// any, and the JSON error body otherwise.
pub async fn raw_sync(
    base: &str,
    token: &str,
    req: &SyncRequest,
) -> Result<(u16, Option<SyncResponse>, Value)> {
    fieldline_client_transport::ensure_crypto_provider();
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/sync"))
        .bearer_auth(token)
        .header("content-type", wire::CONTENT_TYPE)
        .body(wire::encode(req))
        .send()
        .await?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await?;
    if status == 200 {
        Ok((status, Some(wire::decode(&bytes)?), Value::Null))
    } else {
        Ok((
            status,
            None,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}
