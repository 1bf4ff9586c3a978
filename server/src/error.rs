//! The server's error type, and its one mapping to HTTP: a status and a JSON body
//! `{"error": {"code": "<stable_code>", "message": "<what to do>"}}`.
//!
//! Codes are stable API: clients branch on them. Messages explain what to do and never echo
//! tokens, passwords or document content.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::auth::AuthError;
use crate::store::StoreError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed (bad JSON, bad bytes, missing field).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Authentication failed or is missing.
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("sign in again: {0}")]
    Unauthorized(String),
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("{0} does not exist")]
    NotFound(String),
    /// The request conflicts with the current state (already resolved, name taken, …).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A write broke a rule of the schema or of access.
    #[error(transparent)]
    Rule(#[from] fieldline_protocol::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Too many requests from this user or address.
    #[error("too many requests; retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Error::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Error::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Error::Auth(e) if e.is_token_rejection() => (StatusCode::UNAUTHORIZED, e.code()),
            Error::Auth(e) if e.code() == "weak_password" => {
                (StatusCode::UNPROCESSABLE_ENTITY, e.code())
            }
            Error::Auth(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.code()),
            Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Error::Rule(e) => match e {
                fieldline_protocol::Error::Forbidden { .. } => (StatusCode::FORBIDDEN, e.code()),
                fieldline_protocol::Error::NotFound { .. } => (StatusCode::NOT_FOUND, e.code()),
                fieldline_protocol::Error::Locked { .. }
                | fieldline_protocol::Error::InvalidTransition { .. } => {
                    (StatusCode::CONFLICT, e.code())
                }
                fieldline_protocol::Error::Automerge(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, e.code())
                }
                _ => (StatusCode::UNPROCESSABLE_ENTITY, e.code()),
            },
            Error::Store(StoreError::Conflict(_)) => (StatusCode::CONFLICT, "already_exists"),
            Error::Store(StoreError::AlreadyResolved(_)) => {
                (StatusCode::CONFLICT, "already_resolved")
            }
            Error::Store(StoreError::NotFound(_)) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage"),
            Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// The JSON error body.
pub fn error_body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "error": { "code": code, "message": message } })
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = if status.is_server_error() {
            // Details of internal failures go to the log, not to the client.
            tracing::error!(error = %self, "request failed");
            "the server could not complete the request; try again later".to_owned()
        } else {
            self.to_string()
        };
        let mut resp = (status, axum::Json(error_body(code, &message))).into_response();
        if let Error::RateLimited { retry_after } = self {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after),
            );
        }
        resp
    }
}
