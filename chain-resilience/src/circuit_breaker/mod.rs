//! [`CircuitBreaker`]: stops calling a failing dependency, then probes it.
//!
//! The breaker is **closed** while calls succeed. When the failure rate (or
//! the slow-call rate) of the calls in its sliding window reaches a
//! threshold, with at least a minimum number of calls, it **opens** and
//! rejects calls at once, without touching the dependency. After the open
//! wait it turns **half-open** and admits a fixed number of probe calls:
//! if their failure rate is below the threshold it closes, otherwise it
//! opens again (for longer, with backoff). It can also be **forced open**
//! or **disabled** by hand.
//!
//! Three ways to use one breaker:
//!
//! - as a guard around any future: [`CircuitBreaker::call`];
//! - as chain middleware around a link or every link (it implements
//!   [`Middleware`]);
//! - by hand, with [`CircuitBreaker::try_acquire`] and a [`Permit`].
//!
//! # Hot path
//!
//! No lock is taken: admission is one atomic load while closed, recording a
//! call is a few relaxed atomic operations on the window, and every state
//! change, half-open permit and half-open result is a compare-and-swap on a
//! single status word tagged with a generation, so results of calls admitted
//! before a state change never count after it. A permit that is dropped
//! without a result (its future was cancelled) or whose error is ignored
//! hands its half-open slot back, so the breaker cannot wedge half-open.
//!
//! ```
//! use std::time::Duration;
//! use chain_core::{Error, ErrorKind};
//! use chain_resilience::{CircuitBreaker, CircuitBreakerConfig, State};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // Five failures in a row open the circuit for 5 minutes.
//! let breaker = CircuitBreaker::new(
//!     "inventory",
//!     CircuitBreakerConfig::consecutive_failures(5, Duration::from_secs(300)),
//! );
//! for _ in 0..5 {
//!     let _ = breaker.call(async { Err::<(), _>(Error::unavailable("inventory down")) }).await;
//! }
//! assert_eq!(breaker.state(), State::Open);
//!
//! let rejected = breaker.call(async { Ok(()) }).await.unwrap_err();
//! assert_eq!(rejected.kind(), ErrorKind::Rejected);
//! # }
//! ```

mod config;
mod error;
mod status;
mod window;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use chain_core::{BoxFuture, Error, Middleware, Next, Result};
use serde::Serialize;
use tokio::sync::broadcast;

pub use config::{CircuitBreakerConfig, FailurePredicate, SlidingWindow};
pub use error::CircuitOpen;
pub use status::State;
use status::{MAX_PERMITS, Status};
use window::{Outcome, Window};

/// A circuit breaker; see the [module docs](self). Cloning is cheap and
/// clones share state.
#[derive(Clone)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
}

struct Shared {
    name: Arc<str>,
    config: CircuitBreakerConfig,
    status: AtomicU64,
    window: Window,
    origin: Instant,
    /// Nanoseconds since `origin` until which an open circuit rejects.
    open_until: AtomicU64,
    /// Consecutive re-openings from half-open, for backoff.
    reopened: AtomicU32,
    rejected: AtomicU64,
    events: broadcast::Sender<StateChange>,
}

/// A state change, as delivered to [`CircuitBreaker::subscribe`]rs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateChange {
    /// The breaker's name.
    pub breaker: Arc<str>,
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
}

/// A point-in-time view of a breaker, from [`CircuitBreaker::metrics`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerMetrics {
    /// The breaker's name.
    pub name: Arc<str>,
    /// The current state.
    pub state: State,
    /// Calls in the sliding window.
    pub calls: u32,
    /// Failed calls in the window.
    pub failures: u32,
    /// Slow calls in the window.
    pub slow_calls: u32,
    /// Failure rate in percent over the window; `None` until the minimum
    /// number of calls is reached.
    pub failure_rate: Option<f64>,
    /// Slow-call rate in percent over the window; `None` as above.
    pub slow_call_rate: Option<f64>,
    /// Calls rejected since the breaker was made.
    pub rejected: u64,
}

