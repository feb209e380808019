//! Per-account lockout: failed logins in a sliding window lock an account
//! for a while.
//!
//! Built to hold under attack:
//!
//! - **Concurrency.** An attempt reserves its place before its password is
//!   compared ([`Lockouts::begin`]). Failures already counted plus attempts
//!   still being compared never exceed `max_failures`, so a burst of
//!   parallel guesses cannot have more passwords compared than a patient
//!   attacker could. Attempts beyond that wait (without holding any lock)
//!   until one in flight ends: then they go on if it succeeded, and are
//!   refused if it locked the account. A success that finishes after the
//!   account was locked does not clear the lock.
//! - **Memory.** At most `max_tracked_accounts` are tracked, each in a fixed
//!   amount of memory (names are kept as a keyed 128-bit hash, not as the
//!   text an attacker sent). Each call does a constant amount of work,
//!   whatever the number of names tracked.
//! - **Time.** Times come from tokio's clock, so tests can pause and advance
//!   it; durations of any size saturate instead of overflowing.
//!
//! No lock is held across an await: every method here is synchronous.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use std::sync::Arc;

use tokio::sync::Notify;
use tokio::time::Instant;

/// When repeated failed logins lock an account. The default follows
/// OWASP's usual figures: 5 failures within 30 minutes lock it for 30
/// minutes.
///
/// # Which accounts are forgotten first
///
/// At most [`AuthConfig::max_tracked_accounts`](super::AuthConfig::max_tracked_accounts)
/// accounts are tracked (100,000 by default). When that many are and a new
/// name fails, one is
/// forgotten: the one whose last failure is the oldest among those that are
/// neither locked nor being checked right now (among the 32 oldest, so the
/// cost stays constant). Locked accounts are kept in preference; if only
/// locked ones are found, the oldest of them goes. Accounts with an attempt
/// in flight are never forgotten; when every candidate has one, the new
/// attempt is refused as if locked.
///
/// Forgetting costs an attacker one bcrypt comparison per made-up name, so
/// pushing a victim's failures out of a table of 100,000 takes 100,000
/// comparisons (hours at bcrypt's cost 12). Deployments with more accounts
/// under attack than that should raise the bound (each tracked account
/// takes about `120 + 16 × max_failures` bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures within `window` that lock the account (at least 1).
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

/// How many of the oldest entries a new name looks at to find one to
/// forget; a constant, so a call's cost does not depend on the table's size.
const EVICTION_PROBES: usize = 32;

/// An account's key: a keyed hash of its name, so an entry's size does not
/// depend on what the attacker sent, and collisions cannot be crafted
/// without the process's random keys.
type AccountKey = (u64, u64);

#[derive(Debug)]
struct Account {
    /// Failures within the window, oldest first; never more than
    /// `max_failures`.
    failures: VecDeque<Instant>,
    /// Attempts whose password is being compared.
    in_flight: usize,
    locked_until: Option<Instant>,
    /// Wakes attempts waiting for one in flight to end.
    settled: Arc<Notify>,
    /// The entry's place in the eviction order: the stamp of its newest
    /// entry in [`Table::order`].
    stamp: u64,
}

impl Account {
    fn locked_at(&self, now: Instant) -> Option<Duration> {
        self.locked_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    fn forget_old_failures(&mut self, now: Instant, window: Duration) {
        while self
            .failures
            .front()
            .is_some_and(|first| now.saturating_duration_since(*first) >= window)
        {
            self.failures.pop_front();
        }
    }

    fn is_idle(&self, now: Instant) -> bool {
        self.in_flight == 0 && self.failures.is_empty() && self.locked_at(now).is_none()
    }
}

#[derive(Debug, Default)]
struct Table {
    accounts: HashMap<AccountKey, Account>,
    /// Keys by last activity, oldest first. A key touched again is pushed
    /// again with a new stamp; entries whose stamp is not their account's
    /// are stale and skipped (and compacted away when they pile up).
    order: VecDeque<(AccountKey, u64)>,
    next_stamp: u64,
}

impl Table {
    fn touch(&mut self, key: AccountKey) {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        if let Some(account) = self.accounts.get_mut(&key) {
            account.stamp = stamp;
            self.order.push_back((key, stamp));
        }
        // Amortized constant: compacting removes at least half the queue.
        if self.order.len() > 2 * self.accounts.len() + 64 {
            let accounts = &self.accounts;
            self.order
                .retain(|(key, stamp)| accounts.get(key).is_some_and(|a| a.stamp == *stamp));
        }
    }

