//! Random sequences of calls (succeeding, failing, cancelled, interleaved)
//! against a plain, single-threaded model of the breaker's state machine.

use std::collections::VecDeque;
use std::time::Duration;

use chain_core::Error;
use chain_resilience::{CircuitBreaker, CircuitBreakerConfig, Permit, SlidingWindow, State};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Op {
    /// Ask for a permit and keep it in flight.
    Begin,
    /// Finish the in-flight call at this index (modulo their number).
    Succeed(usize),
    Fail(usize),
    Cancel(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Begin),
        2 => any::<usize>().prop_map(Op::Succeed),
        2 => any::<usize>().prop_map(Op::Fail),
        1 => any::<usize>().prop_map(Op::Cancel),
    ]
}

/// The model: the documented rules, written as plainly as possible. The
/// open wait is zero, so an open breaker turns half-open on the next call.
struct Model {
    window: usize,
    minimum: usize,
    threshold: f64,
    permits: u32,
    state: State,
    generation: u64,
    calls: VecDeque<bool>,
    permits_left: u32,
    completed: u32,
    failed: u32,
}

#[derive(Clone, Copy)]
struct ModelPermit {
    state: State,
    generation: u64,
}

impl Model {
    fn rate_reached(&self, failures: usize, calls: usize) -> bool {
        calls > 0 && failures as f64 * 100.0 / calls as f64 >= self.threshold
    }

    fn move_to(&mut self, state: State) {
        self.state = state;
        self.generation += 1;
        self.completed = 0;
        self.failed = 0;
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

    fn finish(&mut self, permit: ModelPermit, failed: bool) {
        if permit.generation != self.generation {
            return;
        }
        match permit.state {
            State::Closed => {
                self.calls.push_back(failed);
                if self.calls.len() > self.window {
                    self.calls.pop_front();
                }
                let failures = self.calls.iter().filter(|f| **f).count();
                if failed
                    && self.calls.len() >= self.minimum.min(self.window)
                    && self.rate_reached(failures, self.calls.len())
                {
                    self.move_to(State::Open);
                }
            }
            State::HalfOpen => {
                self.completed += 1;
                self.failed += u32::from(failed);
                if self.completed == self.permits {
                    if self.rate_reached(self.failed as usize, self.completed as usize) {
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_breaker_follows_the_model(
        window in 1_u32..8,
        minimum in 1_u32..10,
        threshold in prop::sample::select(vec![1.0, 25.0, 50.0, 75.0, 100.0]),
        permits in 1_u32..4,
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let breaker = CircuitBreaker::new(
            "model",
            CircuitBreakerConfig::default()
                .window(SlidingWindow::Count(window))
                .minimum_calls(minimum)
                .failure_rate_threshold(threshold)
                .wait_in_open(Duration::ZERO)
                .half_open_permits(permits),
        );
        let mut model = Model {
            window: window as usize,
            minimum: minimum as usize,
            threshold,
            permits,
            state: State::Closed,
            generation: 0,
            calls: VecDeque::new(),
            permits_left: 0,
            completed: 0,
            failed: 0,
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
                Op::Succeed(i) | Op::Fail(i) | Op::Cancel(i) if !in_flight.is_empty() => {
                    let (real, expected) = in_flight.swap_remove(i % in_flight.len());
                    match op {
                        Op::Succeed(_) => {
                            real.success();
                            model.finish(expected, false);
                        }
                        Op::Fail(_) => {
                            real.failure(&Error::unavailable("down"));
                            model.finish(expected, true);
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
