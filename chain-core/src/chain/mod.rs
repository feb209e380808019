//! [`Chain`]: links run in order, wrapped by middleware.

mod execute;
mod plain;
mod step;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

pub(crate) use execute::{catch_panics, panic_error};
pub(crate) use step::Runner;

use plain::PlainRun;
pub use step::Step;
use step::{Predicate, Recovery};

use crate::context::Context;
use crate::describe::{ChainDescription, LinkDescription, LinkKind};
use crate::error::{Error, Result};
use crate::link::{BoxFuture, Link};
use crate::middleware::{LinkInfo, Middleware, Observer};

/// Links run in order, each taking the context the previous one returned,
/// wrapped by middleware.
///
/// A chain is an `Arc` inside: cloning it is cheap, and
/// [`execute`](Self::execute) takes `&self`, so one chain serves any number
/// of concurrent executions. It is itself a [`Link`], so chains nest.
///
/// `C` is the context type: [`Context`] (the default) for dynamic JSON
/// fields, or any `Send + 'static` struct of your own, which costs nothing
/// beyond moving it from link to link.
///
/// # Example
///
/// ```
/// use chain_core::{Chain, Context, Error, Result};
///
/// async fn validate(ctx: Context) -> Result<Context> {
///     let qty: u32 = ctx.require("quantity")?;
///     if qty == 0 {
///         return Err(Error::validation("quantity must be positive"));
///     }
///     Ok(ctx)
/// }
///
/// async fn price(ctx: Context) -> Result<Context> {
///     let qty: u32 = ctx.require("quantity")?;
///     Ok(ctx.with("total", qty * 5))
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let chain = Chain::named("checkout").link(validate).link(price);
/// let out = chain.execute(Context::new().with("quantity", 3)).await?;
/// assert_eq!(out.get::<u32>("total")?, Some(15));
///
/// let err = chain.execute(Context::new().with("quantity", 0)).await.unwrap_err();
/// assert_eq!(err.location().unwrap().link(), "validate");
/// # Ok(()) }
/// ```
///
/// # Order
///
/// Links run in the order they are added. Middleware added first is the
/// outermost, so in the first chain below the outer `timing` measures the
/// inner `logging` too, and in the second it does not:
///
/// ```
/// use chain_core::{middleware::{logging, timing}, Chain, Context};
///
/// let timed_with_logging = Chain::<Context>::new().around_each(timing()).around_each(logging());
/// let logged_with_timing = Chain::<Context>::new().around_each(logging()).around_each(timing());
/// assert_eq!(timed_with_logging.inspect().around_each, ["timing", "logging"]);
/// assert_eq!(logged_with_timing.inspect().around_each, ["logging", "timing"]);
/// ```
pub struct Chain<C = Context> {
    inner: Arc<ChainInner<C>>,
}

pub(crate) struct ChainInner<C> {
    pub(crate) name: Arc<str>,
    pub(crate) steps: Vec<StepEntry<C>>,
    /// Around every link, each time it runs.
    pub(crate) around_each: Vec<Arc<dyn Middleware<C>>>,
    /// Around the whole execution, once per run.
    pub(crate) around: Vec<Arc<dyn Middleware<C>>>,
    pub(crate) observers: Vec<Arc<dyn Observer<C>>>,
    pub(crate) catch: Option<Recovery<C>>,
    /// No middleware, observers, conditions or error handlers anywhere:
    /// the step loop can skip every check.
    pub(crate) plain: bool,
}

pub(crate) struct StepEntry<C> {
    pub(crate) info: LinkInfo,
    pub(crate) runner: Runner<C>,
    /// Around this link only.
    pub(crate) around: Vec<Arc<dyn Middleware<C>>>,
    pub(crate) condition: Option<Predicate<C>>,
    pub(crate) on_error: Option<Recovery<C>>,
}

impl<C> Clone for StepEntry<C> {
    fn clone(&self) -> Self {
        Self {
            info: self.info.clone(),
            runner: self.runner.clone(),
            around: self.around.clone(),
            condition: self.condition.clone(),
            on_error: self.on_error.clone(),
        }
    }
}

impl<C> Clone for ChainInner<C> {
    fn clone(&self) -> Self {
        Self {
            name: Arc::clone(&self.name),
            steps: self.steps.clone(),
            around_each: self.around_each.clone(),
            around: self.around.clone(),
            observers: self.observers.clone(),
            catch: self.catch.clone(),
            plain: self.plain,
        }
    }
}

