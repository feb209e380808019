use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chain_core::{BoxFuture, Error, ErrorKind, HasExtensions, Link, Middleware, Next, Result};

use super::fernet::MultiFernet;
use super::secret::Secret;
use super::sources::SecretSource;

/// Prefix of values encrypted with Fernet.
pub const ENCRYPTED_PREFIX: &str = "enc:";

/// Looks secrets up in its sources, in order, decrypts `enc:` values and
/// caches the results for a while.
///
/// - A secret no source has is a [`NotFound`](ErrorKind::NotFound) error
///   naming it, never an empty string; an empty value is a
///   [`Validation`](ErrorKind::Validation) error.
/// - An `enc:` value that does not decrypt is an error, never the
///   ciphertext returned as if it were the value, which is a security bug (the ciphertext then
///   travels as if it were the secret).
/// - Values are cached for 300 s by default (AWS's caching client's
///   figure), at most 1,000 of them; [`refresh`](Self::refresh) reloads one.
///
/// Configure it with [`SecretManager::builder`] (or the same methods on a
/// manager, each returning a new one that keeps every setting). Clones
/// share the sources and the cache.
///
/// ```
/// use chain_security::secrets::{Fernet, MultiFernet, SecretManager, StaticSource};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let key = Fernet::new(&Fernet::generate_key()?)?;
/// let token = key.encrypt(b"sk_live_123")?;
/// let secrets = SecretManager::builder()
///     .source(StaticSource::new([("payment_api_key", format!("enc:{token}"))]))
///     .fernet(MultiFernet::new(vec![key])?)
///     .build();
/// assert_eq!(secrets.get("payment_api_key").await?.expose(), "sk_live_123");
/// assert!(secrets.get("missing").await.unwrap_err().to_string().contains("`missing`"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SecretManager {
    inner: Arc<Inner>,
}

struct Inner {
    settings: SecretManagerBuilder,
    cache: Mutex<HashMap<String, (Secret, Instant)>>,
}

/// Configures a [`SecretManager`]: its sources in order, its Fernet keys
/// and its cache. Made by [`SecretManager::builder`].
#[derive(Clone)]
pub struct SecretManagerBuilder {
    sources: Vec<Arc<dyn SecretSource>>,
    fernet: Option<MultiFernet>,
    ttl: Duration,
    capacity: usize,
}

impl Default for SecretManagerBuilder {
    fn default() -> Self {
        Self {
            sources: Vec::new(),
            fernet: None,
            ttl: Duration::from_secs(300),
            capacity: 1_000,
        }
    }
}

impl SecretManagerBuilder {
    /// Adds a source, asked after the ones added before.
    #[must_use]
    pub fn source(mut self, source: impl SecretSource) -> Self {
        self.sources.push(Arc::new(source));
        self
    }

    /// Decrypts `enc:` values with these keys.
    #[must_use]
    pub fn fernet(mut self, keys: MultiFernet) -> Self {
        self.fernet = Some(keys);
        self
    }

    /// How long values are cached (zero: not at all) and how many (at least
    /// one).
    #[must_use]
    pub fn cache(mut self, ttl: Duration, capacity: usize) -> Self {
        self.ttl = ttl;
        self.capacity = capacity.max(1);
        self
    }

