//! The SQLite backend: the server's embedded default.
//!
//! One writer connection (SQLite allows one writer at a time anyway) behind a mutex, and a
//! small pool of reader connections; WAL mode lets readers work while the writer commits.
//! The writer uses `synchronous=FULL`: a change the server acknowledged has reached the disk.
//!
//! The global sequence is a counter row bumped inside each write transaction. Because
//! SQLite commits one writer at a time, sequence numbers become visible in order, so a
//! cursor handed out from a read snapshot never skips a number committed later.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use automerge::ChangeHash;
use fieldline_protocol::access::Principal;
use fieldline_protocol::ids::*;
use fieldline_protocol::model::{Role, Visibility};
use fieldline_protocol::wire::{Bytes, DocData, DocPayload, Hash, ReviewNotice, ReviewStatus};
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};

use super::*;

/// Schema steps; `user_version` records how far a database has come. Never edit a shipped step.
const MIGRATIONS: &[&str] = &[
    // 1: organisation, documents and the change log.
    r#"
    CREATE TABLE seq_counter (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);
    INSERT INTO seq_counter (id, value) VALUES (1, 0);
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL UNIQUE COLLATE NOCASE,
        display_name TEXT NOT NULL,
        role TEXT NOT NULL,
        password_hash TEXT,
        active INTEGER NOT NULL DEFAULT 1,
        created_at INTEGER NOT NULL,
        access_seq INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE teams (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE COLLATE NOCASE);
    CREATE TABLE team_members (
        team_id TEXT NOT NULL REFERENCES teams(id), user_id TEXT NOT NULL REFERENCES users(id),
        PRIMARY KEY (team_id, user_id)
    );
    CREATE INDEX team_members_user ON team_members(user_id);
    CREATE TABLE team_managers (
        team_id TEXT NOT NULL REFERENCES teams(id), user_id TEXT NOT NULL REFERENCES users(id),
        PRIMARY KEY (team_id, user_id)
    );
    CREATE INDEX team_managers_user ON team_managers(user_id);
    CREATE TABLE refresh_tokens (hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, expires_at INTEGER NOT NULL);
    CREATE INDEX refresh_tokens_user ON refresh_tokens(user_id);
    CREATE TABLE docs (
        doc_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        owner TEXT, team TEXT, visibility TEXT, name TEXT,
        heads BLOB NOT NULL,
        last_seq INTEGER NOT NULL,
        created_seq INTEGER NOT NULL,
        acl_seq INTEGER NOT NULL,
        snapshot BLOB,
        snapshot_seq INTEGER NOT NULL DEFAULT 0,
        tail INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX docs_last_seq ON docs(last_seq);
    CREATE INDEX docs_acl_seq ON docs(acl_seq);
    CREATE TABLE changes (
        seq INTEGER PRIMARY KEY,
        doc_id TEXT NOT NULL,
        hash BLOB NOT NULL,
        bytes BLOB NOT NULL,
        user_id TEXT,
        device_id TEXT,
        source TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        UNIQUE (doc_id, hash)
    );
    CREATE INDEX changes_doc_seq ON changes(doc_id, seq);
    "#,
    // 2: devices, what they hold, and the review queue.
    r#"
    CREATE TABLE devices (
        user_id TEXT NOT NULL, device_id TEXT NOT NULL, cursor INTEGER NOT NULL, last_seen INTEGER NOT NULL,
        PRIMARY KEY (user_id, device_id)
    );
    CREATE TABLE device_docs (
        user_id TEXT NOT NULL, device_id TEXT NOT NULL, doc_id TEXT NOT NULL, sent_cursor INTEGER NOT NULL,
        PRIMARY KEY (user_id, device_id, doc_id)
    );
    CREATE TABLE reviews (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        doc_id TEXT NOT NULL, hash BLOB NOT NULL, bytes BLOB NOT NULL,
        user_id TEXT NOT NULL, device_id TEXT NOT NULL,
        code TEXT NOT NULL, message TEXT NOT NULL, received_at INTEGER NOT NULL,
        status TEXT NOT NULL DEFAULT 'open',
        resolved_by TEXT, resolved_at INTEGER, note TEXT, resolved_seq INTEGER,
        UNIQUE (doc_id, hash)
    );
    CREATE INDEX reviews_status ON reviews(status, id);
    CREATE INDEX reviews_user_resolved ON reviews(user_id, resolved_seq);
    "#,
    // 3: the feed starts from what a user may read (their own, their teams', company-wide)
    // instead of from everything that changed: a first sync costs the user's documents, not
    // the server's.
    r#"
    CREATE INDEX docs_owner ON docs(owner, last_seq);
    CREATE INDEX docs_team ON docs(team, last_seq);
    CREATE INDEX docs_visibility ON docs(visibility, last_seq);
    "#,
    // 4: purges are pending until the device confirms it applied the answer that carried
    // them (a lost answer must not leave a document the user may no longer read).
    r#"
    ALTER TABLE device_docs ADD COLUMN purge_cursor INTEGER;
    CREATE INDEX device_docs_purging ON device_docs(user_id, device_id, purge_cursor) WHERE purge_cursor IS NOT NULL;
    "#,
];

/// Who may read a document, as SQL over `docs d` with `?1` = user ID and `?9` = 1 for admins.
/// It mirrors `fieldline_protocol::access::can_read_doc`; a test checks the two agree.
const READABLE: &str = "(?9 = 1 OR d.kind = 'catalog'
    OR (d.kind = 'user' AND (d.owner = ?1 OR d.owner IN (
        SELECT m.user_id FROM team_members m JOIN team_managers g ON g.team_id = m.team_id WHERE g.user_id = ?1)))
    OR (d.kind = 'account' AND (d.owner = ?1 OR d.visibility = 'company'
        OR d.team IN (SELECT team_id FROM team_managers WHERE user_id = ?1)
        OR (d.visibility = 'team' AND d.team IN (SELECT team_id FROM team_members WHERE user_id = ?1)))))";

/// Documents this device holds that the user may no longer read. Normally only documents
/// whose access changed after the cursor are looked at (`acl_seq` index); after a change of
/// the user's memberships (`reconcile`) everything the device holds is.
fn purge_query(reconcile: bool) -> String {
    if reconcile {
        format!(
            "SELECT d.doc_id FROM device_docs dd JOIN docs d ON d.doc_id = dd.doc_id
             WHERE dd.user_id = ?1 AND dd.device_id = ?2 AND dd.purge_cursor IS NULL AND NOT {READABLE}"
        )
    } else {
        format!(
            "SELECT d.doc_id FROM docs d
             WHERE d.acl_seq > ?3 AND d.acl_seq <= ?4 AND NOT {READABLE}
                AND EXISTS (SELECT 1 FROM device_docs dd
                    WHERE dd.user_id = ?1 AND dd.device_id = ?2 AND dd.doc_id = d.doc_id AND dd.purge_cursor IS NULL)"
        )
    }
}

