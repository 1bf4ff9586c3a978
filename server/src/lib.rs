//! # fieldline-server
//!
//! The sync server: authentication, the organisation, per-rep access rules on every read
//! and write, change storage and the sync endpoints. See ARCHITECTURE.md for the map.
//!
//! - [`config`]: settings; [`auth`]: tokens and passwords (pure functions);
//! - [`store`]: storage behind a trait ([`store::sqlite`] is the default);
//! - [`engine`]: judging uploads and applying the server's own edits;
//! - [`app`], [`sync`], [`admin`], [`openapi`]: the HTTP API; [`metrics`]: `/metrics`;
//! - [`demo`], [`seed`]: the demo organisation.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod admin;
pub mod app;
pub mod auth;
pub mod config;
pub mod demo;
pub mod engine;
mod error;
pub mod metrics;
pub mod openapi;
pub mod seed;
pub mod store;
pub mod sync;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub use error::{Error, Result};

use crate::auth::{ExternalKeys, TokenIssuer, TokenVerifier, VerifierConfig, VerifierKeys};
use crate::config::{AuthMode, Config};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the database: {0}")]
    Store(#[from] store::StoreError),
    #[error("authentication setup: {0}")]
    Auth(#[from] auth::AuthError),
    #[error("cannot read the identity provider key {path}")]
    KeyFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Server(#[from] Error),
}

/// Opens storage, sets up tokens and the engine: everything but the listener.
pub fn build(config: Config) -> std::result::Result<app::AppState, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let store: Arc<dyn store::Store> =
        Arc::new(store::sqlite::SqliteStore::open(config.database_path())?);
    let metrics = Arc::new(metrics::Metrics::default());
    let engine = Arc::new(engine::Engine::new(
        store,
        config.cache_docs,
        metrics.clone(),
    ));
    engine.ensure_doc(fieldline_protocol::ids::DocId::Catalog, app::now_ms())?;
    let leeway = 30;
    let (verifier, issuer) = match &config.auth {
        AuthMode::Internal => {
            let secret = auth::load_or_create_hs256_secret(&config.secret_path())?;
            let issuer = TokenIssuer::new(
                secret,
                config.issuer.clone(),
                config.audience.clone(),
                config.access_token_secs,
            )?;
            (
                TokenVerifier::new(issuer.verifier_config(leeway))?,
                Some(issuer),
            )
        }
        AuthMode::External {
            algorithm,
            public_key,
            jwks,
        } => {
            let read = |p: &std::path::PathBuf| {
                std::fs::read(p).map_err(|source| StartError::KeyFile {
                    path: p.clone(),
                    source,
                })
            };
            let keys = match (public_key, jwks) {
                (Some(pk), _) => VerifierKeys::external_from_pem(algorithm, &read(pk)?)?,
                (None, Some(j)) => VerifierKeys::external_from_jwks(algorithm, &read(j)?)?,
                (None, None) => VerifierKeys::External {
                    algorithm: jsonwebtoken::Algorithm::RS256,
                    keys: ExternalKeys::Pem(Vec::new()),
                },
            };
            let cfg = VerifierConfig {
                issuer: config.issuer.clone(),
                audience: config.audience.clone(),
                leeway_secs: leeway,
                keys,
            };
            (TokenVerifier::new(cfg)?, None)
        }
    };
    Ok(app::AppState::new(
        engine,
        Arc::new(config),
        metrics,
        verifier,
        issuer,
    ))
}

/// Serves until `shutdown` completes.
pub async fn serve(
    state: app::AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Forget idle rate-limit keys now and then, so memory does not grow with clients seen.
    let (users, logins) = (state.user_limiter.clone(), state.login_limiter.clone());
    let sweeper = tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            users.retain_recent();
            logins.retain_recent();
            users.shrink_to_fit();
            logins.shrink_to_fit();
        }
    });
    let app = app::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    result
}
