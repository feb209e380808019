use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The source of a circuit breaker's rejection: which breaker, and how long
/// until it lets probes through (`None` when forced open).
///
/// Reach it with `error.downcast_source::<CircuitOpen>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitOpen {
    pub(crate) breaker: Arc<str>,
    pub(crate) remaining: Option<Duration>,
}

impl CircuitOpen {
    /// The breaker's name.
    pub fn breaker(&self) -> &str {
        &self.breaker
    }

    /// Time until the breaker admits probe calls; `None` if it was forced
    /// open or is half-open with every probe in flight.
    pub fn remaining(&self) -> Option<Duration> {
        self.remaining
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.remaining {
            Some(remaining) => write!(
                f,
                "circuit `{}` open for another {remaining:?}",
                self.breaker
            ),
            None => write!(f, "circuit `{}` open", self.breaker),
        }
    }
}

impl std::error::Error for CircuitOpen {}
