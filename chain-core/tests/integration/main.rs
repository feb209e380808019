//! chain-core's integration tests, one binary with a module per area.

mod chain_flow; // order, value flow, nesting, typed contexts, long chains
mod concurrency; // one chain shared by many tasks, cancellation
mod context_props; // property tests of the Context JSON round trip
mod control_flow; // when, parallel, catch and on_error
mod errors; // error location, panics
mod fused; // fused runs of statically dispatched links
mod inspect; // inspect() and to_mermaid()
mod middleware; // order, short-circuit, transform, retry, built-ins
mod support;
mod tower_interop; // Chain as tower::Service, services as links
mod types; // Send/Sync/size assertions
