//! Authentication: access tokens, refresh tokens, passwords and the internal signing key.
//!
//! # Design
//!
//! * **Identity comes only from a verified token.** The rest of the server trusts exactly one
//!   thing from this module: an [`Identity`] (user ID and role) returned by
//!   [`TokenVerifier::verify`]. Nothing else in a request (headers, bodies, change authors,
//!   timestamps) says who the caller is.
//! * **The algorithm is pinned by configuration.** A verifier accepts exactly one algorithm:
//!   HS256 for tokens this server issues itself ([`TokenIssuer`]), or one of RS256, ES256 or
//!   EdDSA for tokens from an external identity provider (a public key PEM or a JWKS). The
//!   token header's `alg` is only *compared* with the pinned one, never used to pick a key or an
//!   algorithm, so `alg: none` and HS/RS key-confusion tricks are refused before any signature
//!   is checked. Header fields that point at keys (`jku`, `x5u`, `jwk`, `x5c`) are ignored: keys
//!   come from configuration only, never fetched. A JWKS key is chosen by the token's `kid`; a
//!   JWK whose own `alg`, type or `use` does not fit the pinned algorithm is refused.
//! * **`verify` is pure.** Like y-sweet's `auth.rs`, [`TokenVerifier::verify`] takes the current
//!   time as an argument and does no I/O; jsonwebtoken's own clock-based `exp`/`nbf` checks are
//!   switched off and the time rules (`exp`, `iat`, `nbf`, with the configured leeway) are
//!   applied here against that argument. Tests can therefore use any clock.
//! * **Errors help without leaking.** Every failure is an [`AuthError`] with a stable
//!   [`AuthError::code`] for JSON errors and a message that says what to do. Messages never
//!   contain secrets, passwords, token contents or claim values.
//! * **Secrets stay out of logs.** Types holding a secret implement `Debug` by hand with the
//!   secret redacted. The only I/O is the explicit key-file helper
//!   [`load_or_create_hs256_secret`].
//!
//! Refresh tokens are opaque random strings (32 bytes, base64url); only their SHA-256 is
//! stored. Passwords are hashed with Argon2id into PHC strings (see [`PasswordParams`]).

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::{
    STANDARD, STANDARD_PAD_INDIFFERENT, URL_SAFE_NO_PAD, URL_SAFE_PAD_INDIFFERENT,
};
use fieldline_protocol::ids::UserId;
use fieldline_protocol::model::Role;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Tokens longer than this are refused before any parsing (a real access token is < 1 KiB).
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Shortest HS256 secret accepted (256 bits, the HMAC-SHA-256 block-size recommendation).
const MIN_HS256_SECRET_LEN: usize = 32;
/// Length of a secret created by [`load_or_create_hs256_secret`].
const HS256_SECRET_FILE_LEN: usize = 64;
/// Largest clock-skew leeway accepted in a [`VerifierConfig`].
const MAX_LEEWAY_SECS: u64 = 600;
/// Longest access-token lifetime accepted by [`TokenIssuer::new`] (7 days).
const MAX_ACCESS_TTL_SECS: i64 = 7 * 24 * 3600;
/// RSA public keys shorter than this are refused.
const MIN_RSA_BITS: usize = 2048;
/// Password length limits, in characters.
const PASSWORD_MIN_CHARS: usize = 8;
const PASSWORD_MAX_CHARS: usize = 1024;
/// Stored hashes whose parameters exceed these are refused by [`verify_password`] without
/// hashing, so a tampered row cannot make a login take minutes or gigabytes.
const MAX_VERIFY_MEMORY_KIB: u32 = 256 * 1024;
const MAX_VERIFY_ITERATIONS: u32 = 16;
const MAX_VERIFY_PARALLELISM: u32 = 16;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why authentication or its configuration failed.
///
/// Messages tell the user (or the administrator, for configuration errors) what to do; they
/// never contain secrets, passwords or token contents. [`AuthError::code`] gives a stable word
/// for JSON error bodies; [`AuthError::is_token_rejection`] tells which variants mean
/// "401: this token is not accepted".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    // --- Token rejections (HTTP 401) ---
    /// Not a JWT at all, or a part could not be decoded.
    #[error("the access token is malformed ({reason}); sign in again to get a new one")]
    MalformedToken { reason: &'static str },

    /// `alg: none`.
    #[error(
        "unsigned tokens (alg \"none\") are never accepted; sign in again to get a signed token"
    )]
    UnsignedToken,

    /// The header's `alg` is not the pinned algorithm.
    #[error(
        "the token is not signed with {expected}, the only algorithm this server accepts; \
         sign in again through this server's sign-in"
    )]
    WrongAlgorithm { expected: &'static str },

    /// The signature does not verify with the selected key.
    #[error("the token's signature is not valid; sign in again to get a new token")]
    InvalidSignature,

    /// No configured key matches the token (JWKS mode).
    #[error(
        "the token was signed with a key this server does not know ({reason}); sign in again, \
         and if it keeps happening ask the administrator to update the server's key set"
    )]
    UnknownKey { reason: &'static str },

    /// The JWK named by the token may not verify tokens of the pinned algorithm.
    #[error(
        "the key named by the token cannot be used ({reason}); ask the administrator to check \
         the server's key set"
    )]
    KeyNotAllowed { reason: &'static str },

    /// `exp` (plus leeway) has passed.
    #[error("the access token has expired; refresh it or sign in again")]
    TokenExpired,

    /// `iat` or `nbf` lies in the future beyond the leeway.
    #[error(
        "the access token is not valid yet (issued in the future); check the clock of this \
         device and of the sign-in server"
    )]
    TokenNotYetValid,

    /// `aud` is not exactly the configured audience.
    #[error(
        "the access token was issued for a different service; sign in to this server to get a \
         token for it"
    )]
    WrongAudience,

    /// `iss` is not exactly the configured issuer.
    #[error(
        "the access token comes from an issuer this server does not trust; sign in through this \
         server's identity provider"
    )]
    WrongIssuer,

    /// A claim the server needs is absent.
    #[error(
        "the access token lacks the `{claim}` claim; sign in again, or ask the administrator to \
         make the identity provider include it"
    )]
    MissingClaim { claim: &'static str },

    /// `sub` is not a Fieldline user ID (a UUID).
    #[error(
        "the access token's subject is not a Fieldline user ID; ask the administrator to map \
         accounts to Fieldline user IDs"
    )]
    InvalidSubject,

    /// `role` is not rep, manager or admin.
    #[error(
        "the access token's role is not one of rep, manager or admin; ask the administrator to \
         fix the role claim"
    )]
    InvalidRole,

    // --- Configuration (at start-up) ---
    /// An algorithm name that is not supported.
    #[error(
        "unknown token algorithm `{name}`; use HS256 (tokens issued by this server) or, for an \
         external identity provider, RS256, ES256 or EdDSA"
    )]
    UnknownAlgorithm { name: String },

    /// HS* requested for an external identity provider.
    #[error(
        "{name} cannot be used with an external identity provider (a shared secret would let \
         anyone who can verify tokens also forge them); use RS256, ES256 or EdDSA with the \
         provider's public key"
    )]
    SymmetricExternal { name: String },

    /// The public-key PEM cannot be used.
    #[error("the public key PEM cannot be used: {reason}")]
    InvalidPem { reason: String },

    /// The JWKS cannot be used.
    #[error("the JWKS cannot be used: {reason}")]
    InvalidJwks { reason: String },

    /// Another configuration value is out of range.
    #[error("invalid authentication settings: {reason}")]
    InvalidConfig { reason: String },

    // --- Passwords ---
    /// The password does not meet the policy.
    #[error("{reason}")]
    WeakPassword { reason: &'static str },

    /// Argon2 failed (bad parameters or the random generator).
    #[error("the password could not be hashed; try again, and report it if it keeps happening")]
    PasswordHashing,

    // --- Issuing and key material ---
    /// Signing an access token failed.
    #[error(
        "the access token could not be created; try again, and report it if it keeps happening"
    )]
    TokenSigning,

    /// The HS256 key file could not be read, created or used.
    #[error("the key file {path} {problem}")]
    KeyFile { path: PathBuf, problem: String },

    /// The operating system's random number generator failed.
    #[error(
        "the operating system's random number generator is unavailable; check the server's \
         environment and try again"
    )]
    Randomness,
}

impl AuthError {
    /// A stable machine-readable word for JSON error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MalformedToken { .. } => "invalid_token",
            AuthError::UnsignedToken
            | AuthError::WrongAlgorithm { .. }
            | AuthError::KeyNotAllowed { .. } => "wrong_algorithm",
            AuthError::InvalidSignature => "invalid_signature",
            AuthError::UnknownKey { .. } => "unknown_key",
            AuthError::TokenExpired => "token_expired",
            AuthError::TokenNotYetValid => "token_not_yet_valid",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::MissingClaim { .. } => "missing_claim",
            AuthError::InvalidSubject => "invalid_subject",
            AuthError::InvalidRole => "invalid_role",
            AuthError::UnknownAlgorithm { .. }
            | AuthError::SymmetricExternal { .. }
            | AuthError::InvalidPem { .. }
            | AuthError::InvalidJwks { .. }
            | AuthError::InvalidConfig { .. } => "auth_config",
            AuthError::WeakPassword { .. } => "weak_password",
            AuthError::KeyFile { .. } => "key_file",
            AuthError::PasswordHashing | AuthError::TokenSigning | AuthError::Randomness => {
                "internal_error"
            }
        }
    }

    /// True for the variants that mean "this token is not accepted" (answer with HTTP 401).
    pub fn is_token_rejection(&self) -> bool {
        matches!(
            self,
            AuthError::MalformedToken { .. }
                | AuthError::UnsignedToken
                | AuthError::WrongAlgorithm { .. }
                | AuthError::InvalidSignature
                | AuthError::UnknownKey { .. }
                | AuthError::KeyNotAllowed { .. }
                | AuthError::TokenExpired
                | AuthError::TokenNotYetValid
                | AuthError::WrongAudience
                | AuthError::WrongIssuer
                | AuthError::MissingClaim { .. }
                | AuthError::InvalidSubject
                | AuthError::InvalidRole
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Claims and identity
// ---------------------------------------------------------------------------------------------

/// The claims of a Fieldline access token. All are required when verifying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user ID (hyphenated UUID).
    pub sub: String,
    /// `rep`, `manager` or `admin`.
    pub role: String,
    pub iss: String,
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issue time, Unix seconds.
    pub iat: i64,
    /// Unique token ID (UUIDv4 for tokens we issue).
    pub jti: String,
}

/// Who is calling: the only thing the rest of the server trusts, and only ever built from a
/// verified token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    pub user_id: UserId,
    pub role: Role,
}

