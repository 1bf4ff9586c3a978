//! Sync wire types: what a device and the server exchange, one request and one response per
//! round, over HTTP (`POST /v1/sync`) or a WebSocket (`/v1/sync/ws`, same messages plus
//! pushes).
//!
//! Encoded with postcard: compact (change bytes travel raw, not base64) and cheap to decode
//! on a phone. A round with nothing to say is a few dozen bytes each way.
//!
//! ## The cursor
//! The server numbers every accepted change and every access change with one increasing
//! sequence. A device's [`Cursor`] is the highest number it has fully applied; the server
//! answers with what changed *after* it — so the cost of a round grows with what changed,
//! never with how many documents the rep can read. The server hands out a cursor only when
//! every number below it is committed (one writer on SQLite; on PostgreSQL sequence numbers
//! will be assigned in commit order, see ARCHITECTURE.md), so a cursor stays correct with
//! several server nodes.

use serde::{Deserialize, Serialize};

use crate::access::Principal;
use crate::ids::{DeviceId, DocId};
use crate::{Error, Result};

/// Version of this wire format; the server refuses versions it does not speak.
pub const PROTOCOL_VERSION: u32 = 2;

/// HTTP content type of encoded sync messages.
pub const CONTENT_TYPE: &str = "application/x-fieldline-sync";

/// Position in the server's change sequence that a device has fully applied.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Cursor(pub u64);

/// An automerge change hash.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hash(pub [u8; 32]);

impl From<automerge::ChangeHash> for Hash {
    fn from(h: automerge::ChangeHash) -> Self {
        Hash(h.0)
    }
}

impl From<Hash> for automerge::ChangeHash {
    fn from(h: Hash) -> Self {
        automerge::ChangeHash(h.0)
    }
}

impl std::fmt::Display for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hash({})", &self.to_string()[..12])
    }
}

/// Raw bytes (an automerge change or a saved document), encoded without per-byte overhead.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bytes(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

/// One device round: what it has seen, what it made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncRequest {
    pub protocol: u32,
    pub device_id: DeviceId,
    pub cursor: Cursor,
    /// New local changes, per document, in the order they were made.
    pub uploads: Vec<DocUpload>,
    /// Documents the device needs whole (it lacks history a change depends on).
    pub want_full: Vec<DocId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocUpload {
    pub doc: DocId,
    pub changes: Vec<Bytes>,
    /// Uploaded changes that re-make edits the server refused earlier (replayed after a
    /// rebase). The server closes the refused originals' review items in the same commit
    /// that stores or parks the replacement, so one edit never has two open items, and it
    /// does not apply a replacement whose original a manager has already approved.
    pub replaces: Vec<Replacement>,
}

/// A replayed change and the refused changes it stands for (oldest first: a replay that
/// was itself refused and replayed again carries the whole chain).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Replacement {
    pub change: Hash,
    pub originals: Vec<Hash>,
}

/// Longest chain of originals a replacement may name (a chain grows by one each time a
/// replay is refused again; anything longer is a broken or hostile client).
pub const MAX_REPLACED_ORIGINALS: usize = 32;

