//! # fieldline-mobile
//!
//! The Fieldline client core for apps: uniffi bindings of the replica
//! (`fieldline-client-core`) and the sync transport (`fieldline-client-transport`) for
//! Kotlin (Android, and any JVM), Swift (iOS) and Python. This is the only crate that knows
//! uniffi; it is a thin translation layer and holds no business logic.
//!
//! - [`Replica`] (`replica`): open the rep's file, every typed edit (accounts, contacts,
//!   visits, orders, tasks, preferences) and every query a screen needs. Quick local work,
//!   callable from the UI thread.
//! - [`Replica::sync`], [`Replica::connect_live`], [`login`], [`refresh`], [`logout`]
//!   (`sync`): the network, `async` in every language.
//! - [`ChangeListener`], [`SyncProgressListener`], [`LiveListener`] (`listener`, `sync`):
//!   callbacks the app implements.
//! - [`ApiError`] (`error`): the one error type, mapped in one place.
//! - Records and enums (`types`): IDs are UUID strings, times `i64` milliseconds since the
//!   epoch, money `i64` minor units next to an ISO 4217 code, quantities decimal strings
//!   (`"2.5"`, at most three decimals).
//!
//! Bindings are generated from the built library (uniffi library mode) by
//! `mobile/scripts/generate-bindings.sh`; see `mobile/README.md`.

mod error;
mod listener;
mod replica;
mod sync;
mod types;

pub use error::ApiError;
pub use listener::{ChangeListener, SyncProgressListener};
pub use replica::Replica;
pub use sync::{
    AuthSession, AuthUser, LiveEnd, LiveListener, LiveSync, ReviewNotice, SyncPhase, SyncProgress,
    SyncResult, login, logout, refresh,
};
pub use types::*;

uniffi::setup_scaffolding!();
