//! # fieldline-server
//!
//! The sync server: authentication, the organisation, per-rep access rules on every read
//! and write, change storage and the sync endpoints. See ARCHITECTURE.md for the map.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod auth;
pub mod demo;
