//! HTML sanitization (ammonia, allow-list) and escaping.

use std::collections::HashSet;

/// The tags kept by default, as the seed: `p`, `br`, `strong`, `em`, `ul`,
/// `ol`, `li`.
pub const DEFAULT_ALLOWED_TAGS: [&str; 7] = ["p", "br", "strong", "em", "ul", "ol", "li"];

/// Cleans untrusted HTML with an allow-list: tags outside `allowed_tags`
/// are removed (their text kept, except for `script`, `style` and the
/// like, whose content goes too), and no attribute survives, so no event
/// handler or `javascript:` URL can. Built on ammonia, which parses HTML the
/// way browsers do rather than with patterns.
///
/// ```
/// use chain_security::validation::{sanitize_html, DEFAULT_ALLOWED_TAGS};
///
/// let clean = sanitize_html(r#"<p onclick="steal()">Hi <script>alert(1)</script><b>there</b></p>"#, &DEFAULT_ALLOWED_TAGS);
/// assert_eq!(clean, "<p>Hi there</p>");
/// assert_eq!(sanitize_html("<em>plain</em> text", &[]), "plain text");
/// ```
pub fn sanitize_html(text: &str, allowed_tags: &[&str]) -> String {
    let tags: HashSet<&str> = allowed_tags.iter().copied().collect();
    ammonia::Builder::empty().tags(tags).clean(text).to_string()
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
