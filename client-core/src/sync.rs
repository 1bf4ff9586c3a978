//! One sync round with the server, without any I/O: [`Replica::prepare_sync`] builds the
//! request, the transport sends it, [`Replica::apply_sync`] applies the answer atomically.
//!
//! ## After a refusal
//! The server parks a refused change in its review queue and says so. Every later change
//! this device made to that document depends on the refused one, so none of them can be
//! accepted as they are. The device therefore *rebases* the document: it replaces its copy
//! with the server's (sent whole in the same response), gives the document a fresh actor,
//! and replays the journaled edits that are not yet acknowledged, in order, through the
//! same validator. Edits that are still allowed become new changes, uploaded next round
//! naming the refused changes they re-make (the server closes those review items in the
//! same commit, so one edit never waits twice for a manager); edits that are not are
//! *parked* on the device, visible in [`Replica::parked_writes`], while the server keeps
//! the original for a manager to approve or dismiss. Nothing the rep recorded is dropped.
//!
//! If a manager approves the original before the replay reaches the server, the server
//! answers the replay with [`Outcome::Stale`] and stores nothing: the device rebases again
//! on the server's copy, which now holds the approved original. A journaled edit whose
//! change (or any earlier rendition of it) is already in the server's copy is done and
//! leaves the outbox without being replayed: an edit is never applied twice (for notes
//! text that would repeat the rep's words; for a field it could overwrite a later edit).
//!
//! Documents the user may no longer read are purged: the document, its projection rows and
//! its search entries, with SQLite's secure delete so the bytes do not linger in the file.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{ActorId, Automerge, Change, ChangeHash, PatchLog, ReadDoc};
use fieldline_protocol::ids::DocId;
use fieldline_protocol::ops::Edit;
use fieldline_protocol::validate::{Authority, WriteContext, touched_by_patches, validate_patches};
use fieldline_protocol::wire::{
    Bytes, ChangeOutcome, Cursor, DocData, DocUpload, Hash, MAX_REPLACED_ORIGINALS, Outcome,
    PROTOCOL_VERSION, Replacement, ReviewNotice, ReviewStatus, STALE_ALREADY_APPLIED, SyncRequest,
    SyncResponse,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::docs::DocStore;
use crate::replica::{Inner, apply_edit};
use crate::{ChangeSet, Error, Replica, Result, projection, store};

/// Upload at most this much per round (the rest goes next round).
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 2 * 1024 * 1024;

/// Ask for at most this many whole documents per round (the server sends them a page at a
/// time anyway; the rest are asked for in the next rounds).
pub const MAX_WANT_FULL_PER_ROUND: i64 = 500;

/// What one round did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncReport {
    pub uploaded: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub documents_received: usize,
    pub purged: usize,
    /// Edits replayed after a refusal that are still allowed.
    pub replayed: usize,
    /// Edits that could not be replayed and now wait for a manager's review.
    pub parked: usize,
    /// The server has more: run another round now.
    pub more: bool,
    /// The server's estimate of documents still to come.
    pub remaining: u64,
    pub changes: ChangeSet,
    /// Review decisions on this user's refused writes.
    pub reviews: Vec<ReviewNotice>,
}

impl Replica {
    /// The server sequence this replica has fully applied.
    pub fn cursor(&self) -> Result<Cursor> {
        cursor(&self.lock().conn)
    }

    /// Builds the next round's request: the cursor, pending changes (at most
    /// `max_upload_bytes`, but always at least one) with the refused originals replays
    /// re-make, documents needed whole. Idempotent: calling it again without applying a
    /// response gives the same.
    pub fn prepare_sync(&self, max_upload_bytes: usize) -> Result<SyncRequest> {
        let inner = self.lock();
        let conn = &inner.conn;
        let mut uploads: Vec<DocUpload> = Vec::new();
        let mut index: BTreeMap<DocId, usize> = BTreeMap::new();
        let mut total = 0usize;
        let mut stmt = conn.prepare_cached(
            "SELECT doc_id, bytes, hash, replaces FROM outbox WHERE status = 'pending' ORDER BY id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let bytes: Vec<u8> = row.get(1)?;
            if total > 0 && total + bytes.len() > max_upload_bytes {
                break;
            }
            total += bytes.len();
            let doc = parse_doc(&row.get::<_, String>(0)?)?;
            let i = *index.entry(doc).or_insert_with(|| {
                uploads.push(DocUpload {
                    doc,
                    changes: Vec::new(),
                    replaces: Vec::new(),
                });
                uploads.len() - 1
            });
            uploads[i].changes.push(Bytes(bytes));
            if let Some(chain) = row.get::<_, Option<Vec<u8>>>(3)? {
                uploads[i].replaces.push(Replacement {
                    change: hash_from(&row.get::<_, Vec<u8>>(2)?)?.into(),
                    originals: chain_from(&chain)?,
                });
            }
        }
        let want_full = conn
            .prepare_cached("SELECT doc_id FROM want_full ORDER BY doc_id LIMIT ?1")?
            .query_map([MAX_WANT_FULL_PER_ROUND], |r| r.get::<_, String>(0))?
            .map(|s| parse_doc(&s?))
            .collect::<Result<Vec<_>>>()?;
        Ok(SyncRequest {
            protocol: PROTOCOL_VERSION,
            device_id: inner.device_id,
            cursor: cursor(conn)?,
            uploads,
            want_full,
        })
    }

