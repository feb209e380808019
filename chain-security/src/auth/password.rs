use chain_core::{Error, Result};

/// bcrypt reads only the first 72 bytes of a password; longer ones are
/// rejected rather than silently truncated.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// Rules a new password must follow. By default: at least 8
/// characters with an uppercase letter, a lowercase letter and a digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Least number of characters.
    pub min_length: usize,
    /// Needs an uppercase letter.
    pub uppercase: bool,
    /// Needs a lowercase letter.
    pub lowercase: bool,
    /// Needs a digit.
    pub digit: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 8,
            uppercase: true,
            lowercase: true,
            digit: true,
        }
    }
}

impl PasswordPolicy {
    /// Checks `password`, listing every broken rule.
    ///
    /// # Errors
    ///
    /// A [`Validation`](chain_core::ErrorKind::Validation) error naming each
    /// broken rule, or saying the password is longer than bcrypt can hash.
    pub fn check(&self, password: &str) -> Result<()> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::validation(format!(
                "password is longer than {MAX_PASSWORD_BYTES} bytes, which bcrypt would truncate"
            )));
        }
        let mut broken = Vec::new();
        if password.chars().count() < self.min_length {
            broken.push(format!("at least {} characters", self.min_length));
        }
        if self.uppercase && !password.chars().any(char::is_uppercase) {
            broken.push("an uppercase letter".to_owned());
        }
        if self.lowercase && !password.chars().any(char::is_lowercase) {
            broken.push("a lowercase letter".to_owned());
        }
        if self.digit && !password.chars().any(|c| c.is_ascii_digit()) {
            broken.push("a digit".to_owned());
        }
        if broken.is_empty() {
            Ok(())
        } else {
            Err(Error::validation(format!(
                "password needs {}",
                broken.join(", ")
            )))
        }
    }
}
