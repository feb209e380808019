use std::collections::HashMap;
use std::fmt;

use chain_core::{BoxFuture, Result};

/// Somewhere secrets are looked up by name.
pub trait SecretSource: Send + Sync + 'static {
    /// The source's name, used in errors.
    fn name(&self) -> &str;

    /// The raw value of `name`, or `None` if this source does not have it.
    fn fetch<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>>>;
}

/// Environment variables: `payment-api-key` is read from
/// `PAYMENT_API_KEY` (upper-cased, `-` and `.` turned into `_`), after an
/// optional prefix such as `MODULINK_`.
#[derive(Debug, Clone, Default)]
pub struct EnvSource {
    prefix: String,
}

impl EnvSource {
    /// Variables named after the secret.
    pub fn new() -> Self {
        Self::default()
    }

    /// Variables named `{prefix}{NAME}`.
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The variable read for `name`.
    pub fn variable(&self, name: &str) -> String {
        let normalized: String = name
            .chars()
            .map(|c| {
                if c == '-' || c == '.' {
                    '_'
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect();
        format!("{}{normalized}", self.prefix)
    }
}

impl SecretSource for EnvSource {
    fn name(&self) -> &str {
        "environment"
    }

    fn fetch<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(std::future::ready(Ok(
            std::env::var(self.variable(name)).ok()
        )))
    }
}

/// Secrets given in code or loaded from a file the application already
/// read; also what tests use.
#[derive(Default, Clone)]
pub struct StaticSource {
    values: HashMap<String, String>,
}

impl StaticSource {
    /// The given name-value pairs.
    pub fn new<I, K, V>(values: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            values: values
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

impl fmt::Debug for StaticSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticSource")
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SecretSource for StaticSource {
    fn name(&self) -> &str {
        "static"
    }

    fn fetch<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(std::future::ready(Ok(self.values.get(name).cloned())))
    }
}
