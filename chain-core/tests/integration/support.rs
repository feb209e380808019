//! Helpers shared by the integration tests.

use std::sync::{Arc, Mutex};

use chain_core::{Context, Result};

/// A shared, ordered log of what ran.
#[derive(Clone, Default)]
pub(crate) struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    pub(crate) fn record(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }

    pub(crate) fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Appends `label` to the context's `trace` array.
pub(crate) fn push_trace(mut ctx: Context, label: &str) -> Result<Context> {
    let mut trace: Vec<String> = ctx.get("trace")?.unwrap_or_default();
    trace.push(label.to_owned());
    ctx.insert_serde("trace", &trace)?;
    Ok(ctx)
}

pub(crate) fn trace(ctx: &Context) -> Vec<String> {
    ctx.get("trace").unwrap().unwrap_or_default()
}
