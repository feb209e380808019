//! Fernet against the spec's vectors, and the secret manager.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use chain_core::{BoxFuture, Chain, Context, ErrorKind};
use chain_security::secrets::{
    EnvSource, Fernet, FernetFailure, MultiFernet, Secret, SecretManager, SecretSource, Secrets,
    StaticSource,
};

// The vector of the Fernet specification (github.com/fernet/spec,
// generate.json and verify.json): "hello" at 1985-10-26T01:20:00-07:00
// with IV 0..16.
const SPEC_SECRET: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
const SPEC_TOKEN: &str = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
const SPEC_TIME: u64 = 499_162_800;
const SPEC_IV: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

fn spec_key() -> Fernet {
    Fernet::new(SPEC_SECRET).unwrap()
}

/// The `fernet` crate cannot build a token from a fixed IV, so the spec's
/// generation vector is checked the other way round: the spec's token
/// decrypts at the spec's time, and a token made at that time (with a
/// random IV) has the spec's layout, time and plaintext.
#[test]
fn generates_tokens_of_the_spec_format() {
    let key = spec_key();
    assert_eq!(
        key.decrypt_at(SPEC_TOKEN, None, SPEC_TIME).unwrap(),
        b"hello"
    );
    let token = key.encrypt_at(b"hello", SPEC_TIME).unwrap();
    let raw = URL_SAFE.decode(&token).unwrap();
    let spec = URL_SAFE.decode(SPEC_TOKEN).unwrap();
    assert_eq!(raw.len(), spec.len());
    assert_eq!(raw[..9], spec[..9], "version and time");
    assert_ne!(raw[9..25], SPEC_IV, "the IV is random");
    assert_eq!(
        key.decrypt_at(&token, Some(60), SPEC_TIME + 1).unwrap(),
        b"hello"
    );
}

#[test]
fn verifies_the_spec_token() {
    assert_eq!(
        spec_key()
            .decrypt_at(SPEC_TOKEN, Some(60), SPEC_TIME + 1)
            .unwrap(),
        b"hello"
    );
}

fn failure_of(token: &str, ttl: Option<u64>, now: u64) -> FernetFailure {
    let err = spec_key().decrypt_at(token, ttl, now).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    *err.downcast_source::<FernetFailure>().unwrap()
}

/// A token with the given parts, correctly signed with the spec key's
/// signing half: for payload errors that only show after the MAC passes.
fn signed(parts: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let key = URL_SAFE.decode(SPEC_SECRET).unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key[..16]).unwrap();
    mac.update(parts);
    let mut token = parts.to_vec();
    token.extend_from_slice(&mac.finalize().into_bytes());
    URL_SAFE.encode(token)
}

/// The spec's invalid cases (invalid.json), rebuilt from the valid token.
#[test]
fn refuses_the_spec_invalid_cases() {
    let now = SPEC_TIME + 1;
    let raw = URL_SAFE.decode(SPEC_TOKEN).unwrap();

    let mut wrong_mac = raw.clone();
    *wrong_mac.last_mut().unwrap() ^= 1;
    assert_eq!(
        failure_of(&URL_SAFE.encode(&wrong_mac), Some(60), now),
        FernetFailure::BadSignature
    );

    assert_eq!(
        failure_of(&URL_SAFE.encode(&raw[..40]), Some(60), now),
        FernetFailure::Malformed
    );
    assert_eq!(
        failure_of("%%%%%%%%%%%%%%%%", Some(60), now),
        FernetFailure::Malformed
    );

    let body = &raw[..raw.len() - 32];
    let two_blocks = URL_SAFE
        .decode(spec_key().encrypt_at(&[7; 20], SPEC_TIME).unwrap())
        .unwrap();
    let ragged = signed(&two_blocks[..two_blocks.len() - 32 - 1]);
    assert_eq!(
        failure_of(&ragged, Some(60), now),
        FernetFailure::BadPayload,
        "payload not a multiple of the block size"
    );

    // A correctly signed token whose IV breaks the padding: the crate does
    // not tell this from a bad signature.
    let mut wrong_iv = body.to_vec();
    wrong_iv[24] ^= 0xff; // the IV's last byte lands on the padding
    assert_eq!(
        failure_of(&signed(&wrong_iv), Some(60), now),
        FernetFailure::BadSignature,
        "incorrect IV causes a padding error"
    );

    let mut future = body.to_vec();
    future[1..9].copy_from_slice(&(SPEC_TIME + 3600).to_be_bytes());
    assert_eq!(
        failure_of(&signed(&future), Some(60), now),
        FernetFailure::FromTheFuture
    );

    assert_eq!(
        failure_of(SPEC_TOKEN, Some(60), SPEC_TIME + 61),
        FernetFailure::Expired
    );

    let mut version = body.to_vec();
    version[0] = 0x81;
    assert_eq!(
        failure_of(&signed(&version), Some(60), now),
        FernetFailure::UnknownVersion
    );
}

