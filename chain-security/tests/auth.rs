//! Authentication, lockout, JWT and the auth middleware, with the seed's
//! admin and profile chains.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chain_core::{Chain, Context, Error, ErrorKind, RequestMeta};
use chain_security::auth::{
    Auth, AuthConfig, AuthFailure, AuthManager, AuthenticatedUser, Claims, JwtKeys, JwtSettings,
    MemoryUserStore, Role, SigningKey, auth,
};
use serde_json::{Value, json};

const SECRET: &[u8; 32] = b"an-hs256-secret-of-32-bytes-long";

fn keys() -> JwtKeys {
    JwtKeys::new(
        SigningKey::hmac("k1", SECRET).unwrap(),
        JwtSettings::default(),
    )
    .unwrap()
}

/// bcrypt cost 4 keeps the tests fast; production uses 12.
fn manager() -> AuthManager {
    AuthManager::new(
        MemoryUserStore::new(),
        keys(),
        AuthConfig {
            bcrypt_cost: 4,
            ..AuthConfig::default()
        },
    )
}

fn failure(error: &Error) -> &AuthFailure {
    error
        .downcast_source::<AuthFailure>()
        .expect("an auth failure")
}

#[tokio::test]
async fn users_are_created_once_with_a_policy_abiding_password() {
    let auth = manager();
    auth.create_user("ada", "Analytical1", Role::Admin)
        .await
        .unwrap();
    assert_eq!(
        auth.create_user("ada", "Analytical1", Role::User)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );

    let weak = auth
        .create_user("bob", "short", Role::User)
        .await
        .unwrap_err();
    assert!(weak.is_validation());
    assert!(
        weak.to_string().contains("at least 8 characters") && weak.to_string().contains("a digit"),
        "{weak}"
    );

    let long = "Aa1".repeat(30);
    let err = auth
        .create_user("carol", &long, Role::User)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("72 bytes"), "{err}");
    let users = auth.users().await.unwrap();
    assert_eq!(users.len(), 1);
    assert!(
        !format!("{:?}", users[0]).contains("$2"),
        "hashes stay out of Debug"
    );
}

#[tokio::test]
async fn a_login_returns_the_seed_response_with_a_valid_token() {
    let auth = manager();
    auth.create_user("ada", "Analytical1", Role::Admin)
        .await
        .unwrap();
    let login = auth.authenticate("ada", "Analytical1").await.unwrap();
    assert_eq!((login.token_type, login.expires_in), ("bearer", 24 * 3600));
    assert_eq!(
        login.user,
        AuthenticatedUser {
            username: "ada".into(),
            role: Role::Admin
        }
    );
    let claims = auth.verify_token(&login.access_token).unwrap();
    assert_eq!((claims.sub.as_str(), &claims.role), ("ada", &Role::Admin));
    assert_eq!(claims.exp - claims.iat, 24 * 3600);
    assert!(claims.jti.is_some());
}

#[tokio::test]
async fn every_login_failure_gets_the_same_generic_error() {
    let auth = manager();
    auth.create_user("ada", "Analytical1", Role::User)
        .await
        .unwrap();
    auth.create_user("old", "Analytical1", Role::User)
        .await
        .unwrap();
    auth.set_active("old", false).await.unwrap();
    let mut messages = Vec::new();
    for (user, password) in [
        ("ada", "wrong-Password1"),
        ("nobody", "Analytical1"),
        ("old", "Analytical1"),
    ] {
        let err = auth.authenticate(user, password).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
        assert_eq!(failure(&err), &AuthFailure::InvalidCredentials);
        messages.push(err.to_string());
    }
    assert!(
        messages.windows(2).all(|pair| pair[0] == pair[1]),
        "{messages:?}"
    );
}

