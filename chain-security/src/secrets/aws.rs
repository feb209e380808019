//! The AWS Secrets Manager source (feature `aws`).

use std::fmt;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Region};
use aws_sdk_secretsmanager::error::SdkError;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chain_core::{BoxFuture, Error, ErrorKind, Result};

use super::sources::SecretSource;

/// Where and how to reach Secrets Manager.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// Prepended to every secret name (default `modulink/`).
    pub prefix: String,
    /// The region; `None` takes the SDK's default chain.
    pub region: Option<String>,
    /// An endpoint override, e.g. a local `moto_server`.
    pub endpoint: Option<String>,
    /// The version stage to read (Secrets Manager's default is `AWSCURRENT`).
    pub version_stage: Option<String>,
}

impl Default for AwsSettings {
    fn default() -> Self {
        Self {
            prefix: "modulink/".to_owned(),
            region: None,
            endpoint: None,
            version_stage: None,
        }
    }
}

/// Secrets from AWS Secrets Manager: `SecretString` as is, `SecretBinary`
/// as UTF-8 text when it is, base64 otherwise. Wrap it in a
/// [`SecretManager`](super::SecretManager), whose cache keeps calls (and
/// costs) down, as AWS's own caching client does.
pub struct AwsSecretsSource {
    client: Client,
    prefix: String,
    version_stage: Option<String>,
}

impl AwsSecretsSource {
    /// A source using the SDK's default credentials chain.
    pub async fn new(settings: AwsSettings) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let config = loader.load().await;
        Self::from_client(Client::new(&config), settings)
    }

    /// A source over a client you configured (credentials, retries, ...).
    pub fn from_client(client: Client, settings: AwsSettings) -> Self {
        Self {
            client,
            prefix: settings.prefix,
            version_stage: settings.version_stage,
        }
    }

    async fn read(&self, name: &str) -> Result<Option<String>> {
        let id = format!("{}{name}", self.prefix);
        let answer = self
            .client
            .get_secret_value()
            .secret_id(&id)
            .set_version_stage(self.version_stage.clone())
            .send()
            .await;
        let output = match answer {
            Ok(output) => output,
            Err(SdkError::ServiceError(failure))
                if matches!(
                    failure.err(),
                    GetSecretValueError::ResourceNotFoundException(_)
                ) =>
            {
                return Ok(None);
            }
            Err(error) => {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!("AWS Secrets Manager could not read `{id}`"),
                )
                .with_source(error));
            }
        };
        if let Some(text) = output.secret_string() {
            return Ok(Some(text.to_owned()));
        }
        Ok(output
            .secret_binary()
            .map(|blob| match std::str::from_utf8(blob.as_ref()) {
                Ok(text) => text.to_owned(),
                Err(_) => STANDARD.encode(blob.as_ref()),
            }))
    }
}

impl fmt::Debug for AwsSecretsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsSecretsSource")
            .field("prefix", &self.prefix)
            .field("version_stage", &self.version_stage)
            .finish_non_exhaustive()
    }
}

impl SecretSource for AwsSecretsSource {
    fn name(&self) -> &str {
        "AWS Secrets Manager"
    }

    fn fetch<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(self.read(name))
    }
}