/// Inputs at the edges of `u64` that make the crate's unchecked additions
/// overflow are refused or decrypted, never a panic.
#[test]
fn extreme_times_and_lifetimes_do_not_panic() {
    let raw = URL_SAFE.decode(SPEC_TOKEN).unwrap();
    let body = &raw[..raw.len() - 32];
    let mut far = body.to_vec();
    far[1..9].copy_from_slice(&u64::MAX.to_be_bytes());
    let far = signed(&far);
    assert_eq!(
        failure_of(&far, Some(u64::MAX), SPEC_TIME),
        FernetFailure::FromTheFuture
    );
    assert_eq!(
        spec_key()
            .decrypt_at(&far, Some(u64::MAX), u64::MAX)
            .unwrap(),
        b"hello",
        "dated at the end of time, read at the end of time"
    );
    assert_eq!(
        spec_key()
            .decrypt_at(SPEC_TOKEN, Some(u64::MAX), u64::MAX)
            .unwrap(),
        b"hello"
    );
    assert_eq!(
        failure_of(SPEC_TOKEN, Some(0), u64::MAX),
        FernetFailure::Expired
    );
    let rotation = MultiFernet::new(vec![spec_key()]).unwrap();
    assert_eq!(
        rotation
            .decrypt_at(SPEC_TOKEN, Some(u64::MAX), u64::MAX)
            .unwrap(),
        b"hello"
    );
}

#[test]
fn keys_rotate() {
    let old = Fernet::new(&Fernet::generate_key().unwrap()).unwrap();
    let new = Fernet::new(&Fernet::generate_key().unwrap()).unwrap();
    let old_token = old.encrypt(b"secret").unwrap();
    let rotation = MultiFernet::new(vec![new.clone(), old]).unwrap();
    assert_eq!(rotation.decrypt(&old_token, None).unwrap(), b"secret");
    let rotated = rotation.rotate(&old_token).unwrap();
    assert_eq!(new.decrypt(&rotated, None).unwrap(), b"secret");
    assert!(MultiFernet::new(vec![]).is_err());
    assert!(Fernet::new("too short").unwrap_err().is_validation());
}

#[tokio::test]
async fn environment_names_are_upper_cased_with_underscores() {
    assert_eq!(
        EnvSource::new().variable("payment-api.key"),
        "PAYMENT_API_KEY"
    );
    assert_eq!(
        EnvSource::with_prefix("MODULINK_").variable("db-url"),
        "MODULINK_DB_URL"
    );
    // Cargo sets CARGO_MANIFEST_DIR for every test process.
    let secrets = SecretManager::builder().source(EnvSource::new()).build();
    let dir = secrets.get("cargo-manifest-dir").await.unwrap();
    assert_eq!(dir.expose(), env!("CARGO_MANIFEST_DIR"));
}

#[tokio::test]
async fn missing_empty_and_undecryptable_secrets_are_errors() {
    let key = Fernet::new(&Fernet::generate_key().unwrap()).unwrap();
    let other = Fernet::new(&Fernet::generate_key().unwrap()).unwrap();
    let secrets = SecretManager::builder()
        .source(StaticSource::new([
            ("empty", String::new()),
            (
                "good",
                format!("enc:{}", key.encrypt(b"sk_live_1").unwrap()),
            ),
            (
                "foreign",
                format!("enc:{}", other.encrypt(b"sk_live_2").unwrap()),
            ),
            ("garbage", "enc:not-a-token".to_owned()),
        ]))
        .source(EnvSource::new())
        .fernet(MultiFernet::new(vec![key]).unwrap())
        .build();

    assert_eq!(secrets.get("good").await.unwrap().expose(), "sk_live_1");

    let missing = secrets.get("no-such-secret").await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    assert!(
        missing
            .to_string()
            .contains("`no-such-secret` not found in static, environment"),
        "{missing}"
    );

    assert!(
        secrets
            .get("empty")
            .await
            .unwrap_err()
            .to_string()
            .contains("is empty")
    );
    for name in ["foreign", "garbage"] {
        let err = secrets.get(name).await.unwrap_err();
        assert!(err.is_validation(), "{err}");
        assert!(err.to_string().contains("does not decrypt"), "{err}");
        assert!(!err.to_string().contains("sk_live"), "{err}");
    }

    let no_key = SecretManager::builder()
        .source(StaticSource::new([("x", "enc:abc")]))
        .build();
    assert!(
        no_key
            .get("x")
            .await
            .unwrap_err()
            .to_string()
            .contains("no Fernet key")
    );
}

