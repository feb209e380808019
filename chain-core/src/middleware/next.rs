use std::fmt;
use std::sync::Arc;

use crate::chain::{ChainInner, Runner};
use crate::error::Result;

/// Name, position and chain of a link, as middleware sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    name: Arc<str>,
    chain: Arc<str>,
    index: usize,
}

impl LinkInfo {
    pub(crate) fn new(name: Arc<str>, chain: Arc<str>, index: usize) -> Self {
        Self { name, chain, index }
    }

    /// The link's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the chain the link belongs to.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// The link's zero-based position in its chain.
    pub fn index(&self) -> usize {
        self.index
    }

    pub(crate) fn name_arc(&self) -> &Arc<str> {
        &self.name
    }
}

/// The rest of the chain from a middleware's point of view: the inner
/// middleware and then the link (or, for [`around`](crate::Chain::around)
/// middleware, all links).
///
/// [`run`](Self::run) takes `self`, so a middleware that returns early simply
/// drops it. To call the rest more than once (a retry), clone it along with
/// the context; cloning costs one reference-count increment.
pub struct Next<C> {
    chain: Arc<ChainInner<C>>,
    target: Target,
    depth: usize,
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Execution,
    Link(usize),
}

impl<C> Clone for Next<C> {
    fn clone(&self) -> Self {
        Self {
            chain: Arc::clone(&self.chain),
            target: self.target,
            depth: self.depth,
        }
    }
}

impl<C> fmt::Debug for Next<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next")
            .field("chain", &self.chain.name)
            .field("link", &self.link().map(LinkInfo::name))
            .field("depth", &self.depth)
            .finish()
    }
}

impl<C> Next<C> {
    /// The link this middleware wraps, or `None` for middleware around the
    /// whole execution.
    pub fn link(&self) -> Option<&LinkInfo> {
        match self.target {
            Target::Link(index) => self.chain.steps.get(index).map(|step| &step.info),
            Target::Execution => None,
        }
    }

    /// The name of the chain being executed.
    pub fn chain_name(&self) -> &str {
        &self.chain.name
    }

    pub(crate) fn chain_name_arc(&self) -> &Arc<str> {
        &self.chain.name
    }
}

impl<C: Send + 'static> Next<C> {
    /// The `Next` handed to a link's first middleware, which the step loop
    /// calls directly.
    pub(crate) fn for_link(chain: Arc<ChainInner<C>>, index: usize) -> Self {
        Self {
            chain,
            target: Target::Link(index),
            depth: 1,
        }
    }

    pub(crate) fn for_execution(chain: Arc<ChainInner<C>>) -> Self {
        Self {
            chain,
            target: Target::Execution,
            depth: 0,
        }
    }

    fn deeper(&self) -> Self {
        Self {
            chain: Arc::clone(&self.chain),
            target: self.target,
            depth: self.depth + 1,
        }
    }

    /// Runs the rest of the chain on `ctx`.
    ///
    /// # Errors
    ///
    /// Whatever the inner middleware or the link return.
    pub async fn run(self, ctx: C) -> Result<C> {
        let chain = &self.chain;
        match self.target {
            Target::Link(index) => {
                let step = &chain.steps[index];
                let shared = chain.around_each.len();
                let middleware = match self.depth.checked_sub(shared) {
                    None => chain.around_each.get(self.depth),
                    Some(own) => step.around.get(own),
                };
                match (middleware, &step.runner) {
                    (Some(middleware), _) => middleware.call(ctx, self.deeper()).await,
                    (None, Runner::Sync(f)) => f(ctx),
                    (None, Runner::Async(link)) => link.call(ctx).await,
                }
            }
            Target::Execution => match chain.around.get(self.depth) {
                Some(middleware) => middleware.call(ctx, self.deeper()).await,
                None => chain.run_steps_boxed(ctx).await,
            },
        }
    }
}
