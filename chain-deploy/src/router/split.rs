//! The routing table: upstreams with their share of traffic, and how one
//! request picks among them.

use std::sync::Arc;

use http::HeaderMap;
use http::uri::Authority;

use super::stats::Window;

/// Shares are kept in basis points: 10,000 is all traffic.
pub(crate) const ALL: u32 = 10_000;

/// Where one environment runs.
pub(crate) struct Upstream {
    pub(crate) name: Arc<str>,
    pub(crate) authority: Authority,
    /// The `Host` header requests to it carry, built once.
    pub(crate) host: http::HeaderValue,
    pub(crate) stats: Arc<Window>,
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
