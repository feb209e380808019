//! The oracles of ModuLink's fuzz targets.
//!
//! Each function takes the fuzzer's bytes, runs one part of the library on
//! them and panics when the library breaks a promise: not only when it
//! panics itself, but when a sanitized string still holds a script, an
//! altered token verifies, a secret shows in `Debug` output, or a context
//! does not give back what it was built from.
//!
//! The AFL binaries in `fuzz/afl` call these functions; the tests in
//! `fuzz/tests` replay the saved corpora and every crash found through the
//! same functions, so CI checks them as ordinary tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context as TaskContext, Poll, Waker};

use chain_core::{Context, Link, RequestMeta};
use chain_security::auth::{Claims, JwtKeys, JwtSettings, Role, SigningKey};
use chain_security::secrets::{Fernet, MultiFernet, Secret};
use chain_security::validation::{
    DEFAULT_ALLOWED_TAGS, REFUSED_TAGS, Sanitize, escape_html, is_email, is_ip, is_phone, is_url,
    is_username, looks_like_sql_injection, looks_like_xss, sanitize_html, validate_input,
};
use models::{Comment, UserRegistration};
use serde_json::Value;

/// The cookbook's models, which live with the workspace's examples.
#[path = "../../examples/src/models.rs"]
pub mod models;

/// A target's oracle: panics when the library breaks a promise on `data`.
pub type Oracle = fn(&[u8]);

/// The targets, by name: what `fuzz/run.sh` and the replay tests know.
pub const TARGETS: [(&str, Oracle); 6] = [
    ("jwt_verify", jwt_verify),
    ("fernet_decrypt", fernet_decrypt),
    ("validators", validators),
    ("sanitize", sanitize),
    ("validate_input", validate_input_json),
    ("context_json", context_json),
];

/// Runs a future that never waits (every link here is synchronous inside).
fn run_now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut TaskContext::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a synchronous link returned Pending"),
    }
}

// ---------------------------------------------------------------- JWT ----

struct Tokens {
    keys: JwtKeys,
    /// One valid token per algorithm, deterministic: fixed claims, and
    /// every algorithm here signs deterministically (HMAC, RSA PKCS#1 v1.5,
    /// RFC 6979 ECDSA, Ed25519).
    valid: Vec<String>,
}

const PEM_RSA_PRIVATE: &[u8] = include_bytes!("../../chain-security/tests/keys/rsa_private.pem");
const PEM_RSA_PUBLIC: &[u8] = include_bytes!("../../chain-security/tests/keys/rsa_public.pem");
const PEM_EC_PRIVATE: &[u8] = include_bytes!("../../chain-security/tests/keys/ec_private.pem");
const PEM_EC_PUBLIC: &[u8] = include_bytes!("../../chain-security/tests/keys/ec_public.pem");
const PEM_ED_PRIVATE: &[u8] = include_bytes!("../../chain-security/tests/keys/ed_private.pem");
const PEM_ED_PUBLIC: &[u8] = include_bytes!("../../chain-security/tests/keys/ed_public.pem");

fn fixed_claims() -> Claims {
    Claims {
        sub: "ada".to_owned(),
        role: Role::User,
        iat: 1_700_000_000,
        // 2096: valid for as long as the corpus is.
        exp: 4_000_000_000,
        iss: Some("modulink".to_owned()),
        aud: Some("fuzz".to_owned()),
        nbf: None,
        jti: Some("00000000000000000000000000000001".to_owned()),
    }
}

fn tokens() -> &'static Tokens {
    static TOKENS: OnceLock<Tokens> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let settings = JwtSettings {
            issuer: Some("modulink".to_owned()),
            audience: Some("fuzz".to_owned()),
            ..JwtSettings::default()
        };
        let claims = fixed_claims();
        let mut keys = JwtKeys::new(
            SigningKey::hmac("hs", b"a-fuzzing-secret-of-32-bytes-min").unwrap(),
            settings,
        )
        .unwrap();
        let mut valid = vec![keys.sign(&claims).unwrap()];
        for signer in [
            SigningKey::rsa_pem("rs", Some(PEM_RSA_PRIVATE), PEM_RSA_PUBLIC).unwrap(),
            SigningKey::ec_pem("es", Some(PEM_EC_PRIVATE), PEM_EC_PUBLIC).unwrap(),
            SigningKey::ed_pem("ed", Some(PEM_ED_PRIVATE), PEM_ED_PUBLIC).unwrap(),
        ] {
            keys.rotate(signer).unwrap();
            valid.push(keys.sign(&claims).unwrap());
        }
        Tokens { keys, valid }
    })
}

