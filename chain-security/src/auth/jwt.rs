use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chain_core::{Error, Result};
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::error::AuthFailure;
use super::store::Role;

/// Least HMAC secret length: 256 bits, as HS256 needs.
pub const MIN_HMAC_SECRET_BYTES: usize = 32;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's name.
    pub sub: String,
    /// The user's role.
    pub role: Role,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// A key with the one algorithm it accepts, named by its `kid`. Keys
/// without a private half only verify.
pub struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
}

fn key_error(kid: &str, what: &str, source: jsonwebtoken::errors::Error) -> Error {
    Error::validation(format!("key `{kid}`: invalid {what}")).with_source(source)
}

impl SigningKey {
    /// An HS256 key.
    ///
    /// # Errors
    ///
    /// A [`Validation`](chain_core::ErrorKind::Validation) error for a
    /// secret shorter than 32 bytes.
    pub fn hmac(kid: impl Into<String>, secret: &[u8]) -> Result<Self> {
        let kid = kid.into();
        if secret.len() < MIN_HMAC_SECRET_BYTES {
            return Err(Error::validation(format!(
                "key `{kid}`: HMAC secrets need at least {MIN_HMAC_SECRET_BYTES} bytes, got {}",
                secret.len()
            )));
        }
        let encoding =
            EncodingKey::from_secret(secret).map_err(|e| key_error(&kid, "HMAC secret", e))?;
        let decoding =
            DecodingKey::from_secret(secret).map_err(|e| key_error(&kid, "HMAC secret", e))?;
        Ok(Self {
            kid,
            algorithm: Algorithm::HS256,
            encoding: Some(encoding),
            decoding,
        })
    }

    /// An RS256 key from PEM; without the private key it only verifies.
    ///
    /// # Errors
    ///
    /// A [`Validation`](chain_core::ErrorKind::Validation) error for PEM
    /// that is not an RSA key.
    pub fn rsa_pem(
        kid: impl Into<String>,
        private_pem: Option<&[u8]>,
        public_pem: &[u8],
    ) -> Result<Self> {
        Self::from_pem(
            kid.into(),
            Algorithm::RS256,
            "RSA",
            private_pem.map(EncodingKey::from_rsa_pem),
            DecodingKey::from_rsa_pem(public_pem),
        )
    }

    /// An ES256 (P-256) key from PEM.
    ///
    /// # Errors
    ///
    /// A [`Validation`](chain_core::ErrorKind::Validation) error for PEM
    /// that is not an EC key.
    pub fn ec_pem(
        kid: impl Into<String>,
        private_pem: Option<&[u8]>,
        public_pem: &[u8],
    ) -> Result<Self> {
        Self::from_pem(
            kid.into(),
            Algorithm::ES256,
            "EC",
            private_pem.map(EncodingKey::from_ec_pem),
            DecodingKey::from_ec_pem(public_pem),
        )
    }

    /// An EdDSA (Ed25519) key from PEM.
    ///
    /// # Errors
    ///
    /// A [`Validation`](chain_core::ErrorKind::Validation) error for PEM
    /// that is not an Ed25519 key.
    pub fn ed_pem(
        kid: impl Into<String>,
        private_pem: Option<&[u8]>,
        public_pem: &[u8],
    ) -> Result<Self> {
        Self::from_pem(
            kid.into(),
            Algorithm::EdDSA,
            "Ed25519",
            private_pem.map(EncodingKey::from_ed_pem),
            DecodingKey::from_ed_pem(public_pem),
        )
    }

    fn from_pem(
        kid: String,
        algorithm: Algorithm,
        label: &str,
        encoding: Option<jsonwebtoken::errors::Result<EncodingKey>>,
        decoding: jsonwebtoken::errors::Result<DecodingKey>,
    ) -> Result<Self> {
        let encoding = encoding
            .transpose()
            .map_err(|e| key_error(&kid, &format!("{label} private key"), e))?;
        let decoding = decoding.map_err(|e| key_error(&kid, &format!("{label} public key"), e))?;
        Ok(Self {
            kid,
            algorithm,
            encoding,
            decoding,
        })
    }

    /// The key's id.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("can_sign", &self.encoding.is_some())
            .finish_non_exhaustive()
    }
}

/// How tokens are issued and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// Lifetime of issued tokens (24 hours by default).
    pub ttl: Duration,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Issuer put in and required of tokens, if set.
    pub issuer: Option<String>,
    /// Audience put in and required of tokens, if set.
    pub audience: Option<String>,
}

impl Default for JwtSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(24 * 3600),
            leeway: Duration::from_secs(30),
            issuer: None,
            audience: None,
        }
    }
}

/// The active keys: tokens are signed with the current one and verified
/// with whichever their `kid` names, each key accepting only its own
/// algorithm. Rotate by making a new key current and retiring the old one
/// once its tokens have expired.
#[derive(Debug)]
pub struct JwtKeys {
    current: String,
    keys: HashMap<String, SigningKey>,
    settings: JwtSettings,
}

/// The longest clock skew tolerated: beyond a day, expiry would mean little.
pub const MAX_LEEWAY: Duration = Duration::from_secs(24 * 3600);

/// 128 bits from the operating system's CSPRNG: token ids and the dummy
/// password must not be predictable from earlier ones.
pub(crate) fn random_u128() -> Result<u128> {
    let mut bytes = [0_u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|source| Error::internal(format!("no operating-system randomness: {source}")))?;
    Ok(u128::from_le_bytes(bytes))
}

pub(crate) fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

