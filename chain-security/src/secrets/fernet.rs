//! Fernet: authenticated symmetric encryption (AES-128-CBC, then
//! HMAC-SHA256 over version, time, IV and ciphertext), per the Fernet spec.
//!
//! The token format is the `fernet` crate's (pure Rust, RustCrypto). This
//! module puts a typed, panic-free API around it: the crate reports every
//! failure as one opaque error and panics on a few inputs (an empty key
//! list, a token time plus a time to live past `u64::MAX`, a current time
//! within a minute of it), so those are checked here before the crate is
//! called, and each refusal says why.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use chain_core::{Error, ErrorKind, Result};

/// Version byte, time (8 bytes) and IV (16 bytes).
const HEADER: usize = 1 + 8 + 16;
const TAG: usize = 32;
const BLOCK: usize = 16;
const VERSION: u8 = 0x80;
/// How far in the future a token's time may be (clock skew), per the spec.
const MAX_CLOCK_SKEW: u64 = 60;

/// Why a Fernet token was refused; the source of the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FernetFailure {
    /// Not base64url, or too short to be a token.
    #[error("malformed token")]
    Malformed,
    /// A version other than 0x80.
    #[error("unknown token version")]
    UnknownVersion,
    /// The HMAC does not match: wrong key, or the token was altered. (A
    /// token whose HMAC matches but whose padding is wrong, which only the
    /// key's holder could make, is reported the same way: the `fernet`
    /// crate does not tell the two apart.)
    #[error("token signature does not match")]
    BadSignature,
    /// Older than the accepted time to live.
    #[error("token has expired")]
    Expired,
    /// Dated further in the future than the allowed clock skew.
    #[error("token is dated in the future")]
    FromTheFuture,
    /// The ciphertext is not a whole number of AES blocks.
    #[error("token payload is invalid")]
    BadPayload,
}

fn refuse(failure: FernetFailure) -> Error {
    Error::new(ErrorKind::Validation, "cannot decrypt").with_source(failure)
}

/// One Fernet key: 32 random bytes, shown as URL-safe base64; the first half
/// signs, the second encrypts. The key bytes are wiped when it is dropped.
///
/// ```
/// use chain_security::secrets::Fernet;
///
/// let key = Fernet::generate_key()?;
/// let fernet = Fernet::new(&key)?;
/// let token = fernet.encrypt(b"payment api key")?;
/// assert_eq!(fernet.decrypt(&token, None)?, b"payment api key");
/// assert!(Fernet::new(&Fernet::generate_key()?)?.decrypt(&token, None).is_err());
/// # Ok::<(), chain_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Fernet {
    key: ::fernet::Fernet,
}

impl Fernet {
    /// A new random key, base64url.
    ///
    /// # Errors
    ///
    /// An [`Internal`](ErrorKind::Internal) error if the operating system
    /// has no randomness to give.
    pub fn generate_key() -> Result<String> {
        let mut key = [0_u8; 32];
        fill_random(&mut key)?;
        Ok(URL_SAFE.encode(key))
    }

    /// The key `key` (32 bytes as URL-safe base64).
    ///
    /// # Errors
    ///
    /// A [`Validation`](ErrorKind::Validation) error for anything else.
    pub fn new(key: &str) -> Result<Self> {
        ::fernet::Fernet::new(key.trim())
            .map(|key| Self { key })
            .ok_or_else(|| Error::validation("a Fernet key is 32 bytes of URL-safe base64"))
    }

    /// Encrypts `plaintext` now, with a random IV.
    ///
    /// # Errors
    ///
    /// An [`Internal`](ErrorKind::Internal) error if the operating system
    /// has no randomness for the IV, or the clock is before 1970.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<String> {
        self.encrypt_at(plaintext, unix_now()?)
    }

    /// Encrypts as if the time were `time` (seconds since the Unix epoch),
    /// with a random IV: for tests of expiry.
    ///
    /// # Errors
    ///
    /// An [`Internal`](ErrorKind::Internal) error if the operating system
    /// has no randomness for the IV.
    pub fn encrypt_at(&self, plaintext: &[u8], time: u64) -> Result<String> {
        // The crate panics when it finds no randomness; asking first turns
        // that into an error.
        fill_random(&mut [0_u8; 16])?;
        Ok(self.key.encrypt_at_time(plaintext, time))
    }

    /// Decrypts `token`, refusing it if it is older than `ttl_secs`.
    ///
    /// # Errors
    ///
    /// A [`Validation`](ErrorKind::Validation) error whose source is the
    /// [`FernetFailure`]; an [`Internal`](ErrorKind::Internal) one if the
    /// clock is before 1970.
    pub fn decrypt(&self, token: &str, ttl_secs: Option<u64>) -> Result<Vec<u8>> {
        self.decrypt_at(token, ttl_secs, unix_now()?)
    }

    /// Decrypts as if the time were `now` (seconds since the Unix epoch).
    ///
    /// # Errors
    ///
    /// As [`decrypt`](Self::decrypt).
    pub fn decrypt_at(&self, token: &str, ttl_secs: Option<u64>, now: u64) -> Result<Vec<u8>> {
        let token = token.trim();
        check_token(token, ttl_secs, now)?;
        // Time and time to live were checked above with saturating
        // arithmetic; the crate adds them unchecked, so it gets no time to
        // live and a current time it cannot overflow.
        self.key
            .decrypt_at_time(token, None, now.min(u64::MAX - MAX_CLOCK_SKEW))
            .map_err(|_| refuse(FernetFailure::BadSignature))
    }
}