/// A successfully verified token: the identity and the full claims (e.g. `jti` for audit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub identity: Identity,
    pub claims: AccessClaims,
}

/// The claims as they arrive: everything optional so that a missing claim gets a precise error.
#[derive(Deserialize)]
struct RawClaims {
    sub: Option<String>,
    role: Option<String>,
    iss: Option<String>,
    aud: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
    jti: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// The algorithms a verifier can be pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlgorithmChoice {
    /// HMAC-SHA-256 with this server's own secret (tokens from [`TokenIssuer`]).
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (external identity provider).
    Rs256,
    /// ECDSA P-256 with SHA-256 (external identity provider).
    Es256,
    /// Ed25519 (external identity provider).
    EdDsa,
}

impl AlgorithmChoice {
    /// Parses a configured algorithm name (case-insensitive: `HS256`, `RS256`, `ES256`,
    /// `EdDSA`).
    pub fn parse(name: &str) -> Result<Self, AuthError> {
        let name = name.trim();
        [Self::Hs256, Self::Rs256, Self::Es256, Self::EdDsa]
            .into_iter()
            .find(|choice| choice.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| AuthError::UnknownAlgorithm {
                name: printable_name(name),
            })
    }

    /// The standard JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// The jsonwebtoken algorithm.
    pub fn algorithm(self) -> Algorithm {
        match self {
            Self::Hs256 => Algorithm::HS256,
            Self::Rs256 => Algorithm::RS256,
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }

    /// The choice for a jsonwebtoken algorithm, if it is one we support.
    pub fn from_algorithm(alg: Algorithm) -> Option<Self> {
        match alg {
            Algorithm::HS256 => Some(Self::Hs256),
            Algorithm::RS256 => Some(Self::Rs256),
            Algorithm::ES256 => Some(Self::Es256),
            Algorithm::EdDSA => Some(Self::EdDsa),
            _ => None,
        }
    }

    /// Whether this is an algorithm for an external identity provider (asymmetric).
    pub fn is_external(self) -> bool {
        !matches!(self, Self::Hs256)
    }

    /// Parses a name for external mode: HS* is refused with an explanation.
    fn parse_external(name: &str) -> Result<Self, AuthError> {
        let trimmed = name.trim();
        if trimmed
            .get(..2)
            .is_some_and(|p| p.eq_ignore_ascii_case("HS"))
        {
            return Err(AuthError::SymmetricExternal {
                name: printable_name(trimmed),
            });
        }
        let choice = Self::parse(trimmed)?;
        if choice.is_external() {
            Ok(choice)
        } else {
            Err(AuthError::SymmetricExternal {
                name: choice.as_str().to_owned(),
            })
        }
    }
}

/// Everything a [`TokenVerifier`] needs.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Required exact value of `iss`.
    pub issuer: String,
    /// Required exact value of `aud`.
    pub audience: String,
    /// Clock-skew allowance for `exp`, `iat` and `nbf`, in seconds (at most 600).
    pub leeway_secs: u64,
    pub keys: VerifierKeys,
}

/// The keys (and so the pinned algorithm) a verifier uses.
#[derive(Clone)]
pub enum VerifierKeys {
    /// Tokens issued by this server, HMAC-SHA-256 with a secret of at least 32 bytes.
    Hs256 { secret: Vec<u8> },
    /// Tokens from an external identity provider.
    External {
        /// One of RS256, ES256 or EdDSA; anything else is refused by [`TokenVerifier::new`].
        algorithm: Algorithm,
        keys: ExternalKeys,
    },
}

/// Public keys of an external identity provider.
#[derive(Clone)]
pub enum ExternalKeys {
    /// One public key in PEM (`-----BEGIN PUBLIC KEY-----`, or `RSA PUBLIC KEY` for RS256).
    Pem(Vec<u8>),
    /// A JSON Web Key Set; the token's `kid` selects the key.
    Jwks(JwkSet),
}

impl VerifierKeys {
    /// External mode from a public-key PEM file's contents. Checks the key right away.
    pub fn external_from_pem(alg_name: &str, pem: &[u8]) -> Result<Self, AuthError> {
        let choice = AlgorithmChoice::parse_external(alg_name)?;
        decoding_key_from_pem(choice, pem)?;
        Ok(VerifierKeys::External {
            algorithm: choice.algorithm(),
            keys: ExternalKeys::Pem(pem.to_vec()),
        })
    }

    /// External mode from a JWKS file's contents (`{"keys": [...]}`). Checks the keys right
    /// away: at least one must be usable for the algorithm, and `kid`s must be unique.
    pub fn external_from_jwks(alg_name: &str, json: &[u8]) -> Result<Self, AuthError> {
        let choice = AlgorithmChoice::parse_external(alg_name)?;
        let set: JwkSet = serde_json::from_slice(json).map_err(|e| AuthError::InvalidJwks {
            reason: format!(
                "it is not a JSON Web Key Set of the form {{\"keys\": [...]}} (problem at line {}, \
                 column {})",
                e.line(),
                e.column()
            ),
        })?;
        jwks_store(choice, &set)?;
        Ok(VerifierKeys::External {
            algorithm: choice.algorithm(),
            keys: ExternalKeys::Jwks(set),
        })
    }

    /// The pinned algorithm's name, for messages.
    pub fn algorithm_name(&self) -> &'static str {
        match self {
            VerifierKeys::Hs256 { .. } => AlgorithmChoice::Hs256.as_str(),
            VerifierKeys::External { algorithm, .. } => alg_name(*algorithm),
        }
    }
}

impl fmt::Debug for VerifierKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifierKeys::Hs256 { secret } => f
                .debug_struct("Hs256")
                .field("secret", &Redacted(secret.len()))
                .finish(),
            VerifierKeys::External { algorithm, keys } => f
                .debug_struct("External")
                .field("algorithm", algorithm)
                .field("keys", keys)
                .finish(),
        }
    }
}

impl fmt::Debug for ExternalKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExternalKeys::Pem(pem) => f
                .debug_struct("Pem")
                .field("bytes", &pem.len())
                .finish_non_exhaustive(),
            // Key material is left out: a JWKS could (wrongly) hold a symmetric `oct` key.
            ExternalKeys::Jwks(set) => {
                let kids: Vec<&str> = set
                    .keys
                    .iter()
                    .map(|k| k.common.key_id.as_deref().unwrap_or("<no kid>"))
                    .collect();
                f.debug_struct("Jwks")
                    .field("kids", &kids)
                    .finish_non_exhaustive()
            }
        }
    }
}

