//! Server storage behind one trait, so the SQLite default and the PostgreSQL backend of a
//! later issue serve the same engine.
//!
//! What is stored:
//! - the organisation (users, teams, memberships) and refresh tokens;
//! - every accepted change, once, keyed by `(document, hash)`, numbered by one global
//!   sequence, with the authenticated user, device, source and the server's receive time —
//!   the audit trail and the sync feed in one table;
//! - a row per document with its ACL (owner, team, visibility), heads, last sequence and a
//!   compacted snapshot, so "what changed for this user since cursor N" is one SQL query;
//! - the review queue of refused changes;
//! - per device, which documents it holds (and whether it has confirmed receiving them),
//!   so purges and "send whole or just the changes" cost what changed, not what exists.
//!
//! The trait is synchronous: callers run it on tokio's blocking pool.

pub mod sqlite;

use automerge::ChangeHash;
use fieldline_protocol::access::Principal;
use fieldline_protocol::ids::*;
use fieldline_protocol::model::{Role, Visibility};
use fieldline_protocol::wire::{DocPayload, ReviewNotice, ReviewStatus};

/// A position in the global change sequence.
pub type Seq = u64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("review item {0} is already resolved")]
    AlreadyResolved(i64),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error(
        "the database was written by a newer server (schema {found}, this server knows {known}); upgrade the server"
    )]
    TooNew { found: i64, known: i64 },
}

pub type StoreResult<T> = std::result::Result<T, StoreError>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub active: bool,
    pub created_at: i64,
}

#[derive(Clone, Debug)]
pub struct NewUser {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// argon2 PHC string, or none for users of an external identity provider.
    pub password_hash: Option<String>,
    pub created_at: i64,
}

/// Changes to a user; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct UserUpdate {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub active: Option<bool>,
    pub password_hash: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamRow {
    pub id: TeamId,
    pub name: String,
    pub members: Vec<UserId>,
    pub managers: Vec<UserId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    Member,
    Manager,
}

/// What the server keeps beside a document's content, refreshed on every commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocMeta {
    pub doc_id: DocId,
    /// Account owner, or the user of a user document.
    pub owner: Option<UserId>,
    pub team: Option<TeamId>,
    pub visibility: Option<Visibility>,
    /// Account name, for manager and admin lists.
    pub name: Option<String>,
}

/// A document as stored: load it by feeding every part to `load_incremental`.
#[derive(Clone, Debug)]
pub struct StoredDoc {
    pub parts: Vec<Vec<u8>>,
    pub last_seq: Seq,
}

/// Where an accepted change came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Uploaded by a device through sync.
    Sync,
    /// Written by the server on a manager's or admin's request (reassignment, catalog, back office).
    Server,
    /// Uploaded earlier, refused, then approved by a reviewer.
    Review,
    /// A document's deterministic skeleton.
    Skeleton,
    /// Demo data and imports.
    Import,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Sync => "sync",
            Source::Server => "server",
            Source::Review => "review",
            Source::Skeleton => "skeleton",
            Source::Import => "import",
        }
    }
}

#[derive(Clone, Debug)]
pub struct NewChange {
    pub hash: ChangeHash,
    pub bytes: Vec<u8>,
}

/// Accepted changes of one document, stored atomically with its refreshed metadata.
#[derive(Clone, Debug)]
pub struct DocCommit {
    pub meta: DocMeta,
    pub changes: Vec<NewChange>,
    pub heads: Vec<ChangeHash>,
    /// The authenticated user who sent (or, for server writes, requested) the changes.
    pub user: Option<UserId>,
    pub device: Option<DeviceId>,
    pub source: Source,
    /// The server's clock when the changes arrived (ms).
    pub received_at: i64,
    /// Owner, team or visibility changed: devices must re-evaluate access.
    pub acl_changed: bool,
    /// Refused changes (of `user`) these changes re-make: their open review items close as
    /// superseded in the same transaction.
    pub supersedes: Vec<ChangeHash>,
    /// The review item this commit applies (an approval): resolved in the same transaction,
    /// and the whole commit fails with [`StoreError::AlreadyResolved`] if it is not open.
    pub resolves: Option<Resolution>,
}

