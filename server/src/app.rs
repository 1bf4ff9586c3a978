//! The HTTP application: shared state, the authenticated-caller extractor, rate limits,
//! middleware, and the small endpoints (health, metrics, sign-in).
//!
//! Every handler runs storage and document work on tokio's blocking pool ([`blocking`]),
//! so a slow disk or a large document never stalls the async workers serving others.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::{StatusCode, header, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fieldline_protocol::access::Principal;
use fieldline_protocol::ids::UserId;
use fieldline_protocol::model::Role;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{self, TokenIssuer, TokenVerifier};
use crate::config::Config;
use crate::engine::Engine;
use crate::error::error_body;
use crate::metrics::Metrics;
use crate::store::{Store, UserRow};
use crate::{Error, Result};

/// Everything a request handler needs.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub verifier: Arc<TokenVerifier>,
    /// Present when the server issues its own tokens (not with an external provider).
    pub issuer: Option<Arc<TokenIssuer>>,
    pub user_limiter: Arc<DefaultKeyedRateLimiter<UserId>>,
    pub login_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl AppState {
    pub fn new(
        engine: Arc<Engine>,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        verifier: TokenVerifier,
        issuer: Option<TokenIssuer>,
    ) -> Self {
        // A bucket holding a minute's budget, refilled evenly over the minute: bursts (a
        // phone paging through a first sync, a team signing in at 9:00) pass, floods do not.
        let per_minute = |n: u32| {
            let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
            Quota::per_minute(n).allow_burst(n)
        };
        AppState {
            store: engine.store().clone(),
            engine,
            metrics,
            verifier: Arc::new(verifier),
            issuer: issuer.map(Arc::new),
            user_limiter: Arc::new(RateLimiter::keyed(per_minute(config.requests_per_minute))),
            login_limiter: Arc::new(RateLimiter::keyed(per_minute(config.logins_per_minute))),
            config,
        }
    }
}

/// Runs storage and document work off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("worker failed: {e}")))?
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An authenticated request: identity from the verified token only, memberships from the
/// organisation tables.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    pub user: UserRow,
    /// When the access token expires (unix seconds): live sessions end then.
    pub expires_at: i64,
}

impl Caller {
    pub fn require_admin(&self) -> Result<()> {
        if self.principal.is_admin() {
            Ok(())
        } else {
            Err(Error::Forbidden("this needs an admin".into()))
        }
    }

    pub fn require_manager(&self) -> Result<()> {
        if matches!(self.principal.role, Role::Manager | Role::Admin) {
            Ok(())
        } else {
            Err(Error::Forbidden("this needs a manager or an admin".into()))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Error::Unauthorized("send an Authorization: Bearer <access token> header".into())
            })?;
        let token = auth::bearer_token(header).ok_or_else(|| {
            Error::Unauthorized("the Authorization header must be Bearer <token>".into())
        })?;
        let verified = state.verifier.verify_claims(token, now_ms() / 1000)?;
        let identity = verified.identity;
        if let Err(wait) = state.user_limiter.check_key(&identity.user_id) {
            state.metrics.inc(&state.metrics.rate_limited);
            let now = governor::clock::Clock::now(&governor::clock::DefaultClock::default());
            return Err(Error::RateLimited {
                retry_after: wait.wait_time_from(now).as_secs() + 1,
            });
        }
        let store = state.store.clone();
        let (user, principal) = blocking(move || {
            let user = store
                .user(identity.user_id)?
                .ok_or_else(|| Error::Unauthorized("this user does not exist".into()))?;
            if !user.active {
                return Err(Error::Unauthorized("this user is deactivated".into()));
            }
            // The role comes from the token, but a token issued before the role changed
            // must not keep the old rights (a demoted admin reading everything until it
            // expires): sign in again to get a token with the current role.
            if user.role != identity.role {
                return Err(Error::Unauthorized(
                    "this user's role changed; sign in again".into(),
                ));
            }
            let principal = store.principal(identity.user_id, identity.role)?;
            Ok((user, principal))
        })
        .await?;
        Ok(Caller {
            principal,
            user,
            expires_at: verified.claims.exp,
        })
    }
}

/// `Json<T>` whose rejections are our JSON errors with stable codes.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(Error::bad_request(
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            )),
            Err(JsonRejection::BytesRejection(e)) => Err(Error::bad_request(
                "body_too_large",
                format!("the body could not be read: {e}"),
            )),
            Err(e) => Err(Error::bad_request("invalid_json", e.body_text())),
        }
    }
}