/// Applies edits read from `edits` to `token`: each three bytes pick an
/// operation (replace, insert, delete, swap), a position and a byte.
fn mutate(token: &str, edits: &[u8]) -> Vec<u8> {
    let mut bytes = token.as_bytes().to_vec();
    for edit in edits.chunks_exact(3) {
        if bytes.is_empty() {
            break;
        }
        let at = usize::from(edit[1]) * bytes.len() / 256;
        match edit[0] % 4 {
            0 => bytes[at] = edit[2],
            1 => bytes.insert(at, edit[2]),
            2 => {
                bytes.remove(at);
            }
            _ => {
                let other = usize::from(edit[2]) * bytes.len() / 256;
                bytes.swap(at, other);
            }
        }
    }
    bytes
}

/// `JwtKeys::verify` on arbitrary strings (first byte even) and on edits of
/// a valid token of each algorithm (first byte odd). Oracles: no panic;
/// only a token we signed verifies, with the claims we signed; every
/// refusal is an `Unauthorized` error.
pub fn jwt_verify(data: &[u8]) {
    let tokens = tokens();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let candidate = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let Some((&which, edits)) = rest.split_first() else {
            return;
        };
        mutate(
            &tokens.valid[usize::from(which) % tokens.valid.len()],
            edits,
        )
    };
    let Ok(text) = std::str::from_utf8(&candidate) else {
        return;
    };
    match tokens.keys.verify(text) {
        Ok(claims) => {
            assert!(
                tokens.valid.iter().any(|valid| valid == text),
                "a token we never signed verified: {text:?}"
            );
            assert_eq!(claims, fixed_claims());
        }
        Err(error) => assert_eq!(error.kind(), chain_core::ErrorKind::Unauthorized, "{error}"),
    }
}

// ------------------------------------------------------------- Fernet ----

const FERNET_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
const OTHER_KEY: &str = "u0Dlbm1XkpIyNvdPZ0iVX_Vh2D4TCGt5cJcnsiJ5Y2E=";

fn u64_from(bytes: &[u8]) -> u64 {
    let mut buffer = [0_u8; 8];
    let len = bytes.len().min(8);
    buffer[..len].copy_from_slice(&bytes[..len]);
    u64::from_le_bytes(buffer)
}

/// Fernet decryption at a time and with a time to live the fuzzer picks
/// (the `u64` edges included), of arbitrary strings (first byte even) or of
/// edits of a fresh token (first byte odd). Oracles: no panic; refusals are
/// `Validation` errors with a `FernetFailure`; an edited token that differs
/// from the original never decrypts; a key never shows in `Debug`.
pub fn fernet_decrypt(data: &[u8]) {
    if data.len() < 17 {
        return;
    }
    let (header, rest) = data.split_at(17);
    let mode = header[0];
    let now = u64_from(&header[1..9]);
    let ttl = (header[1] & 1 == 1).then(|| u64_from(&header[9..17]));
    let key = Fernet::new(FERNET_KEY).unwrap();
    let keys = MultiFernet::new(vec![Fernet::new(OTHER_KEY).unwrap(), key.clone()]).unwrap();
    assert!(!format!("{key:?} {keys:?}").contains(&FERNET_KEY[..20]));

    let check = |token: &str| {
        for outcome in [
            key.decrypt_at(token, ttl, now),
            keys.decrypt_at(token, ttl, now),
        ] {
            if let Err(error) = outcome {
                assert_eq!(error.kind(), chain_core::ErrorKind::Validation);
                assert!(
                    error
                        .downcast_source::<chain_security::secrets::FernetFailure>()
                        .is_some(),
                    "{error}"
                );
            }
        }
    };

    if mode % 2 == 0 {
        if let Ok(token) = std::str::from_utf8(rest) {
            check(token);
        }
        return;
    }
    let Some((&split, rest)) = rest.split_first() else {
        return;
    };
    let (plaintext, edits) = rest.split_at(usize::from(split).min(rest.len()));
    let made_at = now.min(u64::MAX - 120);
    let token = key.encrypt_at(plaintext, made_at).unwrap();
    assert_eq!(key.decrypt_at(&token, None, made_at).unwrap(), plaintext);
    let edited = mutate(&token, edits);
    let Ok(edited) = std::str::from_utf8(&edited) else {
        return;
    };
    check(edited);
    // Whitespace around a token and its padding are not part of it.
    let same = edited.trim().trim_end_matches('=') == token.trim_end_matches('=');
    if !same {
        assert!(
            key.decrypt_at(edited, None, made_at).is_err(),
            "an altered token decrypted: {edited:?} from {token:?}"
        );
    }
}

