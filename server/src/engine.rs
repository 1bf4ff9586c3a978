//! The document engine: judges uploads, applies the server's own edits, approves reviewed
//! changes — all through the protocol's one validator — and keeps a bounded cache of loaded
//! documents.
//!
//! Each upload is judged change by change, in dependency order, on a fork of the stored
//! document: a change that passes becomes part of the fork, one that fails is parked in
//! the review queue (as is every change built on it). Only then are the accepted changes
//! stored and the document's metadata refreshed, in one transaction, so no one can ever
//! read a change that was not judged.
//!
//! Memory stays bounded: at most `cache_docs` documents are kept loaded, whatever the
//! number stored; a per-document lock (striped, so bounded too) serialises writers of
//! the same document.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard};

use automerge::{
    ActorId, Automerge, Change, ChangeHash, PatchLog, ReadDoc, transaction::CommitOptions,
};
use fieldline_protocol::access::{Principal, can_read_doc};
use fieldline_protocol::doc::{Catalog, Reader, skeleton};
use fieldline_protocol::ids::*;
use fieldline_protocol::model::AccountAcl;
use fieldline_protocol::ops::{Applied, Edit};
use fieldline_protocol::validate::{Authority, WriteContext, validate_patches};
use fieldline_protocol::wire::{
    ChangeOutcome, Hash, Outcome, ReviewStatus, STALE_ALREADY_APPLIED, STALE_BUILDS_ON_STALE,
};
use lru::LruCache;
use tokio::sync::broadcast;

use crate::metrics::Metrics;
use crate::store::*;
use crate::{Error, Result};

/// The refused originals an uploaded change re-makes (none for ordinary changes).
fn originals_of<'a>(
    replaces: &'a HashMap<ChangeHash, Vec<ChangeHash>>,
    c: &Change,
) -> &'a [ChangeHash] {
    replaces.get(&c.hash()).map(Vec::as_slice).unwrap_or(&[])
}

/// Compact a document into a snapshot once this many changes follow the last one.
const COMPACT_AFTER: u64 = 64;
const STRIPES: usize = 64;

/// Something that happened, for live push to connected devices.
#[derive(Clone, Debug)]
pub enum Event {
    /// A document changed (new changes at `seq`); `meta` tells who may read it now.
    Doc {
        seq: Seq,
        meta: DocMeta,
        acl_changed: bool,
    },
    /// A user's memberships or role changed.
    Access { user: UserId },
    /// A review item of this user was resolved.
    Review { user: UserId },
}

/// One uploaded document's changes, already parsed.
pub struct ParsedUpload {
    pub doc: DocId,
    pub changes: Vec<Change>,
    /// Changes that re-make refused ones: change → the refused originals it stands for.
    pub replaces: HashMap<ChangeHash, Vec<ChangeHash>>,
}

pub struct Engine {
    store: Arc<dyn Store>,
    cache: Mutex<LruCache<DocId, Automerge>>,
    stripes: Vec<Mutex<()>>,
    /// This process's actor for the server's own edits (each process has its own, so
    /// several nodes never reuse a sequence number).
    actor: ActorId,
    catalog: Mutex<Option<(Vec<ChangeHash>, Arc<Catalog>)>>,
    events: broadcast::Sender<Event>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

/// Owner, team, visibility and name of a document, from its content.
pub fn meta_of(doc_id: DocId, doc: &Automerge) -> Result<DocMeta> {
    let r = Reader::new(doc);
    Ok(match doc_id {
        DocId::Account(_) => {
            let acl = r.account_acl()?;
            let name = r
                .record(&fieldline_protocol::schema::RecordPath::Account)?
                .and_then(|f| f.string("name"));
            DocMeta {
                doc_id,
                owner: acl.map(|a| a.owner),
                team: acl.map(|a| a.team),
                visibility: acl.map(|a| a.visibility),
                name,
            }
        }
        DocId::User(u) => DocMeta {
            doc_id,
            owner: Some(u),
            team: None,
            visibility: None,
            name: None,
        },
        DocId::Catalog => DocMeta {
            doc_id,
            owner: None,
            team: None,
            visibility: None,
            name: None,
        },
    })
}

/// The ACL a metadata row implies for account documents.
pub fn acl_of(meta: &DocMeta) -> Option<AccountAcl> {
    Some(AccountAcl {
        owner: meta.owner?,
        team: meta.team?,
        visibility: meta.visibility?,
    })
}

/// Orders a batch so that every change comes after the changes of the batch it depends on.
fn dependency_order(changes: Vec<Change>) -> Vec<Change> {
    let in_batch: BTreeSet<ChangeHash> = changes.iter().map(|c| c.hash()).collect();
    let mut pending: Vec<Change> = changes;
    let mut done: BTreeSet<ChangeHash> = BTreeSet::new();
    let mut out = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for c in pending {
            if c.deps()
                .iter()
                .all(|d| !in_batch.contains(d) || done.contains(d))
            {
                done.insert(c.hash());
                out.push(c);
            } else {
                rest.push(c);
            }
        }
        if rest.len() == before {
            // A cycle cannot happen with real hashes; keep the rest in the given order.
            out.extend(rest);
            break;
        }
        pending = rest;
    }
    out
}