#[tokio::test]
async fn repeated_failures_lock_the_account_and_success_clears_them() {
    let auth = manager();
    auth.create_user("ada", "Analytical1", Role::User)
        .await
        .unwrap();
    for _ in 0..4 {
        auth.authenticate("ada", "nope").await.unwrap_err();
    }
    auth.authenticate("ada", "Analytical1").await.unwrap();
    for _ in 0..4 {
        auth.authenticate("ada", "nope").await.unwrap_err();
    }
    auth.authenticate("ada", "Analytical1")
        .await
        .expect("a success cleared the earlier failures");

    for _ in 0..5 {
        auth.authenticate("ada", "nope").await.unwrap_err();
    }
    let locked = auth.authenticate("ada", "Analytical1").await.unwrap_err();
    assert_eq!(locked.kind(), ErrorKind::Rejected);
    let AuthFailure::AccountLocked { retry_after } = failure(&locked) else {
        panic!("expected a lock, got {locked}");
    };
    assert!(*retry_after > Duration::from_secs(29 * 60));
}

fn forge(header: Value, claims: Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        signature
    )
}

fn claims_in(keys: &JwtKeys, shift_exp: i64, nbf_ahead: Option<u64>) -> Claims {
    let mut claims = keys.claims_for("ada", &Role::User);
    claims.exp = (claims.exp as i64 + shift_exp) as u64;
    claims.nbf = nbf_ahead.map(|ahead| claims.iat + ahead);
    claims
}

#[test]
fn hostile_tokens_are_refused_each_with_its_own_error() {
    let keys = keys();
    let valid = keys.sign(&keys.claims_for("ada", &Role::User)).unwrap();
    assert!(keys.verify(&valid).is_ok());

    let unsigned = forge(
        json!({"alg": "none", "typ": "JWT"}),
        json!({"sub": "ada", "role": "admin"}),
        "",
    );
    assert_eq!(
        failure(&keys.verify(&unsigned).unwrap_err()),
        &AuthFailure::UnsignedToken
    );

    // The signature's first character changed: its last one carries padding
    // bits, so changing it could make the base64 malformed instead.
    let at = valid.rfind('.').unwrap() + 1;
    let first = &valid[at..=at];
    let tampered = format!(
        "{}{}{}",
        &valid[..at],
        if first == "A" { "B" } else { "A" },
        &valid[at + 1..]
    );
    assert_eq!(
        failure(&keys.verify(&tampered).unwrap_err()),
        &AuthFailure::InvalidSignature
    );

    let (header, rest) = valid.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let escalated = format!(
        "{header}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(
            json!({"sub": "ada", "role": "admin", "iat": 1, "exp": 9999999999_u64}).to_string()
        )
    );
    assert_eq!(
        failure(&keys.verify(&escalated).unwrap_err()),
        &AuthFailure::InvalidSignature
    );

    let expired = keys
        .sign(&claims_in(&keys, -(24 * 3600 + 3600), None))
        .unwrap();
    assert_eq!(
        failure(&keys.verify(&expired).unwrap_err()),
        &AuthFailure::Expired
    );

    let early = keys.sign(&claims_in(&keys, 0, Some(3600))).unwrap();
    assert_eq!(
        failure(&keys.verify(&early).unwrap_err()),
        &AuthFailure::NotYetValid
    );

    let within_leeway = keys
        .sign(&claims_in(&keys, -(24 * 3600 + 10), None))
        .unwrap();
    assert!(
        keys.verify(&within_leeway).is_ok(),
        "10 s past expiry is within the 30 s leeway"
    );

    assert_eq!(
        failure(&keys.verify("not.a.token").unwrap_err()),
        &AuthFailure::MalformedToken
    );
    assert_eq!(
        keys.verify("garbage").unwrap_err().kind(),
        ErrorKind::Unauthorized
    );
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/keys")
            .join(name),
    )
    .unwrap()
}

