//! # fieldline-client-core
//!
//! A rep's offline replica: every account they may read (one automerge document each), their
//! task list, and the catalog, in one SQLite file with a SQL projection for fast screens.
//! It does no network I/O: [`sync`] turns the replica's state into wire messages and applies
//! the server's answers, and the transport crate moves them.
//!
//! - [`Replica`]: open a file, edit (typed operations), query, sync, merge with peers.
//! - [`store`]: the file's schema and migrations; [`docs`]: document storage;
//!   [`projection`]: documents → tables; [`queries`]: tables → screens; [`search`]: FTS.
//! - [`sync`]: the server sync round (sans-IO), including rebase after a refusal.
//! - [`peer`]: replica-to-replica merging over the automerge sync protocol.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod docs;
mod error;
pub mod peer;
mod projection;
pub mod queries;
mod replica;
mod search;
mod store;
pub mod sync;

use std::collections::BTreeSet;

pub use error::{Error, Result};
pub use fieldline_protocol as protocol;
use fieldline_protocol::ids::AccountId;
pub use replica::{Clock, FollowUp, Listener, Replica, ReplicaOptions};

/// What a committed write or sync round changed, for refreshing screens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Accounts whose data (the account, its contacts, visits or orders) changed.
    pub accounts: BTreeSet<AccountId>,
    /// Accounts removed from this device (the user may no longer read them).
    pub purged: BTreeSet<AccountId>,
    /// The user's tasks or preferences changed.
    pub tasks: bool,
    /// Products or prices changed.
    pub catalog: bool,
    /// The outbox or the parked writes changed.
    pub outbox: bool,
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
            && self.purged.is_empty()
            && !self.tasks
            && !self.catalog
            && !self.outbox
    }

    pub fn merge(&mut self, other: ChangeSet) {
        self.accounts.extend(other.accounts);
        self.purged.extend(other.purged);
        self.tasks |= other.tasks;
        self.catalog |= other.catalog;
        self.outbox |= other.outbox;
    }
}
