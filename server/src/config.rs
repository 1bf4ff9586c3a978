//! Settings: command-line flags, then `FIELDLINE_*` environment variables, then an optional
//! TOML file, then defaults — the first that sets a value wins.
//!
//! No secret lives here: the token signing key is generated into the data directory (or an
//! external identity provider's *public* key is read from a file), and passwords never pass
//! through settings, so printing the settings is always safe.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

/// Settings given on the command line or in the environment (clap reads both).
#[derive(Args, Debug, Clone, Default)]
pub struct Flags {
    /// Address to listen on.
    #[arg(long, env = "FIELDLINE_ADDR")]
    pub addr: Option<SocketAddr>,
    /// Directory for the database and the token signing key.
    #[arg(long, env = "FIELDLINE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Optional TOML settings file.
    #[arg(long, env = "FIELDLINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Issuer (`iss`) of access tokens.
    #[arg(long, env = "FIELDLINE_ISSUER")]
    pub issuer: Option<String>,
    /// Audience (`aud`) of access tokens.
    #[arg(long, env = "FIELDLINE_AUDIENCE")]
    pub audience: Option<String>,
    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "FIELDLINE_ACCESS_TOKEN_SECS")]
    pub access_token_secs: Option<i64>,
    /// Lifetime of refresh tokens, in seconds.
    #[arg(long, env = "FIELDLINE_REFRESH_TOKEN_SECS")]
    pub refresh_token_secs: Option<i64>,
    /// Trust an external identity provider instead of our own tokens: RS256, ES256 or EdDSA.
    #[arg(long, env = "FIELDLINE_EXTERNAL_ALGORITHM")]
    pub external_algorithm: Option<String>,
    /// The identity provider's public key (PEM).
    #[arg(long, env = "FIELDLINE_EXTERNAL_PUBLIC_KEY")]
    pub external_public_key: Option<PathBuf>,
    /// The identity provider's keys (JWKS file).
    #[arg(long, env = "FIELDLINE_EXTERNAL_JWKS")]
    pub external_jwks: Option<PathBuf>,
    /// Largest request body, in bytes.
    #[arg(long, env = "FIELDLINE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Most documents sent in one sync response.
    #[arg(long, env = "FIELDLINE_SYNC_PAGE_DOCS")]
    pub sync_page_docs: Option<usize>,
    /// Most document bytes sent in one sync response (soft limit).
    #[arg(long, env = "FIELDLINE_SYNC_PAGE_BYTES")]
    pub sync_page_bytes: Option<usize>,
    /// Requests a signed-in user may make per minute.
    #[arg(long, env = "FIELDLINE_REQUESTS_PER_MINUTE")]
    pub requests_per_minute: Option<u32>,
    /// Sign-in attempts per client address per minute.
    #[arg(long, env = "FIELDLINE_LOGINS_PER_MINUTE")]
    pub logins_per_minute: Option<u32>,
    /// Documents kept loaded in memory.
    #[arg(long, env = "FIELDLINE_CACHE_DOCS")]
    pub cache_docs: Option<usize>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "FIELDLINE_LOG_JSON")]
    pub log_json: Option<bool>,
}

/// The same settings in the TOML file.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub addr: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub access_token_secs: Option<i64>,
    pub refresh_token_secs: Option<i64>,
    pub external_algorithm: Option<String>,
    pub external_public_key: Option<PathBuf>,
    pub external_jwks: Option<PathBuf>,
    pub max_body_bytes: Option<usize>,
    pub sync_page_docs: Option<usize>,
    pub sync_page_bytes: Option<usize>,
    pub requests_per_minute: Option<u32>,
    pub logins_per_minute: Option<u32>,
    pub cache_docs: Option<usize>,
    pub log_json: Option<bool>,
}

/// Where tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// Our own HS256 tokens, signed with a key kept in the data directory.
    Internal,
    /// Tokens of an external identity provider, checked with its public key or JWKS.
    External {
        algorithm: String,
        public_key: Option<PathBuf>,
        jwks: Option<PathBuf>,
    },
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub issuer: String,
    pub audience: String,
    pub access_token_secs: i64,
    pub refresh_token_secs: i64,
    pub auth: AuthMode,
    pub max_body_bytes: usize,
    pub sync_page_docs: usize,
    pub sync_page_bytes: usize,
    pub requests_per_minute: u32,
    pub logins_per_minute: u32,
    pub cache_docs: usize,
    pub log_json: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8787)),
            data_dir: PathBuf::from("./fieldline-data"),
            issuer: "fieldline".into(),
            audience: "fieldline-sync".into(),
            access_token_secs: 15 * 60,
            refresh_token_secs: 30 * 24 * 3600,
            auth: AuthMode::Internal,
            max_body_bytes: 16 * 1024 * 1024,
            sync_page_docs: 500,
            sync_page_bytes: 4 * 1024 * 1024,
            requests_per_minute: 600,
            logins_per_minute: 20,
            cache_docs: 256,
            log_json: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read settings file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("settings file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting: {0}")]
    Invalid(String),
}

