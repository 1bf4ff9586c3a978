//! TLS: rustls with the ring crypto provider and the platform's certificate verifier, for
//! both HTTP (reqwest) and the WebSocket (tokio-tungstenite).

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use crate::TransportError;

/// The process-wide rustls provider, installing ring's if none is installed yet. (reqwest's
/// `rustls-no-provider` build needs one; an app that installed its own keeps it.)
pub(crate) fn crypto_provider() -> Arc<CryptoProvider> {
    if let Some(p) = CryptoProvider::get_default() {
        return p.clone();
    }
    // Another thread may win the race to install one: either way, one is installed after.
    let _ = rustls::crypto::ring::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// The rustls configuration for `wss://` connections: same provider and verifier as the
/// HTTP client, HTTP/1.1 only (a WebSocket upgrade cannot run over HTTP/2 here).
pub(crate) fn websocket_config(
    provider: Arc<CryptoProvider>,
) -> Result<Arc<rustls::ClientConfig>, TransportError> {
    let tls_error = |e: rustls::Error| TransportError::Config(format!("TLS setup failed: {e}"));
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone()).map_err(tls_error)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