/// Counts fetches, to see the cache at work.
struct Counting(Arc<AtomicUsize>);

impl SecretSource for Counting {
    fn name(&self) -> &str {
        "counting"
    }

    fn fetch<'a>(&'a self, name: &'a str) -> BoxFuture<'a, chain_core::Result<Option<String>>> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(std::future::ready(Ok(Some(format!("{name}-v{n}")))))
    }
}

#[tokio::test]
async fn values_are_cached_until_refreshed_and_the_cache_is_bounded() {
    let fetches = Arc::new(AtomicUsize::new(0));
    let secrets = SecretManager::builder()
        .source(Counting(fetches.clone()))
        .cache(Duration::from_secs(300), 2)
        .build();
    assert_eq!(secrets.get("a").await.unwrap().expose(), "a-v1");
    assert_eq!(secrets.get("a").await.unwrap().expose(), "a-v1");
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(secrets.refresh("a").await.unwrap().expose(), "a-v2");
    secrets.get("b").await.unwrap();
    secrets.get("c").await.unwrap();
    assert_eq!(secrets.cached_count(), 2);

    let uncached = SecretManager::builder()
        .source(Counting(Arc::new(AtomicUsize::new(0))))
        .cache(Duration::ZERO, 10)
        .build();
    assert_ne!(
        uncached.get("a").await.unwrap(),
        uncached.get("a").await.unwrap()
    );
}

/// A secret's value is wiped from memory when its last clone goes, is
/// compared in constant time, reads from JSON, and never shows.
#[test]
fn secrets_redact_compare_and_deserialize() {
    let key: Secret = serde_json::from_str("\"sk_live_9\"").unwrap();
    assert_eq!(key.expose(), "sk_live_9");
    assert_eq!(key, Secret::new("sk_live_9"));
    assert_ne!(key, Secret::new("sk_live_8"));
    assert_ne!(key, Secret::new("sk_live_99"));
    let shown = format!("{key} {key:?} {}", serde_json::to_string(&key).unwrap());
    assert!(!shown.contains("sk_live"), "{shown}");
}

/// The manager is built once, by its builder: a configured manager has no
/// method that could configure a clone of it and silently drop its sources.
#[tokio::test]
async fn a_built_manager_keeps_its_sources_in_every_clone() {
    let secrets = SecretManager::builder()
        .source(StaticSource::new([("a", "1")]))
        .build();
    let clone = secrets.clone();
    assert_eq!(clone.get("a").await.unwrap().expose(), "1");
    assert_eq!(secrets.get("a").await.unwrap().expose(), "1");
    // Building again from the built manager's settings keeps them all.
    let more = secrets
        .to_builder()
        .source(StaticSource::new([("b", "2")]))
        .build();
    assert_eq!(more.get("a").await.unwrap().expose(), "1");
    assert_eq!(more.get("b").await.unwrap().expose(), "2");
    assert!(secrets.get("b").await.is_err(), "the original is unchanged");

    // The same through the manager's own methods, on a clone: every source
    // is kept (configuring a clone used to drop them all).
    let configured = SecretManager::new().source(StaticSource::new([("a", "1")]));
    let extended = configured.clone().source(StaticSource::new([("b", "2")]));
    assert_eq!(extended.get("a").await.unwrap().expose(), "1");
    assert_eq!(extended.get("b").await.unwrap().expose(), "2");
    assert_eq!(configured.get("a").await.unwrap().expose(), "1");
    assert!(configured.get("b").await.is_err());
}

#[tokio::test]
async fn injected_secrets_live_in_an_extension_and_never_show() {
    let secrets = SecretManager::builder()
        .source(StaticSource::new([("payment_api_key", "sk_live_42")]))
        .build();
    let chain = Chain::new()
        .around(secrets.inject(["payment_api_key"]))
        .link_sync(|ctx: Context| {
            let key = ctx
                .ext::<Secrets>()
                .and_then(|s| s.get("payment_api_key"))
                .cloned();
            Ok(ctx.with("key_length", key.map_or(0, |k| k.expose().len())))
        });
    let out = chain.execute(Context::new()).await.unwrap();
    assert_eq!(out.get::<usize>("key_length").unwrap(), Some(10));
    let shown = format!("{} {:?} {:?}", out.to_json(), out, out.ext::<Secrets>());
    assert!(!shown.contains("sk_live_42"), "{shown}");

    let secret = Secret::new("sk_live_42");
    assert_eq!(serde_json::to_string(&secret).unwrap(), "\"[REDACTED]\"");
}