/// Prints as `<redacted, N bytes>`.
struct Redacted(usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted, {} bytes>", self.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Verifier
// ---------------------------------------------------------------------------------------------

/// Verifies access tokens against a pinned algorithm and key(s). Build once at start-up.
pub struct TokenVerifier {
    choice: AlgorithmChoice,
    keys: KeyStore,
    validation: Validation,
    issuer: String,
    audience: String,
    leeway: i64,
}

enum KeyStore {
    /// HS256 secret or one PEM public key; the token's `kid` is ignored.
    Single(DecodingKey),
    /// A JWKS: one entry per JWK, usable or refused (so a token naming a refused key gets a
    /// precise error instead of "unknown key").
    Set(Vec<JwksEntry>),
}

struct JwksEntry {
    kid: Option<String>,
    key: Result<DecodingKey, &'static str>,
}

impl TokenVerifier {
    /// Checks the configuration and prepares the keys.
    pub fn new(cfg: VerifierConfig) -> Result<Self, AuthError> {
        let issuer = cfg.issuer.trim().to_owned();
        let audience = cfg.audience.trim().to_owned();
        if issuer.is_empty() {
            return Err(AuthError::InvalidConfig {
                reason: "the token issuer is empty; set it to the `iss` value of the tokens".into(),
            });
        }
        if audience.is_empty() {
            return Err(AuthError::InvalidConfig {
                reason: "the token audience is empty; set it to the `aud` value of the tokens"
                    .into(),
            });
        }
        if cfg.leeway_secs > MAX_LEEWAY_SECS {
            return Err(AuthError::InvalidConfig {
                reason: format!(
                    "the clock leeway of {} seconds is too large; use at most {MAX_LEEWAY_SECS} \
                     (60 is typical)",
                    cfg.leeway_secs
                ),
            });
        }
        let leeway = i64::try_from(cfg.leeway_secs).unwrap_or(i64::MAX);

        let (choice, keys) = match &cfg.keys {
            VerifierKeys::Hs256 { secret } => {
                check_hs256_secret(secret)?;
                (
                    AlgorithmChoice::Hs256,
                    KeyStore::Single(DecodingKey::from_secret(secret)),
                )
            }
            VerifierKeys::External { algorithm, keys } => {
                // Re-checked here: the enum field can hold any jsonwebtoken algorithm.
                let choice = AlgorithmChoice::parse_external(alg_name(*algorithm))?;
                let store = match keys {
                    ExternalKeys::Pem(pem) => KeyStore::Single(decoding_key_from_pem(choice, pem)?),
                    ExternalKeys::Jwks(set) => jwks_store(choice, set)?,
                };
                (choice, store)
            }
        };

        let mut validation = Validation::new(choice.algorithm());
        // Time rules are applied in `check_claims` against the `now` argument.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.validate_aud = true;
        validation.set_audience(&[audience.as_str()]);
        validation.set_issuer(&[issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);

        Ok(TokenVerifier {
            choice,
            keys,
            validation,
            issuer,
            audience,
            leeway,
        })
    }

    /// The pinned algorithm.
    pub fn algorithm(&self) -> AlgorithmChoice {
        self.choice
    }

    /// Verifies `token` at time `now_unix_secs` and returns who it speaks for.
    ///
    /// Pure: depends only on the configuration and the two arguments.
    pub fn verify(&self, token: &str, now_unix_secs: i64) -> Result<Identity, AuthError> {
        self.verify_claims(token, now_unix_secs).map(|v| v.identity)
    }

    /// Like [`TokenVerifier::verify`], also returning the verified claims.
    pub fn verify_claims(
        &self,
        token: &str,
        now_unix_secs: i64,
    ) -> Result<VerifiedToken, AuthError> {
        let header = check_header(token, self.choice)?;
        let key = self.select_key(header.kid.as_deref())?;
        let data = jsonwebtoken::decode::<RawClaims>(token, key, &self.validation)
            .map_err(|e| self.map_jwt_error(e.kind()))?;
        self.check_claims(data.claims, now_unix_secs)
    }

    fn select_key(&self, kid: Option<&str>) -> Result<&DecodingKey, AuthError> {
        let entries = match &self.keys {
            KeyStore::Single(key) => return Ok(key),
            KeyStore::Set(entries) => entries,
        };
        let entry = match kid {
            Some(kid) => entries
                .iter()
                .find(|e| e.kid.as_deref() == Some(kid))
                .ok_or(AuthError::UnknownKey {
                    reason: "no key in the key set has the token's key ID (kid)",
                })?,
            None => match entries.as_slice() {
                [only] => only,
                _ => {
                    return Err(AuthError::UnknownKey {
                        reason: "the token names no key ID (kid) and the key set holds several keys",
                    });
                }
            },
        };
        entry
            .key
            .as_ref()
            .map_err(|reason| AuthError::KeyNotAllowed { reason })
    }

    fn map_jwt_error(&self, kind: &JwtErrorKind) -> AuthError {
        match kind {
            JwtErrorKind::InvalidSignature
            | JwtErrorKind::InvalidEcdsaKey
            | JwtErrorKind::InvalidEddsaKey
            | JwtErrorKind::InvalidRsaKey(_)
            | JwtErrorKind::InvalidKeyFormat => AuthError::InvalidSignature,
            JwtErrorKind::InvalidAlgorithm
            | JwtErrorKind::MissingAlgorithm
            | JwtErrorKind::UnsupportedAlgorithm => AuthError::WrongAlgorithm {
                expected: self.choice.as_str(),
            },
            JwtErrorKind::ExpiredSignature => AuthError::TokenExpired,
            JwtErrorKind::ImmatureSignature => AuthError::TokenNotYetValid,
            JwtErrorKind::InvalidAudience => AuthError::WrongAudience,
            JwtErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            JwtErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim {
                claim: static_claim_name(claim),
            },
            JwtErrorKind::Json(_) => AuthError::MalformedToken {
                reason: "its header or claims are not the expected JSON",
            },
            JwtErrorKind::Base64(_) | JwtErrorKind::Utf8(_) => AuthError::MalformedToken {
                reason: "a part is not valid base64url",
            },
            _ => AuthError::MalformedToken {
                reason: "it could not be decoded",
            },
        }
    }

    fn check_claims(&self, raw: RawClaims, now: i64) -> Result<VerifiedToken, AuthError> {
        fn required<T>(value: Option<T>, claim: &'static str) -> Result<T, AuthError> {
            value.ok_or(AuthError::MissingClaim { claim })
        }
        fn required_str(value: Option<String>, claim: &'static str) -> Result<String, AuthError> {
            required(value.filter(|s| !s.is_empty()), claim)
        }

        let sub = required_str(raw.sub, "sub")?;
        let role = required_str(raw.role, "role")?;
        let iss = required_str(raw.iss, "iss")?;
        let aud = required_str(raw.aud, "aud")?;
        let exp = required(raw.exp, "exp")?;
        let iat = required(raw.iat, "iat")?;
        let jti = required_str(raw.jti, "jti")?;

        if iss != self.issuer {
            return Err(AuthError::WrongIssuer);
        }
        if aud != self.audience {
            return Err(AuthError::WrongAudience);
        }
        // Expired once `now` reaches `exp + leeway` (RFC 7519: valid only *before* exp).
        if now >= exp.saturating_add(self.leeway) {
            return Err(AuthError::TokenExpired);
        }
        let latest_acceptable_start = now.saturating_add(self.leeway);
        if iat > latest_acceptable_start {
            return Err(AuthError::TokenNotYetValid);
        }
        if raw.nbf.is_some_and(|nbf| nbf > latest_acceptable_start) {
            return Err(AuthError::TokenNotYetValid);
        }
        if exp <= iat {
            return Err(AuthError::MalformedToken {
                reason: "it expires before it was issued",
            });
        }

        let user_id = UserId::parse(&sub).map_err(|_| AuthError::InvalidSubject)?;
        let role_value = Role::parse(&role).map_err(|_| AuthError::InvalidRole)?;

        Ok(VerifiedToken {
            identity: Identity {
                user_id,
                role: role_value,
            },
            claims: AccessClaims {
                sub,
                role,
                iss,
                aud,
                exp,
                iat,
                jti,
            },
        })
    }
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = match &self.keys {
            KeyStore::Single(_) => "single key (redacted)".to_owned(),
            KeyStore::Set(entries) => format!(
                "key set: {} keys, {} usable",
                entries.len(),
                entries.iter().filter(|e| e.key.is_ok()).count()
            ),
        };
        f.debug_struct("TokenVerifier")
            .field("algorithm", &self.choice.as_str())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway)
            .field("keys", &keys)
            .finish()
    }
}

/// What the verifier needs from the header.
struct TokenHeader {
    kid: Option<String>,
}

/// Shape and header checks done *before* any key is chosen: three parts, a JSON header whose
/// `alg` equals the pinned algorithm exactly, no `crit`, a non-empty signature.
fn check_header(token: &str, pinned: AlgorithmChoice) -> Result<TokenHeader, AuthError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::MalformedToken {
            reason: "it is too long",
        });
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::MalformedToken {
            reason: "a JWT has three parts separated by dots",
        });
    };
    if header.is_empty() || payload.is_empty() {
        return Err(AuthError::MalformedToken {
            reason: "its header or claims part is empty",
        });
    }
    let header_bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::MalformedToken {
            reason: "its header is not valid base64url",
        })?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header_bytes)
        .map_err(|_| AuthError::MalformedToken {
            reason: "its header is not a JSON object",
        })?;
    let alg = header
        .get("alg")
        .and_then(serde_json::Value::as_str)
        .ok_or(AuthError::MalformedToken {
            reason: "its header names no algorithm",
        })?;
    if alg.trim().eq_ignore_ascii_case("none") {
        return Err(AuthError::UnsignedToken);
    }
    if alg != pinned.as_str() {
        return Err(AuthError::WrongAlgorithm {
            expected: pinned.as_str(),
        });
    }
    if header.contains_key("crit") {
        return Err(AuthError::MalformedToken {
            reason: "critical header extensions (crit) are not supported",
        });
    }
    if signature.is_empty() {
        return Err(AuthError::MalformedToken {
            reason: "its signature is missing",
        });
    }
    let kid = match header.get("kid") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(kid)) => Some(kid.clone()),
        Some(_) => {
            return Err(AuthError::MalformedToken {
                reason: "its key ID (kid) is not a string",
            });
        }
    };
    Ok(TokenHeader { kid })
}

fn static_claim_name(claim: &str) -> &'static str {
    match claim {
        "exp" => "exp",
        "iss" => "iss",
        "aud" => "aud",
        "sub" => "sub",
        "nbf" => "nbf",
        _ => "unknown",
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "an unsupported algorithm",
    }
}

/// A configured name, shortened and stripped of control characters, for messages.
fn printable_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(32).collect()
}

