//! Nodes that run elsewhere: the context goes to an HTTP endpoint as JSON
//! and the endpoint's JSON answer is the new context.

use std::sync::Arc;

use chain_core::remote::RemoteEndpoint;
use chain_core::{Chain, HasExtensions, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Node;

impl<C> Node<C>
where
    C: Serialize + DeserializeOwned + HasExtensions + Send + 'static,
{
    /// A node that runs remotely: each call POSTs the context as JSON to
    /// `url`, and the JSON answer is the next context (see
    /// [`RemoteEndpoint`], which also says how failures map to error
    /// kinds: no connection or a 5xx answer is `Unavailable`, so another
    /// node may serve). The context's extensions stay with it, and the
    /// headers of its `OutgoingHeaders` extension (a `traceparent`, say)
    /// are sent along.
    ///
    /// # Errors
    ///
    /// A [`Validation`](chain_core::ErrorKind::Validation) error for a URL
    /// that does not parse.
    pub fn http(id: impl Into<Arc<str>>, url: impl AsRef<str>) -> Result<Self> {
        let id = id.into();
        let endpoint = RemoteEndpoint::new(url.as_ref())?.named(format!("node {id}"));
        Ok(Node::new(
            Arc::clone(&id),
            Chain::named(format!("node {id}")).link(endpoint),
        ))
    }
}