#[test]
fn public_key_algorithms_sign_and_verify_and_stay_pinned() {
    let rsa =
        SigningKey::rsa_pem("rsa", Some(&pem("rsa_private.pem")), &pem("rsa_public.pem")).unwrap();
    let ec = SigningKey::ec_pem("ec", Some(&pem("ec_private.pem")), &pem("ec_public.pem")).unwrap();
    let ed = SigningKey::ed_pem("ed", Some(&pem("ed_private.pem")), &pem("ed_public.pem")).unwrap();
    for key in [rsa, ec, ed] {
        let keys = JwtKeys::new(key, JwtSettings::default()).unwrap();
        let token = keys.sign(&keys.claims_for("ada", &Role::Service)).unwrap();
        assert_eq!(keys.verify(&token).unwrap().role, Role::Service);
    }

    // An HS256 token naming the RSA key (the classic key-confusion attack).
    let rsa_public = SigningKey::rsa_pem("rsa", None, &pem("rsa_public.pem")).unwrap();
    let keys = keys().with_key(rsa_public);
    let confused = forge(
        json!({"alg": "HS256", "kid": "rsa"}),
        json!({"sub": "ada"}),
        "c2ln",
    );
    assert!(matches!(
        failure(&keys.verify(&confused).unwrap_err()),
        AuthFailure::AlgorithmNotAllowed { .. }
    ));

    let unknown = forge(
        json!({"alg": "HS256", "kid": "k9"}),
        json!({"sub": "ada"}),
        "c2ln",
    );
    assert_eq!(
        failure(&keys.verify(&unknown).unwrap_err()),
        &AuthFailure::UnknownKey
    );
}

#[test]
fn short_hmac_secrets_and_verify_only_keys_cannot_sign() {
    assert!(
        SigningKey::hmac("k", b"too short")
            .unwrap_err()
            .is_validation()
    );
    let verify_only = SigningKey::ec_pem("ec", None, &pem("ec_public.pem")).unwrap();
    assert!(JwtKeys::new(verify_only, JwtSettings::default()).is_err());
    assert!(
        SigningKey::rsa_pem("rsa", None, b"not a pem")
            .unwrap_err()
            .is_validation()
    );
}

#[test]
fn rotation_keeps_old_tokens_valid_until_the_old_key_retires() {
    let mut keys = keys();
    let old = keys.sign(&keys.claims_for("ada", &Role::User)).unwrap();
    keys.rotate(SigningKey::hmac("k2", b"another-secret-of-at-least-32-by").unwrap())
        .unwrap();
    let new = keys.sign(&keys.claims_for("ada", &Role::User)).unwrap();
    assert!(keys.verify(&old).is_ok() && keys.verify(&new).is_ok());
    assert!(!keys.retire("k2"), "the current key cannot be retired");
    assert!(keys.retire("k1"));
    assert_eq!(
        failure(&keys.verify(&old).unwrap_err()),
        &AuthFailure::UnknownKey
    );
    assert!(keys.verify(&new).is_ok());
}

#[test]
fn issuer_and_audience_are_enforced_when_set() {
    let settings = JwtSettings {
        issuer: Some("modulink".into()),
        audience: Some("orders".into()),
        ..JwtSettings::default()
    };
    let keys = JwtKeys::new(SigningKey::hmac("k1", SECRET).unwrap(), settings.clone()).unwrap();
    let token = keys.sign(&keys.claims_for("ada", &Role::User)).unwrap();
    assert!(keys.verify(&token).is_ok());
    let other = JwtKeys::new(
        SigningKey::hmac("k1", SECRET).unwrap(),
        JwtSettings {
            audience: Some("billing".into()),
            ..settings
        },
    )
    .unwrap();
    assert!(matches!(
        failure(&other.verify(&token).unwrap_err()),
        AuthFailure::InvalidClaims(_)
    ));
}

