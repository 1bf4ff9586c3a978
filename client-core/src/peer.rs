//! Merging replicas directly over the automerge sync protocol.
//!
//! Two replicas (a rep's phone and tablet, or the replicas of a test harness) exchange
//! automerge sync messages per document until neither has anything to send. Changes that
//! arrive this way are stored, projected and put in the outbox, so that whichever replica
//! syncs with the server first uploads them (the server ignores duplicates).
//!
//! Peers are trusted: their changes are not judged here (the server judges them on upload).
//! Sync states are kept in memory per peer; after a restart the protocol simply re-discovers
//! what each side has.

use std::collections::HashMap;

use automerge::sync::{Message, State, SyncDoc};
use fieldline_protocol::ids::DocId;
use fieldline_protocol::validate::touched_records;
use rusqlite::{TransactionBehavior, params};

use crate::{ChangeSet, Error, Replica, Result, projection};

/// Per-peer, per-document sync states.
#[derive(Default)]
pub(crate) struct PeerStates(HashMap<(String, DocId), State>);

impl Replica {
    /// The messages to send to `peer` now about the documents `shared` with it, one per
    /// document that has something to say. The caller decides what is shared: a peer must
    /// only ever be offered documents its user may read. Documents this replica lacks are
    /// skipped; the peer that has them speaks first, and receiving its message creates them.
    pub fn peer_messages(&self, peer: &str, shared: &[DocId]) -> Result<Vec<(DocId, Vec<u8>)>> {
        let mut inner = self.lock();
        let crate::replica::Inner {
            conn, docs, peers, ..
        } = &mut *inner;
        let mut out = Vec::new();
        for &id in shared {
            let Some(doc) = docs.get(conn, id)? else {
                continue;
            };
            let state = peers
                .0
                .entry((peer.to_owned(), id))
                .or_insert_with(State::new);
            if let Some(msg) = doc.generate_sync_message(state) {
                out.push((id, msg.encode()));
            }
        }
        Ok(out)
    }

    /// Receives one message from `peer` about `doc`.
    pub fn receive_peer_message(
        &self,
        peer: &str,
        doc_id: DocId,
        message: &[u8],
    ) -> Result<ChangeSet> {
        let msg =
            Message::decode(message).map_err(|e| Error::corrupt(format!("peer message: {e}")))?;
        let changes = {
            let mut inner = self.lock();
            let now = (inner.clock)();
            let crate::replica::Inner {
                conn, docs, peers, ..
            } = &mut *inner;
            let result = (|| -> Result<ChangeSet> {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let mut changes = ChangeSet::default();
                // A document we do not have yet starts as its skeleton (identical on every peer), so
                // the protocol can tell the sender which changes we lack.
                let (doc, created) = docs.get_or_create(&tx, doc_id)?;
                let before = doc.get_heads();
                let state = peers
                    .0
                    .entry((peer.to_owned(), doc_id))
                    .or_insert_with(State::new);
                doc.receive_sync_message(state, msg)?;
                let after = doc.get_heads();
                if before != after {
                    let received: Vec<(Vec<u8>, Vec<u8>)> = doc
                        .get_changes(&before)
                        .iter()
                        .map(|c| (c.hash().0.to_vec(), c.raw_bytes().to_vec()))
                        .collect();
                    let touched = touched_records(doc_id, doc, &before, &after);
                    for (hash, bytes) in &received {
                        docs.append_change(&tx, doc_id, bytes)?;
                        tx.execute(
                        "INSERT OR IGNORE INTO outbox (doc_id, hash, bytes, created_at) VALUES (?1, ?2, ?3, ?4)",
                        params![doc_id.to_string(), hash, bytes, now],
                    )?;
                    }
                    let doc = docs
                        .get(&tx, doc_id)?
                        .ok_or_else(|| Error::corrupt("document vanished"))?;
                    match touched {
                        Ok(t) if !created => {
                            projection::project_records(&tx, doc_id, doc, &t, &mut changes)?
                        }
                        _ => projection::project_doc(&tx, doc_id, doc, &mut changes)?,
                    }
                    changes.outbox = true;
                }
                tx.commit()?;
                Ok(changes)
            })();
            if result.is_err() {
                // Nothing was stored: the cached copy must not keep what was received.
                docs.evict(doc_id);
            }
            result?
        };
        self.notify(&changes);
        Ok(changes)
    }
}
