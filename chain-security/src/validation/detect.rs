//! SQL-injection and XSS pattern detectors: a defence-in-depth layer.
//!
//! They are **not** the defence. Pattern lists miss encodings and new
//! tricks, and flag harmless text (a comment saying "select the blue one;
//! thanks" matches the SQL list). The real defences are
//! parameterized queries (never build SQL from strings) and contextual
//! output encoding ([`escape_html`](super::escape_html), or
//! [`sanitize_html`](super::sanitize_html) for rich text). Use these checks
//! to reject obviously hostile input early and to raise alerts.
//!
//! The patterns are the Python cookbook's. Where its XSS pattern needs
//! look-ahead (which the linear-time `regex` crate refuses, and which is
//! what makes backtracking engines vulnerable to ReDoS), any opening
//! `<script` or `<iframe` tag is flagged instead, which is stricter.

use std::sync::LazyLock;

use regex::RegexSet;

fn set(patterns: &[&str]) -> RegexSet {
    match RegexSet::new(patterns) {
        Ok(set) => set,
        Err(error) => unreachable!("built-in patterns are valid: {error}"),
    }
}

static SQL_INJECTION: LazyLock<RegexSet> = LazyLock::new(|| {
    set(&[
        r"(?i)\b(select|insert|update|delete|drop|create|alter|exec|execute|union|script)\b",
        r"(--|\|\||;|/\*|\*/|(?i)xp_)",
        r"(?i)\b(or|and)\s+\d+\s*=\s*\d+",
        r#"(?i)\b(or|and)\s+['"]\w+['"]\s*=\s*['"]\w+['"]"#,
        // A quote closing the literal, then a tautology whose last quote
        // the query itself supplies: `1' OR '1'='1`.
        r#"(?i)['"]\s*(or|and)\s+['"]?\w+['"]?\s*=\s*['"]?\w+"#,
    ])
});

static XSS: LazyLock<RegexSet> = LazyLock::new(|| {
    set(&[
        r"(?i)<\s*script\b",
        r"(?i)javascript\s*:",
        r"(?i)\bon\w+\s*=",
        r"(?i)<\s*iframe\b",
    ])
});

/// Whether `text` matches one of the SQL-injection patterns.
///
/// ```
/// use chain_security::validation::looks_like_sql_injection;
/// assert!(looks_like_sql_injection("'; DROP TABLE users; --"));
/// assert!(looks_like_sql_injection("x' OR 1=1"));
/// assert!(looks_like_sql_injection("1' OR '1'='1"));
/// assert!(!looks_like_sql_injection("tea or coffee, milk = yes"));
/// assert!(!looks_like_sql_injection("Ada Lovelace"));
/// ```
pub fn looks_like_sql_injection(text: &str) -> bool {
    SQL_INJECTION.is_match(text)
}

/// Whether `text` matches one of the XSS patterns.
///
/// ```
/// use chain_security::validation::looks_like_xss;
/// assert!(looks_like_xss("<script>alert(1)</script>"));
/// assert!(looks_like_xss(r#"<img src=x onerror="alert(1)">"#));
/// assert!(!looks_like_xss("5 < 6 and 7 > 3"));
/// ```
pub fn looks_like_xss(text: &str) -> bool {
    XSS.is_match(text)
}
