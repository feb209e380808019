use std::collections::HashMap;
use std::fmt;
use std::sync::{PoisonError, RwLock};
use std::time::SystemTime;

use chain_core::{BoxFuture, Error, Result};
use serde::{Deserialize, Serialize};

/// A user's role. Roles other than the four built in are `Custom`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Role {
    /// Administrators.
    Admin,
    /// Ordinary users.
    User,
    /// Users who may only read.
    ReadOnly,
    /// Other services.
    Service,
    /// Any other role, by name.
    Custom(String),
}

impl Role {
    /// The role's name as it appears in tokens.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Admin => "admin",
            Self::User => "user",
            Self::ReadOnly => "readonly",
            Self::Service => "service",
            Self::Custom(name) => name,
        }
    }
}

impl From<String> for Role {
    fn from(name: String) -> Self {
        match name.as_str() {
            "admin" => Self::Admin,
            "user" => Self::User,
            "readonly" => Self::ReadOnly,
            "service" => Self::Service,
            _ => Self::Custom(name),
        }
    }
}

impl From<&str> for Role {
    fn from(name: &str) -> Self {
        Self::from(name.to_owned())
    }
}

impl From<Role> for String {
    fn from(role: Role) -> Self {
        role.as_str().to_owned()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored user. The password is only ever kept as a bcrypt hash.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The user's name.
    pub username: String,
    /// The bcrypt hash of the password.
    pub password_hash: String,
    /// The user's role.
    pub role: Role,
    /// Inactive users cannot log in.
    pub active: bool,
    /// When the user was created.
    pub created_at: SystemTime,
    /// When the user last logged in successfully, if ever.
    pub last_login: Option<SystemTime>,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("username", &self.username)
            .field("role", &self.role)
            .field("active", &self.active)
            .field("created_at", &self.created_at)
            .field("last_login", &self.last_login)
            .finish_non_exhaustive()
    }
}

/// Where users are kept. Implement it over a database; [`MemoryUserStore`]
/// is the thread-safe in-memory default.
///
/// The methods are async, so a store can query a database without holding
/// up the runtime; they return boxed futures so the trait stays usable as
/// `dyn UserStore`.
///
/// ```
/// use chain_core::{BoxFuture, Result};
/// use chain_security::auth::{UserRecord, UserStore};
///
/// /// A read-only store in front of a directory service (elided here).
/// struct Directory;
///
/// impl UserStore for Directory {
///     fn get<'a>(&'a self, username: &'a str) -> BoxFuture<'a, Result<Option<UserRecord>>> {
///         Box::pin(async move {
///             let _ = username; // e.g. `SELECT ... WHERE username = $1`
///             Ok(None)
///         })
///     }
///     fn insert(&self, user: UserRecord) -> BoxFuture<'_, Result<()>> {
///         Box::pin(async move {
///             Err(chain_core::Error::forbidden(format!("the directory is read-only: {}", user.username)))
///         })
///     }
///     fn update(&self, user: UserRecord) -> BoxFuture<'_, Result<()>> {
///         self.insert(user)
///     }
///     fn record_login<'a>(&'a self, _: &'a str, _: std::time::SystemTime) -> BoxFuture<'a, Result<()>> {
///         Box::pin(async { Ok(()) }) // the directory keeps its own login times
///     }
///     fn list(&self) -> BoxFuture<'_, Result<Vec<UserRecord>>> {
///         Box::pin(async { Ok(Vec::new()) })
///     }
/// }
/// ```
pub trait UserStore: Send + Sync + 'static {
    /// The user named `username`.
    ///
    /// # Errors
    ///
    /// The store's own failures.
    fn get<'a>(&'a self, username: &'a str) -> BoxFuture<'a, Result<Option<UserRecord>>>;

    /// Adds a new user.
    ///
    /// # Errors
    ///
    /// A [`Conflict`](chain_core::ErrorKind::Conflict) error if the name is
    /// taken, or the store's own failures.
    fn insert(&self, user: UserRecord) -> BoxFuture<'_, Result<()>>;

    /// Replaces a user, e.g. to deactivate them.
    ///
    /// # Errors
    ///
    /// A [`NotFound`](chain_core::ErrorKind::NotFound) error if there is no
    /// such user, or the store's own failures.
    fn update(&self, user: UserRecord) -> BoxFuture<'_, Result<()>>;

    /// Every user, for administration.
    ///
    /// # Errors
    ///
    /// The store's own failures.
    fn list(&self) -> BoxFuture<'_, Result<Vec<UserRecord>>>;

    /// Records a successful login at `at` in the user's `last_login`.
    ///
    /// The default reads the record and writes it back whole, which can
    /// undo a change made in between (a deactivation, say). A store over a
    /// database should write the one column instead
    /// (`UPDATE users SET last_login = $2 WHERE username = $1`), as
    /// [`MemoryUserStore`] does under its lock.
    ///
    /// # Errors
    ///
    /// A [`NotFound`](chain_core::ErrorKind::NotFound) error if there is no
    /// such user, or the store's own failures.
    fn record_login<'a>(&'a self, username: &'a str, at: SystemTime) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let user = self
                .get(username)
                .await?
                .ok_or_else(|| Error::not_found(format!("no user `{username}`")))?;
            self.update(UserRecord {
                last_login: Some(at),
                ..user
            })
            .await
        })
    }
}