    /// Makes room for one more account; `false` if every candidate has an
    /// attempt in flight. Looks at no more than [`EVICTION_PROBES`] of the
    /// oldest entries: the first that is neither locked nor in flight goes;
    /// locked and in-flight ones are moved to the back (kept in
    /// preference); if none could go, the first locked one looked at goes.
    fn evict_one(&mut self, now: Instant) -> bool {
        let mut locked_candidate = None;
        let mut kept = Vec::new();
        let mut probes = 0;
        while probes < EVICTION_PROBES {
            let Some((key, stamp)) = self.order.pop_front() else {
                break;
            };
            let Some(account) = self.accounts.get(&key).filter(|a| a.stamp == stamp) else {
                continue; // stale
            };
            probes += 1;
            if account.in_flight > 0 {
                kept.push(key);
            } else if account.locked_at(now).is_some() {
                if locked_candidate.is_none() {
                    locked_candidate = Some(key);
                } else {
                    kept.push(key);
                }
            } else {
                self.accounts.remove(&key);
                if let Some(locked) = locked_candidate {
                    kept.push(locked);
                }
                self.requeue(kept);
                return true;
            }
        }
        self.requeue(kept);
        match locked_candidate {
            Some(key) => {
                self.accounts.remove(&key);
                true
            }
            None => false,
        }
    }

    fn requeue(&mut self, keys: Vec<AccountKey>) {
        for key in keys {
            self.touch(key);
        }
    }
}

/// Failed logins per account.
#[derive(Debug)]
pub(crate) struct Lockouts {
    policy: LockoutPolicy,
    max_tracked: usize,
    keys: (RandomState, RandomState),
    table: Mutex<Table>,
}

/// Why an attempt was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Locked {
    pub(crate) retry_after: Duration,
}

impl Lockouts {
    pub(crate) fn new(policy: LockoutPolicy, max_tracked: usize) -> Self {
        Self {
            policy: LockoutPolicy {
                max_failures: policy.max_failures.max(1),
                ..policy
            },
            max_tracked: max_tracked.max(1),
            keys: (RandomState::new(), RandomState::new()),
            table: Mutex::new(Table::default()),
        }
    }

    fn key(&self, username: &str) -> AccountKey {
        (
            self.keys.0.hash_one(username),
            self.keys.1.hash_one(username),
        )
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_until(&self, now: Instant) -> Instant {
        now.checked_add(self.policy.duration)
            .unwrap_or_else(|| far_future(now))
    }

    /// Reserves an attempt for `username`, or says how long it stays locked.
    ///
    /// While failures counted plus attempts in flight reach `max_failures`,
    /// it waits for an attempt in flight to end, then decides again. When
    /// the table is full of accounts with attempts in flight, it refuses
    /// with the policy's duration as `retry_after`.
    pub(crate) async fn begin(&self, username: &str) -> Result<Attempt<'_>, Locked> {
        let key = self.key(username);
        loop {
            let settled = match self.try_begin(key) {
                Reservation::Granted(attempt) => return Ok(attempt),
                Reservation::Locked(locked) => return Err(locked),
                Reservation::Busy(settled) => settled,
            };
            // Registered before deciding again, so an attempt that ends in
            // between is not missed.
            let notified = settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.try_begin(key) {
                Reservation::Granted(attempt) => return Ok(attempt),
                Reservation::Locked(locked) => return Err(locked),
                Reservation::Busy(_) => notified.await,
            }
        }
    }

    fn try_begin(&self, key: AccountKey) -> Reservation<'_> {
        let now = Instant::now();
        let duration = self.policy.duration;
        let mut table = self.table();
        if !table.accounts.contains_key(&key) {
            if table.accounts.len() >= self.max_tracked && !table.evict_one(now) {
                return Reservation::Locked(Locked {
                    retry_after: duration,
                });
            }
            table.accounts.insert(
                key,
                Account {
                    failures: VecDeque::new(),
                    in_flight: 0,
                    locked_until: None,
                    settled: Arc::new(Notify::new()),
                    stamp: 0,
                },
            );
        }
        let window = self.policy.window;
        let max_failures = self.policy.max_failures;
        let Some(account) = table.accounts.get_mut(&key) else {
            return Reservation::Locked(Locked {
                retry_after: duration,
            });
        };
        if let Some(retry_after) = account.locked_at(now) {
            return Reservation::Locked(Locked { retry_after });
        }
        account.locked_until = None;
        account.forget_old_failures(now, window);
        if account.failures.len() + account.in_flight >= max_failures {
            return Reservation::Busy(Arc::clone(&account.settled));
        }
        account.in_flight += 1;
        table.touch(key);
        Reservation::Granted(Attempt {
            lockouts: self,
            key,
            settled: false,
        })
    }

    /// Accounts tracked now.
    pub(crate) fn tracked(&self) -> usize {
        self.table().accounts.len()
    }

    /// Ends an attempt: `failed` counts a failure (and may lock), otherwise
    /// the attempt only gives its place back. Returns the lock in force
    /// after it, if any.
    fn settle(&self, key: AccountKey, outcome: Outcome) -> Option<Duration> {
        let now = Instant::now();
        let mut table = self.table();
        let account = table.accounts.get_mut(&key)?;
        account.in_flight = account.in_flight.saturating_sub(1);
        account.settled.notify_waiters();
        let locked = match outcome {
            Outcome::Failed => {
                account.forget_old_failures(now, self.policy.window);
                account.failures.push_back(now);
                if account.failures.len() >= self.policy.max_failures {
                    account.failures.clear();
                    account.locked_until = Some(self.lock_until(now));
                }
                account.locked_at(now)
            }
            Outcome::Succeeded => {
                let locked = account.locked_at(now);
                if locked.is_none() {
                    account.failures.clear();
                }
                locked
            }
            Outcome::Abandoned => account.locked_at(now),
        };
        if account.is_idle(now) {
            table.accounts.remove(&key);
        } else if matches!(outcome, Outcome::Failed) {
            table.touch(key);
        }
        locked
    }
}