/// The documents to send (`count`: how many), in sequence order.
///
/// Where to look: admins read everything, so the `last_seq` index bounds their scan to what
/// changed; everyone else goes through indexed paths to the documents they may read (their
/// own, their teams', company-wide, the catalog, their reps' private documents), so the cost
/// follows the user's documents, not the server's. After a change of the user's memberships
/// (`reconcile`) every readable document the device does not hold is a candidate too. The full
/// [`READABLE`] predicate is applied on top, whatever the path.
///
/// Parameters: ?1 user, ?2 device, ?3 cursor, ?4 head, ?5 limit (or the page cursor when
/// counting), ?9 admin.
fn feed_query(reconcile: bool, admin: bool, count: bool) -> String {
    let unheld = if reconcile {
        "OR dd.sent_cursor IS NULL OR dd.sent_cursor > ?3"
    } else {
        ""
    };
    let since = if reconcile { "" } else { "AND last_seq > ?3" };
    let look_in = if admin {
        "1 = 1".to_owned()
    } else {
        format!(
            "d.doc_id IN (
                SELECT doc_id FROM docs WHERE owner = ?1 {since}
                UNION SELECT doc_id FROM docs WHERE doc_id = 'catalog' {since}
                UNION SELECT doc_id FROM docs WHERE visibility = 'company' {since}
                UNION SELECT doc_id FROM docs WHERE team IN (SELECT team_id FROM team_managers WHERE user_id = ?1) {since}
                UNION SELECT doc_id FROM docs WHERE team IN (SELECT team_id FROM team_members WHERE user_id = ?1)
                    AND +visibility = 'team' {since}
                UNION SELECT doc_id FROM docs WHERE kind = 'user' AND owner IN (
                    SELECT m.user_id FROM team_members m JOIN team_managers g ON g.team_id = m.team_id
                    WHERE g.user_id = ?1) {since})"
        )
    };
    // A document being purged from the device does not count as held.
    let from = "FROM docs d LEFT JOIN device_docs dd
        ON dd.user_id = ?1 AND dd.device_id = ?2 AND dd.doc_id = d.doc_id AND dd.purge_cursor IS NULL";
    if count {
        format!(
            "SELECT COUNT(*) {from}
             WHERE {look_in} AND d.last_seq <= ?4 AND d.last_seq > ?5 AND (d.last_seq > ?3 {unheld}) AND {READABLE}"
        )
    } else {
        format!(
            "SELECT d.doc_id, d.last_seq, d.acl_seq, dd.sent_cursor {from}
             WHERE {look_in} AND d.last_seq <= ?4 AND (d.last_seq > ?3 {unheld}) AND {READABLE}
             ORDER BY d.last_seq LIMIT ?5"
        )
    }
}

/// Most reader connections open at once. Each has its own page cache, so this bounds the
/// server's memory however many requests arrive together (the rest wait their turn).
const MAX_READERS: usize = 8;

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Readers>,
    reader_free: std::sync::Condvar,
}

/// Idle reader connections, and how many exist in all (idle or in use).
struct Readers {
    idle: Vec<Connection>,
    open: usize,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn open_conn(path: &Path, writer: bool) -> StoreResult<Connection> {
    let flags = if writer {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    if writer {
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    }
    // Page caches are per connection: 8 MiB for the writer, 2 MiB per reader, so the server's
    // memory stays bounded whatever the database size (the OS page cache serves the rest).
    let cache_kib = if writer { 8 * 1024 } else { 2 * 1024 };
    conn.execute_batch(&format!(
        "PRAGMA cache_size = -{cache_kib}; PRAGMA temp_store = MEMORY;"
    ))?;
    Ok(conn)
}

/// Brings a database to an older schema version, for upgrade tests.
pub fn migrate_for_tests(conn: &mut Connection, target: usize) -> StoreResult<()> {
    migrate(conn, target)
}

/// Brings a database to schema `target`.
pub(crate) fn migrate(conn: &mut Connection, target: usize) -> StoreResult<()> {
    let from: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if from > MIGRATIONS.len() as i64 {
        return Err(StoreError::TooNew {
            found: from,
            known: MIGRATIONS.len() as i64,
        });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target)
        .skip(from as usize)
    {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "server schema migrated");
    }
    Ok(())
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn parse_id<T>(s: &str, parse: fn(&str) -> fieldline_protocol::Result<T>) -> StoreResult<T> {
    parse(s).map_err(|e| corrupt(format!("stored id {s}: {e}")))
}

fn conversion(idx: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        rusqlite::types::Type::Text,
        what.to_owned().into(),
    )
}

/// Reads a text column and parses it; a value that does not parse means damaged data.
fn parsed<T>(
    r: &rusqlite::Row<'_>,
    idx: usize,
    parse: fn(&str) -> fieldline_protocol::Result<T>,
) -> rusqlite::Result<T> {
    let s: String = r.get(idx)?;
    parse(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn parsed_opt<T>(
    r: &rusqlite::Row<'_>,
    idx: usize,
    parse: fn(&str) -> fieldline_protocol::Result<T>,
) -> rusqlite::Result<Option<T>> {
    let s: Option<String> = r.get(idx)?;
    s.map(|s| {
        parse(&s).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
        })
    })
    .transpose()
}

fn heads_blob(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

fn next_seq(tx: &Transaction<'_>) -> StoreResult<Seq> {
    let v: i64 = tx.query_row(
        "UPDATE seq_counter SET value = value + 1 WHERE id = 1 RETURNING value",
        [],
        |r| r.get(0),
    )?;
    Ok(v as Seq)
}

/// Resolves an open review item inside a transaction; [`StoreError::AlreadyResolved`] if
/// it exists but is no longer open.
fn resolve_in(tx: &Transaction<'_>, r: &Resolution) -> StoreResult<()> {
    let seq = next_seq(tx)?;
    let n = tx.execute(
        "UPDATE reviews SET status = ?2, resolved_by = ?3, resolved_at = ?4, note = ?5, resolved_seq = ?6
         WHERE id = ?1 AND status = 'open'",
        params![r.review_id, r.status.as_str(), r.by.to_string(), r.at, r.note, seq as i64],
    )?;
    if n == 0 {
        let exists = tx
            .query_row("SELECT 1 FROM reviews WHERE id = ?1", [r.review_id], |_| {
                Ok(())
            })
            .optional()?
            .is_some();
        return Err(if exists {
            StoreError::AlreadyResolved(r.review_id)
        } else {
            StoreError::NotFound(format!("review item {}", r.review_id))
        });
    }
    Ok(())
}

/// Closes a user's open items for these changes as superseded (each gets a sequence number
/// so the user's devices hear of it).
fn supersede_in(
    tx: &Transaction<'_>,
    user: UserId,
    hashes: &[ChangeHash],
    now: i64,
) -> StoreResult<usize> {
    let mut n = 0;
    for h in hashes {
        let open = tx
            .prepare_cached(
                "SELECT id FROM reviews WHERE user_id = ?1 AND hash = ?2 AND status = 'open'",
            )?
            .query_row(params![user.to_string(), h.0.to_vec()], |r| {
                r.get::<_, i64>(0)
            })
            .optional()?;
        let Some(id) = open else { continue };
        let seq = next_seq(tx)?;
        n += tx.execute(
            "UPDATE reviews SET status = 'superseded', resolved_at = ?2, resolved_seq = ?3 WHERE id = ?1",
            params![id, now, seq as i64],
        )?;
    }
    Ok(n)
}

/// Marks an access change for a user: their devices re-evaluate what they may hold.
fn bump_access(tx: &Transaction<'_>, user: &str) -> StoreResult<()> {
    let seq = next_seq(tx)?;
    tx.execute(
        "UPDATE users SET access_seq = ?2 WHERE id = ?1",
        params![user, seq as i64],
    )?;
    Ok(())
}

fn user_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, String, String, bool, i64)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn to_user(row: (String, String, String, String, bool, i64)) -> StoreResult<UserRow> {
    let (id, username, display_name, role, active, created_at) = row;
    Ok(UserRow {
        id: parse_id(&id, UserId::parse)?,
        username,
        display_name,
        role: Role::parse(&role).map_err(|e| corrupt(format!("role: {e}")))?,
        active,
        created_at,
    })
}

const USER_COLS: &str = "id, username, display_name, role, active, created_at";

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        Self::open_at_version(path, MIGRATIONS.len())
    }

    pub(crate) fn open_at_version(path: impl AsRef<Path>, version: usize) -> StoreResult<Self> {
        let path = path.as_ref().to_path_buf();
        let mut writer = open_conn(&path, true)?;
        migrate(&mut writer, version)?;
        Ok(SqliteStore {
            path,
            writer: Mutex::new(writer),
            readers: Mutex::new(Readers {
                idle: Vec::new(),
                open: 0,
            }),
            reader_free: std::sync::Condvar::new(),
        })
    }

    /// Runs `f` on a reader connection: an idle one, a new one while fewer than
    /// [`MAX_READERS`] exist, or the next one to be freed.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let conn = {
            let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(c) = readers.idle.pop() {
                    break c;
                }
                if readers.open < MAX_READERS {
                    readers.open += 1;
                    drop(readers);
                    match open_conn(&self.path, false) {
                        Ok(c) => break c,
                        Err(e) => {
                            self.readers.lock().unwrap_or_else(|p| p.into_inner()).open -= 1;
                            self.reader_free.notify_one();
                            return Err(e);
                        }
                    }
                }
                readers = self
                    .reader_free
                    .wait(readers)
                    .unwrap_or_else(|p| p.into_inner());
            }
        };
        let result = f(&conn);
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .idle
            .push(conn);
        self.reader_free.notify_one();
        result
    }

    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