/// Users in memory, behind a read-write lock.
#[derive(Debug, Default)]
pub struct MemoryUserStore {
    users: RwLock<HashMap<String, UserRecord>>,
}

impl MemoryUserStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl MemoryUserStore {
    fn get_now(&self, username: &str) -> Option<UserRecord> {
        self.users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(username)
            .cloned()
    }

    fn insert_now(&self, user: UserRecord) -> Result<()> {
        let mut users = self.users.write().unwrap_or_else(PoisonError::into_inner);
        if users.contains_key(&user.username) {
            return Err(Error::conflict(format!(
                "user `{}` already exists",
                user.username
            )));
        }
        users.insert(user.username.clone(), user);
        Ok(())
    }

    fn update_now(&self, user: UserRecord) -> Result<()> {
        let mut users = self.users.write().unwrap_or_else(PoisonError::into_inner);
        match users.get_mut(&user.username) {
            Some(slot) => {
                *slot = user;
                Ok(())
            }
            None => Err(Error::not_found(format!("no user `{}`", user.username))),
        }
    }

    fn record_login_now(&self, username: &str, at: SystemTime) -> Result<()> {
        let mut users = self.users.write().unwrap_or_else(PoisonError::into_inner);
        match users.get_mut(username) {
            Some(user) => {
                user.last_login = Some(at);
                Ok(())
            }
            None => Err(Error::not_found(format!("no user `{username}`"))),
        }
    }

    fn list_now(&self) -> Vec<UserRecord> {
        let mut users: Vec<UserRecord> = self
            .users
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        users.sort_by(|a, b| a.username.cmp(&b.username));
        users
    }
}

/// Every operation completes at once; the lock is never held across an
/// await.
impl UserStore for MemoryUserStore {
    fn get<'a>(&'a self, username: &'a str) -> BoxFuture<'a, Result<Option<UserRecord>>> {
        Box::pin(std::future::ready(Ok(self.get_now(username))))
    }

    fn insert(&self, user: UserRecord) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(self.insert_now(user)))
    }

    fn update(&self, user: UserRecord) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(self.update_now(user)))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<UserRecord>>> {
        Box::pin(std::future::ready(Ok(self.list_now())))
    }

    fn record_login<'a>(&'a self, username: &'a str, at: SystemTime) -> BoxFuture<'a, Result<()>> {
        Box::pin(std::future::ready(self.record_login_now(username, at)))
    }
}