fn far_future(now: Instant) -> Instant {
    // About thirty years, as tokio's own "far future"; an `Instant` cannot
    // hold much more on every platform.
    now + Duration::from_secs(86_400 * 365 * 30)
}

enum Reservation<'a> {
    Granted(Attempt<'a>),
    Locked(Locked),
    /// Attempts in flight may use up the account's remaining failures: wait
    /// for one to end.
    Busy(Arc<Notify>),
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Failed,
    Succeeded,
    Abandoned,
}

/// A reserved attempt. Dropped without an outcome (its login was
/// cancelled), it gives its place back without counting a failure: its
/// result was never seen, so it taught nobody anything.
#[derive(Debug)]
pub(crate) struct Attempt<'a> {
    lockouts: &'a Lockouts,
    key: AccountKey,
    settled: bool,
}

impl Attempt<'_> {
    /// The password was wrong.
    pub(crate) fn failed(mut self) {
        self.settled = true;
        self.lockouts.settle(self.key, Outcome::Failed);
    }

    /// The password was right: clears the failures, unless the account was
    /// locked meanwhile, in which case the lock stands and is returned.
    pub(crate) fn succeeded(mut self) -> Result<(), Locked> {
        self.settled = true;
        match self.lockouts.settle(self.key, Outcome::Succeeded) {
            Some(retry_after) => Err(Locked { retry_after }),
            None => Ok(()),
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.lockouts.settle(self.key, Outcome::Abandoned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn accounts_being_checked_are_never_forgotten() {
        let lockouts = Lockouts::new(LockoutPolicy::default(), 2);
        let a = lockouts.begin("a").await.unwrap();
        let b = lockouts.begin("b").await.unwrap();
        assert!(
            lockouts.begin("c").await.is_err(),
            "both candidates in flight"
        );
        b.failed();
        let c = lockouts
            .begin("c")
            .await
            .expect("b is idle in flight, so it goes");
        assert_eq!(lockouts.tracked(), 2);
        drop((a, c));
        assert_eq!(lockouts.tracked(), 0, "idle entries leave at once");
    }

    #[tokio::test(start_paused = true)]
    async fn the_order_queue_stays_proportional_to_the_table() {
        let lockouts = Lockouts::new(
            LockoutPolicy {
                max_failures: 1_000,
                ..LockoutPolicy::default()
            },
            100,
        );
        for _ in 0..50 {
            for name in 0..150 {
                lockouts
                    .begin(&format!("user-{name}"))
                    .await
                    .unwrap()
                    .failed();
            }
        }
        let table = lockouts.table();
        assert!(table.accounts.len() <= 100);
        assert!(
            table.order.len() <= 2 * table.accounts.len() + 64,
            "{} queued for {} accounts",
            table.order.len(),
            table.accounts.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_of_locks_forgets_the_oldest_lock() {
        let lockouts = Lockouts::new(
            LockoutPolicy {
                max_failures: 1,
                ..LockoutPolicy::default()
            },
            3,
        );
        for name in ["a", "b", "c"] {
            lockouts.begin(name).await.unwrap().failed();
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        lockouts.begin("d").await.unwrap().failed();
        let table = lockouts.table();
        assert!(
            !table.accounts.contains_key(&lockouts.key("a")),
            "a's lock was the oldest"
        );
        for name in ["b", "c", "d"] {
            assert!(table.accounts.contains_key(&lockouts.key(name)), "{name}");
        }
    }
}