/// Counts requests and error responses for `/metrics`, and gives the errors produced by
/// tower layers (body too large, timeout) the same JSON shape as every other error.
async fn count_responses(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !is_json {
        let replacement = match resp.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Some((
                "body_too_large",
                "the request body is larger than the server accepts",
            )),
            StatusCode::REQUEST_TIMEOUT => {
                Some(("timeout", "the request took too long; try again"))
            }
            _ => None,
        };
        if let Some((code, message)) = replacement {
            resp = (resp.status(), Json(error_body(code, message))).into_response();
        }
    }
    state.metrics.inc(&state.metrics.http_requests);
    let status = resp.status();
    if status.is_client_error() {
        state.metrics.inc(&state.metrics.http_client_errors);
    } else if status.is_server_error() {
        state.metrics.inc(&state.metrics.http_server_errors);
    }
    resp
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/v1/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/me", get(me))
        .merge(crate::sync::routes())
        .merge(crate::admin::routes())
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(error_body(
                    "no_such_endpoint",
                    "no such endpoint; see /v1/openapi.json",
                )),
            )
        })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                Json(error_body(
                    "method_not_allowed",
                    "this endpoint does not accept that method",
                )),
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_responses,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(error_body(
                    "internal",
                    "the server hit a bug; it keeps running",
                )),
            )
                .into_response()
        }))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(60),
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn metrics(State(state): State<AppState>) -> Result<Response> {
    let store = state.store.clone();
    let stats = blocking(move || Ok(store.stats()?)).await?;
    let text = state
        .metrics
        .render(&stats, state.engine.cached_documents());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub active: bool,
}

impl From<&UserRow> for UserView {
    fn from(u: &UserRow) -> Self {
        UserView {
            id: u.id,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: u.role,
            active: u.active,
        }
    }
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    refresh_token: String,
    user: UserView,
}

async fn issue_tokens(state: &AppState, user: UserRow) -> Result<TokenResponse> {
    let issuer = state.issuer.clone().ok_or_else(|| {
        Error::Forbidden(
            "sign in with your identity provider; this server does not issue tokens".into(),
        )
    })?;
    let now = now_ms() / 1000;
    let (access, expires_at) = issuer.issue_access(user.id, user.role, now)?;
    let (refresh, hash) = auth::new_refresh_token();
    let store = state.store.clone();
    let ttl = state.config.refresh_token_secs;
    let id = user.id;
    blocking(move || Ok(store.insert_refresh_token(&hash, id, now + ttl)?)).await?;
    Ok(TokenResponse {
        access_token: access,
        token_type: "Bearer",
        expires_in: expires_at - now,
        refresh_token: refresh,
        user: UserView::from(&user),
    })
}

/// Sign-in. Attempts are limited per client address (the peer address: behind a reverse
/// proxy, limit there too).
async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response> {
    if state.login_limiter.check_key(&addr.ip()).is_err() {
        state.metrics.inc(&state.metrics.rate_limited);
        return Err(Error::RateLimited { retry_after: 60 });
    }
    let store = state.store.clone();
    let username = body.username.trim().to_owned();
    let found = blocking(move || {
        let found = store.user_by_username(&username)?;
        // Always spend the time of one hash, so timing does not reveal who exists.
        let ok = match &found {
            Some((u, Some(hash))) => auth::verify_password(&body.password, hash) && u.active,
            _ => {
                let _ = auth::verify_password(&body.password, dummy_hash());
                false
            }
        };
        Ok(found.filter(|_| ok).map(|(u, _)| u))
    })
    .await?;
    let Some(user) = found else {
        state.metrics.inc(&state.metrics.login_failures);
        return Err(Error::Unauthorized("wrong username or password".into()));
    };
    state.metrics.inc(&state.metrics.logins);
    Ok(Json(issue_tokens(&state, user).await?).into_response())
}

/// A real argon2 hash (same parameters as users'), verified when the user does not exist so
/// that an unknown username costs the same time as a wrong password.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| auth::hash_password("no user has this password").unwrap_or_default())
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<Response> {
    let store = state.store.clone();
    let hash = auth::refresh_token_hash(&body.refresh_token);
    let user = blocking(move || {
        let Some(id) = store.take_refresh_token(&hash, now_ms() / 1000)? else {
            return Err(Error::Unauthorized(
                "the refresh token is unknown, used or expired; sign in again".into(),
            ));
        };
        let user = store
            .user(id)?
            .filter(|u| u.active)
            .ok_or_else(|| Error::Unauthorized("this user is deactivated".into()))?;
        Ok(user)
    })
    .await?;
    Ok(Json(issue_tokens(&state, user).await?).into_response())
}

async fn logout(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<StatusCode> {
    let store = state.store.clone();
    let hash = auth::refresh_token_hash(&body.refresh_token);
    blocking(move || {
        Ok(store
            .take_refresh_token(&hash, now_ms() / 1000)
            .map(|_| ())?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(caller: Caller) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "user": UserView::from(&caller.user), "principal": caller.principal }))
}
