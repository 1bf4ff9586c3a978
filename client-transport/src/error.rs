//! [`TransportError`]: everything that can go wrong between the replica and the server, sorted
//! by what the app should do about it.

use std::time::Duration;

use serde::Deserialize;

/// Why a sync, a live session or an auth call failed.
///
/// The messages are meant for the user (they say what to do) and never contain a token.
/// [`code`](Self::code) is stable for programs; [`is_retryable`](Self::is_retryable) says
/// whether trying again later can help.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// HTTP 401 (or a WebSocket error with an auth code such as `token_expired`): the access
    /// token is missing, expired or not accepted. Never retried automatically: refresh the
    /// token or sign in again, then sync again.
    #[error(
        "the server did not accept the sign-in ({code}: {message}); refresh the session or sign in again"
    )]
    Unauthorized { code: String, message: String },

    /// HTTP 403: the user may not do this. Not retried.
    #[error("the server refused this ({code}: {message}); ask an administrator if you need access")]
    Forbidden { code: String, message: String },

    /// HTTP 400, 404, 413, 415, 422 and other 4xx: the server considers the request itself
    /// wrong, so sending it again gives the same answer. A bug (or an app older than the
    /// server): not retried. `status` is `None` for WebSocket errors, which carry no status.
    #[error(
        "the server rejected the request as invalid ({code}: {message}); update the app, and report it if it keeps happening"
    )]
    BadRequest {
        status: Option<u16>,
        code: String,
        message: String,
    },

    /// HTTP 429: too many requests. Retried after `Retry-After` when the server sends one
    /// that is not too long (see [`RetryPolicy::max_retry_after`](crate::RetryPolicy)).
    #[error("the server is busy{}; sync will try again later", after(*.retry_after))]
    RateLimited { retry_after: Option<Duration> },

    /// HTTP 5xx (or a WebSocket error the client does not know): a problem on the server's
    /// side. Retried with backoff. `status` is `None` for WebSocket errors.
    #[error("the server had a problem ({code}: {message}); try again later")]
    Server {
        status: Option<u16>,
        code: String,
        message: String,
    },

    /// The server could not be reached or the connection broke. Retried with backoff.
    #[error("could not reach the server ({0}); check the network connection and try again")]
    Network(String),

    /// The server did not answer in time. Retried with backoff.
    #[error("the server took too long to answer; check the network connection and try again")]
    Timeout,

    /// The server's answer could not be understood (not a sync message, a redirect, an
    /// unexpected frame). Not retried.
    #[error(
        "the server's answer could not be understood ({0}); check the server address or update the app"
    )]
    Protocol(String),

    /// The replica could not prepare or apply a round (storage error, damaged file, another
    /// user's data). Not retried; whatever rounds were applied before stay applied.
    #[error("the data on this device could not be synced: {0}")]
    Replica(#[from] fieldline_client_core::Error),

    /// Stopped by the caller ([`CancelToken`](crate::CancelToken) or
    /// [`LiveSession::close`](crate::LiveSession::close)).
    #[error("sync was cancelled")]
    Cancelled,

    /// The transport could not be set up (invalid server address, TLS setup failure).
    #[error("the connection to the server is not configured correctly: {0}")]
    Config(String),
}

fn after(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" (asked to wait {} s)", d.as_secs()),
        None => String::new(),
    }
}

impl TransportError {
    /// Whether trying again later can succeed: rate limiting, server errors (except 501 and
    /// 505, which will not change), network errors and timeouts.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::RateLimited { .. }
            | TransportError::Network(_)
            | TransportError::Timeout => true,
            TransportError::Server { status, .. } => !matches!(status, Some(501 | 505)),
            _ => false,
        }
    }

    /// The access token was not accepted: refresh it or sign in again.
    pub fn is_auth(&self) -> bool {
        matches!(self, TransportError::Unauthorized { .. })
    }

    /// How long the server asked to wait, for [`TransportError::RateLimited`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TransportError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// A stable machine-readable code: the server's code for errors the server reported
    /// (`token_expired`, `forbidden`, …), the replica's code for [`TransportError::Replica`],
    /// otherwise `rate_limited`, `network`, `timeout`, `protocol`, `cancelled` or `config`.
    pub fn code(&self) -> &str {
        match self {
            TransportError::Unauthorized { code, .. }
            | TransportError::Forbidden { code, .. }
            | TransportError::BadRequest { code, .. }
            | TransportError::Server { code, .. } => code,
            TransportError::RateLimited { .. } => "rate_limited",
            TransportError::Network(_) => "network",
            TransportError::Timeout => "timeout",
            TransportError::Protocol(_) => "protocol",
            TransportError::Replica(e) => e.code(),
            TransportError::Cancelled => "cancelled",
            TransportError::Config(_) => "config",
        }
    }

    pub(crate) fn not_signed_in() -> Self {
        TransportError::Unauthorized {
            code: "not_signed_in".into(),
            message: "no access token is available".into(),
        }
    }
}

/// The server's JSON error body: `{"error":{"code":"…","message":"…"}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    #[serde(default)]
    message: String,
}

/// Codes that mean "this token is not accepted" (the server's 401 codes).
const AUTH_CODES: &[&str] = &[
    "unauthorized",
    "not_signed_in",
    "missing_token",
    "invalid_token",
    "token_expired",
    "token_not_yet_valid",
    "token_revoked",
    "wrong_algorithm",
    "invalid_signature",
    "unknown_key",
    "wrong_audience",
    "wrong_issuer",
    "missing_claim",
    "invalid_subject",
    "invalid_role",
    "invalid_credentials",
    "invalid_refresh_token",
];