    /// Applies the server's answer to `request`, all or nothing.
    pub fn apply_sync(&self, request: &SyncRequest, response: SyncResponse) -> Result<SyncReport> {
        let report = {
            let mut inner = self.lock();
            let report = match inner.apply_sync(request, response) {
                Ok(r) => r,
                Err(e) => {
                    // The transaction rolled back, but cached documents may hold part of the
                    // answer: drop them so the file (the truth) is reloaded and a retry of
                    // the round stores and projects everything.
                    inner.docs.clear();
                    return Err(e);
                }
            };
            if report.purged > 0 {
                // Rewrite the search index and fold the WAL back so purged text is gone from
                // the file, not merely unlinked.
                inner.conn.execute_batch(
                    "INSERT INTO account_search(account_search) VALUES ('optimize');
                     PRAGMA wal_checkpoint(TRUNCATE);",
                )?;
            }
            report
        };
        self.notify(&report.changes);
        Ok(report)
    }
}

fn parse_doc(s: &str) -> Result<DocId> {
    DocId::parse(s).map_err(|e| Error::corrupt(format!("document id: {e}")))
}

fn hash_from(b: &[u8]) -> Result<ChangeHash> {
    ChangeHash::try_from(b).map_err(|_| Error::corrupt("change hash"))
}

/// A stored chain of refused originals: 32-byte hashes, oldest first.
fn chain_from(b: &[u8]) -> Result<Vec<Hash>> {
    if b.is_empty() || !b.len().is_multiple_of(32) {
        return Err(Error::corrupt("chain of replaced changes"));
    }
    b.chunks_exact(32)
        .map(|c| hash_from(c).map(Into::into))
        .collect()
}

/// The chain a replay of a refused change carries: the refused change's own chain plus
/// itself, keeping the newest [`MAX_REPLACED_ORIGINALS`] (older items, if a chain ever got
/// that long, stay open for a manager: noise, never loss).
fn extend_chain(chain: Option<Vec<u8>>, refused: &[u8]) -> Vec<u8> {
    let mut out = chain.unwrap_or_default();
    out.extend_from_slice(refused);
    let keep = MAX_REPLACED_ORIGINALS * 32;
    if out.len() > keep {
        out.drain(..out.len() - keep);
    }
    out
}

fn cursor(conn: &Connection) -> Result<Cursor> {
    Ok(Cursor(
        store::get_meta(conn, "cursor")?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    ))
}

fn load_whole(parts: &[Bytes]) -> Result<Automerge> {
    let (first, rest) = parts
        .split_first()
        .ok_or_else(|| Error::corrupt("an empty whole document"))?;
    let mut doc =
        Automerge::load(&first.0).map_err(|e| Error::corrupt(format!("whole document: {e}")))?;
    for part in rest {
        doc.load_incremental(&part.0)
            .map_err(|e| Error::corrupt(format!("whole document tail: {e}")))?;
    }
    Ok(doc)
}