impl<C> Clone for Chain<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: Send + 'static> Default for Chain<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Send + 'static> Chain<C> {
    /// An empty chain named `chain`. It returns its input unchanged.
    pub fn new() -> Self {
        Self::named("chain")
    }

    /// An empty chain with a name, used in errors, metrics and traces.
    pub fn named(name: impl Into<Cow<'static, str>>) -> Self {
        Self {
            inner: Arc::new(ChainInner {
                name: Arc::from(name.into().as_ref()),
                steps: Vec::new(),
                around_each: Vec::new(),
                around: Vec::new(),
                observers: Vec::new(),
                catch: None,
                plain: true,
            }),
        }
    }

    /// The chain's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Number of links.
    pub fn len(&self) -> usize {
        self.inner.steps.len()
    }

    /// Whether the chain has no links.
    pub fn is_empty(&self) -> bool {
        self.inner.steps.is_empty()
    }

    /// Appends an async link: an `async fn`, a closure returning a future, a
    /// [`Link`] implementation or another chain.
    #[must_use]
    pub fn link(self, link: impl Link<C>) -> Self {
        self.step(Step::new(link))
    }

    /// Appends a synchronous function as a link. It runs inline, without
    /// allocating a future, so it suits quick transformations; blocking or
    /// CPU-heavy work belongs on a blocking pool instead.
    #[must_use]
    pub fn link_sync<F>(self, f: F) -> Self
    where
        F: Fn(C) -> Result<C> + Send + Sync + 'static,
    {
        self.step(Step::sync(f))
    }

    /// Appends a link that runs only when `predicate` holds for the incoming
    /// context; otherwise the context passes on unchanged.
    #[must_use]
    pub fn when<P>(self, predicate: P, link: impl Link<C>) -> Self
    where
        P: Fn(&C) -> bool + Send + Sync + 'static,
    {
        self.step(Step::new(link).when(predicate))
    }

    /// Appends a [`Step`]: a link with its own name, middleware, condition
    /// or error route.
    #[must_use]
    pub fn step(mut self, step: Step<C>) -> Self {
        let inner = self.inner_mut();
        inner.plain &=
            step.around.is_empty() && step.condition.is_none() && step.on_error.is_none();
        let info = LinkInfo::new(
            Arc::from(step.name.as_ref()),
            Arc::clone(&inner.name),
            inner.steps.len(),
        );
        inner.steps.push(StepEntry {
            info,
            runner: step.runner,
            around: step.around,
            condition: step.condition,
            on_error: step.on_error,
        });
        self
    }

    /// Adds middleware around **every link**: it runs once per link, each
    /// time a link runs, so a five-link chain calls it five times per
    /// execution. The first added is the outermost.
    ///
    /// Suits what is about each link: timing, logging, per-link retries.
    /// What is about the request as a whole (authentication, secret
    /// injection, rate limits, a total deadline) belongs in
    /// [`around`](Self::around), which runs once per execution.
    #[must_use]
    pub fn around_each(mut self, middleware: impl Middleware<C>) -> Self {
        let inner = self.inner_mut();
        inner.around_each.push(Arc::new(middleware));
        inner.plain = false;
        self
    }

    /// Adds middleware around the **whole execution**: it runs once per
    /// [`execute`](Self::execute), and its [`Next`](crate::Next) runs all
    /// links. The first added is the outermost, and all of it sits outside
    /// [`around_each`](Self::around_each).
    ///
    /// The place for authentication, secret injection, keyed rate limits and
    /// deadlines: a five-link chain behind `.around(auth)` checks the token
    /// once.
    #[must_use]
    pub fn around(mut self, middleware: impl Middleware<C>) -> Self {
        self.inner_mut().around.push(Arc::new(middleware));
        self
    }

    /// Adds an [`Observer`]: told the duration and outcome of every link,
    /// without allocating. The cheap way to time, count or log links.
    #[must_use]
    pub fn observe(mut self, observer: impl Observer<C>) -> Self {
        let inner = self.inner_mut();
        inner.observers.push(Arc::new(observer));
        inner.plain = false;
        self
    }

