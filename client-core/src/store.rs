//! The SQLite file: connection settings, the versioned schema and its migrations.
//!
//! One file holds everything: the automerge documents (a snapshot plus the changes made
//! since), the outbox of changes the server has not acknowledged, and the SQL projection
//! every screen queries. WAL mode with `synchronous=FULL`: a call that returned has reached
//! the disk, so neither a crash nor a power cut loses it.
//!
//! Migrations are numbered; `user_version` records how far a file has come. A migration may
//! ask for the projection to be rebuilt from the documents (the documents are the truth;
//! the projection is derived), which [`crate::Replica::open`] does before returning.

use rusqlite::{Connection, OpenFlags};

use crate::{Error, Result};

/// One schema step: its SQL, and whether the projection must be rebuilt afterwards.
pub(crate) struct Migration {
    pub sql: &'static str,
    pub rebuilds_projection: bool,
}

/// The schema, version by version. Never edit a shipped entry: add a new one.
pub(crate) const MIGRATIONS: &[Migration] = &[
    // 1: documents, outbox, metadata and the first projection.
    Migration {
        sql: r#"
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE documents (
            doc_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            snapshot BLOB NOT NULL,
            tail_count INTEGER NOT NULL DEFAULT 0,
            tail_bytes INTEGER NOT NULL DEFAULT 0,
            actor BLOB
        );
        CREATE TABLE doc_changes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            doc_id TEXT NOT NULL,
            bytes BLOB NOT NULL
        );
        CREATE INDEX doc_changes_doc ON doc_changes(doc_id, seq);
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            doc_id TEXT NOT NULL,
            hash BLOB NOT NULL,
            bytes BLOB NOT NULL,
            edit TEXT,
            status TEXT NOT NULL DEFAULT 'pending',
            original_hash BLOB,
            review_id INTEGER,
            reason_code TEXT,
            reason TEXT,
            created_at INTEGER NOT NULL,
            UNIQUE (doc_id, hash)
        );
        CREATE INDEX outbox_status ON outbox(status, doc_id, id);
        CREATE TABLE superseded (hash BLOB PRIMARY KEY);
        CREATE TABLE want_full (doc_id TEXT PRIMARY KEY);

        CREATE TABLE accounts (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            status TEXT NOT NULL,
            erp_code TEXT, street TEXT, city TEXT, region TEXT, postal_code TEXT, country TEXT,
            lat REAL, lon REAL, phone TEXT, email TEXT,
            tags TEXT NOT NULL DEFAULT '[]',
            notes TEXT NOT NULL DEFAULT '',
            owner TEXT NOT NULL, team TEXT NOT NULL, visibility TEXT NOT NULL,
            payment_terms TEXT, price_list_id TEXT, currency TEXT NOT NULL, tier TEXT,
            next_visit_at INTEGER, last_visit_at INTEGER,
            created_at INTEGER NOT NULL, created_by TEXT NOT NULL
        );
        CREATE INDEX accounts_name ON accounts(name COLLATE NOCASE);
        CREATE INDEX accounts_next_visit ON accounts(next_visit_at);
        CREATE TABLE contacts (
            id TEXT PRIMARY KEY, account_id TEXT NOT NULL, name TEXT NOT NULL, title TEXT,
            phone TEXT, email TEXT, is_primary INTEGER NOT NULL, deleted INTEGER NOT NULL,
            created_at INTEGER NOT NULL, created_by TEXT NOT NULL
        );
        CREATE INDEX contacts_account ON contacts(account_id);
        CREATE TABLE visits (
            id TEXT PRIMARY KEY, account_id TEXT NOT NULL, status TEXT NOT NULL,
            planned_at INTEGER, checked_in_at INTEGER, checked_out_at INTEGER,
            check_in_lat REAL, check_in_lon REAL, check_out_lat REAL, check_out_lon REAL,
            purpose TEXT, notes TEXT NOT NULL, outcome TEXT, next_step TEXT, cancel_reason TEXT,
            created_at INTEGER NOT NULL, created_by TEXT NOT NULL
        );
        CREATE INDEX visits_planned ON visits(status, planned_at);
        CREATE INDEX visits_account ON visits(account_id, planned_at);
        CREATE TABLE orders (
            id TEXT PRIMARY KEY, account_id TEXT NOT NULL, status TEXT NOT NULL,
            currency TEXT NOT NULL, price_list_id TEXT, visit_id TEXT, notes TEXT,
            net_minor INTEGER NOT NULL, tax_minor INTEGER NOT NULL, gross_minor INTEGER NOT NULL,
            line_count INTEGER NOT NULL,
            submitted_at INTEGER, decided_at INTEGER, erp_ref TEXT, reject_reason TEXT,
            deleted INTEGER NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL
        );
        CREATE INDEX orders_account ON orders(account_id, created_at);
        CREATE INDEX orders_status ON orders(status, created_at);
        CREATE TABLE order_lines (
            id TEXT PRIMARY KEY, order_id TEXT NOT NULL, account_id TEXT NOT NULL,
            product_id TEXT NOT NULL, product_code TEXT NOT NULL, product_name TEXT NOT NULL,
            unit TEXT, unit_price_minor INTEGER NOT NULL, quantity_milli INTEGER NOT NULL,
            discount_bp INTEGER NOT NULL, tax_bp INTEGER NOT NULL,
            net_minor INTEGER NOT NULL, tax_minor INTEGER NOT NULL, deleted INTEGER NOT NULL,
            created_at INTEGER NOT NULL, created_by TEXT NOT NULL
        );
        CREATE INDEX order_lines_order ON order_lines(order_id);
        CREATE TABLE tasks (
            id TEXT PRIMARY KEY, user_id TEXT NOT NULL, title TEXT NOT NULL, due_at INTEGER,
            done INTEGER NOT NULL, done_at INTEGER, account_id TEXT, visit_id TEXT,
            assignee TEXT NOT NULL, notes TEXT NOT NULL, deleted INTEGER NOT NULL,
            created_at INTEGER NOT NULL, created_by TEXT NOT NULL
        );
        CREATE INDEX tasks_due ON tasks(done, due_at);
        CREATE INDEX tasks_account ON tasks(account_id);
        CREATE TABLE preferences (user_id TEXT PRIMARY KEY, language TEXT, currency TEXT, visit_reminder_minutes INTEGER);
        CREATE TABLE products (
            id TEXT PRIMARY KEY, sku TEXT NOT NULL, name TEXT NOT NULL, category TEXT,
            unit TEXT NOT NULL, base_price_minor INTEGER NOT NULL, tax_class TEXT NOT NULL,
            tax_bp INTEGER, active INTEGER NOT NULL
        );
        CREATE INDEX products_name ON products(name COLLATE NOCASE);
        CREATE TABLE price_lists (id TEXT PRIMARY KEY, name TEXT NOT NULL, currency TEXT NOT NULL, active INTEGER NOT NULL);
        CREATE TABLE price_list_items (
            id TEXT PRIMARY KEY, price_list_id TEXT NOT NULL, product_id TEXT NOT NULL,
            price_minor INTEGER NOT NULL, min_qty_milli INTEGER, valid_from INTEGER,
            valid_to INTEGER, deleted INTEGER NOT NULL
        );
        CREATE INDEX price_list_items_product ON price_list_items(product_id);
        "#,
        rebuilds_projection: false,
    },
    // 2: full-text search over account names, cities and contact names. Han characters are
    // indexed one per token so that any run of them matches (Chinese has no spaces).
    Migration {
        sql: r#"
        CREATE VIRTUAL TABLE account_search USING fts5(
            name, city, contacts,
            content = '', contentless_delete = 1,
            tokenize = 'unicode61 remove_diacritics 2',
            prefix = '1 2 3'
        );
        "#,
        rebuilds_projection: true,
    },
    // 3: the agenda ("next planned visits") reads open visits in time order and stops after a
    // page; a partial index over open visits lets it do exactly that instead of sorting all.
    Migration {
        sql: r#"
        CREATE INDEX visits_open_by_time ON visits(planned_at) WHERE status IN ('planned', 'in_progress');
        DROP INDEX visits_planned;
        "#,
        rebuilds_projection: false,
    },
    // 4: a replayed change names every refused change it re-makes, oldest first (a chain of
    // 32-byte hashes; the single hash version 3 stored is a chain of one). The server closes
    // their review items in the commit that stores or parks the replay, and refuses a replay
    // whose original a manager approved meanwhile, so the separate "superseded" report is
    // gone. (No device ever ran version 3 against a server: nothing in that table to keep.)
    // Lists are in a total order (ties broken by ID), so pages never skip or repeat a row
    // and every replica lists the same data the same way; the indexes follow.
    Migration {
        sql: r#"
        ALTER TABLE outbox RENAME COLUMN original_hash TO replaces;
        DROP TABLE superseded;
        DROP INDEX accounts_name;
        CREATE INDEX accounts_name ON accounts(name COLLATE NOCASE, id);
        DROP INDEX accounts_next_visit;
        CREATE INDEX accounts_next_visit ON accounts(next_visit_at, id);
        DROP INDEX visits_open_by_time;
        CREATE INDEX visits_open_by_time ON visits(planned_at, id) WHERE status IN ('planned', 'in_progress');
        "#,
        rebuilds_projection: false,
    },
];