impl CircuitBreaker {
    /// A closed breaker named `name` (used in errors, events and metrics).
    pub fn new(name: impl Into<Cow<'static, str>>, config: CircuitBreakerConfig) -> Self {
        let permits = config.half_open_permits.min(MAX_PERMITS);
        let config = config.half_open_permits(permits);
        let (events, _) = broadcast::channel(64);
        Self {
            shared: Arc::new(Shared {
                name: Arc::from(name.into().as_ref()),
                window: Window::new(config.window),
                config,
                status: AtomicU64::new(Status::initial().encode()),
                origin: Instant::now(),
                open_until: AtomicU64::new(0),
                reopened: AtomicU32::new(0),
                rejected: AtomicU64::new(0),
                events,
            }),
        }
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The current state. An open breaker whose wait has passed still reads
    /// `Open` until the next call turns it half-open.
    pub fn state(&self) -> State {
        Status::decode(self.shared.status.load(Ordering::Acquire)).state
    }

    /// State changes from now on. Slow receivers lose the oldest changes
    /// (the channel holds 64) rather than slowing the breaker down.
    pub fn subscribe(&self) -> broadcast::Receiver<StateChange> {
        self.shared.events.subscribe()
    }

    /// Counts and rates over the current window.
    pub fn metrics(&self) -> BreakerMetrics {
        let shared = &self.shared;
        let counts = shared.window.counts(shared.second());
        let rate = |part: u32| {
            (counts.calls >= shared.config.minimum_calls && counts.calls > 0)
                .then(|| f64::from(part) * 100.0 / f64::from(counts.calls))
        };
        BreakerMetrics {
            name: Arc::clone(&shared.name),
            state: self.state(),
            calls: counts.calls,
            failures: counts.failures,
            slow_calls: counts.slow,
            failure_rate: rate(counts.failures),
            slow_call_rate: rate(counts.slow),
            rejected: shared.rejected.load(Ordering::Relaxed),
        }
    }

    /// Asks to make a call. `Ok` carries a [`Permit`] to report the result
    /// with; `Err` is a cheap [`Rejected`](chain_core::ErrorKind::Rejected)
    /// error whose source is a [`CircuitOpen`].
    ///
    /// # Errors
    ///
    /// The rejection when the circuit is open, forced open, or half-open
    /// with every probe already in flight.
    pub fn try_acquire(&self) -> Result<Permit<'_>> {
        let shared = &*self.shared;
        let mut word = shared.status.load(Ordering::Acquire);
        loop {
            let status = Status::decode(word);
            match status.state {
                State::Closed => return Ok(Permit::new(shared, status, true)),
                State::Disabled => return Ok(Permit::new(shared, status, false)),
                State::ForcedOpen => return Err(shared.reject(None)),
                State::Open => {
                    let now = shared.nanos();
                    let until = shared.open_until.load(Ordering::Acquire);
                    if now < until {
                        return Err(shared.reject(Some(Duration::from_nanos(until - now))));
                    }
                    let half_open =
                        status.moved_to(State::HalfOpen, shared.config.half_open_permits);
                    if let Some(current) = shared.change(word, status, half_open) {
                        word = current;
                        continue;
                    }
                    word = half_open.encode();
                }
                State::HalfOpen => {
                    if status.permits_left == 0 {
                        return Err(shared.reject(None));
                    }
                    let taken = Status {
                        permits_left: status.permits_left - 1,
                        ..status
                    };
                    match shared.status.compare_exchange_weak(
                        word,
                        taken.encode(),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return Ok(Permit::new(shared, taken, true)),
                        Err(current) => word = current,
                    }
                }
            }
        }
    }

    /// Runs `future` if the breaker admits it and records its result.
    /// Dropping the returned future before it finishes records nothing and
    /// releases a half-open permit.
    ///
    /// # Errors
    ///
    /// The rejection (see [`try_acquire`](Self::try_acquire)) without
    /// polling `future`, or the future's own error.
    pub async fn call<T, F>(&self, future: F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let permit = self.try_acquire()?;
        let outcome = future.await;
        match &outcome {
            Ok(_) => permit.success(),
            Err(error) => permit.failure(error),
        }
        outcome
    }

    /// Opens the circuit until [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.shared.force(State::ForcedOpen);
    }

    /// Lets every call through and records nothing until
    /// [`reset`](Self::reset).
    pub fn disable(&self) {
        self.shared.force(State::Disabled);
    }

    /// Closes the circuit with an empty window, whatever its state.
    pub fn reset(&self) {
        self.shared.reopened.store(0, Ordering::Relaxed);
        self.shared.window.reset();
        self.shared.force(State::Closed);
    }
}

