//! [`ApiError`]: the one error type of the bindings, and the one place where the client
//! core's and the transport's errors are mapped to it.
//!
//! Apps branch on the variant (what to do) and show the message (what happened). Messages
//! are written for users and never contain personal data: the rule engine's messages name
//! fields, record kinds, statuses and IDs only (see `fieldline_protocol::Error`); anything
//! whose text could echo stored content (damaged-file details, SQLite conversion errors,
//! free-text messages from the server) is replaced by a fixed sentence here.
//!
//! In Kotlin this is the sealed exception class `ApiException` (`ApiException.InvalidInput`,
//! …, `e.message`); in Swift the enum `ApiError` (`.InvalidInput(message:)`); in Python the
//! exception `ApiError` with subclasses `ApiError.InvalidInput`, … (`str(e)`).

use fieldline_client_core::Error as CoreError;
use fieldline_client_transport::TransportError;
use fieldline_protocol::Error as RuleError;

/// Why a call failed. Every variant carries a message that can be shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum ApiError {
    /// A value given by the app breaks a rule (empty name, invalid ID, bad quantity,
    /// unsupported currency, …). Nothing was written. Fix the input.
    #[error("{message}")]
    InvalidInput { message: String },

    /// The signed-in user may not do this (e.g. edit an account of another team). Nothing was
    /// written.
    #[error("{message}")]
    Forbidden { message: String },

    /// A referenced record (account, visit, order, product…) does not exist on this device.
    #[error("{message}")]
    NotFound { message: String },

    /// The record's state does not allow this any more: a submitted order is locked, a
    /// completed visit cannot be checked in again (invalid transition). Refresh the screen.
    #[error("{message}")]
    Conflict { message: String },

    /// This replica does not know its user yet: sign in and sync once.
    #[error("{message}")]
    NotSignedIn { message: String },

    /// The product catalog has not reached this device yet: sync once.
    #[error("{message}")]
    NoCatalog { message: String },

    /// The server did not accept the credentials or the access token (expired, revoked,
    /// wrong password): refresh the token or sign in again.
    #[error("{message}")]
    Unauthorized { message: String },

    /// The server could not be reached, timed out, is overloaded or had a temporary
    /// problem. Nothing is lost: try again later.
    #[error("{message}")]
    Network { message: String },

    /// The server and this app do not understand each other (a request the server considers
    /// invalid, an answer that is not a sync message, a redirect): check the server address
    /// or update the app. Retrying does not help.
    #[error("{message}")]
    Incompatible { message: String },

    /// The operation was cancelled before it finished; whatever was applied stays applied.
    #[error("{message}")]
    Cancelled { message: String },

    /// The device's storage failed (disk full, damaged file, file from a newer app).
    #[error("{message}")]
    Storage { message: String },

    /// A bug: an internal invariant did not hold. Report it.
    #[error("{message}")]
    Internal { message: String },
}

impl ApiError {
    /// A short stable name of the variant (`invalid_input`, `conflict`, …), for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::InvalidInput { .. } => "invalid_input",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::NotSignedIn { .. } => "not_signed_in",
            ApiError::NoCatalog { .. } => "no_catalog",
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::Network { .. } => "network",
            ApiError::Incompatible { .. } => "incompatible",
            ApiError::Cancelled { .. } => "cancelled",
            ApiError::Storage { .. } => "storage",
            ApiError::Internal { .. } => "internal",
        }
    }

    pub(crate) fn internal(what: impl Into<String>) -> Self {
        ApiError::Internal {
            message: what.into(),
        }
    }
}

