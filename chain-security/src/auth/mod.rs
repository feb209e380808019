//! Authentication and authorization: [`AuthManager`] (bcrypt, lockout,
//! JWT) and the [`auth`] middleware.
//!
//! # What it protects against
//!
//! - Stolen password databases: passwords are stored as bcrypt hashes
//!   (cost 12 by default), computed on blocking threads, a bounded number
//!   at once, so logins never stall the async runtime. Passwords longer than bcrypt's 72 bytes are
//!   refused rather than silently truncated.
//! - Account enumeration: unknown users, wrong passwords and inactive
//!   accounts get one generic error, in the same time (unknown users are
//!   checked against a dummy hash).
//! - Online guessing: per-account lockout after repeated failures.
//! - Token forgery: tokens are verified with the key their `kid` names and
//!   only with that key's algorithm; `alg: none`, altered signatures, wrong
//!   algorithms, expired and not-yet-valid tokens are refused, each with
//!   its own [`AuthFailure`]. HMAC secrets under 256 bits are refused.
//!
//! Not covered here: transport security (use TLS), token revocation before
//! expiry (keep lifetimes short, rotate keys), and distributed lockout
//! (the lockout state is per process).

mod error;
mod jwt;
mod lockout;
mod middleware;
mod password;
mod store;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use chain_core::{Error, ErrorKind, Result};
use serde::Serialize;
use tokio::sync::{OnceCell, Semaphore};
use zeroize::Zeroizing;

pub use error::AuthFailure;
pub use jwt::{Claims, JwtKeys, JwtSettings, MAX_LEEWAY, MIN_HMAC_SECRET_BYTES, SigningKey};
pub use lockout::LockoutPolicy;
use lockout::Lockouts;
pub use middleware::{Auth, AuthenticatedUser, auth};
pub use password::{MAX_PASSWORD_BYTES, PasswordPolicy};
pub use store::{MemoryUserStore, Role, UserRecord, UserStore};

/// Settings of an [`AuthManager`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// bcrypt cost (4 to 31; OWASP asks for at least 10). Default 12.
    pub bcrypt_cost: u32,
    /// Rules for new passwords.
    pub password_policy: PasswordPolicy,
    /// When failed logins lock an account.
    pub lockout: LockoutPolicy,
    /// Accounts the lockout tracks at most (100,000 by default, at least
    /// 1), each in a fixed size (about `120 + 16 × max_failures` bytes);
    /// see [`LockoutPolicy`] for which are forgotten first.
    pub max_tracked_accounts: usize,
    /// bcrypt computations at once. bcrypt is deliberately slow; on as many
    /// threads as cores it would starve everything else, so by default it
    /// leaves one core free (at least one hash at a time).
    pub max_concurrent_hashes: usize,
    /// Logins and user creations waiting for a bcrypt slot at most; beyond,
    /// they are refused at once with [`AuthFailure::TooBusy`]. A flood of
    /// logins cannot be worked through faster than bcrypt allows anyway,
    /// and each waiting login holds a lockout entry that cannot be
    /// forgotten, so an unbounded queue would let a flood fill the lockout
    /// table and refuse every other name. Default 1,000.
    pub max_queued_hashes: usize,
}

fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| cores.get().saturating_sub(1).max(1))
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            bcrypt_cost: 12,
            password_policy: PasswordPolicy::default(),
            lockout: LockoutPolicy::default(),
            max_tracked_accounts: 100_000,
            max_concurrent_hashes: default_hash_concurrency(),
            max_queued_hashes: 1_000,
        }
    }
}

/// The answer to a successful login. It serializes whole
/// (it is the body of a login response); its `Debug` redacts the token.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct AuthResponse {
    /// The signed JWT.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// Who logged in.
    pub user: AuthenticatedUser,
}

impl fmt::Debug for AuthResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthResponse")
            .field("access_token", &crate::REDACTED)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("user", &self.user)
            .finish()
    }
}

/// Creates users and logs them in. Cloning is cheap; clones share state.
///
/// ```
/// use chain_security::auth::{AuthConfig, AuthManager, JwtKeys, JwtSettings, MemoryUserStore, Role, SigningKey};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let keys = JwtKeys::new(SigningKey::hmac("k1", &[7; 32])?, JwtSettings::default())?;
/// let config = AuthConfig { bcrypt_cost: 4, ..AuthConfig::default() }; // fast for the example
/// let auth = AuthManager::new(MemoryUserStore::new(), keys, config);
/// auth.create_user("ada", "Analytical1", Role::Admin).await?;
///
/// let login = auth.authenticate("ada", "Analytical1").await?;
/// assert_eq!(login.token_type, "bearer");
/// assert_eq!(auth.verify_token(&login.access_token)?.sub, "ada");
/// assert!(auth.authenticate("ada", "wrong").await.is_err());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthManager {
    inner: Arc<Inner>,
}

