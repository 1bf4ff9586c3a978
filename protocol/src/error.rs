//! The one error type of the protocol crate.
//!
//! Every variant carries a stable machine-readable [`Error::code`] so that the phone, the
//! server's JSON errors and the review queue all speak about the same refusal with the same
//! word. Messages name fields and record kinds, never personal data such as names or e-mails.

/// Result alias used throughout the protocol crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an operation or an uploaded change was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A value given by the caller breaks a field rule (empty name, negative quantity, …).
    #[error("{field} {reason}")]
    InvalidInput { field: String, reason: String },

    /// The principal may not perform this action at all.
    #[error("not allowed: {action}")]
    Forbidden { action: String },

    /// The field is managed by the server or by a manager API and may not be written here.
    #[error("the field {field} cannot be changed here; {hint}")]
    ProtectedField { field: String, hint: &'static str },

    /// The record can no longer be edited (a submitted order, a finished visit, …).
    #[error("{what} is locked: {reason}")]
    Locked { what: &'static str, reason: String },

    /// A status change that the lifecycle does not allow.
    #[error("{what} cannot go from {from} to {to}")]
    InvalidTransition {
        what: &'static str,
        from: String,
        to: String,
    },

    /// A referenced record does not exist.
    #[error("{kind} {id} does not exist")]
    NotFound { kind: &'static str, id: String },

    /// The document does not follow the schema (wrong type, unknown field, deleted record, …).
    #[error("malformed document at {path}: {reason}")]
    Malformed { path: String, reason: String },

    /// A wire message could not be decoded.
    #[error("malformed message: {0}")]
    Wire(String),

    /// Automerge itself failed; this is a bug or a corrupt document.
    #[error("document engine error: {0}")]
    Automerge(String),
}

impl Error {
    /// A short, stable, snake_case code for programs (HTTP error bodies, review queue, FFI).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidInput { .. } => "invalid_input",
            Error::Forbidden { .. } => "forbidden",
            Error::ProtectedField { .. } => "protected_field",
            Error::Locked { .. } => "locked",
            Error::InvalidTransition { .. } => "invalid_transition",
            Error::NotFound { .. } => "not_found",
            Error::Malformed { .. } => "malformed_document",
            Error::Wire(_) => "malformed_message",
            Error::Automerge(_) => "document_engine",
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn forbidden(action: impl Into<String>) -> Self {
        Error::Forbidden {
            action: action.into(),
        }
    }

    pub(crate) fn malformed(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Malformed {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl From<automerge::AutomergeError> for Error {
    fn from(e: automerge::AutomergeError) -> Self {
        Error::Automerge(e.to_string())
    }
}
