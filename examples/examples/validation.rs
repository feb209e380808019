//! The seed's input validation and sanitization: a registration validated
//! against its schema (every failing field reported at once), comments
//! sanitized as HTML, and injection detectors as a second line of defence.
//!
//! Run with `cargo run -p examples --example validation`.

use examples::models::{Comment, UserRegistration};
use modulink::security::validation::{
    Sanitize, ValidationErrors, escape_html, looks_like_sql_injection, looks_like_xss,
    validate_input,
};
use modulink::{Chain, Context, Result};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<()> {
    let registration = Chain::named("registration")
        .link(validate_input::<UserRegistration>())
        .link(Sanitize::new());

    let good = json!({
        "username": "newuser",
        "email": "User@Example.com",
        "password": "Str0ng!Passw0rd",
        "full_name": "Ada Lovelace",
        "phone": "+14155550123"
    });
    let out = registration
        .execute(Context::new().with("input_data", good))
        .await?;
    println!(
        "valid registration, sanitized: {}",
        out.get_value("sanitized_data").cloned().unwrap_or_default()
    );

    let bad = json!({"username": "a", "email": "not-an-email", "password": "short", "phone": "12"});
    match registration
        .execute(Context::new().with("input_data", bad))
        .await
    {
        Ok(_) => println!("invalid registration accepted (unexpected)"),
        Err(error) => {
            println!("invalid registration refused: {error:#}");
            if let Some(errors) = error.downcast_source::<ValidationErrors>() {
                for error in &errors.errors {
                    println!("  {}: {} ({})", error.field, error.message, error.kind);
                }
            }
        }
    }

    let comments = Chain::named("comments")
        .link(validate_input::<Comment>())
        .link(Sanitize::new());
    let comment = json!({
        "content": "Nice post! <strong>Really</strong> <em>good</em>, <u>underlined</u> and <a href=\"https://example.com\">a link</a>",
        "author_id": "USR-1"
    });
    let out = comments
        .execute(Context::new().with("input_data", comment))
        .await?;
    println!(
        "comment sanitized: {}",
        out.get_value("sanitized_data")
            .and_then(|data| data.get("content"))
            .cloned()
            .unwrap_or_default()
    );
    let hostile = json!({
        "content": "Nice post! <img src=x onerror=alert(document.cookie)>",
        "author_id": "USR-2"
    });
    match comments
        .execute(Context::new().with("input_data", hostile))
        .await
    {
        Ok(_) => println!("hostile comment accepted (unexpected)"),
        Err(error) => println!("hostile comment refused: {error:#}"),
    }

    for probe in [
        "robert'); DROP TABLE students;--",
        "<script>alert(1)</script>",
        "hello world",
    ] {
        println!(
            "{probe:?}: sql injection {}, xss {}, escaped {}",
            looks_like_sql_injection(probe),
            looks_like_xss(probe),
            escape_html(probe)
        );
    }
    Ok(())
}
