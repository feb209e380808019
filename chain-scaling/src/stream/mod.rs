//! Memory-efficient processing: a chain applied to the items of a stream
//! with bounded concurrency and backpressure ([`StreamProcessor`]), batches
//! ([`process_in_batches`]), and a [`MemoryMonitor`] that reads the
//! process's resident memory and makes processing back off above a limit.
//!
//! There is no garbage collector to call: in Rust an
//! item's memory is freed when its result is dropped, so what bounds memory
//! is how many items are alive at once: the concurrency, and a consumer
//! that does not collect the output.

mod batch;
mod memory;
mod processor;

pub use batch::process_in_batches;
pub use memory::{MemoryMonitor, MemoryReport};
pub use processor::{ItemError, Processed, StreamProcessor};