struct Inner {
    store: Box<dyn UserStore>,
    keys: RwLock<JwtKeys>,
    config: AuthConfig,
    lockouts: Lockouts,
    dummy_hash: OnceCell<String>,
    /// Slots for bcrypt runs; a slot is held by the blocking work itself.
    hashing: Arc<Semaphore>,
    /// Hashes running or waiting for a slot; see
    /// [`max_queued_hashes`](AuthConfig::max_queued_hashes).
    hashes_admitted: AtomicUsize,
}

/// Counts a hash as admitted until dropped, whether it ran, failed or its
/// caller went away.
struct Admitted<'a>(&'a AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AuthManager {
    /// A manager over `store`, signing with `keys`.
    pub fn new(store: impl UserStore, keys: JwtKeys, config: AuthConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: Box::new(store),
                keys: RwLock::new(keys),
                lockouts: Lockouts::new(config.lockout, config.max_tracked_accounts),
                hashing: Arc::new(Semaphore::new(
                    config
                        .max_concurrent_hashes
                        .clamp(1, Semaphore::MAX_PERMITS),
                )),
                config,
                dummy_hash: OnceCell::new(),
                hashes_admitted: AtomicUsize::new(0),
            }),
        }
    }

    /// Adds a user, hashing the password on a blocking thread.
    ///
    /// # Errors
    ///
    /// A [`Validation`](ErrorKind::Validation) error for a password that
    /// breaks the policy or is longer than 72 bytes, a
    /// [`Conflict`](ErrorKind::Conflict) error for a taken name.
    pub async fn create_user(&self, username: &str, password: &str, role: Role) -> Result<()> {
        self.inner.config.password_policy.check(password)?;
        if self.inner.store.get(username).await?.is_some() {
            return Err(Error::conflict(format!("user `{username}` already exists")));
        }
        let password_hash = self.hash(password).await?;
        self.inner
            .store
            .insert(UserRecord {
                username: username.to_owned(),
                password_hash,
                role,
                active: true,
                created_at: SystemTime::now(),
                last_login: None,
            })
            .await
    }

    /// Logs a user in and issues a token.
    ///
    /// # Errors
    ///
    /// An [`Unauthorized`](ErrorKind::Unauthorized) error with the one
    /// generic [`AuthFailure::InvalidCredentials`] for an unknown user, a
    /// wrong password or an inactive account; a
    /// [`Rejected`](ErrorKind::Rejected) error with
    /// [`AuthFailure::AccountLocked`] while the account is locked.
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<AuthResponse> {
        // No account has a password bcrypt cannot read, so such a guess is
        // refused at once, the same way for every name, and costs nothing
        // to track.
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(AuthFailure::InvalidCredentials.into_error());
        }
        // Shed before anything is reserved: a login waiting for bcrypt
        // holds a lockout entry.
        let _admitted = self.admit_hash()?;
        // The attempt is reserved before anything is compared, so parallel
        // guesses cannot outrun the lockout; dropping this future releases
        // the reservation.
        let attempt = self
            .inner
            .lockouts
            .begin(username)
            .await
            .map_err(|locked| locked_error(locked.retry_after))?;
        let user = self
            .inner
            .store
            .get(username)
            .await?
            .filter(|user| user.active);
        let hash = match &user {
            Some(user) => user.password_hash.clone(),
            None => self.dummy_hash().await?.clone(),
        };
        let matches = self.verify_password(password, hash).await?;
        let Some(user) = user.filter(|_| matches) else {
            attempt.failed();
            return Err(AuthFailure::InvalidCredentials.into_error());
        };
        attempt
            .succeeded()
            .map_err(|locked| locked_error(locked.retry_after))?;
        // Recorded before the token is issued: a store that cannot write
        // fails the login rather than lose the time.
        self.inner
            .store
            .record_login(&user.username, SystemTime::now())
            .await?;
        let keys = self
            .inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let claims = keys.claims_for(&user.username, &user.role);
        let access_token = keys.sign(&claims)?;
        Ok(AuthResponse {
            access_token,
            token_type: "bearer",
            expires_in: keys.settings().ttl.as_secs(),
            user: AuthenticatedUser {
                username: user.username,
                role: user.role,
            },
        })
    }

    /// Checks a token; see [`JwtKeys::verify`].
    ///
    /// # Errors
    ///
    /// An [`Unauthorized`](ErrorKind::Unauthorized) error naming what is
    /// wrong with the token.
    pub fn verify_token(&self, token: &str) -> Result<Claims> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .verify(token)
    }

    /// Changes the keys, for rotation: `change` can add, make current or
    /// retire keys.
    ///
    /// # Errors
    ///
    /// Whatever `change` returns.
    pub fn update_keys(&self, change: impl FnOnce(&mut JwtKeys) -> Result<()>) -> Result<()> {
        change(
            &mut self
                .inner
                .keys
                .write()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Accounts the lockout tracks.
    pub fn tracked_accounts(&self) -> usize {
        self.inner.lockouts.tracked()
    }

    /// The users, for administration.
    ///
    /// # Errors
    ///
    /// The store's failures.
    pub async fn users(&self) -> Result<Vec<UserRecord>> {
        self.inner.store.list().await
    }

    /// Activates or deactivates a user.
    ///
    /// # Errors
    ///
    /// A [`NotFound`](ErrorKind::NotFound) error for an unknown user.
    pub async fn set_active(&self, username: &str, active: bool) -> Result<()> {
        let mut user = self
            .inner
            .store
            .get(username)
            .await?
            .ok_or_else(|| Error::not_found(format!("no user `{username}`")))?;
        user.active = active;
        self.inner.store.update(user).await
    }

    /// Admits one more hash to run or wait for a slot, or sheds it.
    fn admit_hash(&self) -> Result<Admitted<'_>> {
        let config = &self.inner.config;
        let limit = config
            .max_concurrent_hashes
            .max(1)
            .saturating_add(config.max_queued_hashes);
        let admitted = self.inner.hashes_admitted.fetch_add(1, Ordering::AcqRel);
        let guard = Admitted(&self.inner.hashes_admitted);
        if admitted >= limit {
            return Err(AuthFailure::TooBusy.into_error());
        }
        Ok(guard)
    }

    /// Runs `work` on a blocking thread, at most
    /// [`max_concurrent_hashes`](AuthConfig::max_concurrent_hashes) at once.
    async fn off_runtime<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        // The slot goes with the work, not with this future: a caller that
        // goes away cannot stop bcrypt on its blocking thread, and a slot
        // freed then would let a flood of abandoned logins run any number
        // of hashes at once.
        let slot = Arc::clone(&self.inner.hashing)
            .acquire_owned()
            .await
            .map_err(Error::internal_from)?;
        tokio::task::spawn_blocking(move || {
            let done = work();
            drop(slot);
            done
        })
        .await
        .map_err(Error::internal_from)
    }

    async fn hash(&self, password: &str) -> Result<String> {
        let _admitted = self.admit_hash()?;
        // Copies of the password are wiped once hashed.
        let password = Zeroizing::new(password.to_owned());
        let cost = self.inner.config.bcrypt_cost;
        self.off_runtime(move || bcrypt::hash(password.as_bytes(), cost))
            .await?
            .map_err(|source| {
                Error::new(ErrorKind::Internal, "password hashing failed").with_source(source)
            })
    }

    /// Whether `password` matches `hash`. A hash that cannot be read (a
    /// corrupt store) is an error, not a silent mismatch.
    async fn verify_password(&self, password: &str, hash: String) -> Result<bool> {
        let password = Zeroizing::new(password.to_owned());
        self.off_runtime(move || bcrypt::verify(password.as_bytes(), &hash))
            .await?
            .map_err(|source| {
                Error::new(ErrorKind::Internal, "stored password hash is unreadable")
                    .with_source(source)
            })
    }

    /// A hash of nothing anyone knows, checked for unknown users so they take
    /// as long as known ones.
    async fn dummy_hash(&self) -> Result<&String> {
        self.inner
            .dummy_hash
            .get_or_try_init(|| async {
                let unguessable = format!("{:032x}", jwt::random_u128()?);
                self.hash(&unguessable).await
            })
            .await
    }
}

fn locked_error(retry_after: std::time::Duration) -> Error {
    AuthFailure::AccountLocked { retry_after }.into_error()
}

impl fmt::Debug for AuthManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthManager")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}