/// The server's answer to one round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// The device may store this cursor once it has applied everything in this response.
    pub cursor: Cursor,
    /// More is waiting: send another round with the new cursor right away.
    pub more: bool,
    /// Estimated number of documents still to come (for progress bars).
    pub remaining: u64,
    /// Who the server says the device's user is, and their memberships.
    pub identity: Identity,
    /// Documents that changed after the cursor (or were asked for whole).
    pub docs: Vec<DocPayload>,
    /// Documents the user may no longer read: the device deletes them and everything
    /// derived from them.
    pub purged: Vec<DocId>,
    /// The fate of every uploaded change.
    pub outcomes: Vec<ChangeOutcome>,
    /// Review items of this user that were resolved since the cursor.
    pub reviews: Vec<ReviewNotice>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub principal: Principal,
    pub username: String,
    pub display_name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocPayload {
    pub doc: DocId,
    pub data: DocData,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DocData {
    /// Changes after the device's cursor, in an order where dependencies come first.
    Changes(Vec<Bytes>),
    /// The whole document (a saved automerge document, possibly followed by changes): for
    /// documents the device does not have, or must rebuild.
    Whole(Vec<Bytes>),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeOutcome {
    pub doc: DocId,
    pub hash: Hash,
    pub result: Outcome,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// Stored (now or earlier: uploads are idempotent).
    Accepted,
    /// Refused and parked in the review queue; the device must bring the document back in
    /// line (the response carries it whole when the user may still read it).
    Rejected {
        review_id: i64,
        code: String,
        message: String,
    },
    /// The server lacks changes this one depends on; the device should upload them too.
    MissingDeps { missing: Vec<Hash> },
    /// Not stored and not parked: the edit it replays was approved by a manager meanwhile
    /// (or it builds on such a change). The device rebases on the server's copy, where the
    /// approved original already is, and replays what is still missing.
    Stale { code: String, message: String },
}

/// [`Outcome::Stale`] code: the uploaded change re-makes an edit a manager approved.
pub const STALE_ALREADY_APPLIED: &str = "already_applied";
/// [`Outcome::Stale`] code: the uploaded change builds on a stale one of the same upload.
pub const STALE_BUILDS_ON_STALE: &str = "builds_on_stale";

/// How a review item was resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    Open,
    /// A manager applied the change after all.
    Approved,
    /// A manager decided it stays out.
    Dismissed,
    /// The device replayed the edit as a new change that was accepted.
    Superseded,
}

impl ReviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Open => "open",
            ReviewStatus::Approved => "approved",
            ReviewStatus::Dismissed => "dismissed",
            ReviewStatus::Superseded => "superseded",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "open" => Ok(ReviewStatus::Open),
            "approved" => Ok(ReviewStatus::Approved),
            "dismissed" => Ok(ReviewStatus::Dismissed),
            "superseded" => Ok(ReviewStatus::Superseded),
            _ => Err(Error::invalid(
                "review status",
                "must be open, approved, dismissed or superseded",
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReviewNotice {
    pub review_id: i64,
    pub doc: DocId,
    pub hash: Hash,
    pub status: ReviewStatus,
}

/// Messages a device sends on the WebSocket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientFrame {
    Sync(SyncRequest),
}

/// Messages the server sends on the WebSocket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The answer to a [`ClientFrame::Sync`].
    Reply(SyncResponse),
    /// Others changed documents this user can read; apply like a reply.
    Push(SyncResponse),
    /// The request could not be handled; `code` is one of the HTTP API's error codes.
    Error { code: String, message: String },
}

/// Encodes a wire message.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serialising into a Vec cannot fail for these types (no maps with non-string keys, no
    // unsupported serde features); an error here would be a programming error.
    postcard::to_allocvec(msg).unwrap_or_default()
}

/// Decodes a wire message; any malformed input is an error, never a panic.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Wire(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::*;
    use crate::model::Role;

    fn identity() -> Identity {
        Identity {
            principal: Principal {
                user_id: UserId::new(),
                role: Role::Rep,
                teams: vec![TeamId::new()],
                managed_teams: vec![],
                managed_users: vec![],
            },
            username: "li.wei".into(),
            display_name: "李伟".into(),
        }
    }

    #[test]
    fn an_empty_round_is_tiny() {
        let req = SyncRequest {
            protocol: PROTOCOL_VERSION,
            device_id: DeviceId::new(),
            cursor: Cursor(123_456),
            uploads: vec![],
            want_full: vec![],
        };
        let resp = SyncResponse {
            cursor: Cursor(123_456),
            more: false,
            remaining: 0,
            identity: identity(),
            docs: vec![],
            purged: vec![],
            outcomes: vec![],
            reviews: vec![],
        };
        let (a, b) = (encode(&req), encode(&resp));
        assert!(a.len() < 40, "request is {} bytes", a.len());
        assert!(b.len() < 120, "response is {} bytes", b.len());
        assert_eq!(decode::<SyncRequest>(&a).unwrap(), req);
        assert_eq!(decode::<SyncResponse>(&b).unwrap(), resp);
    }

    #[test]
    fn bytes_travel_raw() {
        let up = DocUpload {
            doc: DocId::Catalog,
            changes: vec![Bytes(vec![7; 1000])],
            replaces: vec![],
        };
        assert!(encode(&up).len() < 1000 + 16);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode::<SyncRequest>(&[0xff; 3]).is_err());
        assert!(decode::<SyncRequest>(&[]).is_err());
    }
}