impl Config {
    /// Resolves flags/environment over the file over defaults, and checks the result.
    pub fn resolve(flags: &Flags) -> Result<Config, ConfigError> {
        let file = match &flags.config {
            Some(path) => Self::read_file(path)?,
            None => FileSettings::default(),
        };
        let d = Config::default();
        macro_rules! pick {
            ($f:ident) => {
                flags.$f.clone().or(file.$f.clone()).unwrap_or(d.$f.clone())
            };
        }
        let algorithm = flags
            .external_algorithm
            .clone()
            .or(file.external_algorithm.clone());
        let public_key = flags
            .external_public_key
            .clone()
            .or(file.external_public_key.clone());
        let jwks = flags.external_jwks.clone().or(file.external_jwks.clone());
        let auth = match (algorithm, public_key, jwks) {
            (None, None, None) => AuthMode::Internal,
            (Some(a), pk, jw) if pk.is_some() != jw.is_some() => AuthMode::External {
                algorithm: a,
                public_key: pk,
                jwks: jw,
            },
            (Some(_), _, _) => {
                return Err(ConfigError::Invalid(
                    "an external identity provider needs exactly one of external_public_key or external_jwks".into(),
                ));
            }
            (None, _, _) => {
                return Err(ConfigError::Invalid(
                    "external_algorithm is required with an external key (RS256, ES256 or EdDSA)"
                        .into(),
                ));
            }
        };
        let c = Config {
            addr: pick!(addr),
            data_dir: pick!(data_dir),
            issuer: pick!(issuer),
            audience: pick!(audience),
            access_token_secs: pick!(access_token_secs),
            refresh_token_secs: pick!(refresh_token_secs),
            auth,
            max_body_bytes: pick!(max_body_bytes),
            sync_page_docs: pick!(sync_page_docs),
            sync_page_bytes: pick!(sync_page_bytes),
            requests_per_minute: pick!(requests_per_minute),
            logins_per_minute: pick!(logins_per_minute),
            cache_docs: pick!(cache_docs),
            log_json: pick!(log_json),
        };
        c.check()?;
        Ok(c)
    }

    fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if !(60..=24 * 3600).contains(&self.access_token_secs) {
            return bad("access_token_secs must be between 60 and 86400");
        }
        if self.refresh_token_secs < self.access_token_secs {
            return bad("refresh_token_secs must be at least access_token_secs");
        }
        if self.max_body_bytes < 64 * 1024 {
            return bad("max_body_bytes must be at least 65536");
        }
        if self.sync_page_docs == 0 || self.sync_page_bytes == 0 || self.cache_docs == 0 {
            return bad("sync_page_docs, sync_page_bytes and cache_docs must be positive");
        }
        if self.requests_per_minute == 0 || self.logins_per_minute == 0 {
            return bad("requests_per_minute and logins_per_minute must be positive");
        }
        if self.issuer.trim().is_empty() || self.audience.trim().is_empty() {
            return bad("issuer and audience must not be empty");
        }
        Ok(())
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("fieldline.db")
    }

    pub fn secret_path(&self) -> PathBuf {
        self.data_dir.join("token-signing-key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.toml");
        std::fs::write(
            &file,
            "addr = \"127.0.0.1:9000\"\nsync_page_docs = 42\ncache_docs = 7\n",
        )
        .unwrap();
        let flags = Flags {
            config: Some(file),
            cache_docs: Some(99),
            ..Flags::default()
        };
        let c = Config::resolve(&flags).unwrap();
        assert_eq!(c.addr.port(), 9000);
        assert_eq!(c.sync_page_docs, 42);
        assert_eq!(c.cache_docs, 99);
        assert_eq!(c.audience, "fieldline-sync");
        assert_eq!(c.auth, AuthMode::Internal);
    }

    #[test]
    fn bad_settings_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.toml");
        std::fs::write(&file, "adress = \"x\"\n").unwrap();
        let e = Config::resolve(&Flags {
            config: Some(file),
            ..Flags::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("adress"), "{e}");
        let e = Config::resolve(&Flags {
            access_token_secs: Some(1),
            ..Flags::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("access_token_secs"));
        let e = Config::resolve(&Flags {
            external_algorithm: Some("RS256".into()),
            ..Flags::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("external_public_key"));
    }
}