impl Inner {
    fn apply_sync(&mut self, request: &SyncRequest, response: SyncResponse) -> Result<SyncReport> {
        if let Some(current) = &self.identity
            && current.principal.user_id != response.identity.principal.user_id
        {
            return Err(Error::Rule(fieldline_protocol::Error::Forbidden {
                action: "sync this replica as another user (each user has their own replica file)"
                    .into(),
            }));
        }
        // Nothing new (the common case on a phone that syncs often): no write, no fsync.
        let quiet = response.docs.is_empty()
            && response.purged.is_empty()
            && response.outcomes.is_empty()
            && response.reviews.is_empty()
            && request.want_full.is_empty()
            && response.cursor == cursor(&self.conn)?
            && self.identity.as_ref() == Some(&response.identity);
        if quiet {
            return Ok(SyncReport {
                more: response.more,
                remaining: response.remaining,
                ..SyncReport::default()
            });
        }
        let identity = response.identity.clone();
        let principal = identity.principal.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut report = SyncReport {
            more: response.more,
            remaining: response.remaining,
            ..SyncReport::default()
        };
        report.uploaded = request.uploads.iter().map(|u| u.changes.len()).sum();
        store::set_meta(&tx, "identity", &serde_json::to_string(&identity)?)?;

        // 1. The fate of what we uploaded.
        let mut to_rebase: BTreeSet<DocId> = BTreeSet::new();
        for ChangeOutcome { doc, hash, result } in &response.outcomes {
            match result {
                Outcome::Accepted => {
                    tx.execute(
                        "DELETE FROM outbox WHERE doc_id = ?1 AND hash = ?2",
                        params![doc.to_string(), hash.0.to_vec()],
                    )?;
                    report.accepted += 1;
                }
                Outcome::Stale { code, message } => {
                    // Not stored, not parked: rebase, and the replay finds its edit there.
                    tx.execute(
                        "UPDATE outbox SET status = 'stale', reason_code = ?3, reason = ?4
                         WHERE doc_id = ?1 AND hash = ?2",
                        params![doc.to_string(), hash.0.to_vec(), code, message],
                    )?;
                    to_rebase.insert(*doc);
                }
                Outcome::Rejected {
                    review_id,
                    code,
                    message,
                } => {
                    tx.execute(
                        "UPDATE outbox SET status = 'rejected', review_id = ?3, reason_code = ?4, reason = ?5
                         WHERE doc_id = ?1 AND hash = ?2",
                        params![doc.to_string(), hash.0.to_vec(), review_id, code, message],
                    )?;
                    to_rebase.insert(*doc);
                    report.rejected += 1;
                }
                Outcome::MissingDeps { missing } => {
                    // Upload what the server lacks (changes received from peers) next round.
                    let now = (self.clock)();
                    let mut lacking = false;
                    if let Some(d) = self.docs.get(&tx, *doc)? {
                        for m in missing {
                            match d.get_change_by_hash(&ChangeHash::from(*m)) {
                                Some(c) => {
                                    tx.execute(
                                        "INSERT OR IGNORE INTO outbox (doc_id, hash, bytes, created_at) VALUES (?1, ?2, ?3, ?4)",
                                        params![doc.to_string(), m.0.to_vec(), c.raw_bytes().to_vec(), now],
                                    )?;
                                }
                                None => lacking = true,
                            }
                        }
                    }
                    if lacking {
                        tx.execute(
                            "INSERT OR IGNORE INTO want_full (doc_id) VALUES (?1)",
                            [doc.to_string()],
                        )?;
                    }
                    report.changes.outbox = true;
                }
            }
        }

        // 2. Documents that were purged: gone from this device, whatever else arrives.
        let purged: BTreeSet<DocId> = response.purged.iter().copied().collect();
        for doc in &purged {
            projection::delete_doc_rows(&tx, *doc)?;
            self.docs.delete(&tx, *doc)?;
            tx.execute("DELETE FROM want_full WHERE doc_id = ?1", [doc.to_string()])?;
            // Refused writes stay parked; unacknowledged ones (stale ones too: they have no
            // review item yet) are uploaded again and the server parks them for review, so
            // nothing the rep recorded is dropped.
            tx.execute(
                "UPDATE outbox SET status = 'parked' WHERE doc_id = ?1 AND status = 'rejected'",
                [doc.to_string()],
            )?;
            // A stale replay of an approved edit is done (the edit is in the document);
            // other stale changes go back to the outbox.
            tx.execute(
                "DELETE FROM outbox WHERE doc_id = ?1 AND status = 'stale' AND reason_code = ?2",
                params![doc.to_string(), STALE_ALREADY_APPLIED],
            )?;
            tx.execute(
                "UPDATE outbox SET status = 'pending' WHERE doc_id = ?1 AND status = 'stale'",
                [doc.to_string()],
            )?;
            if let DocId::Account(a) = doc {
                report.changes.purged.insert(*a);
            }
            report.purged += 1;
        }

        // 3. What changed on the server.
        for payload in response.docs {
            if purged.contains(&payload.doc) {
                continue;
            }
            report.documents_received += 1;
            if matches!(payload.data, DocData::Whole(_)) {
                // Wanted documents arrive a page at a time: only those that came are done.
                tx.execute(
                    "DELETE FROM want_full WHERE doc_id = ?1",
                    [payload.doc.to_string()],
                )?;
            }
            let has_rejected: bool = tx
                .query_row(
                    "SELECT 1 FROM outbox WHERE doc_id = ?1 AND status IN ('rejected', 'stale') LIMIT 1",
                    [payload.doc.to_string()],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            match payload.data {
                DocData::Whole(parts) if has_rejected || to_rebase.contains(&payload.doc) => {
                    let server_doc = load_whole(&parts)?;
                    let (replayed, parked) = rebase(
                        &tx,
                        &mut self.docs,
                        payload.doc,
                        server_doc,
                        &principal,
                        &mut report.changes,
                    )?;
                    report.replayed += replayed;
                    report.parked += parked;
                    to_rebase.remove(&payload.doc);
                }
                DocData::Whole(parts) => {
                    let incoming = load_whole(&parts)?;
                    let merged = match self.docs.get(&tx, payload.doc)? {
                        Some(local) => {
                            let mut m = local.fork();
                            m.merge(&mut incoming.clone())?;
                            m
                        }
                        None => incoming,
                    };
                    projection::project_doc(&tx, payload.doc, &merged, &mut report.changes)?;
                    self.docs.replace(&tx, payload.doc, merged, false)?;
                }
                DocData::Changes(list) => {
                    apply_changes(&tx, &mut self.docs, payload.doc, &list, &mut report.changes)?
                }
            }
        }
        // Refused documents the server did not send whole: ask for them next round.
        for doc in to_rebase.difference(&purged) {
            tx.execute(
                "INSERT OR IGNORE INTO want_full (doc_id) VALUES (?1)",
                [doc.to_string()],
            )?;
        }

        // 4. Review decisions on earlier refusals.
        for notice in &response.reviews {
            if notice.status != ReviewStatus::Open {
                tx.execute(
                    "DELETE FROM outbox WHERE review_id = ?1 AND status IN ('parked', 'rejected')",
                    [notice.review_id],
                )?;
                report.changes.outbox = true;
            }
        }
        report.reviews = response.reviews;

        store::set_meta(&tx, "cursor", &response.cursor.0.to_string())?;
        tx.commit()?;
        if report.rejected > 0 || report.accepted > 0 {
            report.changes.outbox = true;
        }
        self.identity = Some(identity);
        Ok(report)
    }
}

/// Applies changes the server sent after our cursor.
fn apply_changes(
    conn: &Connection,
    docs: &mut DocStore,
    doc_id: DocId,
    list: &[Bytes],
    changes: &mut ChangeSet,
) -> Result<()> {
    let (doc, created) = docs.get_or_create(conn, doc_id)?;
    let mut fresh: Vec<(Change, Vec<u8>)> = Vec::new();
    for b in list {
        let c = Change::from_bytes(b.0.clone())
            .map_err(|e| Error::corrupt(format!("change from server: {e}")))?;
        if doc.get_change_by_hash(&c.hash()).is_none() {
            fresh.push((c, b.0.clone()));
        }
    }
    if fresh.is_empty() {
        return Ok(());
    }
    let mut log = PatchLog::active();
    doc.apply_changes_log_patches(
        fresh.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>(),
        &mut log,
    )?;
    let missing = !doc.get_missing_deps(&[]).is_empty();
    let touched = touched_by_patches(doc_id, &doc.make_patches(&mut log));
    for (_, bytes) in &fresh {
        docs.append_change(conn, doc_id, bytes)?;
    }
    let doc = docs
        .get(conn, doc_id)?
        .ok_or_else(|| Error::corrupt("document vanished"))?;
    match touched {
        Ok(t) if !created => projection::project_records(conn, doc_id, doc, &t, changes)?,
        _ => projection::project_doc(conn, doc_id, doc, changes)?,
    }
    if missing {
        // We lack history these changes build on (a document we never had): ask for it whole.
        conn.execute(
            "INSERT OR IGNORE INTO want_full (doc_id) VALUES (?1)",
            [doc_id.to_string()],
        )?;
    }
    Ok(())
}

/// An unacknowledged outbox row: id, change hash, journaled edit (none for relayed peer
/// changes), status, chain of refused originals it replaces, time of the edit.
type OutboxRow = (i64, Vec<u8>, Option<String>, String, Option<Vec<u8>>, i64);

/// Replaces our copy with the server's and replays the unacknowledged edits on it.
fn rebase(
    conn: &Connection,
    docs: &mut DocStore,
    doc_id: DocId,
    server_doc: Automerge,
    principal: &fieldline_protocol::access::Principal,
    changes: &mut ChangeSet,
) -> Result<(usize, usize)> {
    // The catalog as it is after this round's changes (order lines are checked against it).
    let catalog = match docs.get(conn, DocId::Catalog)? {
        Some(c) => Some(fieldline_protocol::doc::Reader::new(&*c).catalog()?),
        None => None,
    };
    let actor = ActorId::random();
    let mut doc = server_doc;
    doc.set_actor(actor.clone());
    let rows: Vec<OutboxRow> = conn
        .prepare(
            "SELECT id, hash, edit, status, replaces, created_at FROM outbox
                 WHERE doc_id = ?1 AND status IN ('pending', 'rejected', 'stale') ORDER BY id",
        )?
        .query_map([doc_id.to_string()], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let (mut replayed, mut parked) = (0, 0);
    for (row, old_hash, edit, status, chain, at) in rows {
        // Already in the server's copy: this change itself (accepted, but the answer was
        // lost) or an earlier rendition of the edit (approved by a manager). Done; replaying
        // it would make the edit a second time.
        let applied = std::iter::once(old_hash.as_slice())
            .chain(chain.as_deref().unwrap_or_default().chunks_exact(32))
            .any(|h| {
                hash_from(h)
                    .map(|h| doc.get_change_by_hash(&h).is_some())
                    .unwrap_or(false)
            });
        if applied {
            conn.execute("DELETE FROM outbox WHERE id = ?1", [row])?;
            continue;
        }
        let park = |conn: &Connection, code: &str, reason: String| -> Result<()> {
            conn.execute(
                    "UPDATE outbox SET status = 'parked',
                        reason_code = COALESCE(reason_code, ?2), reason = COALESCE(reason, ?3) WHERE id = ?1",
                    params![row, code, reason],
                )?;
            Ok(())
        };
        let Some(edit) = edit else {
            // A change relayed from a peer: it cannot be re-made here.
            park(
                conn,
                "depends_on_rejected",
                "a change it builds on was refused".into(),
            )?;
            parked += 1;
            continue;
        };
        let edit: Edit = serde_json::from_str(&edit)?;
        let mut trial = doc.fork();
        trial.set_actor(actor.clone());
        let before = trial.get_heads();
        let outcome = apply_edit(&mut trial, &edit, principal.user_id, at).and_then(|patches| {
            let Some(patches) = patches else {
                return Ok(None);
            };
            let ctx = WriteContext {
                principal,
                doc_id,
                authority: Authority::Device,
                catalog: catalog.as_ref(),
            };
            validate_patches(&ctx, &trial, &before, &patches)?;
            Ok(Some(()))
        });
        match outcome {
            Ok(Some(())) => {
                let change = trial
                    .get_last_local_change()
                    .ok_or_else(|| Error::corrupt("replayed change is missing"))?;
                // A refused change joins the chain this replay re-makes (a stale one was
                // neither stored nor parked: there is nothing to close for it).
                let chain = if status == "rejected" {
                    Some(extend_chain(chain, &old_hash))
                } else {
                    chain
                };
                conn.execute(
                    "UPDATE outbox SET hash = ?2, bytes = ?3, status = 'pending', replaces = ?4,
                            reason_code = NULL, reason = NULL WHERE id = ?1",
                    params![
                        row,
                        change.hash().0.to_vec(),
                        change.raw_bytes().to_vec(),
                        chain
                    ],
                )?;
                doc = trial;
                replayed += 1;
            }
            Ok(None) => {
                // Already in the server's state (approved meanwhile): nothing left to do.
                conn.execute("DELETE FROM outbox WHERE id = ?1", [row])?;
            }
            Err(e) => {
                park(conn, e.code(), e.to_string())?;
                parked += 1;
            }
        }
    }
    projection::project_doc(conn, doc_id, &doc, changes)?;
    docs.replace(conn, doc_id, doc, true)?;
    changes.outbox = true;
    Ok((replayed, parked))
}