impl Shared {
    fn nanos(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn second(&self) -> u64 {
        if self.window.needs_clock() {
            self.origin.elapsed().as_secs()
        } else {
            0
        }
    }

    fn reject(&self, remaining: Option<Duration>) -> Error {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        let error = Error::rejected("circuit open");
        let error = match remaining {
            Some(wait) => error.with_retry_after(wait),
            None => error,
        };
        error.with_source(CircuitOpen {
            breaker: Arc::clone(&self.name),
            remaining,
        })
    }

    /// Moves from `from` (read as `word`) to `to`, announcing the change.
    /// Returns the current word if another thread changed it first.
    fn change(&self, word: u64, from: Status, to: Status) -> Option<u64> {
        if to.state == State::Open {
            let wait = self.config.open_wait(self.reopened.load(Ordering::Relaxed));
            let until = self
                .nanos()
                .saturating_add(u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX));
            self.open_until.store(until, Ordering::Release);
        }
        match self
            .status
            .compare_exchange(word, to.encode(), Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                let _ = self.events.send(StateChange {
                    breaker: Arc::clone(&self.name),
                    from: from.state,
                    to: to.state,
                });
                None
            }
            Err(current) => Some(current),
        }
    }

    fn force(&self, state: State) {
        let mut word = self.status.load(Ordering::Acquire);
        loop {
            let status = Status::decode(word);
            match self.change(
                word,
                status,
                status.moved_to(state, self.config.half_open_permits),
            ) {
                None => return,
                Some(current) => word = current,
            }
        }
    }

    fn record(&self, admitted: Status, outcome: Outcome) {
        match admitted.state {
            State::Closed => self.record_closed(admitted, outcome),
            State::HalfOpen => self.record_half_open(admitted, outcome),
            _ => {}
        }
    }

    fn record_closed(&self, admitted: Status, outcome: Outcome) {
        if outcome == Outcome::Success && self.window.absorbs_success() {
            return;
        }
        let word = self.status.load(Ordering::Acquire);
        if Status::generation_of(word) != admitted.generation {
            return;
        }
        let second = self.second();
        self.window.record(outcome, second);
        if !outcome.is_bad() {
            return;
        }
        let counts = self.window.counts(second);
        let enough = counts.calls >= self.config.minimum_calls.min(self.window_capacity());
        if enough && self.exceeds_thresholds(counts.calls, counts.failures, counts.slow) {
            let current = Status::decode(word);
            if current.state == State::Closed {
                self.change(word, current, current.moved_to(State::Open, 0));
            }
        }
    }

    fn record_half_open(&self, admitted: Status, outcome: Outcome) {
        let permits = self.config.half_open_permits;
        let mut word = self.status.load(Ordering::Acquire);
        loop {
            let status = Status::decode(word);
            if status.generation != admitted.generation || status.state != State::HalfOpen {
                return;
            }
            let counted = Status {
                completed: status.completed + 1,
                failed: status.failed + u32::from(outcome.is_failure()),
                slow: status.slow + u32::from(outcome.is_slow()),
                ..status
            };
            if counted.completed < permits {
                match self.status.compare_exchange_weak(
                    word,
                    counted.encode(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return,
                    Err(current) => word = current,
                }
                continue;
            }
            let reopen = self.exceeds_thresholds(counted.completed, counted.failed, counted.slow);
            if reopen {
                // Counted first so the open wait of this re-opening backs off.
                self.reopened.fetch_add(1, Ordering::Relaxed);
                match self.change(word, status, counted.moved_to(State::Open, 0)) {
                    None => return,
                    Some(current) => {
                        self.reopened.fetch_sub(1, Ordering::Relaxed);
                        word = current;
                    }
                }
            } else {
                // Nobody records into the closed window while half-open, so
                // clearing it before the change loses nothing.
                self.window.reset();
                match self.change(word, status, counted.moved_to(State::Closed, 0)) {
                    None => {
                        self.reopened.store(0, Ordering::Relaxed);
                        return;
                    }
                    Some(current) => word = current,
                }
            }
        }
    }

    fn exceeds_thresholds(&self, calls: u32, failures: u32, slow: u32) -> bool {
        if calls == 0 {
            return false;
        }
        let rate = |part: u32| f64::from(part) * 100.0 / f64::from(calls);
        rate(failures) >= self.config.failure_rate_threshold
            || (self.config.slow_call_duration.is_some()
                && rate(slow) >= self.config.slow_call_rate_threshold)
    }

    /// The most calls the closed window can hold, so a minimum larger than
    /// the window does not keep the breaker closed forever.
    fn window_capacity(&self) -> u32 {
        match self.config.window {
            SlidingWindow::Count(size) => size,
            SlidingWindow::Time(_) => u32::MAX,
        }
    }

    /// Hands an unused half-open permit back.
    fn release(&self, admitted: Status) {
        if admitted.state != State::HalfOpen {
            return;
        }
        let mut word = self.status.load(Ordering::Acquire);
        loop {
            let status = Status::decode(word);
            if status.generation != admitted.generation || status.state != State::HalfOpen {
                return;
            }
            let returned = Status {
                permits_left: status.permits_left + 1,
                ..status
            };
            match self.status.compare_exchange_weak(
                word,
                returned.encode(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(current) => word = current,
            }
        }
    }
}

/// Permission to make one call, from [`CircuitBreaker::try_acquire`].
///
/// Report the result with [`success`](Self::success),
/// [`failure`](Self::failure) or [`ignore`](Self::ignore). Dropping it
/// without a report (a cancelled call) counts as `ignore`: nothing is
/// recorded and a half-open probe slot is handed back.
#[must_use = "report the call's result, or drop the permit to release it"]
pub struct Permit<'a> {
    shared: &'a Shared,
    admitted: Status,
    records: bool,
    started: Option<Instant>,
    reported: bool,
}

