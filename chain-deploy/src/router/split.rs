//! The routing table: upstreams with their share of traffic, and how one
//! request picks among them.

use std::sync::Arc;

use http::HeaderMap;
use http::uri::Authority;

use super::stats::{Outcome, Window};

/// Shares are kept in basis points: 10,000 is all traffic.
pub(crate) const ALL: u32 = 10_000;

/// Where one environment runs.
pub(crate) struct Upstream {
    pub(crate) name: Arc<str>,
    pub(crate) authority: Authority,
    /// The `Host` header requests to it carry, built once.
    pub(crate) host: http::HeaderValue,
    pub(crate) stats: Arc<Window>,
    /// Requests to this environment not finished yet, shared by every
    /// address it has had (so a drain also waits for the old address).
    pub(crate) in_flight: Arc<InFlight>,
}

/// Counts requests in flight to one environment, and wakes a drain when
/// none is left.
#[derive(Default)]
pub(crate) struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

impl InFlight {
    pub(crate) fn count(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Waits until no request is in flight.
    pub(crate) async fn idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// One request in flight to an upstream, until dropped: with the response
/// body once the upstream answered, so a request counts until its body has
/// been sent to the client (or abandoned).
///
/// Dropping it also records the request's sample in the upstream's
/// statistics, now that the outcome is known: a request whose client went
/// away, or whose body broke off or stalled, counts as an error, not as the
/// answer its head promised.
pub(crate) struct InFlightGuard {
    upstream: Arc<Upstream>,
    started: std::time::Instant,
    /// When the exchange ended (the head arrived, or it failed), its
    /// latency, and its outcome should the body arrive whole.
    ended: Option<(std::time::Instant, std::time::Duration, Outcome)>,
    /// Whether the body arrived whole (or there was none to wait for).
    whole: bool,
}

impl InFlightGuard {
    pub(crate) fn enter(upstream: Arc<Upstream>, started: std::time::Instant) -> Self {
        upstream
            .in_flight
            .count
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        InFlightGuard {
            upstream,
            started,
            ended: None,
            whole: false,
        }
    }

    pub(crate) fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// The exchange failed: a connection error, whatever happens next.
    pub(crate) fn failed(&mut self, at: std::time::Instant, latency: std::time::Duration) {
        self.ended = Some((at, latency, Outcome::ConnectionError));
        self.whole = true;
    }

    /// The head arrived; the outcome stands if the body arrives whole.
    pub(crate) fn answered(
        &mut self,
        at: std::time::Instant,
        latency: std::time::Duration,
        outcome: Outcome,
    ) {
        self.ended = Some((at, latency, outcome));
    }

    /// The body ended: whole, or not (broken off, stalled, abandoned).
    pub(crate) fn body_ended(&mut self, whole: bool) {
        self.whole = whole;
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let (at, latency, outcome) = match self.ended {
            Some((at, latency, outcome)) if self.whole => (at, latency, outcome),
            Some((at, latency, _)) => (at, latency, Outcome::ConnectionError),
            // The client went away before the answer.
            None => {
                let now = std::time::Instant::now();
                (
                    now,
                    now.saturating_duration_since(self.started),
                    Outcome::ConnectionError,
                )
            }
        };
        self.upstream.stats.record(at, latency, outcome);
        let in_flight = &self.upstream.in_flight;
        if in_flight
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            in_flight.idle.notify_waiters();
        }
    }
}

/// An immutable routing table, swapped whole on every change.
pub(crate) struct Table {
    /// Upstreams in configuration order, with their share.
    pub(crate) routes: Vec<(Arc<Upstream>, u32)>,
}

/// How a request is assigned to an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stickiness {
    /// Each request on its own, at random by weight.
    None,
    /// By the value of this cookie: a user keeps their upstream while the
    /// weights stay put, and as a canary grows only users moving to it
    /// change version. Requests without the cookie are random.
    Cookie(String),
    /// By the value of this header (e.g. `x-user-id`).
    Header(http::HeaderName),
}

impl Table {
    /// The upstream for a request: each upstream owns a slice of
    /// `0..ALL` in configuration order, and the request's point falls into
    /// one of them.
    pub(crate) fn pick(
        &self,
        stickiness: &Stickiness,
        headers: &HeaderMap,
    ) -> Option<&Arc<Upstream>> {
        let point = sticky_key(stickiness, headers).map_or_else(
            || fastrand::u32(0..ALL),
            |key| (xxhash_rust::xxh3::xxh3_64(key) % u64::from(ALL)) as u32,
        );
        let mut end = 0;
        for (upstream, share) in &self.routes {
            end += share;
            if point < end {
                return Some(upstream);
            }
        }
        None
    }
}

fn sticky_key<'a>(stickiness: &Stickiness, headers: &'a HeaderMap) -> Option<&'a [u8]> {
    match stickiness {
        Stickiness::None => None,
        Stickiness::Header(name) => headers.get(name).map(|value| value.as_bytes()),
        Stickiness::Cookie(name) => headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|cookies| cookies.split(';'))
            .find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                (key == name).then_some(value.as_bytes())
            }),
    }
}