// --------------------------------------------------------- Validators ----

/// Every validator and detector, and the redacting types, on one string.
/// Oracles: no panic; what a validator accepts has the shape it promises;
/// `Secret` and `RequestMeta` never show the value they hold.
pub fn validators(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if is_username(text) {
        assert!((3..=20).contains(&text.len()));
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    }
    if is_email(text) {
        assert!(text.len() <= 254 && text.contains('@') && !text.contains(char::is_whitespace));
    }
    if is_url(text) {
        // What is accepted is the URL itself, as written.
        let scheme = text.get(..5).unwrap_or("").to_ascii_lowercase();
        assert!(scheme == "http:" || scheme == "https", "{text:?}");
        assert!(!text.contains(|c: char| c.is_whitespace() || c.is_control()));
    }
    if is_phone(text) {
        assert_eq!(text.bytes().filter(u8::is_ascii_digit).count() / 10, 1);
    }
    let _ = is_ip(text);
    let _ = (looks_like_sql_injection(text), looks_like_xss(text));
    // A script tag as a browser reads one: `<script` ending its name with
    // whitespace, `/` or `>` (`<scriptx` is another, unknown, tag).
    let lower = text.to_ascii_lowercase();
    if lower.match_indices("<script").any(|(at, _)| {
        lower[at + 7..]
            .chars()
            .next()
            .is_some_and(|c| matches!(c, '\t' | '\n' | '\r' | '\x0c' | ' ' | '/' | '>'))
    }) {
        assert!(looks_like_xss(text));
    }
    let escaped = escape_html(text);
    assert!(!escaped.contains(['<', '>', '"', '\'']));

    // The redacting types show the same words whatever they hold.
    let secret = Secret::new(text);
    assert_eq!(format!("{secret}"), "[REDACTED]");
    assert_eq!(format!("{secret:?}"), "Secret([REDACTED])");
    assert_eq!(serde_json::to_string(&secret).unwrap(), "\"[REDACTED]\"");
    let meta = RequestMeta::new().with_header("Authorization", text);
    assert_eq!(
        format!("{meta:?}"),
        r#"RequestMeta { method: None, path: None, headers: {"authorization": "[REDACTED]"}, peer: None }"#
    );
}

// ---------------------------------------------------------- Sanitizer ----

const TAG_CHOICES: [&str; 12] = [
    "p", "br", "strong", "em", "ul", "ol", "li", "a", "img", "div", "span", "b",
];

/// Whether every tag in `html` is an allowed tag without attributes: the
/// sanitizer escapes `<` in text, so every `<` it leaves opens a tag.
fn only_allowed_bare_tags(html: &str, allowed: &[&str]) -> bool {
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else {
            return false;
        };
        let tag = after[..end].trim_start_matches('/').trim_end_matches('/');
        if !allowed.contains(&tag) {
            return false;
        }
        rest = &after[end + 1..];
    }
    true
}

/// `sanitize_html` with an allow-list chosen by the first two bytes (a
/// refused tag included when the second byte says so), and `Sanitize` on
/// the rest as JSON when it parses. Oracles: refused tags are errors; every
/// tag left is allowed and bare (so no script, no event handler, no
/// `javascript:` URL); other strings hold no markup at all; passwords are
/// left out.
pub fn sanitize(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let mask = u16::from_le_bytes([data[0], data[1]]);
    let mut allowed: Vec<&str> = TAG_CHOICES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, tag)| *tag)
        .collect();
    let refused = mask & 0x8000 != 0;
    if refused {
        allowed.push(REFUSED_TAGS[usize::from(data[1]) % REFUSED_TAGS.len()]);
    }
    let Ok(text) = std::str::from_utf8(&data[2..]) else {
        return;
    };
    match sanitize_html(text, &allowed) {
        Ok(clean) => {
            assert!(!refused, "a refused tag was allowed");
            assert!(
                only_allowed_bare_tags(&clean, &allowed),
                "{text:?} -> {clean:?}"
            );
            assert!(!clean.to_ascii_lowercase().contains("<script"));
        }
        Err(error) => {
            assert!(refused, "{error}");
            assert!(error.is_validation());
        }
    }

    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let ctx = Context::new().with("validated_data", value);
    let Ok(out) = run_now(Sanitize::new().call(ctx)) else {
        return;
    };
    if let Some(cleaned) = out.get_value("sanitized_data") {
        check_sanitized(None, cleaned);
    }
}

