//! Secrets: a redacting [`Secret`] type, [`Fernet`] encryption with key
//! rotation, and a caching [`SecretManager`] over environment, static and
//! (feature `aws`) AWS Secrets Manager sources, with a middleware injecting
//! secrets as a typed extension.
//!
//! Secrets never travel in a context's JSON fields (which are serialized,
//! logged and sent to services); they live in the [`Secrets`] extension.

#[cfg(feature = "aws")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
mod aws;
mod fernet;
mod manager;
mod secret;
mod sources;

#[cfg(feature = "aws")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
pub use aws::{AwsSecretsSource, AwsSettings};
pub use fernet::{Fernet, FernetFailure, MultiFernet};
pub use manager::{ENCRYPTED_PREFIX, InjectSecrets, SecretManager, SecretManagerBuilder, Secrets};
pub use secret::{REDACTED, Secret};
pub use sources::{EnvSource, SecretSource, StaticSource};