impl<'a> Permit<'a> {
    fn new(shared: &'a Shared, admitted: Status, records: bool) -> Self {
        let started = (records && shared.config.slow_call_duration.is_some()).then(Instant::now);
        Self {
            shared,
            admitted,
            records,
            started,
            reported: false,
        }
    }

    fn is_slow(&self, elapsed: Option<Duration>) -> bool {
        let elapsed = elapsed.or_else(|| self.started.map(|started| started.elapsed()));
        match (elapsed, self.shared.config.slow_call_duration) {
            (Some(elapsed), Some(limit)) => elapsed >= limit,
            _ => false,
        }
    }

    fn report(mut self, failed: bool, elapsed: Option<Duration>) {
        self.reported = true;
        if self.records {
            let outcome = Outcome::new(failed, self.is_slow(elapsed));
            self.shared.record(self.admitted, outcome);
        }
    }

    /// Reports the call's result with a duration measured by the caller
    /// (the breaker then reads no clock for it): `Ok(())` for a success,
    /// `Err(error)` for a failure judged by the breaker's predicate.
    pub fn record(self, result: std::result::Result<(), &Error>, elapsed: Duration) {
        let failed = result.is_err_and(|error| (self.shared.config.is_failure)(error));
        self.report(failed, Some(elapsed));
    }

    /// The call succeeded.
    pub fn success(self) {
        self.report(false, None);
    }

    /// The call failed with `error`; the breaker's predicate decides whether
    /// it counts as a failure or a success.
    pub fn failure(self, error: &Error) {
        let failed = (self.shared.config.is_failure)(error);
        self.report(failed, None);
    }

    /// Forget the call: nothing is recorded and a half-open slot is freed.
    pub fn ignore(self) {
        drop(self);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.shared.release(self.admitted);
        }
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.shared.name)
            .field("state", &self.admitted.state)
            .finish()
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.shared.name)
            .field("state", &self.state())
            .field("config", &self.shared.config)
            .finish()
    }
}

/// Guards the wrapped link (or every link, with
/// [`Chain::around_each`](chain_core::Chain::around_each)): a rejection
/// short-circuits without running it.
impl<C: Send + 'static> Middleware<C> for CircuitBreaker {
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        Box::pin(CircuitBreaker::call(self, next.run(ctx)))
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(format!("circuit_breaker({})", self.shared.name))
    }
}
