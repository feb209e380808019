//! [`RateLimiter`]: GCRA rate limiting, global or per key.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chain_core::{BoxFuture, Error, HasExtensions, Middleware, Next, Result};

use crate::Throttled;

/// Admits calls at a steady rate with room for bursts, using the generic
/// cell rate algorithm (GCRA): one atomic "theoretical arrival time" per
/// limiter (or per key), updated with a compare-and-swap, no lock and no
/// background task. The clock is `quanta`'s (the TSC where available), so a
/// check costs a few nanoseconds.
///
/// A rejection is a [`Rejected`](chain_core::ErrorKind::Rejected) error
/// whose source is a [`Throttled`] carrying the exact wait after which the
/// call would be admitted.
///
/// ```
/// use chain_resilience::{RateLimiter, Throttled};
///
/// let limiter = RateLimiter::per_second("api", 100).burst(2);
/// assert!(limiter.check().is_ok());
/// assert!(limiter.check().is_ok());
/// let err = limiter.check().unwrap_err();
/// let wait = err.downcast_source::<Throttled>().unwrap().retry_after.unwrap();
/// assert!(wait <= std::time::Duration::from_millis(10));
/// ```
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    name: Arc<str>,
    clock: quanta::Clock,
    origin: quanta::Instant,
    /// Time between two admissions at the steady rate.
    interval: u64,
    /// How far ahead of now the arrival time may run: `interval * (burst - 1)`.
    tolerance: u64,
    global: AtomicU64,
    keys: Keys,
}

/// Theoretical arrival times by key.
type ArrivalTimes = HashMap<Box<str>, u64, foldhash::fast::RandomState>;

/// Per-key arrival times in shards, each with its own lock, bounded in size.
struct Keys {
    shards: Box<[Mutex<ArrivalTimes>]>,
    per_shard: usize,
}

const SHARDS: usize = 16;

impl RateLimiter {
    /// `rate` calls per second (at least 1), bursts of one.
    pub fn per_second(name: impl Into<Cow<'static, str>>, rate: u32) -> Self {
        Self::new(name, rate, Duration::from_secs(1))
    }

    /// `count` calls per `period` (at least 1 per period), bursts of one.
    pub fn new(name: impl Into<Cow<'static, str>>, count: u32, period: Duration) -> Self {
        Self::with_clock(name, count, period, quanta::Clock::new())
    }

    fn with_clock(
        name: impl Into<Cow<'static, str>>,
        count: u32,
        period: Duration,
        clock: quanta::Clock,
    ) -> Self {
        let period = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        let interval = (period / u64::from(count.max(1))).max(1);
        let origin = clock.now();
        Self {
            inner: Arc::new(Inner {
                name: Arc::from(name.into().as_ref()),
                clock,
                origin,
                interval,
                tolerance: 0,
                global: AtomicU64::new(0),
                keys: Keys::new(10_000),
            }),
        }
    }

    /// Allows bursts of up to `burst` calls at once (at least 1).
    #[must_use]
    pub fn burst(mut self, burst: u32) -> Self {
        let inner = self.settings_mut();
        inner.tolerance = inner.interval.saturating_mul(u64::from(burst.max(1) - 1));
        self
    }

    /// Keeps arrival times for at most `max_keys` keys (at least one per
    /// shard). When full, keys whose limit has fully recovered are dropped
    /// first (forgetting them changes nothing), then the closest to
    /// recovery.
    #[must_use]
    pub fn max_keys(mut self, max_keys: usize) -> Self {
        self.settings_mut().keys = Keys::new(max_keys);
        self
    }

