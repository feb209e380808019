//! The seed's registration and comment chains, and fuzzing of the
//! validators and the sanitizer.

/// The cookbook's models, which live with the workspace's examples.
#[path = "../../examples/src/models.rs"]
#[allow(unreachable_pub)]
mod models;

use chain_core::{Chain, Context, Error};
use chain_security::validation::{
    DEFAULT_ALLOWED_TAGS, Sanitize, ValidationErrors, escape_html, is_email, is_ip, is_phone,
    is_url, is_username, looks_like_sql_injection, looks_like_xss, sanitize_html, validate_input,
};
use models::{Comment, UserRegistration};
use proptest::prelude::*;
use serde_json::{Value, json};

fn registration_chain() -> Chain {
    Chain::named("registration")
        .link(validate_input::<UserRegistration>())
        .link(Sanitize::new())
        .link_sync(|ctx: Context| {
            let username: String = ctx.require::<Value>("sanitized_data")?["username"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| Error::internal("sanitized username missing"))?;
            Ok(ctx.with("user_created", true).with("username", username))
        })
}

fn failing_fields(error: &Error) -> Vec<(String, String)> {
    error
        .downcast_source::<ValidationErrors>()
        .expect("a validation failure lists its fields")
        .errors
        .iter()
        .map(|e| (e.field.clone(), e.kind.clone()))
        .collect()
}

#[tokio::test]
async fn a_valid_registration_passes_and_is_sanitized() {
    let input = json!({
        "username": "ada_1815",
        "email": "ada@example.com",
        "password": "Analytical1",
        "full_name": "Ada <em>Lovelace</em>",
        "phone": "555-123-4567",
    });
    let out = registration_chain()
        .execute(Context::new().with("input_data", input))
        .await
        .unwrap();
    assert_eq!(out.get::<bool>("user_created").unwrap(), Some(true));
    assert_eq!(out.get::<bool>("validation_passed").unwrap(), Some(true));
    let sanitized: Value = out.require("sanitized_data").unwrap();
    assert_eq!(
        sanitized["full_name"], "Ada <em>Lovelace</em>",
        "allowed tags stay in free text"
    );
    assert!(
        sanitized.get("password").is_none(),
        "the password stays out of the sanitized data: {sanitized}"
    );
    let registration = out
        .ext::<UserRegistration>()
        .expect("the typed value travels as an extension");
    assert_eq!(registration.password.expose(), "Analytical1");
}

/// The plaintext password appears nowhere in the context's JSON once the
/// input was validated: not in the validated or sanitized data, not in the
/// raw input, not in `Debug` output.
#[tokio::test]
async fn a_validated_password_never_appears_in_the_json() {
    let input = json!({
        "username": "ada_1815",
        "email": "ada@example.com",
        "password": "Analytical1",
    });
    let out = registration_chain()
        .execute(Context::new().with("input_data", input))
        .await
        .unwrap();
    let json = out.to_json().to_string();
    assert!(!json.contains("Analytical1"), "{json}");
    assert!(!json.contains("password"), "{json}");
    let debug = format!("{out:?} {:?}", out.ext::<UserRegistration>());
    assert!(!debug.contains("Analytical1"), "{debug}");
}

#[tokio::test]
async fn sql_injection_in_the_full_name_is_rejected() {
    let input = json!({
        "username": "ada_1815",
        "email": "ada@example.com",
        "password": "Analytical1",
        "full_name": "'; DROP TABLE users; --",
    });
    let err = registration_chain()
        .execute(Context::new().with("input_data", input))
        .await
        .unwrap_err();
    assert!(err.is_validation());
    assert_eq!(
        failing_fields(&err),
        [("full_name".to_owned(), "dangerous_content".to_owned())]
    );
}

#[tokio::test]
async fn every_failing_field_is_reported_not_just_the_first() {
    let input = json!({"username": "a", "email": "nope", "password": "short", "phone": "12"});
    let err = registration_chain()
        .execute(Context::new().with("input_data", input))
        .await
        .unwrap_err();
    let fields = failing_fields(&err);
    for expected in [
        ("username", "format"),
        ("email", "format"),
        ("password", "length"),
        ("password", "policy"),
        ("phone", "format"),
    ] {
        assert!(
            fields.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "missing {expected:?} in {fields:?}"
        );
    }
    assert!(
        format!("{err:#}").contains("email: invalid email format"),
        "{err:#}"
    );
}