    /// The manager, with an empty cache.
    pub fn build(self) -> SecretManager {
        SecretManager {
            inner: Arc::new(Inner {
                settings: self,
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl fmt::Debug for SecretManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretManagerBuilder")
            .field(
                "sources",
                &self.sources.iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .field("fernet", &self.fernet.is_some())
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Default for SecretManager {
    fn default() -> Self {
        Self::new()
    }
}

impl SecretManager {
    /// A builder with no sources yet and a 300 s cache of at most 1,000
    /// secrets.
    pub fn builder() -> SecretManagerBuilder {
        SecretManagerBuilder::default()
    }

    /// A manager with no sources yet; add them with
    /// [`source`](Self::source), or use [`builder`](Self::builder).
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// This manager's settings plus `source` (asked after the others), as a
    /// new manager with an empty cache. Every setting is kept, also when
    /// called on a clone: the clone and the original then differ only by
    /// the added source. (Configuring a clone used to start from nothing and
    /// silently drop every source.)
    #[must_use]
    pub fn source(self, source: impl SecretSource) -> Self {
        self.to_builder().source(source).build()
    }

    /// This manager's settings, decrypting `enc:` values with `keys`; see
    /// [`source`](Self::source).
    #[must_use]
    pub fn fernet(self, keys: MultiFernet) -> Self {
        self.to_builder().fernet(keys).build()
    }

    /// This manager's settings with this cache; see
    /// [`source`](Self::source).
    #[must_use]
    pub fn cache(self, ttl: Duration, capacity: usize) -> Self {
        self.to_builder().cache(ttl, capacity).build()
    }

    /// A builder holding this manager's settings (sources, keys, cache
    /// bounds), to build another manager from; this one is unchanged.
    pub fn to_builder(&self) -> SecretManagerBuilder {
        self.inner.settings.clone()
    }

    /// The secret `name`.
    ///
    /// # Errors
    ///
    /// [`NotFound`](ErrorKind::NotFound) naming it if no source has it;
    /// [`Validation`](ErrorKind::Validation) if it is empty or an `enc:`
    /// value that does not decrypt (or there is no key to decrypt it); a
    /// source's own failure.
    pub async fn get(&self, name: &str) -> Result<Secret> {
        if let Some(secret) = self.cached(name) {
            return Ok(secret);
        }
        let secret = self.load(name).await?;
        self.remember(name, &secret);
        Ok(secret)
    }

    /// Reloads `name` from the sources, bypassing the cache.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    pub async fn refresh(&self, name: &str) -> Result<Secret> {
        self.entries().remove(name);
        self.get(name).await
    }

    /// Secrets currently cached.
    pub fn cached_count(&self) -> usize {
        self.entries().len()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Secret, Instant)>> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn cached(&self, name: &str) -> Option<Secret> {
        let cache = self.entries();
        let (secret, loaded) = cache.get(name)?;
        (loaded.elapsed() < self.inner.settings.ttl).then(|| secret.clone())
    }

    fn remember(&self, name: &str, secret: &Secret) {
        if self.inner.settings.ttl.is_zero() {
            return;
        }
        let mut cache = self.entries();
        if cache.len() >= self.inner.settings.capacity && !cache.contains_key(name) {
            let oldest = cache
                .iter()
                .min_by_key(|(_, (_, loaded))| *loaded)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                cache.remove(&oldest);
            }
        }
        cache.insert(name.to_owned(), (secret.clone(), Instant::now()));
    }

    async fn load(&self, name: &str) -> Result<Secret> {
        for source in &self.inner.settings.sources {
            let Some(value) = source.fetch(name).await? else {
                continue;
            };
            if value.is_empty() {
                return Err(Error::validation(format!(
                    "secret `{name}` from {} is empty",
                    source.name()
                )));
            }
            return match value.strip_prefix(ENCRYPTED_PREFIX) {
                Some(token) => self.decrypt(name, token),
                None => Ok(Secret::new(value)),
            };
        }
        let searched: Vec<&str> = self
            .inner
            .settings
            .sources
            .iter()
            .map(|source| source.name())
            .collect();
        Err(Error::not_found(format!(
            "secret `{name}` not found in {}",
            searched.join(", ")
        )))
    }

    fn decrypt(&self, name: &str, token: &str) -> Result<Secret> {
        let keys = self.inner.settings.fernet.as_ref().ok_or_else(|| {
            Error::validation(format!(
                "secret `{name}` is encrypted but no Fernet key is configured"
            ))
        })?;
        let plaintext = keys.decrypt(token, None).map_err(|error| {
            Error::new(
                ErrorKind::Validation,
                format!("secret `{name}` does not decrypt: {}", error.message()),
            )
            .with_source(error)
        })?;
        let text = String::from_utf8(plaintext).map_err(|_| {
            Error::validation(format!(
                "secret `{name}` decrypts to bytes that are not UTF-8"
            ))
        })?;
        if text.is_empty() {
            return Err(Error::validation(format!("secret `{name}` is empty")));
        }
        Ok(Secret::new(text))
    }

    /// Middleware (and link) loading `names` into the context's [`Secrets`]
    /// extension, never into its JSON fields.
    pub fn inject<I, S>(&self, names: I) -> InjectSecrets
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        InjectSecrets {
            manager: self.clone(),
            names: names.into_iter().map(Into::into).collect(),
        }
    }
}

impl fmt::Debug for SecretManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretManager")
            .field(
                "sources",
                &self
                    .inner
                    .settings
                    .sources
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>(),
            )
            .field("ttl", &self.inner.settings.ttl)
            .field("cached", &self.cached_count())
            .finish()
    }
}

/// The secrets injected into a context, by name.
#[derive(Debug, Clone, Default)]
pub struct Secrets(HashMap<String, Secret>);

impl Secrets {
    /// The secret `name`, if injected.
    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.get(name)
    }
}

/// Made by [`SecretManager::inject`].
#[derive(Debug, Clone)]
pub struct InjectSecrets {
    manager: SecretManager,
    names: Vec<String>,
}

impl InjectSecrets {
    async fn load<C: HasExtensions>(&self, mut ctx: C) -> Result<C> {
        let mut secrets = ctx.extensions_mut().remove::<Secrets>().unwrap_or_default();
        for name in &self.names {
            let secret = self.manager.get(name).await?;
            secrets.0.insert(name.clone(), secret);
        }
        ctx.extensions_mut().insert(secrets);
        Ok(ctx)
    }
}

impl<C: HasExtensions + Send + 'static> Middleware<C> for InjectSecrets {
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        Box::pin(async move { next.run(self.load(ctx).await?).await })
    }

    fn name(&self) -> Cow<'static, str> {
        "inject_secrets".into()
    }
}

impl<C: HasExtensions + Send + 'static> Link<C> for InjectSecrets {
    fn call(&self, ctx: C) -> BoxFuture<'_, Result<C>> {
        Box::pin(self.load(ctx))
    }

    fn name(&self) -> Cow<'static, str> {
        "inject_secrets".into()
    }
}