fn check_hs256_secret(secret: &[u8]) -> Result<(), AuthError> {
    if secret.len() < MIN_HS256_SECRET_LEN {
        return Err(AuthError::InvalidConfig {
            reason: format!(
                "the HS256 secret is {} bytes long; it must be at least {MIN_HS256_SECRET_LEN} \
                 random bytes (let the server create its key file, or use `openssl rand -base64 \
                 64`)",
                secret.len()
            ),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// External keys: PEM and JWKS
// ---------------------------------------------------------------------------------------------

/// The label of the first `-----BEGIN <label>-----` line.
fn pem_label(text: &str) -> Option<&str> {
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let rest = text.get(start..)?;
    let end = rest.find("-----")?;
    rest.get(..end)
}

fn decoding_key_from_pem(choice: AlgorithmChoice, pem: &[u8]) -> Result<DecodingKey, AuthError> {
    let invalid = |reason: String| AuthError::InvalidPem { reason };
    let text = std::str::from_utf8(pem).map_err(|_| {
        invalid("the file is not text; expected a PEM block `-----BEGIN PUBLIC KEY-----`".into())
    })?;
    let label = pem_label(text).ok_or_else(|| {
        invalid("no `-----BEGIN PUBLIC KEY-----` line was found; give the provider's public key in PEM form".into())
    })?;
    match label {
        "PUBLIC KEY" => {}
        "RSA PUBLIC KEY" if choice == AlgorithmChoice::Rs256 => {}
        l if l.contains("PRIVATE") => {
            return Err(invalid(
                "this is a private key; give the server only the public key (e.g. `openssl pkey \
                 -in private.pem -pubout`) and keep the private key with the identity provider"
                    .into(),
            ));
        }
        "CERTIFICATE" => {
            return Err(invalid(
                "this is a certificate; extract its public key with `openssl x509 -in cert.pem \
                 -pubkey -noout`"
                    .into(),
            ));
        }
        _ => {
            return Err(invalid(
                "expected a `-----BEGIN PUBLIC KEY-----` block (SubjectPublicKeyInfo)".into(),
            ));
        }
    }
    let key = match choice {
        AlgorithmChoice::Rs256 => DecodingKey::from_rsa_pem(pem),
        AlgorithmChoice::Es256 => DecodingKey::from_ec_pem(pem),
        AlgorithmChoice::EdDsa => DecodingKey::from_ed_pem(pem),
        AlgorithmChoice::Hs256 => {
            return Err(AuthError::SymmetricExternal {
                name: choice.as_str().to_owned(),
            });
        }
    }
    .map_err(|_| {
        invalid(format!(
            "it is not a {} public key ({}) or it is damaged",
            choice.as_str(),
            key_kind_name(choice)
        ))
    })?;
    check_public_key(&key, choice).map_err(|reason| invalid(reason.to_owned()))?;
    Ok(key)
}

fn key_kind_name(choice: AlgorithmChoice) -> &'static str {
    match choice {
        AlgorithmChoice::Hs256 => "shared secret",
        AlgorithmChoice::Rs256 => "RSA, at least 2048 bits",
        AlgorithmChoice::Es256 => "EC on curve P-256",
        AlgorithmChoice::EdDsa => "Ed25519",
    }
}

/// Checks that a decoding key is a well-formed public key fit for `choice`.
fn check_public_key(key: &DecodingKey, choice: AlgorithmChoice) -> Result<(), &'static str> {
    let alg = choice.algorithm();
    let jwk = Jwk::from_decoding_key(key, Some(alg)).map_err(|_| "the key is damaged")?;
    match (choice, &jwk.algorithm) {
        (AlgorithmChoice::Rs256, AlgorithmParameters::RSA(params)) => {
            let n = base64_url_any(&params.n).ok_or("the RSA modulus is damaged")?;
            if rsa_modulus_bits(&n) < MIN_RSA_BITS {
                return Err("RSA keys shorter than 2048 bits are not accepted");
            }
        }
        (AlgorithmChoice::Es256, AlgorithmParameters::EllipticCurve(params)) => {
            if params.curve != EllipticCurve::P256 {
                return Err("ES256 needs a key on curve P-256");
            }
        }
        (AlgorithmChoice::EdDsa, AlgorithmParameters::OctetKeyPair(params)) => {
            if params.curve != EllipticCurve::Ed25519 {
                return Err("EdDSA needs an Ed25519 key");
            }
        }
        _ => return Err("the key type does not fit the algorithm"),
    }
    if matches!(choice, AlgorithmChoice::Es256 | AlgorithmChoice::EdDsa) {
        // Builds the verifier, which parses the curve point; a bad point is an error here,
        // a wrong signature only `Ok(false)`.
        jsonwebtoken::crypto::verify("AAAA", b"key check", key, alg)
            .map_err(|_| "the public key is not a valid point on its curve")?;
    }
    Ok(())
}

fn base64_url_any(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_PAD_INDIFFERENT.decode(s).ok()
}

fn rsa_modulus_bits(n: &[u8]) -> usize {
    let mut bytes = n.iter().skip_while(|b| **b == 0);
    match bytes.next() {
        None => 0,
        Some(first) => {
            let rest = bytes.count();
            rest * 8 + (8 - first.leading_zeros() as usize)
        }
    }
}

/// Prepares a JWKS for `choice`: each JWK is either usable or refused with a reason.
fn jwks_store(choice: AlgorithmChoice, set: &JwkSet) -> Result<KeyStore, AuthError> {
    if set.keys.is_empty() {
        return Err(AuthError::InvalidJwks {
            reason: "it holds no keys".into(),
        });
    }
    let mut entries: Vec<JwksEntry> = Vec::with_capacity(set.keys.len());
    for jwk in &set.keys {
        let kid = jwk.common.key_id.clone();
        if let Some(kid) = &kid
            && entries.iter().any(|e| e.kid.as_ref() == Some(kid))
        {
            return Err(AuthError::InvalidJwks {
                reason: format!(
                    "two keys share the key ID `{}`; key IDs must be unique",
                    printable_name(kid)
                ),
            });
        }
        entries.push(JwksEntry {
            kid,
            key: jwk_decoding_key(choice, jwk),
        });
    }
    if !entries.iter().any(|e| e.key.is_ok()) {
        return Err(AuthError::InvalidJwks {
            reason: format!(
                "none of its {} keys can verify {} tokens (check each key's `kty`, `crv`, `alg` \
                 and `use`)",
                entries.len(),
                choice.as_str()
            ),
        });
    }
    Ok(KeyStore::Set(entries))
}

fn jwk_decoding_key(choice: AlgorithmChoice, jwk: &Jwk) -> Result<DecodingKey, &'static str> {
    if let Some(key_alg) = jwk.common.key_algorithm
        && key_alg != KeyAlgorithm::from(choice.algorithm())
    {
        return Err("the key's own `alg` is not the algorithm this server accepts");
    }
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(_) => return Err("the key is not meant for signatures (`use`)"),
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return Err("the key is not meant for verifying signatures (`key_ops`)");
    }
    let type_fits = match (&jwk.algorithm, choice) {
        (AlgorithmParameters::RSA(_), AlgorithmChoice::Rs256) => true,
        (AlgorithmParameters::EllipticCurve(p), AlgorithmChoice::Es256) => {
            p.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::OctetKeyPair(p), AlgorithmChoice::EdDsa) => {
            p.curve == EllipticCurve::Ed25519
        }
        _ => false,
    };
    if !type_fits {
        return Err("the key's type or curve does not fit the algorithm this server accepts");
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| "the key is damaged")?;
    check_public_key(&key, choice)?;
    Ok(key)
}

// ---------------------------------------------------------------------------------------------
// Issuer (internal HS256 mode)
// ---------------------------------------------------------------------------------------------

/// Issues this server's own HS256 access tokens.
pub struct TokenIssuer {
    secret: Vec<u8>,
    key: EncodingKey,
    issuer: String,
    audience: String,
    access_ttl_secs: i64,
}

impl TokenIssuer {
    /// `secret` must be at least 32 bytes (see [`load_or_create_hs256_secret`]);
    /// `access_ttl_secs` between 1 second and 7 days.
    pub fn new(
        secret: Vec<u8>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        access_ttl_secs: i64,
    ) -> Result<Self, AuthError> {
        check_hs256_secret(&secret)?;
        let issuer = issuer.into().trim().to_owned();
        let audience = audience.into().trim().to_owned();
        if issuer.is_empty() || audience.is_empty() {
            return Err(AuthError::InvalidConfig {
                reason: "the token issuer and audience must not be empty".into(),
            });
        }
        if !(1..=MAX_ACCESS_TTL_SECS).contains(&access_ttl_secs) {
            return Err(AuthError::InvalidConfig {
                reason: format!(
                    "the access-token lifetime must be between 1 and {MAX_ACCESS_TTL_SECS} \
                     seconds (15 minutes, 900, is typical); it is {access_ttl_secs}"
                ),
            });
        }
        let key = EncodingKey::from_secret(&secret);
        Ok(TokenIssuer {
            secret,
            key,
            issuer,
            audience,
            access_ttl_secs,
        })
    }

    /// Issues an access token for `user` valid from `now` for the configured lifetime.
    /// Returns the token and its expiry (Unix seconds).
    pub fn issue_access(
        &self,
        user: UserId,
        role: Role,
        now: i64,
    ) -> Result<(String, i64), AuthError> {
        let exp = now
            .checked_add(self.access_ttl_secs)
            .ok_or(AuthError::TokenSigning)?;
        let claims = AccessClaims {
            sub: user.to_string(),
            role: role.as_str().to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .map_err(|_| AuthError::TokenSigning)?;
        Ok((token, exp))
    }

    /// The configured access-token lifetime in seconds.
    pub fn access_ttl_secs(&self) -> i64 {
        self.access_ttl_secs
    }

    /// A verifier configuration that accepts exactly the tokens this issuer creates.
    pub fn verifier_config(&self, leeway_secs: u64) -> VerifierConfig {
        VerifierConfig {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway_secs,
            keys: VerifierKeys::Hs256 {
                secret: self.secret.clone(),
            },
        }
    }
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("secret", &Redacted(self.secret.len()))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl_secs", &self.access_ttl_secs)
            .finish()
    }
}

/// Extracts the token from an `Authorization` header value `Bearer <token>` (scheme
/// case-insensitive, surrounding whitespace ignored). `None` for other schemes, an empty token
/// or a token containing whitespace.
pub fn bearer_token(header_value: &str) -> Option<&str> {
    let value = header_value.trim();
    let (scheme, rest) = value.split_once(|c: char| c.is_ascii_whitespace())?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    if token.is_empty() || token.contains(|c: char| c.is_whitespace()) {
        return None;
    }
    Some(token)
}

// ---------------------------------------------------------------------------------------------
// Refresh tokens and randomness
// ---------------------------------------------------------------------------------------------

/// Fills `N` bytes from the operating system's generator (getrandom, through the
/// `password-hash` crate that argon2 already depends on).
fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(16) {
        let block =
            argon2::password_hash::try_generate_salt().map_err(|_| AuthError::Randomness)?;
        let n = chunk.len();
        chunk.copy_from_slice(block.get(..n).ok_or(AuthError::Randomness)?);
    }
    Ok(out)
}