/// The schema version this code writes.
pub(crate) fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Opens (creating if needed) the replica file with the settings every connection needs.
pub(crate) fn open(path: &std::path::Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;
    Ok(conn)
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::corrupt(format!(
            "the file system does not support WAL mode (got {mode})"
        )));
    }
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -8000;",
    )?;
    Ok(())
}

pub(crate) fn version(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Brings the file up to `target` (normally [`current_version`]). Returns whether the
/// projection must be rebuilt. Each step runs in its own transaction.
pub(crate) fn migrate_to(conn: &mut Connection, target: i64) -> Result<bool> {
    let from = version(conn)?;
    if from > current_version() {
        return Err(Error::TooNew {
            found: from,
            known: current_version(),
        });
    }
    let mut rebuild = false;
    for (i, m) in MIGRATIONS
        .iter()
        .enumerate()
        .take(target as usize)
        .skip(from as usize)
    {
        let tx = conn.transaction()?;
        tx.execute_batch(m.sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        // A fresh file has no documents: nothing to rebuild.
        rebuild |= m.rebuilds_projection && from > 0;
        tracing::info!(version = i + 1, "replica schema migrated");
    }
    Ok(rebuild)
}

pub(crate) fn get_meta(conn: &Connection, key: &str) -> Result<Option<String>> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

pub(crate) fn set_meta(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Replica;
    use fieldline_protocol::access::Principal;
    use fieldline_protocol::automerge::{ActorId, transaction::CommitOptions};
    use fieldline_protocol::ids::*;
    use fieldline_protocol::model::*;
    use fieldline_protocol::money::Currency;
    use fieldline_protocol::ops::{self, AccountInput};
    use fieldline_protocol::wire::Identity;

    /// A file written by the first shipped schema, with documents in it, opens with today's
    /// code: the schema is migrated and the projection (including search) rebuilt.
    #[test]
    fn a_version_1_file_upgrades_and_rebuilds_its_projection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let team = TeamId::new();
        let me = Principal {
            user_id: UserId::new(),
            role: Role::Rep,
            teams: vec![team],
            managed_teams: vec![],
            managed_users: vec![],
        };
        let account = AccountId::new();
        {
            let mut conn = open(&path).unwrap();
            assert!(!migrate_to(&mut conn, 1).unwrap());
            assert_eq!(version(&conn).unwrap(), 1);
            let mut doc = fieldline_protocol::doc::skeleton(&DocId::Account(account)).unwrap();
            doc.set_actor(ActorId::random());
            let acl = AccountAcl {
                owner: me.user_id,
                team,
                visibility: Visibility::Private,
            };
            let edit = ops::create_account(
                account,
                acl,
                &AccountInput::named("杭州西湖茶庄", Currency::CNY),
                "",
                &[],
            );
            let mut tx = doc.transaction();
            edit.apply(&mut tx, me.user_id, 1).unwrap();
            tx.commit_with(CommitOptions::default());
            conn.execute(
                "INSERT INTO documents (doc_id, kind, snapshot) VALUES (?1, 'account', ?2)",
                rusqlite::params![DocId::Account(account).to_string(), doc.save()],
            )
            .unwrap();
            let identity = Identity {
                principal: me.clone(),
                username: "rep".into(),
                display_name: "Rep".into(),
            };
            set_meta(
                &conn,
                "identity",
                &serde_json::to_string(&identity).unwrap(),
            )
            .unwrap();
        }
        let r = Replica::open(&path).unwrap();
        assert_eq!(version(&r.lock().conn).unwrap(), current_version());
        assert_eq!(r.accounts_by_name(10, 0).unwrap()[0].name, "杭州西湖茶庄");
        assert_eq!(r.search_accounts("西湖", 10).unwrap().len(), 1);
        assert_eq!(r.identity().unwrap().principal, me);
    }

    #[test]
    fn a_file_from_a_newer_app_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        {
            let conn = open(&path).unwrap();
            conn.pragma_update(None, "user_version", current_version() + 1)
                .unwrap();
        }
        let err = Replica::open(&path).unwrap_err();
        assert_eq!(err.code(), "too_new");
    }
}
