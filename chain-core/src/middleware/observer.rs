use std::borrow::Cow;
use std::time::Duration;

use super::LinkInfo;
use crate::error::Result;
use crate::link::short_type_name;

/// A cheap, synchronous watcher of every link of a chain: it is told how
/// long each link took and sees (and may amend) its outcome.
///
/// Observers are the fast path for what only watches: timing, metrics,
/// logging. They allocate nothing and share one clock read per link
/// boundary, where an async [`Middleware`](super::Middleware) costs a boxed
/// future and a clock read of its own. Use middleware to transform,
/// short-circuit or retry.
///
/// The duration runs from the end of the previous step (or the start of the
/// execution) to the end of this link, so it covers the link's middleware.
/// Observers are not called for links skipped by a condition, and they run
/// before an error reaches an error handler.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
/// use chain_core::{middleware::{LinkInfo, Observer}, Chain, Context, Result};
///
/// #[derive(Default)]
/// struct Failures(AtomicU64);
///
/// impl Observer<Context> for Failures {
///     fn on_link(&self, _link: &LinkInfo, _elapsed: Duration, outcome: &mut Result<Context>) {
///         if outcome.is_err() {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
/// # let _ = Chain::<Context>::new().observe(Failures::default());
/// ```
pub trait Observer<C>: Send + Sync + 'static {
    /// Called after each link that ran, with its duration and outcome.
    fn on_link(&self, link: &LinkInfo, elapsed: Duration, outcome: &mut Result<C>);

    /// The name shown by [`Chain::inspect`](crate::Chain::inspect).
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(short_type_name::<Self>())
    }
}