/// The changes of `doc` not in the history of `since`, ready to store.
fn new_changes(doc: &Automerge, since: &[ChangeHash]) -> Vec<NewChange> {
    doc.get_changes(since)
        .into_iter()
        .map(|mut c| NewChange {
            hash: c.hash(),
            bytes: c.bytes().to_vec(),
        })
        .collect()
}

/// The changes to store for accepted uploads: the document's skeleton first if the server
/// did not have the document yet.
fn with_skeleton_if_new(original: &Automerge, is_new: bool, accepted: &[Change]) -> Vec<NewChange> {
    let mut changes = if is_new {
        new_changes(original, &[])
    } else {
        Vec::new()
    };
    changes.extend(accepted.iter().map(|c| NewChange {
        hash: c.hash(),
        bytes: c.raw_bytes().to_vec(),
    }));
    changes
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, cache_docs: usize, metrics: Arc<Metrics>) -> Self {
        let (events, _) = broadcast::channel(1024);
        Engine {
            store,
            cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(cache_docs.max(1)).unwrap_or(NonZeroUsize::MIN),
            )),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            actor: ActorId::random(),
            catalog: Mutex::new(None),
            events,
            metrics,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub fn publish(&self, event: Event) {
        // No subscribers is normal (no device online).
        let _ = self.events.send(event);
    }

    fn stripe(&self, doc: DocId) -> MutexGuard<'_, ()> {
        use std::hash::{Hash as _, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        doc.hash(&mut h);
        let i = (h.finish() as usize) % self.stripes.len();
        self.stripes[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a document out of the cache or loads it; `None` if it is not stored.
    /// Call with the document's stripe held.
    fn take(&self, doc: DocId) -> Result<Option<Automerge>> {
        if let Some(d) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop(&doc)
        {
            self.metrics.inc(&self.metrics.doc_cache_hits);
            return Ok(Some(d));
        }
        self.metrics.inc(&self.metrics.doc_loads);
        let Some(stored) = self.store.load_doc(doc)? else {
            return Ok(None);
        };
        let mut d = Automerge::new();
        for part in &stored.parts {
            d.load_incremental(part).map_err(|e| {
                Error::Internal(format!("stored document {doc} does not load: {e}"))
            })?;
        }
        Ok(Some(d))
    }

    /// The stored document taken from the cache (or loaded), or its skeleton if it does not
    /// exist yet (then `true`: a new document, whose skeleton is stored with its first
    /// changes). The caller holds the document's lock.
    fn take_or_skeleton(&self, doc: DocId) -> Result<(Automerge, bool)> {
        Ok(match self.take(doc)? {
            Some(d) => (d, false),
            None => (skeleton(&doc)?, true),
        })
    }

    fn give_back(&self, doc: DocId, d: Automerge) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(doc, d);
    }

    /// How many documents are loaded right now.
    pub fn cached_documents(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The typed catalog (for checking ordered products), rebuilt when the catalog changes.
    pub fn catalog(&self) -> Result<Arc<Catalog>> {
        let doc = {
            let _g = self.stripe(DocId::Catalog);
            let d = self.take(DocId::Catalog)?;
            let heads = d.as_ref().map(Automerge::get_heads).unwrap_or_default();
            let cached = self
                .catalog
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some((h, c)) = cached
                && h == heads
            {
                if let Some(d) = d {
                    self.give_back(DocId::Catalog, d);
                }
                return Ok(c);
            }
            let c = Arc::new(match &d {
                Some(d) => Reader::new(d).catalog()?,
                None => Catalog::default(),
            });
            *self.catalog.lock().unwrap_or_else(|p| p.into_inner()) = Some((heads, c.clone()));
            if let Some(d) = d {
                self.give_back(DocId::Catalog, d);
            }
            c
        };
        Ok(doc)
    }

    /// Judges and stores one device's uploads. Returns one outcome per uploaded change.
    pub fn upload(
        &self,
        p: &Principal,
        device: DeviceId,
        uploads: Vec<ParsedUpload>,
        now: i64,
    ) -> Result<Vec<ChangeOutcome>> {
        let mut outcomes = Vec::new();
        if uploads.is_empty() {
            return Ok(outcomes);
        }
        let catalog = self.catalog()?;
        for up in uploads {
            outcomes.extend(self.upload_doc(p, device, up, &catalog, now)?);
        }
        Ok(outcomes)
    }

    #[allow(clippy::too_many_arguments)]
    fn park(
        &self,
        p: &Principal,
        device: DeviceId,
        doc: DocId,
        c: &Change,
        supersedes: &[ChangeHash],
        code: &str,
        message: &str,
        now: i64,
    ) -> Result<ChangeOutcome> {
        let review_id = self.store.park(&NewReview {
            doc_id: doc,
            hash: c.hash(),
            bytes: c.raw_bytes().to_vec(),
            user: p.user_id,
            device,
            code: code.to_owned(),
            message: message.to_owned(),
            received_at: now,
            supersedes: supersedes.to_vec(),
        })?;
        self.metrics.inc(&self.metrics.changes_rejected);
        tracing::info!(user = %p.user_id, doc = %doc, code, review_id, "change refused and parked for review");
        Ok(ChangeOutcome {
            doc,
            hash: c.hash().into(),
            result: Outcome::Rejected {
                review_id,
                code: code.to_owned(),
                message: message.to_owned(),
            },
        })
    }

    fn upload_doc(
        &self,
        p: &Principal,
        device: DeviceId,
        up: ParsedUpload,
        catalog: &Catalog,
        now: i64,
    ) -> Result<Vec<ChangeOutcome>> {
        let doc_id = up.doc;
        let _g = self.stripe(doc_id);
        let meta = self.store.doc_meta(doc_id)?;
        // Cheap refusals before loading anything: documents the user may not even read, and
        // documents only the server creates.
        let refusal = match (&meta, doc_id) {
            (None, DocId::Account(_)) => None,
            (None, _) => Some("this document does not exist"),
            (Some(m), _) if !can_read_doc(p, &doc_id, acl_of(m).as_ref()) => {
                Some("you may not read or write this document")
            }
            _ => None,
        };
        if let Some(message) = refusal {
            return up
                .changes
                .iter()
                .map(|c| {
                    let originals = originals_of(&up.replaces, c);
                    self.park(p, device, doc_id, c, originals, "forbidden", message, now)
                })
                .collect();
        }
        let (original, is_new) = self.take_or_skeleton(doc_id)?;
        let mut doc = original.fork();
        let mut outcomes = Vec::new();
        let mut accepted: Vec<Change> = Vec::new();
        let mut supersedes: Vec<ChangeHash> = Vec::new();
        let mut refused: BTreeSet<ChangeHash> = BTreeSet::new();
        let mut stale: BTreeSet<ChangeHash> = BTreeSet::new();
        let replaces = up.replaces;
        for c in dependency_order(up.changes) {
            let hash = c.hash();
            if doc.get_change_by_hash(&hash).is_some() {
                outcomes.push(ChangeOutcome {
                    doc: doc_id,
                    hash: hash.into(),
                    result: Outcome::Accepted,
                });
                continue;
            }
            let originals = originals_of(&replaces, &c);
            let missing: Vec<ChangeHash> = c
                .deps()
                .iter()
                .filter(|d| doc.get_change_by_hash(d).is_none())
                .copied()
                .collect();
            // A replay of an edit a manager approved meanwhile: the original is in the
            // document already, applying the replay too would make the edit twice (notes
            // text would appear twice). Refuse it without parking; the device rebases.
            let mut stale_reason = None;
            if !originals.is_empty() {
                let states = self.store.review_states(p.user_id, doc_id, originals)?;
                if states.iter().any(|(_, _, s)| *s == ReviewStatus::Approved) {
                    // The other renditions of this edit still waiting are moot now.
                    let open: Vec<ChangeHash> = states
                        .iter()
                        .filter(|(_, _, s)| *s == ReviewStatus::Open)
                        .map(|(h, _, _)| *h)
                        .collect();
                    self.store.supersede(p.user_id, &open, now)?;
                    stale_reason = Some((
                        STALE_ALREADY_APPLIED,
                        "a manager already applied the edit it replays",
                    ));
                }
            }
            if stale_reason.is_none() && missing.iter().any(|d| stale.contains(d)) {
                stale_reason = Some((
                    STALE_BUILDS_ON_STALE,
                    "it builds on a replayed edit that was already applied",
                ));
            }
            if let Some((code, message)) = stale_reason {
                stale.insert(hash);
                outcomes.push(ChangeOutcome {
                    doc: doc_id,
                    hash: hash.into(),
                    result: Outcome::Stale {
                        code: code.into(),
                        message: message.into(),
                    },
                });
                continue;
            }
            let mut depends_on_refused = missing.iter().any(|d| refused.contains(d));
            if !depends_on_refused {
                for m in &missing {
                    if self.store.parked_id(doc_id, m)?.is_some() {
                        depends_on_refused = true;
                        break;
                    }
                }
            }
            if depends_on_refused {
                refused.insert(hash);
                outcomes.push(self.park(
                    p,
                    device,
                    doc_id,
                    &c,
                    originals,
                    "depends_on_rejected",
                    "it builds on a change that was refused",
                    now,
                )?);
                continue;
            }
            if !missing.is_empty() {
                outcomes.push(ChangeOutcome {
                    doc: doc_id,
                    hash: hash.into(),
                    result: Outcome::MissingDeps {
                        missing: missing.into_iter().map(Hash::from).collect(),
                    },
                });
                continue;
            }
            let before = doc.get_heads();
            let mut trial = doc.fork();
            let judged = catch_unwind(AssertUnwindSafe(|| -> fieldline_protocol::Result<()> {
                let mut log = PatchLog::active();
                trial.apply_changes_log_patches([c.clone()], &mut log)?;
                let patches = trial.make_patches(&mut log);
                let ctx = WriteContext {
                    principal: p,
                    doc_id,
                    authority: Authority::Device,
                    catalog: Some(catalog),
                };
                validate_patches(&ctx, &trial, &before, &patches).map(|_| ())
            }));
            match judged {
                Ok(Ok(())) => {
                    doc = trial;
                    outcomes.push(ChangeOutcome {
                        doc: doc_id,
                        hash: hash.into(),
                        result: Outcome::Accepted,
                    });
                    supersedes.extend_from_slice(originals);
                    accepted.push(c);
                }
                Ok(Err(e)) => {
                    refused.insert(hash);
                    outcomes.push(self.park(
                        p,
                        device,
                        doc_id,
                        &c,
                        originals,
                        e.code(),
                        &e.to_string(),
                        now,
                    )?);
                }
                Err(_) => {
                    refused.insert(hash);
                    outcomes.push(self.park(
                        p,
                        device,
                        doc_id,
                        &c,
                        originals,
                        "malformed_change",
                        "the change could not be applied",
                        now,
                    )?);
                }
            }
        }
        if accepted.is_empty() {
            if !is_new {
                self.give_back(doc_id, original);
            }
            return Ok(outcomes);
        }
        let changes = with_skeleton_if_new(&original, is_new, &accepted);
        let commit = DocCommit {
            meta: meta_of(doc_id, &doc)?,
            changes,
            heads: doc.get_heads(),
            user: Some(p.user_id),
            device: Some(device),
            source: Source::Sync,
            received_at: now,
            acl_changed: false,
            supersedes,
            resolves: None,
        };
        self.store_commit(doc_id, &doc, &commit)?;
        self.metrics
            .add(&self.metrics.changes_accepted, accepted.len() as u64);
        self.give_back(doc_id, doc);
        Ok(outcomes)
    }

    /// Stores a commit, compacts when due, and announces it.
    fn store_commit(
        &self,
        doc_id: DocId,
        doc: &Automerge,
        commit: &DocCommit,
    ) -> Result<CommitResult> {
        let result = self.store.commit(commit)?;
        if result.stored > 0 {
            if result.tail >= COMPACT_AFTER {
                self.store
                    .write_snapshot(doc_id, &doc.save(), result.last_seq)?;
            }
            self.publish(Event::Doc {
                seq: result.last_seq,
                meta: commit.meta.clone(),
                acl_changed: commit.acl_changed,
            });
        }
        Ok(result)
    }

    /// Applies edits on the server's own authority (manager API, back office, imports): the
    /// caller has checked permissions; the schema and lifecycle rules still apply.
    /// Creates the document from its skeleton if it does not exist.
    pub fn server_edit(&self, requested_by: UserId, edits: &[Edit], now: i64) -> Result<()> {
        let mut by_doc: BTreeMap<DocId, Vec<Edit>> = BTreeMap::new();
        for e in edits {
            by_doc.entry(e.doc).or_default().push(e.clone());
        }
        for (doc_id, edits) in by_doc {
            self.server_edit_checked(requested_by, doc_id, now, move |_| Ok(edits))?;
        }
        Ok(())
    }

    /// Like [`Engine::server_edit`] for one document, with the edits decided by `decide` on
    /// the document as it is, under the document's lock: a permission check that depends on
    /// the document (who owns an account before reassigning it) cannot be overtaken by a
    /// concurrent write between the check and the edit.
    pub fn server_edit_checked(
        &self,
        requested_by: UserId,
        doc_id: DocId,
        now: i64,
        decide: impl FnOnce(&Automerge) -> Result<Vec<Edit>>,
    ) -> Result<()> {
        let catalog = self.catalog()?;
        let principal = self
            .store
            .principal(requested_by, fieldline_protocol::model::Role::Admin)?;
        let _g = self.stripe(doc_id);
        let (original, is_new) = self.take_or_skeleton(doc_id)?;
        let mut doc = original.fork();
        doc.set_actor(self.actor.clone());
        let start = if is_new { Vec::new() } else { doc.get_heads() };
        let mut acl_changed = false;
        let result = (|| -> Result<()> {
            for edit in decide(&original)? {
                if edit.doc != doc_id {
                    return Err(Error::Internal(format!(
                        "an edit of {} among edits of {doc_id}",
                        edit.doc
                    )));
                }
                let before = doc.get_heads();
                let mut tx = doc
                    .transaction_log_patches(PatchLog::active())
                    .map_err(|e| Error::Internal(format!("patch log: {e}")))?;
                let patches = match edit.apply(&mut tx, requested_by, now) {
                    Ok(Applied::Changed) => {
                        let (_, mut log) = tx.commit_with(
                            CommitOptions::default()
                                .with_message(edit.action.clone())
                                .with_time(now),
                        );
                        doc.make_patches(&mut log)
                    }
                    Ok(Applied::Unchanged) => {
                        tx.rollback();
                        continue;
                    }
                    Err(e) => {
                        tx.rollback();
                        return Err(e.into());
                    }
                };
                let ctx = WriteContext {
                    principal: &principal,
                    doc_id,
                    authority: Authority::Server,
                    catalog: Some(&catalog),
                };
                acl_changed |= validate_patches(&ctx, &doc, &before, &patches)?.acl_changed;
            }
            Ok(())
        })();
        if let Err(e) = result {
            if !is_new {
                self.give_back(doc_id, original);
            }
            return Err(e);
        }
        let changes = new_changes(&doc, &start);
        if !changes.is_empty() {
            let commit = DocCommit {
                meta: meta_of(doc_id, &doc)?,
                changes,
                heads: doc.get_heads(),
                user: Some(requested_by),
                device: None,
                source: if is_new {
                    Source::Skeleton
                } else {
                    Source::Server
                },
                received_at: now,
                acl_changed,
                supersedes: Vec::new(),
                resolves: None,
            };
            if let Err(e) = self.store_commit(doc_id, &doc, &commit) {
                if !is_new {
                    self.give_back(doc_id, original);
                }
                return Err(e);
            }
        }
        self.give_back(doc_id, doc);
        Ok(())
    }

    /// Makes sure a server-created document (a user's, the catalog) exists.
    pub fn ensure_doc(&self, doc_id: DocId, now: i64) -> Result<()> {
        let _g = self.stripe(doc_id);
        if self.store.doc_meta(doc_id)?.is_some() {
            return Ok(());
        }
        let doc = skeleton(&doc_id)?;
        let changes = new_changes(&doc, &[]);
        let commit = DocCommit {
            meta: meta_of(doc_id, &doc)?,
            changes,
            heads: doc.get_heads(),
            user: None,
            device: None,
            source: Source::Skeleton,
            received_at: now,
            acl_changed: false,
            supersedes: Vec::new(),
            resolves: None,
        };
        self.store_commit(doc_id, &doc, &commit)?;
        Ok(())
    }

    /// Stores a whole document built elsewhere (demo data, imports), after judging every
    /// change on the server's authority.
    pub fn import_doc(
        &self,
        doc_id: DocId,
        doc: &Automerge,
        by: Option<UserId>,
        now: i64,
    ) -> Result<()> {
        let _g = self.stripe(doc_id);
        let skel = skeleton(&doc_id)?;
        if doc.get_change_by_hash(&skel.get_heads()[0]).is_none() {
            return Err(Error::bad_request(
                "invalid_document",
                format!("document {doc_id} does not start from its skeleton"),
            ));
        }
        let changes = new_changes(doc, &[]);
        let commit = DocCommit {
            meta: meta_of(doc_id, doc)?,
            changes,
            heads: doc.get_heads(),
            user: by,
            device: None,
            source: Source::Import,
            received_at: now,
            acl_changed: true,
            supersedes: Vec::new(),
            resolves: None,
        };
        let result = self.store.commit(&commit)?;
        if result.stored > 0 {
            self.store
                .write_snapshot(doc_id, &doc.save(), result.last_seq)?;
            self.publish(Event::Doc {
                seq: result.last_seq,
                meta: commit.meta,
                acl_changed: true,
            });
        }
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop(&doc_id);
        Ok(())
    }

    /// Reads a document (for API views); `None` if it is not stored.
    pub fn read<T>(
        &self,
        doc_id: DocId,
        f: impl FnOnce(&Automerge) -> Result<T>,
    ) -> Result<Option<T>> {
        let _g = self.stripe(doc_id);
        let Some(doc) = self.take(doc_id)? else {
            return Ok(None);
        };
        let out = f(&doc);
        self.give_back(doc_id, doc);
        out.map(Some)
    }

    /// May `reviewer` decide on this review item? Only someone who could write the document
    /// under today's rules: admins for the catalog, the managers of an account's current team,
    /// the managers of a user for that user's document. Nobody decides on their own refused
    /// writes, except admins (someone has to, in a company with a single admin).
    pub fn may_review(reviewer: &Principal, row: &ReviewRow) -> bool {
        if reviewer.is_admin() {
            return true;
        }
        if row.user_id == reviewer.user_id {
            return false;
        }
        match row.doc_id {
            DocId::Catalog => false,
            DocId::Account(_) => row.doc_team.is_some_and(|t| reviewer.manages(t)),
            DocId::User(u) => reviewer.manages_user(u),
        }
    }

    /// An open review item `reviewer` may decide on, with the parked change's bytes.
    fn open_review(&self, review_id: i64, reviewer: &Principal) -> Result<(ReviewRow, Vec<u8>)> {
        let (row, bytes) = self
            .store
            .review(review_id)?
            .ok_or_else(|| Error::NotFound(format!("review item {review_id}")))?;
        if !Self::may_review(reviewer, &row) {
            return Err(Error::Forbidden(
                "decide on this review item (it is not from your teams)".into(),
            ));
        }
        if row.status != ReviewStatus::Open {
            return Err(Error::conflict(
                "already_resolved",
                format!("review item {review_id} is already {}", row.status.as_str()),
            ));
        }
        Ok((row, bytes))
    }

    /// Applies a parked change after all: the reviewer vouches for access; every other rule
    /// is checked again, as the change's author, against the document as it is now.
    pub fn approve(
        &self,
        review_id: i64,
        reviewer: &Principal,
        note: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let (row, bytes) = self.open_review(review_id, reviewer)?;
        let change = Change::from_bytes(bytes)
            .map_err(|e| Error::Internal(format!("parked change does not decode: {e}")))?;
        let author_role = self
            .store
            .user(row.user_id)?
            .map(|u| u.role)
            .unwrap_or(fieldline_protocol::model::Role::Rep);
        let author = self.store.principal(row.user_id, author_role)?;
        let catalog = self.catalog()?;
        let doc_id = row.doc_id;
        {
            let _g = self.stripe(doc_id);
            let (original, is_new) = self.take_or_skeleton(doc_id)?;
            let give_back = |d: Automerge| {
                if !is_new {
                    self.give_back(doc_id, d);
                }
            };
            let missing: Vec<ChangeHash> = change
                .deps()
                .iter()
                .filter(|d| original.get_change_by_hash(d).is_none())
                .copied()
                .collect();
            if !missing.is_empty() {
                let mut first = Vec::new();
                for m in &missing {
                    if let Some(id) = self.store.parked_id(doc_id, m)? {
                        first.push(format!("#{id}"));
                    }
                }
                give_back(original);
                return Err(Error::conflict(
                    "missing_dependencies",
                    if first.is_empty() {
                        "this change builds on changes the server does not have".to_owned()
                    } else {
                        format!(
                            "approve review item {} first: this change builds on it",
                            first.join(", ")
                        )
                    },
                ));
            }
            let before = original.get_heads();
            let mut trial = original.fork();
            let judged = catch_unwind(AssertUnwindSafe(|| -> fieldline_protocol::Result<bool> {
                let mut log = PatchLog::active();
                trial.apply_changes_log_patches([change.clone()], &mut log)?;
                let patches = trial.make_patches(&mut log);
                let ctx = WriteContext {
                    principal: &author,
                    doc_id,
                    authority: Authority::Review,
                    catalog: Some(&catalog),
                };
                Ok(validate_patches(&ctx, &trial, &before, &patches)?.acl_changed)
            }));
            let acl_changed = match judged {
                Ok(Ok(acl)) => acl,
                Ok(Err(e)) => {
                    give_back(original);
                    return Err(Error::conflict(
                        "still_refused",
                        format!("it still breaks a rule: {e}"),
                    ));
                }
                Err(_) => {
                    give_back(original);
                    return Err(Error::conflict(
                        "still_refused",
                        "the change could not be applied",
                    ));
                }
            };
            let changes = with_skeleton_if_new(&original, is_new, std::slice::from_ref(&change));
            let commit = DocCommit {
                meta: meta_of(doc_id, &trial)?,
                changes,
                heads: trial.get_heads(),
                user: Some(row.user_id),
                device: Some(row.device_id),
                source: Source::Review,
                received_at: row.received_at,
                acl_changed,
                supersedes: Vec::new(),
                // Applied and resolved in one transaction: a concurrent dismissal or a
                // second approval loses cleanly, never leaving "dismissed" on an applied
                // change.
                resolves: Some(Resolution {
                    review_id,
                    status: ReviewStatus::Approved,
                    by: reviewer.user_id,
                    note: note.map(str::to_owned),
                    at: now,
                }),
            };
            match self.store_commit(doc_id, &trial, &commit) {
                Ok(_) => self.give_back(doc_id, trial),
                Err(e) => {
                    give_back(original);
                    return Err(e);
                }
            }
        }
        self.publish(Event::Review { user: row.user_id });
        Ok(())
    }

    pub fn dismiss(
        &self,
        review_id: i64,
        reviewer: &Principal,
        note: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let (row, _) = self.open_review(review_id, reviewer)?;
        self.store.resolve_review(&Resolution {
            review_id,
            status: ReviewStatus::Dismissed,
            by: reviewer.user_id,
            note: note.map(str::to_owned),
            at: now,
        })?;
        self.publish(Event::Review { user: row.user_id });
        Ok(())
    }

    /// Groups changes of uploads by document (a device may send a document twice), with
    /// the refused originals each replayed change stands for.
    pub fn group_uploads(
        parsed: Vec<(DocId, Change)>,
        replaces: Vec<(DocId, ChangeHash, Vec<ChangeHash>)>,
    ) -> Vec<ParsedUpload> {
        let mut map: HashMap<DocId, usize> = HashMap::new();
        let mut out: Vec<ParsedUpload> = Vec::new();
        for (doc, c) in parsed {
            let i = *map.entry(doc).or_insert_with(|| {
                out.push(ParsedUpload {
                    doc,
                    changes: Vec::new(),
                    replaces: HashMap::new(),
                });
                out.len() - 1
            });
            out[i].changes.push(c);
        }
        for (doc, change, originals) in replaces {
            if let Some(&i) = map.get(&doc) {
                out[i].replaces.insert(change, originals);
            }
        }
        out
    }
}
