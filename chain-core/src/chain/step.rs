use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::link::{BoxFuture, Link, short_type_name};
use crate::middleware::Middleware;

/// How a step runs its link: boxed async links, or plain functions called
/// without allocating a future.
pub(crate) enum Runner<C> {
    Async(Arc<dyn Link<C>>),
    Sync(Arc<dyn Fn(C) -> Result<C> + Send + Sync>),
}

impl<C> Clone for Runner<C> {
    fn clone(&self) -> Self {
        match self {
            Self::Async(link) => Self::Async(Arc::clone(link)),
            Self::Sync(f) => Self::Sync(Arc::clone(f)),
        }
    }
}

pub(crate) type Predicate<C> = Arc<dyn Fn(&C) -> bool + Send + Sync>;
pub(crate) type Handler<C> = Arc<dyn Fn(Error, C) -> BoxFuture<'static, Result<C>> + Send + Sync>;

/// An error handler plus the means to keep the context it needs: the
/// context as it was before the failing link.
pub(crate) struct Recovery<C> {
    pub(crate) name: Cow<'static, str>,
    pub(crate) handler: Handler<C>,
    pub(crate) snapshot: fn(&C) -> C,
}

impl<C> Clone for Recovery<C> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            handler: Arc::clone(&self.handler),
            snapshot: self.snapshot,
        }
    }
}

impl<C: Clone + Send + 'static> Recovery<C> {
    pub(crate) fn new<F, Fut>(handler: F) -> Self
    where
        F: Fn(Error, C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C>> + Send + 'static,
    {
        Self {
            name: Cow::Borrowed(short_type_name::<F>()),
            handler: Arc::new(move |error, ctx| Box::pin(handler(error, ctx))),
            snapshot: C::clone,
        }
    }
}

/// A link with its per-link settings: a name, middleware around this link
/// only, a condition, and an error route.
///
/// ```
/// use chain_core::{middleware::timing, Chain, Context, Error, Step};
///
/// async fn charge_card(_ctx: Context) -> chain_core::Result<Context> {
///     Err(Error::unavailable("payment provider down"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
/// let chain = Chain::new().step(
///     Step::new(charge_card)
///         .named("charge")
///         .around(timing())
///         .when(|ctx: &Context| ctx.contains_key("card"))
///         .on_error(|err, ctx: Context| async move {
///             // `ctx` is the context as it was before `charge` ran.
///             Ok(ctx.with("payment_deferred", err.to_string()))
///         }),
/// );
/// let out = chain.execute(Context::new().with("card", "4242")).await?;
/// assert!(out.contains_key("payment_deferred"));
/// # Ok(()) }
/// ```
pub struct Step<C> {
    pub(crate) name: Cow<'static, str>,
    pub(crate) runner: Runner<C>,
    pub(crate) around: Vec<Arc<dyn Middleware<C>>>,
    pub(crate) condition: Option<Predicate<C>>,
    pub(crate) on_error: Option<Recovery<C>>,
}

impl<C: Send + 'static> Step<C> {
    /// A step running an async link.
    pub fn new(link: impl Link<C>) -> Self {
        Self::from_runner(link.name(), Runner::Async(Arc::new(link)))
    }

    /// A step running a synchronous function; no future is allocated.
    pub fn sync<F>(f: F) -> Self
    where
        F: Fn(C) -> Result<C> + Send + Sync + 'static,
    {
        Self::from_runner(
            Cow::Borrowed(short_type_name::<F>()),
            Runner::Sync(Arc::new(f)),
        )
    }

    fn from_runner(name: Cow<'static, str>, runner: Runner<C>) -> Self {
        Self {
            name,
            runner,
            around: Vec::new(),
            condition: None,
            on_error: None,
        }
    }

    /// Names the step: the name used in errors, metrics and diagrams.
    #[must_use]
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// Adds middleware around this link only, each time it runs, inside the
    /// chain's [`around_each`](crate::Chain::around_each) middleware. The
    /// first added is the outermost.
    #[must_use]
    pub fn around(mut self, middleware: impl Middleware<C>) -> Self {
        self.around.push(Arc::new(middleware));
        self
    }

    /// Runs the step only when `predicate` holds for the incoming context;
    /// otherwise the context passes on unchanged (and the step's middleware
    /// does not run).
    #[must_use]
    pub fn when<P>(mut self, predicate: P) -> Self
    where
        P: Fn(&C) -> bool + Send + Sync + 'static,
    {
        self.condition = Some(Arc::new(predicate));
        self
    }
}

impl<C: Clone + Send + 'static> Step<C> {
    /// Routes this link's errors to `handler`, which receives the error and
    /// the context as it was before the link ran. Returning `Ok` recovers
    /// (the chain goes on with the returned context); returning `Err` fails
    /// the chain. Takes precedence over [`Chain::catch`](crate::Chain::catch).
    ///
    /// Costs one clone of the context each time the step runs, which is why
    /// it needs `C: Clone`.
    #[must_use]
    pub fn on_error<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Error, C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C>> + Send + 'static,
    {
        self.on_error = Some(Recovery::new(handler));
        self
    }
}

impl<C> fmt::Debug for Step<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step")
            .field("name", &self.name)
            .field("around", &self.around.len())
            .field("conditional", &self.condition.is_some())
            .field("on_error", &self.on_error.is_some())
            .finish()
    }
}