    /// The settings, for the builder methods. They run before the limiter
    /// is shared; should it be shared already, the builder works on a fresh
    /// copy (with a fresh state) rather than changing the others' limits.
    fn settings_mut(&mut self) -> &mut Inner {
        if Arc::get_mut(&mut self.inner).is_none() {
            let shared = &self.inner;
            self.inner = Arc::new(Inner {
                name: Arc::clone(&shared.name),
                clock: shared.clock.clone(),
                origin: shared.origin,
                interval: shared.interval,
                tolerance: shared.tolerance,
                global: AtomicU64::new(0),
                keys: Keys::new(shared.keys.per_shard * SHARDS),
            });
        }
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner,
            None => unreachable!("a freshly made Arc has one owner"),
        }
    }

    /// The limiter's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Admits or rejects one call against the global limit.
    ///
    /// # Errors
    ///
    /// A rejection carrying the wait until the call would be admitted.
    pub fn check(&self) -> Result<()> {
        let inner = &*self.inner;
        let now = inner.now();
        let mut tat = inner.global.load(Ordering::Acquire);
        loop {
            let next = inner.admit(tat, now)?;
            match inner
                .global
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(current) => tat = current,
            }
        }
    }

    /// Admits or rejects one call against the limit of `key` (each key has
    /// the full rate).
    ///
    /// # Errors
    ///
    /// A rejection carrying the wait until the call would be admitted.
    pub fn check_key(&self, key: &str) -> Result<()> {
        let inner = &*self.inner;
        let now = inner.now();
        let shard = &inner.keys.shards[shard_of(key)];
        let mut times = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tat = times.get(key).copied().unwrap_or(0);
        let next = inner.admit(tat, now)?;
        if let Some(slot) = times.get_mut(key) {
            *slot = next;
        } else {
            if times.len() >= inner.keys.per_shard {
                evict(&mut times, now);
            }
            times.insert(key.into(), next);
        }
        Ok(())
    }

    /// Keys currently remembered.
    pub fn tracked_keys(&self) -> usize {
        self.inner
            .keys
            .shards
            .iter()
            .map(|shard| shard.lock().map_or(0, |times| times.len()))
            .sum()
    }

    /// Middleware limiting per value of the JSON field `field` (a string or
    /// a number); a context without the field is a validation error. Attach
    /// it once per execution, with `Chain::around`.
    ///
    /// For a typed context, key by a function instead: [`keyed_with`](Self::keyed_with).
    pub fn keyed_by(self, field: impl Into<Cow<'static, str>>) -> KeyedRateLimiter {
        KeyedRateLimiter {
            limiter: self,
            key: FieldKey(field.into()),
        }
    }

    /// Middleware limiting per key that `key` reads from the context, for
    /// any context type; `None` (no key) is a validation error.
    ///
    /// ```
    /// use std::time::Duration;
    /// use chain_core::Chain;
    /// use chain_resilience::RateLimiter;
    ///
    /// #[derive(Debug)]
    /// struct Order { customer: String }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let per_customer = RateLimiter::new("orders", 1, Duration::from_secs(60))
    ///     .keyed_with(|order: &Order| Some(order.customer.as_str()));
    /// let chain = Chain::new().around(per_customer).link_sync(Ok);
    /// let order = || Order { customer: "ada".into() };
    /// assert!(chain.execute(order()).await.is_ok());
    /// assert!(chain.execute(order()).await.unwrap_err().is_rejected());
    /// # }
    /// ```
    pub fn keyed_with<C, F>(self, key: F) -> KeyedRateLimiter<F>
    where
        F: Fn(&C) -> Option<&str> + Send + Sync + 'static,
    {
        KeyedRateLimiter { limiter: self, key }
    }
}

impl Inner {
    fn now(&self) -> u64 {
        u64::try_from(self.clock.now().duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The arrival time after admitting a call at `now`, or the rejection.
    fn admit(&self, tat: u64, now: u64) -> Result<u64> {
        let start = tat.max(now);
        let ahead = start - now;
        if ahead > self.tolerance {
            return Err(self.reject(Duration::from_nanos(ahead - self.tolerance)));
        }
        Ok(start.saturating_add(self.interval))
    }

    fn reject(&self, retry_after: Duration) -> Error {
        Error::rejected("rate limited")
            .with_retry_after(retry_after)
            .with_source(Throttled {
                policy: "rate limiter",
                name: self.name.to_string(),
                retry_after: Some(retry_after),
            })
    }
}

impl Keys {
    fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(ArrivalTimes::default()))
                .collect(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
        }
    }
}

fn shard_of(key: &str) -> usize {
    use std::hash::BuildHasher;
    (foldhash::fast::FixedState::with_seed(0x5eed).hash_one(key) as usize) % SHARDS
}

/// Makes room for one key: drops every key that has fully recovered, or
/// else the one closest to recovery.
fn evict(times: &mut ArrivalTimes, now: u64) {
    let before = times.len();
    times.retain(|_, tat| *tat > now);
    if times.len() == before
        && let Some(closest) = times
            .iter()
            .min_by_key(|(_, tat)| **tat)
            .map(|(key, _)| key.clone())
    {
        times.remove(&closest);
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("name", &self.inner.name)
            .field("interval", &Duration::from_nanos(self.inner.interval))
            .field("tolerance", &Duration::from_nanos(self.inner.tolerance))
            .finish()
    }
}

impl<C: Send + 'static> Middleware<C> for RateLimiter {
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        let admitted = self.check();
        Box::pin(async move {
            admitted?;
            next.run(ctx).await
        })
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(format!("rate_limiter({})", self.inner.name))
    }
}

