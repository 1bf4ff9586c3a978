//! # fieldline-protocol
//!
//! The contract shared by the phone ([`fieldline-client-core`]) and the server
//! ([`fieldline-server`]):
//!
//! - [`ids`]: device-generated, time-ordered IDs and document names;
//! - [`schema`]: the document layout and the field table (types, value rules, who may write);
//! - [`model`]: typed read-only views of records; [`money`]: exact amounts and order totals;
//! - [`doc`]: reading documents and building their deterministic skeletons;
//! - [`ops`]: the edits users make, as replayable operations;
//! - [`access`]: who may read and write which document;
//! - [`validate`]: the one rule engine that judges every change, on phone and server alike;
//! - [`tier`]: customer value tiers by revenue (the 80/20 rule);
//! - [`wire`]: sync messages.
//!
//! No I/O happens here: everything is a pure function of its inputs, which is what lets the
//! same rules run on a phone and on the server and be tested without either.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod access;
pub mod doc;
mod error;
pub mod ids;
pub mod model;
pub mod money;
pub mod ops;
pub mod schema;
pub mod tier;
pub mod validate;
pub mod wire;

pub use automerge;
pub use error::{Error, Result};
