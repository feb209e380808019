//! Parallel execution under a [`ResourcePool`]: a bound on chains running
//! at once with a bounded queue or rejection for the excess, CPU-bound work
//! on a bounded set of blocking threads ([`Mode::Blocking`]), fan-out over
//! several chains with a deterministic merge, and measured statistics with
//! a performance report with recommendations.

mod pool;
mod report;
mod stats;

pub use pool::{FanOut, Mode, Overflow, PoolSettings, ResourcePool};
pub use report::{PerformanceReport, ResourceUtilization};
pub use stats::ExecutionStats;