/// A [`RateLimiter`] applied per key of the context; made by
/// [`RateLimiter::keyed_by`] (a JSON field) or [`RateLimiter::keyed_with`]
/// (a function).
#[derive(Clone)]
pub struct KeyedRateLimiter<K = FieldKey> {
    limiter: RateLimiter,
    key: K,
}

/// The key of [`RateLimiter::keyed_by`]: a JSON field of the context.
#[derive(Clone, Debug)]
pub struct FieldKey(Cow<'static, str>);

impl<K> fmt::Debug for KeyedRateLimiter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl KeyedRateLimiter<FieldKey> {
    fn check<C: HasExtensions>(&self, ctx: &C) -> Result<()> {
        let field = &self.key.0;
        match ctx.fields().and_then(|fields| fields.get_value(field)) {
            Some(serde_json::Value::String(key)) => self.limiter.check_key(key),
            Some(serde_json::Value::Number(key)) => self.limiter.check_key(&key.to_string()),
            Some(_) => Err(Error::validation(format!(
                "rate limit key `{field}` must be a string or a number"
            ))),
            None => Err(Error::validation(format!(
                "rate limit key `{field}` is missing"
            ))),
        }
    }
}

impl<C: HasExtensions + Send + 'static> Middleware<C> for KeyedRateLimiter<FieldKey> {
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        let admitted = self.check(&ctx);
        Box::pin(async move {
            admitted?;
            next.run(ctx).await
        })
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(format!(
            "rate_limiter({}, by {})",
            self.limiter.inner.name, self.key.0
        ))
    }
}

impl<C, F> Middleware<C> for KeyedRateLimiter<F>
where
    C: Send + 'static,
    F: Fn(&C) -> Option<&str> + Send + Sync + 'static,
{
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        let admitted = match (self.key)(&ctx) {
            Some(key) => self.limiter.check_key(key),
            None => Err(Error::validation(format!(
                "rate limiter `{}` found no key in the context",
                self.limiter.inner.name
            ))),
        };
        Box::pin(async move {
            admitted?;
            next.run(ctx).await
        })
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(format!("rate_limiter({}, keyed)", self.limiter.inner.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mocked(count: u32, period: Duration) -> (RateLimiter, Arc<quanta::Mock>) {
        let (clock, mock) = quanta::Clock::mock();
        (RateLimiter::with_clock("test", count, period, clock), mock)
    }

    fn retry_after(error: &Error) -> Duration {
        error
            .downcast_source::<Throttled>()
            .unwrap()
            .retry_after
            .unwrap()
    }

    #[test]
    fn admits_at_the_steady_rate() {
        let (limiter, clock) = mocked(10, Duration::from_secs(1)); // one per 100 ms
        assert!(limiter.check().is_ok());
        let err = limiter.check().unwrap_err();
        assert!(err.is_rejected());
        assert_eq!(retry_after(&err), Duration::from_millis(100));
        clock.increment(Duration::from_millis(60));
        assert_eq!(
            retry_after(&limiter.check().unwrap_err()),
            Duration::from_millis(40)
        );
        clock.increment(Duration::from_millis(40));
        assert!(limiter.check().is_ok());
    }

    #[test]
    fn bursts_up_to_the_configured_size_then_refill() {
        let (limiter, clock) = mocked(10, Duration::from_secs(1));
        let limiter = limiter.burst(3);
        for _ in 0..3 {
            assert!(limiter.check().is_ok());
        }
        assert!(limiter.check().is_err());
        clock.increment(Duration::from_millis(200));
        assert!(limiter.check().is_ok());
        assert!(limiter.check().is_ok());
        assert!(limiter.check().is_err());
        clock.increment(Duration::from_secs(10)); // idle time does not bank beyond the burst
        for _ in 0..3 {
            assert!(limiter.check().is_ok());
        }
        assert!(limiter.check().is_err());
    }

    #[test]
    fn keys_are_limited_independently() {
        let (limiter, _clock) = mocked(1, Duration::from_secs(1));
        assert!(limiter.check_key("alice").is_ok());
        assert!(limiter.check_key("bob").is_ok());
        assert!(limiter.check_key("alice").is_err());
        assert!(limiter.check().is_ok(), "the global limit is separate");
    }

    #[test]
    fn key_memory_is_bounded() {
        let (limiter, clock) = mocked(1, Duration::from_secs(1));
        let limiter = limiter.max_keys(32);
        for n in 0..1_000 {
            assert!(limiter.check_key(&format!("user-{n}")).is_ok());
            clock.increment(Duration::from_millis(1));
        }
        assert!(limiter.tracked_keys() <= 32, "{}", limiter.tracked_keys());
        // A key still limited is remembered while it matters.
        assert!(limiter.check_key("user-999").is_err());
    }
}
