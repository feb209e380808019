//! The seed's authentication and authorization middleware: bcrypt
//! passwords, JWT logins, an admin-only chain and a profile chain for any
//! user, and account lockout after repeated failures.
//!
//! Run with `cargo run -p examples --example auth`.

use modulink::security::auth::{
    AuthConfig, AuthManager, AuthenticatedUser, JwtKeys, JwtSettings, MemoryUserStore, Role,
    SigningKey, auth,
};
use modulink::{Chain, Context, Error, RequestMeta, Result, named};
use serde_json::{Value, json};

/// What the HTTP edge records of a request carrying `token`: a typed
/// extension, never a JSON field, so the token goes nowhere the JSON goes.
fn bearer(token: &str) -> RequestMeta {
    RequestMeta::new().with_header("Authorization", format!("Bearer {token}"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let keys = JwtKeys::new(
        SigningKey::hmac("2026-11", b"an-hs256-secret-of-32-bytes-long")?,
        JwtSettings::default(),
    )?;
    // bcrypt cost 10 keeps the example quick; production wants 12 or more.
    let manager = AuthManager::new(
        MemoryUserStore::new(),
        keys,
        AuthConfig {
            bcrypt_cost: 10,
            ..AuthConfig::default()
        },
    );
    manager
        .create_user("admin", "Admin1234", Role::Admin)
        .await?;
    manager.create_user("john", "User12345", Role::User).await?;
    manager
        .create_user("reader", "Readonly123", Role::ReadOnly)
        .await?;
    if let Err(error) = manager.create_user("weak", "password", Role::User).await {
        println!("weak password refused: {error:#}");
    }

    let listing = manager.clone();
    let admin_chain = Chain::named("admin_users")
        .link(auth(&manager, [Role::Admin]))
        .link(move |ctx: Context| {
            let listing = listing.clone();
            async move {
                let users: Vec<Value> = listing
                    .users()
                    .await?
                    .into_iter()
                    .map(|user| {
                        json!({
                            "username": user.username,
                            "role": user.role.as_str(),
                            "created_at": unix_seconds(user.created_at),
                            "last_login": user.last_login.map(unix_seconds),
                        })
                    })
                    .collect();
                Ok(ctx.with("users", users))
            }
        });
    let profile_chain = Chain::named("profile")
        .around(auth(&manager, [Role::Admin, Role::User]))
        .link(named("user_profile", |ctx: Context| async move {
            let user = ctx
                .ext::<AuthenticatedUser>()
                .cloned()
                .ok_or_else(|| Error::internal("the auth middleware ran first"))?;
            Ok(ctx.with(
                "user_profile",
                json!({"username": user.username, "role": user.role.as_str()}),
            ))
        }));

    let admin = manager.authenticate("admin", "Admin1234").await?;
    let john = manager.authenticate("john", "User12345").await?;
    let reader = manager.authenticate("reader", "Readonly123").await?;
    println!(
        "admin logged in: a {} token for {} s",
        admin.token_type, admin.expires_in
    );

    let out = admin_chain
        .execute(Context::new().with_ext(bearer(&admin.access_token)))
        .await?;
    println!(
        "admin lists users: {}",
        out.get_value("users").cloned().unwrap_or_default()
    );
    match admin_chain
        .execute(Context::new().with_ext(bearer(&john.access_token)))
        .await
    {
        Ok(_) => println!("john listed users (unexpected)"),
        Err(error) => println!("john lists users: {error:#}"),
    }
    let out = profile_chain
        .execute(Context::new().with_ext(bearer(&john.access_token)))
        .await?;
    println!(
        "john's profile: {}",
        out.get_value("user_profile").cloned().unwrap_or_default()
    );
    match profile_chain
        .execute(Context::new().with_ext(bearer(&reader.access_token)))
        .await
    {
        Ok(_) => println!("reader saw a profile (unexpected)"),
        Err(error) => println!("reader's profile: {error:#}"),
    }
    let tampered = format!("{}x", john.access_token);
    match profile_chain
        .execute(Context::new().with_ext(bearer(&tampered)))
        .await
    {
        Ok(_) => println!("tampered token accepted (unexpected)"),
        Err(error) => println!("tampered token: {error:#}"),
    }
    match profile_chain.execute(Context::new()).await {
        Ok(_) => println!("no token accepted (unexpected)"),
        Err(error) => println!("no token: {error:#}"),
    }

    for attempt in 1..=6 {
        if let Err(error) = manager.authenticate("john", "wrong-password").await {
            println!("bad login {attempt}: {error:#}");
        }
    }
    match manager.authenticate("john", "User12345").await {
        Ok(_) => println!("john logged in despite the lockout (unexpected)"),
        Err(error) => println!("right password while locked: {error:#}"),
    }
    Ok(())
}

/// Seconds since the Unix epoch, as the listing shows times.
fn unix_seconds(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
