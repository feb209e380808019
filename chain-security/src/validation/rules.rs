//! Format validators: allow-lists for common fields.

use std::net::IpAddr;
use std::sync::LazyLock;

use regex::Regex;

fn pattern(source: &str) -> Regex {
    match Regex::new(source) {
        Ok(regex) => regex,
        Err(error) => unreachable!("built-in pattern {source:?} is valid: {error}"),
    }
}

static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$"));
static PHONE: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"^\+?1?[-. ]?\(?\d{3}\)?[-. ]?\d{3}[-. ]?\d{4}$"));
static USERNAME: LazyLock<Regex> = LazyLock::new(|| pattern(r"^[A-Za-z0-9_]{3,20}$"));

/// An email address of the usual shape `local@domain.tld`. Shape only: it
/// does not prove the address exists.
///
/// ```
/// use chain_security::validation::is_email;
/// assert!(is_email("ada@example.com"));
/// assert!(!is_email("ada@example"));
/// ```
pub fn is_email(text: &str) -> bool {
    text.len() <= 254 && EMAIL.is_match(text)
}

/// A North American phone number as accepted here: ten digits with
/// optional `+1`, parentheses, dots, dashes or spaces.
pub fn is_phone(text: &str) -> bool {
    PHONE.is_match(text)
}

/// An absolute `http` or `https` URL with a host. Every other scheme,
/// `javascript:` and `data:` included, is rejected, and so is text holding
/// whitespace or control characters: a URL parser drops tabs and newlines
/// anywhere and trims spaces at the ends, so `"ht\ntp://x"` parses, but the
/// caller keeps the raw text, which is not that URL (and may split a
/// header or a log line where it is used).
///
/// ```
/// use chain_security::validation::is_url;
/// assert!(is_url("https://example.com/a?b=c#d"));
/// assert!(!is_url("javascript:alert(1)"));
/// assert!(!is_url("ftp://example.com"));
/// ```
pub fn is_url(text: &str) -> bool {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    match url::Url::parse(text) {
        Ok(url) => {
            matches!(url.scheme(), "http" | "https")
                && url.host_str().is_some_and(|host| !host.is_empty())
        }
        Err(_) => false,
    }
}

/// 3 to 20 characters of `[A-Za-z0-9_]`.
pub fn is_username(text: &str) -> bool {
    USERNAME.is_match(text)
}

/// An IPv4 or IPv6 address.
pub fn is_ip(text: &str) -> bool {
    text.parse::<IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for good in ["ada@example.com", "a.b+c@sub.example.org", "x_y%z@host.io"] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada @example.com",
            "ada@exa mple.com",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn phones() {
        for good in [
            "5551234567",
            "555-123-4567",
            "(555) 123-4567",
            "+1 555 123 4567",
            "555.123.4567",
        ] {
            assert!(is_phone(good), "{good}");
        }
        for bad in ["", "12345", "555-1234-567", "phone", "555-123-45678"] {
            assert!(!is_phone(bad), "{bad}");
        }
    }

    #[test]
    fn urls_are_http_or_https_only() {
        for good in [
            "http://example.com",
            "https://example.com:8443/path?q=1#frag",
            "https://127.0.0.1/",
        ] {
            assert!(is_url(good), "{good}");
        }
        for bad in [
            "",
            "example.com",
            "javascript:alert(1)",
            "JAVASCRIPT:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "ftp://example.com",
            "file:///etc/passwd",
            "http://",
            // Found by fuzzing: a URL parser drops these, the raw text keeps
            // them.
            "htt\tp://example.com",
            "h\r\r\rttp:/example.com",
            "http\n\n:/example.com",
            "http://exam\nple.com/",
            " https://example.com",
            "https://example.com/ ",
            "https://example.com/\u{7f}",
            "https://exa mple.com/",
        ] {
            assert!(!is_url(bad), "{bad}");
        }
    }

    #[test]
    fn usernames_and_ips() {
        assert!(is_username("ada_1815"));
        assert!(!is_username("ad"));
        assert!(!is_username("a_name_that_is_far_too_long"));
        assert!(!is_username("ada lovelace"));
        assert!(!is_username("ada;"));
        for good in ["127.0.0.1", "::1", "2001:db8::8a2e:370:7334"] {
            assert!(is_ip(good), "{good}");
        }
        for bad in ["", "256.1.1.1", "1.2.3", "::g", "localhost"] {
            assert!(!is_ip(bad), "{bad}");
        }
    }
}
