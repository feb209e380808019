//! Memory-efficient processing: a chain applied to the items of a stream
//! with bounded concurrency and backpressure ([`StreamProcessor`]), batches
//! ([`process_in_batches`]), both also as links of a `Context` chain over a
//! field's list ([`StreamLink`], [`BatchLink`]), a projection to the fields
//! a chain still needs ([`essential_keys`]), and a [`MemoryMonitor`] that
//! reads the process's resident memory, makes processing back off above a
//! limit, measures each execution's change ([`MemoryMonitor::around_executions`])
//! and grades the peak against the limit ([`MemoryReport`]).
//!
//! There is no garbage collector to call: in Rust an
//! item's memory is freed when its result is dropped, so what bounds memory
//! is how many items are alive at once: the concurrency, and a consumer
//! that does not collect the output.

mod batch;
mod links;
mod memory;
mod processor;

pub use batch::process_in_batches;
pub use links::{BatchLink, EssentialKeys, StreamLink, essential_keys};
pub use memory::{ExecutionMemory, MemoryGrade, MemoryMonitor, MemoryReport};
pub use processor::{ItemError, Processed, StreamProcessor};
