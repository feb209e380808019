use std::borrow::Cow;
use std::time::Instant;

use super::{Middleware, Next};
use crate::error::Result;
use crate::link::BoxFuture;

/// Middleware logging each link (or execution, when used with
/// [`around`](crate::Chain::around)) through `tracing`: a `DEBUG` event when
/// it succeeds and a `WARN` event when it fails, with the chain, link, index,
/// elapsed milliseconds and, on failure, the error and its kind.
///
/// Spans, metrics and OpenTelemetry export live in `chain-observability`.
pub fn logging() -> Logging {
    Logging { _private: () }
}

/// Middleware made by [`logging`].
#[derive(Debug, Clone)]
pub struct Logging {
    _private: (),
}

impl<C: Send + 'static> Middleware<C> for Logging {
    fn call(&self, ctx: C, next: Next<C>) -> BoxFuture<'_, Result<C>> {
        Box::pin(async move {
            let chain = next.chain_name_arc().clone();
            let link = next.link().cloned();
            let (link_name, index) = match &link {
                Some(info) => (info.name(), Some(info.index())),
                None => ("*", None),
            };
            let start = Instant::now();
            let outcome = next.run(ctx).await;
            let elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
            match &outcome {
                Ok(_) => tracing::debug!(
                    chain = &*chain,
                    link = link_name,
                    index,
                    elapsed_ms,
                    "link succeeded"
                ),
                Err(error) => tracing::warn!(
                    chain = &*chain,
                    link = link_name,
                    index,
                    elapsed_ms,
                    kind = error.kind().as_str(),
                    error = %error,
                    "link failed"
                ),
            }
            outcome
        })
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("logging")
    }
}
