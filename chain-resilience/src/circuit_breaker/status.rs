//! The breaker's state packed into one `AtomicU64`, so that a state change,
//! handing out a half-open permit and counting a half-open result are each a
//! single compare-and-swap, tied to the generation they belong to.
//!
//! Layout, from the low bits: state (3), half-open permits left (10),
//! half-open calls completed (10), of which failed (10), of which slow (10),
//! generation (21; bumped on every state change, wrapping).

use serde::Serialize;

/// The states of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Calls pass and are recorded.
    Closed,
    /// Calls are rejected until the open wait has passed.
    Open,
    /// A limited number of probe calls decide between closing and opening.
    HalfOpen,
    /// Calls are rejected until the breaker is reset by hand.
    ForcedOpen,
    /// Calls pass and nothing is recorded.
    Disabled,
}

impl State {
    fn code(self) -> u64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
            Self::ForcedOpen => 3,
            Self::Disabled => 4,
        }
    }

    fn from_code(code: u64) -> Self {
        match code {
            1 => Self::Open,
            2 => Self::HalfOpen,
            3 => Self::ForcedOpen,
            4 => Self::Disabled,
            _ => Self::Closed,
        }
    }

    /// The state as a lowercase word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
            Self::Disabled => "disabled",
        }
    }
}

/// Largest half-open permit count the packed layout holds.
pub(crate) const MAX_PERMITS: u32 = (1 << FIELD_BITS) - 1;

const FIELD_BITS: u32 = 10;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;
const PERMITS_SHIFT: u32 = 3;
const COMPLETED_SHIFT: u32 = PERMITS_SHIFT + FIELD_BITS;
const FAILED_SHIFT: u32 = COMPLETED_SHIFT + FIELD_BITS;
const SLOW_SHIFT: u32 = FAILED_SHIFT + FIELD_BITS;
const GENERATION_SHIFT: u32 = SLOW_SHIFT + FIELD_BITS;

/// A decoded status word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) state: State,
    pub(crate) permits_left: u32,
    pub(crate) completed: u32,
    pub(crate) failed: u32,
    pub(crate) slow: u32,
    pub(crate) generation: u32,
}

impl Status {
    pub(crate) fn initial() -> Self {
        Self {
            state: State::Closed,
            permits_left: 0,
            completed: 0,
            failed: 0,
            slow: 0,
            generation: 0,
        }
    }

    /// The status after a change to `state`: a new generation, and for the
    /// half-open state a fresh set of `permits`.
    pub(crate) fn moved_to(self, state: State, permits: u32) -> Self {
        Self {
            state,
            permits_left: if state == State::HalfOpen {
                permits.min(MAX_PERMITS)
            } else {
                0
            },
            completed: 0,
            failed: 0,
            slow: 0,
            generation: self.generation.wrapping_add(1) & ((1 << (64 - GENERATION_SHIFT)) - 1),
        }
    }

    pub(crate) fn encode(self) -> u64 {
        self.state.code()
            | u64::from(self.permits_left) << PERMITS_SHIFT
            | u64::from(self.completed) << COMPLETED_SHIFT
            | u64::from(self.failed) << FAILED_SHIFT
            | u64::from(self.slow) << SLOW_SHIFT
            | u64::from(self.generation) << GENERATION_SHIFT
    }

    pub(crate) fn decode(word: u64) -> Self {
        let field = |shift: u32| ((word >> shift) & FIELD_MASK) as u32;
        Self {
            state: State::from_code(word & 0b111),
            permits_left: field(PERMITS_SHIFT),
            completed: field(COMPLETED_SHIFT),
            failed: field(FAILED_SHIFT),
            slow: field(SLOW_SHIFT),
            generation: (word >> GENERATION_SHIFT) as u32,
        }
    }

    /// Only the state and generation: what a recorded call belongs to.
    pub(crate) fn generation_of(word: u64) -> u32 {
        (word >> GENERATION_SHIFT) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_round_trips() {
        let status = Status {
            state: State::HalfOpen,
            permits_left: MAX_PERMITS,
            completed: 5,
            failed: 1023,
            slow: 7,
            generation: (1 << 21) - 1,
        };
        assert_eq!(Status::decode(status.encode()), status);
    }

    #[test]
    fn moving_bumps_the_generation_and_wraps() {
        let last = Status {
            generation: (1 << 21) - 1,
            ..Status::initial()
        };
        let moved = last.moved_to(State::HalfOpen, 3);
        assert_eq!(moved.generation, 0);
        assert_eq!(moved.permits_left, 3);
        assert_eq!(moved.moved_to(State::Open, 3).permits_left, 0);
    }
}
