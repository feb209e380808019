//! Fused runs of async links: a fixed sequence the compiler sees whole, so
//! the run costs one boxed future instead of one per link.
//!
//! A [`Chain`](crate::Chain) stores its links type-erased, which is what
//! lets it be built, inspected and extended at run time; the price is a
//! boxed future per async link (about 12 ns, more than a `Context` insert).
//! For a hot stretch of async links that never changes, [`fused`] keeps
//! their concrete types: the links are awaited one after the other inside
//! one future, as if written by hand, and the run joins a chain as a single
//! link. Errors and panics still name the link that failed and its
//! position in the run.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::chain::{catch_panics, panic_error};
use crate::describe::{ChainDescription, LinkDescription, LinkKind};
use crate::error::{Error, Result};
use crate::link::{BoxFuture, Link, Named, short_type_name};

/// A link whose future type is known at compile time: what a [`fused`] run
/// is made of.
///
/// Every async function or closure `Fn(C) -> impl Future<Output =
/// Result<C>>` is one, and so is such a function given a name with
/// [`named`](crate::named). Implement it for a struct link that should be
/// fusable; unlike [`Link`], its `call` returns the future unboxed.
pub trait StaticLink<C>: Send + Sync + 'static {
    /// Runs the link on `ctx`.
    fn call(&self, ctx: C) -> impl Future<Output = Result<C>> + Send;

    /// The name used in errors and descriptions; the function's name by
    /// default.
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(short_type_name::<Self>())
    }
}

impl<C, F, Fut> StaticLink<C> for F
where
    F: Fn(C) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<C>> + Send + 'static,
{
    fn call(&self, ctx: C) -> impl Future<Output = Result<C>> + Send {
        self(ctx)
    }
}

impl<C, L: StaticLink<C>> StaticLink<C> for Named<L> {
    fn call(&self, ctx: C) -> impl Future<Output = Result<C>> + Send {
        self.link().call(ctx)
    }

    fn name(&self) -> Cow<'static, str> {
        self.chosen_name().clone()
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A tuple of one to sixteen [`StaticLink`]s, run in order by [`fused`].
pub trait LinkSequence<C>: sealed::Sealed + Send + Sync + 'static {
    /// The names of the links, in order.
    fn names(&self) -> Vec<Cow<'static, str>>;

    /// Runs the links in order, storing the index of the running one in
    /// `running` (so a panic can be attributed); an error comes back with
    /// the index of the link that returned it.
    fn run<'a>(
        &'a self,
        ctx: C,
        running: &'a AtomicUsize,
    ) -> impl Future<Output = std::result::Result<C, (usize, Error)>> + Send + 'a;
}

macro_rules! link_sequence {
    ($($index:tt $link:ident),+) => {
        impl<$($link),+> sealed::Sealed for ($($link,)+) {}

        impl<C: Send + 'static, $($link: StaticLink<C>),+> LinkSequence<C> for ($($link,)+) {
            fn names(&self) -> Vec<Cow<'static, str>> {
                vec![$(self.$index.name()),+]
            }

            async fn run(
                &self,
                ctx: C,
                running: &AtomicUsize,
            ) -> std::result::Result<C, (usize, Error)> {
                $(
                    running.store($index, Ordering::Relaxed);
                    let ctx = StaticLink::call(&self.$index, ctx)
                        .await
                        .map_err(|error| ($index, error))?;
                )+
                Ok(ctx)
            }
        }
    };
}