fn check_sanitized(field: Option<&str>, value: &Value) {
    match value {
        Value::String(text) => {
            if matches!(field, Some("full_name" | "content" | "description")) {
                assert!(
                    only_allowed_bare_tags(text, &DEFAULT_ALLOWED_TAGS),
                    "{text:?}"
                );
            } else {
                assert!(!text.contains(['<', '>', '"']), "{field:?}: {text:?}");
            }
        }
        Value::Array(items) => items.iter().for_each(|item| check_sanitized(field, item)),
        Value::Object(map) => {
            assert!(!map.contains_key("password"));
            map.iter()
                .for_each(|(key, item)| check_sanitized(Some(key), item));
        }
        _ => {}
    }
}

// ----------------------------------------------------- validate_input ----

/// Whether `needle` appears in `value` as a string or key of its own.
fn mentions(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(text) => text.contains(needle),
        Value::Array(items) => items.iter().any(|item| mentions(item, needle)),
        Value::Object(map) => map
            .iter()
            .any(|(key, item)| key.contains(needle) || mentions(item, needle)),
        _ => false,
    }
}

/// `validate_input` for the seed's two models on arbitrary JSON. Oracles:
/// no panic; failures are `Validation` errors; a passed registration keeps
/// its password out of the context's JSON and `Debug` output (unless the
/// same text came in under another field too) and hands it to the typed
/// extension intact.
pub fn validate_input_json(data: &[u8]) {
    let Ok(input) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let ctx = Context::new().with("input_data", input.clone());
    match run_now(validate_input::<UserRegistration>().call(ctx)) {
        Ok(out) => {
            let json = out.to_json();
            assert!(json.get("input_data").is_none(), "the raw input stays");
            let registration = out.ext::<UserRegistration>().unwrap();
            let password = input["password"].as_str().unwrap();
            assert_eq!(registration.password.expose(), password);
            let mut elsewhere = input.clone();
            elsewhere.as_object_mut().unwrap().remove("password");
            if !mentions(&elsewhere, password) && !"password".contains(password) {
                assert!(!mentions(&json, password), "{json}");
                let debug = format!("{out:?} {registration:?}");
                let words = debug.replace("UserRegistration", "");
                if !"Secret([REDACTED])".contains(password) {
                    assert!(!words.contains(password), "{debug}");
                }
            }
        }
        Err(error) => assert!(error.is_validation(), "{error}"),
    }
    let ctx = Context::new().with("input_data", input);
    if let Err(error) = run_now(validate_input::<Comment>().call(ctx)) {
        assert!(error.is_validation(), "{error}");
    }
}

// ------------------------------------------------------------ Context ----

/// `Context::from_json` on arbitrary JSON, then edits checked against a
/// plain map. Oracles: objects round-trip exactly; anything else is a
/// `Validation` error; after removing every other key and re-inserting
/// them, the context still equals the model.
pub fn context_json(data: &[u8]) {
    let Ok(input) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let ctx = match Context::from_json(input.clone()) {
        Ok(ctx) => ctx,
        Err(error) => {
            assert!(!input.is_object());
            assert!(error.is_validation());
            return;
        }
    };
    let Value::Object(mut model) = input else {
        panic!("a context was built from a non-object");
    };
    assert_eq!(ctx.to_json(), Value::Object(model.clone()));
    assert_eq!(ctx.len(), model.len());
    let mut ctx = ctx;
    let keys: Vec<String> = model.keys().cloned().collect();
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(ctx.get_value(key), model.get(key));
        if i % 2 == 0 {
            assert_eq!(ctx.remove(key), model.remove(key));
            assert!(!ctx.contains_key(key));
        }
    }
    for (i, key) in keys.iter().enumerate().rev() {
        if i % 2 == 0 {
            let value = Value::from(i);
            assert_eq!(ctx.insert(key.clone(), value.clone()), None);
            model.insert(key.clone(), value);
        }
    }
    assert_eq!(ctx.len(), model.len());
    for (key, value) in &model {
        assert_eq!(ctx.get_value(key), Some(value));
    }
}
