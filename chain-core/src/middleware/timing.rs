use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{LinkInfo, Middleware, Next, Observer};
use crate::error::Result;
use crate::extensions::HasExtensions;
use crate::link::BoxFuture;

/// Records how long each link took into the context's [`LinkTimings`]
/// extension.
///
/// Register it as an [`Observer`] with [`Chain::observe`](crate::Chain::observe)
/// (the cheap way: no allocation, one clock read per link boundary), or as
/// [`Middleware`] around the whole execution, one step, or every link.
/// Failed links record nothing: their context is gone with the error.
///
/// ```
/// use chain_core::{middleware::{timing, LinkTimings}, Chain, Context};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let chain = Chain::new()
///     .observe(timing())
///     .link_sync(|ctx: Context| Ok(ctx.with("a", 1)))
///     .link_sync(|ctx: Context| Ok(ctx.with("b", 2)));
/// let out = chain.execute(Context::new()).await?;
/// let timings = out.ext::<LinkTimings>().unwrap();
/// assert_eq!(timings.len(), 2);
/// assert_eq!(timings.iter().map(|t| t.index).collect::<Vec<_>>(), [Some(0), Some(1)]);
/// # Ok(()) }
/// ```
pub fn timing() -> Timing {
    Timing { _private: () }
}

/// Middleware made by [`timing`].
#[derive(Debug, Clone)]
pub struct Timing {
    _private: (),
}

/// One measured link (or, with `index` `None`, one whole execution when the
/// middleware runs [`around`](crate::Chain::around) a chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTiming {
    /// The link's name, or the chain's for a whole execution.
    pub name: Arc<str>,
    /// The link's position, `None` for a whole execution.
    pub index: Option<usize>,
    /// Wall-clock time from entering the middleware to the link's return.
    pub duration: Duration,
}

/// The timings recorded by [`timing`], in completion order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkTimings(Vec<LinkTiming>);

impl LinkTimings {
    /// Number of recorded timings.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The timings in completion order.
    pub fn iter(&self) -> std::slice::Iter<'_, LinkTiming> {
        self.0.iter()
    }

    /// Sum of the recorded durations.
    pub fn total(&self) -> Duration {
        self.0.iter().map(|timing| timing.duration).sum()
    }
}

impl<'a> IntoIterator for &'a LinkTimings {
    type Item = &'a LinkTiming;
    type IntoIter = std::slice::Iter<'a, LinkTiming>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<C: HasExtensions + Send + 'static> Middleware<C> for Timing {
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        Box::pin(async move {
            let (name, index) = match next.link() {
                Some(link) => (Arc::clone(link.name_arc()), Some(link.index())),
                None => (Arc::clone(next.chain_name_arc()), None),
            };
            let start = Instant::now();
            let mut ctx = next.run(ctx).await?;
            let duration = start.elapsed();
            ctx.extensions_mut()
                .get_or_default::<LinkTimings>()
                .0
                .push(LinkTiming {
                    name,
                    index,
                    duration,
                });
            Ok(ctx)
        })
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("timing")
    }
}

impl<C: HasExtensions + Send + 'static> Observer<C> for Timing {
    fn on_link(&self, link: &LinkInfo, elapsed: Duration, outcome: &mut Result<C>) {
        if let Ok(ctx) = outcome {
            ctx.extensions_mut()
                .get_or_default::<LinkTimings>()
                .0
                .push(LinkTiming {
                    name: Arc::clone(link.name_arc()),
                    index: Some(link.index()),
                    duration: elapsed,
                });
        }
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("timing")
    }
}
