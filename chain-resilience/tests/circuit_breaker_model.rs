//! Random sequences of calls (succeeding, failing, slow, cancelled,
//! interleaved) against a plain, single-threaded model of the breaker's
//! state machine.

use std::collections::VecDeque;
use std::time::Duration;

use chain_core::Error;
use chain_resilience::{CircuitBreaker, CircuitBreakerConfig, Permit, SlidingWindow, State};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Op {
    /// Ask for a permit and keep it in flight.
    Begin,
    /// Finish the in-flight call at this index (modulo their number), fast
    /// or slow.
    Succeed(usize, bool),
    Fail(usize, bool),
    Cancel(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Begin),
        2 => (any::<usize>(), prop::bool::weighted(0.2)).prop_map(|(i, slow)| Op::Succeed(i, slow)),
        2 => (any::<usize>(), prop::bool::weighted(0.2)).prop_map(|(i, slow)| Op::Fail(i, slow)),
        1 => any::<usize>().prop_map(Op::Cancel),
    ]
}

/// The model: the documented rules, written as plainly as possible. The
/// open wait is zero, so an open breaker turns half-open on the next call.
struct Model {
    window: usize,
    minimum: usize,
    threshold: f64,
    slow_threshold: f64,
    permits: u32,
    state: State,
    generation: u64,
    /// (failed, slow) of the calls in the window.
    calls: VecDeque<(bool, bool)>,
    permits_left: u32,
    completed: u32,
    failed: u32,
    slow: u32,
}

#[derive(Clone, Copy)]
struct ModelPermit {
    state: State,
    generation: u64,
}

impl Model {
    fn rates_reached(&self, failures: usize, slow: usize, calls: usize) -> bool {
        let rate = |part: usize| part as f64 * 100.0 / calls as f64;
        calls > 0 && (rate(failures) >= self.threshold || rate(slow) >= self.slow_threshold)
    }

    fn move_to(&mut self, state: State) {
        self.state = state;
        self.generation += 1;
        self.completed = 0;
        self.failed = 0;
        self.slow = 0;
        self.permits_left = if state == State::HalfOpen {
            self.permits
        } else {
            0
        };
    }

    fn begin(&mut self) -> Option<ModelPermit> {
        if self.state == State::Open {
            self.move_to(State::HalfOpen);
        }
        match self.state {
            State::Closed => Some(ModelPermit {
                state: State::Closed,
                generation: self.generation,
            }),
            State::HalfOpen if self.permits_left > 0 => {
                self.permits_left -= 1;
                Some(ModelPermit {
                    state: State::HalfOpen,
                    generation: self.generation,
                })
            }
            _ => None,
        }
    }

    fn finish(&mut self, permit: ModelPermit, failed: bool, slow: bool) {
        if permit.generation != self.generation {
            return;
        }
        match permit.state {
            State::Closed => {
                self.calls.push_back((failed, slow));
                if self.calls.len() > self.window {
                    self.calls.pop_front();
                }
                let failures = self.calls.iter().filter(|(f, _)| *f).count();
                let slow_calls = self.calls.iter().filter(|(_, s)| *s).count();
                if (failed || slow)
                    && self.calls.len() >= self.minimum.min(self.window)
                    && self.rates_reached(failures, slow_calls, self.calls.len())
                {
                    self.move_to(State::Open);
                }
            }
            State::HalfOpen => {
                self.completed += 1;
                self.failed += u32::from(failed);
                self.slow += u32::from(slow);
                if self.completed == self.permits {
                    if self.rates_reached(
                        self.failed as usize,
                        self.slow as usize,
                        self.completed as usize,
                    ) {
                        self.move_to(State::Open);
                    } else {
                        self.calls.clear();
                        self.move_to(State::Closed);
                    }
                }
            }
            _ => {}
        }
    }

    fn cancel(&mut self, permit: ModelPermit) {
        if permit.generation == self.generation && permit.state == State::HalfOpen {
            self.permits_left += 1;
        }
    }
}

/// The slow-call limit: calls reported as taking twice as long are slow.
const SLOW: Duration = Duration::from_millis(100);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_breaker_follows_the_model(
        window in 1_u32..8,
        minimum in 1_u32..10,
        threshold in prop::sample::select(vec![1.0, 25.0, 50.0, 75.0, 100.0]),
        slow_threshold in prop::sample::select(vec![25.0, 50.0, 100.0]),
        permits in 1_u32..4,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let breaker = CircuitBreaker::new(
            "model",
            CircuitBreakerConfig::default()
                .window(SlidingWindow::Count(window))
                .minimum_calls(minimum)
                .failure_rate_threshold(threshold)
                .slow_calls(SLOW, slow_threshold)
                .wait_in_open(Duration::ZERO)
                .half_open_permits(permits),
        );
        let mut model = Model {
            window: window as usize,
            minimum: minimum as usize,
            threshold,
            slow_threshold,
            permits,
            state: State::Closed,
            generation: 0,
            calls: VecDeque::new(),
            permits_left: 0,
            completed: 0,
            failed: 0,
            slow: 0,
        };
        let mut in_flight: Vec<(Permit<'_>, ModelPermit)> = Vec::new();
        for op in ops {
            match op {
                Op::Begin => {
                    let real = breaker.try_acquire();
                    let expected = model.begin();
                    prop_assert_eq!(real.is_ok(), expected.is_some(), "admission differs");
                    if let (Ok(real), Some(expected)) = (real, expected) {
                        in_flight.push((real, expected));
                    }
                }
                Op::Succeed(i, _) | Op::Fail(i, _) | Op::Cancel(i) if !in_flight.is_empty() => {
                    let (real, expected) = in_flight.swap_remove(i % in_flight.len());
                    let took = |slow: bool| if slow { SLOW * 2 } else { Duration::ZERO };
                    match op {
                        Op::Succeed(_, slow) => {
                            real.record(Ok(()), took(slow));
                            model.finish(expected, false, slow);
                        }
                        Op::Fail(_, slow) => {
                            real.record(Err(&Error::unavailable("down")), took(slow));
                            model.finish(expected, true, slow);
                        }
                        _ => {
                            drop(real);
                            model.cancel(expected);
                        }
                    }
                }
                _ => {}
            }
            prop_assert_eq!(breaker.state(), model.state);
        }
    }
}