/// A token without `iss` or `aud` is refused when the settings name them:
/// jsonwebtoken checks those claims only when they are present.
#[test]
fn missing_issuer_or_audience_is_refused_when_required() {
    let settings = JwtSettings {
        issuer: Some("modulink".into()),
        audience: Some("orders".into()),
        ..JwtSettings::default()
    };
    let keys = JwtKeys::new(SigningKey::hmac("k1", SECRET).unwrap(), settings).unwrap();
    let full = keys.claims_for("ada", &Role::User);
    for (claims, missing) in [
        (
            Claims {
                iss: None,
                ..full.clone()
            },
            "iss",
        ),
        (
            Claims {
                aud: None,
                ..full.clone()
            },
            "aud",
        ),
        (
            Claims {
                iss: None,
                aud: None,
                ..full.clone()
            },
            "iss",
        ),
    ] {
        let token = keys.sign(&claims).unwrap();
        let error = keys.verify(&token).unwrap_err();
        let AuthFailure::InvalidClaims(why) = failure(&error) else {
            panic!("expected invalid claims, got {error}");
        };
        assert!(why.contains(missing), "{why}");
    }
    assert!(keys.verify(&keys.sign(&full).unwrap()).is_ok());

    // Only the issuer set: the audience may be absent.
    let keys = JwtKeys::new(
        SigningKey::hmac("k1", SECRET).unwrap(),
        JwtSettings {
            issuer: Some("modulink".into()),
            ..JwtSettings::default()
        },
    )
    .unwrap();
    let claims = keys.claims_for("ada", &Role::User);
    assert!(claims.aud.is_none());
    assert!(keys.verify(&keys.sign(&claims).unwrap()).is_ok());
    let no_issuer = keys
        .sign(&Claims {
            iss: None,
            ..claims
        })
        .unwrap();
    assert!(keys.verify(&no_issuer).is_err());
}