/// Rule violations: the protocol's messages are free of personal data by design (they name
/// fields, kinds, statuses and IDs), so they are passed on as they are — except for
/// malformed documents and engine failures, whose details may quote document content.
impl From<RuleError> for ApiError {
    fn from(e: RuleError) -> Self {
        let message = e.to_string();
        match e {
            RuleError::InvalidInput { .. } => ApiError::InvalidInput { message },
            RuleError::Forbidden { .. } | RuleError::ProtectedField { .. } => {
                ApiError::Forbidden { message }
            }
            RuleError::NotFound { .. } => ApiError::NotFound { message },
            RuleError::Locked { .. } | RuleError::InvalidTransition { .. } => {
                ApiError::Conflict { message }
            }
            RuleError::Malformed { .. } => ApiError::internal(
                "a document on this device does not follow the schema (malformed_document); \
                 sync again, and report it if it keeps happening",
            ),
            RuleError::Wire(_) => ApiError::Incompatible {
                message: "a sync message could not be decoded (malformed_message); update the app"
                    .into(),
            },
            RuleError::Automerge(_) => ApiError::internal(
                "the document engine failed (document_engine); report it if it keeps happening",
            ),
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Rule(r) => r.into(),
            CoreError::NotSignedIn => ApiError::NotSignedIn {
                message: e.to_string(),
            },
            CoreError::NoCatalog => ApiError::NoCatalog {
                message: e.to_string(),
            },
            CoreError::Storage(s) => ApiError::Storage {
                message: storage_message(&s),
            },
            // The details may quote stored content (a JSON snippet, a key): keep them out.
            CoreError::Corrupt(_) => ApiError::Storage {
                message: "the data on this device is damaged; delete the replica file and sync \
                          again to rebuild it from the server"
                    .into(),
            },
            // Two schema numbers: no personal data.
            CoreError::TooNew { .. } => ApiError::Storage {
                message: e.to_string(),
            },
        }
    }
}

/// SQLite's own failures (disk full, locked, I/O) carry no data; conversion errors may quote a
/// stored value, so only their column position is kept.
fn storage_message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(code, _) => {
            format!("storage error: {code}; free some space or restart the app")
        }
        rusqlite::Error::FromSqlConversionFailure(column, ..)
        | rusqlite::Error::InvalidColumnType(column, ..)
        | rusqlite::Error::IntegralValueOutOfRange(column, ..) => format!(
            "storage error: a stored value (column {column}) could not be read; delete the \
             replica file and sync again to rebuild it"
        ),
        _ => "storage error: the device's database failed; restart the app".into(),
    }
}