#[tokio::test]
async fn wrong_types_and_missing_input_are_clear_errors() {
    let err = registration_chain()
        .execute(Context::new().with(
            "input_data",
            json!({"username": 5, "email": "a@b.co", "password": "x"}),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        failing_fields(&err),
        [("username".to_owned(), "type_error".to_owned())]
    );

    let err = registration_chain()
        .execute(Context::new())
        .await
        .unwrap_err();
    assert!(
        err.is_validation() && err.to_string().contains("no input data"),
        "{err}"
    );
}

#[tokio::test]
async fn a_script_in_a_comment_is_rejected() {
    let chain = Chain::named("comments")
        .link(validate_input::<Comment>())
        .link(Sanitize::new());
    let ok = chain
        .execute(Context::new().with(
            "data",
            json!({"content": "Great article, thanks", "author_id": "u1"}),
        ))
        .await
        .unwrap();
    assert_eq!(
        ok.require::<Value>("sanitized_data").unwrap()["content"],
        "Great article, thanks"
    );

    let err = chain
        .execute(Context::new().with(
            "data",
            json!({"content": "<script>alert('x')</script>", "author_id": "u1"}),
        ))
        .await
        .unwrap_err();
    assert!(failing_fields(&err).contains(&("content".to_owned(), "dangerous_content".to_owned())));

    let empty = chain
        .execute(Context::new().with("data", json!({"content": "   ", "author_id": "u1"})))
        .await
        .unwrap_err();
    assert_eq!(
        failing_fields(&empty),
        [("content".to_owned(), "required".to_owned())]
    );
}

#[tokio::test]
async fn non_free_text_strings_are_escaped() {
    let data = json!({"username": "<b>ada</b>", "password": "<Pass1word>", "count": 3});
    let out = Chain::new()
        .link(Sanitize::new())
        .execute(Context::new().with("validated_data", data))
        .await
        .unwrap();
    let sanitized: Value = out.require("sanitized_data").unwrap();
    assert_eq!(sanitized["username"], "&lt;b&gt;ada&lt;/b&gt;");
    assert!(
        sanitized.get("password").is_none(),
        "password fields are left out"
    );
    assert_eq!(sanitized["count"], 3);
}

/// Strings inside nested objects and arrays are cleaned too, by the name of
/// the field that holds them.
#[tokio::test]
async fn nested_strings_are_sanitized() {
    let data = json!({
        "profile": {
            "full_name": "Ada <script>alert(1)</script><em>L</em>",
            "nick": "<b>x</b>",
            "password": "secret",
        },
        "tags": ["<i>a</i>", {"content": "<p onclick=x>hi</p>"}],
        "content": ["<p>one</p>", "<script>two</script>"],
    });
    let out = Chain::new()
        .link(Sanitize::new())
        .execute(Context::new().with("validated_data", data))
        .await
        .unwrap();
    let sanitized: Value = out.require("sanitized_data").unwrap();
    assert_eq!(
        sanitized,
        json!({
            "profile": {
                "full_name": "Ada <em>L</em>",
                "nick": "&lt;b&gt;x&lt;/b&gt;",
            },
            "tags": ["&lt;i&gt;a&lt;/i&gt;", {"content": "<p>hi</p>"}],
            "content": ["<p>one</p>", ""],
        })
    );
}

/// A structure nested deeper than any parsed JSON can be is an error, not
/// a stack overflow.
#[tokio::test]
async fn absurdly_deep_data_is_an_error() {
    let mut data = json!("x");
    for _ in 0..200 {
        data = json!({ "a": data });
    }
    let error = Chain::new()
        .link(Sanitize::new())
        .execute(Context::new().with("validated_data", data))
        .await
        .unwrap_err();
    assert!(
        error.is_validation() && error.to_string().contains("deep"),
        "{error}"
    );
}

/// Allowing a tag that can never be made safe (ammonia refuses `script`
/// and `style` outright) is an error, not a panic.
#[test]
fn allowing_a_refused_tag_is_an_error() {
    for tag in ["script", "style", "SCRIPT", "iframe", "object"] {
        let error = sanitize_html("<p>x</p>", &["p", tag]).unwrap_err();
        assert!(error.is_validation(), "{tag}: {error}");
        assert!(error.to_string().contains(&tag.to_lowercase()), "{error}");
        assert!(Sanitize::new().allowed_tags(["p", tag]).is_err(), "{tag}");
    }
    assert_eq!(
        sanitize_html("<p title=t lang=en>x</p>", &["p"]).unwrap(),
        "<p>x</p>"
    );
    assert_eq!(
        sanitize_html("<a href=\"https://x\">l</a>", &["a"]).unwrap(),
        "<a>l</a>",
        "no attribute survives, not even a safe link"
    );
}

/// Every tag left in sanitized output is allowed and carries no attribute.
fn only_allowed_bare_tags(html: &str, allowed: &[&str]) -> bool {
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('>') else {
            return true;
        };
        let tag = after[..end].trim_start_matches('/').trim_end_matches('/');
        if !allowed.contains(&tag) {
            return false;
        }
        rest = &after[end + 1..];
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn validators_never_panic(text in ".{0,200}") {
        let _ = (is_email(&text), is_phone(&text), is_url(&text), is_username(&text), is_ip(&text));
        let _ = (looks_like_sql_injection(&text), looks_like_xss(&text));
    }

    #[test]
    fn sanitized_html_never_holds_executable_script(
        pieces in prop::collection::vec(
            prop_oneof![
                Just("<script>alert(1)</script>".to_owned()),
                Just("<img src=x onerror=alert(1)>".to_owned()),
                Just("<a href=\"javascript:alert(1)\">x</a>".to_owned()),
                Just("<p onclick=\"steal()\">".to_owned()),
                Just("<svg/onload=alert(1)>".to_owned()),
                Just("<iframe src=//evil></iframe>".to_owned()),
                Just("<scr<script>ipt>".to_owned()),
                Just("<em>".to_owned()),
                Just("</p>".to_owned()),
                ".{0,12}",
            ],
            0..12,
        )
    ) {
        let input = pieces.concat();
        let clean = sanitize_html(&input, &DEFAULT_ALLOWED_TAGS).unwrap();
        prop_assert!(only_allowed_bare_tags(&clean, &DEFAULT_ALLOWED_TAGS), "{} -> {}", input, clean);
        prop_assert!(!clean.to_lowercase().contains("<script"), "{} -> {}", input, clean);

        let escaped = escape_html(&input);
        prop_assert!(!escaped.contains('<') && !escaped.contains('>') && !escaped.contains('"'));
    }
}
