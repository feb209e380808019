//! The [`Link`] trait: one step of a chain.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use crate::describe::LinkKind;
use crate::error::Result;

/// A boxed, sendable future: what links and middleware return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One step of a chain: takes the context and returns the next one, or an
/// error that stops the chain.
///
/// You rarely implement it by hand: every async function or closure
/// `Fn(C) -> impl Future<Output = Result<C>>` is a link, and so is every
/// [`Chain`](crate::Chain). Implement it for a struct when the link carries
/// state, such as a client or a configuration.
///
/// ```
/// use chain_core::{BoxFuture, Context, Link, Result};
///
/// struct AddTax { rate: f64 }
///
/// impl Link<Context> for AddTax {
///     fn call(&self, ctx: Context) -> BoxFuture<'_, Result<Context>> {
///         Box::pin(async move {
///             let total: f64 = ctx.require("total")?;
///             Ok(ctx.with("total_with_tax", total * (1.0 + self.rate)))
///         })
///     }
///
///     fn name(&self) -> std::borrow::Cow<'static, str> {
///         "add_tax".into()
///     }
/// }
/// ```
pub trait Link<C>: Send + Sync + 'static {
    /// Runs the link on `ctx`.
    fn call(&self, ctx: C) -> BoxFuture<'_, Result<C>>;

    /// The name used in errors, metrics, traces and diagrams. Defaults to the
    /// type's name: the function's name for `async fn` links.
    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed(short_type_name::<Self>())
    }

    /// The link's structure, for [`Chain::inspect`](crate::Chain::inspect).
    /// Plain links need not override it.
    fn kind(&self) -> LinkKind {
        LinkKind::Link
    }
}

impl<C, F, Fut> Link<C> for F
where
    F: Fn(C) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<C>> + Send + 'static,
{
    fn call(&self, ctx: C) -> BoxFuture<'_, Result<C>> {
        Box::pin(self(ctx))
    }
}

/// A link with a chosen name; made by [`named`].
#[derive(Debug, Clone)]
pub struct Named<L> {
    name: Cow<'static, str>,
    link: L,
}

/// Gives `link` a name, for closures whose type name says little.
///
/// ```
/// use chain_core::{named, Chain, Context};
///
/// let chain = Chain::new().link(named("greet", |ctx: Context| async move {
///     Ok(ctx.with("greeting", "hello"))
/// }));
/// assert_eq!(chain.inspect().links[0].name, "greet");
/// ```
pub fn named<C, L: Link<C>>(name: impl Into<Cow<'static, str>>, link: L) -> Named<L> {
    Named {
        name: name.into(),
        link,
    }
}

impl<L> Named<L> {
    pub(crate) fn link(&self) -> &L {
        &self.link
    }

    pub(crate) fn chosen_name(&self) -> &Cow<'static, str> {
        &self.name
    }
}

impl<C, L: Link<C>> Link<C> for Named<L> {
    fn call(&self, ctx: C) -> BoxFuture<'_, Result<C>> {
        self.link.call(ctx)
    }

    fn name(&self) -> Cow<'static, str> {
        self.name.clone()
    }

    fn kind(&self) -> LinkKind {
        self.link.kind()
    }
}

/// The readable part of a type name: `app::orders::validate` becomes
/// `validate`, a closure in `main` becomes `main::{{closure}}` (closures
/// nested in async blocks keep each level), and generic arguments are
/// dropped.
pub(crate) fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let path = full.split_once('<').map_or(full, |(path, _)| path);
    let mut start = path.len();
    for segment in path.rsplit("::") {
        start -= segment.len();
        if !segment.starts_with('{') {
            break;
        }
        start = start.saturating_sub(2);
    }
    &path[start..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Context;

    async fn validate_order(ctx: Context) -> Result<Context> {
        Ok(ctx)
    }

    fn name_of<L: Link<Context>>(link: &L) -> Cow<'static, str> {
        link.name()
    }

    #[test]
    fn async_fn_links_are_named_after_the_function() {
        assert_eq!(name_of(&validate_order), "validate_order");
    }

    #[test]
    fn closures_are_named_after_their_enclosing_function() {
        let closure = |ctx: Context| async move { Ok(ctx) };
        assert_eq!(
            name_of(&closure),
            "closures_are_named_after_their_enclosing_function::{{closure}}"
        );
    }

    #[test]
    fn generic_arguments_are_dropped() {
        assert_eq!(short_type_name::<Vec<String>>(), "Vec");
    }

    #[test]
    fn named_overrides_the_name() {
        assert_eq!(name_of(&named("checkout", validate_order)), "checkout");
    }

    #[allow(dead_code)]
    fn link_is_object_safe(_: Box<dyn Link<Context>>) {}
}