link_sequence!(0 L0);
link_sequence!(0 L0, 1 L1);
link_sequence!(0 L0, 1 L1, 2 L2);
link_sequence!(0 L0, 1 L1, 2 L2, 3 L3);
link_sequence!(0 L0, 1 L1, 2 L2, 3 L3, 4 L4);
link_sequence!(0 L0, 1 L1, 2 L2, 3 L3, 4 L4, 5 L5);
link_sequence!(0 L0, 1 L1, 2 L2, 3 L3, 4 L4, 5 L5, 6 L6);
link_sequence!(0 L0, 1 L1, 2 L2, 3 L3, 4 L4, 5 L5, 6 L6, 7 L7);
link_sequence!(0 L0, 1 L1, 2 L2, 3 L3, 4 L4, 5 L5, 6 L6, 7 L7, 8 L8);
link_sequence!(0 L0, 1 L1, 2 L2, 3 L3, 4 L4, 5 L5, 6 L6, 7 L7, 8 L8, 9 L9);
link_sequence!(0 L0, 1 L1, 2 L2, 3 L3, 4 L4, 5 L5, 6 L6, 7 L7, 8 L8, 9 L9, 10 L10);
link_sequence!(0 L0, 1 L1, 2 L2, 3 L3, 4 L4, 5 L5, 6 L6, 7 L7, 8 L8, 9 L9, 10 L10, 11 L11);
link_sequence!(
    0 L0, 1 L1, 2 L2, 3 L3, 4 L4, 5 L5, 6 L6, 7 L7, 8 L8, 9 L9, 10 L10, 11 L11, 12 L12
);
link_sequence!(
    0 L0, 1 L1, 2 L2, 3 L3, 4 L4, 5 L5, 6 L6, 7 L7, 8 L8, 9 L9, 10 L10, 11 L11, 12 L12, 13 L13
);
link_sequence!(
    0 L0, 1 L1, 2 L2, 3 L3, 4 L4, 5 L5, 6 L6, 7 L7, 8 L8, 9 L9, 10 L10, 11 L11, 12 L12, 13 L13,
    14 L14
);
link_sequence!(
    0 L0, 1 L1, 2 L2, 3 L3, 4 L4, 5 L5, 6 L6, 7 L7, 8 L8, 9 L9, 10 L10, 11 L11, 12 L12, 13 L13,
    14 L14, 15 L15
);

/// A fused run of links; made by [`fused`].
pub struct Fused<S> {
    name: Arc<str>,
    names: Arc<[Arc<str>]>,
    links: S,
}

/// Fuses a tuple of async links (up to sixteen) into one link named
/// `name`: they run in order, as if awaited by hand, with one boxed future
/// for the whole run instead of one per link.
///
/// Use it for a hot stretch of a chain whose links are fixed. Inside the
/// run there is no per-link middleware, condition or error route; an error
/// or a panic stops the run and is located at the link that caused it, as
/// in a nested chain.
///
/// ```
/// use chain_core::{fused, Chain, Context, Result};
///
/// async fn subtotal(ctx: Context) -> Result<Context> {
///     let quantity: f64 = ctx.require("quantity")?;
///     Ok(ctx.with("subtotal", quantity * 5.0))
/// }
/// async fn tax(ctx: Context) -> Result<Context> {
///     let subtotal: f64 = ctx.require("subtotal")?;
///     Ok(ctx.with("tax", subtotal * 0.2))
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
/// let checkout = Chain::named("checkout").link(fused("pricing", (subtotal, tax)));
/// let out = checkout.execute(Context::new().with("quantity", 2)).await?;
/// assert_eq!(out.get::<f64>("tax")?, Some(2.0));
///
/// let err = checkout.execute(Context::new()).await.unwrap_err();
/// let location = err.location().unwrap();
/// assert_eq!((location.chain(), location.link(), location.index()), ("pricing", "subtotal", 0));
/// # Ok(()) }
/// ```
pub fn fused<C, S: LinkSequence<C>>(name: impl Into<Cow<'static, str>>, links: S) -> Fused<S> {
    Fused {
        name: Arc::from(name.into()),
        names: links.names().into_iter().map(Arc::from).collect(),
        links,
    }
}

impl<C: Send + 'static, S: LinkSequence<C>> Link<C> for Fused<S> {
    fn call(&self, ctx: C) -> BoxFuture<'_, Result<C>> {
        Box::pin(async move {
            let running = AtomicUsize::new(0);
            match catch_panics(self.links.run(ctx, &running)).await {
                Ok(Ok(ctx)) => Ok(ctx),
                Ok(Err((index, error))) => Err(self.locate(error, index)),
                Err(payload) => {
                    let index = running.load(Ordering::Relaxed);
                    Err(self.locate(panic_error("link", payload), index))
                }
            }
        })
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Owned(self.name.to_string())
    }

    fn kind(&self) -> LinkKind {
        LinkKind::Chain(Box::new(ChainDescription {
            name: self.name.to_string(),
            around_each: Vec::new(),
            around: Vec::new(),
            observers: Vec::new(),
            catch: None,
            links: self
                .names
                .iter()
                .enumerate()
                .map(|(index, name)| LinkDescription {
                    index,
                    name: name.to_string(),
                    kind: LinkKind::Link,
                    conditional: false,
                    around: Vec::new(),
                    on_error: None,
                })
                .collect(),
        }))
    }
}

impl<S> Fused<S> {
    fn locate(&self, error: Error, index: usize) -> Error {
        match self.names.get(index) {
            Some(link) => error.locate(&self.name, link, index),
            None => error,
        }
    }
}

impl<S> fmt::Debug for Fused<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fused")
            .field("name", &self.name)
            .field("links", &self.names)
            .finish()
    }
}