impl JwtKeys {
    /// Signs with `current`.
    ///
    /// # Errors
    ///
    /// A [`Validation`](chain_core::ErrorKind::Validation) error if the key
    /// cannot sign (it has no private half), or if the leeway is longer
    /// than [`MAX_LEEWAY`].
    pub fn new(current: SigningKey, settings: JwtSettings) -> Result<Self> {
        if settings.leeway > MAX_LEEWAY {
            return Err(Error::validation(format!(
                "a JWT leeway of {:?} is longer than the {:?} allowed",
                settings.leeway, MAX_LEEWAY
            )));
        }
        if current.encoding.is_none() {
            return Err(Error::validation(format!(
                "key `{}` cannot sign: no private key",
                current.kid
            )));
        }
        let kid = current.kid.clone();
        Ok(Self {
            current: kid.clone(),
            keys: HashMap::from([(kid, current)]),
            settings,
        })
    }

    /// Adds a key that verifies tokens (an older or a peer's key).
    #[must_use]
    pub fn with_key(mut self, key: SigningKey) -> Self {
        self.keys.insert(key.kid.clone(), key);
        self
    }

    /// Makes `key` current; the previous keys keep verifying.
    ///
    /// # Errors
    ///
    /// A [`Validation`](chain_core::ErrorKind::Validation) error if the key
    /// cannot sign.
    pub fn rotate(&mut self, key: SigningKey) -> Result<()> {
        if key.encoding.is_none() {
            return Err(Error::validation(format!(
                "key `{}` cannot sign: no private key",
                key.kid
            )));
        }
        self.current = key.kid.clone();
        self.keys.insert(key.kid.clone(), key);
        Ok(())
    }

    /// Stops accepting tokens of key `kid` (never the current key).
    pub fn retire(&mut self, kid: &str) -> bool {
        kid != self.current && self.keys.remove(kid).is_some()
    }

    /// The settings.
    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    /// Claims for a new token of `username` with `role`. The token id is
    /// 128 random bits from the operating system's CSPRNG (or absent, in
    /// the unheard-of case that it has none to give); the expiry saturates
    /// at the largest time a token can state.
    pub fn claims_for(&self, username: &str, role: &Role) -> Claims {
        let now = now_seconds();
        Claims {
            sub: username.to_owned(),
            role: role.clone(),
            iat: now,
            exp: now.saturating_add(self.settings.ttl.as_secs()),
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            nbf: None,
            jti: random_u128().ok().map(|id| format!("{id:032x}")),
        }
    }

    /// Signs `claims` with the current key.
    ///
    /// # Errors
    ///
    /// An [`Internal`](chain_core::ErrorKind::Internal) error if signing
    /// fails.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        let key = self
            .keys
            .get(&self.current)
            .ok_or_else(|| Error::internal("the current key is missing"))?;
        let encoding = key
            .encoding
            .as_ref()
            .ok_or_else(|| Error::internal("the current key cannot sign"))?;
        let mut header = Header::new(key.algorithm);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, encoding).map_err(Error::internal_from)
    }

    /// Checks a token and returns its claims.
    ///
    /// # Errors
    ///
    /// An [`Unauthorized`](chain_core::ErrorKind::Unauthorized) error whose
    /// source [`AuthFailure`] tells unsigned, malformed, unknown-key,
    /// wrong-algorithm, bad-signature, expired, not-yet-valid and bad-claims
    /// tokens apart.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        self.check(token).map_err(AuthFailure::into_error)
    }

    fn check(&self, token: &str) -> std::result::Result<Claims, AuthFailure> {
        let algorithm = declared_algorithm(token)?;
        if algorithm.eq_ignore_ascii_case("none") {
            return Err(AuthFailure::UnsignedToken);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthFailure::MalformedToken)?;
        let kid = header.kid.as_deref().unwrap_or(&self.current);
        let key = self.keys.get(kid).ok_or(AuthFailure::UnknownKey)?;
        if header.alg != key.algorithm {
            return Err(AuthFailure::AlgorithmNotAllowed { algorithm });
        }
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = self.settings.leeway.as_secs();
        validation.validate_nbf = true;
        // jsonwebtoken checks `iss` and `aud` only when a token has them:
        // when the settings name them, they are required as well.
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.settings.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.settings.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                JwtErrorKind::InvalidSignature => AuthFailure::InvalidSignature,
                JwtErrorKind::ExpiredSignature => AuthFailure::Expired,
                JwtErrorKind::ImmatureSignature => AuthFailure::NotYetValid,
                JwtErrorKind::InvalidAlgorithm => AuthFailure::AlgorithmNotAllowed {
                    algorithm: format!("{:?}", header.alg),
                },
                JwtErrorKind::InvalidIssuer => {
                    AuthFailure::InvalidClaims("wrong issuer".to_owned())
                }
                JwtErrorKind::InvalidAudience => {
                    AuthFailure::InvalidClaims("wrong audience".to_owned())
                }
                JwtErrorKind::MissingRequiredClaim(claim) => {
                    AuthFailure::InvalidClaims(format!("missing `{claim}`"))
                }
                _ => AuthFailure::MalformedToken,
            })
    }
}

/// The `alg` a token's header declares, read before any library parsing so
/// that `none` is recognised and refused explicitly.
fn declared_algorithm(token: &str) -> std::result::Result<String, AuthFailure> {
    let header = token.split('.').next().ok_or(AuthFailure::MalformedToken)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthFailure::MalformedToken)?;
    #[derive(Deserialize)]
    struct Declared {
        alg: String,
    }
    serde_json::from_slice::<Declared>(&bytes)
        .map(|declared| declared.alg)
        .map_err(|_| AuthFailure::MalformedToken)
}