/// Rotation through the manager: tokens of the old key verify until the
/// old key is retired, then are refused; new tokens use the new key.
#[tokio::test]
async fn rotation_through_the_manager_retires_old_tokens() {
    let auth = manager();
    auth.create_user("ada", "Analytical1", Role::User)
        .await
        .unwrap();
    let old = auth.authenticate("ada", "Analytical1").await.unwrap();
    auth.update_keys(|keys| {
        keys.rotate(SigningKey::hmac("k2", b"another-secret-of-at-least-32-by")?)
    })
    .unwrap();
    let new = auth.authenticate("ada", "Analytical1").await.unwrap();
    let kid = |token: &str| {
        jsonwebtoken::decode_header(token)
            .unwrap()
            .kid
            .unwrap_or_default()
    };
    assert_eq!(kid(&old.access_token), "k1");
    assert_eq!(kid(&new.access_token), "k2");
    assert_eq!(auth.verify_token(&old.access_token).unwrap().sub, "ada");
    assert_eq!(auth.verify_token(&new.access_token).unwrap().sub, "ada");

    auth.update_keys(|keys| {
        assert!(keys.retire("k1"));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        failure(&auth.verify_token(&old.access_token).unwrap_err()),
        &AuthFailure::UnknownKey
    );
    assert!(auth.verify_token(&new.access_token).is_ok());
    // A failing change leaves the keys as they were.
    assert!(
        auth.update_keys(|keys| keys.rotate(SigningKey::hmac("k3", b"short")?))
            .is_err()
    );
    assert_eq!(
        kid(&auth
            .authenticate("ada", "Analytical1")
            .await
            .unwrap()
            .access_token),
        "k2"
    );
}

/// `Chain::around` runs auth once per execution: the first link retires the
/// key that signed the token, and the four links after it still run. The
/// same chain with `around_each` verifies again before the second link and
/// fails there, which is what the old `Chain::middleware` spelling did.
#[tokio::test]
async fn a_five_link_chain_behind_auth_verifies_the_token_once() {
    let manager = manager();
    manager
        .create_user("ada", "Analytical1", Role::User)
        .await
        .unwrap();
    let five_links = |attach: fn(Chain, Auth) -> Chain| {
        let retiring = manager.clone();
        let chain =
            attach(Chain::named("five"), auth(&manager, [Role::User])).link(move |ctx: Context| {
                let retiring = retiring.clone();
                async move {
                    retiring.update_keys(|keys| {
                        keys.rotate(SigningKey::hmac("k2", b"another-secret-of-at-least-32-by")?)?;
                        assert!(keys.retire("k1"));
                        Ok(())
                    })?;
                    Ok(ctx.with("links", 1))
                }
            });
        (1..5).fold(chain, |chain, _| {
            chain.link_sync(|ctx: Context| {
                let links: u32 = ctx.require("links")?;
                Ok(ctx.with("links", links + 1))
            })
        })
    };
    let meta = |manager: &AuthManager| {
        let manager = manager.clone();
        async move {
            let login = manager.authenticate("ada", "Analytical1").await.unwrap();
            RequestMeta::new()
                .with_header("Authorization", format!("Bearer {}", login.access_token))
        }
    };
    let reset = |manager: &AuthManager| {
        manager
            .update_keys(|keys| {
                keys.rotate(SigningKey::hmac("k1", SECRET)?)?;
                keys.retire("k2");
                Ok(())
            })
            .unwrap();
    };

    let once = five_links(|chain, auth| chain.around(auth));
    assert_eq!(once.len(), 5);
    let out = once
        .execute(Context::new().with_ext(meta(&manager).await))
        .await
        .unwrap();
    assert_eq!(out.require::<u32>("links").unwrap(), 5);
    assert_eq!(out.ext::<AuthenticatedUser>().unwrap().username, "ada");

    reset(&manager);
    let each = five_links(|chain, auth| chain.around_each(auth));
    let err = each
        .execute(Context::new().with_ext(meta(&manager).await))
        .await
        .unwrap_err();
    assert_eq!(failure(&err), &AuthFailure::UnknownKey);
    assert_eq!(err.location().unwrap().index(), 1);
}

/// A lifetime of any size neither panics nor wraps around into the past.
#[tokio::test]
async fn huge_token_lifetimes_saturate() {
    let keys = JwtKeys::new(
        SigningKey::hmac("k1", SECRET).unwrap(),
        JwtSettings {
            ttl: Duration::MAX,
            ..JwtSettings::default()
        },
    )
    .unwrap();
    // A leeway past a day is a mistake (it would make expiry meaningless,
    // and jsonwebtoken subtracts it from the time unchecked): refused.
    let error = JwtKeys::new(
        SigningKey::hmac("k1", SECRET).unwrap(),
        JwtSettings {
            leeway: Duration::MAX,
            ..JwtSettings::default()
        },
    )
    .unwrap_err();
    assert!(
        error.is_validation() && error.to_string().contains("leeway"),
        "{error}"
    );
    let claims = keys.claims_for("ada", &Role::User);
    assert_eq!(claims.exp, u64::MAX);
    let token = keys.sign(&claims).unwrap();
    assert_eq!(keys.verify(&token).unwrap().sub, "ada");
}

/// Token ids come from the operating system's CSPRNG: reseeding the
/// thread's fast (predictable) generator does not repeat them.
#[test]
fn token_ids_are_unpredictable() {
    let keys = keys();
    fastrand::seed(7);
    let first = keys.claims_for("ada", &Role::User).jti.unwrap();
    fastrand::seed(7);
    let second = keys.claims_for("ada", &Role::User).jti.unwrap();
    assert_ne!(first, second);
    assert_eq!(first.len(), 32, "128 bits in hex: {first}");
    assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
}

/// The seed's user-management chains: admin-only listing and a profile for
/// any user.
#[tokio::test]
async fn the_seed_admin_and_profile_chains() {
    let manager = manager();
    manager
        .create_user("admin", "Admin1234", Role::Admin)
        .await
        .unwrap();
    manager
        .create_user("john", "User12345", Role::User)
        .await
        .unwrap();
    manager
        .create_user("readonly", "Readonly123", Role::ReadOnly)
        .await
        .unwrap();

    let listing = manager.clone();
    let admin_chain = Chain::named("admin")
        .link(auth(&manager, [Role::Admin]))
        .link(move |ctx: Context| {
            let listing = listing.clone();
            async move {
                let users: Vec<Value> = listing
                    .users()
                    .await?
                    .into_iter()
                    .map(|user| json!({"username": user.username, "role": user.role.as_str(), "active": user.active}))
                    .collect();
                Ok(ctx.with("users", users))
            }
        });
    let profile_chain = Chain::named("profile")
        .around(auth(&manager, [Role::Admin, Role::User]))
        .link_sync(|ctx: Context| {
            let user = ctx
                .ext::<AuthenticatedUser>()
                .ok_or_else(|| Error::internal("no user"))?
                .clone();
            Ok(ctx.with(
                "user_profile",
                json!({"username": user.username, "role": user.role.as_str()}),
            ))
        });

    let token = |login: chain_security::auth::AuthResponse| {
        RequestMeta::new().with_header("Authorization", format!("Bearer {}", login.access_token))
    };
    let admin = token(manager.authenticate("admin", "Admin1234").await.unwrap());
    let john = token(manager.authenticate("john", "User12345").await.unwrap());
    let reader = token(
        manager
            .authenticate("readonly", "Readonly123")
            .await
            .unwrap(),
    );

    let out = admin_chain
        .execute(Context::new().with_ext(admin.clone()))
        .await
        .unwrap();
    assert_eq!(out.require::<Vec<Value>>("users").unwrap().len(), 3);
    assert_eq!(
        out.require::<Value>("authenticated_user").unwrap(),
        json!({"username": "admin", "role": "admin"})
    );

    let denied = admin_chain
        .execute(Context::new().with_ext(john.clone()))
        .await
        .unwrap_err();
    assert_eq!(denied.kind(), ErrorKind::Forbidden);
    assert!(matches!(
        failure(&denied),
        AuthFailure::InsufficientRole { .. }
    ));

    let profile = profile_chain
        .execute(Context::new().with_ext(john))
        .await
        .unwrap();
    assert_eq!(
        profile.require::<Value>("user_profile").unwrap()["username"],
        "john"
    );
    assert_eq!(
        profile_chain
            .execute(Context::new().with_ext(reader))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Forbidden
    );

    let anonymous = profile_chain.execute(Context::new()).await.unwrap_err();
    assert_eq!(anonymous.kind(), ErrorKind::Unauthorized);
    assert_eq!(failure(&anonymous), &AuthFailure::MissingToken);
    let lowercase = RequestMeta::new().with_header(
        "authorization",
        admin.header("AUTHORIZATION").unwrap().to_owned(),
    );
    let out = profile_chain
        .execute(Context::new().with_ext(lowercase))
        .await
        .expect("header names are case-insensitive");
    assert!(
        !out.to_json().to_string().contains("Bearer"),
        "the token stays out of the JSON"
    );

    // A token in the JSON is not where credentials travel: it is ignored.
    let in_json = json!({"Authorization": admin.header("authorization").unwrap()});
    let refused = profile_chain
        .execute(Context::new().with("headers", in_json))
        .await
        .unwrap_err();
    assert_eq!(failure(&refused), &AuthFailure::MissingToken);
}

#[tokio::test]
async fn users_carry_when_they_were_created_and_last_logged_in() {
    let auth = manager();
    let before = std::time::SystemTime::now();
    auth.create_user("ada", "Analytical1", Role::Admin)
        .await
        .unwrap();
    auth.create_user("bob", "Babbage123", Role::User)
        .await
        .unwrap();
    let users = auth.users().await.unwrap();
    assert!(users.iter().all(|user| user.created_at >= before));
    assert!(users.iter().all(|user| user.last_login.is_none()));

    // A failed login is not a login.
    auth.authenticate("ada", "wrong-password1")
        .await
        .unwrap_err();
    assert!(auth.users().await.unwrap()[0].last_login.is_none());

    let before_login = std::time::SystemTime::now();
    auth.authenticate("ada", "Analytical1").await.unwrap();
    let users = auth.users().await.unwrap();
    let ada = &users[0];
    assert_eq!(ada.username, "ada");
    assert!(ada.last_login.unwrap() >= before_login);
    assert!(ada.created_at <= before_login);
    assert!(users[1].last_login.is_none(), "bob never logged in");
}
