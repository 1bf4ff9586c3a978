//! Document storage: each automerge document is a saved snapshot plus the changes appended
//! since, in the same SQLite file as everything else.
//!
//! Appending a change costs what the change weighs, not what the document weighs; once the
//! tail grows past a threshold the document is re-saved as one compressed snapshot
//! (compaction). Loaded documents live in a small LRU cache so opening the replica loads
//! nothing and a rep editing one account keeps it warm.

use std::num::NonZeroUsize;

use automerge::{ActorId, Automerge};
use fieldline_protocol::doc::skeleton;
use fieldline_protocol::ids::DocId;
use lru::LruCache;
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Error, Result};

/// Compact when the tail has this many changes…
const COMPACT_AFTER_CHANGES: i64 = 48;
/// …or weighs more than the snapshot and at least this much.
const COMPACT_MIN_BYTES: i64 = 16 * 1024;

pub(crate) struct DocStore {
    cache: LruCache<DocId, Automerge>,
    /// The replica's default actor; a document gets its own after a rebase.
    actor: ActorId,
}

impl DocStore {
    pub fn new(actor: ActorId, capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        DocStore {
            cache: LruCache::new(cap),
            actor,
        }
    }

    pub fn exists(conn: &Connection, doc: DocId) -> Result<bool> {
        Ok(conn
            .query_row(
                "SELECT 1 FROM documents WHERE doc_id = ?1",
                [doc.to_string()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// The document, loading it into the cache if needed; `None` if this replica lacks it.
    pub fn get(&mut self, conn: &Connection, doc: DocId) -> Result<Option<&mut Automerge>> {
        if !self.cache.contains(&doc) {
            let Some(loaded) = self.load(conn, doc)? else {
                return Ok(None);
            };
            self.cache.put(doc, loaded);
        }
        Ok(self.cache.get_mut(&doc))
    }

    /// The document, or a fresh skeleton stored right away (the caller is inside the write
    /// transaction, so a failed edit rolls the new row back). Returns whether it was new.
    pub fn get_or_create(
        &mut self,
        conn: &Connection,
        doc: DocId,
    ) -> Result<(&mut Automerge, bool)> {
        let created = if self.cache.contains(&doc) || Self::exists(conn, doc)? {
            false
        } else {
            let mut fresh = skeleton(&doc)?;
            fresh.set_actor(self.actor.clone());
            insert(conn, doc, &fresh.save(), None)?;
            self.cache.put(doc, fresh);
            true
        };
        let d = self
            .get(conn, doc)?
            .ok_or_else(|| Error::corrupt(format!("document {doc} vanished")))?;
        Ok((d, created))
    }

    /// Loads a document from the file without caching it (projection rebuilds walk them all).
    pub fn load(&self, conn: &Connection, doc: DocId) -> Result<Option<Automerge>> {
        let row: Option<(Vec<u8>, Option<Vec<u8>>)> = conn
            .query_row(
                "SELECT snapshot, actor FROM documents WHERE doc_id = ?1",
                [doc.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((snapshot, actor)) = row else {
            return Ok(None);
        };
        let mut d = Automerge::load(&snapshot)
            .map_err(|e| Error::corrupt(format!("document {doc}: {e}")))?;
        let mut stmt =
            conn.prepare_cached("SELECT bytes FROM doc_changes WHERE doc_id = ?1 ORDER BY seq")?;
        let mut tail = Vec::new();
        for bytes in stmt.query_map([doc.to_string()], |r| r.get::<_, Vec<u8>>(0))? {
            tail.extend_from_slice(&bytes?);
        }
        if !tail.is_empty() {
            d.load_incremental(&tail)
                .map_err(|e| Error::corrupt(format!("document {doc} changes: {e}")))?;
        }
        d.set_actor(
            actor
                .map(|a| ActorId::from(a.as_slice()))
                .unwrap_or_else(|| self.actor.clone()),
        );
        Ok(Some(d))
    }

    /// Forgets the cached copy (after a failed edit, the file is the truth).
    /// Forgets every cached copy (after a failed multi-document operation).
    pub fn clear(&mut self) {
        self.cache.clear();
    }

    pub fn evict(&mut self, doc: DocId) {
        self.cache.pop(&doc);
    }

    /// Appends one change durably; compacts the document when its tail has grown.
    pub fn append_change(&mut self, conn: &Connection, doc: DocId, bytes: &[u8]) -> Result<()> {
        conn.prepare_cached("INSERT INTO doc_changes (doc_id, bytes) VALUES (?1, ?2)")?
            .execute(params![doc.to_string(), bytes])?;
        let (count, tail, snap): (i64, i64, i64) = conn
            .prepare_cached(
                "UPDATE documents SET tail_count = tail_count + 1, tail_bytes = tail_bytes + ?2
                 WHERE doc_id = ?1 RETURNING tail_count, tail_bytes, length(snapshot)",
            )?
            .query_row(params![doc.to_string(), bytes.len() as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        if (count >= COMPACT_AFTER_CHANGES || (tail > snap && tail >= COMPACT_MIN_BYTES))
            && let Some(d) = self.get(conn, doc)?
        {
            let saved = d.save();
            write_snapshot(conn, doc, &saved)?;
        }
        Ok(())
    }

    /// Replaces a document wholesale (received whole from the server, or rebased). With
    /// `new_actor` the document gets an actor of its own from now on: after a rebase the
    /// replica's old changes may still reach the server (approved from review), and a new
    /// change must never reuse one of their sequence numbers.
    pub fn replace(
        &mut self,
        conn: &Connection,
        doc: DocId,
        mut d: Automerge,
        new_actor: bool,
    ) -> Result<()> {
        let stored: Option<Option<Vec<u8>>> = conn
            .query_row(
                "SELECT actor FROM documents WHERE doc_id = ?1",
                [doc.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        let own_actor = if new_actor {
            Some(ActorId::random())
        } else {
            stored
                .clone()
                .flatten()
                .map(|a| ActorId::from(a.as_slice()))
        };
        d.set_actor(own_actor.clone().unwrap_or_else(|| self.actor.clone()));
        let saved = d.save();
        match stored {
            Some(_) => {
                write_snapshot(conn, doc, &saved)?;
                conn.execute(
                    "UPDATE documents SET actor = ?2 WHERE doc_id = ?1",
                    params![doc.to_string(), own_actor.map(|a| a.to_bytes().to_vec())],
                )?;
            }
            None => insert(conn, doc, &saved, own_actor.as_ref())?,
        }
        self.cache.put(doc, d);
        Ok(())
    }

    /// Deletes a document and its changes (the user may no longer read it).
    pub fn delete(&mut self, conn: &Connection, doc: DocId) -> Result<()> {
        conn.execute(
            "DELETE FROM doc_changes WHERE doc_id = ?1",
            [doc.to_string()],
        )?;
        conn.execute("DELETE FROM documents WHERE doc_id = ?1", [doc.to_string()])?;
        self.cache.pop(&doc);
        Ok(())
    }

    /// Every stored document ID.
    pub fn all_ids(conn: &Connection) -> Result<Vec<DocId>> {
        let mut stmt = conn.prepare("SELECT doc_id FROM documents ORDER BY doc_id")?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .map(|s| -> Result<DocId> {
                DocId::parse(&s?).map_err(|e| Error::corrupt(format!("document id: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ids)
    }
}

fn insert(conn: &Connection, doc: DocId, snapshot: &[u8], actor: Option<&ActorId>) -> Result<()> {
    conn.execute(
        "INSERT INTO documents (doc_id, kind, snapshot, actor) VALUES (?1, ?2, ?3, ?4)",
        params![
            doc.to_string(),
            doc.kind().as_str(),
            snapshot,
            actor.map(|a| a.to_bytes().to_vec())
        ],
    )?;
    Ok(())
}

fn write_snapshot(conn: &Connection, doc: DocId, snapshot: &[u8]) -> Result<()> {
    conn.prepare_cached(
        "UPDATE documents SET snapshot = ?2, tail_count = 0, tail_bytes = 0 WHERE doc_id = ?1",
    )?
    .execute(params![doc.to_string(), snapshot])?;
    conn.prepare_cached("DELETE FROM doc_changes WHERE doc_id = ?1")?
        .execute([doc.to_string()])?;
    Ok(())
}
