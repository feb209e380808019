use std::time::Duration;

use chain_core::{Error, ErrorKind};

/// Why authentication or authorization failed; the source of the chain
/// error. Reach it with `error.downcast_source::<AuthFailure>()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// Unknown user, wrong password or inactive account: deliberately one
    /// answer, so the response does not reveal which.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many failed logins; try again after the given time.
    #[error(
        "account temporarily locked after too many failed attempts; retry after {retry_after:?}"
    )]
    AccountLocked {
        /// Time until the lock ends.
        retry_after: Duration,
    },
    /// Too many logins are waiting for password hashing: the login was
    /// shed without being checked. Try again later.
    #[error("too many logins in progress; try again later")]
    TooBusy,
    /// No `Authorization: Bearer ...` header.
    #[error("missing or invalid Authorization header")]
    MissingToken,
    /// The token is not a well-formed JWT.
    #[error("malformed token")]
    MalformedToken,
    /// The token says `alg: none`: unsigned tokens are never accepted.
    #[error("unsigned tokens (alg none) are not accepted")]
    UnsignedToken,
    /// The token's algorithm is not the one pinned for its key.
    #[error("algorithm {algorithm} is not accepted for this key")]
    AlgorithmNotAllowed {
        /// The algorithm the token claims.
        algorithm: String,
    },
    /// The token names a key that is not active.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not match: the token was altered or forged.
    #[error("invalid token signature")]
    InvalidSignature,
    /// The token has expired.
    #[error("token has expired")]
    Expired,
    /// The token is not valid yet (`nbf` in the future).
    #[error("token is not valid yet")]
    NotYetValid,
    /// Issuer, audience or a required claim is wrong or missing.
    #[error("invalid token claims: {0}")]
    InvalidClaims(String),
    /// Authenticated, but the role is not among those required.
    #[error("insufficient permissions: role `{role}` is not one of {required:?}")]
    InsufficientRole {
        /// The user's role.
        role: String,
        /// The roles allowed.
        required: Vec<String>,
    },
}

impl AuthFailure {
    /// The chain error for this failure: `Forbidden` for a role that is not
    /// allowed, `Rejected` for a locked account, `Unauthorized` otherwise.
    pub(crate) fn into_error(self) -> Error {
        let kind = match self {
            Self::InsufficientRole { .. } => ErrorKind::Forbidden,
            Self::AccountLocked { .. } | Self::TooBusy => ErrorKind::Rejected,
            _ => ErrorKind::Unauthorized,
        };
        let retry_after = match &self {
            Self::AccountLocked { retry_after } => Some(*retry_after),
            _ => None,
        };
        let error = Error::from_source(kind, self);
        match retry_after {
            Some(wait) => error.with_retry_after(wait),
            None => error,
        }
    }
}