/// Everything about a token that can be checked without its key, in the
/// spec's order.
fn check_token(token: &str, ttl_secs: Option<u64>, now: u64) -> Result<()> {
    // As the crate decodes: padding optional.
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| refuse(FernetFailure::Malformed))?;
    if bytes.len() < HEADER + BLOCK + TAG {
        return Err(refuse(FernetFailure::Malformed));
    }
    if bytes[0] != VERSION {
        return Err(refuse(FernetFailure::UnknownVersion));
    }
    let mut time = [0_u8; 8];
    time.copy_from_slice(&bytes[1..9]);
    let time = u64::from_be_bytes(time);
    if let Some(ttl) = ttl_secs
        && now.saturating_sub(time) > ttl
    {
        return Err(refuse(FernetFailure::Expired));
    }
    if time > now.saturating_add(MAX_CLOCK_SKEW) {
        return Err(refuse(FernetFailure::FromTheFuture));
    }
    if !(bytes.len() - HEADER - TAG).is_multiple_of(BLOCK) {
        return Err(refuse(FernetFailure::BadPayload));
    }
    Ok(())
}

impl std::fmt::Debug for Fernet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fernet([REDACTED])")
    }
}

/// Several keys for rotation: encrypts with the first, decrypts with
/// whichever matches.
#[derive(Debug, Clone)]
pub struct MultiFernet {
    keys: Vec<Fernet>,
}

impl MultiFernet {
    /// Keys newest first.
    ///
    /// # Errors
    ///
    /// A [`Validation`](ErrorKind::Validation) error if `keys` is empty.
    pub fn new(keys: Vec<Fernet>) -> Result<Self> {
        if keys.is_empty() {
            return Err(Error::validation(
                "key rotation needs at least one Fernet key",
            ));
        }
        Ok(Self { keys })
    }

    /// Encrypts with the newest key.
    ///
    /// # Errors
    ///
    /// As [`Fernet::encrypt`].
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<String> {
        self.newest().encrypt(plaintext)
    }

    fn newest(&self) -> &Fernet {
        // `new` refuses an empty list, and nothing removes keys.
        &self.keys[0]
    }

    /// Decrypts with the first key whose signature matches.
    ///
    /// # Errors
    ///
    /// The newest key's failure when no key matches, or an expiry or payload
    /// failure of the matching key.
    pub fn decrypt(&self, token: &str, ttl_secs: Option<u64>) -> Result<Vec<u8>> {
        self.decrypt_at(token, ttl_secs, unix_now()?)
    }

    /// Decrypts as if the time were `now` (seconds since the Unix epoch).
    ///
    /// # Errors
    ///
    /// As [`decrypt`](Self::decrypt).
    pub fn decrypt_at(&self, token: &str, ttl_secs: Option<u64>, now: u64) -> Result<Vec<u8>> {
        // The checks that need no key fail the same way for every key.
        check_token(token.trim(), ttl_secs, now)?;
        let mut first_error = None;
        for key in &self.keys {
            match key.decrypt_at(token, ttl_secs, now) {
                Ok(plaintext) => return Ok(plaintext),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| refuse(FernetFailure::BadSignature)))
    }

    /// Re-encrypts a token under the newest key (rotation).
    ///
    /// # Errors
    ///
    /// As [`decrypt`](Self::decrypt).
    pub fn rotate(&self, token: &str) -> Result<String> {
        self.encrypt(&self.decrypt(token, None)?)
    }
}

fn unix_now() -> Result<u64> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .map_err(|_| Error::internal("the system clock is before 1970"))
}

/// Fills `bytes` from the operating system's random source.
fn fill_random(bytes: &mut [u8]) -> Result<()> {
    getrandom::fill(bytes).map_err(|source| {
        Error::new(
            ErrorKind::Internal,
            format!("no operating-system randomness: {source}"),
        )
    })
}