    /// Runs the links in order on `ctx`.
    ///
    /// The first failing link stops the chain, and its error carries the
    /// chain's name, the link's name and index (see
    /// [`Error::location`](crate::Error::location)). A panic in a link or
    /// middleware is caught and returned as an error of kind
    /// [`Panicked`](crate::ErrorKind::Panicked) (with `panic = "abort"` there
    /// is nothing to catch). Dropping the returned future cancels the
    /// execution.
    ///
    /// # Errors
    ///
    /// The error of the first link that failed and was not recovered by an
    /// error handler.
    pub fn execute(&self, ctx: C) -> impl Future<Output = Result<C>> + Send + '_ {
        let inner = &self.inner;
        if inner.plain && inner.around.is_empty() {
            Execution::Plain {
                run: PlainRun::new(inner, ctx),
            }
        } else {
            Execution::General {
                future: inner.execute(ctx),
            }
        }
    }

    /// A description of the chain's structure: links, middleware, branches
    /// and nested chains.
    pub fn inspect(&self) -> ChainDescription {
        let inner = &self.inner;
        ChainDescription {
            name: inner.name.to_string(),
            around_each: names(&inner.around_each),
            around: names(&inner.around),
            observers: inner
                .observers
                .iter()
                .map(|o| o.name().into_owned())
                .collect(),
            catch: inner
                .catch
                .as_ref()
                .map(|recovery| recovery.name.to_string()),
            links: inner
                .steps
                .iter()
                .map(|step| LinkDescription {
                    index: step.info.index(),
                    name: step.info.name().to_string(),
                    kind: match &step.runner {
                        Runner::Async(link) => link.kind(),
                        Runner::Sync(_) => LinkKind::Link,
                    },
                    conditional: step.condition.is_some(),
                    around: names(&step.around),
                    on_error: step
                        .on_error
                        .as_ref()
                        .map(|recovery| recovery.name.to_string()),
                })
                .collect(),
        }
    }

    /// The chain as a Mermaid flowchart, for docs and reviews.
    pub fn to_mermaid(&self) -> String {
        self.inspect().to_mermaid()
    }

    fn inner_mut(&mut self) -> &mut ChainInner<C> {
        Arc::make_mut(&mut self.inner)
    }
}

impl<C: Clone + Send + 'static> Chain<C> {
    /// Handles the errors of every link that has no
    /// [`on_error`](Step::on_error) route of its own: `handler` receives the
    /// error and the context as it was before the failing link, and either
    /// recovers (`Ok`, the chain goes on after the failed link) or fails.
    ///
    /// Costs one clone of the context per link, which is why it needs
    /// `C: Clone`; prefer [`Step::on_error`] on hot paths.
    #[must_use]
    pub fn catch<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(Error, C) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C>> + Send + 'static,
    {
        let inner = self.inner_mut();
        inner.catch = Some(Recovery::new(handler));
        inner.plain = false;
        self
    }
}

fn names<C: 'static>(middleware: &[Arc<dyn Middleware<C>>]) -> Vec<String> {
    middleware.iter().map(|m| m.name().into_owned()).collect()
}

impl<C: Send + 'static> Link<C> for Chain<C> {
    fn call(&self, ctx: C) -> BoxFuture<'_, Result<C>> {
        Box::pin(self.execute(ctx))
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(self.inner.name.to_string())
    }

    fn kind(&self) -> LinkKind {
        LinkKind::Chain(Box::new(self.inspect()))
    }
}

impl<C> fmt::Debug for Chain<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("name", &self.inner.name)
            .field(
                "links",
                &self
                    .inner
                    .steps
                    .iter()
                    .map(|s| s.info.name())
                    .collect::<Vec<_>>(),
            )
            .field("around_each", &self.inner.around_each.len())
            .field("around", &self.inner.around.len())
            .field("observers", &self.inner.observers.len())
            .finish()
    }
}

pin_project_lite::pin_project! {
    /// A chain's execution: the plain fast path, or the general step loop.
    #[project = ExecutionProjection]
    enum Execution<'a, C, G> {
        Plain { run: PlainRun<'a, C> },
        General { #[pin] future: G },
    }
}

impl<C: Send + 'static, G: Future<Output = Result<C>>> Future for Execution<'_, C, G> {
    type Output = Result<C>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<C>> {
        match self.project() {
            ExecutionProjection::Plain { run } => std::pin::Pin::new(run).poll(cx),
            ExecutionProjection::General { future } => future.poll(cx),
        }
    }
}