fn meta_row(doc: DocId, r: &rusqlite::Row<'_>) -> StoreResult<DocMeta> {
    let owner: Option<String> = r.get(0)?;
    let team: Option<String> = r.get(1)?;
    let vis: Option<String> = r.get(2)?;
    Ok(DocMeta {
        doc_id: doc,
        owner: owner.map(|s| parse_id(&s, UserId::parse)).transpose()?,
        team: team.map(|s| parse_id(&s, TeamId::parse)).transpose()?,
        visibility: vis
            .map(|v| Visibility::parse(&v).map_err(|e| corrupt(e.to_string())))
            .transpose()?,
        name: r.get(3)?,
    })
}

fn whole_doc(conn: &Connection, doc: &str, head: Seq) -> StoreResult<(Vec<Bytes>, usize)> {
    let (snapshot, snapshot_seq): (Option<Vec<u8>>, i64) = conn
        .prepare_cached("SELECT snapshot, snapshot_seq FROM docs WHERE doc_id = ?1")?
        .query_row([doc], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut parts = Vec::new();
    let mut bytes = 0;
    if let Some(s) = snapshot {
        bytes += s.len();
        parts.push(Bytes(s));
    }
    let mut stmt = conn.prepare_cached(
        "SELECT bytes FROM changes WHERE doc_id = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq",
    )?;
    for b in stmt.query_map(params![doc, snapshot_seq, head as i64], |r| {
        r.get::<_, Vec<u8>>(0)
    })? {
        let b = b?;
        bytes += b.len();
        parts.push(Bytes(b));
    }
    Ok((parts, bytes))
}

fn review_row(r: &rusqlite::Row<'_>) -> StoreResult<ReviewRow> {
    let hash: Vec<u8> = r.get(2)?;
    let status: String = r.get(8)?;
    let resolved_by: Option<String> = r.get(9)?;
    let owner: Option<String> = r.get(12)?;
    let team: Option<String> = r.get(13)?;
    Ok(ReviewRow {
        id: r.get(0)?,
        doc_id: DocId::parse(&r.get::<_, String>(1)?).map_err(|e| corrupt(e.to_string()))?,
        hash: hash.iter().map(|b| format!("{b:02x}")).collect(),
        user_id: parse_id(&r.get::<_, String>(3)?, UserId::parse)?,
        device_id: parse_id(&r.get::<_, String>(4)?, DeviceId::parse)?,
        code: r.get(5)?,
        message: r.get(6)?,
        received_at: r.get(7)?,
        status: ReviewStatus::parse(&status).map_err(|e| corrupt(e.to_string()))?,
        resolved_by: resolved_by
            .map(|s| parse_id(&s, UserId::parse))
            .transpose()?,
        resolved_at: r.get(10)?,
        note: r.get(11)?,
        doc_owner: owner.map(|s| parse_id(&s, UserId::parse)).transpose()?,
        doc_team: team.map(|s| parse_id(&s, TeamId::parse)).transpose()?,
    })
}

const REVIEW_COLS: &str =
    "r.id, r.doc_id, r.hash, r.user_id, r.device_id, r.code, r.message, r.received_at, r.status,
    r.resolved_by, r.resolved_at, r.note, d.owner, d.team";

impl Store for SqliteStore {
    fn insert_user(&self, u: &NewUser) -> StoreResult<()> {
        self.write(|tx| {
            let taken = tx.query_row("SELECT 1 FROM users WHERE username = ?1 OR id = ?2", params![u.username, u.id.to_string()], |_| Ok(())).optional()?;
            if taken.is_some() {
                return Err(StoreError::Conflict(format!("user {}", u.username)));
            }
            let seq = next_seq(tx)?;
            tx.execute(
                "INSERT INTO users (id, username, display_name, role, password_hash, created_at, access_seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![u.id.to_string(), u.username, u.display_name, u.role.as_str(), u.password_hash, u.created_at, seq as i64],
            )?;
            Ok(())
        })
    }

    fn user(&self, id: UserId) -> StoreResult<Option<UserRow>> {
        self.read(|c| {
            c.prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE id = ?1"))?
                .query_row([id.to_string()], user_row)
                .optional()?
                .map(to_user)
                .transpose()
        })
    }

    fn user_by_username(&self, username: &str) -> StoreResult<Option<(UserRow, Option<String>)>> {
        self.read(|c| {
            let row = c
                .prepare_cached(&format!(
                    "SELECT {USER_COLS}, password_hash FROM users WHERE username = ?1"
                ))?
                .query_row([username], |r| {
                    Ok((user_row(r)?, r.get::<_, Option<String>>(6)?))
                })
                .optional()?;
            row.map(|(u, h)| Ok((to_user(u)?, h))).transpose()
        })
    }

    fn users(&self) -> StoreResult<Vec<UserRow>> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {USER_COLS} FROM users ORDER BY username"))?;
            let rows = stmt
                .query_map([], user_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(to_user).collect()
        })
    }

    fn update_user(&self, id: UserId, u: &UserUpdate) -> StoreResult<UserRow> {
        self.write(|tx| {
            let sid = id.to_string();
            let exists = tx
                .query_row("SELECT 1 FROM users WHERE id = ?1", [&sid], |_| Ok(()))
                .optional()?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("user {id}")));
            }
            if let Some(name) = &u.display_name {
                tx.execute(
                    "UPDATE users SET display_name = ?2 WHERE id = ?1",
                    params![sid, name],
                )?;
            }
            if let Some(hash) = &u.password_hash {
                tx.execute(
                    "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                    params![sid, hash],
                )?;
                tx.execute("DELETE FROM refresh_tokens WHERE user_id = ?1", [&sid])?;
            }
            if let Some(role) = u.role {
                tx.execute(
                    "UPDATE users SET role = ?2 WHERE id = ?1",
                    params![sid, role.as_str()],
                )?;
                bump_access(tx, &sid)?;
            }
            if let Some(active) = u.active {
                tx.execute(
                    "UPDATE users SET active = ?2 WHERE id = ?1",
                    params![sid, active],
                )?;
                if !active {
                    tx.execute("DELETE FROM refresh_tokens WHERE user_id = ?1", [&sid])?;
                }
                bump_access(tx, &sid)?;
            }
            let row = tx.query_row(
                &format!("SELECT {USER_COLS} FROM users WHERE id = ?1"),
                [&sid],
                user_row,
            )?;
            to_user(row)
        })
    }

    fn insert_team(&self, id: TeamId, name: &str) -> StoreResult<()> {
        self.write(|tx| {
            let taken = tx
                .query_row(
                    "SELECT 1 FROM teams WHERE name = ?1 OR id = ?2",
                    params![name, id.to_string()],
                    |_| Ok(()),
                )
                .optional()?;
            if taken.is_some() {
                return Err(StoreError::Conflict(format!("team {name}")));
            }
            tx.execute(
                "INSERT INTO teams (id, name) VALUES (?1, ?2)",
                params![id.to_string(), name],
            )?;
            Ok(())
        })
    }

    fn teams(&self) -> StoreResult<Vec<TeamRow>> {
        self.read(|c| {
            let teams: Vec<(String, String)> = c
                .prepare_cached("SELECT id, name FROM teams ORDER BY name")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut out = Vec::new();
            for (id, name) in teams {
                let list = |table: &str| -> StoreResult<Vec<UserId>> {
                    let ids: Vec<String> = c
                        .prepare_cached(&format!(
                            "SELECT user_id FROM {table} WHERE team_id = ?1 ORDER BY user_id"
                        ))?
                        .query_map([&id], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    ids.iter().map(|s| parse_id(s, UserId::parse)).collect()
                };
                out.push(TeamRow {
                    id: parse_id(&id, TeamId::parse)?,
                    name,
                    members: list("team_members")?,
                    managers: list("team_managers")?,
                });
            }
            Ok(out)
        })
    }

    fn set_membership(
        &self,
        team: TeamId,
        user: UserId,
        kind: Membership,
        present: bool,
    ) -> StoreResult<()> {
        self.write(|tx| {
            let (t, u) = (team.to_string(), user.to_string());
            if tx
                .query_row("SELECT 1 FROM teams WHERE id = ?1", [&t], |_| Ok(()))
                .optional()?
                .is_none()
            {
                return Err(StoreError::NotFound(format!("team {team}")));
            }
            if tx
                .query_row("SELECT 1 FROM users WHERE id = ?1", [&u], |_| Ok(()))
                .optional()?
                .is_none()
            {
                return Err(StoreError::NotFound(format!("user {user}")));
            }
            let table = match kind {
                Membership::Member => "team_members",
                Membership::Manager => "team_managers",
            };
            let changed = if present {
                tx.execute(
                    &format!("INSERT OR IGNORE INTO {table} (team_id, user_id) VALUES (?1, ?2)"),
                    params![t, u],
                )?
            } else {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE team_id = ?1 AND user_id = ?2"),
                    params![t, u],
                )?
            };
            if changed > 0 {
                bump_access(tx, &u)?;
                if kind == Membership::Member {
                    // The team's managers gain or lose this user's private document.
                    let managers: Vec<String> = tx
                        .prepare("SELECT user_id FROM team_managers WHERE team_id = ?1")?
                        .query_map([&t], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    for m in managers {
                        bump_access(tx, &m)?;
                    }
                }
            }
            Ok(())
        })
    }

    fn principal(&self, user: UserId, role: Role) -> StoreResult<Principal> {
        self.read(|c| {
            let u = user.to_string();
            let ids = |sql: &str| -> StoreResult<Vec<String>> {
                Ok(c.prepare_cached(sql)?.query_map([&u], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?)
            };
            let teams = ids("SELECT team_id FROM team_members WHERE user_id = ?1 ORDER BY team_id")?;
            let managed = ids("SELECT team_id FROM team_managers WHERE user_id = ?1 ORDER BY team_id")?;
            let managed_users = ids(
                "SELECT DISTINCT m.user_id FROM team_members m JOIN team_managers g ON g.team_id = m.team_id
                 WHERE g.user_id = ?1 ORDER BY m.user_id",
            )?;
            Ok(Principal {
                user_id: user,
                role,
                teams: teams.iter().map(|s| parse_id(s, TeamId::parse)).collect::<StoreResult<_>>()?,
                managed_teams: managed.iter().map(|s| parse_id(s, TeamId::parse)).collect::<StoreResult<_>>()?,
                managed_users: managed_users.iter().map(|s| parse_id(s, UserId::parse)).collect::<StoreResult<_>>()?,
            })
        })
    }

    fn insert_refresh_token(&self, hash: &str, user: UserId, expires_at: i64) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO refresh_tokens (hash, user_id, expires_at) VALUES (?1, ?2, ?3)",
                params![hash, user.to_string(), expires_at],
            )?;
            Ok(())
        })
    }

    fn take_refresh_token(&self, hash: &str, now: i64) -> StoreResult<Option<UserId>> {
        self.write(|tx| {
            let row: Option<(String, i64)> = tx
                .query_row(
                    "DELETE FROM refresh_tokens WHERE hash = ?1 RETURNING user_id, expires_at",
                    [hash],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            // Expired tokens of anyone are swept on the way.
            tx.execute("DELETE FROM refresh_tokens WHERE expires_at < ?1", [now])?;
            match row {
                Some((user, exp)) if exp >= now => Ok(Some(parse_id(&user, UserId::parse)?)),
                _ => Ok(None),
            }
        })
    }

    fn revoke_refresh_tokens(&self, user: UserId) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM refresh_tokens WHERE user_id = ?1",
                [user.to_string()],
            )?;
            Ok(())
        })
    }

    fn doc_meta(&self, doc: DocId) -> StoreResult<Option<DocMeta>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT owner, team, visibility, name FROM docs WHERE doc_id = ?1",
            )?;
            let mut rows = stmt.query([doc.to_string()])?;
            match rows.next()? {
                Some(r) => Ok(Some(meta_row(doc, r)?)),
                None => Ok(None),
            }
        })
    }

    fn load_doc(&self, doc: DocId) -> StoreResult<Option<StoredDoc>> {
        self.read(|c| {
            let id = doc.to_string();
            let last: Option<i64> = c
                .prepare_cached("SELECT last_seq FROM docs WHERE doc_id = ?1")?
                .query_row([&id], |r| r.get(0))
                .optional()?;
            let Some(last) = last else { return Ok(None) };
            let (parts, _) = whole_doc(c, &id, last as Seq)?;
            Ok(Some(StoredDoc {
                parts: parts.into_iter().map(|b| b.0).collect(),
                last_seq: last as Seq,
            }))
        })
    }

    fn commit(&self, c: &DocCommit) -> StoreResult<CommitResult> {
        self.write(|tx| {
            let id = c.meta.doc_id.to_string();
            // Decide first: if someone else resolved the item meanwhile, nothing is stored.
            if let Some(r) = &c.resolves {
                resolve_in(tx, r)?;
            }
            if let Some(user) = c.user {
                supersede_in(tx, user, &c.supersedes, c.received_at)?;
            }
            let (mut first, mut last, mut stored) = (None, None, 0usize);
            for ch in &c.changes {
                let exists = tx
                    .prepare_cached("SELECT 1 FROM changes WHERE doc_id = ?1 AND hash = ?2")?
                    .query_row(params![id, ch.hash.0.to_vec()], |_| Ok(()))
                    .optional()?;
                if exists.is_some() {
                    continue;
                }
                let seq = next_seq(tx)?;
                tx.prepare_cached(
                    "INSERT INTO changes (seq, doc_id, hash, bytes, user_id, device_id, source, received_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    seq as i64,
                    id,
                    ch.hash.0.to_vec(),
                    ch.bytes,
                    c.user.map(|u| u.to_string()),
                    c.device.map(|d| d.to_string()),
                    c.source.as_str(),
                    c.received_at
                ])?;
                first.get_or_insert(seq);
                last = Some(seq);
                stored += 1;
            }
            // A device holds what it uploaded: the next round sends it only others' changes.
            if let (Source::Sync, Some(u), Some(d), true) = (c.source, c.user, c.device, stored > 0) {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO device_docs (user_id, device_id, doc_id, sent_cursor) VALUES (?1, ?2, ?3, 0)",
                )?
                .execute(params![u.to_string(), d.to_string(), id])?;
            }
            let existing: Option<(i64, i64)> =
                tx.query_row("SELECT last_seq, tail FROM docs WHERE doc_id = ?1", [&id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
            let m = &c.meta;
            let (owner, team, vis) = (m.owner.map(|o| o.to_string()), m.team.map(|t| t.to_string()), m.visibility.map(|v| v.as_str()));
            match (existing, first, last) {
                (None, Some(first), Some(last)) => {
                    tx.execute(
                        "INSERT INTO docs (doc_id, kind, owner, team, visibility, name, heads, last_seq, created_seq, acl_seq, tail)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10)",
                        params![id, m.doc_id.kind().as_str(), owner, team, vis, m.name, heads_blob(&c.heads), last as i64, first as i64, stored as i64],
                    )?;
                    Ok(CommitResult { stored, last_seq: last, tail: stored as u64 })
                }
                (None, _, _) => Err(StoreError::NotFound(format!("document {} (nothing to create it from)", m.doc_id))),
                (Some((prev_last, tail)), _, last) => {
                    let Some(last) = last else {
                        return Ok(CommitResult { stored: 0, last_seq: prev_last as Seq, tail: tail as u64 });
                    };
                    tx.execute(
                        "UPDATE docs SET owner = ?2, team = ?3, visibility = ?4, name = ?5, heads = ?6, last_seq = ?7,
                            acl_seq = CASE WHEN ?8 THEN ?7 ELSE acl_seq END, tail = tail + ?9
                         WHERE doc_id = ?1",
                        params![id, owner, team, vis, m.name, heads_blob(&c.heads), last as i64, c.acl_changed, stored as i64],
                    )?;
                    Ok(CommitResult { stored, last_seq: last, tail: (tail as u64) + stored as u64 })
                }
            }
        })
    }

    fn write_snapshot(&self, doc: DocId, snapshot: &[u8], through: Seq) -> StoreResult<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE docs SET snapshot = ?2, snapshot_seq = ?3,
                    tail = (SELECT COUNT(*) FROM changes WHERE doc_id = ?1 AND seq > ?3)
                 WHERE doc_id = ?1 AND snapshot_seq <= ?3",
                params![doc.to_string(), snapshot, through as i64],
            )?;
            Ok(())
        })
    }

    fn accounts(&self, p: &Principal, limit: u32) -> StoreResult<Vec<AccountListing>> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT d.doc_id, d.name, d.owner, d.team, d.visibility, d.last_seq FROM docs d
                 WHERE d.kind = 'account' AND {READABLE} ORDER BY d.name COLLATE NOCASE LIMIT ?2"
            ))?;
            // ?1 user, ?2 limit, ?9 admin (the slots between are unused here).
            let params = params![
                p.user_id.to_string(),
                limit,
                None::<i64>,
                None::<i64>,
                None::<i64>,
                None::<i64>,
                None::<i64>,
                None::<i64>,
                p.is_admin()
            ];
            let rows = stmt.query_map(params, |r| {
                let id = parsed(r, 0, DocId::parse)?;
                Ok(AccountListing {
                    id: id
                        .as_account()
                        .ok_or_else(|| conversion(0, "an account kind without an account id"))?,
                    name: r.get(1)?,
                    owner: parsed_opt(r, 2, UserId::parse)?,
                    team: parsed_opt(r, 3, TeamId::parse)?,
                    visibility: parsed_opt(r, 4, Visibility::parse)?,
                    last_seq: r.get::<_, i64>(5)? as Seq,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn change_log(&self, doc: DocId, limit: u32) -> StoreResult<Vec<ChangeRecord>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, hash, user_id, device_id, source, received_at, length(bytes) FROM changes
                 WHERE doc_id = ?1 ORDER BY seq DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![doc.to_string(), limit], |r| {
                let hash: Vec<u8> = r.get(1)?;
                Ok(ChangeRecord {
                    seq: r.get::<_, i64>(0)? as Seq,
                    hash: hash.iter().map(|b| format!("{b:02x}")).collect(),
                    user_id: parsed_opt(r, 2, UserId::parse)?,
                    device_id: parsed_opt(r, 3, DeviceId::parse)?,
                    source: r.get(4)?,
                    received_at: r.get(5)?,
                    bytes: r.get::<_, i64>(6)? as usize,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn park(&self, r: &NewReview) -> StoreResult<i64> {
        self.write(|tx| {
            let doc = r.doc_id.to_string();
            let existing: Option<i64> = tx
                .query_row("SELECT id FROM reviews WHERE doc_id = ?1 AND hash = ?2", params![doc, r.hash.0.to_vec()], |row| row.get(0))
                .optional()?;
            if let Some(id) = existing {
                return Ok(id);
            }
            tx.execute(
                "INSERT INTO reviews (doc_id, hash, bytes, user_id, device_id, code, message, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![doc, r.hash.0.to_vec(), r.bytes, r.user.to_string(), r.device.to_string(), r.code, r.message, r.received_at],
            )?;
            let id = tx.last_insert_rowid();
            supersede_in(tx, r.user, &r.supersedes, r.received_at)?;
            Ok(id)
        })
    }

    fn parked_id(&self, doc: DocId, hash: &ChangeHash) -> StoreResult<Option<i64>> {
        self.read(|c| {
            Ok(c.prepare_cached("SELECT id FROM reviews WHERE doc_id = ?1 AND hash = ?2 AND status IN ('open', 'dismissed')")?
                .query_row(params![doc.to_string(), hash.0.to_vec()], |r| r.get(0))
                .optional()?)
        })
    }

    fn reviews(&self, f: &ReviewFilter) -> StoreResult<Vec<ReviewRow>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {REVIEW_COLS} FROM reviews r LEFT JOIN docs d ON d.doc_id = r.doc_id
                 WHERE (?1 IS NULL OR r.status = ?1)
                   AND (?3 IS NULL OR (r.user_id <> ?3 AND (
                        (d.kind = 'account' AND d.team IN (SELECT team_id FROM team_managers WHERE user_id = ?3))
                     OR (d.kind = 'user' AND d.owner IN (
                        SELECT m.user_id FROM team_members m JOIN team_managers g ON g.team_id = m.team_id
                        WHERE g.user_id = ?3)))))
                 ORDER BY r.id DESC LIMIT ?2"
            ))?;
            // Filtered here, not after the LIMIT: a manager's items are found however many
            // other teams' items are newer.
            let mut rows = stmt.query(params![
                f.status.map(|s| s.as_str()),
                f.limit.max(1),
                f.reviewer.map(|u| u.to_string())
            ])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(review_row(r)?);
            }
            Ok(out)
        })
    }

    fn review(&self, id: i64) -> StoreResult<Option<(ReviewRow, Vec<u8>)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {REVIEW_COLS}, r.bytes FROM reviews r LEFT JOIN docs d ON d.doc_id = r.doc_id WHERE r.id = ?1"
            ))?;
            let mut rows = stmt.query([id])?;
            match rows.next()? {
                Some(r) => Ok(Some((review_row(r)?, r.get(14)?))),
                None => Ok(None),
            }
        })
    }

    fn resolve_review(&self, resolution: &Resolution) -> StoreResult<()> {
        self.write(|tx| resolve_in(tx, resolution))
    }

    fn supersede(&self, user: UserId, hashes: &[ChangeHash], now: i64) -> StoreResult<usize> {
        if hashes.is_empty() {
            return Ok(0);
        }
        self.write(|tx| supersede_in(tx, user, hashes, now))
    }

    fn review_states(
        &self,
        user: UserId,
        doc: DocId,
        hashes: &[ChangeHash],
    ) -> StoreResult<Vec<(ChangeHash, i64, ReviewStatus)>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, status FROM reviews WHERE doc_id = ?1 AND hash = ?2 AND user_id = ?3",
            )?;
            let mut out = Vec::new();
            for h in hashes {
                let row: Option<(i64, String)> = stmt
                    .query_row(
                        params![doc.to_string(), h.0.to_vec(), user.to_string()],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                if let Some((id, status)) = row {
                    let status = ReviewStatus::parse(&status)
                        .map_err(|e| StoreError::Corrupt(format!("review status: {e}")))?;
                    out.push((*h, id, status));
                }
            }
            Ok(out)
        })
    }

    fn pull(&self, req: &PullRequest<'_>) -> StoreResult<PullPage> {
        let p = req.principal;
        let uid = p.user_id.to_string();
        let dev = req.device.to_string();
        let admin = p.is_admin();
        let mut sent: Vec<String> = Vec::new();
        let (page, cursor_in, seen, confirmed_purges) = self.read(|c| {
            let tx = c.unchecked_transaction()?;
            let head: Seq = tx.query_row("SELECT value FROM seq_counter WHERE id = 1", [], |r| r.get::<_, i64>(0))? as Seq;
            // A device ahead of the server (restored from an older backup) starts over.
            let cursor = if req.cursor > head { 0 } else { req.cursor };
            let access_seq: i64 = tx.query_row("SELECT access_seq FROM users WHERE id = ?1", [&uid], |r| r.get(0)).optional()?.unwrap_or(0);
            let reconcile = access_seq as Seq > cursor;
            // ?1 user, ?2 device, ?3 cursor, ?4 head, ?9 admin; the others are per query.
            let base = |extra: Vec<rusqlite::types::Value>| -> Vec<rusqlite::types::Value> {
                let mut v: Vec<rusqlite::types::Value> =
                    vec![uid.clone().into(), dev.clone().into(), (cursor as i64).into(), (head as i64).into()];
                v.extend(extra);
                while v.len() < 8 {
                    v.push(rusqlite::types::Value::Null);
                }
                v.push((admin as i64).into());
                v
            };
            let mut page = PullPage::default();

            // Purges: documents this device holds that the user may no longer read.
            let purge_sql = purge_query(reconcile);
            let purged: Vec<String> = tx
                .prepare(&purge_sql)?
                .query_map(rusqlite::params_from_iter(base(vec![])), |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            // Purges sent earlier that the device has not confirmed (its cursor does not cover
            // the answer that carried them): the answer may have been lost, send them again.
            let pending: Vec<String> = tx
                .prepare_cached(
                    "SELECT doc_id FROM device_docs WHERE user_id = ?1 AND device_id = ?2
                        AND purge_cursor IS NOT NULL AND purge_cursor > ?3",
                )?
                .query_map(params![uid, dev, cursor as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for d in purged.iter().chain(&pending) {
                let d = DocId::parse(d).map_err(|e| corrupt(e.to_string()))?;
                if !page.purged.contains(&d) {
                    page.purged.push(d);
                }
            }
            let confirmed_purges: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM device_docs WHERE user_id = ?1 AND device_id = ?2
                        AND purge_cursor IS NOT NULL AND purge_cursor <= ?3 AND ?3 > 0",
                )?
                .query_row(params![uid, dev, cursor as i64], |r| r.get(0))?;

            // Documents asked for whole.
            let readable_one = format!("SELECT 1 FROM docs d WHERE d.doc_id = ?5 AND {READABLE}");
            let held = "SELECT 1 FROM device_docs WHERE user_id = ?1 AND device_id = ?2 AND doc_id = ?3";
            let mut whole_done = std::collections::BTreeSet::new();
            // Refused documents first and always (the device must rebase on them; there are
            // at most as many as the documents of one upload); then wanted ones within the
            // page's budget, the rest next round.
            let mut wanted_left = 0u64;
            let asks = req.rebase.iter().map(|d| (d, true)).chain(req.want_full.iter().map(|d| (d, false)));
            for (w, refused) in asks {
                let id = w.to_string();
                if whole_done.contains(&id) || page.purged.contains(w) {
                    continue;
                }
                let full = page.docs.len() >= req.max_docs.max(1) || page.bytes >= req.max_bytes;
                if !refused && full {
                    wanted_left += 1;
                    continue;
                }
                let readable = tx
                    .prepare_cached(&readable_one)?
                    .query_row(rusqlite::params_from_iter(base(vec![id.clone().into()])), |_| Ok(()))
                    .optional()?
                    .is_some();
                if readable {
                    let (parts, bytes) = whole_doc(&tx, &id, head)?;
                    page.bytes += bytes;
                    page.docs.push(DocPayload { doc: *w, data: DocData::Whole(parts) });
                    sent.push(id.clone());
                    whole_done.insert(id);
                } else if refused || tx.prepare_cached(held)?.query_row(params![uid, dev, id], |_| Ok(())).optional()?.is_some() {
                    // Held and no longer readable, or the device's own refused upload (a
                    // creation the server never stored): drop the device's copy.
                    page.purged.push(*w);
                } else {
                    page.forbidden.push(*w);
                }
            }

            // What changed after the cursor (and, after an access change, what the device lacks).
            let feed_sql = feed_query(reconcile, admin, false);
            let limit = (req.max_docs.max(1) + 1) as i64;
            let candidates: Vec<(String, i64, i64, Option<i64>)> = tx
                .prepare(&feed_sql)?
                .query_map(rusqlite::params_from_iter(base(vec![limit.into()])), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut last_included: Option<Seq> = None;
            let mut stopped = false;
            for (id, last_seq, acl_seq, sent_cursor) in &candidates {
                if whole_done.contains(id) {
                    last_included = Some(*last_seq as Seq);
                    continue;
                }
                let full_enough = page.docs.len() >= req.max_docs.max(1) || page.bytes >= req.max_bytes;
                if full_enough && last_included.is_some() {
                    stopped = true;
                    break;
                }
                let doc = DocId::parse(id).map_err(|e| corrupt(e.to_string()))?;
                // Held and confirmed (the device came back with a cursor covering the answer
                // that carried it, or uploaded it itself): just the changes after the cursor.
                // Otherwise, or if its access changed since, the whole document.
                let confirmed = sent_cursor.is_some_and(|s| (s as Seq <= cursor && cursor > 0) || s == 0);
                let whole = !confirmed || *acl_seq as Seq > cursor;
                if whole {
                    let (parts, bytes) = whole_doc(&tx, id, head)?;
                    page.bytes += bytes;
                    page.docs.push(DocPayload { doc, data: DocData::Whole(parts) });
                } else {
                    let mut stmt = tx.prepare_cached(
                        "SELECT bytes FROM changes WHERE doc_id = ?1 AND seq > ?2 AND seq <= ?3
                            AND NOT (source = 'sync' AND user_id IS ?4 AND device_id IS ?5)
                         ORDER BY seq",
                    )?;
                    let list: Vec<Bytes> = stmt
                        .query_map(params![id, cursor as i64, head as i64, uid, dev], |r| r.get::<_, Vec<u8>>(0))?
                        .map(|b| b.map(Bytes))
                        .collect::<rusqlite::Result<_>>()?;
                    if !list.is_empty() {
                        page.bytes += list.iter().map(|b| b.0.len()).sum::<usize>();
                        page.docs.push(DocPayload { doc, data: DocData::Changes(list) });
                    }
                }
                sent.push(id.clone());
                last_included = Some(*last_seq as Seq);
            }
            let more = stopped || candidates.len() as i64 >= limit;
            page.more = more || wanted_left > 0;
            page.cursor = match (more, last_included) {
                (true, Some(seq)) => seq,
                _ => head,
            };
            page.remaining = wanted_left;
            if more {
                let count_sql = feed_query(reconcile, admin, true);
                let n: i64 = tx.query_row(&count_sql, rusqlite::params_from_iter(base(vec![(page.cursor as i64).into()])), |r| r.get(0))?;
                page.remaining += n as u64;
            }

            // Decisions on this user's refused changes.
            let mut stmt = tx.prepare_cached(
                "SELECT id, doc_id, hash, status FROM reviews WHERE user_id = ?1 AND resolved_seq > ?2 AND resolved_seq <= ?3 ORDER BY id",
            )?;
            let mut rows = stmt.query(params![uid, cursor as i64, page.cursor as i64])?;
            while let Some(r) = rows.next()? {
                let hash: Vec<u8> = r.get(2)?;
                let status: String = r.get(3)?;
                page.reviews.push(ReviewNotice {
                    review_id: r.get(0)?,
                    doc: DocId::parse(&r.get::<_, String>(1)?).map_err(|e| corrupt(e.to_string()))?,
                    hash: Hash(hash.try_into().map_err(|_| corrupt("review hash length"))?),
                    status: ReviewStatus::parse(&status).map_err(|e| corrupt(e.to_string()))?,
                });
            }
            let seen: Option<(i64, i64)> = tx
                .prepare_cached("SELECT cursor, last_seen FROM devices WHERE user_id = ?1 AND device_id = ?2")?
                .query_row(params![uid, dev], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            // A document sent in this answer is readable again: it is not purged.
            let sent_now: std::collections::BTreeSet<DocId> = page.docs.iter().map(|d| d.doc).collect();
            page.purged.retain(|d| !sent_now.contains(d));
            Ok((page, cursor, seen, confirmed_purges))
        })?;
        // A round that changed nothing for the device writes nothing (no fsync), except to
        // refresh "last seen" every few minutes.
        let stale = match seen {
            Some((c, at)) => c as Seq != cursor_in || req.now - at > 5 * 60 * 1000,
            None => true,
        };
        let nothing_to_record =
            sent.is_empty() && page.purged.is_empty() && confirmed_purges == 0 && !stale;
        if page.forbidden.is_empty() && !nothing_to_record {
            // Remember what this device now holds (confirmed once it syncs with this cursor).
            self.write(|tx| {
                for id in &sent {
                    tx.prepare_cached(
                        "INSERT INTO device_docs (user_id, device_id, doc_id, sent_cursor) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (user_id, device_id, doc_id) DO UPDATE SET purge_cursor = NULL, sent_cursor =
                            CASE WHEN device_docs.sent_cursor <= ?5 AND ?5 > 0 AND device_docs.purge_cursor IS NULL
                                THEN device_docs.sent_cursor ELSE excluded.sent_cursor END",
                    )?
                    .execute(params![uid, dev, id, page.cursor as i64, cursor_in as i64])?;
                }
                // Purges the device confirmed are done; this answer's purges wait for its
                // confirmation (the next round with a cursor covering this answer).
                tx.prepare_cached(
                    "DELETE FROM device_docs WHERE user_id = ?1 AND device_id = ?2
                        AND purge_cursor IS NOT NULL AND purge_cursor <= ?3 AND ?3 > 0",
                )?
                .execute(params![uid, dev, cursor_in as i64])?;
                for d in &page.purged {
                    tx.prepare_cached(
                        "UPDATE device_docs SET purge_cursor = ?4 WHERE user_id = ?1 AND device_id = ?2 AND doc_id = ?3",
                    )?
                    // Strictly beyond the request's cursor, so only a later round confirms it.
                    .execute(params![uid, dev, d.to_string(), page.cursor.max(cursor_in + 1) as i64])?;
                }
                tx.execute(
                    "INSERT INTO devices (user_id, device_id, cursor, last_seen) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (user_id, device_id) DO UPDATE SET cursor = excluded.cursor, last_seen = excluded.last_seen",
                    params![uid, dev, cursor_in as i64, req.now],
                )?;
                Ok(())
            })?;
        }
        Ok(page)
    }

    fn device_holds(&self, user: UserId, device: DeviceId, doc: DocId) -> StoreResult<bool> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT 1 FROM device_docs WHERE user_id = ?1 AND device_id = ?2 AND doc_id = ?3",
            )?
            .query_row(
                params![user.to_string(), device.to_string(), doc.to_string()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
        })
    }

    fn stats(&self) -> StoreResult<StoreStats> {
        self.read(|c| {
            let n = |sql: &str| -> StoreResult<u64> {
                Ok(c.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64)
            };
            Ok(StoreStats {
                users: n("SELECT COUNT(*) FROM users")?,
                documents: n("SELECT COUNT(*) FROM docs")?,
                changes: n("SELECT COUNT(*) FROM changes")?,
                open_reviews: n("SELECT COUNT(*) FROM reviews WHERE status = 'open'")?,
                last_seq: n("SELECT value FROM seq_counter WHERE id = 1")?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan of a query, one line per step.
    fn plan(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let n = stmt.parameter_count();
        let params: Vec<rusqlite::types::Value> =
            (0..n).map(|_| rusqlite::types::Value::Integer(0)).collect();
        stmt.query_map(rusqlite::params_from_iter(params), |r| {
            r.get::<_, String>(3)
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
    }

    /// A rep's round reaches documents only through the paths to what the rep may read:
    /// never the whole table, never "everything that changed since the cursor" (the
    /// `last_seq` index alone), and the visibility index only for company-wide documents,
    /// which everyone may read. So a first sync costs the rep's documents, not the server's.
    #[test]
    fn a_reps_round_follows_their_documents_not_the_servers() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("p.db")).unwrap();
        let conn = store.writer.lock().unwrap_or_else(|p| p.into_inner());
        for sql in [
            feed_query(false, false, false),
            feed_query(false, false, true),
        ] {
            let steps = plan(&conn, &sql);
            let text = steps.join("\n");
            for step in &steps {
                assert!(
                    !step.starts_with("SCAN d"),
                    "a full scan of documents:\n{text}"
                );
                assert!(
                    !step.contains("docs_last_seq"),
                    "driven by everything that changed:\n{text}"
                );
            }
            assert_eq!(
                steps
                    .iter()
                    .filter(|s| s.contains("docs_visibility"))
                    .count(),
                1,
                "{text}"
            );
            assert!(
                steps.iter().any(|s| s.contains("docs_owner"))
                    && steps.iter().any(|s| s.contains("docs_team")),
                "{text}"
            );
        }
        for step in plan(&conn, &purge_query(false)) {
            assert!(
                !step.starts_with("SCAN"),
                "the purge check walks a table: {step}"
            );
        }
    }
}
