use std::time::Duration;

/// The source of a bulkhead's or rate limiter's rejection: which policy
/// refused, and when trying again makes sense.
///
/// Reach it with `error.downcast_source::<Throttled>()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{policy} `{name}` is full{}", retry_hint(*retry_after))]
pub struct Throttled {
    /// `"bulkhead"` or `"rate limiter"`.
    pub policy: &'static str,
    /// The policy's name.
    pub name: String,
    /// How long to wait before trying again, when the policy can tell.
    pub retry_after: Option<Duration>,
}

fn retry_hint(retry_after: Option<Duration>) -> String {
    retry_after.map_or_else(String::new, |wait| format!(", retry after {wait:?}"))
}
