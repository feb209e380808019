//! Middleware: code that runs around links, around one link or around a
//! whole chain execution.
//!
//! A middleware receives the context and a [`Next`], and decides what to do
//! with them, in the style of axum's `from_fn`:
//!
//! - observe: time or log the call and pass the result through;
//! - transform: change the context before or after `next`;
//! - short-circuit: return an error (or a context) without calling `next`;
//! - call `next` more than once (retry), cloning it and the context.
//!
//! # Order
//!
//! The first middleware registered is the outermost. For one link the layers
//! are, from the outside in: the chain's [`around`](crate::Chain::around)
//! middleware (once for the whole execution), the chain's
//! [`around_each`](crate::Chain::around_each) (around every link), the step's
//! own [`Step::around`](crate::Step::around) middleware, and finally the link.
//!
//! ```
//! use chain_core::{middleware::from_fn, Chain, Context};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> chain_core::Result<()> {
//! let tag = |label: &'static str| from_fn(move |ctx: Context, next| async move {
//!     let ctx = ctx.with(label, true);
//!     next.run(ctx).await
//! });
//! let chain = Chain::new()
//!     .around_each(tag("outer"))
//!     .around_each(tag("inner"))
//!     .link(|ctx: Context| async move {
//!         // Both middleware ran before the link, outer first.
//!         assert_eq!(ctx.keys().collect::<Vec<_>>(), ["outer", "inner"]);
//!         Ok(ctx)
//!     });
//! chain.execute(Context::new()).await?;
//! # Ok(()) }
//! ```

mod from_fn;
#[cfg(feature = "tracing")]
mod logging;
mod next;
mod observer;
mod timing;

use std::borrow::Cow;

pub use from_fn::{FromFn, FromFnWithState, from_fn, from_fn_with_state};
#[cfg(feature = "tracing")]
pub use logging::{Logging, logging};
pub use next::{LinkInfo, Next};
pub use observer::Observer;
pub use timing::{LinkTiming, LinkTimings, Timing, timing};

use crate::error::Result;
use crate::link::{BoxFuture, short_type_name};

/// Code that runs around a link or a chain execution. See the
/// [module docs](self) for what it can do and the order it runs in.
///
/// Most middleware is written with [`from_fn`]; implement the trait for a
/// struct when the middleware holds state it borrows while running.
pub trait Middleware<C>: Send + Sync + 'static {
    /// Runs around `next`: call [`Next::run`] to continue, or return early.
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>>;

    /// The name shown by [`Chain::inspect`](crate::Chain::inspect).
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(short_type_name::<Self>())
    }
}

/// `None` passes straight through, so optional middleware can be registered
/// unconditionally.
impl<C: Send + 'static, M: Middleware<C>> Middleware<C> for Option<M> {
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        match self {
            Some(middleware) => middleware.call(ctx, next),
            None => Box::pin(next.run(ctx)),
        }
    }

    fn name(&self) -> Cow<'static, str> {
        match self {
            Some(middleware) => middleware.name(),
            None => Cow::Borrowed("none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Context;

    fn _middleware_is_object_safe(_: Box<dyn Middleware<Context>>) {}
}