/// A new refresh token: `(token for the client, SHA-256 hex to store)`. The token is 32 random
/// bytes, base64url without padding (43 characters).
pub fn new_refresh_token() -> (String, String) {
    let bytes = random_bytes::<32>().unwrap_or_else(|_| {
        // The OS generator failed once; uuid draws from the same generator (and panics if it
        // is really gone, as every other random ID in the server would). 244 random bits.
        let mut b = [0u8; 32];
        b[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        b[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        b
    });
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = refresh_token_hash(&token);
    (token, hash)
}

/// The stored form of a refresh token: lowercase hex SHA-256 of the token string.
pub fn refresh_token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

// ---------------------------------------------------------------------------------------------
// Passwords
// ---------------------------------------------------------------------------------------------

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl PasswordParams {
    /// The parameters used by [`hash_password`]: m = 19 MiB (19 456 KiB), t = 2, p = 1.
    ///
    /// This is OWASP's recommended Argon2id baseline (and argon2's default). Measured on this
    /// project's 2-core VM (AMD EPYC; the dev profile builds dependencies at opt-level 2, so a
    /// debug test build runs argon2 optimised): 23–25 ms per hash, within the 20–60 ms target
    /// for a small server, and 19 MiB of memory per concurrent login.
    /// Raise `memory_kib` first if servers get faster; hashes keep their own parameters, so old
    /// ones still verify.
    pub const RECOMMENDED: PasswordParams = PasswordParams {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    /// Deliberately weak parameters to keep tests fast. Never use them for real passwords.
    pub const INSECURE_FAST_FOR_TESTS: PasswordParams = PasswordParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
}

/// Hashes a password with Argon2id and [`PasswordParams::RECOMMENDED`] into a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`), with a random 16-byte salt.
///
/// CPU- and memory-bound (~25 ms, 19 MiB): call it from `tokio::task::spawn_blocking`, not
/// directly on an async worker. The same holds for [`verify_password`].
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    hash_password_with_params(password, PasswordParams::RECOMMENDED)
}

/// Like [`hash_password`] with explicit cost parameters.
pub fn hash_password_with_params(
    password: &str,
    params: PasswordParams,
) -> Result<String, AuthError> {
    let argon_params = argon2::Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        None,
    )
    .map_err(|_| AuthError::PasswordHashing)?;
    let hasher = Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon_params,
    );
    let hash = hasher
        .hash_password(password.as_bytes())
        .map_err(|_| AuthError::PasswordHashing)?;
    Ok(hash.to_string())
}

/// Checks a password against a stored PHC string. Uses argon2's own verification (constant-
/// time comparison of the output) with the parameters stored in the hash. A malformed hash, an
/// unknown algorithm or absurd stored parameters give `false`; never panics.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let Ok(params) = argon2::Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > MAX_VERIFY_MEMORY_KIB
        || params.t_cost() > MAX_VERIFY_ITERATIONS
        || params.p_cost() > MAX_VERIFY_PARALLELISM
    {
        return false;
    }
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