/// A reviewer's decision, stored with what it decides.
#[derive(Clone, Debug)]
pub struct Resolution {
    pub review_id: i64,
    pub status: ReviewStatus,
    pub by: UserId,
    pub note: Option<String>,
    pub at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitResult {
    /// How many changes were new (the others were already stored).
    pub stored: usize,
    /// The document's last sequence after the commit.
    pub last_seq: Seq,
    /// Changes stored since the last snapshot (the engine compacts past a threshold).
    pub tail: u64,
}

/// A refused change, parked for review.
#[derive(Clone, Debug)]
pub struct NewReview {
    pub doc_id: DocId,
    pub hash: ChangeHash,
    pub bytes: Vec<u8>,
    pub user: UserId,
    pub device: DeviceId,
    pub code: String,
    pub message: String,
    pub received_at: i64,
    /// Earlier refused changes of the same user this one re-makes: their open items close
    /// as superseded when this one is parked, so one edit never waits twice for a manager.
    pub supersedes: Vec<ChangeHash>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ReviewRow {
    pub id: i64,
    pub doc_id: DocId,
    pub hash: String,
    pub user_id: UserId,
    pub device_id: DeviceId,
    pub code: String,
    pub message: String,
    pub received_at: i64,
    pub status: ReviewStatus,
    pub resolved_by: Option<UserId>,
    pub resolved_at: Option<i64>,
    pub note: Option<String>,
    /// Owner and team of the document when listed (for managers' filters).
    pub doc_owner: Option<UserId>,
    pub doc_team: Option<TeamId>,
}

#[derive(Clone, Debug, Default)]
pub struct ReviewFilter {
    pub status: Option<ReviewStatus>,
    pub limit: u32,
    /// Only items this user may decide on as a manager (see `Engine::may_review`): on
    /// accounts of teams they manage or the documents of users they manage, never their
    /// own. `None` lists everything (admins).
    pub reviewer: Option<UserId>,
}

/// One device's sync round, as the feed sees it.
#[derive(Clone, Debug)]
pub struct PullRequest<'a> {
    pub principal: &'a Principal,
    pub device: DeviceId,
    pub cursor: Seq,
    pub want_full: &'a [DocId],
    /// Documents where the device's upload was refused: sent whole if still readable (the
    /// device rebases on them), otherwise purged from the device.
    pub rebase: &'a [DocId],
    pub max_docs: usize,
    pub max_bytes: usize,
    pub now: i64,
}

#[derive(Clone, Debug, Default)]
pub struct PullPage {
    pub cursor: Seq,
    pub more: bool,
    pub remaining: u64,
    pub docs: Vec<DocPayload>,
    pub purged: Vec<DocId>,
    pub reviews: Vec<ReviewNotice>,
    /// Documents asked for whole that the user may not read and never held.
    pub forbidden: Vec<DocId>,
    /// Bytes of document data in this page.
    pub bytes: usize,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StoreStats {
    pub users: u64,
    pub documents: u64,
    pub changes: u64,
    pub open_reviews: u64,
    pub last_seq: Seq,
}

/// An account as listed to managers and admins.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AccountListing {
    pub id: AccountId,
    pub name: Option<String>,
    pub owner: Option<UserId>,
    pub team: Option<TeamId>,
    pub visibility: Option<Visibility>,
    pub last_seq: Seq,
}

/// One stored change, for audit and history.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChangeRecord {
    pub seq: Seq,
    pub hash: String,
    pub user_id: Option<UserId>,
    pub device_id: Option<DeviceId>,
    pub source: String,
    pub received_at: i64,
    pub bytes: usize,
}

