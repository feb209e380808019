//! Helpers shared by the examples; the examples live in `examples/`.

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod models;

use std::error::Error;
use std::time::Duration;

/// What a GET got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

/// GETs `url` with reqwest, bounded by 3 s: enough for an example to call
/// itself, probe its own health endpoint or scrape its `/metrics`.
///
/// # Errors
///
/// The URL is not valid, the server did not answer within 3 s, or the body
/// is not text.
pub async fn http_get(url: &str) -> Result<Answer, Box<dyn Error + Send + Sync>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()?;
    let response = client.get(url).send().await?;
    let status = response.status().as_u16();
    let body = response.text().await?;
    Ok(Answer { status, body })
}

/// An `AuthManager` for tests and benchmarks, with one user, `ada`
/// (password `Analytical1`, role `User`): HS256 tokens signed with a fixed
/// test key, and bcrypt at its cheapest cost (4) so logins take
/// milliseconds. Production uses cost 12 and a secret key.
///
/// # Errors
///
/// Whatever creating the keys or the user returns.
pub async fn test_users() -> modulink::Result<modulink::security::auth::AuthManager> {
    use modulink::security::auth::{
        AuthConfig, AuthManager, JwtKeys, JwtSettings, MemoryUserStore, Role, SigningKey,
    };
    let keys = JwtKeys::new(SigningKey::hmac("k1", &[9; 32])?, JwtSettings::default())?;
    let users = AuthManager::new(
        MemoryUserStore::new(),
        keys,
        AuthConfig {
            bcrypt_cost: 4,
            ..AuthConfig::default()
        },
    );
    users.create_user("ada", "Analytical1", Role::User).await?;
    Ok(users)
}

/// An order's prices: the seed's subtotal, 8% tax rounded to cents, and total.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    /// Sum of price × quantity over the items.
    pub subtotal: f64,
    /// 8% of the subtotal, rounded to cents.
    pub tax: f64,
    /// Subtotal plus tax.
    pub total: f64,
}

/// Prices `items` (objects with numeric `price` and `quantity`). An item
/// without either is a validation error naming it, never a free item.
pub fn price_items(items: &[serde_json::Value]) -> modulink::Result<Pricing> {
    let mut subtotal = 0.0;
    for (index, item) in items.iter().enumerate() {
        let number = |field: &str| {
            item[field].as_f64().ok_or_else(|| {
                modulink::Error::validation(format!("item {index} has no numeric `{field}`"))
            })
        };
        subtotal += number("price")? * number("quantity")?;
    }
    let tax = (subtotal * 0.08 * 100.0).round() / 100.0;
    Ok(Pricing {
        subtotal,
        tax,
        total: subtotal + tax,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prices_items_with_the_seeds_tax() {
        let pricing = price_items(&[
            json!({"price": 10.0, "quantity": 2}),
            json!({"price": 5.5, "quantity": 1}),
        ])
        .unwrap();
        assert_eq!(
            pricing,
            Pricing {
                subtotal: 25.5,
                tax: 2.04,
                total: 27.54
            }
        );
    }

    #[test]
    fn an_item_without_a_price_is_an_error_naming_it() {
        let error = price_items(&[
            json!({"price": 10.0, "quantity": 2}),
            json!({"quantity": 1}),
        ])
        .unwrap_err();
        assert_eq!(error.kind(), modulink::ErrorKind::Validation);
        assert!(
            error.to_string().contains("item 1 has no numeric `price`"),
            "{error}"
        );
    }
}
