//! The client core's error type.
//!
//! Rule violations (invalid input, forbidden, locked, …) come straight from the protocol
//! crate, so the phone reports a refusal with exactly the words the server would use.

use fieldline_protocol as protocol;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The edit breaks a rule of the schema or of access; nothing was written.
    #[error(transparent)]
    Rule(#[from] protocol::Error),

    /// The replica does not know who its user is yet.
    #[error("this replica has no signed-in user yet; sign in and sync once")]
    NotSignedIn,

    /// The catalog has not reached this device yet.
    #[error("the product catalog is not on this device yet; sync once to receive it")]
    NoCatalog,

    /// SQLite failed (disk full, file locked, …).
    #[error("storage error: {0}")]
    Storage(#[from] rusqlite::Error),

    /// The file holds data this code cannot make sense of.
    #[error(
        "the replica file is damaged: {0}; delete it and sync again to rebuild it from the server"
    )]
    Corrupt(String),

    /// The file was written by a newer version of the app.
    #[error(
        "the replica file was written by a newer app version (schema {found}, this app knows {known}); update the app"
    )]
    TooNew { found: i64, known: i64 },
}

impl Error {
    /// A stable code for programs and the FFI.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Rule(e) => e.code(),
            Error::NotSignedIn => "not_signed_in",
            Error::NoCatalog => "no_catalog",
            Error::Storage(_) => "storage",
            Error::Corrupt(_) => "corrupt",
            Error::TooNew { .. } => "too_new",
        }
    }

    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Error::Corrupt(what.to_string())
    }
}

impl From<automerge::AutomergeError> for Error {
    fn from(e: automerge::AutomergeError) -> Self {
        Error::Corrupt(format!("document engine: {e}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Corrupt(format!("stored JSON: {e}"))
    }
}