/// Codes that mean "this request is wrong": the server's 4xx codes other than 401/403/429
/// (bad bytes, unsupported protocol version, rule violations, conflicts).
const BAD_REQUEST_CODES: &[&str] = &[
    "bad_request",
    "unsupported_protocol",
    "unsupported_media_type",
    "too_many_items",
    "invalid_change",
    "malformed_message",
    "body_too_large",
    "payload_too_large",
    "invalid_json",
    "invalid_id",
    "invalid_request",
    "not_found",
    "already_exists",
    "invalid_input",
    "protected_field",
    "locked",
    "invalid_transition",
    "malformed_document",
];

/// Builds the error for a non-success HTTP answer from its status, `Retry-After` and body.
pub(crate) fn from_status(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> TransportError {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => (b.error.code, b.error.message),
        Err(_) => (fallback_code(status).to_owned(), format!("HTTP {status}")),
    };
    match status {
        401 => TransportError::Unauthorized { code, message },
        403 => TransportError::Forbidden { code, message },
        408 => TransportError::Timeout,
        429 => TransportError::RateLimited { retry_after },
        400..=499 => TransportError::BadRequest {
            status: Some(status),
            code,
            message,
        },
        500..=599 => TransportError::Server {
            status: Some(status),
            code,
            message,
        },
        _ => TransportError::Protocol(format!("unexpected HTTP status {status} ({code})")),
    }
}

fn fallback_code(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "invalid_input",
        429 => "rate_limited",
        502 => "bad_gateway",
        503 => "unavailable",
        504 => "gateway_timeout",
        500..=599 => "server_error",
        _ => "http_error",
    }
}

/// Builds the error for a WebSocket `Error` frame, which carries a code but no status.
pub(crate) fn from_code(code: String, message: String) -> TransportError {
    let c = code.as_str();
    if AUTH_CODES.contains(&c) {
        TransportError::Unauthorized { code, message }
    } else if c == "forbidden" {
        TransportError::Forbidden { code, message }
    } else if c == "rate_limited" {
        TransportError::RateLimited { retry_after: None }
    } else if BAD_REQUEST_CODES.contains(&c) {
        TransportError::BadRequest {
            status: None,
            code,
            message,
        }
    } else {
        TransportError::Server {
            status: None,
            code,
            message,
        }
    }
}

/// Whether `code` is one of the server's "token not accepted" codes.
pub(crate) fn is_auth_code(code: &str) -> bool {
    AUTH_CODES.contains(&code)
}

/// Parses `Retry-After` in its delay-seconds form (an HTTP date is ignored: the caller then
/// falls back to its own backoff).
pub(crate) fn parse_retry_after(value: Option<&[u8]>) -> Option<Duration> {
    let s = std::str::from_utf8(value?).ok()?.trim();
    s.parse::<u64>().ok().map(Duration::from_secs)
}

/// Maps a reqwest error. Its text names the URL (never a token: tokens travel in headers).
pub(crate) fn from_reqwest(e: reqwest::Error) -> TransportError {
    if e.is_timeout() {
        TransportError::Timeout
    } else if e.is_builder() {
        TransportError::Config(describe(&e))
    } else {
        TransportError::Network(describe(&e))
    }
}

/// An error and its sources on one line ("error sending request: connection refused").
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: &str) -> Vec<u8> {
        format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#).into_bytes()
    }

    #[test]
    fn statuses_map_to_what_the_app_should_do() {
        let e = from_status(401, None, &body("token_expired"));
        assert!(e.is_auth() && !e.is_retryable());
        assert_eq!(e.code(), "token_expired");
        assert!(matches!(
            from_status(403, None, &body("forbidden")),
            TransportError::Forbidden { .. }
        ));
        for s in [400, 413, 415, 422] {
            let e = from_status(s, None, b"not json");
            assert!(matches!(e, TransportError::BadRequest { status: Some(x), .. } if x == s));
            assert!(!e.is_retryable());
        }
        let e = from_status(429, Some(Duration::from_secs(3)), &body("rate_limited"));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(e.is_retryable());
        let e = from_status(503, None, b"<html>busy</html>");
        assert!(e.is_retryable());
        assert_eq!(e.code(), "unavailable");
        assert!(!from_status(501, None, b"").is_retryable());
        assert!(matches!(
            from_status(408, None, b""),
            TransportError::Timeout
        ));
    }

    #[test]
    fn websocket_codes_are_classified() {
        assert!(from_code("token_expired".into(), "m".into()).is_auth());
        assert!(matches!(
            from_code("forbidden".into(), "m".into()),
            TransportError::Forbidden { .. }
        ));
        assert!(matches!(
            from_code("malformed_message".into(), "m".into()),
            TransportError::BadRequest { status: None, .. }
        ));
        let e = from_code("overloaded".into(), "m".into());
        assert!(e.is_retryable());
        assert_eq!(e.code(), "overloaded");
    }

    #[test]
    fn retry_after_seconds_only() {
        assert_eq!(
            parse_retry_after(Some(b" 7 ")),
            Some(Duration::from_secs(7))
        );
        let date = b"Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(parse_retry_after(Some(date)), None);
        assert_eq!(parse_retry_after(None), None);
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = TransportError::Unauthorized {
            code: "token_expired".into(),
            message: "the access token has expired".into(),
        };
        assert!(e.to_string().contains("sign in again"));
        let e = TransportError::RateLimited {
            retry_after: Some(Duration::from_secs(5)),
        };
        assert!(e.to_string().contains("5 s"));
    }
}
