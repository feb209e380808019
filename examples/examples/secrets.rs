//! The seed's secure secret management: secrets from the environment and
//! from static configuration, values encrypted with Fernet and decrypted on
//! read (a value that does not decrypt is an error, never passed on
//! silently as the seed does), a cache, redaction in logs, and injection
//! into a chain as a typed extension rather than a JSON field.
//!
//! Run with `cargo run -p examples --example secrets`.

use std::time::Duration;

use modulink::security::secrets::{
    EnvSource, Fernet, MultiFernet, SecretManager, Secrets, StaticSource,
};
use modulink::{Chain, Context, Error, Result};

#[tokio::main]
async fn main() -> Result<()> {
    let key = Fernet::generate_key()?;
    let fernet = Fernet::new(&key)?;
    let encrypted_db_password = format!("enc:{}", fernet.encrypt(b"s3cr3t-db-password")?);
    let tampered = format!("enc:{}", fernet.encrypt(b"whatever")?.replace('A', "B"));

    let manager = SecretManager::builder()
        .source(EnvSource::with_prefix("MODULINK_EXAMPLE_"))
        .source(StaticSource::new([
            ("database_password", encrypted_db_password.as_str()),
            ("payment_api_key", "sk_test_4f9a8c2e"),
            ("broken", tampered.as_str()),
        ]))
        .fernet(MultiFernet::new(vec![Fernet::new(&key)?])?)
        .cache(Duration::from_secs(300), 100)
        .build();

    let password = manager.get("database_password").await?;
    println!(
        "database_password decrypted, {} characters; as logged: {password:?}",
        password.expose().len()
    );
    match manager.get("broken").await {
        Ok(_) => println!("tampered secret accepted (unexpected)"),
        Err(error) => println!("tampered secret: {error:#}"),
    }
    match manager.get("missing").await {
        Ok(_) => println!("missing secret found (unexpected)"),
        Err(error) => println!("missing secret: {error:#}"),
    }

    let checkout = Chain::named("checkout")
        .link(manager.inject(["payment_api_key"]))
        .link_sync(|ctx: Context| {
            let ending = {
                let secrets = ctx
                    .ext::<Secrets>()
                    .ok_or_else(|| Error::internal("secrets were injected"))?;
                let key = secrets
                    .get("payment_api_key")
                    .ok_or_else(|| Error::internal("the key is there"))?;
                key.expose()[key.expose().len().saturating_sub(4)..].to_owned()
            };
            Ok(ctx.with("charged_with_key_ending", ending))
        });
    let out = checkout
        .execute(Context::new().with("order_id", "ORD-1"))
        .await?;
    println!("checkout context (no secret in it): {}", out.to_json());
    println!("secrets cached: {}", manager.cached_count());
    Ok(())
}
