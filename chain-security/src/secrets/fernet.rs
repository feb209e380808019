//! Fernet: authenticated symmetric encryption (AES-128-CBC, then
//! HMAC-SHA256 over version, time, IV and ciphertext), per the Fernet spec.
//!
//! Written here rather than taken from the `fernet` crate so that tokens can
//! be built from given parts (the spec's test vectors fix the IV and time)
//! and so that no failure anywhere can panic.

use std::time::{SystemTime, UNIX_EPOCH};

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use chain_core::{Error, ErrorKind, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type Encryptor = cbc::Encryptor<aes::Aes128>;
type Decryptor = cbc::Decryptor<aes::Aes128>;
type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 0x80;
const HEADER: usize = 1 + 8 + 16;
const TAG: usize = 32;
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
    /// The HMAC does not match: wrong key, or the token was altered.
    #[error("token signature does not match")]
    BadSignature,
    /// Older than the accepted time to live.
    #[error("token has expired")]
    Expired,
    /// Dated further in the future than the allowed clock skew.
    #[error("token is dated in the future")]
    FromTheFuture,
    /// The ciphertext does not decrypt to a well-padded plaintext.
    #[error("token payload is invalid")]
    BadPayload,
}

fn refuse(failure: FernetFailure) -> Error {
    Error::new(ErrorKind::Validation, format!("cannot decrypt: {failure}")).with_source(failure)
}

/// One Fernet key: 32 random bytes, shown as URL-safe base64; the first half
/// signs, the second encrypts.
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
    signing: [u8; 16],
    encryption: [u8; 16],
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
        let bytes = URL_SAFE
            .decode(key.trim())
            .map_err(|_| Error::validation("a Fernet key is 32 bytes of URL-safe base64"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::validation("a Fernet key is 32 bytes of URL-safe base64"))?;
        let (signing, encryption) = bytes.split_at(16);
        let mut key = Self {
            signing: [0; 16],
            encryption: [0; 16],
        };
        key.signing.copy_from_slice(signing);
        key.encryption.copy_from_slice(encryption);
        Ok(key)
    }

    /// Encrypts `plaintext` now, with a random IV.
    ///
    /// # Errors
    ///
    /// An [`Internal`](ErrorKind::Internal) error if the operating system
    /// has no randomness for the IV.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<String> {
        let mut iv = [0_u8; 16];
        fill_random(&mut iv)?;
        Ok(self.encrypt_with(plaintext, unix_now(), iv))
    }

    /// Encrypts with a given time and IV: for test vectors. Never reuse an
    /// IV with real data.
    pub fn encrypt_with(&self, plaintext: &[u8], time: u64, iv: [u8; 16]) -> String {
        let ciphertext = Encryptor::new(&self.encryption.into(), &iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
        let mut token = Vec::with_capacity(HEADER + ciphertext.len() + TAG);
        token.push(VERSION);
        token.extend_from_slice(&time.to_be_bytes());
        token.extend_from_slice(&iv);
        token.extend_from_slice(&ciphertext);
        let tag = self.mac(&token).finalize().into_bytes();
        token.extend_from_slice(&tag);
        URL_SAFE.encode(token)
    }

    /// Decrypts `token`, refusing it if it is older than `ttl_secs`.
    ///
    /// # Errors
    ///
    /// A [`Validation`](ErrorKind::Validation) error whose source is the
    /// [`FernetFailure`].
    pub fn decrypt(&self, token: &str, ttl_secs: Option<u64>) -> Result<Vec<u8>> {
        self.decrypt_at(token, ttl_secs, unix_now())
    }

    /// Decrypts as if the time were `now` (seconds since the Unix epoch).
    ///
    /// # Errors
    ///
    /// As [`decrypt`](Self::decrypt).
    pub fn decrypt_at(&self, token: &str, ttl_secs: Option<u64>, now: u64) -> Result<Vec<u8>> {
        let bytes = URL_SAFE
            .decode(token.trim())
            .map_err(|_| refuse(FernetFailure::Malformed))?;
        if bytes.len() < HEADER + 16 + TAG {
            return Err(refuse(FernetFailure::Malformed));
        }
        if bytes[0] != VERSION {
            return Err(refuse(FernetFailure::UnknownVersion));
        }
        let (signed, tag) = bytes.split_at(bytes.len() - TAG);
        let mut time = [0_u8; 8];
        time.copy_from_slice(&signed[1..9]);
        let time = u64::from_be_bytes(time);
        if let Some(ttl) = ttl_secs
            && now.saturating_sub(time) > ttl
        {
            return Err(refuse(FernetFailure::Expired));
        }
        if time > now.saturating_add(MAX_CLOCK_SKEW) {
            return Err(refuse(FernetFailure::FromTheFuture));
        }
        self.mac(signed)
            .verify_slice(tag)
            .map_err(|_| refuse(FernetFailure::BadSignature))?;
        let mut iv = [0_u8; 16];
        iv.copy_from_slice(&signed[9..HEADER]);
        let ciphertext = &signed[HEADER..];
        if ciphertext.len() % 16 != 0 {
            return Err(refuse(FernetFailure::BadPayload));
        }
        Decryptor::new(&self.encryption.into(), &iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
            .map_err(|_| refuse(FernetFailure::BadPayload))
    }

    fn mac(&self, data: &[u8]) -> HmacSha256 {
        let mut mac = match HmacSha256::new_from_slice(&self.signing) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(data);
        mac
    }
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
        self.keys[0].encrypt(plaintext)
    }

    /// Decrypts with the first key whose signature matches.
    ///
    /// # Errors
    ///
    /// The newest key's failure when no key matches, or an expiry or payload
    /// failure of the matching key.
    pub fn decrypt(&self, token: &str, ttl_secs: Option<u64>) -> Result<Vec<u8>> {
        let mut first_error = None;
        for key in &self.keys {
            match key.decrypt(token, ttl_secs) {
                Ok(plaintext) => return Ok(plaintext),
                Err(error)
                    if error.downcast_source::<FernetFailure>()
                        == Some(&FernetFailure::BadSignature) =>
                {
                    first_error.get_or_insert(error);
                }
                Err(error) => return Err(error),
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
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