/// The password policy: at least 8 characters, at most 1024, not only whitespace.
pub fn check_password_policy(pw: &str) -> Result<(), AuthError> {
    let chars = pw.chars().count();
    if chars < PASSWORD_MIN_CHARS {
        return Err(AuthError::WeakPassword {
            reason: "the password is too short: use at least 8 characters (a few words make a \
                     password that is long and easy to remember)",
        });
    }
    if pw.chars().all(char::is_whitespace) {
        return Err(AuthError::WeakPassword {
            reason: "the password cannot consist only of spaces: use at least 8 characters \
                     including letters, digits or symbols",
        });
    }
    if chars > PASSWORD_MAX_CHARS {
        return Err(AuthError::WeakPassword {
            reason: "the password is too long: use at most 1024 characters",
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// HS256 key file
// ---------------------------------------------------------------------------------------------

/// Loads this server's HS256 secret from `path`, creating it on first start.
///
/// The file holds the 64-byte secret, base64-encoded. A file that decodes to fewer than 32
/// bytes is refused. A new file is written to a temporary file in the same directory (mode
/// 0600 on unix), synced, then published under `path` without replacing a file another
/// process may have created meanwhile (hard link; rename where links are unsupported). The
/// secret is never logged.
pub fn load_or_create_hs256_secret(path: &Path) -> Result<Vec<u8>, AuthError> {
    match fs::read(path) {
        Ok(bytes) => return decode_secret_file(path, &bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(key_file_error(
                path,
                format!("cannot be read ({e}); check that the server's user may read it"),
            ));
        }
    }
    create_secret_file(path)
}

fn key_file_error(path: &Path, problem: String) -> AuthError {
    AuthError::KeyFile {
        path: path.to_path_buf(),
        problem,
    }
}

fn decode_secret_file(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, AuthError> {
    const HOW_TO_FIX: &str = "replace its contents with `openssl rand -base64 64`, or delete it \
                              to let the server create a new one (this signs every user out)";
    let text = std::str::from_utf8(bytes)
        .map_err(|_| key_file_error(path, format!("is not base64 text; {HOW_TO_FIX}")))?;
    let text = text.trim();
    let secret = STANDARD_PAD_INDIFFERENT
        .decode(text)
        .or_else(|_| URL_SAFE_PAD_INDIFFERENT.decode(text))
        .map_err(|_| key_file_error(path, format!("does not hold base64 text; {HOW_TO_FIX}")))?;
    if secret.len() < MIN_HS256_SECRET_LEN {
        return Err(key_file_error(
            path,
            format!(
                "holds only {} bytes of key material, at least {MIN_HS256_SECRET_LEN} are \
                 needed; {HOW_TO_FIX}",
                secret.len()
            ),
        ));
    }
    Ok(secret)
}

fn create_secret_file(path: &Path) -> Result<Vec<u8>, AuthError> {
    let file_name = path
        .file_name()
        .ok_or_else(|| key_file_error(path, "is not a file path; name a file".into()))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(|e| {
        key_file_error(
            path,
            format!("cannot be created: its directory cannot be created ({e})"),
        )
    })?;

    let secret = random_bytes::<HS256_SECRET_FILE_LEN>()?;
    let mut encoded = STANDARD.encode(secret);
    encoded.push('\n');

    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    ));
    if let Err(e) = write_private_file(&tmp, encoded.as_bytes()) {
        let _ = fs::remove_file(&tmp);
        return Err(key_file_error(
            path,
            format!("cannot be created ({e}); check that the server may write to its directory"),
        ));
    }

    match fs::hard_link(&tmp, path) {
        Ok(()) => {
            let _ = fs::remove_file(&tmp);
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Another process created it first: use theirs.
            let _ = fs::remove_file(&tmp);
            let bytes = fs::read(path)
                .map_err(|e| key_file_error(path, format!("cannot be read ({e})")))?;
            return decode_secret_file(path, &bytes);
        }
        Err(_) => {
            if let Err(e) = fs::rename(&tmp, path) {
                let _ = fs::remove_file(&tmp);
                return Err(key_file_error(
                    path,
                    format!(
                        "cannot be created ({e}); check that the server may write to its directory"
                    ),
                ));
            }
        }
    }
    sync_dir(dir);
    Ok(secret.to_vec())
}

/// Creates `path` (which must not exist) readable only by the owner, writes and syncs it.
fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents)?;
    file.sync_all()
}

/// Best effort: makes the new directory entry durable.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const RSA_PRIVATE: &[u8] =
        include_bytes!("../tests/fixtures/auth/test_only_rsa2048_private_pkcs8.pem");
    const RSA_PUBLIC: &[u8] =
        include_bytes!("../tests/fixtures/auth/test_only_rsa2048_public_spki.pem");
    const RSA2_PRIVATE: &[u8] =
        include_bytes!("../tests/fixtures/auth/test_only_rsa2048_second_private_pkcs8.pem");
    const RSA2_PUBLIC: &[u8] =
        include_bytes!("../tests/fixtures/auth/test_only_rsa2048_second_public_spki.pem");
    const EC_PRIVATE: &[u8] =
        include_bytes!("../tests/fixtures/auth/test_only_ec_p256_private_pkcs8.pem");
    const EC_PUBLIC: &[u8] =
        include_bytes!("../tests/fixtures/auth/test_only_ec_p256_public_spki.pem");
    const ED_PRIVATE: &[u8] =
        include_bytes!("../tests/fixtures/auth/test_only_ed25519_private_pkcs8.pem");
    const ED_PUBLIC: &[u8] =
        include_bytes!("../tests/fixtures/auth/test_only_ed25519_public_spki.pem");

    const NOW: i64 = 1_800_000_000;
    const LEEWAY: u64 = 30;
    const ISS: &str = "https://fieldline.test";
    const AUD: &str = "fieldline-sync";
    const USER: &str = "0191d8f4-7b7a-7c3e-9a51-2f7c1d3e4b5a";
    const SECRET: &[u8] = b"test-only-hs256-secret-SUPERSECRETVALUE-0123456789abcdef";

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn claims() -> Value {
        json!({
            "sub": USER, "role": "manager", "iss": ISS, "aud": AUD,
            "exp": NOW + 600, "iat": NOW - 100, "jti": "8f6c2a9e-1111-4c2b-9d1e-000000000001",
        })
    }

    fn with(mut c: Value, key: &str, value: Value) -> Value {
        c[key] = value;
        c
    }

    fn without(mut c: Value, key: &str) -> Value {
        c.as_object_mut().unwrap().remove(key);
        c
    }

    fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn sign_hs(claims: &Value) -> String {
        sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(SECRET),
            None,
            claims,
        )
    }

    fn config(keys: VerifierKeys) -> VerifierConfig {
        VerifierConfig {
            issuer: ISS.into(),
            audience: AUD.into(),
            leeway_secs: LEEWAY,
            keys,
        }
    }

    fn hs_verifier() -> TokenVerifier {
        TokenVerifier::new(config(VerifierKeys::Hs256 {
            secret: SECRET.to_vec(),
        }))
        .unwrap()
    }

    fn pem_verifier(alg: &str, pem: &[u8]) -> TokenVerifier {
        TokenVerifier::new(config(VerifierKeys::external_from_pem(alg, pem).unwrap())).unwrap()
    }

    fn rsa_key() -> EncodingKey {
        EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap()
    }

    fn code<T: fmt::Debug>(r: Result<T, AuthError>) -> &'static str {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.code(),
        }
    }

    fn expected_identity() -> Identity {
        Identity {
            user_id: UserId::parse(USER).unwrap(),
            role: Role::Manager,
        }
    }

    // --- HS256 round trip and issuer ---

    #[test]
    fn issued_hs256_token_round_trips_to_identity() {
        let issuer = TokenIssuer::new(SECRET.to_vec(), ISS, AUD, 900).unwrap();
        let user = UserId::parse(USER).unwrap();
        let (token, exp) = issuer.issue_access(user, Role::Rep, NOW).unwrap();
        assert_eq!(exp, NOW + 900);
        let verifier = TokenVerifier::new(issuer.verifier_config(LEEWAY)).unwrap();
        let verified = verifier.verify_claims(&token, NOW + 1).unwrap();
        assert_eq!(
            verified.identity,
            Identity {
                user_id: user,
                role: Role::Rep
            }
        );
        assert_eq!(verified.claims.iat, NOW);
        assert_eq!(verified.claims.exp, NOW + 900);
        assert!(uuid::Uuid::parse_str(&verified.claims.jti).is_ok());
        // Each token gets its own jti.
        let (token2, _) = issuer.issue_access(user, Role::Rep, NOW).unwrap();
        let jti2 = verifier.verify_claims(&token2, NOW).unwrap().claims.jti;
        assert_ne!(verified.claims.jti, jti2);
        // And it stops working after expiry (plus leeway).
        assert_eq!(
            code(verifier.verify(&token, NOW + 900 + LEEWAY as i64)),
            "token_expired"
        );
    }

    #[test]
    fn hand_signed_hs256_token_verifies() {
        let token = sign_hs(&claims());
        assert_eq!(
            hs_verifier().verify(&token, NOW).unwrap(),
            expected_identity()
        );
    }

    #[test]
    fn issuer_refuses_bad_settings() {
        assert_eq!(
            code(TokenIssuer::new(b"short".to_vec(), ISS, AUD, 900)),
            "auth_config"
        );
        assert_eq!(
            code(TokenIssuer::new(SECRET.to_vec(), ISS, AUD, 0)),
            "auth_config"
        );
        assert_eq!(
            code(TokenIssuer::new(SECRET.to_vec(), "", AUD, 900)),
            "auth_config"
        );
    }

    // --- Algorithm pinning ---

    #[test]
    fn alg_none_is_rejected() {
        let payload = b64(claims().to_string().as_bytes());
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"None","typ":"JWT"}"#,
            r#"{"alg":"NONE"}"#,
        ] {
            let token = format!("{}.{}.", b64(header.as_bytes()), payload);
            let err = hs_verifier().verify(&token, NOW).unwrap_err();
            assert!(matches!(err, AuthError::UnsignedToken), "{err:?}");
            assert_eq!(err.code(), "wrong_algorithm");
            // Same against an external verifier.
            let err = pem_verifier("RS256", RSA_PUBLIC)
                .verify(&token, NOW)
                .unwrap_err();
            assert!(matches!(err, AuthError::UnsignedToken), "{err:?}");
        }
    }

    #[test]
    fn hs256_token_signed_with_the_rsa_public_key_is_rejected() {
        let verifier = pem_verifier("RS256", RSA_PUBLIC);
        // Classic confusion: HMAC with the public key PEM bytes as the secret.
        let forged = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(RSA_PUBLIC),
            None,
            &claims(),
        );
        let err = verifier.verify(&forged, NOW).unwrap_err();
        assert!(
            matches!(err, AuthError::WrongAlgorithm { expected: "RS256" }),
            "{err:?}"
        );
        // Same HMAC signature under a header that claims RS256: the signature check fails.
        let header = b64(br#"{"alg":"RS256","typ":"JWT"}"#);
        let payload = b64(claims().to_string().as_bytes());
        let message = format!("{header}.{payload}");
        let mac = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(RSA_PUBLIC),
            Algorithm::HS256,
        )
        .unwrap();
        let forged = format!("{message}.{mac}");
        assert_eq!(code(verifier.verify(&forged, NOW)), "invalid_signature");
        // The genuine RS256 token still works.
        let genuine = sign(Algorithm::RS256, &rsa_key(), None, &claims());
        assert_eq!(verifier.verify(&genuine, NOW).unwrap(), expected_identity());
    }

    #[test]
    fn rs256_token_against_hs256_verifier_is_rejected() {
        let token = sign(Algorithm::RS256, &rsa_key(), None, &claims());
        let err = hs_verifier().verify(&token, NOW).unwrap_err();
        assert!(
            matches!(err, AuthError::WrongAlgorithm { expected: "HS256" }),
            "{err:?}"
        );
    }

    #[test]
    fn other_hmac_algorithm_with_the_right_secret_is_rejected() {
        let token = sign(
            Algorithm::HS512,
            &EncodingKey::from_secret(SECRET),
            None,
            &claims(),
        );
        assert_eq!(code(hs_verifier().verify(&token, NOW)), "wrong_algorithm");
    }

    #[test]
    fn crit_header_is_rejected() {
        let header = b64(br#"{"alg":"HS256","crit":["exp"],"exp":1}"#);
        let payload = b64(claims().to_string().as_bytes());
        let message = format!("{header}.{payload}");
        let mac = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(SECRET),
            Algorithm::HS256,
        )
        .unwrap();
        let err = hs_verifier()
            .verify(&format!("{message}.{mac}"), NOW)
            .unwrap_err();
        assert!(matches!(err, AuthError::MalformedToken { .. }), "{err:?}");
    }

    #[test]
    fn garbage_tokens_are_malformed() {
        let v = hs_verifier();
        for token in ["", "abc", "a.b", "a.b.c.d", "!!!.e30.sig", "e30.e30.sig"] {
            assert_eq!(code(v.verify(token, NOW)), "invalid_token", "{token}");
        }
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(code(v.verify(&huge, NOW)), "invalid_token");
    }

    // --- Time ---

    #[test]
    fn expiry_is_checked_against_now_with_leeway() {
        let v = hs_verifier();
        let leeway = LEEWAY as i64;
        let expired = sign_hs(&with(claims(), "exp", json!(NOW - leeway - 1)));
        assert_eq!(code(v.verify(&expired, NOW)), "token_expired");
        let at_edge = sign_hs(&with(claims(), "exp", json!(NOW - leeway)));
        assert_eq!(code(v.verify(&at_edge, NOW)), "token_expired");
        let within = sign_hs(&with(claims(), "exp", json!(NOW - leeway + 1)));
        assert_eq!(v.verify(&within, NOW).unwrap(), expected_identity());
        // `now` really is the argument: the same token is fine earlier.
        assert!(v.verify(&expired, NOW - 100).is_ok());
    }

    #[test]
    fn zero_leeway_means_invalid_from_exp_on() {
        let v = TokenVerifier::new(VerifierConfig {
            leeway_secs: 0,
            ..config(VerifierKeys::Hs256 {
                secret: SECRET.to_vec(),
            })
        })
        .unwrap();
        let token = sign_hs(&with(claims(), "exp", json!(NOW)));
        assert_eq!(code(v.verify(&token, NOW)), "token_expired");
        assert!(v.verify(&token, NOW - 1).is_ok());
    }

    #[test]
    fn issued_in_the_future_is_rejected() {
        let v = hs_verifier();
        let leeway = LEEWAY as i64;
        let future = sign_hs(&with(claims(), "iat", json!(NOW + leeway + 1)));
        assert_eq!(code(v.verify(&future, NOW)), "token_not_yet_valid");
        let skewed = sign_hs(&with(claims(), "iat", json!(NOW + leeway)));
        assert!(v.verify(&skewed, NOW).is_ok());
        let nbf = sign_hs(&with(claims(), "nbf", json!(NOW + leeway + 1)));
        assert_eq!(code(v.verify(&nbf, NOW)), "token_not_yet_valid");
    }

    // --- Audience, issuer, claims ---

    #[test]
    fn wrong_audience_is_rejected() {
        let v = hs_verifier();
        let t = sign_hs(&with(claims(), "aud", json!("another-service")));
        assert_eq!(code(v.verify(&t, NOW)), "wrong_audience");
        let t = sign_hs(&with(claims(), "aud", json!("fieldline-sync-evil")));
        assert_eq!(code(v.verify(&t, NOW)), "wrong_audience");
        // Exact match only: a list containing ours is not accepted.
        let t = sign_hs(&with(claims(), "aud", json!([AUD, "other"])));
        assert!(v.verify(&t, NOW).is_err());
    }

    #[test]
    fn wrong_issuer_is_rejected() {
        let t = sign_hs(&with(claims(), "iss", json!("https://evil.test")));
        assert_eq!(code(hs_verifier().verify(&t, NOW)), "wrong_issuer");
        let t = sign_hs(&with(claims(), "iss", json!("https://fieldline.test/")));
        assert_eq!(code(hs_verifier().verify(&t, NOW)), "wrong_issuer");
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let token = sign_hs(&claims());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let elevated = with(claims(), "role", json!("admin"));
        parts[1] = b64(elevated.to_string().as_bytes());
        let tampered = parts.join(".");
        assert_eq!(
            code(hs_verifier().verify(&tampered, NOW)),
            "invalid_signature"
        );
    }

    #[test]
    fn token_signed_with_another_secret_is_rejected() {
        let token = sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(b"another-test-secret-of-sufficient-length-xyz"),
            None,
            &claims(),
        );
        assert_eq!(code(hs_verifier().verify(&token, NOW)), "invalid_signature");
    }

    #[test]
    fn bad_subject_or_role_is_rejected() {
        let v = hs_verifier();
        let t = sign_hs(&with(claims(), "sub", json!("alice@example.com")));
        assert_eq!(code(v.verify(&t, NOW)), "invalid_subject");
        let t = sign_hs(&with(claims(), "role", json!("superuser")));
        assert_eq!(code(v.verify(&t, NOW)), "invalid_role");
        let t = sign_hs(&with(claims(), "role", json!("Admin")));
        assert_eq!(code(v.verify(&t, NOW)), "invalid_role");
    }

    #[test]
    fn missing_claims_are_rejected() {
        let v = hs_verifier();
        for claim in ["sub", "role", "iss", "aud", "exp", "iat", "jti"] {
            let t = sign_hs(&without(claims(), claim));
            let err = v.verify(&t, NOW).unwrap_err();
            assert_eq!(err.code(), "missing_claim", "{claim}: {err:?}");
        }
        let t = sign_hs(&with(claims(), "jti", json!("")));
        assert_eq!(code(v.verify(&t, NOW)), "missing_claim");
        let t = sign_hs(&with(claims(), "exp", json!("tomorrow")));
        assert_eq!(code(v.verify(&t, NOW)), "invalid_token");
    }

    #[test]
    fn error_messages_do_not_echo_token_contents() {
        let v = hs_verifier();
        let marker = "ATTACKER-CONTROLLED-MARKER";
        for c in [
            with(claims(), "sub", json!(marker)),
            with(claims(), "role", json!(marker)),
            with(claims(), "aud", json!(marker)),
            with(claims(), "iss", json!(marker)),
        ] {
            let err = v.verify(&sign_hs(&c), NOW).unwrap_err();
            assert!(!err.to_string().contains(marker), "{err}");
            assert!(!format!("{err:?}").contains(marker), "{err:?}");
        }
        let header = b64(format!(r#"{{"alg":"{marker}"}}"#).as_bytes());
        let err = v
            .verify(&format!("{header}.{}.sig", b64(b"{}")), NOW)
            .unwrap_err();
        assert!(!err.to_string().contains(marker));
    }

    // --- External keys ---

    #[test]
    fn external_rs256_es256_eddsa_from_pem() {
        let cases: [(&str, Algorithm, EncodingKey, &[u8]); 3] = [
            ("RS256", Algorithm::RS256, rsa_key(), RSA_PUBLIC),
            (
                "ES256",
                Algorithm::ES256,
                EncodingKey::from_ec_pem(EC_PRIVATE).unwrap(),
                EC_PUBLIC,
            ),
            (
                "eddsa",
                Algorithm::EdDSA,
                EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
                ED_PUBLIC,
            ),
        ];
        for (name, alg, key, public) in cases {
            let v = pem_verifier(name, public);
            let token = sign(alg, &key, Some("ignored-kid"), &claims());
            assert_eq!(
                v.verify(&token, NOW).unwrap(),
                expected_identity(),
                "{name}"
            );
            // Tampering breaks it.
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            parts[1] = b64(with(claims(), "role", json!("admin"))
                .to_string()
                .as_bytes());
            assert_eq!(
                code(v.verify(&parts.join("."), NOW)),
                "invalid_signature",
                "{name}"
            );
        }
        // A token from a different RSA key fails.
        let other = sign(
            Algorithm::RS256,
            &EncodingKey::from_rsa_pem(RSA2_PRIVATE).unwrap(),
            None,
            &claims(),
        );
        assert_eq!(
            code(pem_verifier("RS256", RSA_PUBLIC).verify(&other, NOW)),
            "invalid_signature"
        );
    }

    #[test]
    fn external_key_constructors_give_clear_errors() {
        let err = VerifierKeys::external_from_pem("PS256", RSA_PUBLIC).unwrap_err();
        assert!(matches!(err, AuthError::UnknownAlgorithm { .. }), "{err:?}");
        let err = VerifierKeys::external_from_pem("none", RSA_PUBLIC).unwrap_err();
        assert!(matches!(err, AuthError::UnknownAlgorithm { .. }), "{err:?}");
        for hs in ["HS256", "hs256", "HS512"] {
            let err = VerifierKeys::external_from_pem(hs, RSA_PUBLIC).unwrap_err();
            assert!(
                matches!(err, AuthError::SymmetricExternal { .. }),
                "{err:?}"
            );
            let err = VerifierKeys::external_from_jwks(hs, br#"{"keys":[]}"#).unwrap_err();
            assert!(
                matches!(err, AuthError::SymmetricExternal { .. }),
                "{err:?}"
            );
        }
        let err = VerifierKeys::external_from_pem("RS256", b"not a pem").unwrap_err();
        assert!(matches!(err, AuthError::InvalidPem { .. }), "{err:?}");
        let err = VerifierKeys::external_from_pem("RS256", RSA_PRIVATE).unwrap_err();
        assert!(err.to_string().contains("private key"), "{err}");
        assert!(!err.to_string().contains("MII"), "{err}");
        let err = VerifierKeys::external_from_pem("RS256", EC_PUBLIC).unwrap_err();
        assert!(matches!(err, AuthError::InvalidPem { .. }), "{err:?}");
        let err = VerifierKeys::external_from_pem("ES256", ED_PUBLIC).unwrap_err();
        assert!(matches!(err, AuthError::InvalidPem { .. }), "{err:?}");
        let err = VerifierKeys::external_from_jwks("RS256", b"{not json").unwrap_err();
        assert!(matches!(err, AuthError::InvalidJwks { .. }), "{err:?}");
        let err = VerifierKeys::external_from_jwks("RS256", br#"{"keys":[]}"#).unwrap_err();
        assert!(matches!(err, AuthError::InvalidJwks { .. }), "{err:?}");
        assert_eq!(err.code(), "auth_config");
        // A hand-built External config with HS256 is refused too.
        let err = TokenVerifier::new(config(VerifierKeys::External {
            algorithm: Algorithm::HS256,
            keys: ExternalKeys::Pem(RSA_PUBLIC.to_vec()),
        }))
        .unwrap_err();
        assert!(
            matches!(err, AuthError::SymmetricExternal { .. }),
            "{err:?}"
        );
        let err = TokenVerifier::new(config(VerifierKeys::External {
            algorithm: Algorithm::PS256,
            keys: ExternalKeys::Pem(RSA_PUBLIC.to_vec()),
        }))
        .unwrap_err();
        assert!(matches!(err, AuthError::UnknownAlgorithm { .. }), "{err:?}");
    }

    #[test]
    fn verifier_config_is_checked() {
        let short = TokenVerifier::new(config(VerifierKeys::Hs256 {
            secret: b"too-short".to_vec(),
        }));
        assert_eq!(code(short), "auth_config");
        let mut c = config(VerifierKeys::Hs256 {
            secret: SECRET.to_vec(),
        });
        c.audience = "  ".into();
        assert_eq!(code(TokenVerifier::new(c.clone())), "auth_config");
        c.audience = AUD.into();
        c.leeway_secs = 100_000;
        assert_eq!(code(TokenVerifier::new(c)), "auth_config");
    }

    fn jwk(alg: Algorithm, public_pem: &[u8], kid: &str) -> Jwk {
        let key = match alg {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(public_pem),
            Algorithm::ES256 => DecodingKey::from_ec_pem(public_pem),
            _ => DecodingKey::from_ed_pem(public_pem),
        }
        .unwrap();
        let mut jwk = Jwk::from_decoding_key(&key, Some(alg)).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        jwk
    }

    fn jwks_verifier(alg: &str, keys: Vec<Jwk>) -> Result<TokenVerifier, AuthError> {
        let json = serde_json::to_vec(&JwkSet { keys }).unwrap();
        TokenVerifier::new(config(VerifierKeys::external_from_jwks(alg, &json)?))
    }

    #[test]
    fn jwks_selects_the_key_by_kid() {
        let v = jwks_verifier(
            "RS256",
            vec![
                jwk(Algorithm::RS256, RSA_PUBLIC, "rsa-1"),
                jwk(Algorithm::RS256, RSA2_PUBLIC, "rsa-2"),
            ],
        )
        .unwrap();
        let key2 = EncodingKey::from_rsa_pem(RSA2_PRIVATE).unwrap();
        let t1 = sign(Algorithm::RS256, &rsa_key(), Some("rsa-1"), &claims());
        let t2 = sign(Algorithm::RS256, &key2, Some("rsa-2"), &claims());
        assert_eq!(v.verify(&t1, NOW).unwrap(), expected_identity());
        assert_eq!(v.verify(&t2, NOW).unwrap(), expected_identity());
        // The kid decides: key 2's signature under kid rsa-1 fails.
        let wrong = sign(Algorithm::RS256, &key2, Some("rsa-1"), &claims());
        assert_eq!(code(v.verify(&wrong, NOW)), "invalid_signature");
        // Unknown kid, and no kid with several keys.
        let unknown = sign(Algorithm::RS256, &rsa_key(), Some("rsa-3"), &claims());
        assert_eq!(code(v.verify(&unknown, NOW)), "unknown_key");
        let no_kid = sign(Algorithm::RS256, &rsa_key(), None, &claims());
        assert_eq!(code(v.verify(&no_kid, NOW)), "unknown_key");
    }

    #[test]
    fn jwks_with_one_key_accepts_a_token_without_kid() {
        let v = jwks_verifier("ES256", vec![jwk(Algorithm::ES256, EC_PUBLIC, "ec-1")]).unwrap();
        let key = EncodingKey::from_ec_pem(EC_PRIVATE).unwrap();
        let t = sign(Algorithm::ES256, &key, None, &claims());
        assert_eq!(v.verify(&t, NOW).unwrap(), expected_identity());
        let v = jwks_verifier("EdDSA", vec![jwk(Algorithm::EdDSA, ED_PUBLIC, "ed-1")]).unwrap();
        let key = EncodingKey::from_ed_pem(ED_PRIVATE).unwrap();
        let t = sign(Algorithm::EdDSA, &key, Some("ed-1"), &claims());
        assert_eq!(v.verify(&t, NOW).unwrap(), expected_identity());
    }

    #[test]
    fn jwk_with_a_different_alg_is_refused() {
        // Same RSA key material as a usable RS256 key, but the JWK says PS256.
        let mut ps = jwk(Algorithm::RS256, RSA2_PUBLIC, "rsa-ps");
        ps.common.key_algorithm = Some(KeyAlgorithm::PS256);
        let v = jwks_verifier(
            "RS256",
            vec![
                jwk(Algorithm::RS256, RSA_PUBLIC, "rsa-1"),
                ps,
                jwk(Algorithm::ES256, EC_PUBLIC, "ec-1"),
            ],
        )
        .unwrap();
        let key2 = EncodingKey::from_rsa_pem(RSA2_PRIVATE).unwrap();
        let t = sign(Algorithm::RS256, &key2, Some("rsa-ps"), &claims());
        let err = v.verify(&t, NOW).unwrap_err();
        assert!(matches!(err, AuthError::KeyNotAllowed { .. }), "{err:?}");
        // An EC key cannot verify RS256 tokens.
        let t = sign(Algorithm::RS256, &rsa_key(), Some("ec-1"), &claims());
        let err = v.verify(&t, NOW).unwrap_err();
        assert!(matches!(err, AuthError::KeyNotAllowed { .. }), "{err:?}");
        // A key marked for encryption is refused as well.
        let mut enc = jwk(Algorithm::RS256, RSA2_PUBLIC, "rsa-enc");
        enc.common.public_key_use = Some(PublicKeyUse::Encryption);
        let v = jwks_verifier(
            "RS256",
            vec![jwk(Algorithm::RS256, RSA_PUBLIC, "rsa-1"), enc],
        )
        .unwrap();
        let t = sign(Algorithm::RS256, &key2, Some("rsa-enc"), &claims());
        assert_eq!(code(v.verify(&t, NOW)), "wrong_algorithm");
    }

    #[test]
    fn unusable_or_ambiguous_jwks_is_a_config_error() {
        let mut ps = jwk(Algorithm::RS256, RSA_PUBLIC, "only");
        ps.common.key_algorithm = Some(KeyAlgorithm::PS256);
        let err = jwks_verifier("RS256", vec![ps]).unwrap_err();
        assert!(matches!(err, AuthError::InvalidJwks { .. }), "{err:?}");
        let err = jwks_verifier(
            "RS256",
            vec![
                jwk(Algorithm::RS256, RSA_PUBLIC, "same"),
                jwk(Algorithm::RS256, RSA2_PUBLIC, "same"),
            ],
        )
        .unwrap_err();
        assert!(matches!(err, AuthError::InvalidJwks { .. }), "{err:?}");
        // An HMAC key in a JWKS is never used for RS256.
        let oct = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA","kid":"h"}]}"#;
        let err = VerifierKeys::external_from_jwks("RS256", oct).unwrap_err();
        assert!(matches!(err, AuthError::InvalidJwks { .. }), "{err:?}");
    }

    // --- Bearer header ---

    #[test]
    fn bearer_token_extraction() {
        assert_eq!(bearer_token("Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(
            bearer_token("  bearer   abc.def.ghi  "),
            Some("abc.def.ghi")
        );
        assert_eq!(bearer_token("BEARER\tabc"), Some("abc"));
        assert_eq!(bearer_token("Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer   "), None);
        assert_eq!(bearer_token("Bearer a b"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token(""), None);
    }

    // --- Refresh tokens ---

    #[test]
    fn refresh_tokens_are_random_and_hashes_stable() {
        let (t1, h1) = new_refresh_token();
        let (t2, h2) = new_refresh_token();
        assert_ne!(t1, t2);
        assert_ne!(h1, h2);
        assert_eq!(URL_SAFE_NO_PAD.decode(&t1).unwrap().len(), 32);
        assert_eq!(t1.len(), 43);
        assert_eq!(h1, refresh_token_hash(&t1));
        assert_eq!(refresh_token_hash(&t1), refresh_token_hash(&t1));
        assert_eq!(h1.len(), 64);
        assert!(
            h1.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        // Known answer: SHA-256("abc").
        assert_eq!(
            refresh_token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(refresh_token_hash("abc"), refresh_token_hash("abd"));
    }

    // --- Passwords ---

    #[test]
    fn password_hash_round_trip() {
        let fast = PasswordParams::INSECURE_FAST_FOR_TESTS;
        let h = hash_password_with_params("correct horse battery", fast).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("", &h));
        // Random salt: same password, different hash.
        let h2 = hash_password_with_params("correct horse battery", fast).unwrap();
        assert_ne!(h, h2);
        assert!(verify_password("correct horse battery", &h2));
    }

    #[test]
    fn malformed_or_hostile_hash_is_false() {
        let fast = PasswordParams::INSECURE_FAST_FOR_TESTS;
        let h = hash_password_with_params("pw-12345678", fast).unwrap();
        for bad in [
            "",
            "not-a-hash",
            "$argon2id$",
            "$argon2id$v=19$m=abc,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
            "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            &h[..h.len() - 5],
            // Absurd stored cost: refused without hashing.
            "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert!(!verify_password("pw-12345678", bad), "{bad}");
        }
    }

    #[test]
    fn recommended_hash_time_is_reported() {
        let start = std::time::Instant::now();
        let h = hash_password("a reasonably long password").unwrap();
        let elapsed = start.elapsed();
        println!(
            "argon2id m=19456 KiB, t=2, p=1: one hash took {:.1} ms",
            elapsed.as_secs_f64() * 1000.0
        );
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("a reasonably long password", &h));
    }

    #[test]
    fn password_policy() {
        assert!(check_password_policy("12345678").is_ok());
        assert!(check_password_policy("héllo wörld").is_ok());
        let err = check_password_policy("short").unwrap_err();
        assert_eq!(err.code(), "weak_password");
        assert!(err.to_string().contains("at least 8"), "{err}");
        assert!(check_password_policy("").is_err());
        let err = check_password_policy("          ").unwrap_err();
        assert!(err.to_string().contains("spaces"), "{err}");
        assert!(check_password_policy(" \t\n \t\n \t\n").is_err());
        assert!(check_password_policy(&"x".repeat(1025)).is_err());
        // Characters, not bytes: 7 two-byte characters are too short.
        assert!(check_password_policy("ééééééé").is_err());
    }

    // --- Key file ---

    #[test]
    fn hs256_key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("hs256.key");
        let first = load_or_create_hs256_secret(&path).unwrap();
        assert_eq!(first.len(), HS256_SECRET_FILE_LEN);
        assert!(path.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = load_or_create_hs256_secret(&path).unwrap();
        assert_eq!(first, second);
        let stored = fs::read_to_string(&path).unwrap();
        assert_eq!(STANDARD.decode(stored.trim()).unwrap(), first);
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // The secret works with the issuer.
        assert!(TokenIssuer::new(first, ISS, AUD, 900).is_ok());
    }

    #[test]
    fn short_or_garbage_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hs256.key");
        fs::write(&path, STANDARD.encode([7u8; 16])).unwrap();
        let err = load_or_create_hs256_secret(&path).unwrap_err();
        assert_eq!(err.code(), "key_file");
        assert!(err.to_string().contains("16 bytes"), "{err}");
        assert!(!err.to_string().contains(&STANDARD.encode([7u8; 16])));
        fs::write(&path, "SECRET-LOOKING not base64 !!!").unwrap();
        let err = load_or_create_hs256_secret(&path).unwrap_err();
        assert!(!err.to_string().contains("SECRET-LOOKING"), "{err}");
        // The file is left alone (not silently replaced).
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "SECRET-LOOKING not base64 !!!"
        );
    }

    // --- Debug redaction ---

    #[test]
    fn debug_output_contains_no_secret() {
        let secret_text = std::str::from_utf8(SECRET).unwrap();
        let byte_list = format!("{:?}", &SECRET[..6]);
        let byte_list = byte_list.trim_matches(|c| c == '[' || c == ']');
        let cfg = config(VerifierKeys::Hs256 {
            secret: SECRET.to_vec(),
        });
        let issuer = TokenIssuer::new(SECRET.to_vec(), ISS, AUD, 900).unwrap();
        let outputs = [
            format!("{cfg:?}"),
            format!("{cfg:#?}"),
            format!("{:?}", TokenVerifier::new(cfg.clone()).unwrap()),
            format!("{issuer:?}"),
            format!("{:?}", pem_verifier("RS256", RSA_PUBLIC)),
        ];
        for out in &outputs {
            assert!(!out.contains("SUPERSECRET"), "{out}");
            assert!(!out.contains(secret_text), "{out}");
            assert!(!out.contains(byte_list), "{out}");
            assert!(!out.contains(&STANDARD.encode(SECRET)[..12]), "{out}");
        }
        assert!(outputs[0].contains("redacted"), "{}", outputs[0]);
        // A JWKS config lists kids, not key material.
        let mut ec = jwk(Algorithm::ES256, EC_PUBLIC, "ec-1");
        let x = match &ec.algorithm {
            AlgorithmParameters::EllipticCurve(p) => p.x.clone(),
            _ => unreachable!(),
        };
        ec.common.key_id = Some("ec-1".into());
        let json = serde_json::to_vec(&JwkSet { keys: vec![ec] }).unwrap();
        let keys = VerifierKeys::external_from_jwks("ES256", &json).unwrap();
        let out = format!("{keys:?}");
        assert!(out.contains("ec-1") && !out.contains(&x), "{out}");
    }
}
