use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// When repeated failed logins lock an account. Default as the seed and
/// OWASP's usual figures: 5 failures within 30 minutes lock it for 30
/// minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures that lock the account.
    pub max_failures: usize,
    /// How far back failures count.
    pub window: Duration,
    /// How long the lock lasts.
    pub duration: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(30 * 60),
            duration: Duration::from_secs(30 * 60),
        }
    }
}

/// Accounts tracked at most; beyond, accounts whose failures have all
/// expired are forgotten first. Failed logins for made-up names must not
/// grow memory without bound.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Default)]
struct Attempts {
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

/// Failed logins per account.
#[derive(Debug, Default)]
pub(crate) struct Lockouts {
    policy: LockoutPolicy,
    accounts: Mutex<HashMap<String, Attempts>>,
}

impl Lockouts {
    pub(crate) fn new(policy: LockoutPolicy) -> Self {
        Self {
            policy,
            accounts: Mutex::new(HashMap::new()),
        }
    }

    /// Time left on the account's lock, if it is locked.
    pub(crate) fn locked_for(&self, username: &str) -> Option<Duration> {
        let now = Instant::now();
        let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let until = accounts.get(username)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failure; returns whether it locked the account.
    pub(crate) fn fail(&self, username: &str) -> bool {
        let now = Instant::now();
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        if accounts.len() >= MAX_TRACKED && !accounts.contains_key(username) {
            let window = self.policy.window;
            accounts.retain(|_, attempts| {
                attempts.locked_until.is_some_and(|until| until > now)
                    || attempts
                        .failures
                        .back()
                        .is_some_and(|last| now.duration_since(*last) < window)
            });
        }
        let attempts = accounts.entry(username.to_owned()).or_default();
        while attempts
            .failures
            .front()
            .is_some_and(|first| now.duration_since(*first) >= self.policy.window)
        {
            attempts.failures.pop_front();
        }
        attempts.failures.push_back(now);
        if attempts.failures.len() >= self.policy.max_failures {
            attempts.failures.clear();
            attempts.locked_until = Some(now + self.policy.duration);
            return true;
        }
        false
    }

    /// Forgets the account's failures after a successful login.
    pub(crate) fn clear(&self, username: &str) {
        self.accounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(username);
    }
}
