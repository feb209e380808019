//! HTML sanitization (ammonia, allow-list) and escaping.

#[cfg(feature = "sanitize")]
use std::collections::{HashMap, HashSet};

use chain_core::{Error, Result};

/// The tags kept by default: `p`, `br`, `strong`, `em`, `ul`,
/// `ol`, `li`.
pub const DEFAULT_ALLOWED_TAGS: [&str; 7] = ["p", "br", "strong", "em", "ul", "ol", "li"];

/// Tags no allow-list for untrusted HTML may hold: `script` and `style`
/// (whose content ammonia always removes, and refuses to allow), and tags
/// that load or run other content, frame the page, or change how the rest
/// of it is read.
pub const REFUSED_TAGS: [&str; 14] = [
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "base", "link",
    "meta", "noscript", "template", "form",
];

/// Checks an allow-list of tags: each is a tag name (ASCII letters, digits,
/// `-`), none is in [`REFUSED_TAGS`].
///
/// # Errors
///
/// A [`Validation`](chain_core::ErrorKind::Validation) error naming the
/// first tag that cannot be allowed.
#[cfg_attr(not(feature = "sanitize"), allow(dead_code))]
pub(crate) fn check_allowed_tags(allowed_tags: &[&str]) -> Result<()> {
    for tag in allowed_tags {
        let lower = tag.to_ascii_lowercase();
        if REFUSED_TAGS.contains(&lower.as_str()) {
            return Err(Error::validation(format!(
                "the tag `{lower}` cannot be allowed in sanitized HTML"
            )));
        }
        if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Error::validation(format!(
                "`{tag}` is not an HTML tag name"
            )));
        }
    }
    Ok(())
}

/// Cleans untrusted HTML with an allow-list: tags outside `allowed_tags`
/// are removed (their text kept, except for `script`, `style` and the
/// like, whose content goes too), and no attribute survives, so no event
/// handler, `style` or `javascript:` URL can. Built on ammonia, which parses
/// HTML the way browsers do rather than with patterns.
///
/// # Errors
///
/// A [`Validation`](chain_core::ErrorKind::Validation) error if
/// `allowed_tags` holds a tag of [`REFUSED_TAGS`] (such as `script`) or
/// something that is not a tag name.
///
/// ```
/// use chain_security::validation::{sanitize_html, DEFAULT_ALLOWED_TAGS};
///
/// let clean = sanitize_html(r#"<p onclick="steal()">Hi <script>alert(1)</script><b>there</b></p>"#, &DEFAULT_ALLOWED_TAGS)?;
/// assert_eq!(clean, "<p>Hi there</p>");
/// assert_eq!(sanitize_html("<em>plain</em> text", &[])?, "plain text");
/// assert!(sanitize_html("<script>", &["script"]).is_err());
/// # Ok::<(), chain_core::Error>(())
/// ```
#[cfg(feature = "sanitize")]
#[cfg_attr(docsrs, doc(cfg(feature = "sanitize")))]
pub fn sanitize_html(text: &str, allowed_tags: &[&str]) -> Result<String> {
    check_allowed_tags(allowed_tags)?;
    // Tag names as the HTML parser reports them: lower case.
    let lower: Vec<String> = allowed_tags
        .iter()
        .map(|tag| tag.to_ascii_lowercase())
        .collect();
    let tags: HashSet<&str> = lower.iter().map(String::as_str).collect();
    Ok(ammonia::Builder::empty()
        .tags(tags)
        .generic_attributes(HashSet::new())
        .tag_attributes(HashMap::new())
        .link_rel(None)
        .clean(text)
        .to_string())
}

/// Escapes `&`, `<`, `>`, `"` and `'` so text is inert inside HTML elements
/// and quoted attributes.
///
/// ```
/// use chain_security::validation::escape_html;
/// assert_eq!(escape_html(r#"<a href="x">Tom & 'Jerry'</a>"#), "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#x27;Jerry&#x27;&lt;/a&gt;");
/// ```
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            other => out.push(other),
        }
    }
    out
}