pub trait Store: Send + Sync + 'static {
    // ---- organisation ----
    fn insert_user(&self, user: &NewUser) -> StoreResult<()>;
    fn user(&self, id: UserId) -> StoreResult<Option<UserRow>>;
    fn user_by_username(&self, username: &str) -> StoreResult<Option<(UserRow, Option<String>)>>;
    fn users(&self) -> StoreResult<Vec<UserRow>>;
    /// Updates a user; a role or activity change counts as an access change for them.
    fn update_user(&self, id: UserId, update: &UserUpdate) -> StoreResult<UserRow>;
    fn insert_team(&self, id: TeamId, name: &str) -> StoreResult<()>;
    fn teams(&self) -> StoreResult<Vec<TeamRow>>;
    /// Adds or removes a member or manager; everyone whose readable set changes gets an
    /// access change (so their devices re-evaluate what they hold).
    fn set_membership(
        &self,
        team: TeamId,
        user: UserId,
        kind: Membership,
        present: bool,
    ) -> StoreResult<()>;
    /// The user's memberships, with `role` (taken from the verified token) applied.
    fn principal(&self, user: UserId, role: Role) -> StoreResult<Principal>;

    // ---- refresh tokens ----
    fn insert_refresh_token(&self, hash: &str, user: UserId, expires_at: i64) -> StoreResult<()>;
    /// Removes the token and returns its user if it was valid at `now` (rotation).
    fn take_refresh_token(&self, hash: &str, now: i64) -> StoreResult<Option<UserId>>;
    fn revoke_refresh_tokens(&self, user: UserId) -> StoreResult<()>;

    // ---- documents ----
    fn doc_meta(&self, doc: DocId) -> StoreResult<Option<DocMeta>>;
    fn load_doc(&self, doc: DocId) -> StoreResult<Option<StoredDoc>>;
    fn commit(&self, commit: &DocCommit) -> StoreResult<CommitResult>;
    /// Stores a compacted snapshot covering every change up to `through`.
    fn write_snapshot(&self, doc: DocId, snapshot: &[u8], through: Seq) -> StoreResult<()>;
    fn accounts(&self, principal: &Principal, limit: u32) -> StoreResult<Vec<AccountListing>>;
    fn change_log(&self, doc: DocId, limit: u32) -> StoreResult<Vec<ChangeRecord>>;

    // ---- review queue ----
    /// Parks a refused change; idempotent per (document, hash): returns the existing id.
    fn park(&self, review: &NewReview) -> StoreResult<i64>;
    /// The open review item holding this change, if any.
    fn parked_id(&self, doc: DocId, hash: &ChangeHash) -> StoreResult<Option<i64>>;
    fn reviews(&self, filter: &ReviewFilter) -> StoreResult<Vec<ReviewRow>>;
    fn review(&self, id: i64) -> StoreResult<Option<(ReviewRow, Vec<u8>)>>;
    /// Resolves an open item without applying anything (a dismissal);
    /// [`StoreError::AlreadyResolved`] if someone decided first.
    fn resolve_review(&self, resolution: &Resolution) -> StoreResult<()>;
    /// Closes this user's open items for these changes as superseded.
    fn supersede(&self, user: UserId, hashes: &[ChangeHash], now: i64) -> StoreResult<usize>;
    /// The review items of this user's changes among `hashes`: (hash, item id, status).
    fn review_states(
        &self,
        user: UserId,
        doc: DocId,
        hashes: &[ChangeHash],
    ) -> StoreResult<Vec<(ChangeHash, i64, ReviewStatus)>>;

    // ---- the sync feed ----
    /// What changed for this device after its cursor, a page at a time; records what was
    /// sent so the next round knows what the device holds.
    fn pull(&self, request: &PullRequest<'_>) -> StoreResult<PullPage>;
    /// Whether this device was ever sent the document (and has not been told to purge it).
    fn device_holds(&self, user: UserId, device: DeviceId, doc: DocId) -> StoreResult<bool>;

    fn stats(&self) -> StoreResult<StoreStats>;
}