/// Transport failures, sorted by what the app should do. Server-provided messages are not
/// passed on (only their stable codes): they are the server's words, not checked here.
impl From<TransportError> for ApiError {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::Unauthorized { code, .. } => ApiError::Unauthorized {
                message: format!(
                    "the server did not accept the sign-in ({code}); refresh the session or sign \
                     in again"
                ),
            },
            TransportError::Forbidden { code, .. } => ApiError::Forbidden {
                message: format!(
                    "the server refused this ({code}); ask an administrator if you need access"
                ),
            },
            TransportError::BadRequest { status, code, .. } => ApiError::Incompatible {
                message: format!(
                    "the server rejected the request as invalid ({code}{}); check the server \
                     address or update the app",
                    status.map(|s| format!(", HTTP {s}")).unwrap_or_default()
                ),
            },
            TransportError::RateLimited { retry_after } => ApiError::Network {
                message: match retry_after {
                    Some(d) => format!(
                        "the server is busy (asked to wait {} s); try again later",
                        d.as_secs()
                    ),
                    None => "the server is busy; try again later".into(),
                },
            },
            TransportError::Server { status, code, .. } => {
                let message = format!(
                    "the server had a problem ({code}{}); try again later",
                    status.map(|s| format!(", HTTP {s}")).unwrap_or_default()
                );
                if matches!(status, Some(501 | 505)) {
                    ApiError::Incompatible { message }
                } else {
                    ApiError::Network { message }
                }
            }
            TransportError::Network(_) => ApiError::Network {
                message: "could not reach the server; check the network connection and try again"
                    .into(),
            },
            TransportError::Timeout => ApiError::Network {
                message: "the server took too long to answer; check the network connection and \
                          try again"
                    .into(),
            },
            // The transport's own sentence (addresses, sizes, a content type; no content).
            e @ TransportError::Protocol(_) => ApiError::Incompatible {
                message: e.to_string(),
            },
            TransportError::Replica(inner) => inner.into(),
            TransportError::Cancelled => ApiError::Cancelled {
                message: "sync was cancelled".into(),
            },
            // An unusable server address or TLS setup: the address is the app's input.
            e @ TransportError::Config(_) => ApiError::InvalidInput {
                message: e.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_errors_map_to_what_the_app_should_do() {
        let e: ApiError = RuleError::InvalidInput {
            field: "account name".into(),
            reason: "must not be empty".into(),
        }
        .into();
        assert_eq!(
            e,
            ApiError::InvalidInput {
                message: "account name must not be empty".into()
            }
        );
        let e: ApiError = RuleError::Locked {
            what: "order",
            reason: "it is submitted".into(),
        }
        .into();
        assert_eq!(e.kind(), "conflict");
        let e: ApiError = RuleError::InvalidTransition {
            what: "visit",
            from: "completed".into(),
            to: "in_progress".into(),
        }
        .into();
        assert_eq!(e.kind(), "conflict");
        let e: ApiError = CoreError::NotSignedIn.into();
        assert_eq!(e.kind(), "not_signed_in");
        let e: ApiError = CoreError::NoCatalog.into();
        assert_eq!(e.kind(), "no_catalog");
    }

    #[test]
    fn content_never_leaks_into_messages() {
        let secret = "Zhang Wei <zhang.wei@example.com>";
        let errors: Vec<ApiError> = vec![
            CoreError::Corrupt(format!("stored JSON: invalid type: string \"{secret}\"")).into(),
            RuleError::Malformed {
                path: format!("contacts.{secret}"),
                reason: "is not an ID".into(),
            }
            .into(),
            RuleError::Automerge(secret.into()).into(),
            TransportError::Unauthorized {
                code: "invalid_credentials".into(),
                message: format!("no user {secret}"),
            }
            .into(),
            TransportError::Forbidden {
                code: "forbidden".into(),
                message: secret.into(),
            }
            .into(),
            TransportError::BadRequest {
                status: Some(422),
                code: "invalid_input".into(),
                message: secret.into(),
            }
            .into(),
            TransportError::Server {
                status: Some(503),
                code: "unavailable".into(),
                message: secret.into(),
            }
            .into(),
            TransportError::Network(format!("error sending request: {secret}")).into(),
            TransportError::Replica(CoreError::Storage(rusqlite::Error::InvalidColumnType(
                3,
                secret.into(),
                rusqlite::types::Type::Text,
            )))
            .into(),
        ];
        for e in errors {
            let shown = e.to_string();
            assert!(!shown.contains("Zhang"), "{shown}");
            assert!(!shown.is_empty());
        }
    }

    #[test]
    fn transport_errors_say_whether_to_retry_or_sign_in() {
        let e: ApiError = TransportError::Timeout.into();
        assert_eq!(e.kind(), "network");
        let e: ApiError = TransportError::RateLimited {
            retry_after: Some(std::time::Duration::from_secs(7)),
        }
        .into();
        assert!(e.to_string().contains("7 s"));
        let e: ApiError = TransportError::Unauthorized {
            code: "token_expired".into(),
            message: String::new(),
        }
        .into();
        assert_eq!(e.kind(), "unauthorized");
        assert!(e.to_string().contains("token_expired"));
        let e: ApiError = TransportError::Server {
            status: Some(501),
            code: "not_implemented".into(),
            message: String::new(),
        }
        .into();
        assert_eq!(e.kind(), "incompatible");
        let e: ApiError = TransportError::Replica(CoreError::NoCatalog).into();
        assert_eq!(e.kind(), "no_catalog");
        let e: ApiError = TransportError::Config("bad address".into()).into();
        assert_eq!(e.kind(), "invalid_input");
    }
}
