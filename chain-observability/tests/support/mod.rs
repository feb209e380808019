//! Helpers shared by chain-observability's test binaries (each includes
//! this module; not every binary uses every helper).
#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use chain_core::{Chain, Context, Error, named};

/// An incoming W3C trace position, as the spec's example.
pub(crate) const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Two links; `charge` fails when the context has `decline`.
pub(crate) fn order_chain() -> Chain {
    Chain::named("orders")
        .link(named("validate", |ctx: Context| async move { Ok(ctx) }))
        .link(named("charge", |ctx: Context| async move {
            if ctx.contains_key("decline") {
                return Err(Error::unavailable("card declined"));
            }
            Ok(ctx.with("charged", true))
        }))
}

/// A writer keeping what is written, for capturing log output.
#[derive(Clone, Default)]
pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
