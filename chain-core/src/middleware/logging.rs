use std::borrow::Cow;
use std::time::{Duration, Instant};

use super::{LinkInfo, Middleware, Next, Observer};
use crate::error::Result;
use crate::link::BoxFuture;

/// Logs each link through `tracing`: a `DEBUG` event when it succeeds and a
/// `WARN` event when it fails, with the chain, link, index, elapsed
/// milliseconds and, on failure, the error and its kind.
///
/// Register it as an [`Observer`] with [`Chain::observe`](crate::Chain::observe)
/// (no allocation per link), or as [`Middleware`]: around every link, one
/// step, or the whole execution (logged with link `*`).
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
            log_outcome(&chain, link_name, index, start.elapsed(), &outcome);
            outcome
        })
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("logging")
    }
}

impl<C: Send + 'static> Observer<C> for Logging {
    fn on_link(&self, link: &LinkInfo, elapsed: Duration, outcome: &mut Result<C>) {
        log_outcome(
            link.chain(),
            link.name(),
            Some(link.index()),
            elapsed,
            outcome,
        );
    }

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("logging")
    }
}

fn log_outcome<C>(
    chain: &str,
    link: &str,
    index: Option<usize>,
    elapsed: Duration,
    outcome: &Result<C>,
) {
    let elapsed_ms = elapsed.as_secs_f64() * 1e3;
    match outcome {
        Ok(_) => tracing::debug!(chain, link, index, elapsed_ms, "link succeeded"),
        Err(error) => tracing::warn!(
            chain,
            link,
            index,
            elapsed_ms,
            kind = error.kind().as_str(),
            error = %format_args!("{error:#}"),
            "link failed"
        ),
    }
}
